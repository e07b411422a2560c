"""Optional Weights & Biases logging of training runs: off unless the study's ``tracking`` section or the site asks.

    tracking:                     # study key (workflow/schemas/tracking.schema.yaml), never part of any spec
      wandb: {mode: offline, project: fdsl-vit, entity: my-lab, tags: [fractaldb]}

How a run is observed, not what it trains: the section reaches the training commands as ``--tracking JSON``, or,
under the workflow, in the environment variable ``PRETRAINFLOW_TRACKING`` that workflow/rules/common.smk exports when
it loads the study (jobs inherit it; a cluster job loads the study again). Outside every resolved spec, so no config
hash and no checkpoint directory changes with it; and no rule param, so changing it, or running the unit from another
study (whose default project differs), reruns nothing: units shared between studies stay shared. A site turns W&B
on or off with ``PRETRAINFLOW_WANDB=offline|online|disabled`` in the job's environment (a profile exports it through
``site_env``; on Slurm and locally the submitting shell's environment reaches the job); it overrides the study's mode
and, being no Snakemake param, switching it reruns nothing. ``offline`` is the default: compute nodes here and on
ABCI / TSUBAME reach no network; ``wandb sync`` uploads the files later.

What is logged: exactly the scalars TensorBoard gets (``scalars``: every number of a metrics row but the step, as
``train/<key>``, at the row's optimizer step), from rank 0 only, by the run log both engines use (train/runlog.py).
Identity: W&B run id = the first 12 hex digits of the unit's config hash, which is also the name of its checkpoint
directory (train/checkpoints.py), so a resumed run appends to the same W&B run (``resume="allow"``) and a changed
config is another run; name = the unit (``vit-micro-fdb``, ``finetune/vit-micro-fdb/digits``); config = the unit's
resolved spec. Files: ``{checkpoint dir}/wandb/offline-run-<time>-<id>/`` (one per attempt), beside TensorBoard's
events, outside every published output and kept across reruns. Steps that a resumed run redoes after its checkpoint
were already sent by the attempt that died: ``wandb/logged_step.json`` remembers the last step sent, and they are not
sent twice (W&B keeps one value per step; TensorBoard keeps the redone values, train/llm/loop.py purges).

The sink that imports ``wandb`` is train/wandb_log.py, loaded by the run log only when tracking is on (the import takes
about a second); a missing wandb is an error naming the key that turned tracking on, raised by the launcher
(``check_available``) before any rank starts. This module imports nothing of W&B: the study loader uses it.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from pretrainflow.errors import ConfigError
from pretrainflow.io import config_hash
from pretrainflow.spec_fields import build, one_of, string, to_dict

MODES = ("offline", "online", "disabled")
ENV_MODE = "PRETRAINFLOW_WANDB"  # the site's switch (profiles: site_env); overrides tracking.wandb.mode
ENV_SECTION = "PRETRAINFLOW_TRACKING"  # the study's resolved section, JSON, exported by the workflow (common.smk)
DEFAULT_PROJECT = "pretrainflow"  # the project of a run whose --tracking names none (a study names its own)
_PROJECT_FORBIDDEN = set("/\\#?%:")  # W&B refuses these in project names (128 characters at most)
_TAG_CHARS = 64  # W&B's limit on one tag
# The help of every training command's --tracking option (train/vit/cli.py, train/llm/cli.py)
OPTION_HELP = (
    f"the study's resolved tracking section, JSON: W&B off when absent unless ${ENV_MODE} (offline|online|disabled) "
    "turns it on; never part of the run's config hash"
)


@dataclass(kw_only=True, slots=True)
class WandbSpec:
    """``tracking.wandb``: where a study's runs are logged in Weights & Biases."""

    mode: str = "offline"  # offline (files, `wandb sync` later) | online (needs network and a login) | disabled
    project: str | None = None  # default: the study's name
    entity: str | None = None  # the W&B user or team; default: the logged-in user's default entity
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        one_of("mode", self.mode, MODES)
        if self.project is not None:
            string("project", self.project)
            if len(self.project) > 128 or _PROJECT_FORBIDDEN & set(self.project):
                raise ValueError(f"project: expected at most 128 characters and none of /\\#?%:, got {self.project!r}")
        if self.entity is not None:
            string("entity", self.entity)
        if not isinstance(self.tags, list):
            raise ValueError(f"tags: expected a list of strings, got {self.tags!r}")
        for index, tag in enumerate(self.tags):
            string(f"tags[{index}]", tag)
            if len(tag) > _TAG_CHARS:
                raise ValueError(f"tags[{index}]: expected at most {_TAG_CHARS} characters, got {tag!r}")
        if len(set(self.tags)) != len(self.tags):
            raise ValueError(f"tags: expected distinct tags, got {self.tags!r}")


@dataclass(kw_only=True, slots=True)
class TrackingSpec:
    """The study's ``tracking`` section: how its training runs are observed (never hashed with them)."""

    wandb: WandbSpec | None = None  # None: no W&B unless PRETRAINFLOW_WANDB turns it on


