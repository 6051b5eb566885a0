from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rtvp.cli.main import app
from rtvp.errors import ConfigError, DataError

runner = CliRunner()


def _recipe(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_cli_build_with_hash_encoder_then_check(kit, clean_root, tmp_path, monkeypatch):
    monkeypatch.setenv("RTVP_CACHE_DIR", str(tmp_path / "cache"))
    recipe = _recipe(tmp_path, kit.recipe_dict(unseen_fraction=0.25, tau=0.1))
    out = tmp_path / "bench"
    res = runner.invoke(app, ["data", "build", str(recipe), "--root", str(clean_root), "--out", str(out),
                              "--text-encoder", "hash", "--workers", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "images 50" in res.output and "images/s" in res.output
    meta = yaml.safe_load((out / "benchmark.yaml").read_text(encoding="utf-8"))
    assert meta["text_encoder"] == "hash" and meta["split"]["unseen_target"] == 1
    assert [c["split"] for c in meta["categories"]].count("unseen") == 1
    assert any((tmp_path / "cache").rglob("*"))  # class-text embeddings cached for the next build
    res = runner.invoke(app, ["data", "check", str(out)])
    assert res.exit_code == 0 and "ok" in res.output


def test_cli_build_warns_when_a_scene_keeps_no_open_train_image(kit, clean_root, tmp_path):
    for label in (clean_root / "mill" / "labels").glob("k*.txt"):  # every wood image now holds a crack too
        label.write_text(label.read_text() + "0 0.2 0.2 0.1 0.1\n")
    recipe = _recipe(tmp_path, kit.recipe_dict(unseen_classes=["crack"]))
    out = tmp_path / "bench"
    res = runner.invoke(app, ["data", "build", str(recipe), "--root", str(clean_root), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "warning: scene 'wood': open_train keeps 0 of its 12 closed_train images" in text
    assert "metal plate" not in text.split("warning:", 1)[1]  # the other scene loses nothing
    assert "- scene 'wood': open_train keeps 0 of its 12" in (out / "report" / "stats.md").read_text()
    open_train = json.loads((out / "annotations" / "open_train.json").read_text())
    assert {im["scene"] for im in open_train["images"]} == {"metal plate"}


def test_cli_check_lists_problems(kit, clean_root, tmp_path):
    recipe = _recipe(tmp_path, kit.recipe_dict(unseen_classes=["knot"]))
    out = tmp_path / "bench"
    assert runner.invoke(app, ["data", "build", str(recipe), "--root", str(clean_root), "--out", str(out),
                               "--quiet"]).exit_code == 0
    train_path, val_path = out / "annotations" / "closed_train.json", out / "annotations" / "closed_val.json"
    train, val = json.loads(train_path.read_text()), json.loads(val_path.read_text())
    val["images"].append(train["images"][0])  # leakage
    val["annotations"].append({**val["annotations"][0], "id": 10_000, "image_id": 99_999})  # dangling image id
    val_path.write_text(json.dumps(val))
    (out / train["images"][1]["file_name"]).unlink()  # missing image
    open_train = json.loads((out / "annotations" / "open_train.json").read_text())
    knot = next(c["id"] for c in open_train["categories"] if c["name"] == "knot on wood")
    open_train["annotations"].append({**open_train["annotations"][0], "id": 20_000, "category_id": knot})
    (out / "annotations" / "open_train.json").write_text(json.dumps(open_train))
    res = runner.invoke(app, ["data", "check", str(out)])
    assert res.exit_code == 1
    assert "leakage: 1 image id(s) in both closed_train and closed_val" in res.output
    assert "refers to missing image 99999" in res.output
    assert "is missing (or a dangling link)" in res.output
    assert "open_train image(s) hold unseen classes" in res.output
    (out / "annotations" / "open_val.json").write_text("{not json")
    res = runner.invoke(app, ["data", "check", str(out)])
    assert res.exit_code == 1 and "open_val.json: does not load in pycocotools" in res.output


def test_cli_errors_surface_as_rtvp_errors(kit, bad_root, tmp_path):
    root, _ = bad_root
    recipe = _recipe(tmp_path, kit.recipe_dict())
    res = runner.invoke(app, ["data", "build", str(recipe), "--root", str(root), "--out", str(tmp_path / "b"),
                              "--strict", "--quiet"])
    assert res.exit_code != 0 and isinstance(res.exception, DataError)
    assert "--strict" in str(res.exception) and not (tmp_path / "b").exists()
    data = kit.recipe_dict()
    data["colour"] = "red"
    res = runner.invoke(app, ["data", "build", str(_recipe(tmp_path, data)), "--root", str(root), "--out",
                              str(tmp_path / "b")])
    assert isinstance(res.exception, ConfigError) and "colour" in str(res.exception)


@pytest.mark.parametrize("args", [["data", "build", "--help"], ["data", "check", "--help"]])
def test_cli_help(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "Usage" in res.output
