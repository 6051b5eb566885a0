"""DDP helpers for ``torchrun``: process-group setup, rank queries, reductions and a resumable sharded sampler."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job. ``world_size == 1`` means plain single-process training."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that does all file I/O (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Initialise the default process group when launched by ``torchrun`` with ``WORLD_SIZE > 1``.

    Uses NCCL when the job trains on CUDA and gloo otherwise; on CUDA each process binds ``cuda:LOCAL_RANK``.
    The collective timeout is 2 hours, since the other ranks wait while rank 0 evaluates.
    A no-op (returns the current info) when already initialised or when ``WORLD_SIZE`` is unset/1.

    Args:
        device: the run's device setting ("auto", "cpu", "cuda", ...), which picks the backend.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device != "cpu"
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=timedelta(hours=2))
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local)


def get_dist_info() -> DistInfo:
    """Rank/world size of the initialised process group, or the single-process default."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def cleanup_distributed() -> None:
    """Destroy the process group if one is initialised."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Synchronise all ranks (no-op when not distributed)."""
    if get_dist_info().distributed:
        dist.barrier()


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ranks (returns ``values`` itself when not distributed)."""
    if not get_dist_info().distributed:
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send a picklable object from rank ``src`` to every rank (identity when not distributed)."""
    if not get_dist_info().distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Gather a picklable object from every rank, in rank order (``[obj]`` when not distributed)."""
    info = get_dist_info()
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (same shuffle as torch's for a given seed and epoch) that can start mid-epoch.

    Every rank gets ``ceil(N / world_size)`` indices (padded by wrapping, as torch does), so all ranks run the same
    number of steps. ``set_epoch(epoch, start=k)`` skips this rank's first ``k`` indices of that epoch, which is
    how a resumed run continues at the exact batch where it stopped.

    Args:
        dataset: the training dataset.
        rank: this process's rank.
        world_size: number of processes.
        shuffle: shuffle with ``torch.Generator().manual_seed(seed + epoch)``.
        seed: base seed shared by all ranks.
    """

    def __init__(self, dataset: Dataset, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's permutation and skip the first ``start`` indices of this rank."""
        super().set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start


def make_loader(dataset: Dataset, batch_size: int, collate_fn: Callable[[list], Any], workers: int = 0,
                seed: int = 0, dist_info: DistInfo | None = None, pin_memory: bool = False) -> DataLoader:
    """Shuffled, sharded, resumable training loader for any map-style dataset (:class:`ResumableSampler`).

    Benchmark datasets use ``rtvp.data.build_dataloader`` instead (its items are seeded per ``(epoch, index)``,
    so resuming is exact with any worker count). Here a resumed run is exact with ``workers=0``; with workers,
    random augmentations drawn from the global RNGs inside workers are not replayed.

    Args:
        dataset: map-style dataset.
        batch_size: batch size per rank.
        collate_fn: sample list -> batch.
        workers: worker processes.
        seed: seed of the order and of the worker seeds.
        dist_info: rank info (default: the initialised process group, if any).
        pin_memory: pin batch memory.
    """
    info = dist_info or get_dist_info()
    sampler = ResumableSampler(dataset, info.rank, info.world_size, shuffle=True, seed=seed)
    gen = torch.Generator().manual_seed(seed + 104729 * info.rank)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate_fn,
                      pin_memory=pin_memory, generator=gen)
