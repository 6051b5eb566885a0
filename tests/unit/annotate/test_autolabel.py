"""Auto-annotation: labelled subset, prediction cache, new benchmark version, resume; end to end on the toy bench."""

import json

import numpy as np
import pytest
from annot_bench import tree_bytes
from typer.testing import CliRunner

from rtvp.annotate.agreement import ImageLabels
from rtvp.annotate.autolabel import AutolabelConfig, autolabel, build_version, select_labeled
from rtvp.annotate.cache import PredictionCache, class_map
from rtvp.bench.check import check_benchmark
from rtvp.bench.version import read_splits
from rtvp.cli.main import app
from rtvp.errors import ConfigError
from rtvp.predict import predictor as predictor_mod


def test_labelled_subset_is_seeded_and_stratified():
    images = [{"id": i, "scene": "a" if i <= 40 else "b"} for i in range(1, 61)]
    ids = select_labeled(images, 0.15, seed=0)
    assert ids == select_labeled(images, 0.15, seed=0) != select_labeled(images, 0.15, seed=1)
    assert sum(i <= 40 for i in ids) == 6 and sum(i > 40 for i in ids) == 3  # round(0.15 * 40), round(0.15 * 20)
    assert select_labeled(images[:2], 0.15, 0) != []  # at least one per scene
    assert select_labeled(images, 0.0, 0) == [] and len(select_labeled(images, 1.0, 0)) == 60


def test_prediction_cache_rotates_skips_torn_lines_and_later_wins(tmp_path):
    cache = PredictionCache(tmp_path / "c", chunk=2)
    with cache.writer() as write:
        for i in range(5):
            write({"image_id": i, "boxes": [[0, 0, 1, 1]], "scores": [0.5], "cats": [1]})
    assert len(list((tmp_path / "c").glob("part-*.jsonl"))) == 3 and cache.done() == set(range(5))
    with open(tmp_path / "c" / "part-00002.jsonl", "a") as f:
        f.write('{"image_id": 9, "boxes": [[0, 0')  # torn by an interruption
    with cache.writer() as write:
        write({"image_id": 1, "error": "unreadable"})
    loaded = cache.load()
    assert 9 not in loaded and loaded[1] is None and loaded[0].boxes.tolist() == [[0, 0, 1, 1]]
    assert (tmp_path / "c" / "part-00003.jsonl").is_file()  # a new run never appends to an old file


def test_class_map_by_text_or_name():
    cats = [{"id": 5, "name": "a", "text": "a on x"}, {"id": 7, "name": "b", "text": "b on y"}]
    assert class_map(["b on y", "zzz", "a"], cats, "expert", "w").tolist() == [7, -1, 5]
    with pytest.raises(ConfigError, match="none of the expert"):
        class_map(["zzz"], cats, "expert", "w")


def test_build_version_provenance_queue_and_open_train(bench):
    splits = read_splits(bench)
    labeled = {1, 2}
    box = [10.0, 10.0, 30.0, 30.0]
    preds = {"ov": {}, "expert": {}}
    for iid in range(3, 13):
        preds["ov"][iid] = ImageLabels([box, [40, 40, 60, 60]], [0.8, 0.6], [2, 3])
        preds["expert"][iid] = ImageLabels([[12, 10, 32, 30]], [0.4], [2])
    preds["ov"][12] = None  # unreadable
    new, queue, stats = build_version(splits, labeled, preds, AutolabelConfig())
    train = new["closed_train"]
    assert [im["id"] for im in train["images"]] == list(range(1, 12))  # image 12 dropped
    assert stats["unreadable"] == ["images/toy/012.png"] and stats["auto_labels"] == 9
    expert = [a for a in train["annotations"] if a["provenance"]["source"] == "expert"]
    orig = [a for a in splits["closed_train"]["annotations"] if a["image_id"] in labeled]
    assert [a["id"] for a in expert] == [a["id"] for a in orig] and stats["expert_labels"] == len(orig)
    auto = [a for a in train["annotations"] if a["provenance"]["source"] == "auto"]
    p = auto[0]["provenance"]
    assert (p["score_ov"], p["score_expert"], p["score"]) == pytest.approx((0.8, 0.4, np.sqrt(0.32)), abs=1e-5)
    x1 = (0.8 * 10 + 0.4 * 12) / 1.2
    assert auto[0]["bbox"] == pytest.approx([round(x1, 2), 10.0, 20.0, 20.0]) and auto[0]["category_id"] == 2
    all_ids = [a["id"] for s in new.values() for a in s["annotations"] if s is train]
    assert len(set(all_ids)) == len(all_ids) and min(a["id"] for a in auto) > max(
        a["id"] for s in splits.values() for a in s["annotations"])
    assert {im["annotation_source"] for im in train["images"] if im["id"] in labeled} == {"expert"}
    assert len(queue) == 9 and {q["reason"] for q in queue} == {"one_model_only"}
    assert queue[0]["candidates"][0]["bbox"] == [40.0, 40.0, 20.0, 20.0]  # xywh
    open_ids = {im["id"] for im in new["open_train"]["images"]}
    assert not any(a["category_id"] == 2 for a in new["open_train"]["annotations"])
    assert open_ids <= {im["id"] for im in splits["open_train"]["images"]}
    assert not open_ids & {a["image_id"] for a in train["annotations"] if a["category_id"] == 2}


