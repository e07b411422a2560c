"""Validate a study against the JSON schemas in workflow/schemas/, with errors that name the key path.

Keys of the old run vocabulary (``batch.accumulation``, ``log_every``, ``optimizer.min_lr``, ...) are looked up in
``pretrainflow.train.spec.RENAMED_KEYS`` first, so the message names the new key instead of "unknown key(s)".

jsonschema and referencing are imported when a study is validated, not when this module is: the stage commands
(``pretrain-vit``, ``pretrain-llm``, ...) take resolved specs and run where only the training stack is installed
(e.g. a GPU image without them); ``pretrainflow check`` there says what to install instead of a traceback.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pretrainflow.errors import ConfigError, PretrainflowError
from pretrainflow.train.spec import renamed_key

if TYPE_CHECKING:
    import jsonschema
    import referencing

# The schemas live in workflow/schemas/ (Snakemake's validate() reads them there). study/schemas is a symlink to that
# folder in the source tree and a copy of it in a built wheel (pyproject's package-data), so one path serves both.
SCHEMA_DIR = Path(__file__).parent / "schemas"
STUDY_SCHEMA = "config.schema.yaml"


def _schema_libraries():
    """(jsonschema, referencing), or a PretrainflowError that names what to install."""
    try:
        import jsonschema
        import referencing
    except ImportError as err:
        raise PretrainflowError(
            f"validating a study needs jsonschema and referencing ({err}); install them with "
            "`pip install jsonschema referencing` (the stage commands, which take resolved --spec JSON, do not)"
        ) from err
    return jsonschema, referencing


@functools.cache
def _registry(schema_dir: Path) -> referencing.Registry:
    _jsonschema, referencing = _schema_libraries()
    if not (schema_dir / STUDY_SCHEMA).is_file():
        # a broken install or a source tree without the workflow/schemas link: one line, not a referencing traceback
        raise PretrainflowError(
            f"study schemas not found: {schema_dir / STUDY_SCHEMA} is missing (the schemas ship in the package as "
            "pretrainflow/study/schemas, a link to workflow/schemas in the source tree); reinstall pretrainflow"
        )
    resources = []
    for path in sorted(schema_dir.glob("*.schema.yaml")):
        contents = yaml.safe_load(path.read_text())
        resources.append((path.name, referencing.Resource.from_contents(contents)))
    return referencing.Registry().with_resources(resources)


def key_path(parts: Any) -> str:
    """['datasets', 'fdb', 'image_size'] -> 'datasets.fdb.image_size' (list indices as [i])."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<study>"


def _message(error: jsonschema.ValidationError) -> str:
    where = key_path(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"{where}: unknown key(s) {extra}; expected one of {allowed}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator == "enum":
        return f"{where}: got {error.instance!r}, expected one of {error.validator_value}"
    if error.validator == "pattern" or error.validator == "propertyNames":
        return f"{where}: {error.message} (names use lower case letters, digits, '-' and '_')"
    return f"{where}: {error.message}"


def check_renamed_keys(study: dict[str, Any]) -> None:
    """ConfigError ``pretrain.<run>.<old key>: moved to ...`` for a run or the fine-tune recipe in the old vocabulary."""
    places: list[tuple[str, Any]] = []
    if isinstance(study.get("pretrain"), dict):
        places += [(f"pretrain.{name}", run) for name, run in study["pretrain"].items()]
    if isinstance(study.get("finetune"), dict):
        places.append(("finetune.recipe", study["finetune"].get("recipe")))
    for where, section in places:
        hint = renamed_key(section)
        if hint:
            raise ConfigError(f"{where}.{hint}")


def validate_study_schema(study: dict[str, Any], schema_dir: Path = SCHEMA_DIR) -> None:
    """Raise ConfigError for the most relevant schema violation (all of them are listed after the first)."""
    check_renamed_keys(study)
    jsonschema, _referencing = _schema_libraries()
    registry = _registry(schema_dir)
    schema = registry.contents(STUDY_SCHEMA)
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(study), key=jsonschema.exceptions.relevance)
    if not errors:
        return
    best = jsonschema.exceptions.best_match(errors)
    others = [_message(err) for err in errors if err is not best][:5]
    more = ("\n  also: " + "\n  also: ".join(others)) if others else ""
    raise ConfigError(_message(best) + more)
