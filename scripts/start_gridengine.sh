#!/usr/bin/env bash
# Start a real single-node Grid Engine (Debian gridengine 8.1.9 = Son of Grid Engine) for the `sge` tests.
# Root only; idempotent; ~15 s the first time, ~1 s when already running.
#
#   sudo scripts/start_gridengine.sh
#
# It builds a test cluster that looks like TSUBAME 4.0 to our profile: one queue `all.q`, a parallel environment
# `smp`, and consumable complexes named like TSUBAME's resource types (node_f, node_h, node_q, node_o, gpu_1, gpu_h,
# cpu_4 ... cpu_160) so that `-l node_q=1` is accepted and accounted. Stock Grid Engine has no `-g <group>` option:
# the tsubame test profile leaves the group flag out (it is site-configurable, see profiles/tsubame/pretrainflow.yaml).
#
# Pitfalls handled here (verified on Debian 12):
# - qmaster refuses clients whose IP reverse-resolves to another name ("client IP resolved to host name localhost"):
#   host_aliases maps the hostname and localhost to one host before the daemons start (/etc/hosts is left alone).
# - root cannot run jobs until min_uid/min_gid are 0; scheduler interval and accounting flush default to 15 s (set 1 s).
# - the package creates no exec host, host group, queue or PE: they are added with `qconf -A*` from files.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "start_gridengine.sh: needs root (installs Debian packages and starts daemons)" >&2
    exit 1
fi

host=$(hostname)
cpus=$(nproc)
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
common=$SGE_ROOT/$SGE_CELL/common
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ ! -x /usr/sbin/sge_qmaster ]] || [[ ! -x /usr/sbin/sge_execd ]] || ! command -v qsub >/dev/null; then
    echo "start_gridengine.sh: installing gridengine-master/-exec/-client"
    for pkg in gridengine-common gridengine-master gridengine-exec gridengine-client; do
        printf '%s shared/gridengineconfig boolean true\n%s shared/gridenginecell string default\n%s shared/gridenginemaster string %s\n' \
            "$pkg" "$pkg" "$pkg" "$host"
    done | debconf-set-selections
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq gridengine-master gridengine-exec gridengine-client >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq gridengine-master gridengine-exec gridengine-client >/dev/null; }
fi

# One name for this machine whichever way its address resolves (must exist before the daemons start).
printf '%s localhost\n' "$host" > "$common/host_aliases"
printf '%s\n' "$host" > "$common/act_qmaster"

if ! pgrep -x sge_qmaster >/dev/null; then
    /usr/sbin/sge_qmaster
    echo "start_gridengine.sh: started sge_qmaster"
fi
for _ in $(seq 1 30); do qconf -sh >/dev/null 2>&1 && break; sleep 0.5; done

# --- global configuration: root may run jobs; 1 s accounting flush ----------------------------------------------
# qconf prints long values wrapped with trailing backslashes: join them so each key is one line before editing
qconf -sconf global | awk '{ if (sub(/\\$/, "")) { printf "%s", $0 } else { print } }' | grep -vE '^(flush_time|joblog)' > "$work/global"
sed -i -E 's/^(min_uid|min_gid)\s+.*/\1 0/' "$work/global"
sed -i -E 's/^reporting_params\s+.*/reporting_params accounting=true reporting=false flush_time=00:00:01 joblog=false sharelog=00:00:00/' "$work/global"
sed -i -E 's/^(load_report_time)\s+.*/\1 00:00:05/' "$work/global"
qconf -Mconf "$work/global" >/dev/null 2>&1 || true

# --- scheduler: one-second cycles so the tests see jobs start promptly -------------------------------------------
qconf -ssconf > "$work/sched"
sed -i -E 's/^schedule_interval\s+.*/schedule_interval 0:0:1/; s/^flush_submit_sec\s+.*/flush_submit_sec 1/; s/^flush_finish_sec\s+.*/flush_finish_sec 1/' "$work/sched"
qconf -Msconf "$work/sched" >/dev/null 2>&1 || true

