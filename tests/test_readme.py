from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = [ln.strip() for ln in (REPO / ".ci/run").read_text().splitlines()]
    ci_cmd = [ln for ln in ci_lines if ln and not ln.startswith("#")][-1]
    readme = (REPO / "README.md").read_text()
    block = readme.split("```bash", 1)[1].split("```", 1)[0]
    test_line = [ln for ln in block.splitlines() if "# tests" in ln][0].split("#")[0].strip()
    assert ci_cmd == test_line


def test_every_readme_command_and_flag_exists():
    """Each `rtvp ...` command of README names a real (sub)command, and each of its --flags is one of its options."""
    import re

    from typer.testing import CliRunner

    from rtvp.cli.main import app

    readme = (REPO / "README.md").read_text()
    blocks = "\n".join(b.split("```", 1)[0] for b in readme.split("```bash")[1:])
    commands = re.findall(r"`rtvp ([^`]*)`", readme) + re.findall(r"&& rtvp ([^#\n]*)", blocks)
    runner, checked = CliRunner(), 0
    for cmd in commands:
        words = cmd.split()
        path = [w for w in words[:2] if re.fullmatch(r"[a-z]+", w)]
        if path[1:] and path[0] != "data":
            path = path[:1]
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, f"`rtvp {cmd}`: `rtvp {' '.join(path)}` is not a command: {result.output}"
        for flag in re.findall(r"(--[a-z][a-z-]*)", cmd):
            assert flag in result.output, f"`rtvp {cmd}`: {flag} is not an option of `rtvp {' '.join(path)}`"
            checked += 1
    assert len(commands) >= 15 and checked >= 25
