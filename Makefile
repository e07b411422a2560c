# Two commands do all the set-up on a fresh machine (README "Quick start"):
#   make demo   create .venv, install everything, run the default study with plain `snakemake`, print the table
#   make test   the same set-up, the lint, start the local test schedulers when possible (root), run the whole test suite
#   make lint   ruff (check + format, settings in pyproject.toml) and `snakemake --lint`; seconds, before any test
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# Rules call `pretrainflow ...` and `snakemake` from the environment: put the venv first on PATH for every recipe.
export PATH := $(BIN):$(PATH)
STAMP := $(VENV)/.installed

.PHONY: env demo test lint lmod mpi bench clean-results

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# CPU torch first and pinned: any requirement that admits a newer torch would download a multi-GB CUDA build.
	$(BIN)/pip install torch==2.13.0
	# DeepSpeed is an sdist: build it against the torch above (no build isolation) and without its CUDA ops.
	DS_BUILD_OPS=0 $(BIN)/pip install --no-build-isolation deepspeed==0.19.8
	$(BIN)/pip install -e ".[dev]"
	# timm for the tests that load our exports into the real library; --no-deps: its torchvision requirement would pull
	# another torch (tests/vit/timm_standin.py stands in for the torchvision import).
	$(BIN)/pip install --no-deps timm==1.0.31
	# Make `snakemake --profile abci|tsubame|slurm` resolve by bare name (links into ~/.config/snakemake).
	$(BIN)/pretrainflow profiles install || echo "note: site profiles not linked (pretrainflow profiles install failed)"
	touch $@

env: $(STAMP)

demo: env
	$(BIN)/snakemake
	$(BIN)/pretrainflow results --study default

# Lint first: a style or workflow mistake fails in seconds instead of after the whole suite.
test: lint lmod mpi
	bash scripts/start_schedulers.sh || echo "note: local Slurm / Grid Engine not started; their tests will skip"
	# Two workers (pytest-xdist), a module per worker at a time, the scheduler tests as one (tests/conftest.py): much of
	# the suite waits on schedulers, subprocess start-up and polling rather than on the CPU.
	$(BIN)/pytest -n 2 --dist loadfile

# Lmod (Debian's package, as root) for the real `envmodules:` test (tests/spine/test_envmodules_lmod.py); it skips without.
LMOD_INIT := /usr/share/lmod/lmod/init/bash
lmod:
	@test -e $(LMOD_INIT) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { apt-get install -y -qq lmod >/dev/null || { apt-get update -qq && apt-get install -y -qq lmod >/dev/null; }; }; } \
	  || echo "note: Lmod not installed (needs root and apt-get); the envmodules test will skip"

# Open MPI (Debian's openmpi-bin, as root) for the two-host launch tests (tests/launch/test_two_node_netns.py: two
# network namespaces, mpirun between them); they skip without root, and fail as root when mpirun is missing.
mpi:
	@command -v mpirun >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { apt-get install -y -qq openmpi-bin >/dev/null || { apt-get update -qq && apt-get install -y -qq openmpi-bin >/dev/null; }; }; } \
	  || echo "note: Open MPI not installed (needs root and apt-get); the two-host launch tests will skip"

# Every tracked .py file lives in src, tests or bench; `ruff format --check` on "." would also format README code blocks.
lint: env
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/snakemake --lint

bench: env
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean-results:
	rm -rf results .snakemake
