"""Visual grounding: a phrase ("crack near the left edge") -> the best box(es), and Acc@0.5 on a benchmark.

The query is split (``rtvp.tasks.query.parse_constraints``) into a defect phrase and location / size / shape words.
The defect phrase is the single-prompt vocabulary of the detector (it resolves through the controlled vocabulary in
the predictor, so "裂纹" works); an empty phrase ("near the left edge") uses the checkpoint's vocabulary. Candidates
are re-ranked by ``score = confidence * prior`` where ``prior`` is the soft spatial prior documented in
``rtvp.tasks.query`` (1 for a box that satisfies every constraint, smaller the further it is from them), so the words
re-order the detector's candidates without discarding any.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rtvp.boxes import iou_xyxy
from rtvp.errors import DataError
from rtvp.fileio import read_json
from rtvp.structures import Detections
from rtvp.tasks.query import Constraints, canonical_term, constraint_prior, parse_constraints

IOU_THRESHOLD = 0.5


class SupportsPredict(Protocol):
    """The part of ``rtvp.predict.predictor.Predictor`` grounding needs."""

    def predict(self, sources: list[Any], prompts: list[str] | None = None) -> list[Detections]:
        """Detections per source for a vocabulary (None: the checkpoint's)."""
        ...


@dataclass(frozen=True)
class GroundingQuery:
    """A parsed grounding query.

    Attributes:
        query: the text as given.
        phrase: the defect phrase sent to the detector as its only prompt ("" -> checkpoint vocabulary).
        defect: canonical vocabulary term of the phrase, or None (free text / empty).
        constraints: location / size / shape constraints.
    """

    query: str
    phrase: str
    defect: str | None
    constraints: Constraints


@dataclass
class GroundedBox:
    """One grounded box: ``score = confidence * prior``; ``index`` is the row in the detector's ``Detections``."""

    index: int
    box: list[float]
    label: str
    confidence: float
    prior: float
    score: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)


def parse_query(query: str) -> GroundingQuery:
    """Split a grounding query into defect phrase and constraints.

    Examples:
        >>> q = parse_query("crack near the left edge")
        >>> q.phrase, q.defect, q.constraints.edges
        ('crack', 'crack', ('left',))
    """
    if not isinstance(query, str) or not query.strip():
        raise DataError('empty grounding query: give a defect phrase, e.g. "crack near the left edge"')
    constraints, phrase = parse_constraints(query)
    return GroundingQuery(query, phrase, canonical_term(phrase) if phrase else None, constraints)


def rank(dets: Detections, width: int, height: int, constraints: Constraints, top_k: int = 1) -> list[GroundedBox]:
    """Re-rank detections by ``confidence * prior`` and keep the best ``top_k`` (ties keep detector order).

    Args:
        dets: candidates in original pixels.
        width: image width in pixels.
        height: image height in pixels.
        constraints: parsed location / size / shape words.
        top_k: how many boxes to return (fewer when there are fewer candidates).
    """
    if top_k < 1:
        raise DataError(f"top_k must be >= 1, got {top_k}")
    prior = constraint_prior(dets.xyxy, width, height, constraints)
    score = dets.confidence.astype(np.float64) * prior
    order = np.argsort(-score, kind="stable")[:top_k]
    return [GroundedBox(int(i), [round(float(v), 1) for v in dets.xyxy[i]], dets.labels[i],
                        _sig(dets.confidence[i]), _sig(prior[i]), _sig(score[i])) for i in order.tolist()]


def _sig(v: float) -> float:
    """Four significant digits (small priors stay readable)."""
    return float(f"{float(v):.4g}")


def image_size(image: str | Path | np.ndarray) -> tuple[int, int]:
    """``(width, height)`` of an image path (header only) or an ``(H, W[, C])`` array."""
    if isinstance(image, np.ndarray):
        return int(image.shape[1]), int(image.shape[0])
    path = Path(image)
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            return int(arr.shape[1]), int(arr.shape[0])
        from PIL import Image

        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from e


def ground(
    predictor: SupportsPredict,
    image: str | Path | np.ndarray,
    query: str,
    top_k: int = 1,
    size: tuple[int, int] | None = None,
) -> list[GroundedBox]:
    """Ground a phrase in one image.

    Args:
        predictor: a ``Predictor`` (or anything with ``predict(sources, prompts)``).
        image: image path or ``(H, W, C)`` uint8 RGB array.
        query: e.g. ``"crack near the left edge"``, ``"the largest hole"``, ``"左上角的划痕"``.
        top_k: number of boxes to return.
        size: ``(width, height)`` when already known (skips reading the image header).

    Returns:
        Up to ``top_k`` boxes, best first; empty when the detector finds nothing above its threshold.
    """
    q = parse_query(query)
    width, height = size or image_size(image)
    if not q.phrase and hasattr(predictor, "set_prompts"):
        predictor.set_prompts(None)  # no defect words: the checkpoint's whole vocabulary
    results = predictor.predict([image], prompts=[q.phrase] if q.phrase else None)
    if not results:
        return []
    return rank(results[0], width, height, q.constraints, top_k)


