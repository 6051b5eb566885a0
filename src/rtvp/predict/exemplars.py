"""Exemplar prompts: "find more like this box" with no retraining.

A user marks one or a few boxes of a new defect on example images. Each box's region embedding (the head's
L2-normalised embeddings of the anchors whose centre lies in the box, averaged: :func:`pool_regions`) is a prompt
vector in the space where class texts are compared with regions (``RTVPNet.project_text``). The shots of one name are
averaged; when a name is given, its text prompt is mixed in (``text_weight``). The vectors prompt the model like
projected class texts (``PromptedModel(..., projected=True)``), next to any text prompts.

The exemplar file (``rtvp predict --exemplars FILE``) is a JSON list::

    [{"image": "board.png", "box": [x1, y1, x2, y2], "name": "spur"}, ...]

``box`` in pixels of that image (xyxy), ``name`` optional (exemplars without one form a single prompt named
``exemplar``); a relative ``image`` path is relative to the JSON file's folder.

Examples:
    >>> from rtvp.predict.exemplars import Exemplar
    >>> pred = Predictor("best.pt")  # doctest: +SKIP
    >>> dets = pred.predict(["b.png"], exemplars=[Exemplar("a.png", (10, 12, 40, 30), "spur")])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from rtvp.errors import ConfigError, DataError
from rtvp.imaging import letterbox

UNNAMED = "exemplar"
"""Prompt name of the exemplars given without a ``name``."""


@dataclass(frozen=True)
class Exemplar:
    """One example box of a defect.

    Attributes:
        image: image path, or an ``(H, W[, C])`` uint8 RGB array.
        box: ``(x1, y1, x2, y2)`` in that image's pixels.
        name: the defect's name (groups the shots of one prompt; also mixed in as a text prompt), or None.
    """

    image: Path | str | np.ndarray
    box: tuple[float, float, float, float]
    name: str | None = None


def load_exemplars(path: Path | str) -> list[Exemplar]:
    """Read and check an exemplar JSON file (see the module docstring).

    Raises:
        DataError: unreadable file, not a list, or an entry with a missing/invalid field (named, with its index).
    """
    path = Path(path)
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read the exemplar file ({e}); expected a JSON list like "
                        '[{"image": "a.png", "box": [x1, y1, x2, y2], "name": "spur"}]') from None
    if not isinstance(items, list) or not items:
        raise DataError(f"{path}: expected a non-empty JSON list of exemplars, got {type(items).__name__}")
    return [_exemplar(item, f"{path}: exemplar [{i}]", path.parent) for i, item in enumerate(items)]


def _exemplar(item: object, where: str, root: Path) -> Exemplar:
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected an object with 'image' and 'box', got {type(item).__name__}")
    unknown = set(item) - {"image", "box", "name"}
    if unknown:
        raise DataError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: image, box, name")
    image = item.get("image")
    if not isinstance(image, str) or not image.strip():
        raise DataError(f"{where}: 'image' must be a path string")
    image_path = Path(image) if Path(image).is_absolute() else root / image
    if not image_path.is_file():
        raise DataError(f"{where}: image {image_path} not found (relative paths are relative to the JSON's folder)")
    name = item.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise DataError(f"{where}: 'name' must be a non-empty string when given")
    return Exemplar(image_path, check_box(item.get("box"), where), name.strip() if name else None)


def check_box(box: object, where: str) -> tuple[float, float, float, float]:
    """``box`` as four finite floats with ``x2 > x1`` and ``y2 > y1``.

    Raises:
        DataError: naming ``where`` and what is wrong.
    """
    ok = isinstance(box, list | tuple) and len(box) == 4 and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in box)
    if not ok:
        raise DataError(f"{where}: 'box' must be [x1, y1, x2, y2] (4 finite numbers, pixels), got {box!r}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 <= x1 or y2 <= y1:
        raise DataError(f"{where}: 'box' {list(box)} has x2 <= x1 or y2 <= y1 (expected [x1, y1, x2, y2])")
    return x1, y1, x2, y2


def pool_regions(embeddings: torch.Tensor, points: torch.Tensor, boxes: torch.Tensor,
                 pred_boxes: torch.Tensor | None = None, topk: int = 10) -> torch.Tensor:
    """Region embedding of each box, pooled over the anchors that describe it.

    Without ``pred_boxes``: the mean of the anchor embeddings whose centre lies inside the box. With ``pred_boxes``
    (each anchor's decoded box): the IoU-weighted mean over the ``topk`` anchors whose predicted box overlaps the
    given one most (centre inside when any is), i.e. the anchors the detector itself would use for that object,
    as the task-aligned assigner picks them. A box with no anchor centre inside (smaller than the finest stride)
    takes the anchor nearest its centre.

    Args:
        embeddings: ``(A, D)`` L2-normalised anchor embeddings (``RawOutputs.embeddings[b]``).
        points: ``(A, 2)`` anchor centres (x, y) in the same pixels as ``boxes``.
        boxes: ``(M, 4)`` xyxy.
        pred_boxes: ``(A, 4)`` xyxy predicted box of each anchor, or None.
        topk: anchors pooled per box with ``pred_boxes``.

    Returns:
        ``(M, D)`` L2-normalised region embeddings.
    """
    px, py = points[:, 0][None], points[:, 1][None]  # (1, A)
    inside = (px >= boxes[:, :1]) & (px <= boxes[:, 2:3]) & (py >= boxes[:, 1:2]) & (py <= boxes[:, 3:4])  # (M, A)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    nearest = torch.cdist(centres, points).argmin(1)  # (M,)
    empty = ~inside.any(1)
    inside[empty, nearest[empty]] = True
    weights = inside.to(embeddings.dtype)
    if pred_boxes is not None:
        iou = box_iou(boxes, pred_boxes.to(boxes.dtype)).to(embeddings.dtype) * weights  # (M, A), inside only
        top = iou.topk(min(topk, iou.shape[1]), dim=1)
        weights = torch.zeros_like(iou).scatter_(1, top.indices, top.values.clamp(min=1e-6))
        weights = weights * inside  # the nearest-anchor fallback keeps its weight when nothing overlaps
        weights[empty, nearest[empty]] = 1.0
    pooled = weights @ embeddings / weights.sum(1, keepdim=True)
    return F.normalize(pooled, dim=-1)


def group_names(exemplars: Sequence[Exemplar]) -> list[str]:
    """The prompt names of ``exemplars`` in order of first appearance (unnamed ones -> ``exemplar``)."""
    return list(dict.fromkeys(e.name or UNNAMED for e in exemplars))


def exemplar_vectors(
    exemplars: Sequence[Exemplar],
    embed: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
    load: Callable[[Path | str | np.ndarray], np.ndarray],
    imgsz: int,
    name_vectors: Callable[[list[str]], torch.Tensor] | None = None,
    text_weight: float = 0.5,
) -> tuple[list[str], torch.Tensor]:
    """One prompt vector per exemplar name.

    Args:
        exemplars: the example boxes.
        embed: letterboxed ``(S, S, C)`` uint8 image -> ``(embeddings (A, D), anchor centres (A, 2), predicted boxes
            (A, 4) or None)`` (see :func:`pool_regions`).
        load: reads an exemplar's image (path or array) as ``(H, W, C)`` uint8 with the model's channels.
        imgsz: letterbox side ``S``.
        name_vectors: names -> ``(N, D)`` projected text prompts, to mix in for named exemplars (None: no mixing).
        text_weight: weight of the name's text vector in the mix (0: exemplars alone).

    Returns:
        ``(names, (K, D) L2-normalised prompt vectors)``.

    Raises:
        ConfigError: ``text_weight`` outside [0, 1).
        DataError: an unreadable image or a box outside its image.
    """
    if not 0.0 <= text_weight < 1.0:
        raise ConfigError(f"exemplar text_weight={text_weight} must be in [0, 1) (1 would ignore the exemplars)")
    names = group_names(exemplars)
    shots: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for i, ex in enumerate(exemplars):
        img = load(ex.image)
        h, w = img.shape[:2]
        x1, y1, x2, y2 = ex.box
        if x1 >= w or y1 >= h or x2 <= 0 or y2 <= 0:
            raise DataError(f"exemplar [{i}]: box {list(ex.box)} lies outside its {w}x{h} image")
        boxed, scale, (pad_x, pad_y) = letterbox(img, imgsz)
        emb, points, pred_boxes = embed(boxed)
        box = torch.tensor([[max(x1, 0) * scale + pad_x, max(y1, 0) * scale + pad_y,
                             min(x2, w) * scale + pad_x, min(y2, h) * scale + pad_y]], dtype=points.dtype)
        pred = None if pred_boxes is None else pred_boxes.float()
        shots[ex.name or UNNAMED].append(pool_regions(emb.float(), points.float(), box, pred)[0])
    vectors = F.normalize(torch.stack([torch.stack(shots[n]).mean(0) for n in names]), dim=-1)
    named = [i for i, n in enumerate(names) if n != UNNAMED]
    if name_vectors is not None and named and text_weight > 0:
        text = name_vectors([names[i] for i in named]).to(vectors)
        vectors[named] = F.normalize((1 - text_weight) * vectors[named] + text_weight * text, dim=-1)
    return names, vectors


__all__ = ["UNNAMED", "Exemplar", "check_box", "exemplar_vectors", "group_names", "load_exemplars", "pool_regions"]
