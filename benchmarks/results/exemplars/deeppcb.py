"""Exemplar prompts on real data: DeepPCB (fixed split), the rtvpnet-n closed-set checkpoint of
``../bf16_accuracy`` (fp32, seed 1, 16 + 4 epochs at 320 px), prompted by k boxes per class instead of the class texts.

Every class is treated as "unseen" for the draw (``rtvp.evaluation.kshot``): k random val boxes per class become its
prompt, the images that lent them are removed, and the remaining val images are scored; the text-prompted row is
scored on exactly the same images. Exemplars alone (text weight 0) and mixed with the class text (0.5); k = 1, 5;
3 seeded draws; two poolings of a box's region embedding: every anchor centre inside the box ("centre") and the
IoU-weighted top-10 anchors whose predicted boxes match it ("iou", the default). This measures whether a box is as
good a prompt as the class name for classes the model was trained on; it is not the open protocol (no unseen class
is involved).

Run from the repository root (after ``bf16_accuracy/deeppcb.py 1``): ``python benchmarks/results/exemplars/deeppcb.py``.
Writes ``deeppcb.json`` beside this file.
"""
import json
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import DATASETS, machine_info  # noqa: E402
from _train import Budget, make_config, train_run  # noqa: E402
from closed_vs_yolov8 import prepare  # noqa: E402

from rtvp.bench.version import scratch_bench  # noqa: E402
from rtvp.evaluation.evaluator import evaluate  # noqa: E402
from rtvp.evaluation.inference import predict_split  # noqa: E402
from rtvp.evaluation.kshot import draw_exemplars, kshot_eval  # noqa: E402

RUNS = REPO / "benchmarks" / "runs"
bench, _ = prepare(SimpleNamespace(runs_dir=RUNS, datasets_root=DATASETS, split="fixed"), "deeppcb")
budget = Budget(scale="n", imgsz=320, batch=16, epochs=4, expert_epochs=16, workers=0, sam_weights=None)
train = {"amp": False, "seed": 1}
expert = train_run(make_config(bench, "closed", budget, stage="expert", train=train), RUNS, "expert-closed-fp32")
full = train_run(make_config(bench, "closed", budget, stage="full", train=train, expert_weights=Path(expert["best"])),
                 RUNS, "rtvpnet-closed-fp32")
val = json.loads((bench / "annotations" / "closed_val.json").read_text(encoding="utf-8"))
as_unseen = {**val, "categories": [{**c, "split": "unseen"} for c in val["categories"]]}
scratch = scratch_bench(bench, RUNS / "_bench" / "deeppcb-fixed-exemplars", {"open_val": as_unseen})
text_results = predict_split(full["best"], bench, "closed_val", "closed", imgsz=320)

out = {"machine": machine_info(), "weights": str(Path(full["best"]).relative_to(REPO)), "rows": {}}
for k in (1, 5):
    text_ap = []
    for seed in range(3):
        _, used = draw_exemplars(as_unseen, k, seed)  # the same draw kshot_eval makes
        keep = [im for im in val["images"] if im["id"] not in used]
        gt = {**val, "images": keep, "annotations": [a for a in val["annotations"] if a["image_id"] not in used]}
        m = evaluate(gt, [r for r in text_results if r["image_id"] not in used], "closed")
        text_ap.append({"seed": seed, "AP": m["AP"], "AP50": m["AP50"]})
    out["rows"][f"text-k{k}"] = {"draws": text_ap, **{f"{key}_mean": statistics.fmean(d[key] for d in text_ap)
                                                      for key in ("AP", "AP50")}}
    for pooling in ("iou", "centre"):
        for weight in (0.0, 0.5):
            r = kshot_eval(full["best"], scratch, k, draws=3, imgsz=320, text_weight=weight,
                           iou_pooling=pooling == "iou")
            out["rows"][f"exemplar-k{k}-text{weight}-{pooling}"] = r
            print(k, pooling, weight, {key: r[key] for key in ("AP_mean", "AP_sd", "AP50_mean", "AP50_sd")},
                  "text:", out["rows"][f"text-k{k}"]["AP50_mean"], flush=True)
            Path(__file__).with_name("deeppcb.json").write_text(json.dumps(out, indent=1))
