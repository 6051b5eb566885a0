"""Label-noise injection (exact, to other classes, deterministic) and the robustness experiment on the toy bench."""

import json

import numpy as np
import pytest

from rtvp.annotate import label_noise
from rtvp.annotate.label_noise import inject_label_noise, noise_robustness
from rtvp.errors import ConfigError
from rtvp.models import ModelConfig
from rtvp.training.config import TrainConfig


def _coco(n=200, classes=(1, 2, 3, 4)):
    rng = np.random.default_rng(1)
    cats = [{"id": c, "name": f"c{c}"} for c in classes]
    anns = [{"id": i + 1, "image_id": 1, "category_id": int(rng.choice(classes)), "bbox": [0, 0, 1, 1]}
            for i in range(n)]
    return {"images": [{"id": 1}], "categories": cats, "annotations": anns}


@pytest.mark.parametrize("percent", [0, 5, 10, 30, 100])
def test_flips_exactly_x_percent_to_other_classes(percent):
    coco = _coco()
    before = [a["category_id"] for a in coco["annotations"]]
    noisy, flipped = inject_label_noise(coco, percent, seed=3)
    after = [a["category_id"] for a in noisy["annotations"]]
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert len(flipped) == round(percent / 100 * 200) and changed == flipped.tolist()  # every flip changes class
    assert [a["category_id"] for a in coco["annotations"]] == before  # the input is untouched
    assert all(b in (1, 2, 3, 4) for b in after)
    assert [a["bbox"] for a in noisy["annotations"]] == [a["bbox"] for a in coco["annotations"]]


def test_noise_is_deterministic_and_uses_every_other_class():
    coco = _coco(1000)
    a, fa = inject_label_noise(coco, 30, seed=7)
    b, fb = inject_label_noise(coco, 30, seed=7)
    c, fc = inject_label_noise(coco, 30, seed=8)
    assert a == b and fa.tolist() == fb.tolist() and fa.tolist() != fc.tolist()
    pairs = {(coco["annotations"][i]["category_id"], a["annotations"][i]["category_id"]) for i in fa}
    assert pairs == {(x, y) for x in range(1, 5) for y in range(1, 5) if x != y}  # uniform over the others


def test_restricted_classes_and_errors():
    coco = _coco(100)
    noisy, flipped = inject_label_noise(coco, 50, seed=0, category_ids=[1, 2])
    eligible = [i for i, a in enumerate(coco["annotations"]) if a["category_id"] in (1, 2)]
    assert len(flipped) == round(0.5 * len(eligible)) and set(flipped.tolist()) <= set(eligible)
    assert all(noisy["annotations"][i]["category_id"] in (1, 2) for i in flipped)
    with pytest.raises(ConfigError, match="between 0 and 100"):
        inject_label_noise(coco, 120)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        inject_label_noise(_coco(10, classes=(1,)), 10)
    assert len(inject_label_noise(_coco(10, classes=(1,)), 0)[1]) == 0


def test_noise_robustness_trains_each_level_and_resumes(bench, tmp_path, monkeypatch):
    cfg = TrainConfig(arch="expert", epochs=1, batch=4, imgsz=64, workers=0, device="cpu", warmup_iters=1,
                      tensorboard=False, plots=False, model=ModelConfig(scale="tiny"))
    r = noise_robustness(bench, [50], cfg, tmp_path / "noise", seed=0)
    assert [row["percent"] for row in r["levels"]] == [0.0, 50.0]
    clean, noisy = r["levels"]
    assert clean["flipped"] == 0 and noisy["flipped"] == round(0.5 * noisy["annotations"])
    assert isinstance(clean["AP50"], float) and r["clean_AP50"] == clean["AP50"]
    assert noisy["delta_AP50"] == pytest.approx(noisy["AP50"] - clean["AP50"]) and clean["delta_AP50"] == 0.0
    train = json.loads((tmp_path / "noise" / "noise_50" / "bench" / "annotations" / "closed_train.json").read_text())
    orig = json.loads((bench / "annotations" / "closed_train.json").read_text())
    diff = sum(a["category_id"] != b["category_id"] for a, b in zip(train["annotations"], orig["annotations"],
                                                                     strict=True))
    assert diff == noisy["flipped"]
    monkeypatch.setattr(label_noise, "_train_level", lambda *a, **k: pytest.fail("resume must not retrain"))
    again = noise_robustness(bench, [50], cfg, tmp_path / "noise", seed=0, resume=True)
    assert again["levels"] == r["levels"]


def test_quality_cli_runs_the_noise_experiment(bench, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from rtvp.cli.main import app

    calls = []

    def fake(bench_, split, coco, percent, cfg, folder, seed):
        calls.append((percent, cfg.model_name, cfg.epochs, cfg.imgsz, seed))
        return {"percent": percent, "flipped": 0, "annotations": 1, "AP50": 0.5 - percent / 1000, "AP": 0.2,
                "run_dir": str(folder)}

    monkeypatch.setattr(label_noise, "_train_level", fake)
    out = tmp_path / "r"
    res = CliRunner().invoke(app, ["data", "quality", "--noise-experiment", str(bench), "--noise", "5,10",
                                   "--model", "expert-tiny", "--epochs", "2", "--imgsz", "64", "--seed", "3",
                                   "--json", "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert calls == [(0.0, "expert-tiny", 2, 64, 3), (5.0, "expert-tiny", 2, 64, 3), (10.0, "expert-tiny", 2, 64, 3)]
    data = json.loads(res.stdout)
    assert [r["delta_AP50"] for r in data["noise"]["levels"]] == pytest.approx([0.0, -0.005, -0.01])
    assert (out / "noise" / "noise_5" / "result.json").is_file()
    assert "| 10% label noise ΔAP50 | -0.010 |" in (out / "report.md").read_text()
    res = CliRunner().invoke(app, ["data", "quality", "--noise-experiment", str(bench), "--noise", "x"])
    assert res.exit_code != 0
