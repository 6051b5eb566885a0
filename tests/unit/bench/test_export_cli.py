from __future__ import annotations

import yaml
from tinybench import write_tiny_bench
from typer.testing import CliRunner

from rtvp.cli.main import app


def test_export_command_yolo_and_coco(tmp_path):
    bench = write_tiny_bench(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["data", "export", str(bench), "--format", "yolo", "--out", str(tmp_path / "y"),
                                 "--protocol", "open"])
    assert result.exit_code == 0, result.output
    meta = yaml.safe_load((tmp_path / "y" / "data.yaml").read_text())
    assert meta["names"][2] == "crack on wood"
    assert len(list((tmp_path / "y" / "labels" / "train").iterdir())) == 2  # open_train holds 2 images
    result = runner.invoke(app, ["data", "export", str(bench), "--format", "coco", "--out", str(tmp_path / "c"),
                                 "--copy"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c" / "annotations" / "val.json").is_file()
    assert not (tmp_path / "c" / "images" / "metal" / "img4.png").is_symlink()


def test_export_command_rejects_unknown_format(tmp_path):
    result = CliRunner().invoke(app, ["data", "export", str(tmp_path), "--format", "voc", "--out", str(tmp_path)])
    assert result.exit_code == 2
