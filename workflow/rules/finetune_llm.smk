# Supervised fine-tuning of LLM runs (pretrainflow.train.llm; a `pretrain:` LLM run with an `sft` section): instruction
# JSONL -> chat template -> loss on response tokens only, through the same megatron-core loop, checkpoints (resume after
# a walltime kill: exit code 75) and publisher as pretraining, from the run or import named by `init:`.
# The default study's instruction set is built once from the stdlib docstrings the shipped benchmark does not hold out.
# Evaluation, export and harness rows of an SFT run: the LLM rules of pretrain_llm.smk and evaluate_llm_harness.smk.


rule build_instructions:
    output:
        data=f"{layout.INSTRUCTIONS_DIR}/instructions.jsonl",
        manifest=f"{layout.INSTRUCTIONS_DIR}/manifest.json",
    params:
        out=subpath(output.manifest, parent=True),
    log:
        "results/logs/build_instructions.log",
    resources:
        cpus_per_task=res("build_instructions", "cpus_per_task"),
        mem_mb=res("build_instructions", "mem_mb"),
        runtime=res("build_instructions", "runtime"),
    conda:
        "../../envs/llm.yaml"
    shell:
        "pretrainflow benchmarks instructions --out {params.out:q} > {log:q} 2>&1"


rule sft_llm:
    wildcard_constraints:
        run=_one_of(LLM_SFT_RUNS),
    input:
        data=sft_built_data,
        tokenizer=run_corpus_tokenizer,
        init=llm_init_files,
    output:
        model="results/sft/{run}/model.safetensors",
        metrics="results/sft/{run}/metrics.parquet",
        summary="results/sft/{run}/summary.json",
        config="results/sft/{run}/config.json",
    params:
        spec=run_spec,
        data=sft_data_path,
        out=subpath(output.model, parent=True),
        corpora=layout.CORPORA_ROOT,
        checkpoints=layout.CHECKPOINTS_ROOT,
    log:
        "results/logs/sft_llm/{run}.log",
    benchmark:
        "results/benchmarks/jobs/sft_llm/{run}.tsv"
    threads: res("sft_llm", "threads")
    resources:
        nodes=res("sft_llm", "nodes"),
        gpus=res("sft_llm", "gpus"),
        gres=res("sft_llm", "gres"),  # Slurm plugin only (profiles/slurm): GPUs per node
        cpus_per_gpu=res("sft_llm", "cpus_per_gpu"),  # with a total of GPUs; None (dropped) otherwise
        cpus_per_task=res("sft_llm", "cpus_per_task"),
        mem_mb=res("sft_llm", "mem_mb"),
        runtime=res("sft_llm", "runtime"),
    envmodules:
        *SITE_MODULES,
    conda:
        "../../envs/llm.yaml"
    shell:
        "pretrainflow sft-llm --spec {params.spec:q} --data {params.data:q} --out {params.out:q}"
        " --corpora-dir {params.corpora:q} --checkpoints {params.checkpoints:q} > {log:q} 2>&1"
