from __future__ import annotations

from tinybench import write_tiny_bench
from typer.testing import CliRunner

from rtvp.cli.main import app


def test_stats_command_prints_tables(tmp_path):
    bench = write_tiny_bench(tmp_path)
    result = CliRunner().invoke(app, ["data", "stats", str(bench), "--write"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "5 images (1 defect-free), 5 instances, 3 classes (2 seen / 1 unseen), 2 scenes" in result.output
    assert "crack on wood" in result.output and "Per scene" in result.output
    assert (bench / "report" / "stats.md").is_file() and (bench / "report" / "longtail.png").is_file()


def test_stats_command_missing_bench(tmp_path):
    result = CliRunner().invoke(app, ["data", "stats", str(tmp_path)])
    assert result.exit_code != 0
    assert "closed_train.json: split file not found" in str(result.exception)
