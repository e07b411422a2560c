# Aggregate every result row into results/summary.parquet, the plots and the HTML report.


rule aggregate_results:
    input:
        rows=STUDY.row_files(),
        vit_curves=expand("results/pretrain/{run}/metrics.parquet", run=STUDY.runs_of_kind("vit")),
        llm_curves=expand("results/pretrain/{run}/metrics.parquet", run=STUDY.runs_of_kind("llm")),
    output:
        summary="results/summary.parquet",
        statistics="results/statistics.parquet",
        report="results/report.html",
        plots=multiext("results/plots/", "downstream_accuracy.png", "pretrain_loss_vit.png", "pretrain_loss_llm.png"),
    params:
        study=study_json(),
        metric=STUDY.results.get("primary_metric", "top1"),
        plots=lambda wildcards, output: os.path.dirname(output.plots[0]),
    log:
        "results/logs/aggregate_results.log",
    resources:
        cpus_per_task=1,
        mem_mb=2000,
        runtime=10,
    shell:
        "pretrainflow aggregate --rows {input.rows:q} --vit-curves {input.vit_curves:q}"
        " --llm-curves {input.llm_curves:q} --study {params.study:q} --cells-from-study --metric {params.metric:q}"
        " --out {output.summary:q} --statistics {output.statistics:q} --plots {params.plots:q}"
        " --report {output.report:q} > {log:q} 2>&1"
