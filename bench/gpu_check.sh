#!/usr/bin/env bash
# One-command first contact with a GPU machine (the device tool's H200): about 8 minutes, each step under its own
# timeout, PASS / FAIL / SKIP recorded per step, a summary table printed last.
#
#   here, once:   bash scripts/gpu_wheels.sh --snakemake           # wheels/ (git-ignored, about 31 MiB)
#   device tool:  run(command="bash bench/gpu_check.sh", carry=["wheels"], timeout_s=600)
#   rerun a few:  run(command="GPU_CHECK_STEPS='install llm_1b' bash bench/gpu_check.sh", carry=["wheels"], ...)
#   dry run here: GPU_CHECK_INSTALL=0 GPU_CHECK_CPU_STUDY=1 PYTHON=.venv/bin/python OUT=/tmp/gpu_check \
#                 bash bench/gpu_check.sh                          # no install into .venv; CUDA steps SKIP
#
# Writes $OUT/gpu_check.log (everything printed), $OUT/gpu_check.json (steps + figures) and $OUT/gpu_check.md (the
# table). Steps, in order (the budget GPU_CHECK_BUDGET_S, default 480 s, is shared: a step gets what is left):
#   install      pip install --no-index --no-deps wheels/*.whl into the image's Python, src/ on the path by a .pth
#                file (never `make` / `pip install -e .` there: the torch pin would reach for the network); versions
#   gpu_tests    the `gpu`-marked tests outside tests/vit (tests/vit pins DeepSpeed's CPU accelerator per process)
#   vit_base     ViT-B/16, 224 px, bf16, DeepSpeed ZeRO-2, one GPU: images/s and MFU (bench/bench_vit.py)
#   llm_1b       llama_1b (Llama-shaped ~1.2B GPT) through megatron-core, seq 2048, micro 2, TP 1 (bench/bench_llm.py)
#   fdb_224/362  the torch FractalDB renderer on CUDA at 224 and 362 px (bench/bench_fractaldb.py --torch-only)
#   vit_tiny     the ViT-Tiny training step (the FractalDB-1k recipe: micro 128, bf16, ZeRO-1) to set those against
#   study        config/test.yaml with gpus_per_node 1 end to end through Snakemake (carried); without Snakemake,
#                the ViT chain's stage commands directly (datasets build -> pretrain-vit -> finetune -> evaluate)
# Steps that need CUDA report SKIP on a machine without it (exit 77), so this script also dry-runs on a CPU box.
set -u

