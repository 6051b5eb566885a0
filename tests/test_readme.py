from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = [ln.strip() for ln in (REPO / ".ci/run").read_text().splitlines()]
    ci_cmd = [ln for ln in ci_lines if ln and not ln.startswith("#")][-1]
    readme = (REPO / "README.md").read_text()
    block = readme.split("```bash", 1)[1].split("```", 1)[0]
    test_line = [ln for ln in block.splitlines() if "# tests" in ln][0].split("#")[0].strip()
    assert ci_cmd == test_line
