"""Evaluation protocols of the benchmark (paper 001 §3, §5.1): closed, open (unseen vocabulary), generalized (both).

``evaluate`` works on saved COCO results, so ``rtvp val --predictions`` and the trainer's eval hook share one path:
predictions -> COCOeval -> summary + per class / scene / supercategory / frequency bucket (+ seen/unseen/HM), and
mask AP (:mod:`rtvp.evaluation.mask_eval`) when the results carry ``segmentation``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Literal

from rtvp.errors import DataError
from rtvp.evaluation.mask_eval import carries_masks, evaluate_masks, mask_seen_unseen
from rtvp.evaluation.metrics import harmonic_mean, mean_of, per_category_ap, run_cocoeval, summary
from rtvp.fileio import read_json

Protocol = Literal["closed", "open", "generalized"]
PROTOCOLS = ("closed", "open", "generalized")
RARE_MAX, FREQUENT_MIN = 10, 100  # LVIS-style buckets: rare < 10, common 10..100, frequent > 100 training instances


def protocol_files(bench: Path, protocol: str) -> tuple[Path, Path]:
    """``(val_json, train_json)`` of a benchmark for a protocol."""
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol '{protocol}'; choose one of {list(PROTOCOLS)}")
    prefix = "closed" if protocol == "closed" else "open"
    val, train = bench / "annotations" / f"{prefix}_val.json", bench / "annotations" / f"{prefix}_train.json"
    if not val.is_file():
        raise DataError(f"{val}: not found; is {bench} a benchmark built with `rtvp data build`?")
    return val, train


def load_json(source: str | Path | dict | list, what: str) -> Any:
    """Load JSON from a path (or pass a dict/list through); errors name the file."""
    if isinstance(source, (dict, list)):
        return source
    return read_json(source, f"{what} file")


def check_predictions(gt: dict, predictions: list, where: str = "predictions", from_file: bool = True) -> list[dict]:
    """Validate COCO results against ``gt``; the first bad entry raises ``DataError`` with its index.

    Checked: required keys, known image/category ids, 4 finite bbox numbers and, for a results file
    (``from_file``), width and height > 0 and a finite score (rtvp's own in-memory results may hold a box clipped to
    zero width at the image border, which COCOeval scores as a false positive).
    """
    if not isinstance(predictions, list):
        raise DataError(f"{where}: expected a JSON list of COCO results, got {type(predictions).__name__}")
    image_ids = {im["id"] for im in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    for i, p in enumerate(predictions):
        missing = {"image_id", "category_id", "bbox", "score"} - set(p) if isinstance(p, dict) else {"all keys"}
        if missing:
            raise DataError(f"{where}[{i}]: missing {sorted(missing)}; each result needs image_id, category_id, "
                            "bbox [x, y, w, h] and score")
        if p["image_id"] not in image_ids:
            raise DataError(f"{where}[{i}]: image_id {p['image_id']} is not in the ground truth")
        if p["category_id"] not in cat_ids:
            raise DataError(f"{where}[{i}]: category_id {p['category_id']} is not in the ground truth")
        box = p["bbox"]
        if not isinstance(box, list) or len(box) != 4 or not all(_finite(v) for v in box):
            raise DataError(f"{where}[{i}]: bbox must be 4 finite numbers [x, y, w, h], got {box}")
        if not from_file:
            continue
        if box[2] <= 0 or box[3] <= 0:
            raise DataError(f"{where}[{i}]: bbox {box} has width {box[2]} and height {box[3]}; both must be > 0 "
                            "(COCO results are [x, y, width, height], not [x1, y1, x2, y2])")
        if not _finite(p["score"]):
            raise DataError(f"{where}[{i}]: score must be a finite number, got {p['score']!r}; drop or rescore "
                            "that detection")
    return predictions


def _finite(v: Any) -> bool:
    """A real, finite number (``bool`` excluded)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def evaluate(
    gt: str | Path | dict,
    predictions: str | Path | list[dict],
    protocol: str = "closed",
    train_gt: str | Path | dict | None = None,
    backend: str = "pycocotools",
    plots_dir: Path | None = None,
    masks: bool = False,
) -> dict[str, Any]:
    """Evaluate COCO results under a protocol.

    Args:
        gt: val ground truth (path or COCO dict; categories carry ``split``, ``scene``, ``supercategory``).
        predictions: COCO results (path or list).
        protocol: ``closed`` (all classes), ``open`` (unseen classes only: GT and predictions restricted to them),
            ``generalized`` (all classes; adds AP_seen, AP_unseen and their harmonic mean HM).
        train_gt: training annotations, for the frequency buckets (omitted when None).
        backend: COCO eval implementation (``pycocotools`` or ``faster``; identical numbers).
        plots_dir: when given, PR curves and the confusion matrix are saved there as PNG.
        masks: score masks even when no result carries a ``segmentation`` (the results of a mask model that found
            nothing: mask AP 0, not absent); results that carry one are always scored.

    Returns:
        JSON-able dict: ``AP, AP50, AP75, APs, APm, APl`` (fractions, None without GT), ``per_class``,
        ``per_scene``, ``per_supercategory``, ``frequency`` (when ``train_gt``), and for ``generalized``
        ``AP_seen, AP_unseen, HM, AP50_seen, AP50_unseen, HM50``. When the results carry ``segmentation``:
        ``mask_AP, mask_AP50, mask_AP75`` (None without mask ground truth), ``mask_images`` and ``mask_classes`` (the
        images / classes with mask ground truth they were computed over), per class ``mask_AP`` and ``mask_AP50``,
        and for ``generalized`` ``mask_AP_seen, mask_AP_unseen``; without segmentation these keys are absent.
    """
    gt_d = load_json(gt, "ground-truth")
    from_file = not isinstance(predictions, list)
    where = str(predictions)[:200] if from_file else "predictions"
    preds = check_predictions(gt_d, load_json(predictions, "predictions"), where, from_file)
    masks = carries_masks(gt_d, preds, where) or masks
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol '{protocol}'; choose one of {list(PROTOCOLS)}")
    cats = {c["id"]: c for c in gt_d["categories"]}
    cat_ids = sorted(cats)
    if protocol == "open":
        cat_ids = [i for i in cat_ids if cats[i].get("split", "seen") == "unseen"]
        if not cat_ids:
            raise DataError("open protocol: the ground truth has no category with split 'unseen'")
        preds = [p for p in preds if p["category_id"] in set(cat_ids)]
    evaluator = run_cocoeval(gt_d, preds, cat_ids, backend)
    per_cat = per_category_ap(evaluator)
    if plots_dir is not None:
        from rtvp.evaluation.plots import save_eval_plots

        save_eval_plots(gt_d, preds, evaluator, Path(plots_dir))
    instances = Counter(a["category_id"] for a in gt_d["annotations"])
    result: dict[str, Any] = {"protocol": protocol, **summary(evaluator)}
    result["num_images"] = len(gt_d["images"])
    result["num_predictions"] = len(preds)
    result["per_class"] = {
        cats[c]["name"]: {**per_cat[c], "instances": instances.get(c, 0), "split": cats[c].get("split", "seen")}
        for c in cat_ids
    }
    result["per_scene"] = _group(per_cat, cats, "scene")
    result["per_supercategory"] = _group(per_cat, cats, "supercategory")
    if train_gt is not None:
        result["frequency"] = _frequency(per_cat, cats, load_json(train_gt, "training annotations"))
    if protocol == "generalized":
        result.update(_seen_unseen(per_cat, cats))
    if masks:
        _add_mask_metrics(result, gt_d, preds, cat_ids, cats, backend)
    return result


