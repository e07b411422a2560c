#!/usr/bin/env bash
# `snakemake --sdm conda` runs this once inside each environment it creates (as <family>.post-deploy.sh, linked here,
# from Snakemake's working directory, right after `conda env create`): install this checkout's pretrainflow into the
# environment, editable (the rules' `pretrainflow ...` runs the checkout's code, edits included) and without
# dependencies (the environment file pins the ones its stage family needs; see its header).
# The checkout is the working directory or the first folder above it that holds one (`--directory runs/<study>`);
# set PRETRAINFLOW_CHECKOUT where Snakemake runs outside the checkout. An environment is tied to the checkout it was
# made from: give each checkout its own --conda-prefix (the default, .snakemake/conda, already is).
set -euo pipefail
checkout=${PRETRAINFLOW_CHECKOUT:-$PWD}
until [ -f "$checkout/pyproject.toml" ] && [ -d "$checkout/src/pretrainflow" ]; do
    if [ "$checkout" = / ]; then
        echo "post-deploy: no pretrainflow checkout at or above ${PRETRAINFLOW_CHECKOUT:-$PWD}; set PRETRAINFLOW_CHECKOUT" >&2
        exit 1
    fi
    checkout=$(dirname "$checkout")
done
python -m pip install --no-deps --editable "$checkout"
