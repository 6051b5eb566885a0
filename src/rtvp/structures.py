"""Typed records passed between stages. Leaf module: no torch import at run time.

``ImageRecord``/``BoxAnnotation`` flow from ``sources`` into ``bench``; ``Batch`` flows from ``data`` into the
model and loss; ``Detections`` flows out of the predictor into tasks, CLI and service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

Segmentation = list[list[float]] | dict[str, Any]
"""COCO segmentation: a list of flat polygons ``[[x1, y1, x2, y2, ...], ...]`` or an RLE dict ``{size, counts}``."""


@dataclass
class BoxAnnotation:
    """One object instance in source pixel coordinates.

    Attributes:
        bbox: ``(x1, y1, x2, y2)`` in pixels, top-left origin, x2/y2 exclusive edges (COCO ``w = x2 - x1``).
        label: native class name as the source spells it (taxonomy mapping happens in ``bench``).
        segmentation: optional COCO segmentation (polygons or RLE) when the source has masks or polygons.
    """

    bbox: tuple[float, float, float, float]
    label: str
    segmentation: Segmentation | None = None

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.bbox[3] - self.bbox[1]


@dataclass
class ImageRecord:
    """One image of a source dataset with its annotations. Holds metadata only, never pixels.

    Attributes:
        path: absolute path to the image file.
        width: image width in pixels.
        height: image height in pixels.
        annotations: the instances in the image (may be empty: a defect-free image).
        source: registry name of the converter that produced it.
        label_file: the label file the annotations came from (for error reports), if any.
        meta: free-form extras (official split, group id, ...), JSON-serialisable.
    """

    path: Path
    width: int
    height: int
    annotations: list[BoxAnnotation] = field(default_factory=list)
    source: str = ""
    label_file: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    """A collated training/eval batch. ``K`` is the padded per-batch vocabulary size, ``M`` the max boxes per image.

    Attributes:
        images: ``(B, C, H, W)`` float32 in ``[0, 1]`` (letterboxed).
        gt_boxes: ``(B, M, 4)`` xyxy pixels in the letterboxed frame (zeros where padded).
        gt_labels: ``(B, M)`` long, index into the batch vocabulary ``0..K-1`` (``-1`` where padded).
        gt_mask: ``(B, M)`` bool, True for real boxes.
        vocab_ids: ``(K,)`` long, global category index of each vocabulary slot, ``-1`` for padding slots.
        image_ids: benchmark image ids, length B.
        orig_sizes: ``(B, 2)`` original ``(h, w)``.
        scales: ``(B,)`` letterbox resize ratio (letterboxed = original * scale + pad).
        pads: ``(B, 2)`` letterbox ``(pad_x, pad_y)`` in pixels.
        gt_segs: ``(B, M, H / 4, W / 4)`` uint8 instance-mask targets (datasets with ``masks``), else None.
        gt_seg_valid: ``(B, M)`` bool, True where the instance has a real mask, else None.
    """

    images: torch.Tensor
    gt_boxes: torch.Tensor
    gt_labels: torch.Tensor
    gt_mask: torch.Tensor
    vocab_ids: torch.Tensor
    image_ids: list[int]
    orig_sizes: torch.Tensor
    scales: torch.Tensor
    pads: torch.Tensor
    gt_segs: torch.Tensor | None = None
    gt_seg_valid: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Return a copy with every tensor moved to ``device``."""
        moved = {
            k: (v.to(device, non_blocking=non_blocking) if hasattr(v, "to") else v) for k, v in self.__dict__.items()
        }
        return Batch(**moved)


@dataclass
class Detections:
    """Detections of one image in original pixel coordinates (numpy, like supervision's ``Detections``).

    Attributes:
        xyxy: ``(N, 4)`` float32 boxes.
        confidence: ``(N,)`` float32 scores in ``[0, 1]``.
        class_id: ``(N,)`` int64 index into ``class_names``.
        class_names: the vocabulary the class ids refer to.
        data: optional per-detection arrays (first dim N), e.g. ``{"embedding": (N, D)}``.
        mask: optional ``(N, H, W)`` bool instance masks in original pixels (models with ``model.masks``).
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    class_names: list[str] = field(default_factory=list)
    data: dict[str, np.ndarray] = field(default_factory=dict)
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        n = len(self.xyxy)
        if len(self.confidence) != n or len(self.class_id) != n:
            raise ValueError(f"Detections: xyxy has {n} rows but confidence {len(self.confidence)}, "
                             f"class_id {len(self.class_id)}")
        for k, v in self.data.items():
            if len(v) != n:
                raise ValueError(f"Detections.data['{k}'] has {len(v)} rows, expected {n}")
        if self.mask is not None:
            self.mask = np.asarray(self.mask, dtype=bool)
            if self.mask.ndim != 3 or len(self.mask) != n:
                raise ValueError(f"Detections.mask must be (N={n}, H, W) bool, got {self.mask.shape}")

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls, class_names: list[str] | None = None) -> Detections:
        """An empty detection set."""
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64), list(class_names or []))

    def __getitem__(self, index: Any) -> Detections:
        """Select detections with a boolean mask, an index array or a slice."""
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index], self.class_names,
                          {k: v[index] for k, v in self.data.items()},
                          None if self.mask is None else self.mask[index])

    @property
    def labels(self) -> list[str]:
        """Class name of each detection."""
        return [self.class_names[i] for i in self.class_id.tolist()]
