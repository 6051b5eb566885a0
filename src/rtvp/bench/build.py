"""Benchmark build pipeline: recipe -> convert -> validate -> map/fix/dedup -> split -> write (atomic, resumable).

Everything is written into ``<out>.partial-<hash>/`` next to ``<out>`` (``hash`` = recipe + root) and renamed into
place at the end, so a killed build never leaves a half-written benchmark; a rerun reuses the finished converter
spools whose label files are unchanged (content keys, ``rtvp.bench.spoolkey``; the summary counts the reused
records) and the per-image validation cache found in the partial folder, and completes. A failed build names the
partial folders it leaves; the next successful build of the same ``--out`` removes them.

Memory (why a 1M-image build fits): records are streamed from the converters to JSON-lines spools on disk; the
build keeps only flat per-image numpy arrays (~100 bytes/image: spool offset, sha1, 64-bit hash, size, channels,
group, split flags, class incidence in CSR form), never decoded images (workers return metadata only, in bounded
blocks) and never the annotation lists, which are re-read from disk and written to the COCO files incrementally.
Relative paths are held only while sorting the image order (~300 bytes/image, transient); dedup + splits peak at
~180 bytes/image (``tests/unit/bench/test_build_scale.py`` measures 100k records). 1M images -> a few hundred MB.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtvp.bench import validate as v
from rtvp.bench.dedup import near_duplicate_groups
from rtvp.bench.ingest import Checks, SpoolIndex, index_spools, run_converters, validate_images
from rtvp.bench.native import resolve_classes
from rtvp.bench.process import Kept, log_near_duplicates, process_records
from rtvp.bench.recipe import Recipe
from rtvp.bench.splits import (
    EmbedFn,
    OpenChoice,
    SceneGuard,
    choose_unseen,
    closed_split,
    open_split,
    source_split,
)
from rtvp.bench.taxonomy import Taxonomy
from rtvp.bench.writer import place_image, read_lines, write_benchmark_yaml, write_coco_splits
from rtvp.config import to_dict
from rtvp.errors import ConfigError, DataError, RtvpError


@dataclass
class BuildSummary:
    """What a build did (returned by ``build_benchmark`` and printed by the CLI)."""

    out: Path
    images: int
    annotations: int
    categories: int
    per_source: dict[str, int]
    splits: dict[str, dict[str, int]]
    issues: dict[str, int]
    unseen: list[str]
    seconds: float
    cached: int = 0
    reused: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        """Throughput over the records read."""
        return sum(self.per_source.values()) / max(self.seconds, 1e-9)


def partial_dir(recipe: Recipe, root: Path, out: Path) -> Path:
    """Scratch folder of a build of ``recipe`` over ``root`` into ``out`` (same filesystem, so rename works)."""
    key = hashlib.sha1(f"{recipe.sha1()}|{root.resolve()}".encode()).hexdigest()[:12]
    return out.parent / f"{out.name}.partial-{key}"


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=not enabled, transient=False) as prog:
        yield prog


def _embeddings(embed: EmbedFn, texts: list[str]) -> np.ndarray:
    emb = np.asarray(embed(texts), dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise ConfigError(f"text encoder returned shape {emb.shape}, expected ({len(texts)}, D)")
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def _forced_unseen(recipe: Recipe, tax: Taxonomy, embed: EmbedFn | None) -> np.ndarray:
    """``(C,)`` classes unseen by the recipe (manual list: texts or defect words; unseen scenes); checked early."""
    sp, cats = recipe.split, tax.categories
    forced = np.array([c.scene in sp.unseen_scenes for c in cats], dtype=bool)
    for name in sp.unseen_classes:
        hit = np.array([name in (c.text, c.defect) for c in cats])
        if not hit.any():
            raise ConfigError(f"split.unseen_classes: '{name}' matches no category text or defect "
                              f"(texts: {[c.text for c in cats]})")
        forced |= hit
    if embed is None and not sp.unseen_classes and sp.unseen_fraction > 0:
        raise ConfigError("split.unseen_fraction > 0 needs a text encoder to choose unseen classes; pass one "
                          "(--text-encoder) or list split.unseen_classes")
    return forced


def _scene_guard(recipe: Recipe, tax: Taxonomy, kept: Kept, forced: np.ndarray) -> SceneGuard | None:
    """The per-scene ``open_train`` floor of the automatic unseen choice (None when disabled)."""
    sp = recipe.split
    if sp.min_open_train_share <= 0:
        return None
    scenes = sorted({s.scene for s in recipe.sources})
    source_scene = np.array([scenes.index(s.scene) for s in recipe.sources], dtype=np.int64)
    exempt = np.array([s in sp.unseen_scenes for s in scenes], dtype=bool)
    guard = SceneGuard(kept.indptr, kept.cats, source_scene[kept.source], len(tax.categories),
                       sp.min_open_train_share, exempt)
    for c in np.flatnonzero(forced):
        guard.add(int(c))
    return guard


def _open_choice(recipe: Recipe, tax: Taxonomy, kept: Kept, embed: EmbedFn | None) -> OpenChoice:
    """Unseen classes: manual list and unseen scenes, else the automatic choice among classes with images."""
    sp = recipe.split
    forced = _forced_unseen(recipe, tax, embed)
    emb = _embeddings(embed, tax.texts()) if embed is not None else None
    eligible = np.bincount(kept.cats, minlength=len(tax.categories)) > 0
    return choose_unseen(emb, forced, eligible, sp.unseen_fraction, sp.tau, sp.seed, bool(sp.unseen_classes),
                         _scene_guard(recipe, tax, kept, forced))


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that a finished build could not replace: a file, or a folder that is not a benchmark."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; pass a new folder (or an earlier benchmark) as --out")
    if out.exists() and not (out / "benchmark.yaml").exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} exists and is not an rtvp benchmark (no benchmark.yaml); refusing to replace "
                          f"it: pass a new folder, or an earlier benchmark to replace")


def _partials(out: Path) -> list[Path]:
    """Scratch folders of earlier builds of ``out`` (``<out>.partial-*``), sorted."""
    return sorted(p for p in out.parent.glob(f"{out.name}.partial-*") if p.is_dir())


def _with_partials(e: RtvpError, out: Path, partial: Path) -> RtvpError:
    """``e`` with the partial folders it leaves behind listed (same error type)."""
    left = _partials(out)
    if not left:
        return e
    others = [p for p in left if p != partial]
    note = f"\nState of this build kept in {partial} (the next run resumes from it; --fresh discards it)." \
        if partial in left else ""
    if others:
        note += (f"\nOlder partial builds of {out}: {', '.join(p.name for p in others)} (removed by the next "
                 f"successful build of {out.name}; delete them now to free the space)")
    return type(e)(f"{e}{note}")


def _replace_dir(partial: Path, out: Path) -> None:
    """Move the finished ``partial`` folder to ``out``, replacing an older benchmark there."""
    check_out(out)
    if out.exists():
        old = out.parent / f"{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(partial, out)
        shutil.rmtree(old)
    else:
        os.replace(partial, out)


def _benchmark_yaml(recipe: Recipe, tax: Taxonomy, choice: OpenChoice, summary: dict[str, Any],
                    text_encoder: str) -> dict[str, Any]:
    cats = tax.categories
    unseen = [{"name": cats[i].text, "nearest_seen": cats[int(choice.nearest[i])].text,
               "similarity": round(float(choice.similarity[i]), 4)} if choice.nearest[i] >= 0 else
              {"name": cats[i].text} for i in np.flatnonzero(choice.unseen)]
    return {
        "name": recipe.name,
        "version": recipe.version,
        "recipe_sha1": recipe.sha1(),
        "text_template": recipe.text_template,
        "text_encoder": text_encoder,
        "taxonomy": tax.tree(),
        "categories": [c.to_coco() for c in cats],
        "sources": [{"name": s.name, "format": s.format, "path": s.path, "scene": s.scene,
                     "supercategory": s.supercategory, "license": s.license,
                     "images": summary["per_source"][s.name]} for s in recipe.sources],
        "split": {**to_dict(recipe.split), "unseen_target": choice.target, "unseen": unseen,
                  "unseen_without_neighbour": [cats[i].text for i in choice.without_neighbour]},
        "output": to_dict(recipe.output),
        "validation": to_dict(recipe.validation),
        "stats": {"images": summary["images"], "annotations": summary["annotations"],
                  "splits": summary["splits"], "issues": summary["issues"]},
    }


def build_benchmark(recipe: Recipe, root: Path, out: Path, *, workers: int = 1, strict: bool = False,
                    embed: EmbedFn | None = None, text_encoder: str = "", progress: bool = False,
                    fresh: bool = False) -> BuildSummary:
    """Build the benchmark described by ``recipe`` from the datasets under ``root`` into ``out``.

    Args:
        recipe: the loaded recipe.
        root: folder the sources' ``path`` entries are relative to (never written to).
        out: benchmark folder to create (an existing benchmark there is replaced atomically at the end).
        workers: processes for conversion and image validation (1 = in process).
        strict: any issue (unreadable image, clipped/degenerate box, unknown class, empty label file, duplicate)
            aborts the build with the listing, before anything is written to ``out``.
        embed: class-text embedding function for the automatic unseen choice (``texts -> (C, D)``).
        text_encoder: name recorded in ``benchmark.yaml``.
        progress: show rich progress bars.
        fresh: discard the resumable state of an earlier killed build.

    Returns:
        A ``BuildSummary``.

    Raises:
        ConfigError: bad recipe values, missing source folders, unknown formats.
        DataError: a malformed label file (from a converter) or, with ``strict``, any issue.
    """
    t0 = time.perf_counter()
    root, out = Path(os.path.abspath(root)), Path(os.path.abspath(out))  # normalised like the converters' paths
    check_out(out)
    recipe = resolve_classes(recipe, root)  # sources without `classes` keep their native names
    tax = Taxonomy(recipe)
    _forced_unseen(recipe, tax, embed)  # fail on open-split inputs before the long stages
    partial = partial_dir(recipe, root, out)
    if fresh and partial.exists():
        shutil.rmtree(partial)
    try:
        summary = _build(recipe, tax, root, out, partial, workers, strict, embed, text_encoder, progress)
    except RtvpError as e:
        raise _with_partials(e, out, partial) from None
    for stale in _partials(out):  # failed builds of the same output, with an older recipe or root
        shutil.rmtree(stale, ignore_errors=True)
    summary.seconds = time.perf_counter() - t0
    return summary


def _build(recipe: Recipe, tax: Taxonomy, root: Path, out: Path, partial: Path, workers: int, strict: bool,
           embed: EmbedFn | None, text_encoder: str, progress: bool) -> BuildSummary:
    """The stages of :func:`build_benchmark` inside ``partial``, then the rename to ``out``."""
    t0 = time.perf_counter()
    work = partial / ".work"
    work.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    spools, index, checks, reused = _ingest(recipe, root, work, workers, progress, times)
    kept, groups, log = _analyse(recipe, tax, root, partial, spools, index, checks, strict)
    times["process"] = time.perf_counter() - t0 - sum(times.values())
    summary = _split_and_write(recipe, tax, root, partial, work, kept, groups, embed, progress)
    summary["per_source"] = {s.name: int(np.sum(index.source == i)) for i, s in enumerate(recipe.sources)}
    summary["issues"] = dict(sorted(log.counts.items()))
    choice = summary.pop("choice")
    write_benchmark_yaml(partial / "benchmark.yaml", _benchmark_yaml(recipe, tax, choice, summary, text_encoder))
    from rtvp.bench.stats import write_report

    report = write_report(partial)
    shutil.rmtree(work)
    _replace_dir(partial, out)
    times["write"] = time.perf_counter() - t0 - sum(times.values())
    unseen = [tax.categories[i].text for i in np.flatnonzero(choice.unseen)]
    return BuildSummary(out, summary["images"], summary["annotations"], len(tax.categories), summary["per_source"],
                        summary["splits"], summary["issues"], unseen, time.perf_counter() - t0, checks.cached, reused,
                        times, report.warnings)


def _ingest(recipe: Recipe, root: Path, work: Path, workers: int, progress: bool,
            times: dict[str, float]) -> tuple[list[Path], SpoolIndex, Checks, int]:
    """Stages 1-2: converters -> spools, then image validation, with one worker pool for both.

    Returns:
        ``(spools, index, checks, records reused from the spools of an earlier build)``.
    """
    t0 = time.perf_counter()
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"  # fork: no re-imports
    pool = multiprocessing.get_context(method).Pool(workers) if workers > 1 else None
    try:
        with _progress(progress) as prog:
            task = prog.add_task("convert", total=len(recipe.sources))
            spools, reused = run_converters(recipe.sources, root, work, pool, lambda k: prog.advance(task, k))
            index = index_spools(spools)
            times["convert"] = time.perf_counter() - t0
            task = prog.add_task("validate", total=len(index))
            checks = validate_images(spools, [root / s.path for s in recipe.sources], len(index),
                                     work / "validate-cache.jsonl", pool, lambda k: prog.advance(task, k))
            times["validate"] = time.perf_counter() - t0 - times["convert"]
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return spools, index, checks, reused


def _analyse(recipe: Recipe, tax: Taxonomy, root: Path, partial: Path, spools: list[Path], index: SpoolIndex,
             checks: Checks, strict: bool) -> tuple[Kept, np.ndarray, v.IssueLog]:
    """Stage 3: map/fix/dedup pass and near-duplicate groups; every issue logged; ``strict`` raises here."""
    log = v.IssueLog(partial / "report" / "issues.csv")
    try:
        kept = process_records(recipe, tax, root, spools, index, checks, log, partial / ".work")
        groups = near_duplicate_groups(kept.phash, recipe.validation.phash_distance)
        log_near_duplicates(groups, partial / ".work" / "names.txt", recipe, log)
    finally:
        log.close()
    if strict and log.total:
        raise DataError(f"--strict: {log.summary()}\nFix the sources or the recipe, or build without --strict "
                        f"(issues are then listed in report/issues.csv).")
    return kept, groups, log


def _split_and_write(recipe: Recipe, tax: Taxonomy, root: Path, partial: Path, work: Path, kept: Kept,
                     groups: np.ndarray, embed: EmbedFn | None, progress: bool) -> dict[str, Any]:
    """Closed and open splits, then the COCO files and the image links."""
    sp = recipe.split
    if sp.val_sources:
        val_sources = np.array([s.name in sp.val_sources for s in recipe.sources], dtype=bool)
        is_val = source_split(groups, kept.source, val_sources)
    else:
        is_val = closed_split(groups, kept.indptr, kept.cats, len(tax.categories), sp.val_fraction, sp.seed)
    choice = _open_choice(recipe, tax, kept, embed)
    for c, flag in zip(tax.categories, choice.unseen, strict=True):
        c.split = "unseen" if flag else "seen"
    scene_unseen = np.array([s.scene in sp.unseen_scenes for s in recipe.sources], dtype=bool)
    open_train, open_val = open_split(groups, is_val, kept.indptr, kept.cats, choice.unseen,
                                      scene_unseen[kept.source] if len(kept.source) else np.zeros(0, bool))
    members = {"closed_train": ~is_val, "closed_val": is_val, "open_train": open_train, "open_val": open_val}
    info = {"description": recipe.name, "version": recipe.version, "recipe_sha1": recipe.sha1()}
    categories = [c.to_coco() for c in tax.categories]
    counts = write_coco_splits(partial / "annotations", work, read_lines(work / "processed.jsonl"), members,
                               groups, categories, info)
    mode = recipe.output.images
    with _progress(progress and mode != "none") as prog:
        task = prog.add_task("images", total=len(groups))
        with (work / "names.txt").open(encoding="utf-8") as f:
            for row in f:
                s, rel = row.rstrip("\n").split("\t", 1)
                src = recipe.sources[int(s)]
                place_image(root / src.path / rel, partial / "images" / src.name / rel, mode)
                prog.advance(task)
    n_ann = counts["closed_train"]["annotations"] + counts["closed_val"]["annotations"]
    return {"images": len(groups), "annotations": n_ann, "splits": counts, "choice": choice}
