"""Start one training process per device and tell each process who it is.

Inside a worker, ``world_from_env()`` reads the torchrun-style variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT), or Open MPI's OMPI_COMM_WORLD_* under mpirun. ``run_distributed(entry, args, procs_per_node)`` starts the
workers: on one node (a laptop, or a single-node job) with pretrainflow.launch.local; in a multi-node Slurm / PBS /
Grid Engine job on every node of the job (pretrainflow.launch.multinode: srun per node, or mpirun with a hostfile),
with the job found by ``discover_job()`` (Slurm env / submitit JobEnvironment, $PBS_NODEFILE, $PE_HOSTFILE, or local).
"""

from pretrainflow.launch.discover import JobLayout, discover_job, master_port_for
from pretrainflow.launch.multinode import run_job
from pretrainflow.launch.world import World, world_from_env

# The name training commands call: one node -> the local launcher, several nodes -> srun / mpirun (run_job).
run_distributed = run_job

__all__ = ["JobLayout", "World", "discover_job", "master_port_for", "run_distributed", "run_job", "world_from_env"]
