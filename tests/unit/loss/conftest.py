"""Toy RawOutputs / Batch factories for the loss tests (no model involved)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from rtvp.models.outputs import RawOutputs
from rtvp.structures import Batch


def make_anchors(imgsz: int, strides: tuple[int, ...] = (8, 16, 32)) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor centres ``(A, 2)`` and strides ``(A,)`` for a square image, row-major per scale."""
    pts, strs = [], []
    for s in strides:
        n = imgsz // s
        ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        pts.append((torch.stack((xs, ys), -1).reshape(-1, 2).float() + 0.5) * s)
        strs.append(torch.full((n * n,), float(s)))
    return torch.cat(pts), torch.cat(strs)


def make_batch(gt_boxes: torch.Tensor, gt_labels: torch.Tensor, gt_mask: torch.Tensor, vocab_ids: list[int],
               imgsz: int = 64) -> Batch:
    b = gt_boxes.shape[0]
    return Batch(images=torch.zeros(b, 3, imgsz, imgsz), gt_boxes=gt_boxes.float(), gt_labels=gt_labels.long(),
                 gt_mask=gt_mask.bool(), vocab_ids=torch.tensor(vocab_ids, dtype=torch.long),
                 image_ids=list(range(b)), orig_sizes=torch.full((b, 2), imgsz), scales=torch.ones(b),
                 pads=torch.zeros(b, 2))


def make_outputs(b: int, k: int, imgsz: int = 64, d: int = 8, reg_max: int = 16, seed: int = 0, closed: bool = False,
                 dp_pairs: int = 2) -> RawOutputs:
    """Random leaf tensors (requires_grad) shaped like the model's outputs."""
    g = torch.Generator().manual_seed(seed)
    anchors, strides = make_anchors(imgsz)
    a = len(anchors)

    def leaf(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=g) * scale).requires_grad_(True)

    out = RawOutputs(box_dist=leaf(b, a, 4 * reg_max), logits=leaf(b, a, k, scale=2.0), anchors=anchors,
                     strides=strides, reg_max=reg_max)
    if not closed:
        out.embeddings = leaf(b, a, d)
        out.text = leaf(b, k, d)
        out.aux_box_dist = leaf(b, a, 4 * reg_max)
        out.dp_pairs = [(leaf(b, 4, 2, 2), torch.randn(b, 4, 2, 2, generator=g)) for _ in range(dp_pairs)]
    return out


@pytest.fixture()
def toy() -> dict[str, Callable]:
    """Factories: ``anchors``, ``batch``, ``outputs``."""
    return {"anchors": make_anchors, "batch": make_batch, "outputs": make_outputs}
