"""The import graph points one way.

sources -> bench -> data -> models -> loss -> checkpoint -> {training, predict} -> {evaluation, deploy}
-> {annotate, tasks} -> service -> cli. training and predict never import each other; training never imports
evaluation (it arrives as a hook).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rtvp"
RANK = {
    "sources": 1, "bench": 2, "device": 3, "data": 3, "models": 4, "loss": 5, "checkpoint": 6,
    "training": 7, "predict": 7, "evaluation": 8, "deploy": 8, "annotate": 9, "tasks": 9,
    "api": 10, "service": 10, "cli": 11,
}
SIBLINGS_APART = [("training", "predict"), ("evaluation", "deploy"), ("annotate", "tasks")]
LEAVES = {"registry", "errors", "structures", "boxes", "config", "fileio", "imaging", "__init__", "vocabulary",
          "masks"}


def _package(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (type-only imports)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in ast.walk(child))
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(path: Path) -> list[str]:
    out = []
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


FILES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_back_up_the_chain(path: Path):
    own = path.relative_to(SRC).parts[0].removesuffix(".py")
    own_rank = RANK.get(own, 0)
    for mod in _imports(path):
        if mod.split(".")[0] != "rtvp":
            if own in ("sources", "bench") or own in LEAVES:
                assert mod.split(".")[0] != "torch", f"{path}: {own} must not import torch"
            continue
        dep = _package(mod)
        if dep in LEAVES:
            continue
        assert RANK.get(dep, 0) <= own_rank, f"{path}: {own} imports {mod} (later stage)"
        for a, b in SIBLINGS_APART:
            assert {own, dep} != {a, b}, f"{path}: {own} imports {mod} ({a} and {b} never import each other)"


def test_every_package_is_ranked():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in SRC.glob("*.py")}
    assert packages <= set(RANK), f"unranked packages: {sorted(packages - set(RANK))}"
    assert modules <= set(RANK) | LEAVES, f"unranked modules: {sorted(modules - set(RANK) - LEAVES)}"


def test_train_never_imports_evaluation_and_predict_never_imports_training_code():
    for f in (SRC / "training").rglob("*.py"):
        assert not any(m.startswith("rtvp.evaluation") for m in _imports(f)), f"{f} imports evaluation (use a hook)"
    for f in list((SRC / "predict").rglob("*.py")) + list((SRC / "service").rglob("*.py")):
        for m in _imports(f):
            assert not m.startswith(("rtvp.loss", "rtvp.data", "rtvp.training")), f"{f} imports {m}"
