"""Masks on real data: expert-n with and without the mask branch (box AP, mask AP, cost), crack length on CrackForest.

Benchmark: ``configs/benchmarks/mmioc-masks.yaml`` (magnetic tile, BSData, CrackForest: every instance has a mask),
closed protocol, stage 1 alone (expert-n) at the same budget with ``model.masks`` off and on, next to Ultralytics
YOLOv8n-seg trained from ``yolov8n-seg.yaml`` (scratch) on the ``rtvp data export --format yolo-seg`` export with the
same epochs, image size and batch, its boxes and masks scored by rtvp's evaluator (``--no-yolo`` skips it). Crack
length: each
CrackForest val ground-truth crack is matched to the predicted mask of highest IoU (any class); its skeleton length
(``rtvp.masks.measure_mask``) is compared with the ground-truth mask's, and per image the union of the predicted masks
with the union of the cracks, at each ``--length-conf`` threshold (mask probability 0.5) and at the confidence and
mask-probability thresholds calibrated together on the training images.
``--quick`` runs the same code on the tiny synthetic benchmark.

    python benchmarks/masks.py --epochs 30 --imgsz 320
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPO, BenchRun, Table, build_parser, config_hash, parse_args, pct
from _train import (
    Budget,
    evaluate_weights,
    make_config,
    quick_bench,
    recipe_bench,
    resolve_device,
    rtvp_cli,
    summarize,
    train_run,
)

RECIPE = REPO / "configs" / "benchmarks" / "mmioc-masks.yaml"
CRACK_SCENE = "road pavement"
CONF_GRID = (0.25, 0.15, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005)
"""Confidence thresholds :func:`calibration_table` tries on the training images."""
MASK_THR_GRID = (0.5, 0.4, 0.3, 0.2)
"""Mask probability thresholds (``Predictor(mask_thr=...)``, ``rtvp predict --mask-thr``) it tries with them."""


def _rel_errors(pairs: list[tuple[float, float, float]], n: int) -> dict[str, Any]:
    """Median relative length error and the share of the ``n`` ground-truth items measured within 10 %."""
    errors = [abs(p - g) / g for g, p, _ in pairs if g > 0]
    return {"median_rel_error": statistics.median(errors) if errors else None,
            "within_10pct": sum(e <= 0.10 for e in errors) / n if n else None}


def crack_lengths(weights: str, bench: Path, imgsz: int, confs: Sequence[float] = (0.25,),
                  scene: str = CRACK_SCENE, split: str = "closed_val",
                  mask_thr: float = 0.5) -> dict[str, dict[str, Any]]:
    """Skeleton length of predicted vs ground-truth crack masks on the ``split`` images of ``scene``, per threshold.

    Per crack: each ground-truth crack against the predicted mask of highest IoU. Per image: the union of the
    ground-truth cracks against the union of the predicted masks (the total crack length an inspector reads off).
    The model predicts once at the lowest threshold; each threshold keeps the detections at or above it. A pixel is
    in a mask when its mask probability exceeds ``mask_thr``.

    Returns:
        ``{str(conf): {"matched", "gt", "median_rel_error", "within_10pct", "pairs": [(gt_len, pred_len, iou)],
        "images", "image_median_rel_error", "image_within_10pct", "image_pairs": [(gt_len, pred_len, iou)]}}``.
    """
    from pycocotools.coco import COCO

    from rtvp.masks import measure_mask
    from rtvp.predict.predictor import Predictor

    coco = COCO(str(bench / "annotations" / f"{split}.json"))
    cats = [c["id"] for c in coco.loadCats(coco.getCatIds()) if c.get("scene") == scene]
    images = sorted({a["image_id"] for a in coco.loadAnns(coco.getAnnIds(catIds=cats))})
    predictor = Predictor(weights, conf=min(confs), imgsz=imgsz, mask_thr=mask_thr)
    paths = [bench / coco.imgs[i]["file_name"] for i in images]
    found = {conf: ([], []) for conf in confs}  # conf -> (pairs, image_pairs)
    n_gt = 0
    for image_id, dets in zip(images, predictor.predict(paths), strict=True):
        gts = [coco.annToMask(a).astype(bool) for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id, catIds=cats))]
        n_gt += len(gts)
        gt_all = np.logical_or.reduce(gts)
        gt_len = measure_mask(gt_all)["length_px"]
        for conf, (pairs, image_pairs) in found.items():
            masks = dets.mask[dets.confidence >= conf] if dets.mask is not None else np.zeros((0, *gt_all.shape), bool)
            pairs.extend(_crack_pairs(masks, gts, measure_mask))
            pred_all = masks.any(0) if len(masks) else np.zeros_like(gt_all)
            union = max(int((pred_all | gt_all).sum()), 1)
            image_pairs.append((gt_len, measure_mask(pred_all)["length_px"] if len(masks) else 0.0,
                                float((pred_all & gt_all).sum() / union)))
    out = {}
    for conf, (pairs, image_pairs) in found.items():
        per_image = _rel_errors(image_pairs, len(images))
        out[str(conf)] = {"gt": n_gt, "matched": len(pairs), **_rel_errors(pairs, n_gt), "pairs": pairs,
                          "images": len(images), "image_median_rel_error": per_image["median_rel_error"],
                          "image_within_10pct": per_image["within_10pct"], "image_pairs": image_pairs}
    return out


def _crack_pairs(masks: np.ndarray, gts: list[np.ndarray], measure: Any) -> list[tuple[float, float, float]]:
    """``(gt_len, pred_len, iou)`` of each ground-truth crack and its best-IoU predicted mask (skipped at IoU 0)."""
    if not len(masks):
        return []
    pred = masks.reshape(len(masks), -1)
    pairs = []
    for gt in gts:
        inter = (pred & gt.reshape(1, -1)).sum(1)
        iou = inter / np.maximum((pred | gt.reshape(1, -1)).sum(1), 1)
        best = int(iou.argmax())
        if iou[best] > 0:
            pairs.append((measure(gt)["length_px"], measure(masks[best])["length_px"], float(iou[best])))
    return pairs


def calibration_table(weights: str, bench: Path, imgsz: int, scene: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Per-image length figures on the *training* images at every :data:`MASK_THR_GRID` x :data:`CONF_GRID` pair.

    Returns:
        ``{str(mask_thr): {str(conf): {"image_median_rel_error", "image_within_10pct", "matched", "gt"}}}``.
    """
    table = {}
    for thr in MASK_THR_GRID:
        train = crack_lengths(weights, bench, imgsz, CONF_GRID, scene, split="closed_train", mask_thr=thr)
        table[str(thr)] = {c: {k: r[k] for k in ("image_median_rel_error", "image_within_10pct", "matched", "gt")}
                           for c, r in train.items()}
    return table


