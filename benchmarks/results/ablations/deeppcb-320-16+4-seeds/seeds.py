"""Stage-2 seed noise of the Table VII slice: all-on and all-off cells re-trained with seeds 1 and 2 (same expert)."""
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO / "benchmarks"))
import ablations  # noqa: E402
from _train import Budget, evaluate_weights, make_config, train_run  # noqa: E402

RUNS = REPO / "benchmarks" / "runs"
bench = RUNS / "_bench" / "deeppcb-fixed"
budget = Budget(scale="n", imgsz=320, batch=16, epochs=4, expert_epochs=16, workers=0, sam_weights=None)
expert = train_run(make_config(bench, "closed", budget, stage="expert"), RUNS, "expert-closed")
out = {}
for combo in ((1, 1, 1, 1), (0, 0, 0, 0)):
    model, _ = ablations.cell_spec("vii", combo)
    for seed in (0, 1, 2):
        cfg = make_config(bench, "closed", budget, stage="full", model=model, train={"seed": seed},
                          expert_weights=Path(expert["best"]))
        run = train_run(cfg, RUNS, "abl-closed")
        m = evaluate_weights(run["best"], bench, "closed", 320)
        out[f"{combo}-s{seed}"] = {k: round(100 * m[k], 1) for k in ("AP", "AP50", "AP75")}
        print(combo, seed, out[f"{combo}-s{seed}"], run["wall_s"], flush=True)
        Path(__file__).with_name("seeds.json").write_text(json.dumps(out, indent=1))
