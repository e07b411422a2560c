"""The study's ``llm_eval`` section (schema workflow/schemas/llm_eval.schema.yaml): which lm-evaluation-harness tasks
every LLM run is evaluated on, and how.

The config loader calls ``check_llm_eval(section, "llm_eval")`` (defaults filled in) and gives every LLM run one
harness spec: the resolved section plus ``run_id`` and the run's ``pretrain_spec``; ``pretrainflow benchmarks
evaluate`` reads it back with ``HarnessSpec.from_dict``.

>>> check_llm_eval({"tasks": ["pydoc_mc"]}, "llm_eval")["batch_size"]
8
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pretrainflow.errors import ConfigError
from pretrainflow.spec_fields import build, integer, positive_int, string, to_dict

# lm-eval task, group and tag names: letters, digits, '_', '-', '.', e.g. pydoc_mc, arc_easy, mmlu_abstract_algebra
TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(kw_only=True, slots=True)
class LLMEvalSection:
    """The ``llm_eval`` section of a study."""

    tasks: list[str]
    batch_size: int = 8  # sequences per forward pass of the harness's hf model
    limit: int | None = None  # first N examples of each task (smoke tests); None = all
    num_fewshot: int | None = None  # None = each task's own setting (0 for the shipped tasks)
    include_path: list[str] = field(default_factory=list)  # directories of the user's own task YAML
    hf_home: str | None = None  # Hugging Face cache holding installed tasks' datasets (HF_HOME); None = environment's
    runtime_minutes: int = 60  # scheduler walltime of one harness job

    def __post_init__(self) -> None:
        if not isinstance(self.tasks, list) or not self.tasks:
            raise ValueError(f"tasks: expected a non-empty list of lm-eval task names, got {self.tasks!r}")
        for index, name in enumerate(self.tasks):
            if not (isinstance(name, str) and TASK_NAME.fullmatch(name)):
                raise ValueError(f"tasks[{index}]: expected a task name matching {TASK_NAME.pattern}, got {name!r}")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks: a task is listed twice in {self.tasks}")
        positive_int("batch_size", self.batch_size)
        if self.limit is not None:
            positive_int("limit", self.limit)
        if self.num_fewshot is not None:
            integer("num_fewshot", self.num_fewshot, low=0)
        if not isinstance(self.include_path, list):
            raise ValueError(f"include_path: expected a list of directories, got {self.include_path!r}")
        for index, path in enumerate(self.include_path):
            string(f"include_path[{index}]", path)
        if self.hf_home is not None:
            string("hf_home", self.hf_home)
        positive_int("runtime_minutes", self.runtime_minutes)

    @classmethod
    def from_dict(cls, data: Any, where: str = "llm_eval") -> LLMEvalSection:
        return build(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def check_llm_eval(section: dict[str, Any], where: str = "llm_eval") -> dict[str, Any]:
    """The section with every default filled in (what is merged into each harness spec and hashed)."""
    return LLMEvalSection.from_dict(section, where).to_dict()


@dataclass(kw_only=True, slots=True)
class HarnessSpec:
    """One harness evaluation: an LLM run (``run_id``, its resolved ``pretrain_spec``) on the section's tasks."""

    run_id: str
    eval: LLMEvalSection
    pretrain_spec: dict[str, Any]

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "harness spec") -> HarnessSpec:
        """Read the spec a rule passes (``{"run_id", "pretrain_spec", **llm_eval section}``)."""
        missing = [key for key in ("run_id", "pretrain_spec") if key not in data]
        if missing:
            raise ConfigError(f"{where}: missing required key(s) {missing}")
        rest = {key: value for key, value in data.items() if key not in ("run_id", "pretrain_spec")}
        return cls(
            run_id=data["run_id"], eval=LLMEvalSection.from_dict(rest, where), pretrain_spec=data["pretrain_spec"]
        )

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, **self.eval.to_dict(), "pretrain_spec": self.pretrain_spec}
