"""Picklable callables for the submitit tests (imported by the jobs through PYTHONPATH)."""

import os
import time


def add(a, b):
    return a + b


class Sleeper:
    """Sleeps on its first attempt; when checkpointed (pre-walltime signal), the requeued copy returns at once."""

    def __init__(self, seconds, resumed=0):
        self.seconds, self.resumed = seconds, resumed

    def __call__(self):
        job = os.environ.get("JOB_ID") or os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID")
        if self.resumed:
            return {"state": "resumed", "resumed": self.resumed, "job": job}
        time.sleep(self.seconds)
        return {"state": "finished", "resumed": 0, "job": job}

    def checkpoint(self):
        import submitit

        return submitit.helpers.DelayedSubmission(Sleeper(self.seconds, self.resumed + 1))
