"""Deployment accuracy: AP of one checkpoint on a benchmark val split through PyTorch (``rtvp val``'s path), ONNX
Runtime, OpenVINO fp32 and OpenVINO NNCF int8, with the same COCO thresholds (conf 0.001, IoU 0.7, 300 per image).

The exported files bake the checkpoint's own vocabulary; class ``k`` is reported as the category whose text is the
checkpoint's ``k``-th class. Int8 calibration images come from another split (``--calib-split``, default
``closed_train``) so the val images are never seen by the quantizer.

    python benchmarks/deploy_ap.py --weights runs/expert/weights/best.pt --bench demo/bench
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import BenchRun, Cell, Table, build_parser, parse_args

KEYS = ("AP", "AP50", "AP75")


def runner_results(runner: Any, bench: Path, val: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
    """COCO results of an exported-model runner over every val image, and its mean ms/image (letterbox + NMS)."""
    from rtvp.predict.inputs import coco_results

    by_text = {str(c.get("text") or c["name"]): int(c["id"]) for c in val["categories"]}
    missing = [n for n in runner.class_names if n not in by_text]
    if missing:
        raise SystemExit(f"classes {missing} of the exported model are not categories of the split")
    cat_ids = [by_text[n] for n in runner.class_names]
    results, t = [], time.perf_counter()
    for im in val["images"]:
        dets = runner.predict([bench / im["file_name"]])
        if len(dets) != 1:
            raise SystemExit(f"{bench / im['file_name']}: unreadable")
        results += coco_results(dets[0], int(im["id"]), category_ids=cat_ids)
    return results, 1000 * (time.perf_counter() - t) / max(1, len(val["images"]))


def measure(args: Any, run: BenchRun, fmt: str) -> dict[str, Any]:
    """Metrics of one runtime (``pytorch`` | ``onnx`` | ``openvino`` | ``openvino-int8``)."""
    import json

    from rtvp.evaluation.evaluator import evaluate
    from rtvp.evaluation.inference import EVAL_CONF, EVAL_IOU, EVAL_MAX_DET, predict_split

    val_path = args.bench / "annotations" / f"{args.split}.json"
    val = json.loads(val_path.read_text(encoding="utf-8"))
    t = time.perf_counter()
    extra: dict[str, Any] = {}
    if fmt == "pytorch":
        results = predict_split(args.weights, args.bench, args.split, "closed", imgsz=args.imgsz, batch=1)
        extra["ms_per_image"] = 1000 * (time.perf_counter() - t) / len(val["images"])
    else:
        out = run.run_dir / f"model-{fmt}.{'onnx' if fmt == 'onnx' else 'xml'}"
        thresholds = {"conf": EVAL_CONF, "iou": EVAL_IOU, "max_det": EVAL_MAX_DET}
        if fmt == "onnx":
            from rtvp.deploy.export import export_onnx
            from rtvp.deploy.onnx_runner import OnnxPredictor

            export_onnx(args.weights, out, imgsz=args.imgsz, **thresholds)
            runner: Any = OnnxPredictor(out, threads=args.threads, batch=1)
        else:
            from rtvp.deploy.openvino_export import calibration_images, export_openvino
            from rtvp.deploy.openvino_runner import OpenVINOPredictor

            int8 = fmt == "openvino-int8"
            calib = calibration_images(args.bench, args.calib_split, args.calib_images) if int8 else []
            side = export_openvino(args.weights, out, imgsz=args.imgsz, int8=int8, calib=calib,
                                   calib_source=f"{args.calib_split} ({len(calib)} images)", **thresholds)
            extra["calibration"] = side["calibration"]
            runner = OpenVINOPredictor(out, threads=args.threads, batch=1)
        extra["export_s"] = time.perf_counter() - t
        results, extra["ms_per_image"] = runner_results(runner, args.bench, val)
    metrics = evaluate(val_path, results, "closed")
    return {**{k: metrics[k] for k in KEYS}, "detections": len(results), **extra}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, required=True, help="checkpoint (expert or rtvpnet)")
    parser.add_argument("--bench", type=Path, required=True, help="benchmark folder")
    parser.add_argument("--split", default="closed_val")
    parser.add_argument("--calib-split", default="closed_train")
    parser.add_argument("--calib-images", type=int, default=32)
    parser.add_argument("--imgsz", type=int, default=None, help="default: the checkpoint's")
    args = parse_args(parser, argv)
    run = BenchRun("deploy_ap", args)
    config = {"weights": str(args.weights), "bench": str(args.bench), "split": args.split, "imgsz": args.imgsz,
              "calib": [args.calib_split, args.calib_images]}
    fmts = ("pytorch", "onnx", "openvino", "openvino-int8")
    res = run.run_cells([Cell(f, f"AP via {f}", config, lambda f=f: measure(args, run, f)) for f in fmts])
    ref = res["pytorch"]["AP"]
    table = Table("deploy_ap", f"AP on {args.split} of {args.weights.name} per runtime (COCO, %)",
                  ["Runtime", "AP", "AP50", "AP75", "AP - PyTorch", "detections", "ms/img (end to end)"], digits=2)
    labels = {"pytorch": "PyTorch fp32 (rtvp val)", "onnx": "ONNX Runtime fp32", "openvino": "OpenVINO fp32",
              "openvino-int8": f"OpenVINO int8 (NNCF, {args.calib_images} {args.calib_split} images)"}
    for f in fmts:
        r = res[f]
        table.rows.append([labels[f], *(100 * r[k] for k in KEYS), 100 * (r["AP"] - ref), r["detections"],
                           r["ms_per_image"]])
    notes = [f"Threads: {args.threads}. ms/img includes reading, letterbox and NMS at conf 0.001 (many candidates), "
             "batch 1, on a shared CPU: indicative only; see benchmarks/results/cost for network latency."]
    run.write([table], notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
