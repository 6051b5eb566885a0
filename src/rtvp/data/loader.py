"""Deterministic, resumable data loading: ``EpochSampler`` and ``build_dataloader``.

Determinism: the order of an epoch depends only on ``(seed, epoch)`` (and rank/world size under DDP); each item
depends only on ``(seed, epoch, index)``; each batch vocabulary only on ``(seed, epoch, indices)``. Worker count,
worker scheduling and persistent workers do not change any batch.

Resuming mid-epoch (what the trainer stores and does): the sampler state is ``(epoch, seed)`` plus the number of
batches already consumed in that epoch, ``step_in_epoch``. To resume::

    loader = build_dataloader(ds, batch_size, shuffle=True, workers=w, seed=seed, distributed=ddp)
    loader.sampler.set_epoch(epoch, start=step_in_epoch * batch_size)  # skips indices, loads no image
    for batch in loader: ...                                            # = the rest of the interrupted epoch
    loader.sampler.set_epoch(epoch + 1)                                 # next epochs start at 0 again

Under DDP ``start`` counts samples of this rank (``step_in_epoch * per-rank batch_size``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from rtvp.errors import ConfigError


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` pairs; the order is a pure function of ``(seed, epoch)``.

    Args:
        data: the dataset (only its length is used).
        shuffle: random order per epoch (else ``0..N-1``).
        seed: base seed of the permutation.
        distributed: split the order over DDP ranks with ``torch.utils.data.DistributedSampler``.
        drop_last: under DDP, drop the tail instead of padding ranks to equal length.
        num_replicas: DDP world size (default: from the process group).
        rank: DDP rank (default: from the process group).
    """

    def __init__(self, data: Sized, shuffle: bool = True, seed: int = 0, distributed: bool = False,
                 drop_last: bool = False, num_replicas: int | None = None, rank: int | None = None) -> None:
        self.n, self.shuffle, self.seed = len(data), shuffle, int(seed)
        self.epoch, self.start = 0, 0
        self.dist = (DistributedSampler(data, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                                        drop_last=drop_last) if distributed else None)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select ``epoch``; skip its first ``start`` samples (mid-epoch resume)."""
        if start < 0:
            raise ValueError(f"start={start} must be >= 0")
        self.epoch, self.start = int(epoch), int(start)
        if self.dist is not None:
            self.dist.set_epoch(self.epoch)

    def order(self) -> np.ndarray:
        """Indices of the current epoch (this rank's share under DDP), before skipping ``start``."""
        if self.dist is not None:
            return np.fromiter(iter(self.dist), dtype=np.int64)
        if not self.shuffle:
            return np.arange(self.n, dtype=np.int64)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self.order()[self.start :].tolist():
            yield self.epoch, i

    def __len__(self) -> int:
        full = len(self.dist) if self.dist is not None else self.n
        return max(0, full - self.start)


def build_dataloader(dataset: torch.utils.data.Dataset, batch_size: int, shuffle: bool, workers: int = 0,
                     seed: int = 0, distributed: bool = False, drop_last: bool = False, pin_memory: bool = False,
                     collate_fn: object | None = None) -> DataLoader:
    """DataLoader over ``dataset`` with an :class:`EpochSampler` (call ``loader.sampler.set_epoch(e)`` each epoch).

    Args:
        dataset: a ``DetectionDataset`` (or any map-style dataset accepting ``(epoch, index)`` items).
        batch_size: samples per batch (per rank under DDP).
        shuffle: shuffle every epoch.
        workers: worker processes (``0``: load in the main process); workers are persistent when ``> 0``.
        seed: seed of the order (and of the torch generator handed to the loader).
        distributed: shard over DDP ranks (needs an initialised process group).
        drop_last: drop the last incomplete batch (and, under DDP, the uneven tail).
        pin_memory: pin batch memory (only tensors the collate output exposes to ``pin_memory``).
        collate_fn: defaults to ``dataset.collator``.

    Returns:
        The loader; ``loader.sampler`` is the :class:`EpochSampler`.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: must be >= 1")
    if workers < 0:
        raise ConfigError(f"workers={workers}: must be >= 0")
    sampler = EpochSampler(dataset, shuffle=shuffle, seed=seed, distributed=distributed, drop_last=drop_last)
    collate = collate_fn if collate_fn is not None else getattr(dataset, "collator", None)
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate,
                      drop_last=drop_last, pin_memory=pin_memory, persistent_workers=workers > 0, generator=gen,
                      prefetch_factor=4 if workers > 0 else None)
