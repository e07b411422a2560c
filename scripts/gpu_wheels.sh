#!/usr/bin/env bash
# Gather, here, the wheels the GPU machine lacks into wheels/ (git-ignored), for bench/gpu_check.sh to install there.
#
#   bash scripts/gpu_wheels.sh              # training + schema stack (DeepSpeed, megatron-core, pydantic, jsonschema)
#   bash scripts/gpu_wheels.sh --snakemake  # ... plus snakemake and the part of its tree the GPU image lacks
#
# The GPU machine (device tool) runs Python 3.12 with torch + CUDA preinstalled and has no network; see
# /work/shared/reference/gpu-first-contact.md for what it has. Versions are read from this checkout's .venv, so the
# GPU machine runs what the tests here ran. Binary wheels are fetched for cp312 / manylinux x86_64
# (`pip download --no-deps --python-version 3.12 --only-binary=:all:`); DeepSpeed has no wheel on PyPI and is built here
# without its CUDA ops (DS_BUILD_OPS=0; the accelerator is detected at run time, no op our paths use needs compiling).
# Everything travels in the device tool's working tree, whose limit is 64 MiB: the script prints the folder's size.
# Idempotent: a wheel already in wheels/ is not fetched again. Needs network to PyPI (pip's ordinary client).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${GPU_WHEELS_DIR:-$repo/wheels}
python=${PYTHON:-$repo/.venv/bin/python}
with_snakemake=0
[[ ${1:-} == --snakemake ]] && with_snakemake=1

# What the GPU image lacks (gpu-first-contact.md, KINDS.md's package list): DeepSpeed's pydantic / hjson, the schema
# stack (jsonschema needs referencing, its specifications and rpds-py), megatron-core, and two small optional ones
# (pytorch-optimizer: LAMB/Shampoo/SAM; submitit: scheduler code paths). typing-extensions >= 4.16 for pydantic-core.
# isal: the shard PNG encoder (1 MB). numba is left out (llvmlite alone is ~40 MB of the 64 MiB carry): the FractalDB
# search falls back to its numpy path without it (datasets/fractaldb_search.py).
core=(hjson pydantic pydantic-core annotated-types typing-inspection typing-extensions megatron-core
      jsonschema jsonschema-specifications referencing rpds-py pytorch-optimizer submitit isal)
# Snakemake's dependency tree minus what the GPU image already holds (jinja2, requests, psutil, pyyaml, wrapt, ...).
snake=(snakemake snakemake-interface-common snakemake-interface-executor-plugins snakemake-interface-logger-plugins
       snakemake-interface-report-plugins snakemake-interface-scheduler-plugins snakemake-interface-storage-plugins
       argparse-dataclass conda-inject configargparse connection-pool docutils dpath fastjsonschema gitdb gitpython
       greenlet humanfriendly immutables jupyter-core nbformat platformdirs pulp smart-open smmap sqlalchemy sqlmodel
       tenacity throttler traitlets yte)
names=("${core[@]}")
((with_snakemake)) && names+=("${snake[@]}")

version_of() { "$python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1"; }

mkdir -p "$dest"
pins=()
for name in "${names[@]}"; do
    pins+=("$name==$(version_of "$name")")
done
echo "gpu_wheels: ${#pins[@]} wheels for cp312 / manylinux x86_64 -> $dest"
# pip matches manylinux_2_N exactly: list the tags binary wheels of these packages use.
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
    manylinux2014_x86_64 manylinux1_x86_64 linux_x86_64; do
    platforms+=(--platform "$tag")
done
have() {  # a wheel of this name and version is already in $dest (names normalised as wheel files spell them)
    local stem
    stem=$(echo "${1%%==*}" | tr 'A-Z-.' 'a-z__')
    compgen -G "$dest/${stem}-${1##*==}-*.whl" >/dev/null || compgen -G "$dest/${stem^}-${1##*==}-*.whl" >/dev/null
}
for pin in "${pins[@]}"; do
    have "$pin" && continue
    # A package published only as an sdist (pure Python, e.g. connection-pool) is built into a wheel here instead.
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" --dest "$dest" "$pin" 2>/dev/null ||
        "$python" -m pip wheel --quiet --no-deps --wheel-dir "$dest" "$pin" 2>&1 | grep -v "^WARNING: Location" || true
    have "$pin" || { echo "gpu_wheels: no wheel for $pin" >&2; exit 1; }
done

ds_version=$(version_of deepspeed)
if ! compgen -G "$dest/deepspeed-$ds_version-*.whl" >/dev/null; then
    echo "gpu_wheels: building deepspeed $ds_version (DS_BUILD_OPS=0, against this .venv's torch)"
    DS_BUILD_OPS=0 "$python" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$dest" \
        "deepspeed==$ds_version"
fi

# One version of each package: two wheels of one name stop `pip install --no-index` on the GPU machine.
dupes=$(ls "$dest"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
if [[ -n $dupes ]]; then
    echo "gpu_wheels: several versions of: $dupes (remove the old ones from $dest)" >&2
    exit 1
fi
ls -l "$dest"/*.whl | awk '{printf "  %8.1f KiB  %s\n", $5 / 1024, $NF}'
total=$(du -cb "$dest"/*.whl | tail -1 | cut -f1)
echo "gpu_wheels: $(ls "$dest"/*.whl | wc -l) wheels, $((total / 1024)) KiB (the device tool carries 64 MiB in all)"
