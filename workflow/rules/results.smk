# Aggregate every result row into the study's own summary.parquet and plots, and every job's benchmark file into its
# benchmarks.parquet, all under results/studies/{study}/ (study/layout.py): a second study in the same results/ tree
# keeps its own. The outputs flagged report() are what `snakemake --report results/studies/<study>/report.zip` shows,
# with the captions in workflow/report/ (the report's front page: workflow/report/workflow.rst, the Snakefile's report:).


rule aggregate_results:
    input:
        rows=STUDY.row_files(),
        vit_curves=expand(layout.PRETRAIN_CURVE, run=STUDY.runs_of_kind("vit")),
        llm_curves=expand(layout.PRETRAIN_CURVE, run=LLM_PRETRAIN_RUNS),  # SFT runs: not pretraining
        benchmarks=layout.benchmark_files(STUDY),
    output:
        summary=study_output(layout.SUMMARY),
        statistics=study_output(layout.STATISTICS),
        benchmarks=study_output(layout.BENCHMARKS_TABLE),
        table=report(
            study_output(layout.STATISTICS_PAGE),
            caption="../report/statistics.rst",
            category="Results",
            subcategory="Tables",
        ),
        downstream=report(
            study_output(layout.DOWNSTREAM_PLOT),
            caption="../report/downstream_accuracy.rst",
            category="Results",
            subcategory="Plots",
        ),
        vit_loss=report(
            study_output(layout.VIT_LOSS_PLOT),
            caption="../report/pretrain_loss.rst",
            category="Training",
            labels={"model": "ViT (DeepSpeed)"},
        ),
        llm_loss=report(
            study_output(layout.LLM_LOSS_PLOT),
            caption="../report/pretrain_loss.rst",
            category="Training",
            labels={"model": "GPT (megatron-core)"},
        ),
        jobs=report(study_output(layout.JOBS_PAGE), caption="../report/jobs.rst", category="Jobs"),
        study=report(study_output(layout.STUDY_CONFIG), caption="../report/study.rst", category="Study"),
    params:
        study=study_json(),
        metric=STUDY.results.get("primary_metric", "top1"),
        plots=subpath(output.downstream, parent=True),
        tables=subpath(output.table, parent=True),
    log:
        study_output(layout.AGGREGATE_LOG),
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
