from pretrainflow.provenance import provenance, scheduler_and_job


def test_scheduler_and_site_from_the_job_environment():
    assert scheduler_and_job({}) == ("local", None)
    assert scheduler_and_job({"PBS_JOBID": "1234.pbs1"}) == ("pbs", "1234.pbs1")
    slurm = provenance({"SLURM_JOB_ID": "42"})
    assert (slurm["scheduler"], slurm["job_id"], slurm["site"]) == ("slurm", "42", "slurm")
    abci = provenance({"PBS_JOBID": "7.pbs1", "PRETRAINFLOW_SITE": "abci"})
    assert (abci["scheduler"], abci["site"]) == ("pbs", "abci")
    assert provenance({})["site"] == "local"