def _cfg(checkpoints, **kw):
    ov, ex = checkpoints
    return AutolabelConfig(labeled_fraction=0.25, weights_ov=ov, weights_expert=ex, conf=0.05, device="cpu",
                           chunk=3, **kw)


def test_given_checkpoints_end_to_end_resume_and_guards(bench, checkpoints, tmp_path):
    out = tmp_path / "auto"
    s = autolabel(bench, out, _cfg(checkpoints), progress=False)
    assert s["predicted_now"] == {"ov": 8, "expert": 8} and s["labeled_images"] == 4
    assert check_benchmark(out) == []
    queue = json.loads((out / "review" / "queue.json").read_text())
    assert queue["format"] == "rtvp-review-queue" and len(queue["items"]) == sum(s["queue"].values())
    meta = (out / "benchmark.yaml").read_text()
    assert "version: 1+auto" in meta and "tool: autolabel" in meta
    first = tree_bytes(out)
    s2 = autolabel(bench, out, _cfg(checkpoints), resume=True, progress=False)
    assert s2["predicted_now"] == {"ov": 0, "expert": 0} and tree_bytes(out) == first
    with pytest.raises(ConfigError, match="--resume"):
        autolabel(bench, out, _cfg(checkpoints), progress=False)
    with pytest.raises(ConfigError, match="other settings.*iou"):
        autolabel(bench, out, _cfg(checkpoints, iou=0.6), resume=True, progress=False)
    with pytest.raises(ConfigError, match="not closed_train images"):
        autolabel(bench, tmp_path / "x", _cfg(checkpoints, labeled_ids=(13,)), progress=False)


def test_interrupted_prediction_resumes_to_the_same_result(bench, checkpoints, tmp_path, monkeypatch):
    reference = tmp_path / "ref"
    autolabel(bench, reference, _cfg(checkpoints), progress=False)
    stream = predictor_mod.Predictor.stream

    def dying(self, sources, *a, **k):
        for n, p in enumerate(stream(self, sources, *a, **k)):
            if n == 2:
                raise KeyboardInterrupt
            yield p

    monkeypatch.setattr(predictor_mod.Predictor, "stream", dying)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        autolabel(bench, out, _cfg(checkpoints), progress=False)
    assert not (out / "benchmark.yaml").exists()
    assert len(PredictionCache(out / "work" / "predictions" / "ov").done()) == 2  # died at the 3rd image
    monkeypatch.setattr(predictor_mod.Predictor, "stream", stream)
    s = autolabel(bench, out, _cfg(checkpoints), resume=True, progress=False)
    assert s["predicted_now"] == {"ov": 6, "expert": 8}
    assert tree_bytes(out) == tree_bytes(reference)


def test_cli_trains_both_detectors_end_to_end(bench, tmp_path):
    out = tmp_path / "auto"
    args = ["data", "autolabel", str(bench), "--out", str(out), "--labeled-fraction", "0.5", "--scale", "tiny",
            "--epochs", "1", "--imgsz", "64", "--batch", "4", "--workers", "0", "--device", "cpu", "--conf", "0.01",
            "--quiet", "--set", "model.text_encoder=hash", "--set", "model.sam=false", "--set", "model.edp=false",
            "--set", "tensorboard=false", "--set", "plots=false", "--set", "warmup_iters=1"]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "expert-labelled images" in res.output and "review queue:" in res.output
    from rtvp.checkpoint import load_checkpoint

    expert = load_checkpoint(out / "work" / "expert" / "weights" / "best.pt")
    ov = load_checkpoint(out / "work" / "ov" / "weights" / "best.pt")
    assert expert["arch"] == "expert" and ov["arch"] == "rtvpnet" and ov["vocabulary"] == expert["vocabulary"]
    labeled = json.loads((out / "work" / "labeled" / "annotations" / "closed_train.json").read_text())
    assert len(labeled["images"]) == 6  # round(0.5 * 6) per scene
    train = json.loads((out / "annotations" / "closed_train.json").read_text())
    assert {a["provenance"]["source"] for a in train["annotations"]} <= {"auto", "expert"}
    assert check_benchmark(out) == []