REPO=$(cd "$(dirname "$0")/.." && pwd)
SELF="$REPO/bench/gpu_check.sh"
PY=${PYTHON:-python3}
[[ $PY == */* && $PY != /* ]] && PY="$PWD/$PY"  # absolute: steps run Python from other directories too
OUT=${OUT:-$REPO/gpu_check_out}
WORK=${GPU_CHECK_WORK:-/tmp/gpu_check_work}
BUDGET=${GPU_CHECK_BUDGET_S:-480}
# A rerun of some steps only (a fresh machine needs install first): GPU_CHECK_STEPS="install llm_1b study"
STEPS=${GPU_CHECK_STEPS:-install gpu_tests vit_base llm_1b fdb_224 fdb_362 vit_tiny study}
export REPO PY OUT WORK
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore GIT_PYTHON_REFRESH=quiet
export PATH="$WORK/bin:$PATH"  # the `pretrainflow` shim that Snakemake's rules call (see step_install)
cd "$REPO" || exit 1

need_cuda() {  # HAVE_CUDA is probed once by the driver (importing torch per step would cost seconds each)
    if [[ ${HAVE_CUDA:-0} != 1 ]]; then
        echo "no CUDA device here: skipped"
        exit 77
    fi
}

step_install() {
    if [[ ${GPU_CHECK_INSTALL:-1} == 1 ]]; then
        compgen -G "wheels/*.whl" >/dev/null || {
            echo "no wheels/*.whl: run scripts/gpu_wheels.sh --snakemake here and carry wheels"
            exit 1
        }
        "$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
            wheels/*.whl || exit 1
        local site
        site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || exit 1
        echo "$REPO/src" >"$site/pretrainflow-src.pth" && echo "src/ on the path: $site/pretrainflow-src.pth"
    fi
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PY" - <<'EOF'
import importlib, json, os, sys
import torch
figures = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
           "cuda_available": torch.cuda.is_available(),
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
for name in ("deepspeed", "megatron.core", "transformer_engine", "apex", "pydantic", "jsonschema", "snakemake",
             "pretrainflow"):
    try:
        module = importlib.import_module(name)
        figures[name] = getattr(module, "__version__", "present")
    except Exception as err:  # noqa: BLE001 - a missing optional package is a finding, not a failure
        figures[name] = f"missing ({type(err).__name__}: {str(err)[:200]})"
print(json.dumps(figures, indent=1))
json.dump(figures, open(os.path.join(os.environ["WORK"], "versions.json"), "w"))
required = ("deepspeed", "megatron.core", "pydantic", "jsonschema", "pretrainflow")
sys.exit(1 if any(str(figures[n]).startswith("missing") for n in required) else 0)
EOF
}

step_gpu_tests() {
    need_cuda
    # tests/vit is left out: its loop tests pin DS_ACCELERATOR=cpu, which DeepSpeed caches once per process.
    mapfile -t files < <(grep -rl "mark.gpu" tests --include='*.py' | grep -v '^tests/vit/' | sort)
    echo "gpu-marked test files: ${files[*]}"
    "$PY" -m pytest -q -m gpu -p no:cacheprovider --junitxml="$WORK/gpu_tests.xml" "${files[@]}"
}

step_vit_base() {
    need_cuda
    "$PY" bench/bench_vit.py --model vit_base --micro 128 --steps 40 --repeats 1 --zero 2 --precision bf16 \
        --no-plain --workers 6 --log-every 10 --json "$WORK/vit_base.json"
}

step_llm_1b() {
    need_cuda
    # bench_llm prints one table row per configuration (no JSON flag): keep the output and parse the row.
    "$PY" bench/bench_llm.py --model llama_1b --seq-length 2048 --micro 2 --tp 1 --vocab 32000 --steps 5 \
        --warmup 2 | tee "$WORK/llm.txt"
    local rc=${PIPESTATUS[0]}
    "$PY" - <<'EOF'
import json, os
keys = ["model", "tp", "ranks", "seq", "batch", "ms_per_step", "tokens_per_s", "mfu", "device"]
for line in open(os.path.join(os.environ["WORK"], "llm.txt")):
    parts = line.split(None, 8)
    if parts and parts[0] == "llama_1b" and len(parts) == 9:
        json.dump(dict(zip(keys, [p.strip() for p in parts])), open(os.path.join(os.environ["WORK"], "llm.json"), "w"))
EOF
    return "$rc"
}

step_fdb() {  # $1: image size
    need_cuda
    # 16 categories x 100 instances, 200k points, patch draw: one chaos-game batch, then 1,600 images painted.
    "$PY" bench/bench_fractaldb.py --torch-only --classes 16 --instances 100 --size "$1" --torch-device cuda \
        --json "$WORK/fdb$1.json"
}
step_fdb_224() { step_fdb 224; }
step_fdb_362() { step_fdb 362; }

step_vit_tiny() {
    need_cuda
    "$PY" bench/bench_vit.py --model vit_tiny --micro 128 --steps 40 --repeats 1 --zero 1 --precision bf16 \
        --no-plain --workers 6 --log-every 10 --json "$WORK/vit_tiny.json"
}

step_study() {
    [[ ${GPU_CHECK_CPU_STUDY:-0} == 1 ]] || need_cuda  # 1: also on a CPU box (dry runs of this script)
    local study="$WORK/study"
    rm -rf "$study" && mkdir -p "$study"
    "$PY" - "$study/gpu_study.yaml" <<'EOF' || exit 1
import sys, yaml
study = yaml.safe_load(open("config/test.yaml"))
gpu = {"nodes": 1, "gpus_per_node": 1, "cpu_ranks": 1}
study["pretrain"]["vit-test-fdb"]["devices"] = gpu  # global 16 = micro 8 x accumulation 2 x 1 GPU
study["pretrain"]["gpt-test"]["devices"] = gpu
study["finetune"]["recipe"]["devices"] = gpu
yaml.safe_dump(study, open(sys.argv[1], "w"), sort_keys=False)
EOF
    local mode=snakemake
    if [[ ${GPU_CHECK_NO_SNAKEMAKE:-0} != 1 ]] && "$PY" -c 'import snakemake' 2>/dev/null; then
        "$PY" -m snakemake --snakefile "$REPO/Snakefile" --directory "$study" --configfile "$study/gpu_study.yaml" \
            --cores 12 --quiet rules || exit 1
    else
        mode="stage commands (ViT chain)"
        echo "snakemake not importable: running the ViT chain's stage commands directly"
        (cd "$study" && "$PY" - "$study/gpu_study.yaml" <<'EOF') || exit 1
import json, subprocess, sys
from pretrainflow.study.load import load_study
study = load_study(sys.argv[1])
def run(*argv):
    print("+ pretrainflow", " ".join(a if len(a) < 60 else a[:57] + "..." for a in argv), flush=True)
    subprocess.run([sys.executable, "-m", "pretrainflow.cli", *argv], check=True)
for name in study.datasets:
    run("datasets", "build", "--spec", study.spec_json("datasets", name), "--out", f"results/datasets/{name}")
for name in study.runs_of_kind("vit"):
    run("pretrain-vit", "--spec", study.spec_json("runs", name), "--dataset",
        f"results/datasets/{study.runs[name]['dataset']}", "--out", f"results/pretrain/{name}",
        "--checkpoints", "results/checkpoints")
for run_id, task in study.finetunes:
    spec = study.spec_json("finetunes", (run_id, task))
    pretrained = ["--pretrained", f"results/pretrain/{run_id}/model.safetensors"]
    if json.loads(spec)["source"] == "scratch":
        pretrained = []
    run("finetune", "--spec", spec, *pretrained, "--out", f"results/finetune/{run_id}/{task}")
    run("evaluate", "--spec", spec, "--finetuned", f"results/finetune/{run_id}/{task}",
        "--out", f"results/rows/{run_id}/{task}.parquet")
EOF
    fi
    "$PY" - "$study" "$mode" <<'EOF'
import glob, json, os, sys
import pandas as pd
import yaml
from pretrainflow.study import layout
root = sys.argv[1]
summary = layout.study_path(layout.SUMMARY, yaml.safe_load(open(f"{root}/gpu_study.yaml"))["study"])
figures = {"mode": sys.argv[2], "summary_parquet": os.path.exists(f"{root}/{summary}")}
for path in sorted(glob.glob(f"{root}/results/pretrain/*/summary.json")):
    s = json.load(open(path))
    keys = ("devices", "world_size", "final_loss", "throughput", "mfu")
    figures[os.path.basename(os.path.dirname(path))] = {k: s.get(k) for k in keys}
rows = sorted(glob.glob(f"{root}/results/rows/*/*.parquet"))
if rows:
    table = pd.concat([pd.read_parquet(p) for p in rows])
    top1 = table[table["metric"] == "top1"] if "metric" in table else table.iloc[:0]
    figures["top1"] = {f"{r.run_id}/{r.task}": round(float(r.value), 2) for r in top1.itertuples()}
print(json.dumps(figures, indent=1, default=str))
json.dump(figures, open(os.path.join(os.environ["WORK"], "study.json"), "w"), default=str)
EOF
}

# --- driver --------------------------------------------------------------------------------------------------------
if [[ ${1:-} == --step ]]; then  # one step, in its own process under `timeout` (see run_step)
    "step_$2"
    exit $?
fi

mkdir -p "$OUT" "$WORK/bin" || exit 1
rm -f "$WORK"/*.json "$WORK"/*.txt "$WORK"/*.xml "$WORK/steps.tsv"
printf '#!/bin/sh\nexec "%s" -m pretrainflow.cli "$@"\n' "$PY" >"$WORK/bin/pretrainflow"
chmod +x "$WORK/bin/pretrainflow"
exec > >(tee "$OUT/gpu_check.log") 2>&1
START=$SECONDS
echo "gpu_check: $(date -u +%FT%TZ) on $(hostname), python $PY, budget ${BUDGET}s, out $OUT, work $WORK"
HAVE_CUDA=$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)
export HAVE_CUDA

summarise() {  # steps.tsv + the figures of the steps -> $OUT/gpu_check.json and $OUT/gpu_check.md
    "$PY" - <<'EOF'
import glob, json, os
work, out = os.environ["WORK"], os.environ["OUT"]
steps = [dict(zip(["step", "status", "seconds", "note"], line.rstrip("\n").split("\t")))
         for line in open(os.path.join(work, "steps.tsv"))]
figures = {os.path.basename(p)[:-5]: json.load(open(p)) for p in sorted(glob.glob(os.path.join(work, "*.json")))}
xml = os.path.join(work, "gpu_tests.xml")
if os.path.exists(xml):
    import xml.etree.ElementTree as ET
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    figures["gpu_tests"] = {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped", "time")}
fdb, tiny = figures.get("fdb362"), figures.get("vit_tiny")
if fdb and tiny:  # can one GPU render FractalDB on the fly as fast as it trains ViT-Tiny?
    per_image = fdb["paint_seconds"] / fdb["images"]
    full = fdb["classes"] * 1000  # 1,000 instances per category share one chaos-game batch in the real dataset
    figures["fdb_vs_vit_tiny"] = {
        "render_images_per_s_362px": fdb["images_per_s"],
        "render_images_per_s_362px_at_1000_instances": full / (fdb["chaos_game_seconds"] + full * per_image),
        "vit_tiny_train_images_per_s": tiny["results"][-1]["steady_images_per_s"],  # the DeepSpeed loop's row
    }
json.dump({"steps": steps, "figures": figures}, open(os.path.join(out, "gpu_check.json"), "w"), indent=1)
lines = ["| step | status | seconds | note |", "| --- | --- | --- | --- |"]
lines += [f"| {s['step']} | {s['status']} | {s['seconds']} | {s['note']} |" for s in steps]
for name in ("vit_base", "vit_tiny"):
    if name in figures:
        r = figures[name]["results"][-1]  # the DeepSpeed loop (a plain loop, when run, comes first)
        mfu = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f} %"
        steady, overall = r["steady_images_per_s"], r["images_per_s"]
        lines.append(f"\n{name}: {steady:.0f} images/s steady ({overall:.0f} overall), MFU {mfu}")
if "llm" in figures:
    lines.append(f"\nllama_1b: {figures['llm']}")
for size in ("224", "362"):
    if f"fdb{size}" in figures:
        f = figures[f"fdb{size}"]
        lines.append(f"\nFractalDB torch renderer {size} px: {f['images_per_s']:.1f} images/s (chaos games "
                     f"{f['chaos_game_seconds']:.1f} s, painting {f['paint_seconds']:.1f} s for {f['images']})")
if "fdb_vs_vit_tiny" in figures:
    lines.append(f"\n{json.dumps(figures['fdb_vs_vit_tiny'])}")
open(os.path.join(out, "gpu_check.md"), "w").write("\n".join(lines) + "\n")
EOF
}

run_step() {  # name, timeout in seconds
    local name=$1 limit=$2 left rc status note="" t0
    [[ " $STEPS " == *" $name "* ]] || return 0  # not asked for this time (GPU_CHECK_STEPS)
    left=$((BUDGET - (SECONDS - START)))
    if ((left < 20)); then
        printf '%s\tSKIP\t0\tbudget spent\n' "$name" >>"$WORK/steps.tsv"
        echo "=== [$name] SKIP: budget spent"
        return
    fi
    ((limit > left)) && limit=$left
    echo
    echo "=== [$name] timeout ${limit}s, $((SECONDS - START))s into the check"
    t0=$SECONDS
    timeout --kill-after=10 "$limit" bash "$SELF" --step "$name"
    rc=$?
    case $rc in
        0) status=PASS ;;
        77) status=SKIP note="no CUDA" ;;
        124 | 137) status=FAIL note="timeout after ${limit}s" ;;
        *) status=FAIL note="exit $rc" ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - t0))" "$note" >>"$WORK/steps.tsv"
    echo "=== [$name] $status in $((SECONDS - t0))s ${note}"
    summarise || echo "(summary not written)"
}

run_step install 90
run_step gpu_tests 150
run_step vit_base 75
run_step llm_1b 120
run_step fdb_224 45
run_step fdb_362 45
run_step vit_tiny 50
run_step study 200  # whatever the budget leaves, at most this

echo
echo "=== summary ($((SECONDS - START))s of ${BUDGET}s)"
column -t -s $'\t' "$WORK/steps.tsv" 2>/dev/null || cat "$WORK/steps.tsv"
[[ -f $OUT/gpu_check.md ]] && sed -n '/^$/,$p' "$OUT/gpu_check.md"
! grep -q $'\tFAIL\t' "$WORK/steps.tsv"
