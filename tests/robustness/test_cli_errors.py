"""Entry points given hostile files and flags answer with rc 2 and a message naming the file and the fix."""

from __future__ import annotations

import json

import pytest

from predict_toys import one_thread, rtvpnet_ckpt, write_images  # noqa: F401 - autouse fixture

BINARY = bytes(range(256)) * 4  # not UTF-8 (0x80 is a lone continuation byte)


def _results(tmp_path, **entry):
    path = tmp_path / "preds.json"
    path.write_text(json.dumps([{"image_id": 2, "category_id": 1, "bbox": [20, 20, 20, 20], "score": 0.9},
                                {"image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.5, **entry}]))
    return path


def test_val_binary_predictions(tmp_path, rtvp_cli, toy_bench):
    preds = tmp_path / "preds.json"
    preds.write_bytes(BINARY)
    code, out = rtvp_cli("val", "--data", toy_bench, "--predictions", preds)
    assert code == 2
    assert f"error: {preds}: predictions file is not UTF-8 text (binary byte at offset 128)" in out


def test_build_binary_recipe(tmp_path, rtvp_cli):
    recipe = tmp_path / "r.yaml"
    recipe.write_bytes(BINARY)
    code, out = rtvp_cli("data", "build", recipe, "--root", tmp_path, "--out", tmp_path / "b", "--quiet")
    assert code == 2
    message = "config file (recipe or YOLO data YAML) is not UTF-8 text (binary byte at offset 128)"
    assert f"error: {recipe}: {message}" in out


@pytest.mark.parametrize(("entry", "message"), [
    ({"score": float("nan")}, "[1]: score must be a finite number, got nan"),
    ({"score": float("inf")}, "[1]: score must be a finite number, got inf"),
    ({"score": "high"}, "[1]: score must be a finite number, got 'high'"),
    ({"bbox": [1, 1, -5, 5]}, "[1]: bbox [1, 1, -5, 5] has width -5 and height 5; both must be > 0"),
    ({"bbox": [1, 1, 5, 0]}, "[1]: bbox [1, 1, 5, 0] has width 5 and height 0; both must be > 0"),
])
def test_val_refuses_non_finite_scores_and_non_positive_sizes(tmp_path, rtvp_cli, toy_bench, entry, message):
    preds = _results(tmp_path, **entry)
    code, out = rtvp_cli("val", "--data", toy_bench, "--predictions", preds)
    assert code == 2, out
    assert f"error: {preds}{message}" in out


def test_val_accepts_good_results(tmp_path, rtvp_cli, toy_bench):
    code, out = rtvp_cli("val", "--data", toy_bench, "--predictions", _results(tmp_path), "--json")
    assert code == 0, out
    assert json.loads(out)["AP50"] == pytest.approx(1.0)


@pytest.mark.parametrize("layout", ["out_is_file", "parent_is_file", "labels_is_file"])
def test_predict_out_is_checked_before_inference(tmp_path, rtvp_cli, monkeypatch, layout):
    weights = tmp_path / "best.pt"
    rtvpnet_ckpt(weights, imgsz=64)
    img = write_images(tmp_path / "src", [(64, 48)])[0]
    out = tmp_path / "pred"
    if layout == "out_is_file":
        out.write_text("results of last week")
        bad = out
    elif layout == "parent_is_file":
        (tmp_path / "file").write_text("x")
        out, bad = tmp_path / "file" / "pred", tmp_path / "file"
    else:
        out.mkdir()
        (out / "labels").write_text("x")
        bad = out / "labels"
    import rtvp.predict.predictor as predictor

    monkeypatch.setattr(predictor.Predictor, "__init__", lambda *a, **k: pytest.fail("model loaded before --out"))
    code, text = rtvp_cli("predict", "--weights", weights, "--source", img, "--out", out)
    assert code == 2
    assert f"error: --out {out}: {bad} is a file" in text


def test_resume_without_last_pt_says_so(tmp_path, rtvp_cli, toy_bench, caplog):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"data: {toy_bench}\nout: {run}\ndevice: cpu\narch: expert\nepochs: 1\n"
                                     "imgsz: 64\nbatch: 1\nworkers: 0\nplots: false\nmodel:\n  scale: tiny\n")
    code, out = rtvp_cli("train", "--resume", "--out", run)
    assert code == 0, out
    out = caplog.text  # the console handler is bound to the stderr of the first test that trained
    assert f"--resume: {run}/weights/last.pt not found (the run stopped before stage expert saved a checkpoint); " \
           "this stage starts from epoch 1" in out
    assert (run / "weights" / "last.pt").is_file()


def test_boxes_left_in_the_letterbox_padding_are_not_reported(monkeypatch):
    """A box in the padding clips to zero width: rtvp never writes a result its own `val --predictions` refuses."""
    from types import SimpleNamespace

    import numpy as np
    import torch

    from rtvp.evaluation.evaluator import check_predictions
    from rtvp.predict import predictor
    from rtvp.predict.inputs import coco_results

    boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0], [0.0, 5.0, 2.0, 9.0], [60.0, 0.0, 64.0, 64.0]])
    found = (boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 0, 0]), torch.tensor([3, 4, 5]))
    monkeypatch.setattr(predictor, "select", lambda *a, **k: [found])
    geo = predictor.Letterboxed(np.array([1.0]), np.array([[4.0, 0.0]]), np.array([[64, 52]]))  # 4 px pad left/right
    stub = SimpleNamespace(embeddings=None, maps=None, mask_coef=None)
    dets, _ = predictor.run_batch(lambda x: stub, torch.zeros(1, 3, 64, 64), geo, ["scratch"], 0.1, 0.7, 10)
    assert dets[0].xyxy.tolist() == [[6.0, 20.0, 26.0, 40.0]]  # the other two clip to x 0..0 and 52..52
    assert dets[0].data["anchor"].tolist() == [3]
    gt = {"images": [{"id": 1}], "categories": [{"id": 1}]}
    assert len(check_predictions(gt, coco_results(dets[0], 1), "saved.json")) == 1
