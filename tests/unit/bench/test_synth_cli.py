from __future__ import annotations

import json

import cv2
from typer.testing import CliRunner

from rtvp.cli.main import app


def test_synth_command(tmp_path):
    out = tmp_path / "synth"
    result = CliRunner().invoke(app, ["data", "synth", "--out", str(out), "--seed", "3", "--images", "8",
                                      "--size", "64", "--preview", str(tmp_path / "p.png")])
    assert result.exit_code == 0, result.output
    assert "wrote 8 images" in result.output
    assert sum(len(json.loads((out / s / "annotations.json").read_text())["images"])
               for s in ("metal", "wood", "fabric", "pcb")) == 8
    preview = cv2.imread(str(tmp_path / "p.png"))
    assert preview.shape == (2 * 256, 4 * 256, 3)  # 8 pictures, 4 columns, 256 px tiles


def test_synth_command_refuses_non_empty_out(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    result = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path), "--images", "2", "--size", "64"])
    assert result.exit_code != 0
    assert "overwrite" in str(result.exception)
