# Text corpora for LLM pretraining (pretrainflow.corpora): tokenizer -> one tokenize job per shard -> merged
# megatron-core indexed dataset results/corpora/{corpus}/{corpus}_text_document.bin/.idx + manifest.json.


rule train_tokenizer:
    output:
        "results/corpora/{corpus}/tokenizer.json",
    params:
        spec=corpus_spec,
    log:
        "results/logs/train_tokenizer/{corpus}.log",
    benchmark:
        "results/benchmarks/jobs/train_tokenizer/{corpus}.tsv"
    resources:
        cpus_per_task=res("train_tokenizer", "cpus_per_task"),
        mem_mb=res("train_tokenizer", "mem_mb"),
        runtime=res("train_tokenizer", "runtime"),
    conda:
        "../../envs/data.yaml"
    shell:
        "pretrainflow corpora train-tokenizer --spec {params.spec:q} --out {output:q} > {log:q} 2>&1"


rule build_indexed_shard:
    input:
        tokenizer="results/corpora/{corpus}/tokenizer.json",
    output:
        bin="results/corpora/{corpus}/shards/shard-{shard}.bin",
        idx="results/corpora/{corpus}/shards/shard-{shard}.idx",
    params:
        spec=corpus_spec,
        prefix=lambda wildcards, output: output.idx[: -len(".idx")],
        shard=lambda wildcards: int(wildcards.shard),
    log:
        "results/logs/build_indexed_shard/{corpus}-{shard}.log",
    benchmark:
        "results/benchmarks/jobs/build_indexed_shard/{corpus}/{shard}.tsv"
    # Packed on a cluster like render_shard: group-components in the site profile (ABCI: 16 x 2 cores = one rt_HC).
    group:
        "tokenise_shards"
    resources:
        cpus_per_task=2,
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/data.yaml"
    shell:
        "pretrainflow corpora build-shard --spec {params.spec:q} --shard {params.shard} --tokenizer {input.tokenizer:q}"
        " --out-prefix {params.prefix:q} > {log:q} 2>&1"


rule build_indexed:
    input:
        tokenizer="results/corpora/{corpus}/tokenizer.json",
        shards=lambda wildcards: [f"{prefix}.idx" for prefix in corpus_shard_prefixes(wildcards)],
    output:
        bin="results/corpora/{corpus}/{corpus}_text_document.bin",
        idx="results/corpora/{corpus}/{corpus}_text_document.idx",
        manifest="results/corpora/{corpus}/manifest.json",
        config="results/corpora/{corpus}/config.json",
    params:
        spec=corpus_spec,
        shards=corpus_shard_prefixes,
        out=subpath(output.manifest, parent=True),
    log:
        "results/logs/build_indexed/{corpus}.log",
    resources:
        cpus_per_task=1,
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/data.yaml"
    shell:
        "pretrainflow corpora merge --spec {params.spec:q} --tokenizer {input.tokenizer:q} --shards {params.shards:q}"
        " --out-dir {params.out:q} > {log:q} 2>&1"
