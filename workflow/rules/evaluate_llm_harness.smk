# Benchmarks of every LLM run through lm-evaluation-harness, offline (pretrainflow.benchmarks; study section llm_eval):
# the shipped tasks are built once from this Python's stdlib docstrings, then each run's Hugging Face export is scored
# on the study's tasks -> results/rows/{run}/harness.parquet (every task's metrics with their stderr). Pretrained and SFT
# runs alike (an SFT run's summary is under results/sft/{run}: llm_run_file, pretrain_llm.smk).


rule build_benchmarks:
    output:
        data="results/benchmarks/tasks/pydoc.jsonl",
        manifest="results/benchmarks/tasks/manifest.json",
    params:
        out=subpath(output.manifest, parent=True),
    log:
        "results/logs/build_benchmarks.log",
    resources:
        cpus_per_task=res("build_benchmarks", "cpus_per_task"),
        mem_mb=res("build_benchmarks", "mem_mb"),
        runtime=res("build_benchmarks", "runtime"),
    conda:
        "../../envs/llm.yaml"
    shell:
        "pretrainflow benchmarks build --out {params.out:q} > {log:q} 2>&1"


rule evaluate_llm_harness:
    wildcard_constraints:
        run=_one_of(STUDY.llm_evals),
    input:
        model="results/export/{run}-hf/model.safetensors",
        config="results/export/{run}-hf/config.json",
        summary=llm_run_file("summary.json"),
        tasks=rules.build_benchmarks.output.manifest,
    output:
        "results/rows/{run}/harness.parquet",
    params:
        spec=lambda wildcards: STUDY.spec_json("llm_evals", wildcards.run),
        model=subpath(input.model, parent=True),
        tasks=subpath(input.tasks, parent=True),
    log:
        "results/logs/evaluate_llm_harness/{run}.log",
    benchmark:
        "results/benchmarks/jobs/evaluate_llm_harness/{run}.tsv"
    resources:
        nodes=res("evaluate_llm_harness", "nodes"),
        gpus=res("evaluate_llm_harness", "gpus"),
        gres=res("evaluate_llm_harness", "gres"),  # Slurm plugin only (profiles/slurm): GPUs per node
        cpus_per_task=res("evaluate_llm_harness", "cpus_per_task"),
        mem_mb=res("evaluate_llm_harness", "mem_mb"),
        runtime=res("evaluate_llm_harness", "runtime"),
    envmodules:
        *SITE_MODULES,
    conda:
        "../../envs/llm.yaml"
    shell:
        "pretrainflow benchmarks evaluate --spec {params.spec:q} --model {params.model:q} --tasks-dir {params.tasks:q}"
        " --summary {input.summary:q} --out {output:q} > {log:q} 2>&1"
