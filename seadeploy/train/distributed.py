"""DistributedDataParallel plumbing: process group from torchrun's environment, reductions, rank 0 I/O.

``torchrun --nproc_per_node N -m seadeploy.train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``;
:func:`init_distributed` then joins the group (gloo on CPU, nccl on CUDA). Without those variables
everything degrades to a single process with the same code path.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
import torch.distributed as dist

from seadeploy.errors import BackendUnavailable, ConfigError


@dataclasses.dataclass
class DistContext:
    """Rank, world size and device of this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum a float64 tensor over ranks (returned as a new CPU tensor)."""
        if not self.distributed:
            return values.clone()
        backend_dev = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
        t = values.to(backend_dev, torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu()

    def gather_objects(self, obj: Any) -> list[Any]:
        """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group if this context created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: str = "cpu") -> DistContext:
    """Join the process group described by torchrun's environment (or return a single-process context).

    Raises:
        BackendUnavailable: CUDA requested but not available, or fewer GPUs than local ranks.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailable("--device cuda requested but torch.cuda.is_available() is False; install a "
                                     "CUDA build of torch (pip install torch --index-url "
                                     "https://download.pytorch.org/whl/cu126) or use --device cpu")
        if world > 1:
            if local >= torch.cuda.device_count():
                raise BackendUnavailable(f"local rank {local} needs GPU {local} but only "
                                         f"{torch.cuda.device_count()} exist; lower --nproc_per_node")
            dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise ConfigError(f"unsupported --device '{device}' for training; use cpu or cuda[:N]")
    if world <= 1:
        return DistContext(device=dev)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local, device=dev, owns_group=owns)
