#!/usr/bin/env bash
# Start a real single-node Slurm (Debian slurm-wlm + munge) for the `slurm` tests. Root only; idempotent; ~10 s first time.
#
#   sudo scripts/start_slurm.sh          # installs packages if missing, writes slurm.conf, starts munged/slurmctld/slurmd
#
# Facts this relies on (verified on Debian 12, Slurm 22.05; see the project notes):
# - accounting is off (no slurmdbd), so `sacct` fails: the test profile uses `--slurm-status-command squeue`, and
#   MinJobAge=600 keeps finished jobs visible to squeue for 10 minutes so their final state can be read.
# - proctrack/linuxproc + task/none work without cgroups inside containers.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "start_slurm.sh: needs root (installs Debian packages and starts daemons)" >&2
    exit 1
fi

host=$(hostname)
cpus=$(nproc)
# RealMemory must not exceed what slurmd sees or the node is drained: use 80 % of total memory (MB).
mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "start_slurm.sh: installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq slurm-wlm munge >/dev/null || { apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null; }
fi

conf=/etc/slurm/slurm.conf
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
new_conf=$(cat <<CONF
# written by pretrainflow scripts/start_slurm.sh: a single-node test cluster
ClusterName=pretrainflow
SlurmctldHost=${host}
AuthType=auth/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# finished jobs stay visible to squeue for 600 s (no accounting => squeue is the only status source)
MinJobAge=600
# short scheduler cycles so tests see state changes within a second or two
SchedulerParameters=sched_interval=1
ReturnToService=2
# the test suite cancels jobs on purpose and expects --requeue to work; a requeued job may start again after
# cred_expire seconds (default 120): 30 s keeps the requeue tests short
JobRequeue=1
AuthInfo=cred_expire=30
KillWait=5
NodeName=${host} CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF
)
changed=0
if [[ ! -f $conf ]] || [[ "$(cat "$conf")" != "$new_conf" ]]; then
    printf '%s\n' "$new_conf" > "$conf"
    changed=1
    echo "start_slurm.sh: wrote $conf (${cpus} CPUs, ${mem_mb} MB)"
fi

# munged runs as user munge and needs its key and socket directory owned by munge.
mkdir -p /run/munge
chown munge:munge /run/munge
if [[ ! -f /etc/munge/munge.key ]]; then
    /usr/sbin/mungekey --create >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
if ! pgrep -x munged >/dev/null; then
    su -s /bin/sh munge -c /usr/sbin/munged
    echo "start_slurm.sh: started munged"
fi

# a changed slurm.conf needs a restart (scontrol reconfigure does not apply every key, e.g. AuthInfo)
if [[ $changed -eq 1 ]]; then
    for daemon in slurmd slurmctld; do
        if [[ -f /run/$daemon.pid ]] && kill "$(cat /run/$daemon.pid)" 2>/dev/null; then
            echo "start_slurm.sh: stopped $daemon to apply the new configuration"
            for _ in $(seq 1 20); do pgrep -x "$daemon" >/dev/null || break; sleep 0.5; done
        fi
    done
fi
if ! pgrep -x slurmctld >/dev/null; then
    /usr/sbin/slurmctld
    echo "start_slurm.sh: started slurmctld"
fi
if ! pgrep -x slurmd >/dev/null; then
    /usr/sbin/slurmd
    echo "start_slurm.sh: started slurmd"
fi

# Wait (up to 30 s) until the node accepts jobs; resume it if a previous run left it down/drained.
for _ in $(seq 1 30); do
    state=$(sinfo -h -N -o '%t' 2>/dev/null | head -n1 || true)
    case "$state" in
        idle*|mix*|alloc*) echo "start_slurm.sh: Slurm ready (node ${host}: ${state})"; exit 0 ;;
        down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
echo "start_slurm.sh: Slurm did not become ready; see /var/log/slurm/" >&2
exit 1
