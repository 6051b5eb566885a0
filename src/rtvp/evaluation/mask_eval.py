"""Mask AP (COCOeval ``iouType="segm"``) next to box AP, over the part of a split that has mask ground truth.

Benchmarks mix sources with instance masks and box-only sources, so mask AP is computed only over

* the **images** with at least one evaluated-class annotation whose ``segmentation`` is non-empty, and
* the **classes** with at least one such annotation,

and reported with those counts (``mask_images``, ``mask_classes``). A box-only annotation inside such an image
becomes an ignore region (its box as a crowd polygon): it is not a missed mask, and a detection on it is neither a
true nor a false positive. Detections on other images or classes are left out of mask AP (they still count for box
AP).

Examples:
    >>> if carries_masks(gt, results):  # doctest: +SKIP
    ...     summary, per_cat = evaluate_masks(gt, results, cat_ids=[1, 2])
    >>> summary["mask_AP"], summary["mask_images"]  # doctest: +SKIP
    (0.71, 37)
"""

from __future__ import annotations

from typing import Any

from rtvp.errors import DataError
from rtvp.evaluation.metrics import mean_of, per_category_ap, run_cocoeval, summary

MASK_KEYS = ("mask_AP", "mask_AP50", "mask_AP75")


def has_mask(segmentation: Any) -> bool:
    """Whether a COCO ``segmentation`` holds a mask: an RLE dict, or polygons with at least 3 points.

    ``None``, ``[]``, ``{}`` and lists of degenerate polygons (< 6 numbers) are "no mask" (box-only sources).
    """
    if isinstance(segmentation, dict):
        return "counts" in segmentation and "size" in segmentation
    if isinstance(segmentation, list):
        return any(isinstance(p, list) and len(p) >= 6 for p in segmentation)
    return False


def carries_masks(gt: dict[str, Any], predictions: list[dict[str, Any]], where: str = "predictions") -> bool:
    """Whether COCO results carry masks; validates every ``segmentation`` against the image sizes of ``gt``.

    Either no result has a ``segmentation`` key (box-only results: False) or all of them have a valid one.

    Raises:
        DataError: naming the first bad result's index: a missing or null segmentation next to others, one that is
            neither an RLE dict ``{"size": [h, w], "counts": str}`` nor polygons, or an RLE size other than the
            image's ``[height, width]`` (masks must be in original image pixels).
    """
    if not any(isinstance(p, dict) and "segmentation" in p for p in predictions):
        return False
    sizes = {im["id"]: [int(im["height"]), int(im["width"])] for im in gt["images"]}
    for i, p in enumerate(predictions):
        seg = p.get("segmentation")
        if seg is None:
            raise DataError(f"{where}[{i}]: no 'segmentation' while other results carry one; give every result a "
                            "mask (RLE {size, counts}) or drop the key from all of them for box-only AP")
        if isinstance(seg, dict):
            if not isinstance(seg.get("counts"), (str, list)) or "size" not in seg:
                raise DataError(f"{where}[{i}]: segmentation must be an RLE dict {{'size': [h, w], 'counts': str}}, "
                                f"got keys {sorted(seg)} with counts of type {type(seg.get('counts')).__name__}")
            if list(seg["size"]) != sizes[p["image_id"]]:
                raise DataError(f"{where}[{i}]: segmentation size {list(seg['size'])} differs from image "
                                f"{p['image_id']}'s [height, width] {sizes[p['image_id']]}; masks must be in original "
                                "image pixels (not the letterboxed input)")
        elif not (isinstance(seg, list) and all(isinstance(poly, list) for poly in seg)):
            raise DataError(f"{where}[{i}]: segmentation must be an RLE dict {{'size': [h, w], 'counts': str}} or "
                            f"a list of polygons [[x1, y1, x2, y2, ...]], got {type(seg).__name__}")
    return True


