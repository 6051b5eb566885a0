"""COCO-API detection metrics: run COCOeval (boxes, or masks with ``iou_type="segm"``), turn its arrays into AP.

We use pycocotools (the reference implementation) by default; ``backend="faster"`` switches to
faster-coco-eval's C++ ``COCOeval_faster``, a drop-in whose numbers are identical
(tests/unit/evaluation/test_evaluator.py compares both on random predictions).
"""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import numpy as np

from rtvp.errors import ConfigError

SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
BACKENDS = ("pycocotools", "faster")
IOU_TYPES = ("bbox", "segm")


def _api(backend: str) -> tuple[type, type]:
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    if backend == "faster":
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ImportError:
            raise ConfigError("--backend faster needs faster-coco-eval: pip install 'rtvp[eval]' (or use the default "
                              "--backend pycocotools; the numbers are identical)") from None

        return COCO, COCOeval_faster
    raise ValueError(f"unknown COCO eval backend '{backend}'; choose one of {list(BACKENDS)}")


def make_coco(dataset: dict[str, Any], backend: str = "pycocotools") -> Any:
    """Index a COCO dict (ground truth or detections in dataset form) without printing."""
    coco_cls, _ = _api(backend)
    coco = coco_cls()
    coco.dataset = copy.deepcopy(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def results_as_dataset(gt: dict[str, Any], results: list[dict[str, Any]], iou_type: str = "bbox") -> dict[str, Any]:
    """COCO results list -> a detections dataset (what ``COCO.loadRes`` builds, but empty lists are allowed).

    For ``iou_type="segm"`` each result's ``segmentation`` (RLE dict or polygons) is carried and ``area`` is the
    mask's pixel area, as ``COCO.loadRes`` does; for ``"bbox"`` any segmentation is left out and ``area`` is ``w * h``.
    """
    sizes = {im["id"]: (int(im["height"]), int(im["width"])) for im in gt["images"]} if iou_type == "segm" else {}
    anns = []
    for i, r in enumerate(results, start=1):
        x, y, w, h = (float(v) for v in r["bbox"])
        ann = {"id": i, "image_id": int(r["image_id"]), "category_id": int(r["category_id"]),
               "bbox": [x, y, w, h], "area": w * h, "score": float(r["score"]), "iscrowd": 0}
        if iou_type == "segm":
            ann["segmentation"] = r["segmentation"]
            ann["area"] = mask_area(r["segmentation"], *sizes[ann["image_id"]])
        anns.append(ann)
    return {"images": gt["images"], "categories": gt["categories"], "annotations": anns}


def mask_area(segmentation: dict[str, Any] | list[list[float]], height: int, width: int) -> float:
    """Pixel area of a COCO segmentation: an RLE dict (compressed ``counts`` str, or uncompressed list) or polygons."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, dict):
        rle = segmentation
        if isinstance(rle["counts"], list):
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        else:
            rle = {"size": rle["size"], "counts": str(rle["counts"]).encode()}
    else:
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    return float(mask_utils.area(rle))


def run_cocoeval(
    gt: dict[str, Any],
    results: list[dict[str, Any]],
    cat_ids: list[int] | None = None,
    backend: str = "pycocotools",
    iou_type: str = "bbox",
) -> Any:
    """Evaluate results against ``gt`` restricted to ``cat_ids``; returns the accumulated COCOeval.

    Args:
        gt: COCO ground-truth dict (for ``segm``, every annotation needs a ``segmentation``).
        results: COCO results (``image_id``, ``category_id``, ``bbox`` xywh, ``score``; ``segmentation`` for ``segm``).
        cat_ids: categories to evaluate (default all in ``gt``).
        backend: ``"pycocotools"`` or ``"faster"``.
        iou_type: ``"bbox"`` (box IoU) or ``"segm"`` (mask IoU).
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"unknown COCO iou_type '{iou_type}'; choose one of {list(IOU_TYPES)}")
    _, eval_cls = _api(backend)
    coco_gt = make_coco(gt, backend)
    coco_dt = make_coco(results_as_dataset(gt, results, iou_type), backend)
    evaluator = eval_cls(coco_gt, coco_dt, iou_type)
    if cat_ids is not None:
        evaluator.params.catIds = sorted(cat_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _frac(v: float) -> float | None:
    """COCOeval uses -1 for 'no ground truth'; report that as None."""
    return None if v < 0 else float(v)


def summary(evaluator: Any) -> dict[str, float | None]:
    """AP, AP50, AP75, APs, APm, APl (fractions; None where no ground truth)."""
    return {k: _frac(evaluator.stats[i]) for i, k in enumerate(SUMMARY_KEYS)}


def per_category_ap(evaluator: Any) -> dict[int, dict[str, float | None]]:
    """Per-category AP (IoU .50:.95), AP50 and AP75 from the accumulated precision array.

    ``precision`` has shape ``(T, R, K, A, M)`` = (IoU thresholds, recall points, categories, area ranges, max dets);
    we take area "all" (index 0) and the largest max-dets setting, averaging only valid (> -1) entries.
    """
    precision = np.asarray(evaluator.eval["precision"])
    iou_thrs = np.asarray(evaluator.params.iouThrs)
    i50 = int(np.argmin(np.abs(iou_thrs - 0.5)))
    i75 = int(np.argmin(np.abs(iou_thrs - 0.75)))
    out = {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]
        out[int(cat_id)] = {"AP": _mean_valid(p), "AP50": _mean_valid(p[i50]), "AP75": _mean_valid(p[i75])}
    return out


def _mean_valid(a: np.ndarray) -> float | None:
    valid = a[a > -1]
    return float(valid.mean()) if valid.size else None


def mean_of(values: list[float | None]) -> float | None:
    """Mean of the defined values (None when none is defined)."""
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def harmonic_mean(a: float | None, b: float | None) -> float | None:
    """Harmonic mean of two fractions (0 when either is 0; None when either is undefined)."""
    if a is None or b is None:
        return None
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def pr_curves(evaluator: Any, iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Precision at the 101 COCO recall points per category at IoU ``iou`` (area all, max dets largest).

    Returns:
        ``(recall (101,), precision (K, 101))``; undefined entries are NaN.
    """
    precision = np.asarray(evaluator.eval["precision"], dtype=np.float64)
    t = int(np.argmin(np.abs(np.asarray(evaluator.params.iouThrs) - iou)))
    p = precision[t, :, :, 0, -1].T.copy()
    p[p < 0] = np.nan
    return np.asarray(evaluator.params.recThrs), p
