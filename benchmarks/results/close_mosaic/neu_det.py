"""NEU-DET expert-n 24 epochs at 224 px: mosaic throughout (cached) vs mosaic closed for the last 10 epochs."""
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
from _train import Budget, evaluate_weights, make_config, run_key, train_run  # noqa: E402

RUNS = REPO / "benchmarks" / "runs"
bench = RUNS / "_bench" / "neu_det-fixed"
budget = Budget(scale="n", imgsz=224, batch=32, epochs=6, expert_epochs=24, workers=0, sam_weights=None)
base = make_config(bench, "closed", budget, stage="expert", train={"close_mosaic": 0})
print("baseline key", run_key(base), list((RUNS / "train").glob(f"*-{run_key(base)}")), flush=True)
if len(sys.argv) > 1 and sys.argv[1] == "check":
    sys.exit(0)
out = {}
# close_mosaic=0: these cells set the stop epoch themselves (the TrainConfig default is close_mosaic=10 since)
for name, extra in (("mosaic-throughout", {"close_mosaic": 0}),
                    ("close-mosaic-10", {"close_mosaic": 0, "augment.mosaic_stop_epoch": 14})):
    cfg = make_config(bench, "closed", budget, stage="expert", train=extra)
    run = train_run(cfg, RUNS, "expert-closed")
    m = evaluate_weights(run["best"], bench, "closed", 224)
    out[name] = {"train": run, "metrics": {k: m[k] for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")}}
    print(name, json.dumps(out[name]), flush=True)
Path(__file__).with_name("neu_det.json").write_text(json.dumps(out, indent=1))