def check_tracking(section: Any, study: str, where: str = "tracking") -> dict[str, Any]:
    """The resolved ``tracking`` section of study ``study`` (what the rules pass as ``--tracking``).

    No section: W&B disabled (the site may still turn it on); ``wandb: {}``: offline. The project defaults to the
    study's name. Errors name the key path.

    >>> check_tracking({"wandb": {}}, "demo")["wandb"]
    {'mode': 'offline', 'project': 'demo', 'entity': None, 'tags': []}
    >>> check_tracking(None, "demo")["wandb"]["mode"]
    'disabled'
    """
    spec = build(TrackingSpec, {} if section is None else section, where, nested={"wandb": WandbSpec})
    wandb = spec.wandb or WandbSpec(mode="disabled")
    if wandb.project is None:
        wandb.project = study
    return to_dict(TrackingSpec(wandb=wandb))


def tracking_option(value: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The ``--tracking`` JSON a training command runs with: the option when given, else the study's section the
    workflow exported (ENV_SECTION), else None (W&B off unless the site turns it on).

    >>> tracking_option(None, env={ENV_SECTION: '{"wandb": null}'}), tracking_option('{}', env={ENV_SECTION: "x"})
    ('{"wandb": null}', '{}')
    """
    env = os.environ if env is None else env
    return value if value is not None else (env.get(ENV_SECTION) or None)


def parse_option(text: str | None, where: str = "--tracking") -> TrackingSpec:
    """``--tracking`` JSON of a training command as a TrackingSpec (none given: W&B off unless the site turns it on)."""
    if text is None:
        return TrackingSpec()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{where}: not valid JSON ({err})") from err
    return build(TrackingSpec, data, where, nested={"wandb": WandbSpec})


def effective_wandb(spec: TrackingSpec | None, env: Mapping[str, str] | None = None) -> tuple[WandbSpec, str] | None:
    """(the W&B settings a run uses, the key that turned them on), or None when W&B is off for this run.

    ``PRETRAINFLOW_WANDB`` in ``env`` (default os.environ) overrides the mode the study gives.
    """
    env = os.environ if env is None else env
    wandb = (spec.wandb if spec is not None else None) or WandbSpec(mode="disabled")
    source = "tracking.wandb.mode"
    override = env.get(ENV_MODE, "").strip()
    if override:
        if override not in MODES:
            raise ConfigError(f"{ENV_MODE}: expected one of {list(MODES)}, got {override!r}")
        wandb, source = replace(wandb, mode=override), f"{ENV_MODE}={override}"
    return None if wandb.mode == "disabled" else (wandb, source)


def check_available(spec: TrackingSpec | None, env: Mapping[str, str] | None = None) -> None:
    """ConfigError naming the key that turned W&B on when the wandb package is missing (the launcher calls this
    before any rank starts); nothing is imported."""
    found = effective_wandb(spec, env)
    if found is not None and importlib.util.find_spec("wandb") is None:
        missing_wandb(found[1], found[0].mode)


def missing_wandb(source: str, mode: str) -> NoReturn:
    raise ConfigError(
        f"{source}: W&B tracking ({mode}) needs the wandb package, which is not installed here; "
        "`pip install wandb` (pyproject pins it), or set tracking.wandb.mode: disabled"
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class TrackedRun:
    """One unit's W&B run: settings, identity and where its files go (train/runlog.py opens it on rank 0)."""

    wandb: WandbSpec
    source: str  # what turned tracking on (error messages)
    run_id: str  # config hash[:12] = the checkpoint directory's name
    name: str  # the unit
    job_type: str  # pretrain | finetune | sft
    config: dict[str, Any]
    directory: Path  # the unit's checkpoint directory; W&B writes {directory}/wandb/


def tracked_run(
    spec: TrackingSpec | None,
    *,
    unit: str,
    config: dict[str, Any],
    directory: Path | None,
    job_type: str,
    env: Mapping[str, str] | None = None,
) -> TrackedRun | None:
    """The W&B run of a unit whose resolved spec is ``config``, or None when tracking is off for it."""
    found = effective_wandb(spec, env)
    if found is None:
        return None
    wandb, source = found
    if directory is None:
        raise ConfigError(
            f"{source}: W&B files live beside the run's checkpoints, and this run has none; pass --checkpoints"
        )
    return TrackedRun(
        wandb=wandb if wandb.project else replace(wandb, project=DEFAULT_PROJECT),
        source=source,
        run_id=config_hash(config)[:12],
        name=unit,
        job_type=job_type,
        config=config,
        directory=Path(directory),
    )


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The scalars of one metrics row as TensorBoard and W&B both get them: every number but the step, as train/<key>.

    >>> scalars({"step": 4, "loss": 2.5, "lr": 1e-3, "note": "x"})
    {'train/loss': 2.5, 'train/lr': 0.001}
    """
    return {f"train/{key}": value for key, value in row.items() if key != "step" and isinstance(value, int | float)}
