"""Per-user site values (group, queue, account, modules ...): from the profile or the environment, never from code.

A Snakemake profile passes them as string resources (``default-resources: {site_group: "'gaa50000'"}``), which reach
the submit command inside the job script's JSON properties, never through a shell. Each has an environment fallback
(``PRETRAINFLOW_GROUP`` ...). Every value that ends up in a qsub/sbatch argv or a job script is checked here against a
strict pattern, so a value such as ``grp; rm -rf ~`` or one with a newline is refused before anything is submitted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pretrainflow.errors import ConfigError

# Names a scheduler accepts for groups, projects, queues, partitions, accounts: letters, digits, _ . - (max 64).
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Environment module names such as cuda/12.6/12.6.1 or hpcx/2.20 (slashes and + allowed, nothing a shell parses).
SAFE_MODULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+/-]{0,127}")
# Job ids as printed by qsub/sbatch: 1234, 1234.pbs1, 1234[].pbs1 (arrays), 56_7 (Slurm arrays).
SAFE_JOB_ID = re.compile(r"[0-9]+(?:[\[\]_0-9]*)(?:\.[A-Za-z0-9_.-]+)?")

# resource name in the profile -> environment variable used when the profile leaves it unset
ENV_FALLBACK = {
    "site_group": "PRETRAINFLOW_GROUP",
    "site_queue": "PRETRAINFLOW_QUEUE",
    "site_account": "PRETRAINFLOW_ACCOUNT",
    "site_modules": "PRETRAINFLOW_MODULES",
    "site_extra": "PRETRAINFLOW_SCHED_EXTRA",
}
WALLTIME_SIGNALS = ("watchdog", "s_rt", "none")


def check_name(value: str, where: str) -> str:
    """Return ``value`` if it is a plain scheduler name, else raise ConfigError naming ``where``."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        raise ConfigError(f"{where}: expected a name of letters, digits, '_', '.', '-' (max 64), got {value!r}")
    return value


def check_job_id(value: str, where: str = "job id") -> str:
    """Return ``value`` if it looks like a scheduler job id (digits, optional array index and server suffix)."""
    if not isinstance(value, str) or not SAFE_JOB_ID.fullmatch(value):
        raise ConfigError(f"{where}: expected a scheduler job id such as 1234 or 1234.pbs1, got {value!r}")
    return value


def check_extra_arg(value: str, where: str) -> str:
    """Extra scheduler arguments travel as separate argv items (never through a shell); control characters are refused
    because they would corrupt the scheduler's own parsing of directives and logs."""
    if not isinstance(value, str) or not value or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ConfigError(
            f"{where}: expected a non-empty argument without newlines or control characters, got {value!r}"
        )
    return value


@dataclass(kw_only=True, slots=True)
class SiteSettings:
    """What differs per user and per site; ``None`` means "not set" (an error only where the site needs it)."""

    group: str | None = None  # ABCI `-P <group>`, TSUBAME `-g <group>`
    queue: str | None = None  # Slurm partition; a PBS reservation queue (R1234); a Grid Engine queue (-q)
    account: str | None = None  # Slurm --account
    modules: tuple[str, ...] = ()  # environment modules loaded in every job (ABCI: cuda cudnn nccl hpcx)
    extra: tuple[str, ...] = ()  # extra qsub/sbatch arguments, each one argv item
    group_flag: str | None = "-g"  # Grid Engine: TSUBAME's `-g`; None on stock Grid Engine (which rejects -g)
    walltime_signal: str = "watchdog"  # how the job gets SIGUSR1 before its limit (see jobscript.py)
    signal_margin_s: int = 300  # seconds before the walltime at which SIGUSR1 is sent (checkpoint + exit time)
    max_runtime_min: int | None = None  # site limit on walltime (ABCI on-demand 12 h, TSUBAME 24 h); None: site default
    env: dict[str, str] = field(default_factory=dict)  # extra environment variables exported in the job script
    node_gpus: int | None = None  # Slurm: GPUs of one node, which shapes a total of GPUs (ABCI/TSUBAME: sites.py)
    points: dict[str, float] = field(default_factory=dict)  # the site's points per hour of one unit of each type

    def __post_init__(self) -> None:
        for key in ("group", "queue", "account"):
            value = getattr(self, key)
            if value is not None:
                check_name(value, f"site_{key}")
        for module in self.modules:
            if not SAFE_MODULE.fullmatch(module):
                raise ConfigError(f"site_modules: expected module names like cuda/12.6/12.6.1, got {module!r}")
        for arg in self.extra:
            check_extra_arg(arg, "site_extra")
        if self.group_flag is not None and self.group_flag not in ("-g", "-P", "-A"):
            raise ConfigError(f"site_group_flag: expected -g, -P, -A or none, got {self.group_flag!r}")
        if self.walltime_signal not in WALLTIME_SIGNALS:
            raise ConfigError(f"site_walltime_signal: expected one of {WALLTIME_SIGNALS}, got {self.walltime_signal!r}")
        if not 0 <= self.signal_margin_s <= 3600:
            raise ConfigError(f"site_signal_margin_s: expected 0..3600 seconds, got {self.signal_margin_s}")
        for name in self.env:
            if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
                raise ConfigError(f"site_env: expected an environment variable name, got {name!r}")
        if self.node_gpus is not None and self.node_gpus < 1:
            raise ConfigError(f"site_gpus_per_node: expected the GPUs of one node (>= 1), got {self.node_gpus}")
        for name, rate in self.points.items():
            check_name(name, "site_points")
            if not rate >= 0:
                raise ConfigError(f"site_points: expected points per hour >= 0 for {name}, got {rate!r}")

    def require_group(self, site: str) -> str:
        """The group, or a ConfigError that says where to set it (raised before anything is submitted)."""
        if not self.group:
            raise ConfigError(
                f"site_group: {site} needs your group (e.g. gaa50000): set PRETRAINFLOW_GROUP or "
                f"default-resources.site_group in profiles/{site}/config.yaml"
            )
        return self.group


