"""Two "hosts" on this machine for the multi-node tests: two Linux network namespaces joined by a bridge.

Each namespace has one interface, named ``pf0`` in both (so GLOO_SOCKET_IFNAME=pf0 means the same on every host, as
ib0 does on a cluster), with its own address on a private /24 that exists only inside this machine, and a host name
that resolves inside both namespaces (``ip netns exec`` reads /etc/netns/<ns>/hosts as /etc/hosts). The file system is
shared, as on a cluster. Each host also gets its own core (taskset), as a node has its own cores: a rank sizes its
intra-op threads from the cores it may use (train/vit/engine.py), so two "hosts" sharing both cores would train with
other thread counts than the same ranks packed onto one node.

- mpirun (PBS / Grid Engine jobs) reaches the second host the way it reaches a cluster node over ssh: through a
  remote-shell agent (``OMPI_MCA_plm_rsh_agent``) that runs the command in that host's namespace with a clean
  environment (``env -i``), so a rank there sees only what mpirun passes on by name (``-x``), exactly as over ssh.
- ``slurm_cluster`` starts a second, private Slurm (own slurm.conf, ports, state; the machine's munge) whose two nodes
  are the two hosts: slurmctld on the bridge, one slurmd inside each namespace. Jobs reach it with SLURM_CONF.

Needs root (ip netns, veth, bridge) and Open MPI's mpirun (Debian's openmpi-bin; `make test` installs it as root);
the Slurm part needs the slurm-wlm binaries and a running munged (scripts/start_slurm.sh).
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

IFNAME = "pf0"


def missing_requirements(*, slurm: bool = False) -> str | None:
    """Why two hosts (and, with ``slurm``, a two-node Slurm on them) cannot be made here; None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    tools = ("ip", "nsenter", "unshare", "taskset", "mpirun") + (("slurmctld", "slurmd", "sbatch") if slurm else ())
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} not found (Debian: iproute2, util-linux, openmpi-bin, slurm-wlm; `make test` installs them)"
    if slurm and subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        return "munged is not running (scripts/start_slurm.sh starts it)"
    return None


