"""``rtvp predict`` end to end: every output file, prompt mapping, skipped images, bad checkpoints, sources."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from predict_toys import (
    expert_ckpt,
    one_thread,  # noqa: F401 - autouse fixture
    rtvpnet_ckpt,
    write_images,
)
from rtvp.cli.main import app
from rtvp.errors import CheckpointError, ConfigError, DataError
from rtvp.predict.inputs import iter_sources, unique_stems

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, ["predict", *args], catch_exceptions=True)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "best.pt"
    rtvpnet_ckpt(path, imgsz=64)
    return path


def test_predict_writes_every_output(tmp_path, weights):
    src = tmp_path / "src"
    paths = write_images(src, [(100, 60), (200, 120)])
    (src / "broken.png").write_bytes(b"not a png")
    (src / "notes.txt").write_text("ignored: not an image")
    out = tmp_path / "out"
    res = _run("--weights", str(weights), "--source", str(src), "--prompts", "划痕,hole in wood", "--out", str(out),
               "--conf", "0.05", "--max-det", "4", "--save-maps", "--batch", "2")
    assert res.exit_code == 0, res.output
    assert "scratch" in res.output and "free text" in res.output  # prompt -> canonical table
    assert "broken.png" in res.output and "skipped" in res.output
    results = json.loads((out / "predictions.json").read_text())
    assert {r["image_id"] for r in results} == {1, 2}  # ids in input order over the readable images
    assert {r["file_name"] for r in results if r["image_id"] == 1} == {str(paths[0])}
    assert {r["category_name"] for r in results} <= {"划痕", "hole in wood"}
    assert all(r["category_id"] == ["划痕", "hole in wood"].index(r["category_name"]) + 1 for r in results)
    for r in results:
        x, y, w, h = r["bbox"]
        size = (100, 60) if r["image_id"] == 1 else (200, 120)
        assert 0 <= x and x + w <= size[0] + 1e-3 and 0 <= y and y + h <= size[1] + 1e-3 and 0 < r["score"] <= 1
    rows = [ln.split() for ln in (out / "labels" / "img0.txt").read_text().splitlines()]
    assert len(rows) == sum(r["image_id"] == 1 for r in results) <= 4
    assert all(len(r) == 6 and r[0] in ("0", "1") and all(0 <= float(v) <= 1 for v in r[1:]) for r in rows)
    for stem, (w, h) in (("img0", (100, 60)), ("img1", (200, 120))):
        drawn = cv2.imread(str(out / "images" / f"{stem}.png"))
        assert drawn.shape[1] / drawn.shape[0] == pytest.approx(w / h, rel=0.02)
        for kind in ("uncertainty", "selection"):
            assert cv2.imread(str(out / "maps" / f"{stem}_{kind}.png")).shape[:2] == (h, w)
    assert "broken.png" in (out / "skipped.txt").read_text()


def test_predict_with_the_checkpoint_vocabulary_and_minilm(tmp_path):
    weights = tmp_path / "m.pt"
    rtvpnet_ckpt(weights, encoder="minilm")
    img = write_images(tmp_path / "src", [(64, 48)])[0]
    out = tmp_path / "out"
    res = _run("--weights", str(weights), "--source", str(img), "--out", str(out), "--conf", "0.0",
               "--max-det", "3", "--no-save-images")
    assert res.exit_code == 0, res.output
    assert "checkpoint class" in res.output
    results = json.loads((out / "predictions.json").read_text())
    assert len(results) == 3 and {r["category_name"] for r in results} <= {"scratch on steel", "hole on wood",
                                                                           "crack on glass"}
    assert not (out / "images").exists()
    res = _run("--weights", str(weights), "--source", str(img), "--out", str(out), "--prompts", "擦痕,凹坑",
               "--conf", "0.0", "--max-det", "2")  # encoded by MiniLM after resolution
    assert res.exit_code == 0, res.output
    assert {r["category_name"] for r in json.loads((out / "predictions.json").read_text())} <= {"擦痕", "凹坑"}


def test_predict_expert_checkpoint_and_prompt_errors(tmp_path):
    weights = tmp_path / "e.pt"
    expert_ckpt(weights)
    img = write_images(tmp_path / "src", [(64, 64)])[0]
    res = _run("--weights", str(weights), "--source", str(img), "--out", str(tmp_path / "o"), "--prompts", "scratch")
    assert res.exit_code == 0, res.output
    res = _run("--weights", str(weights), "--source", str(img), "--out", str(tmp_path / "o"), "--prompts", "rust")
    assert isinstance(res.exception, ConfigError) and "closed-set expert" in str(res.exception)
    res = _run("--weights", str(weights), "--source", str(img), "--out", str(tmp_path / "o"), "--prompts", " , ")
    assert isinstance(res.exception, ConfigError) and "empty prompt" in str(res.exception)


def test_predict_rejects_non_checkpoints_and_unreadable_sources(tmp_path, weights):
    fake = tmp_path / "fake.pt"
    fake.write_bytes(b"\x00" * 64)
    img = write_images(tmp_path / "src", [(64, 64)])[0]
    res = _run("--weights", str(fake), "--source", str(img), "--out", str(tmp_path / "o"))
    assert isinstance(res.exception, CheckpointError) and "fake.pt" in str(res.exception)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    res = _run("--weights", str(weights), "--source", str(bad), "--out", str(tmp_path / "o"))
    assert isinstance(res.exception, DataError) and "could be read" in str(res.exception)
    res = _run("--weights", str(weights), "--source", str(tmp_path / "nothing*.png"), "--out", str(tmp_path / "o"))
    assert isinstance(res.exception, DataError) and "no image matches" in str(res.exception)


def test_iter_sources_file_folder_glob(tmp_path):
    a = write_images(tmp_path / "a", [(8, 8), (8, 8)])
    b = write_images(tmp_path / "a" / "deep", [(8, 8)])
    np.save(tmp_path / "a" / "stack.npy", np.zeros((8, 8, 4), np.uint8))
    (tmp_path / "a" / "readme.md").write_text("x")
    assert iter_sources(str(a[0])) == [a[0]]
    assert iter_sources(str(tmp_path / "a")) == sorted([*a, *b, tmp_path / "a" / "stack.npy"])
    assert iter_sources(str(tmp_path / "a" / "*.png")) == a
    assert iter_sources(str(tmp_path / "**" / "img0.png")) == sorted([a[0], b[0]])
    with pytest.raises(DataError, match="holds no image"):
        iter_sources(str((tmp_path / "empty").mkdir() or tmp_path / "empty"))
    assert unique_stems(["x/img.png", "y/img.jpg", "img.bmp"]) == ["img", "img_2", "img_3"]


def test_predict_with_exemplars_writes_their_names(tmp_path, weights):
    paths = write_images(tmp_path / "src", [(100, 60), (64, 64)])
    ex = tmp_path / "ex.json"
    ex.write_text(json.dumps([{"image": str(paths[0]), "box": [10, 10, 40, 30], "name": "spur"},
                              {"image": paths[1].name, "box": [0, 0, 20, 20]}]), encoding="utf-8")
    (tmp_path / paths[1].name).write_bytes(paths[1].read_bytes())  # relative paths: beside the JSON
    out = tmp_path / "out"
    res = _run("--weights", str(weights), "--source", str(tmp_path / "src"), "--prompts", "scratch", "--exemplars",
               str(ex), "--conf", "0.0", "--max-det", "50", "--out", str(out), "--no-save-images")
    assert res.exit_code == 0, res.output
    results = json.loads((out / "predictions.json").read_text())
    assert {r["category_name"] for r in results} == {"scratch", "spur", "exemplar"}
    assert all(r["category_id"] == ["scratch", "spur", "exemplar"].index(r["category_name"]) + 1 for r in results)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"image": "nope.png", "box": [0, 0, 4, 4]}]', encoding="utf-8")
    res = _run("--weights", str(weights), "--source", str(paths[0]), "--exemplars", str(bad), "--out", str(out))
    assert isinstance(res.exception, DataError) and "exemplar [0]" in str(res.exception)
    res = _run("--weights", str(tmp_path / "m.onnx"), "--source", str(paths[0]), "--exemplars", str(ex), "--out",
               str(out))
    assert isinstance(res.exception, ConfigError) and "baked in at export" in str(res.exception)


def test_predict_amp_flag_runs_bf16(tmp_path, weights):
    paths = write_images(tmp_path / "src", [(64, 64)])
    res = _run("--weights", str(weights), "--source", str(paths[0]), "--amp", "--conf", "0.0", "--max-det", "3",
               "--out", str(tmp_path / "o"), "--no-save-images")
    assert res.exit_code == 0, res.output
    assert len(json.loads((tmp_path / "o" / "predictions.json").read_text())) == 3
    res = _run("--weights", str(tmp_path / "m.onnx"), "--source", str(paths[0]), "--amp", "--out", str(tmp_path / "o"))
    assert isinstance(res.exception, ConfigError) and "--amp applies to checkpoints" in str(res.exception)
