"""Smoke test of the benchmark scripts (``benchmarks/*.py --quick``) plus checks of their helpers.

Default: open_vocab + tsne (which reuses open_vocab's checkpoints) + cost, end to end on the tiny synthetic benchmark,
and a rerun proving cells are cached (~2 min on 2 CPU cores). ``RTVP_RUN_SLOW=1`` also runs ablations, data_amount and
closed_vs_yolov8 (the latter with Ultralytics only when ``benchmarks/.venv-yolo`` already exists).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

def slow(test):
    """``@pytest.mark.slow``, run only with ``RTVP_RUN_SLOW=1`` (select or deselect them with ``-m slow``)."""
    skip = pytest.mark.skipif(os.environ.get("RTVP_RUN_SLOW") != "1", reason="slow: set RTVP_RUN_SLOW=1 to run")
    return pytest.mark.slow(skip(test))


def _argv(tmp: Path) -> list[str]:
    return ["--quick", "--threads", "1", "--runs-dir", str(tmp / "runs"), "--results-dir", str(tmp / "results")]


def _results(tmp: Path, script: str) -> dict:
    folder = tmp / "results" / script / "quick"
    assert (folder / "results.md").is_file()
    return json.loads((folder / "results.json").read_text(encoding="utf-8"))


def _csv(tmp: Path, script: str, name: str) -> list[dict[str, str]]:
    with open(tmp / "results" / script / "quick" / f"{name}.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench")


def test_quick_scripts_end_to_end(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cost
    import open_vocab
    import tsne

    assert open_vocab.main(_argv(work)) == 0
    res = _results(work, "open_vocab")
    assert res["machine"]["command"].startswith("python ") and res["machine"]["torch_threads"] >= 1
    rows = {r["Method"]: r for r in _csv(work, "open_vocab", "open_vocab")}
    assert set(rows) == {"RTVPNet", "text-only (YOLO-World-like)", "expert + text head", "closed-set expert (stage 1)"}
    for key in ("rtvpnet", "textonly", "expert_text"):
        gen = res["cells"][key]["generalized"]
        assert 0.0 <= gen["AP_seen"] <= 1.0 and 0.0 <= gen["AP_unseen"] <= 1.0
    # diagnostics and 1-shot exemplar rows for the three open-vocabulary models
    diag = {r["Method"]: r for r in _csv(work, "open_vocab", "unseen_diagnostics")}
    assert set(diag) == set(rows) - {"closed-set expert (stage 1)"}
    per_class = _csv(work, "open_vocab", "unseen_per_class")
    for key, label in (("rtvpnet", "RTVPNet"), ("textonly", "text-only (YOLO-World-like)"),
                       ("expert_text", "expert + text head")):
        cell = res["cells"][key]
        assert 0.0 <= cell["open"]["agnostic_AR100_50"] <= 1.0 and 0.0 <= cell["open"]["oracle_top1_all"] <= 1.0
        assert [d["seed"] for d in cell["kshot"]["1"]["draws"]] == [0, 1]
        classes = {r["class"] for r in per_class if r["Method"] == label}
        assert classes == set(cell["open"]["per_unseen_class"]) and classes
    # the closed-set expert cannot name unseen classes: AP_unseen is exactly 0
    assert res["cells"]["expert"]["generalized"]["AP_unseen"] == 0.0
    # the text-only variant has no SAM branch, so it is several times smaller than RTVPNet
    assert float(rows["RTVPNet"]["Param (M)"]) > 3 * float(rows["text-only (YOLO-World-like)"]["Param (M)"])

    # resumable: every cell is cached on a rerun, and the table is reproduced
    capsys.readouterr()
    assert open_vocab.main(_argv(work)) == 0
    assert capsys.readouterr().out.count("(cached)") == 4
    assert {r["Method"] for r in _csv(work, "open_vocab", "open_vocab")} == set(rows)

    # the text-ensemble lever at evaluation: the trained runs re-prompted (no training), a row each
    runs_before = sorted(p.name for p in (work / "runs" / "train").iterdir())
    assert open_vocab.main([*_argv(work), "--variants", "textonly", "--ensemble-eval"]) == 0
    assert sorted(p.name for p in (work / "runs" / "train").iterdir()) == runs_before
    res = _results(work, "open_vocab")
    ens, plain = res["cells"]["textonly@ensemble"], res["cells"]["textonly"]
    assert ens["train"]["run_dir"] == plain["train"]["run_dir"] and "agnostic_AR100_50" in ens["open"]
    assert {r["Method"] for r in _csv(work, "open_vocab", "open_vocab")} == {
        "text-only (YOLO-World-like)", "text-only (YOLO-World-like), ensemble prompts at eval"}

    # t-SNE reuses open_vocab's two open-protocol runs (same content-addressed run folders)
    runs_before = sorted(p.name for p in (work / "runs" / "train").iterdir())
    assert tsne.main(_argv(work)) == 0
    assert sorted(p.name for p in (work / "runs" / "train").iterdir()) == runs_before
    png = work / "results" / "tsne" / "quick" / "tsne.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for r in _csv(work, "tsne", "tsne"):
        assert int(r["boxes"]) > 0 and -1.0 <= float(r["silhouette (cosine, D-d)"]) <= 1.0

    assert cost.main([*_argv(work), "--no-yolo"]) == 0
    params = {r["Model"]: r for r in _csv(work, "cost", "params")}
    # rtvp's expert-n is the YOLOv8n architecture: 3.16 M params, 8.74 GFLOPs at 640 -> 2.19 at 320 (1/4)
    assert abs(float(params["expert-n"]["total"]) - 3.16) < 0.01
    flops = {(r["Model"], r["imgsz"]): r for r in _csv(work, "cost", "gflops")}
    assert abs(float(flops[("expert-n", "320")]["total"]) - 2.19) < 0.01
    comp = flops[("rtvpnet-n", "320")]
    parts = sum(float(comp[c]) for c in ("expert", "sam", "projection", "prompt", "interaction", "head"))
    assert math.isclose(parts, float(comp["total"]), rel_tol=1e-3)
    seg = flops[("expert-n-seg", "320")]  # the mask branch: its own component, on top of the same expert and head
    assert float(seg["mask"]) > 0 and float(params["expert-n-seg"]["mask"]) > 0 and float(comp["mask"]) == 0
    assert math.isclose(float(seg["total"]) - float(seg["mask"]), float(flops[("expert-n", "320")]["total"]),
                        rel_tol=1e-3)
    lat = {r["Model"]: r for r in _csv(work, "cost", "latency_cpu")}
    assert float(lat["rtvpnet-n"]["ms/img b1"]) > float(lat["expert-n"]["ms/img b1"]) > 0
    assert float(lat["expert-n-seg"]["ms/img b1"]) > 0
    assert float(lat["rtvpnet-n (PyTorch fused fp32)"]["ms/img b1"]) > 0  # the lean form Predictor runs
    for r in _csv(work, "cost", "train_cpu"):
        assert float(r["images/s"]) > 0 and float(r["peak RSS MB"]) > 100


def test_default_threads_follow_the_cpus_in_use_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import _common

    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n", encoding="ascii")
    assert _common._cpu_times(str(stat)) == (150, 1000)  # idle + iowait = 850 of 1000
    assert _common._cpu_times(str(tmp_path / "missing")) is None
    samples = iter([(150, 1000), (150 + 450, 1000 + 500)])  # 90 % busy over the interval
    monkeypatch.setattr(_common, "_cpu_times", lambda stat="": next(samples))
    monkeypatch.setattr(_common.os, "cpu_count", lambda: 2)
    assert _common.busy_cpus(interval=0) == pytest.approx(1.8)
    # another training on both cores -> 1 thread; an idle machine with a high load average left by a finished run ->
    # all cores (the old rule gave 1); half a core in use -> still both
    assert [_common.default_threads(2, busy, 2.0) for busy in (1.8, 0.05, 0.5)] == [1, 2, 2]
    assert _common.default_threads(8, 3.2, None) == 5
    assert [_common.default_threads(2, None, load) for load in (2.0, 1.2, None)] == [1, 2, 2]  # no /proc/stat


def test_table_and_cell_cache(tmp_path: Path) -> None:
    import argparse

    from _common import BenchRun, Cell, Table

    t = Table("t", "T", ["a", "b"], rows=[["x", 1.23456], ["y", None]], digits=2)
    assert "| x | 1.23 |" in t.markdown() and "| y | - |" in t.markdown()
    assert t.csv().splitlines() == ["a,b", "x,1.2346", "y,"]
    args = argparse.Namespace(runs_dir=tmp_path / "runs", results_dir=tmp_path / "res", tag="quick", fresh=False)
    calls: list[int] = []
    run = BenchRun("demo", args)
    cell = Cell("c1", "one", {"x": 1}, lambda: calls.append(1) or {"v": len(calls)})
    assert run.run_cells([cell])["c1"] == {"v": 1}
    assert BenchRun("demo", args).run_cells([cell])["c1"] == {"v": 1} and calls == [1]  # cached
    changed = Cell("c1", "one", {"x": 2}, lambda: calls.append(1) or {"v": len(calls)})
    assert BenchRun("demo", args).run_cells([changed])["c1"] == {"v": 2}  # config changed -> recomputed
    out = run.write([t], notes=["n"], files={"f.bin": b"ab"})
    assert sorted(p.name for p in out.iterdir()) == ["f.bin", "results.json", "results.md", "t.csv"]


def _coco(n: int) -> dict:
    images = [{"id": i + 1, "file_name": f"images/src/img_{i:03d}.jpg", "width": 10, "height": 10} for i in range(n)]
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0}
            for i in range(n)]
    return {"info": {}, "licenses": [], "categories": [{"id": 1, "name": "a", "split": "seen"}], "images": images,
            "annotations": anns}


def _bench(root: Path, train: dict, val: dict) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    for split, data in (("closed_train", train), ("closed_val", val), ("open_train", train), ("open_val", val)):
        (root / "annotations" / f"{split}.json").write_text(json.dumps(data), encoding="utf-8")
    (root / "benchmark.yaml").write_text("name: t\n", encoding="utf-8")
    return root


def test_subset_and_fixed_split(tmp_path: Path) -> None:
    import closed_vs_yolov8
    from _train import load_coco, subset_bench

    full = _coco(20)
    bench = _bench(tmp_path / "b", {**full, "images": full["images"][:16], "annotations": full["annotations"][:16]},
                   {**full, "images": full["images"][16:], "annotations": full["annotations"][16:]})
    sub = subset_bench(bench, 0.25, 0, tmp_path / "sub")
    tr = load_coco(sub, "closed_train")
    assert len(tr["images"]) == 4 and {a["image_id"] for a in tr["annotations"]} == {im["id"] for im in tr["images"]}
    assert load_coco(sub, "open_train")["images"] == tr["images"]  # one image pool for both protocols
    assert load_coco(sub, "closed_val") == load_coco(bench, "closed_val")
    assert subset_bench(bench, 1.0, 0, tmp_path / "x") == bench

    fixed = closed_vs_yolov8.fixed_split(bench, "neu_det", tmp_path, tmp_path / "fixed")
    val = load_coco(fixed, "closed_val")
    assert [im["file_name"] for im in val["images"]] == [f"images/src/img_{i:03d}.jpg" for i in (4, 9, 14, 19)]
    assert len(load_coco(fixed, "closed_train")["images"]) == 16


@slow
def test_quick_heavy_scripts(work: Path) -> None:
    import ablations
    import closed_vs_yolov8
    import data_amount
    from _yolo import ultralytics_version

    assert ablations.main(_argv(work)) == 0
    names = {t["name"] for t in _results(work, "ablations")["tables"]}
    assert names == {f"table_{t}_open" for t in ("vii", "viii", "ix", "x", "xi")}
    assert data_amount.main(_argv(work)) == 0
    closed = _csv(work, "data_amount", "data_amount_closed")
    assert [r["Ratio"] for r in closed] == ["10%", "50%", "100%"]
    assert int(closed[0]["train images"]) < int(closed[1]["train images"]) < int(closed[2]["train images"])
    extra = [] if ultralytics_version() else ["--no-yolo"]
    assert closed_vs_yolov8.main([*_argv(work), *extra]) == 0
    models = [r["Model"] for r in _csv(work, "closed_vs_yolov8", "closed_synth")]
    assert "rtvpnet-tiny (stage 1 + 2)" in models


def test_make_config_stage_epochs(tmp_path: Path) -> None:
    """A stage-1-only config trains ``expert_epochs``; stage 2 alone and both stages train ``epochs`` after it."""
    from _train import Budget, make_config

    budget = Budget(epochs=4, expert_epochs=16)
    expert = make_config(tmp_path, "closed", budget, stage="expert")
    full = make_config(tmp_path, "closed", budget, stage="full")
    both = make_config(tmp_path, "closed", budget)
    assert (expert.stage, expert.epochs) == ("expert", 16)
    assert (full.stage, full.epochs) == ("full", 4)
    assert (both.epochs, both.expert_epochs) == (4, 16)


def test_run_key_ignores_expert_head_init_where_it_changes_nothing(tmp_path: Path) -> None:
    """Stage-1 keys do not depend on expert_head_init, and ``False`` keeps the keys runs had before the option."""
    import dataclasses

    from _train import Budget, make_config, run_key

    (tmp_path / "annotations").mkdir()
    for split in ("closed_train", "closed_val", "open_train", "open_val"):
        (tmp_path / "annotations" / f"{split}.json").write_text("{}")
    budget = Budget(epochs=2, expert_epochs=3)
    expert, full = (make_config(tmp_path, "closed", budget, stage=s) for s in ("expert", "full"))
    off = dataclasses.replace(full, expert_head_init=False)
    assert run_key(expert) == run_key(dataclasses.replace(expert, expert_head_init=False))
    assert run_key(full) != run_key(off)
    ens = dataclasses.replace(full, class_text="ensemble")  # a lever of open_vocab.py: a new run
    assert run_key(ens) != run_key(full)


def test_run_key_of_default_class_text_is_the_key_before_the_option(tmp_path: Path, monkeypatch) -> None:
    """``class_text="name"`` (the default) leaves the hashed config as it was before the field, so runs cached
    before it stay valid."""
    import _train
    from _train import Budget, make_config, run_key

    (tmp_path / "annotations").mkdir()
    for split in ("closed_train", "closed_val", "open_train", "open_val"):
        (tmp_path / "annotations" / f"{split}.json").write_text("{}")
    hashed = []
    monkeypatch.setattr(_train, "config_hash", lambda d: hashed.append(d) or "k")
    run_key(make_config(tmp_path, "open", Budget(), stage="full"))
    assert "class_text" not in hashed[0]["cfg"] and "close_mosaic" in hashed[0]["cfg"]


def test_recipe_bench_warns_about_a_stale_cached_benchmark(tmp_path: Path) -> None:
    import yaml
    from _train import SYNTH_RECIPE, recipe_bench

    bench = tmp_path / "_bench" / "synth"
    bench.mkdir(parents=True)
    meta = {"recipe_sha1": "0" * 40}
    (bench / "benchmark.yaml").write_text(yaml.safe_dump(meta))
    with pytest.warns(UserWarning, match="built from another version of .*synth.yaml .*delete the folder"):
        assert recipe_bench(SYNTH_RECIPE, tmp_path / "no-data", tmp_path) == bench  # reused, never rebuilt
    from rtvp.bench.recipe import load_recipe

    meta["recipe_sha1"] = load_recipe(SYNTH_RECIPE).sha1()
    (bench / "benchmark.yaml").write_text(yaml.safe_dump(meta))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert recipe_bench(SYNTH_RECIPE, tmp_path / "no-data", tmp_path) == bench


def test_train_speed_quick(work: Path) -> None:
    import train_speed

    train_speed.main(_argv(work))
    speed = {r["precision"]: r for r in _csv(work, "train_speed", "train_speed")}
    assert set(speed) == {"fp32", "bf16", "bf16 + channels_last"} and float(speed["fp32"]["x fp32"]) == 1.0
    assert all(float(r["img/s"]) > 0 for r in speed.values())
    loader = _csv(work, "train_speed", "loader")
    cells = [(r["cache"], r["workers"]) for r in loader]
    assert cells == [("False", "0"), ("False", "2"), ("True", "0"), ("True", "2")]
    assert all(float(r["ms/batch"]) > 0 for r in loader)


def test_profile_step_quick(work: Path) -> None:
    import profile_step

    profile_step.main(_argv(work))
    res = _results(work, "profile_step")
    assert set(res["raw"]) == {"fp32", "bf16 + channels_last", "bf16 + channels_last, fp32 conv fallback"}
    for r in res["raw"].values():  # the four labelled phases fit inside the measured step
        phases = [r["phases_ms"][p] for p in profile_step.PHASES]
        assert all(v > 0 for v in phases) and sum(phases) <= r["ms_per_step"] * 1.05
        assert r["top_ops"] and not any(o["op"].startswith("rtvp/") for o in r["top_ops"])
    rows = _csv(work, "profile_step", "phases")
    assert [r["precision"] for r in rows] == list(res["raw"])


def test_yolo_venv_sees_the_running_environment(tmp_path: Path) -> None:
    """The Ultralytics venv is made with --system-site-packages, which inherits the *base* interpreter's packages,
    not those of the venv rtvp runs in; the .pth link makes them visible (here: numpy and torch)."""
    import subprocess
    import venv as venv_mod

    from _yolo import link_site_packages, venv_python

    venv_mod.create(tmp_path / "v", system_site_packages=True, with_pip=False)
    py = venv_python(tmp_path / "v")
    probe = [str(py), "-c", "import numpy, torch; print(numpy.__file__)"]
    in_a_venv = sys.prefix != sys.base_prefix
    if in_a_venv:  # the bug: without the link the venv's packages are missing
        assert subprocess.run(probe, capture_output=True, check=False).returncode != 0
    link_site_packages(py)
    assert subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()


def test_wait_policy_quick(work: Path) -> None:
    import wait_policy

    wait_policy.main([*_argv(work), "--policies", "PASSIVE", "libgomp default", "GOMP_SPINCOUNT=10000",
                      "--conditions", "quiet", "twin"])
    res = _results(work, "wait_policy")
    cells = res["raw"]
    assert list(cells) == ["expert-tiny / PASSIVE", "expert-tiny / libgomp default",
                           "expert-tiny / GOMP_SPINCOUNT=10000"]
    # each subprocess saw exactly its policy's environment (None = unset, libgomp's own default)
    assert [c["quiet"]["env"] for c in cells.values()] == [
        {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": None}, {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None},
        {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "10000"}]
    assert all(c[k]["images_per_s"] > 0 and len(c[k]["times"]) == 2 for c in cells.values()
               for k in ("quiet", "twin"))
    rows = _csv(work, "wait_policy", "wait_policy")
    assert float(rows[0]["quiet x PASSIVE"]) == 1.0 and float(rows[0]["twin x PASSIVE"]) == 1.0


def test_sam_window_quick(work: Path) -> None:
    import sam_window

    from rtvp.models.tinyvit import TinyViTBlock

    sam_window.main(_argv(work))
    cell = _results(work, "sam_window")["raw"]["64/1"]
    assert all(cell[k][p] > 0 for k in ("padded", "shortcut") for p in ("train_ms", "eval_ms"))
    assert TinyViTBlock.corner_shortcut is True  # the switch is restored
    assert [r["SAM input px"] for r in _csv(work, "sam_window", "sam_window")] == ["64"]


def test_loader_workers_quick(work: Path) -> None:
    import loader_workers

    loader_workers.main([*_argv(work), "--workers", "0", "1"])
    raw = _results(work, "loader_workers")["raw"]
    assert set(raw) == {"0", "1"}
    assert all(len(r["images_per_s"]) == 2 and r["median_after_first"] > 0 and r["wall_s"] > 0 for r in raw.values())
    rows = _csv(work, "loader_workers", "loader_workers")
    assert [r["workers"] for r in rows] == ["0", "1"] and float(rows[0]["x vs 0 workers"]) == 1.0