# --- TSUBAME-like resource types as consumable complexes (consumable JOB: counted once per job, not per slot) -------
qconf -sc > "$work/complexes"
for name in node_f node_h node_q node_o gpu_1 gpu_h cpu_4 cpu_8 cpu_16 cpu_40 cpu_80 cpu_160; do
    if ! grep -q "^$name " "$work/complexes"; then
        printf '%s %s INT <= YES JOB 0 0\n' "$name" "$name" >> "$work/complexes"
    fi
done
qconf -Mc "$work/complexes" >/dev/null 2>&1 || true

# --- exec host, host group, parallel environment, queue -------------------------------------------------------------
qconf -ah "$host" >/dev/null 2>&1 || true   # administrative host (needed for execd to register)
qconf -as "$host" >/dev/null 2>&1 || true   # submit host
# each type has 4 "units" on the single test host so a few test jobs can run side by side
values=""
for name in node_f node_h node_q node_o gpu_1 gpu_h cpu_4 cpu_8 cpu_16 cpu_40 cpu_80 cpu_160; do values+="$name=4,"; done
cat > "$work/exechost" <<CONF
hostname              $host
load_scaling          NONE
complex_values        ${values%,}
user_lists            NONE
xuser_lists           NONE
projects              NONE
xprojects             NONE
usage_scaling         NONE
report_variables      NONE
CONF
qconf -Ae "$work/exechost" >/dev/null 2>&1 || qconf -Me "$work/exechost" >/dev/null 2>&1

cat > "$work/hostgroup" <<CONF
group_name  @allhosts
hostlist    $host
CONF
qconf -Ahgrp "$work/hostgroup" >/dev/null 2>&1 || qconf -Mhgrp "$work/hostgroup" >/dev/null 2>&1

cat > "$work/pe" <<CONF
pe_name            smp
slots              9999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    \$pe_slots
control_slaves     TRUE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
CONF
qconf -Ap "$work/pe" >/dev/null 2>&1 || qconf -Mp "$work/pe" >/dev/null 2>&1

# all.q from the built-in template, then the settings we need
if ! qconf -sq all.q >/dev/null 2>&1; then
    qconf -sq > "$work/queue" 2>/dev/null || true
    # `qconf -sq` without a name prints the template
    sed -i -E "s/^qname\s+.*/qname all.q/; s/^hostlist\s+.*/hostlist @allhosts/; s/^pe_list\s+.*/pe_list smp/" "$work/queue"
    qconf -Aq "$work/queue" >/dev/null
fi
qconf -sq all.q > "$work/queue"
sed -i -E "s/^slots\s+.*/slots $cpus/; s/^load_thresholds\s+.*/load_thresholds NONE/; s/^shell_start_mode\s+.*/shell_start_mode unix_behavior/; s/^pe_list\s+.*/pe_list smp/; s/^hostlist\s+.*/hostlist @allhosts/; s/^tmpdir\s+.*/tmpdir \/tmp/" "$work/queue"
qconf -Mq "$work/queue" >/dev/null 2>&1

if ! pgrep -x sge_execd >/dev/null; then
    /usr/sbin/sge_execd
    echo "start_gridengine.sh: started sge_execd"
fi

# Wait (up to 30 s) until the queue instance is available (no 'u'nknown / 'E'rror state).
for _ in $(seq 1 60); do
    # a healthy queue instance line has 5 columns (name, type, slots, load, arch); a 6th one is a state like au/E/d
    if qstat -f -q all.q 2>/dev/null | awk '/^all.q@/ && NF == 5 { ok = 1 } END { exit !ok }'; then
        echo "start_gridengine.sh: Grid Engine ready (queue all.q@$host, $cpus slots)"
        exit 0
    fi
    # clear an Error state left by an earlier failed job start
    qstat -f -q all.q 2>/dev/null | awk '/^all.q@/ && $6 ~ /E/ { found = 1 } END { exit !found }' \
        && qmod -c "all.q@$host" >/dev/null 2>&1 || true
    sleep 0.5
done
echo "start_gridengine.sh: Grid Engine did not become ready:" >&2
qstat -f >&2 || true
exit 1
