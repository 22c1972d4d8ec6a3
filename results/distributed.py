"""Data-parallel training under ``torchrun`` around the unchanged training loop.

``refiner_nas.refiner_space.training.train_model`` knows nothing of processes, so this module adds what DDP would:
each process trains on its slice of every global batch (``ShardedImageSet``), gradients are
averaged across processes as they are accumulated, and buffers (BatchNorm statistics) are broadcast
from rank 0 before every forward pass, as ``DistributedDataParallel(broadcast_buffers=True)`` does.
The model stays a plain module, so checkpoints, EMA and the run key are those of a single process.
Every process evaluates the whole validation set (identical weights give identical accuracy).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from refiner_nas.refiner_space.data import Batch, ImageSet
from refiner_nas.refiner_space.training import resolve_device


@dataclass(frozen=True)
class DistributedContext:
    """This process's place: rank, number of processes and the device it trains on."""

    rank: int
    world_size: int
    device: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> DistributedContext:
    """One process (no ``WORLD_SIZE`` > 1 in the environment), or join ``torchrun``'s process group:
    NCCL with one GPU per process (``cuda:LOCAL_RANK``), gloo on CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(rank=0, world_size=1, device=device)
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if resolve_device(device).type == "cuda":
        torch.cuda.set_device(local_rank)
        device, backend = f"cuda:{local_rank}", "nccl"
    else:
        device, backend = "cpu", "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return DistributedContext(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


def shutdown(context: DistributedContext) -> None:
    if context.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(context: DistributedContext) -> None:
    if context.distributed:
        import torch.distributed as dist

        dist.barrier()


class ShardedImageSet:
    """This process's slice of every global batch of ``inner`` (same order and augmentation in every
    process, so the union of the slices is the single-process batch).

    Raises:
        ValueError: a global batch that does not split evenly across the processes.
    """

    def __init__(self, inner: ImageSet, *, rank: int, world_size: int) -> None:
        self.inner, self.rank, self.world_size = inner, rank, world_size

    def __len__(self) -> int:
        return len(self.inner)

    def share(self, batch_size: int) -> int:
        """Images per process in a global batch of ``batch_size``."""
        if batch_size % self.world_size:
            raise ValueError(
                f"batch_size={batch_size} does not split across {self.world_size} processes; "
                f"use a multiple of {self.world_size}"
            )
        return batch_size // self.world_size

    def batches(self, *, batch_size: int, device: torch.device, **options: Any) -> Iterator[Batch]:
        share = self.share(batch_size)
        start = self.rank * share
        for images, labels in self.inner.batches(batch_size=batch_size, device=device, **options):
            yield images[start : start + share], labels[start : start + share]

    def with_crop_ratio(self, crop_ratio: float) -> ShardedImageSet:
        return ShardedImageSet(self.inner.with_crop_ratio(crop_ratio), rank=self.rank, world_size=self.world_size)


def make_data_parallel(model: nn.Module, context: DistributedContext) -> list[Any]:
    """Average gradients across processes as each one is accumulated, and broadcast buffers from rank 0
    before every forward pass; returns the hook handles (remove them to undo).

    Start every process from the same weights (seed before building the model).
    """
    import torch.distributed as dist

    world_size = context.world_size

    def average(parameter: torch.Tensor) -> None:
        dist.all_reduce(parameter.grad)
        parameter.grad.div_(world_size)

    def broadcast_buffers(module: nn.Module, _: Any) -> None:
        for buffer in module.buffers():
            if buffer.is_floating_point() or buffer.dtype == torch.long:
                dist.broadcast(buffer, src=0)

    handles = [p.register_post_accumulate_grad_hook(average) for p in model.parameters() if p.requires_grad]
    handles.append(model.register_forward_pre_hook(broadcast_buffers))
    for parameter in model.parameters():  # identical start even if a caller forgot to seed
        dist.broadcast(parameter.data, src=0)
    return handles