def calibrated(table: dict[str, dict[str, dict[str, Any]]], mask_thrs: Sequence[float]) -> tuple[float, float]:
    """The ``(conf, mask_thr)`` of ``table`` (:func:`calibration_table`) with the lowest median per-image error
    among the mask thresholds ``mask_thrs``.

    Chosen on the training images, without the val images, so the val figure there is not tuned on val (the model
    has seen these images, so they over-state its confidence: the chosen thresholds lean high, if anything). Ties
    go to the higher confidence, then to the mask threshold nearer 0.5; no figure at all gives the highest pair.
    """
    errors = {(float(c), float(t)): r["image_median_rel_error"] for t in map(str, mask_thrs)
              for c, r in table[t].items() if r["image_median_rel_error"] is not None}
    if not errors:
        return max(CONF_GRID), max(mask_thrs)
    return min(errors, key=lambda k: (errors[k], -k[0], abs(k[1] - 0.5)))


def length_rows(length: dict[str, Any]) -> list[list[Any]]:
    """Per-crack and per-image rows ``[unit, GT, measured, median error %, within 10 % %, median pred/GT]``."""
    rows = []
    for unit, n, found, prefix in (("crack (best-IoU mask)", length["gt"], length["matched"], ""),
                                   ("image (union of cracks)", length["images"], length["images"], "image_")):
        err, share = length[f"{prefix}median_rel_error"], length[f"{prefix}within_10pct"]
        ratios = [p / g for g, p, _ in length[f"{prefix}pairs"] if g > 0]
        rows.append([unit, n, found, None if err is None else 100 * err, None if share is None else 100 * share,
                     statistics.median(ratios) if ratios else None])
    return rows