def _text(resources: Mapping[str, object], env: Mapping[str, str], key: str) -> str | None:
    """A string site value: the profile's resource if set (and not a placeholder), else the environment fallback."""
    value = resources.get(key)
    if value in (None, "", "none", "None"):
        value = env.get(ENV_FALLBACK.get(key, ""), None) or None
    return None if value is None else str(value)


def settings_from(resources: Mapping[str, object], env: Mapping[str, str] | None = None) -> SiteSettings:
    """Build SiteSettings from a job's resources (profile ``default-resources``/``set-resources``) and the environment.

    >>> settings_from({"site_group": "gaa50000", "site_modules": "cuda/12.6/12.6.1 hpcx/2.20"}, env={}).modules
    ('cuda/12.6/12.6.1', 'hpcx/2.20')
    """
    env = os.environ if env is None else env
    modules = _text(resources, env, "site_modules") or ""
    extra = _text(resources, env, "site_extra") or ""
    flag = resources.get("site_group_flag", "-g")
    job_env = {}
    for item in str(resources.get("site_env", "") or "").split():
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"site_env: expected NAME=value items separated by spaces, got {item!r}")
        job_env[name] = value
    return SiteSettings(
        group=_text(resources, env, "site_group"),
        queue=_text(resources, env, "site_queue"),
        account=_text(resources, env, "site_account"),
        modules=tuple(modules.split()),
        # extra arguments are separated by ';;' so that one argument may contain spaces (e.g. -l "x=1 y")
        extra=tuple(part.strip() for part in extra.split(";;") if part.strip()),
        group_flag=None if str(flag).lower() in ("", "none") else str(flag),
        walltime_signal=str(resources.get("site_walltime_signal", "watchdog")),
        signal_margin_s=int(resources.get("site_signal_margin_s", 300)),
        max_runtime_min=int(resources["site_max_runtime"]) if resources.get("site_max_runtime") else None,
        env=job_env,
        node_gpus=_whole(resources, "site_gpus_per_node"),
        points=_points(str(resources.get("site_points", "") or "")),
    )


def _whole(resources: Mapping[str, object], key: str) -> int | None:
    value = resources.get(key)
    if value in (None, "", "none", "None"):
        return None
    try:
        return int(str(value))
    except ValueError:
        raise ConfigError(f"{key}: expected an integer, got {value!r}") from None


def _points(text: str) -> dict[str, float]:
    """``"rt_HF=<points per hour> rt_HG=<...>"`` (profile ``site_points``, rates from the site's table) -> dict.

    >>> _points("rt_HF=2 rt_HG=0.25")
    {'rt_HF': 2.0, 'rt_HG': 0.25}
    """
    rates = {}
    for item in text.split():
        name, _, value = item.partition("=")
        try:
            rates[name] = float(value)
        except ValueError:
            raise ConfigError(f"site_points: expected TYPE=<points per hour> items, got {item!r}") from None
    return rates
