"""Scheduler support: one resource mapping for ABCI 3.0 (PBS Pro), TSUBAME 4.0 (Grid Engine) and Slurm, plus the
submit / status / cancel commands that Snakemake's cluster-generic executor calls for PBS and Grid Engine.

Layout (one job per module):
    sites.py         the sites' fixed facts: scheduler family, resource types (node shapes), walltime limit, points
    settings.py      per-user site values (group, queue, modules ...) from the profile or the environment, validated
    resources.py     abstract rule resources (gpus, nodes, cpus_per_task, mem_mb, runtime) -> a site's resource types;
                     a total of GPUs is shaped into the site's nodes here
    plan.py          ``pretrainflow sched plan``: a study's jobs placed on a site, with submissions, node-hours, points
    pbs.py, sge.py, slurm.py   qsub/sbatch argv builders and status parsers (no shell anywhere: argv lists only)
    jobscript.py     the wrapper job script around Snakemake's job script (modules, walltime signal, exit-code file)
    commands.py      submit / status / cancel as the cluster-generic executor calls them
    cli.py           ``pretrainflow sched submit|status|cancel``, ``pretrainflow profiles install``, ``pretrainflow submit``
"""
