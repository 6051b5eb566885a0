import subprocess
import sys

import pytest

import rtvp


def test_import_rtvp_stays_light():
    code = "import sys, rtvp; print('torch' in sys.modules, sorted(rtvp.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("False ")  # nothing heavy until a public name is used
    for name in ("Predictor", "train", "val", "evaluate", "TrainConfig", "ModelConfig", "build_model"):
        assert repr(name) in out


def test_public_names_resolve_to_the_real_objects():
    from rtvp.evaluation.evaluator import evaluate
    from rtvp.models.detector import build_model
    from rtvp.predict.predictor import Predictor

    assert rtvp.Predictor is Predictor and rtvp.evaluate is evaluate and rtvp.build_model is build_model
    assert rtvp.TrainConfig(epochs=2).model == rtvp.ModelConfig()
    with pytest.raises(AttributeError, match="no attribute 'Trainer'"):
        rtvp.Trainer  # noqa: B018


def test_train_then_val_through_the_public_api(tmp_path):
    from trainer_bench import write_bench

    bench = write_bench(tmp_path / "bench")
    cfg = rtvp.TrainConfig(data=bench, arch="expert", epochs=1, imgsz=64, batch=4, workers=0, device="cpu",
                           out=tmp_path / "run", model=rtvp.ModelConfig(scale="tiny"), tensorboard=False, plots=False)
    runs = rtvp.train(cfg)
    assert list(runs) == ["expert"] and runs["expert"]["best"].is_file()
    metrics = rtvp.val(runs["expert"]["best"], bench, "closed", imgsz=64, device="cpu")
    assert metrics["AP"] == runs["expert"]["metrics"]["AP"]  # the same path as the trainer's evaluation
