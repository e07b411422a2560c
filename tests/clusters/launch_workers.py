"""Worker entries for the launch tests (imported by the spawned processes through PYTHONPATH)."""

import json
import os
import sys


def allreduce_world(args):
    """Join the gloo group from the torchrun-style env, all-reduce the ranks, write what this rank saw."""
    import torch
    import torch.distributed as dist

    from pretrainflow.launch import world_from_env

    torch.set_num_threads(1)
    world = world_from_env()
    dist.init_process_group("gloo", rank=world.rank, world_size=world.world_size)
    total = torch.tensor([float(world.rank)])
    dist.all_reduce(total)
    dist.destroy_process_group()
    with open(os.path.join(args[0], f"rank-{world.rank}.json"), "w") as handle:
        json.dump(
            {
                "rank": world.rank,
                "local_rank": world.local_rank,
                "size": world.world_size,
                "sum": total.item(),
                "addr": world.master_addr,
                "port": world.master_port,
            },
            handle,
        )
    return 0


def print_layout(args):
    """Print the discovered job layout as JSON (run inside real scheduler jobs)."""
    from pretrainflow.launch import discover_job

    layout = discover_job()
    print(
        json.dumps(
            {
                "scheduler": layout.scheduler,
                "job_id": layout.job_id,
                "hosts": list(layout.hosts),
                "node_rank": layout.node_rank,
                "slots": list(layout.slots),
                "port": layout.master_port,
            }
        )
    )
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(print_layout(sys.argv[1:]))