def mask_ground_truth(gt: dict[str, Any], cat_ids: list[int]) -> tuple[dict[str, Any], list[int], list[int]]:
    """The part of ``gt`` that mask AP is computed over (see the module docstring).

    Args:
        gt: COCO ground truth; ``segmentation`` may be polygons, an RLE dict, empty or absent per annotation.
        cat_ids: the protocol's evaluated categories.

    Returns:
        ``(mask_gt, image_ids, mask_cat_ids)``: a COCO dict of the mask images whose annotations of the mask classes
        all carry a ``segmentation`` (box-only ones as crowd ignore regions), and the sorted image and class ids.
        Both lists are empty when no evaluated annotation has a mask.
    """
    evaluated = set(cat_ids)
    masked = [a for a in gt["annotations"] if a["category_id"] in evaluated and has_mask(a.get("segmentation"))]
    image_ids, mask_cats = {a["image_id"] for a in masked}, {a["category_id"] for a in masked}
    anns = []
    for a in gt["annotations"]:
        if a["image_id"] not in image_ids or a["category_id"] not in mask_cats:
            continue
        x, y, w, h = (float(v) for v in a["bbox"])
        ann = dict(a, area=a.get("area", w * h))
        if has_mask(a.get("segmentation")):
            seg = a["segmentation"]
            ann["segmentation"] = seg if isinstance(seg, dict) else [p for p in seg if len(p) >= 6]
        else:
            ann.update(segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]], iscrowd=1)
        anns.append(ann)
    images = [im for im in gt["images"] if im["id"] in image_ids]
    return ({"images": images, "annotations": anns, "categories": gt["categories"]},
            sorted(image_ids), sorted(mask_cats))


def evaluate_masks(
    gt: dict[str, Any],
    predictions: list[dict[str, Any]],
    cat_ids: list[int],
    backend: str = "pycocotools",
) -> tuple[dict[str, Any], dict[int, dict[str, float | None]]]:
    """Mask AP of COCO results that carry ``segmentation`` (check them with :func:`carries_masks` first).

    Args:
        gt: COCO ground truth of the split.
        predictions: COCO results with ``segmentation`` (RLE in original image pixels).
        cat_ids: the protocol's evaluated categories.
        backend: ``"pycocotools"`` or ``"faster"``.

    Returns:
        ``(summary, per_cat)``: ``summary`` holds ``mask_AP``, ``mask_AP50``, ``mask_AP75`` (fractions; None when no
        evaluated class has mask ground truth), ``mask_images`` and ``mask_classes`` (what they were computed over);
        ``per_cat`` maps each mask class id to its ``AP``, ``AP50``, ``AP75``.
    """
    mask_gt, image_ids, mask_cats = mask_ground_truth(gt, cat_ids)
    out: dict[str, Any] = {k: None for k in MASK_KEYS} | {"mask_images": len(image_ids),
                                                          "mask_classes": len(mask_cats)}
    if not image_ids:
        return out, {}
    images, cats = set(image_ids), set(mask_cats)
    preds = [p for p in predictions if p["image_id"] in images and p["category_id"] in cats]
    evaluator = run_cocoeval(mask_gt, preds, mask_cats, backend, iou_type="segm")
    box_keys = summary(evaluator)
    out.update({f"mask_{k}": box_keys[k] for k in ("AP", "AP50", "AP75")})
    return out, per_category_ap(evaluator)


def mask_seen_unseen(per_cat: dict[int, dict[str, float | None]], cats: dict[int, dict]) -> dict[str, float | None]:
    """``mask_AP_seen`` / ``mask_AP_unseen``: mean per-class mask AP of the seen / unseen mask classes (or None)."""
    return {
        f"mask_AP_{split}": mean_of([v["AP"] for c, v in per_cat.items() if cats[c].get("split", "seen") == split])
        for split in ("seen", "unseen")
    }


def mask_scope(metrics: dict[str, Any]) -> str | None:
    """The line that states what mask AP was computed over (None when the results carried no masks)."""
    if "mask_images" not in metrics:
        return None
    if not metrics["mask_images"]:
        return ("mask AP not computed: no image of this split has mask ground truth for the evaluated classes "
                "(box-only annotations)")
    return (f"mask AP over {metrics['mask_images']} images / {metrics['mask_classes']} classes with mask ground "
            "truth (box-only images and classes are left out)")
