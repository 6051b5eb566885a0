"""Crack length over seeds: one table from several ``masks.py`` results (no training; reads their results.json).

Each ``--runs`` tag is a folder ``results/masks/TAG`` written by ``masks.py --recipe
benchmarks/recipes/crackforest.yaml``. Per run and model with the mask branch: box AP, mask AP, and the per-image
crack-length error on the val images at the confidence calibrated on the training images (mask probability 0.5) and
at the confidence and mask threshold calibrated together. Then per model, recipe (epochs, size, batch) and CPU,
over its seeds: mean, smallest and largest error and how many seeds are within 10 %.

    python benchmarks/masks_seeds.py --tag crackforest-480-100-seeds --runs crackforest-480-100-seed0-s13 ...
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import BenchRun, Table, build_parser, parse_args


def run_args(command: str) -> dict[str, Any]:
    """The recipe settings of a ``masks.py`` command line (its defaults where the line leaves them out)."""
    p = argparse.ArgumentParser(add_help=False)
    for name, kind, default in (("--epochs", int, 30), ("--imgsz", int, 320), ("--batch", int, 16),
                                ("--seed", int, 0)):
        p.add_argument(name, type=kind, default=default)
    known, _ = p.parse_known_args(shlex.split(command)[2:])
    return vars(known)


def _err(length: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """``(median per-image error %, share of images within 10 % %)`` of one crack-length entry."""
    if not length or length.get("image_median_rel_error") is None:
        return None, None
    return 100 * length["image_median_rel_error"], 100 * length["image_within_10pct"]


def run_rows(tag: str, res: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per model with the mask branch in a ``masks.py`` results.json."""
    args, out = run_args(res["machine"]["command"]), []
    for model, cell in res["raw"].items():
        if "crack_length_by_conf" not in cell:
            continue
        conf05 = cell.get("calibrated_conf_mask05", cell.get("calibrated_conf"))
        at05 = _err(cell["crack_length_by_conf"].get(str(conf05)))
        joint = _err(cell.get("crack_length_calibrated"))
        m = cell["metrics"]
        out.append({"tag": tag, "cpu": res["machine"]["cpu"], "threads": res["machine"]["torch_threads"], **args,
                    "model": model, "AP": 100 * m["AP"], "mask_AP": 100 * m.get("mask_AP", 0.0),
                    "conf_mask05": None if conf05 is None else f"{conf05:g}", "err_mask05": at05[0],
                    "within_mask05": at05[1],
                    "conf": None if joint[0] is None else f"{cell['calibrated_conf']:g}",
                    "mask_thr": None if joint[0] is None else f"{cell['calibrated_mask_thr']:g}",
                    "err_joint": joint[0], "within_joint": joint[1]})
    return out


def summary(records: list[dict[str, Any]]) -> list[list[Any]]:
    """Per recipe: seeds, mean AP, and mean / min / max error and seeds within 10 % at both calibrations."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["model"], r["epochs"], r["imgsz"], r["batch"], r["cpu"]), []).append(r)
    rows = []
    for (model, epochs, imgsz, batch, cpu), rs in groups.items():
        row = [model, epochs, imgsz, batch, cpu, " ".join(str(r["seed"]) for r in rs),
               statistics.mean(r["AP"] for r in rs)]
        for key in ("err_mask05", "err_joint"):
            errs = [r[key] for r in rs if r[key] is not None]
            row += [statistics.mean(errs), min(errs), max(errs), sum(e <= 10 for e in errs)] if errs else [None] * 4
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser(__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="masks.py result tags (results/masks/TAG)")
    args = parse_args(parser, argv)
    run = BenchRun("masks_seeds", args)
    records = []
    for tag in args.runs:
        path = Path(args.results_dir) / "masks" / tag / "results.json"
        if not path.is_file():
            raise SystemExit(f"{path}: no such results file; run benchmarks/masks.py --tag {tag} first")
        records += run_rows(tag, json.loads(path.read_text(encoding="utf-8")))
    per_run = Table("runs", "Crack length per run (val, per image: union of predicted vs ground-truth cracks)",
                    ["tag", "CPU", "threads", "seed", "batch", "model", "AP", "mask AP", "conf (mask 0.5)",
                     "error %", "within 10 % %", "conf", "mask thr", "error % (both)", "within 10 % % (both)"],
                    [[r["tag"], r["cpu"], r["threads"], r["seed"], r["batch"], r["model"], r["AP"], r["mask_AP"],
                      r["conf_mask05"], r["err_mask05"], r["within_mask05"], r["conf"], r["mask_thr"],
                      r["err_joint"], r["within_joint"]] for r in records])
    over = Table("seeds", "Over seeds, per recipe: median per-image crack-length error on val",
                 ["model", "epochs", "imgsz", "batch", "CPU", "seeds", "mean AP",
                  *(f"{k} ({cal})" for cal in ("mask 0.5", "both")
                    for k in ("mean error %", "min error %", "max error %", "seeds within 10 %"))],
                 summary(records))
    notes = ["error %: median over the val images of |predicted - ground-truth| / ground-truth total crack length "
             "(skeleton of the union of masks, rtvp.masks.measure_mask). (mask 0.5): at the confidence threshold "
             "calibrated on the training images with the default mask probability 0.5; (both): at the confidence "
             "and mask probability thresholds calibrated together on the training images (masks.py). "
             "Raw: each run's results/masks/TAG/results.json."]
    run.write([per_run, over], notes, extra={"records": records})


if __name__ == "__main__":
    main()
