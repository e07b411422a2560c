# Aggregate every result row into results/summary.parquet and the plots, and every job's benchmark file into
# results/benchmarks.parquet. The outputs flagged report() are what `snakemake --report results/report.zip` shows,
# with the captions in workflow/report/ (the report's front page: workflow/report/workflow.rst, the Snakefile's report:).


rule aggregate_results:
    input:
        rows=STUDY.row_files(),
        vit_curves=expand("results/pretrain/{run}/metrics.parquet", run=STUDY.runs_of_kind("vit")),
        llm_curves=expand("results/pretrain/{run}/metrics.parquet", run=LLM_PRETRAIN_RUNS),  # SFT runs: not pretraining
        benchmarks=layout.benchmark_files(STUDY),
    output:
        summary="results/summary.parquet",
        statistics="results/statistics.parquet",
        benchmarks="results/benchmarks.parquet",
        table=report(
            "results/tables/statistics.html", caption="../report/statistics.rst", category="Results", subcategory="Tables"
        ),
        downstream=report(
            "results/plots/downstream_accuracy.png",
            caption="../report/downstream_accuracy.rst",
            category="Results",
            subcategory="Plots",
        ),
        vit_loss=report(
            "results/plots/pretrain_loss_vit.png",
            caption="../report/pretrain_loss.rst",
            category="Training",
            labels={"model": "ViT (DeepSpeed)"},
        ),
        llm_loss=report(
            "results/plots/pretrain_loss_llm.png",
            caption="../report/pretrain_loss.rst",
            category="Training",
            labels={"model": "GPT (megatron-core)"},
        ),
        jobs=report("results/tables/jobs.html", caption="../report/jobs.rst", category="Jobs"),
        study=report("results/study.json", caption="../report/study.rst", category="Study"),
    params:
        study=study_json(),
        metric=STUDY.results.get("primary_metric", "top1"),
        plots=subpath(output.downstream, parent=True),
        tables=subpath(output.table, parent=True),
    log:
        "results/logs/aggregate_results.log",
    resources:
        cpus_per_task=1,
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/results.yaml"
    shell:
        "pretrainflow aggregate --rows {input.rows:q} --vit-curves {input.vit_curves:q}"
        " --llm-curves {input.llm_curves:q} --study {params.study:q} --cells-from-study --metric {params.metric:q}"
        " --benchmarks {input.benchmarks:q} --out {output.summary:q} --statistics {output.statistics:q}"
        " --benchmarks-out {output.benchmarks:q} --plots {params.plots:q} --tables {params.tables:q}"
        " --study-out {output.study:q} > {log:q} 2>&1"
