"""DeepPCB expert-n 16 epochs at 320 px: mosaic throughout (cached) vs mosaic closed for the last 10 epochs."""
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
from _train import Budget, evaluate_weights, make_config, train_run  # noqa: E402

RUNS = REPO / "benchmarks" / "runs"
bench = RUNS / "_bench" / "deeppcb-fixed"
budget = Budget(scale="n", imgsz=320, batch=16, epochs=4, expert_epochs=16, workers=0, sam_weights=None)
out = {}
# close_mosaic=0: these cells set the stop epoch themselves (the TrainConfig default is close_mosaic=10 since)
for name, extra in (("mosaic-throughout", {"close_mosaic": 0}),
                    ("close-mosaic-10", {"close_mosaic": 0, "augment.mosaic_stop_epoch": 6})):
    run = train_run(make_config(bench, "closed", budget, stage="expert", train=extra), RUNS, "expert-closed")
    m = evaluate_weights(run["best"], bench, "closed", 320)
    out[name] = {"wall_s": run["wall_s"], **{k: round(100 * m[k], 1) for k in ("AP", "AP50", "AP75")}}
    print(name, out[name], flush=True)
Path(__file__).with_name("deeppcb.json").write_text(json.dumps(out, indent=1))
