"""Two "hosts" on this machine for the multi-node tests: two Linux network namespaces joined by a bridge.

Each namespace has one interface, named ``pf0`` in both (so GLOO_SOCKET_IFNAME=pf0 means the same on every host, as
ib0 does on a cluster), with its own address on a private /24 that exists only inside this machine. Open MPI reaches
the second host the way it reaches a cluster node over ssh: through a remote-shell agent (``OMPI_MCA_plm_rsh_agent``)
that runs the command in that host's namespace with a clean environment (``env -i``), so a rank on the second host
sees only what mpirun passes on by name (``-x``), exactly as over ssh. The file system is shared, as on a cluster.
Each host also gets its own core (taskset), as a node has its own cores: a rank sizes its intra-op threads from the
cores it may use (train/vit/engine.py), so two "hosts" sharing both cores would train with other thread counts than
the same ranks packed onto one node.

Needs root (ip netns, veth, bridge) and Open MPI's mpirun (Debian's openmpi-bin; `make test` installs it as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

IFNAME = "pf0"
# A private range no cluster network here uses; the addresses live only inside the namespaces and on the bridge.
SUBNET = "10.211.{net}"


def missing_requirements() -> str | None:
    """Why two hosts cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "mpirun"):
        if shutil.which(tool) is None:
            return f"{tool} not found (Debian: iproute2, openmpi-bin; `make test` installs openmpi-bin as root)"
    return None


@dataclass(frozen=True)
class TwoHosts:
    namespaces: tuple[str, str]
    addresses: tuple[str, str]
    cores: tuple[str, str]
    rsh_agent: Path

    def run_on(self, host: int, argv: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
        """Run ``argv`` on host 0 or 1 (in its namespace) with ``env`` plus what mpirun needs to reach the other."""
        netns = ["ip", "netns", "exec", self.namespaces[host], "taskset", "-c", self.cores[host]]
        return subprocess.run([*netns, *argv], env={**env, **self.mpi_env()}, **kwargs)

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


def _agent_script(namespaces: tuple[str, str], addresses: tuple[str, str], cores: tuple[str, str]) -> str:
    cases = "\n".join(
        f"  {addr}) ns={ns} core={core} ;;" for ns, addr, core in zip(namespaces, addresses, cores, strict=True)
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
    """Create the two hosts (unique names per process, so parallel runs do not meet) and remove them afterwards."""
    tag = f"{os.getpid() % 100000}"
    net = os.getpid() % 200 + 20  # 10.211.<net>.0/24
    bridge = f"pfbr{tag}"
    namespaces = (f"pf-{tag}-a", f"pf-{tag}-b")
    addresses = (f"{SUBNET.format(net=net)}.1", f"{SUBNET.format(net=net)}.2")
    usable = sorted(os.sched_getaffinity(0))
    cores = (str(usable[0]), str(usable[-1]))  # one core each where there are two (a 1-core machine: shared)
    agent = workdir / "netns-rsh"
    agent.write_text(_agent_script(namespaces, addresses, cores))
    agent.chmod(0o755)
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("link", "set", bridge, "up")
        for index, (ns, addr) in enumerate(zip(namespaces, addresses, strict=True)):
            outer = f"pfv{tag}{index}"
            _ip("netns", "add", ns)
            _ip("link", "add", outer, "type", "veth", "peer", "name", IFNAME, "netns", ns)
            _ip("link", "set", outer, "master", bridge, "up")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", IFNAME)
            _ip("-n", ns, "link", "set", IFNAME, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield TwoHosts(namespaces=namespaces, addresses=addresses, cores=cores, rsh_agent=agent)
    finally:
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # removes its veth pair too
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