def model_cost(scale: str, masks: bool, imgsz: int, nc: int) -> dict[str, float]:
    """Parameters (M) and forward GFLOPs of the expert with or without the mask branch at ``imgsz``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from rtvp.models import ExpertDetector

    model = ExpertDetector(scale, nc=nc, masks=masks).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, imgsz, imgsz))
    return {"params_M": sum(p.numel() for p in model.parameters()) / 1e6,
            "GFLOPs": counter.get_total_flops() / 1e9}


def yolo_seg_cell(args: Any, bench: Path, budget: Budget) -> dict[str, Any]:
    """Train YOLOv8n-seg in the Ultralytics venv, predict boxes + masks there, score both with rtvp's evaluator."""
    from _yolo import run_yolo, val_results

    from rtvp import evaluate

    export = bench.parent / f"{bench.name}-yolo-seg"
    if not (export / "data.yaml").is_file():
        rtvp_cli("data", "export", str(bench), "--format", "yolo-seg", "--out", str(export), "--overwrite")
    device = "cpu" if resolve_device(args.device) == "cpu" else "0"
    spec = {"data": str(export / "data.yaml"), "model": "yolov8n-seg.yaml", "epochs": budget.expert_epochs,
            "imgsz": budget.imgsz, "batch": budget.batch, "workers": 0, "threads": args.threads, "device": device,
            "seed": args.seed}
    spec["project"] = str(Path(args.runs_dir) / "masks" / "yolo")
    spec["name"] = f"yolov8n-seg-{config_hash([spec, str(export)])}"
    trained = run_yolo("train", spec, stream=True)
    results, _ = val_results(bench, trained["weights"], budget.imgsz, args.threads, device, masks=True, max_det=100)
    metrics = summarize(evaluate(bench / "annotations" / "closed_val.json", results, "closed"))
    cost = run_yolo("cost", {"model": "yolov8n-seg.yaml", "imgsz": budget.imgsz})
    return {"train": trained, "metrics": metrics, "predictions": len(results), "export": str(export),
            "cost": {"params_M": cost["params_M"], "GFLOPs": cost["gflops"]}}


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets-root", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--no-yolo", action="store_true", help="skip the Ultralytics YOLOv8n-seg baseline")
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="benchmark recipe (e.g. "
                        "benchmarks/recipes/crackforest.yaml for the crack-length measurement alone)")
    parser.add_argument("--no-plain", action="store_true", help="train only the model with the mask branch")
    parser.add_argument("--dice", type=float, default=0.0, help="also train the mask branch with this soft Dice "
                        "gain (loss.dice; 0: no such row)")
    parser.add_argument("--length-conf", type=float, nargs="+", default=[0.25, 0.1, 0.05],
                        help="confidence thresholds of the crack-length measurement (the first is `crack_length`)")
    args = parse_args(parser, argv)
    if args.quick:
        budget = Budget(scale="tiny", imgsz=96, batch=8, epochs=1, expert_epochs=1, workers=0)
        bench = quick_bench(args.runs_dir)
    else:
        budget = Budget(scale="n", imgsz=args.imgsz, batch=args.batch, epochs=1, expert_epochs=args.epochs, workers=0)
        bench = recipe_bench(args.recipe, args.datasets_root, args.runs_dir, workers=1)
    run = BenchRun("masks", args)
    nc = len(json.loads((bench / "annotations" / "closed_val.json").read_text())["categories"])
    table = Table("masks", f"Mask branch off/on, expert-{budget.scale} {budget.expert_epochs} epochs at "
                  f"{budget.imgsz} px, seed {args.seed} ({bench.name})",
                  ["Model", "AP", "AP50", "mask AP", "mask AP50", "params M", "GFLOPs", "train min"])
    raw: dict[str, Any] = {}
    cells = [(False, 0.0), (True, 0.0)][int(args.no_plain):] + ([(True, args.dice)] if args.dice > 0 else [])
    for masks, dice in cells:
        train = {"seed": args.seed, **({"loss": {"dice": dice}} if dice else {})}
        cfg = make_config(bench, "closed", budget, stage="expert", model={"masks": masks}, train=train)
        trained = train_run(cfg, args.runs_dir, f"expert-masks-{int(masks)}" + (f"-dice{dice:g}" if dice else ""))
        metrics = evaluate_weights(trained["best"], bench, "closed", budget.imgsz, device=args.device)
        cost = model_cost(budget.scale, masks, budget.imgsz, nc)
        name = f"expert-{budget.scale}" + (" + masks" if masks else "") + (f" + Dice {dice:g}" if dice else "")
        raw[name] = {"train": trained, "metrics": metrics, "cost": cost}
        if masks:
            scene = "metal" if args.quick else CRACK_SCENE
            on_train = calibration_table(trained["best"], bench, budget.imgsz, scene)
            conf05 = calibrated(on_train, [0.5])[0]  # the confidence alone, at the default mask threshold
            conf, thr = calibrated(on_train, MASK_THR_GRID)  # both together
            confs = sorted({*args.length_conf, conf05}, reverse=True)
            by_conf = crack_lengths(trained["best"], bench, budget.imgsz, confs, scene)
            joint = by_conf[str(conf)] if (conf, thr) == (conf05, 0.5) else crack_lengths(
                trained["best"], bench, budget.imgsz, [conf], scene, mask_thr=thr)[str(conf)]
            raw[name].update({"crack_length_by_conf": by_conf, "crack_length": by_conf[str(args.length_conf[0])],
                              "calibrated_conf_mask05": conf05, "calibrated_conf": conf, "calibrated_mask_thr": thr,
                              "crack_length_calibrated": joint, "calibration_on_train": on_train})
        table.rows.append([name, pct(metrics, "AP"), pct(metrics, "AP50"), pct(metrics, "mask_AP"),
                           pct(metrics, "mask_AP50"), cost.get("params_M"), cost.get("GFLOPs"),
                           trained["wall_s"] / 60])
    if not args.no_yolo:
        yolo = raw["YOLOv8n-seg (Ultralytics, scratch)"] = yolo_seg_cell(args, bench, budget)
        m, c = yolo["metrics"], yolo["cost"]
        table.rows.append(["YOLOv8n-seg (Ultralytics, scratch)", pct(m, "AP"), pct(m, "AP50"), pct(m, "mask_AP"),
                           pct(m, "mask_AP50"), c["params_M"], c["GFLOPs"], yolo["train"]["wall_s"] / 60])
    lengths = Table("crack_length", "Crack length on CrackForest val: predicted vs ground-truth mask skeleton",
                    ["Model", "conf", "mask thr", "unit", "GT", "measured", "median rel. error %",
                     "within 10 % (share of GT) %", "median pred/GT"])
    for name, cell in raw.items():
        if "crack_length_by_conf" not in cell:
            continue
        for conf, length in cell["crack_length_by_conf"].items():
            label = f"{conf} (calibrated)" if float(conf) == cell["calibrated_conf_mask05"] else conf
            lengths.rows.extend([name, label, 0.5, *row] for row in length_rows(length))
        conf, thr = cell["calibrated_conf"], cell["calibrated_mask_thr"]
        lengths.rows.extend([name, f"{conf} (calibrated)", f"{thr} (calibrated)", *row]
                            for row in length_rows(cell["crack_length_calibrated"]))
    notes = ["AP in %, rtvp evaluator for every row; mask AP over the images/classes with mask ground truth (all of "
             "them here). YOLOv8n-seg: Ultralytics predictions (conf 0.001, NMS IoU 0.7, max 100 per image, "
             "retina masks) scored by the same evaluator; its own validator's figures are in the raw JSON.",
             "Crack length: skeleton length (rtvp.masks.measure_mask) of the best-IoU predicted mask vs the "
             "ground-truth mask (per crack), and of the union of the predicted masks vs the union of the ground-truth "
             "cracks (per image; an image with no prediction measures 0), at each confidence threshold `conf` "
             "(rtvp predict's default is 0.25) with the mask probability threshold 0.5 (--mask-thr's default). "
             "(calibrated) with mask thr 0.5: the confidence threshold with the lowest median per-image error on "
             "the closed_train images at mask probability 0.5; (calibrated) in both columns: the pair of confidence "
             f"({', '.join(map(str, CONF_GRID))}) and mask probability ({', '.join(map(str, MASK_THR_GRID))}) "
             "thresholds with the lowest median per-image error on the closed_train images (chosen without the val "
             "images; raw: calibration_on_train). median pred/GT: the median ratio of the two lengths (below 1: the "
             "masks measure short)."]
    run.write([table, lengths], notes, extra={"raw": raw})


if __name__ == "__main__":
    main()
