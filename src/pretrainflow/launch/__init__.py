"""Start one training process per device and tell each process who it is.

Inside a worker, ``world_from_env()`` reads the torchrun-style variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT). ``run_distributed`` starts the workers of this node with those variables set. Scheduler-specific discovery
(Slurm, PBS, Grid Engine node lists) lives in sibling modules and feeds the same World.
"""

from pretrainflow.launch.local import run_distributed
from pretrainflow.launch.world import World, world_from_env

__all__ = ["World", "run_distributed", "world_from_env"]
