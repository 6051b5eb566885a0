"""``Sample`` (one dataset item) and ``Collator`` (samples -> ``rtvp.structures.Batch`` with its vocabulary)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rtvp.data.vocab import build_vocab, remap_labels
from rtvp.structures import Batch


@dataclass
class Sample:
    """One prepared image.

    Attributes:
        image: ``(S, S, C)`` uint8 letterboxed/augmented image.
        boxes: ``(N, 4)`` float32 xyxy in the ``S x S`` frame.
        labels: ``(N,)`` int64 global category indices.
        image_id: benchmark image id.
        orig_size: original ``(h, w)``.
        scale: letterbox resize ratio of the base image (``letterboxed = original * scale + pad``).
        pad: letterbox ``(pad_x, pad_y)`` of the base image.
        index: dataset index.
        epoch: epoch the sample was drawn for (part of its random seed).
        masks: ``(N, S / 4, S / 4)`` uint8 instance-mask targets (datasets with ``masks``), else None.
        has_mask: ``(N,)`` bool, True where the instance has a real mask (box-only instances: False).
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    image_id: int
    orig_size: tuple[int, int]
    scale: float
    pad: tuple[int, int]
    index: int
    epoch: int
    masks: np.ndarray | None = None
    has_mask: np.ndarray | None = None


@dataclass(frozen=True)
class Collator:
    """Picklable collate function building the batch vocabulary and remapping labels to its slots.

    Args:
        vocab: ``"all"`` or ``"sampled"`` (see ``rtvp.data.vocab``).
        vocab_size: resolved vocabulary size ``K``.
        allowed: category indices the vocabulary may use.
        seed: base seed; the negatives of a batch depend only on ``(seed, epoch, sample indices)``.
        n_categories: number of categories (for the label lookup); ``0`` -> ``max(allowed) + 1``.

    Examples:
        >>> c = Collator("all", 2, (0, 1), seed=0)
        >>> s = Sample(np.zeros((32, 32, 3), np.uint8), np.array([[1, 1, 5, 5]], np.float32), np.array([1]),
        ...            7, (32, 32), 1.0, (0, 0), 0, 0)
        >>> b = c([s])
        >>> b.images.shape, b.gt_labels.tolist(), b.vocab_ids.tolist()
        (torch.Size([1, 3, 32, 32]), [[1]], [0, 1])
    """

    vocab: str
    vocab_size: int
    allowed: tuple[int, ...]
    seed: int = 0
    n_categories: int = 0

    def __call__(self, samples: list[Sample]) -> Batch:
        """Stack ``samples`` into a ``Batch`` (``M >= 1`` box slots; padded boxes are zeros with label ``-1``)."""
        if not samples:
            raise ValueError("cannot collate an empty list of samples")
        labels = [s.labels for s in samples]
        rng = None
        if self.vocab == "sampled":
            rng = np.random.default_rng([self.seed, 0x5EED, samples[0].epoch, *(s.index for s in samples)])
        present = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        vocab_ids = build_vocab(self.vocab, present, np.asarray(self.allowed), self.vocab_size, rng)
        n_cat = self.n_categories or (max(self.allowed) + 1 if self.allowed else 1)
        b, m = len(samples), max(1, max(len(x) for x in labels))
        boxes = np.zeros((b, m, 4), dtype=np.float32)
        slots = np.full((b, m), -1, dtype=np.int64)
        mask = np.zeros((b, m), dtype=bool)
        h, w, c = samples[0].image.shape
        images = np.empty((b, c, h, w), dtype=np.uint8)  # HWC -> CHW on uint8: 3x cheaper than on float
        for i, s in enumerate(samples):
            n = len(s.labels)
            boxes[i, :n] = s.boxes
            slots[i, :n] = remap_labels(s.labels, vocab_ids, n_cat)
            mask[i, :n] = True
            images[i] = s.image.transpose(2, 0, 1)
        segs, seg_valid = _stack_masks(samples, m)
        return Batch(
            images=torch.from_numpy(images).float().div_(255.0),
            gt_boxes=torch.from_numpy(boxes),
            gt_labels=torch.from_numpy(slots),
            gt_mask=torch.from_numpy(mask),
            vocab_ids=torch.from_numpy(vocab_ids),
            image_ids=[int(s.image_id) for s in samples],
            orig_sizes=torch.tensor([s.orig_size for s in samples], dtype=torch.long),
            scales=torch.tensor([s.scale for s in samples], dtype=torch.float32),
            pads=torch.tensor([s.pad for s in samples], dtype=torch.float32),
            gt_segs=segs,
            gt_seg_valid=seg_valid,
        )


def _stack_masks(samples: list[Sample], m: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(B, M, h, w)`` uint8 mask targets and ``(B, M)`` bool validity, or ``(None, None)`` without masks."""
    if samples[0].masks is None:
        return None, None
    h, w = samples[0].masks.shape[1:]
    segs = np.zeros((len(samples), m, h, w), dtype=np.uint8)
    valid = np.zeros((len(samples), m), dtype=bool)
    for i, s in enumerate(samples):
        segs[i, : len(s.masks)] = s.masks
        valid[i, : len(s.has_mask)] = s.has_mask
    return torch.from_numpy(segs), torch.from_numpy(valid)
