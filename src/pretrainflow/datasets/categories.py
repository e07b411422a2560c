"""categories.parquet: the category-search output, stamped with the resolved spec it was searched for.

Written by the search step (build.py, ``datasets search``) and read back by the render and manifest steps, which refuse
a file searched for another spec. Both sides live here so that build.py and manifest.py share it without importing
each other.
"""

from __future__ import annotations

import os

from pretrainflow.datasets.generic_spec import DatasetSpec
from pretrainflow.datasets.spec import resolved_dict
from pretrainflow.errors import PretrainflowError
from pretrainflow.io import atomic_path, canonical_json

SPEC_METADATA_KEY = b"pretrainflow.spec"


def write_categories(df, ds: DatasetSpec, params, out: str | os.PathLike) -> None:
    """categories.parquet, atomically, with the resolved spec in the Parquet schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = {**(table.schema.metadata or {}), SPEC_METADATA_KEY: canonical_json(resolved_dict(ds, params))}
    with atomic_path(out) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)


def read_categories(path: str | os.PathLike, expected_spec: dict | None = None):
    """The categories DataFrame; with ``expected_spec`` (a resolved spec), check that it was searched for that spec."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as err:
        raise PretrainflowError(f"{path}: cannot read the categories Parquet file ({err})") from err
    if expected_spec is not None:
        made_for = (table.schema.metadata or {}).get(SPEC_METADATA_KEY, b"").decode()
        if made_for != canonical_json(expected_spec):
            raise PretrainflowError(
                f"{path}: searched for another dataset spec than {expected_spec['name']!r} has now; "
                "run `datasets search` again"
            )
    return table.to_pandas()