def _split_file(bench: Path, split: str, protocol: str) -> Path:
    ann = bench / "annotations"
    for name in (split, f"{'closed' if protocol == 'closed' else 'open'}_{split}"):
        if (ann / f"{name}.json").is_file():
            return ann / f"{name}.json"
    raise DataError(f"{ann}: no '{split}.json' (or '{protocol}' split of it); give closed_val, open_val, val, ...")


def grounding_queries(coco: dict, protocol: str) -> list[tuple[dict, dict, str, str | None, np.ndarray]]:
    """``(image, category, query, location, gt_boxes (M, 4) xyxy)`` per (image, class present).

    The class text is the query; when the class appears once in the image and its annotation has
    ``attributes.location``, the query gets that location ("... at the top-left"). Protocol ``open`` keeps unseen
    classes only.
    """
    cats = {c["id"]: c for c in coco.get("categories", [])
            if protocol != "open" or c.get("split", "seen") == "unseen"}
    by_image: dict[int, dict[int, list[dict]]] = {}
    for a in coco.get("annotations", []):
        if a["category_id"] in cats and not a.get("iscrowd", 0):
            by_image.setdefault(a["image_id"], {}).setdefault(a["category_id"], []).append(a)
    out = []
    for img in coco.get("images", []):
        for cid, anns in sorted(by_image.get(img["id"], {}).items()):
            cat = cats[cid]
            text = cat.get("text") or cat["name"]
            loc = (anns[0].get("attributes") or {}).get("location") if len(anns) == 1 else None
            query = f"{text} {'in the' if loc == 'center' else 'at the'} {loc}" if loc else text
            gts = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], dtype=np.float64)
            out.append((img, cat, query, loc, gts))
    return out


def evaluate_grounding(
    predictor: SupportsPredict,
    bench: str | Path,
    split: str = "val",
    protocol: str = "closed",
) -> dict[str, Any]:
    """Grounding Acc@0.5 on a benchmark split (queries from ``grounding_queries``).

    A query is correct when its top-1 box has IoU >= 0.5 with a GT box of the queried class (a query with a location
    word is only made when the class occurs once, so that box is the one at that location).

    Args:
        predictor: ``Predictor`` (run it with a low ``conf`` so every query gets a candidate).
        bench: benchmark folder built by ``rtvp data build``.
        split: ``closed_val``/``open_val``/... or ``val``/``train`` (prefixed by the protocol).
        protocol: ``closed``/``generalized`` (all classes) or ``open`` (unseen classes only).

    Returns:
        ``{"acc@0.5", "queries", "correct", "with_location": {...}, "per_type": {text: {"acc@0.5", "queries"}},
        "split", "protocol"}`` (accuracies None when there are no queries).
    """
    bench = Path(bench)
    path = _split_file(bench, split, protocol)
    coco = read_json(path, "annotation file")
    per_type: dict[str, list[int]] = {}
    with_loc = [0, 0]
    for img, cat, query, loc, gts in grounding_queries(coco, protocol):
        top = ground(predictor, bench / img["file_name"], query, 1, size=(img["width"], img["height"]))
        hit = int(bool(top) and float(iou_xyxy(np.asarray(top[0].box), gts).max()) >= IOU_THRESHOLD)
        stats = per_type.setdefault(cat.get("text") or cat["name"], [0, 0])
        stats[0], stats[1] = stats[0] + hit, stats[1] + 1
        if loc:
            with_loc[0], with_loc[1] = with_loc[0] + hit, with_loc[1] + 1
    correct, n = sum(s[0] for s in per_type.values()), sum(s[1] for s in per_type.values())

    def acc(c: int, q: int) -> float | None:
        return round(c / q, 4) if q else None

    return {"acc@0.5": acc(correct, n), "queries": n, "correct": correct,
            "with_location": {"acc@0.5": acc(*with_loc), "queries": with_loc[1]},
            "per_type": {k: {"acc@0.5": acc(*v), "queries": v[1]} for k, v in per_type.items()},
            "split": path.stem, "protocol": protocol}