@dataclass(frozen=True)
class TwoHosts:
    names: tuple[str, str]  # host names, resolvable inside both namespaces
    namespaces: tuple[str, str]
    addresses: tuple[str, str]
    gateway: str  # the bridge's address, outside both hosts (where the private slurmctld listens)
    cores: tuple[str, str]
    rsh_agent: Path

    def on(self, host: int) -> list[str]:
        """The argv prefix that runs a command on host 0 or 1."""
        return ["ip", "netns", "exec", self.namespaces[host], "taskset", "-c", self.cores[host]]

    def run_on(self, host: int, argv: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
        """Run ``argv`` on host 0 or 1 with ``env`` plus what mpirun needs to reach the other host."""
        return subprocess.run([*self.on(host), *argv], env={**env, **self.mpi_env()}, **kwargs)

    def mpi_env(self) -> dict[str, str]:
        """Open MPI settings of these hosts: our remote shell, its control and data traffic on pf0, root allowed (CI
        runs as root; Open MPI refuses root without both variables)."""
        return {
            "OMPI_MCA_plm_rsh_agent": str(self.rsh_agent),
            "OMPI_MCA_oob_tcp_if_include": IFNAME,
            "OMPI_MCA_btl_tcp_if_include": IFNAME,
            "OMPI_MCA_btl": "self,tcp",
            "OMPI_ALLOW_RUN_AS_ROOT": "1",
            "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            "GLOO_SOCKET_IFNAME": IFNAME,
        }


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _agent_script(hosts: TwoHosts) -> str:
    cases = "\n".join(
        f"  {addr}|{name}) ns={ns} core={core} ;;"
        for name, ns, addr, core in zip(hosts.names, hosts.namespaces, hosts.addresses, hosts.cores, strict=True)
    )
    # ssh semantics: the host, then a command line for the remote shell; a fresh login-like environment.
    return f"""#!/bin/sh
host=$1; shift
case $host in
{cases}
  *) echo "netns rsh agent: unknown host $host" >&2; exit 255 ;;
esac
exec env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$HOME" ip netns exec "$ns" taskset -c "$core" /bin/sh -c "$*"
"""


@contextmanager
def two_hosts(workdir: Path) -> Iterator[TwoHosts]:
    """Create the two hosts (names unique per process, so parallel runs do not meet) and remove them afterwards."""
    tag = f"{os.getpid() % 100000}"
    subnet = f"10.211.{os.getpid() % 200 + 20}"
    bridge = f"pfbr{tag}"
    usable = sorted(os.sched_getaffinity(0))
    hosts = TwoHosts(
        names=(f"pf{tag}n1", f"pf{tag}n2"),
        namespaces=(f"pf-{tag}-a", f"pf-{tag}-b"),
        addresses=(f"{subnet}.1", f"{subnet}.2"),
        gateway=f"{subnet}.254",
        cores=(str(usable[0]), str(usable[-1])),  # one core each where there are two (a 1-core machine: shared)
        rsh_agent=workdir / "netns-rsh",
    )
    hosts.rsh_agent.write_text(_agent_script(hosts))
    hosts.rsh_agent.chmod(0o755)
    etc_hosts = Path("/etc/hosts").read_text()
    names = "".join(f"{addr} {name}\n" for addr, name in zip(hosts.addresses, hosts.names, strict=True))
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{hosts.gateway}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for index, (ns, addr) in enumerate(zip(hosts.namespaces, hosts.addresses, strict=True)):
            outer = f"pfv{tag}{index}"
            _ip("netns", "add", ns)
            _ip("link", "add", outer, "type", "veth", "peer", "name", IFNAME, "netns", ns)
            _ip("link", "set", outer, "master", bridge, "up")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", IFNAME)
            _ip("-n", ns, "link", "set", IFNAME, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            Path("/etc/netns", ns).mkdir(parents=True, exist_ok=True)
            Path("/etc/netns", ns, "hosts").write_text(etc_hosts + names)
        yield hosts
    finally:
        for ns in hosts.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # removes its veth pair too
            shutil.rmtree(Path("/etc/netns", ns), ignore_errors=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


@contextmanager
def slurm_cluster(hosts: TwoHosts, workdir: Path) -> Iterator[dict[str, str]]:
    """A private two-node Slurm on ``hosts``; yields the environment that points Slurm's commands at it."""
    port = 7000 + (os.getpid() % 900) * 2  # slurmctld; slurmd listens on port + 1 on each host's own address
    root = workdir / "slurm"
    (root / "state").mkdir(parents=True)
    conf = root / "slurm.conf"
    nodes = "\n".join(
        f"NodeName={name} NodeAddr={addr} CPUs=1 RealMemory=2000 State=UNKNOWN"
        for name, addr in zip(hosts.names, hosts.addresses, strict=True)
    )
    conf.write_text(f"""# a private two-node test cluster (tests/launch/netns_hosts.py)
ClusterName=pftwonode
SlurmctldHost={socket.gethostname()}({hosts.gateway})
SlurmctldPort={port}
SlurmdPort={port + 1}
AuthType=auth/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool-%n
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd-%n.log
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerParameters=sched_interval=1
ReturnToService=2
{nodes}
PartitionName=two Nodes={",".join(hosts.names)} Default=YES MaxTime=INFINITE State=UP
""")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    try:
        subprocess.run(["slurmctld", "-f", str(conf), "-i"], check=True, env=env)
        for index, name in enumerate(hosts.names):
            # nsenter keeps the machine's /sys (slurmd reads its cgroup mounts there; `ip netns exec` remounts /sys),
            # and a private mount namespace gives this host its /etc/hosts, as `ip netns exec` would.
            inner = (
                f"mount --bind {shlex.quote(f'/etc/netns/{hosts.namespaces[index]}/hosts')} /etc/hosts && exec "
                f"taskset -c {hosts.cores[index]} slurmd -f {shlex.quote(str(conf))} -N {name}"
            )
            subprocess.run(
                ["nsenter", f"--net=/run/netns/{hosts.namespaces[index]}", "unshare", "--mount", "sh", "-c", inner],
                check=True,
                env=env,
            )
        _wait_idle(env, len(hosts.names))
        yield env
    finally:
        subprocess.run(["scancel", "--partition", "two"], env=env, capture_output=True)
        for pidfile in [root / "slurmctld.pid", *(root / f"slurmd-{name}.pid" for name in hosts.names)]:
            if pidfile.exists():
                subprocess.run(["kill", pidfile.read_text().strip()], capture_output=True)
        time.sleep(1)


def _wait_idle(env: dict[str, str], count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    states = ""
    while time.monotonic() < deadline:
        states = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=env, capture_output=True, text=True).stdout
        if states.split().count("idle") == count:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the two-node Slurm did not come up (node states: {states.split()})")
