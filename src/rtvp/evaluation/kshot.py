"""k-shot exemplar evaluation of the unseen classes: prompt by example boxes, score on the images left.

Per seeded draw: for every unseen class of ``open_val``, ``k`` of its (non-crowd) boxes are drawn at random; their
region embeddings become the class's prompt (``rtvp.predict.exemplars``; the class text is mixed in only with
``text_weight`` > 0); every image that lent an exemplar is removed, and the open protocol (unseen classes prompted,
GT restricted to them) is scored on the remaining images. Draws are repeated with seeds ``0..draws-1``; the result
holds each draw and the mean and sample standard deviation of AP and AP50.

Examples:
    >>> out = kshot_eval("best.pt", Path("runs/mmioc-mini"), k=5)  # doctest: +SKIP
    >>> out["AP50_mean"], out["AP50_sd"]  # doctest: +SKIP
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np

from rtvp.boxes import xywh_to_xyxy
from rtvp.errors import DataError
from rtvp.evaluation.evaluator import evaluate, load_json
from rtvp.predict.exemplars import Exemplar
from rtvp.predict.inputs import coco_results
from rtvp.predict.predictor import Predictor


def draw_exemplars(gt: dict[str, Any], k: int, seed: int) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]],
                                                                    set[int]]:
    """``k`` random boxes per unseen class: ``([(category, annotation)], ids of the images they come from)``.

    Raises:
        DataError: no unseen class, or an unseen class with fewer than ``k`` boxes.
    """
    rng = np.random.default_rng(seed)
    unseen = [c for c in gt["categories"] if c.get("split", "seen") == "unseen"]
    if not unseen:
        raise DataError("k-shot: the split has no unseen category")
    picked = []
    for cat in sorted(unseen, key=lambda c: c["id"]):
        anns = sorted((a for a in gt["annotations"] if a["category_id"] == cat["id"] and not a.get("iscrowd", 0)),
                      key=lambda a: a["id"])
        if len(anns) < k:
            raise DataError(f"k-shot: unseen class '{cat['name']}' has {len(anns)} boxes, fewer than k={k}")
        picked += [(cat, anns[i]) for i in sorted(rng.choice(len(anns), size=k, replace=False))]
    return picked, {a["image_id"] for _, a in picked}


def kshot_eval(weights: str | Path | dict, bench: Path, k: int, draws: int = 3, split: str = "open_val",
               imgsz: int | None = None, text_weight: float = 0.0, device: str = "cpu",
               batch: int = 8, iou_pooling: bool = True) -> dict[str, Any]:
    """Score exemplar prompts of the unseen classes (see the module docstring).

    Args:
        weights: RTVPNet checkpoint.
        bench: benchmark folder.
        k: boxes per unseen class.
        draws: seeded draws (seeds ``0..draws-1``).
        split: the split the exemplars come from and that is scored.
        imgsz: inference size (default: the checkpoint's).
        text_weight: weight of the class text in each prompt (0: the boxes alone).
        device: torch device.
        batch: images per forward pass.
        iou_pooling: pool each exemplar over the anchors whose predicted boxes match it (``Predictor.exemplar_iou``;
            False: every anchor centre inside the box).

    Returns:
        ``{"k", "text_weight", "draws": [{"seed", "AP", "AP50", "scored_images", "exemplar_images"}], "AP_mean",
        "AP_sd", "AP50_mean", "AP50_sd"}`` (fractions; sd is None for a single draw).
    """
    bench = Path(bench)
    gt = load_json(bench / "annotations" / f"{split}.json", "ground-truth")
    pred = Predictor(weights, device=device, imgsz=imgsz, conf=0.001, max_det=300, batch=batch)
    pred.exemplar_iou = iou_pooling
    files = {im["id"]: im["file_name"] for im in gt["images"]}
    rows = []
    for seed in range(draws):
        picked, used = draw_exemplars(gt, k, seed)
        cat_of = {str(c.get("text") or c["name"]): c["id"] for c, _ in picked}  # prompt name -> category id
        shots = [Exemplar(bench / files[a["image_id"]], tuple(float(v) for v in xywh_to_xyxy(a["bbox"])[0]),
                          str(c.get("text") or c["name"])) for c, a in picked]
        pred.set_exemplars(shots, text_weight=text_weight)
        cat_ids = [cat_of[p] for p in pred.prompts]  # prompt order -> category
        images = [im for im in gt["images"] if im["id"] not in used]
        results = []
        for im, dets in zip(images, pred.predict([bench / im["file_name"] for im in images]), strict=True):
            results += coco_results(dets, im["id"], category_ids=cat_ids)
        scored = {**gt, "images": images, "annotations": [a for a in gt["annotations"] if a["image_id"] not in used]}
        m = evaluate(scored, results, "open")
        rows.append({"seed": seed, "AP": m["AP"], "AP50": m["AP50"], "scored_images": len(images),
                     "exemplar_images": len(used)})
    out: dict[str, Any] = {"k": k, "text_weight": text_weight, "iou_pooling": iou_pooling, "draws": rows}
    for key in ("AP", "AP50"):
        values = [r[key] for r in rows if r[key] is not None]
        out[f"{key}_mean"] = statistics.fmean(values) if values else None
        out[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else None
    return out


__all__ = ["draw_exemplars", "kshot_eval"]
