"""A YOLO data YAML, a COCO JSON or a dataset folder turned into a recipe and built once (``rtvp.bench.implicit``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from own_datasets import write_coco, write_yolo
from rtvp.bench.implicit import dataset_hash, dataset_recipe, ensure_benchmark
from rtvp.cli.main import app
from rtvp.errors import ConfigError

runner = CliRunner()


def _split_files(bench: Path) -> dict[str, list[str]]:
    out = {}
    for split in ("closed_train", "closed_val"):
        data = json.loads((bench / "annotations" / f"{split}.json").read_text())
        out[split] = sorted(Path(i["file_name"]).name for i in data["images"])
    return out


def test_yolo_yaml_keeps_its_splits_and_class_names(tmp_path):
    data = write_yolo(tmp_path / "my_parts")
    ds = dataset_recipe(data)
    assert ds.kind == "YOLO data YAML" and ds.root == data.parent
    assert [s.name for s in ds.recipe.sources] == ["train", "val"] and ds.recipe.split.val_sources == ["val"]
    assert ds.recipe.sources[0].scene == "my parts" and ds.recipe.name == "my_parts"
    bench = ensure_benchmark(data, tmp_path / "cache")
    meta = yaml.safe_load((bench / "benchmark.yaml").read_text())
    assert [c["text"] for c in meta["categories"]] == ["pitted surface on my parts", "scratch on my parts"]
    assert _split_files(bench) == {"closed_train": [f"train{i}.png" for i in range(6)],
                                   "closed_val": ["val0.png", "val1.png"]}


def test_yolo_yaml_without_val_gets_the_random_split_and_scene_option(tmp_path):
    data = write_yolo(tmp_path / "d", {"train": 8})
    ds = dataset_recipe(data, scene="steel strip")
    assert [s.name for s in ds.recipe.sources] == ["d"] and ds.recipe.split.val_sources == []
    bench = ensure_benchmark(data, tmp_path / "cache", scene="steel strip")
    files = _split_files(bench)
    assert len(files["closed_train"]) + len(files["closed_val"]) == 8 and files["closed_val"]
    assert "scratch on steel strip" in (bench / "benchmark.yaml").read_text()


def test_build_is_cached_by_content(tmp_path, caplog):
    data = write_yolo(tmp_path / "d")
    first = ensure_benchmark(data, tmp_path / "cache")
    stamp = (first / "benchmark.yaml").stat().st_mtime_ns
    with caplog.at_level("INFO", logger="rtvp"):
        assert ensure_benchmark(data, tmp_path / "cache") == first
    assert "reusing benchmark" in caplog.text and (first / "benchmark.yaml").stat().st_mtime_ns == stamp
    label = data.parent / "labels" / "train" / "train0.txt"
    label.write_text("1 0.5 0.5 0.2 0.2\n")  # same size, other content
    ds = dataset_recipe(data)
    second = ensure_benchmark(data, tmp_path / "cache")
    assert second != first and second.name.endswith(dataset_hash(ds))


def test_coco_json_finds_its_images_and_keeps_native_names(tmp_path):
    ann = write_coco(tmp_path / "cvat")
    ds = dataset_recipe(ann)
    assert ds.kind == "COCO JSON" and ds.recipe.name == "cvat"
    bench = ensure_benchmark(ann, tmp_path / "cache")
    texts = [c["text"] for c in yaml.safe_load((bench / "benchmark.yaml").read_text())["categories"]]
    assert texts == ["pitted surface on cvat", "Scratch on cvat"]


def test_coco_folder_with_train_and_val_files(tmp_path):
    root = tmp_path / "export"
    write_coco(root, "train", 6)
    write_coco(root, "val", 2)
    ds = dataset_recipe(root)
    assert [s.name for s in ds.recipe.sources] == ["train", "val"] and ds.recipe.split.val_sources == ["val"]
    bench = ensure_benchmark(root, tmp_path / "cache")
    assert _split_files(bench)["closed_val"] == ["val0.png", "val1.png"]


def test_coco_json_images_elsewhere_need_images_option(tmp_path):
    ann = write_coco(tmp_path / "d", images_dir="pictures")
    with pytest.raises(ConfigError, match=r"cannot find the image folder .*pass it with --images DIR"):
        dataset_recipe(ann)
    with pytest.raises(ConfigError, match=r"--images .*nope: folder not found"):
        dataset_recipe(ann, images=tmp_path / "nope")
    ds = dataset_recipe(ann, images=tmp_path / "d" / "pictures")
    assert ds.recipe.sources[0].options["images"] == "pictures"


def test_benchmark_folder_is_used_as_it_is(tmp_path):
    bench = ensure_benchmark(write_yolo(tmp_path / "d"), tmp_path / "cache")
    assert dataset_recipe(bench) is None and ensure_benchmark(bench, tmp_path / "other") == bench


def _file(folder: Path, name: str, text: str) -> Path:
    (folder / name).write_text(text)
    return folder / name


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.yaml", r"--data .*missing.yaml: not found; give a benchmark folder, a YOLO data YAML"),
        (lambda p: (p / "empty").mkdir() or p / "empty", r"no dataset found in it \(expected data.yaml"),
        (lambda p: _file(p, "x.yaml", "epochs: 3\n"), r"x.yaml: neither a YOLO data YAML \(no 'names' key\)"),
        (lambda p: _file(p, "x.txt", "hi"), r"expected a benchmark folder, a .yaml or a .json"),
        (lambda p: _file(p, "x.json", "{"), r"x.json: COCO annotation file is not valid JSON"),
    ],
)
def test_bad_data_inputs_say_what_is_expected(tmp_path, make, message):
    with pytest.raises(ConfigError, match=message):
        dataset_recipe(make(tmp_path))


def test_cli_data_build_from_a_yolo_yaml_without_recipe(tmp_path):
    data = write_yolo(tmp_path / "d")
    out = tmp_path / "B"
    res = runner.invoke(app, ["data", "build", str(data), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "images 8" in res.output and "closed_val: 2 img" in res.output
    assert (out / "benchmark.yaml").is_file()


def test_cli_data_build_recipe_defaults_root_to_its_folder(kit, tmp_path):
    kit.write_clean_sources(tmp_path)
    data = kit.recipe_dict()
    data["version"] = 2
    del data["sources"][1]["classes"]  # native names: crack, knot
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(data))
    res = runner.invoke(app, ["data", "build", str(tmp_path / "recipe.yaml"), "--out", str(tmp_path / "B"),
                              "--quiet"])
    assert res.exit_code == 0, res.output
    meta = yaml.safe_load((tmp_path / "B" / "benchmark.yaml").read_text())
    assert meta["version"] == "2" and "knot on wood" in [c["text"] for c in meta["categories"]]


def test_cli_help_shows_an_example():
    for cmd in (["data", "build", "--help"], ["train", "--help"]):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 0 and "Example: rtvp" in res.output
