"""Job-side entry of the PBS / Grid Engine submitit executors: ``python -m pretrainflow.schedulers.submitit_run <dir>``.

Registers our job environments with submitit (whether or not the package's entry points are installed), then runs
submitit's own job processing (load the pickled call, handle signals, run, pickle the result).
"""

from __future__ import annotations

import sys

from submitit.core import plugins, submission

from pretrainflow.schedulers.submitit_plugins import PBSJobEnvironment, SGEJobEnvironment


def register_environments() -> None:
    _, environments = plugins._get_plugins()  # cached lists: appending makes get_job_environment() see ours
    known = {env.name() for env in environments}
    for env_class in (PBSJobEnvironment, SGEJobEnvironment):
        if env_class.name() not in known:
            environments.append(env_class())
    plugins.get_job_environments.cache_clear()


def main() -> None:
    register_environments()
    submission.process_job(sys.argv[1])


if __name__ == "__main__":
    main()