def _add_mask_metrics(result: dict[str, Any], gt: dict, preds: list[dict], cat_ids: list[int],
                      cats: dict[int, dict], backend: str) -> None:
    """Merge mask AP (summary, per class, generalized seen/unseen) into ``result`` in place."""
    mask_summary, mask_per_cat = evaluate_masks(gt, preds, cat_ids, backend)
    result.update(mask_summary)
    for c, v in mask_per_cat.items():
        result["per_class"][cats[c]["name"]].update(mask_AP=v["AP"], mask_AP50=v["AP50"])
    if result["protocol"] == "generalized":
        result.update(mask_seen_unseen(mask_per_cat, cats))


def _group(per_cat: dict[int, dict], cats: dict[int, dict], key: str) -> dict[str, dict]:
    """Mean per-class AP within each value of a category field (scene / supercategory)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for c in per_cat:
        groups[str(cats[c].get(key, ""))].append(c)
    return {
        name: {m: mean_of([per_cat[c][m] for c in ids]) for m in ("AP", "AP50")} | {"classes": len(ids)}
        for name, ids in sorted(groups.items())
    }


def _frequency(per_cat: dict[int, dict], cats: dict[int, dict], train: dict) -> dict[str, dict]:
    """LVIS-style buckets by training instances: rare < 10, common 10-100, frequent > 100."""
    counts = Counter(a["category_id"] for a in train.get("annotations", []))
    buckets: dict[str, list[int]] = {"rare": [], "common": [], "frequent": []}
    for c in per_cat:
        n = counts.get(c, 0)
        buckets["rare" if n < RARE_MAX else "frequent" if n > FREQUENT_MIN else "common"].append(c)
    return {
        b: {"AP": mean_of([per_cat[c]["AP"] for c in ids]), "AP50": mean_of([per_cat[c]["AP50"] for c in ids]),
            "classes": [cats[c]["name"] for c in ids]}
        for b, ids in buckets.items()
    }


def _seen_unseen(per_cat: dict[int, dict], cats: dict[int, dict]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for metric, suffix in (("AP", ""), ("AP50", "50")):
        seen = mean_of([v[metric] for c, v in per_cat.items() if cats[c].get("split", "seen") == "seen"])
        unseen = mean_of([v[metric] for c, v in per_cat.items() if cats[c].get("split") == "unseen"])
        out[f"AP{suffix}_seen"], out[f"AP{suffix}_unseen"] = seen, unseen
        out[f"HM{suffix}"] = harmonic_mean(seen, unseen)
    return out


def format_table(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows ``(name, value)`` of the headline metrics for printing."""
    keys = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AP_seen", "AP_unseen", "HM", "mask_AP", "mask_AP50",
            "mask_AP75", "mask_AP_seen", "mask_AP_unseen"]
    return [(k, "-" if metrics.get(k) is None else f"{metrics[k]:.4f}") for k in keys if k in metrics]
