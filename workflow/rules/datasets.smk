# Formula-driven synthetic datasets (pretrainflow.datasets): category search -> one render job per shard (scatter)
# -> manifest (gather). Outputs in results/datasets/{dataset}/: categories.parquet, shards/shard-{k:05d}.tar (WebDataset
# layout), manifest.json (counts + sha256 per shard, dataset checksum) and config.json. Job sizes come from the package.


rule search_categories:
    output:
        "results/datasets/{dataset}/categories.parquet",
    params:
        spec=dataset_spec,
    log:
        "results/logs/search_categories/{dataset}.log",
    benchmark:
        "results/benchmarks/jobs/search_categories/{dataset}.tsv"
    resources:
        cpus_per_task=1,
        mem_mb=res("search_categories", "mem_mb"),
        runtime=res("search_categories", "runtime"),
    conda:
        "../../envs/data.yaml"
    shell:
        "pretrainflow datasets search --spec {params.spec:q} --out {output:q} > {log:q} 2>&1"


rule render_shard:
    input:
        categories="results/datasets/{dataset}/categories.parquet",
    output:
        "results/datasets/{dataset}/shards/shard-{shard}.tar",
    params:
        spec=dataset_spec,
        shard=lambda wildcards: int(wildcards.shard),
    log:
        "results/logs/render_shard/{dataset}-{shard}.log",
    benchmark:
        "results/benchmarks/jobs/render_shard/{dataset}/{shard}.tsv"
    # Packed on a cluster: the site profile's group-components puts up to N independent shards (each still its own
    # job, log and benchmark) into one CPU-node submission (ABCI rt_HC: 32); unset, each shard is a submission.
    group:
        "render_shards"
    resources:
        cpus_per_task=1,
        mem_mb=res("render_shard", "mem_mb"),
        runtime=res("render_shard", "runtime"),
    conda:
        "../../envs/data.yaml"
    shell:
        "pretrainflow datasets render-shard --spec {params.spec:q} --categories {input.categories:q}"
        " --shard {params.shard} --out {output:q} > {log:q} 2>&1"


rule dataset_manifest:
    input:
        categories="results/datasets/{dataset}/categories.parquet",
        shards=lambda wildcards: expand(
            "results/datasets/{{dataset}}/shards/shard-{shard}.tar", shard=dataset_shards(wildcards.dataset)
        ),
    output:
        manifest="results/datasets/{dataset}/manifest.json",
        config="results/datasets/{dataset}/config.json",
    params:
        spec=dataset_spec,
    log:
        "results/logs/dataset_manifest/{dataset}.log",
    resources:
        cpus_per_task=1,
        mem_mb=res("dataset_manifest", "mem_mb"),
        runtime=res("dataset_manifest", "runtime"),
    conda:
        "../../envs/data.yaml"
    shell:
        "pretrainflow datasets manifest --spec {params.spec:q} --categories {input.categories:q}"
        " --shards {input.shards:q} --out {output.manifest:q} > {log:q} 2>&1"
