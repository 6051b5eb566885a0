"""Build stages 1-2: run the converters into on-disk record spools, then validate every image file in parallel.

Both stages are resumable. A source's spool file appears (atomic rename) only once its converter finished, so a
rerun skips finished sources whose recipe section, file listing and label-file contents are unchanged
(``rtvp.bench.spoolkey``); any change re-converts the source. With ``on_error: raise`` (the default) a source's
malformed label files are collected in one pass and raised together. Validation results are appended to a cache
file keyed by ``(path, size, mtime)`` and flushed per block, so a rerun only decodes the images a killed build had
not reached.

Memory: records go to disk as JSON lines as they are produced; only compact per-image arrays (spool offsets,
validation results) stay in memory, and images are validated in blocks so the task queue stays bounded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rtvp.bench import spoolkey
from rtvp.bench.recipe import SourceSpec
from rtvp.bench.validate import ImageCheck, check_job
from rtvp.errors import ConfigError, DataError

BLOCK = 4096
"""Images validated per block (bounds the task queue; the cache is flushed after each block)."""


def _relpath(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` as a POSIX string; DataError when it lies outside."""
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            raise DataError(f"{path}: converter returned an image outside the source folder {base}") from None


_SKIPPABLE = {"coco", "crackforest", "deeppcb", "labelme", "mask_folders", "voc", "yolo"}
"""Built-in formats with an ``on_error`` option (a plugin format without one keeps its own behaviour)."""


def _collect_mode(options: dict[str, Any]) -> bool:
    """True when the source stops on a malformed label file (``on_error: raise``, the default)."""
    return options.get("on_error", "raise") == "raise"


def _malformed_error(name: str, path: str, errors: list[str]) -> DataError:
    listing = "\n".join(f"  {e}" for e in errors)
    return DataError(f"source {name} ({path}): {len(errors)} malformed label file(s); nothing was built:\n{listing}\n"
                     f"Fix these files, or set on_error: skip in the source's options to build without those images "
                     f"(each is then listed in report/issues.csv).")


def convert_source(job: tuple[str, str, dict[str, Any], str, str, str]) -> int:
    """Run one converter and spool its records as JSON lines (worker-safe).

    With ``on_error: raise`` (the default) the converter runs in skip mode so every malformed label file of the
    source is found in one pass; they are then raised together. Each line carries ``k``, the content key of the
    files it was parsed from (``rtvp.bench.spoolkey``), so a resumed build never reuses stale labels.

    Args:
        job: ``(format, source_root, options, spool_path, source_name, recipe-section key)``.

    Returns:
        Number of records written. The spool file (and its key sidecar) appears only on success.

    Raises:
        DataError: malformed label files (all of them), or a source-level problem from the converter.
    """
    from rtvp.sources import ISSUES, SOURCES, LabelError

    fmt, root_s, options, spool_s, name, spec = job
    root, spool = Path(root_s), Path(spool_s)
    try:
        convert = SOURCES.get(fmt)
    except KeyError as e:
        raise ConfigError(f"source format: {e.args[0]}") from None
    collect = _collect_mode(options) and fmt in _SKIPPABLE
    listing = spoolkey.listing_key(root)
    keys, malformed = spoolkey.ContentKeys(), []
    tmp = spool.with_suffix(".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for rec in convert(root, **({**options, "on_error": "skip"} if collect else options)):
            issues = rec.meta.get(ISSUES, [])
            if collect:
                malformed += [str(i) for i in issues if isinstance(i, LabelError)]
            anns = [[a.label, *(float(v) for v in a.bbox), a.segmentation] for a in rec.annotations]
            files = spoolkey.record_files(rec.label_file, rec.meta)
            line = {"r": _relpath(Path(rec.path), root), "w": int(rec.width), "h": int(rec.height),
                    "l": files[0] if files else None, "a": anns, "x": [str(i) for i in issues],
                    "k": keys.record(files)}
            if len(files) > 1:
                line["f"] = files[1:]
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
            n += 1
    if malformed:
        tmp.unlink()
        raise _malformed_error(name, root_s, malformed)
    spoolkey.sidecar(spool).write_text(json.dumps({"spec": spec, "listing": listing}), encoding="utf-8")
    os.replace(tmp, spool)
    return n


def run_converters(sources: list[SourceSpec], root: Path, work: Path, pool: Any,
                   advance: Callable[[int], None]) -> tuple[list[Path], int]:
    """Convert every source whose spool is missing or stale (in parallel across sources when a pool is given).

    A spool left by an earlier (killed or failed) build is reused only when ``spoolkey.spool_is_current``: same
    recipe section, same file listing, same content of every label file; otherwise the source is converted again.

    Returns:
        ``(spool path of each source in recipe order, number of records reused from earlier spools)``.
    """
    spools, jobs, reused = [], [], 0
    for i, src in enumerate(sources):
        src_root = root / src.path
        if not src_root.is_dir():
            raise ConfigError(f"sources[{i}] ({src.name}): folder {src_root} not found (path is relative to --root)")
        spool = work / f"records-{i:03d}-{src.name}.jsonl"
        spools.append(spool)
        if spool.exists() and spoolkey.spool_is_current(spool, src, src_root):
            with spool.open("rb") as f:
                reused += sum(1 for _ in f)
            advance(1)
        else:
            spool.unlink(missing_ok=True)
            jobs.append((src.format, str(src_root), dict(src.options), str(spool), src.name, spoolkey.spec_key(src)))
    results = pool.imap_unordered(convert_source, jobs) if pool is not None and len(jobs) > 1 else map(
        convert_source, jobs)
    for _ in results:
        advance(1)
    return spools, reused


@dataclass
class SpoolIndex:
    """Where each record lives, in spool order ``j`` (sources in recipe order).

    Attributes:
        source: ``(N,)`` int32 source index of record ``j``.
        offset: ``(N,)`` int64 byte offset of its line in the source's spool file.
        order: ``(N,)`` int64 final image order: ``order[k]`` is the record at position ``k`` (sorted by source,
            then relative path, so ids do not depend on the converter's iteration order).
        flagged: ``(N,)`` bool, the converter reported issues for the record (it is reported and dropped).
    """

    source: np.ndarray
    offset: np.ndarray
    order: np.ndarray
    flagged: np.ndarray

    def __len__(self) -> int:
        return len(self.source)


def index_spools(spools: list[Path]) -> SpoolIndex:
    """Scan the spools once: offsets and the sorted final order (relative paths are held only while sorting)."""
    src, off, keys, flagged = [], [], [], []
    for i, spool in enumerate(spools):
        pos = 0
        with spool.open("rb") as f:
            for raw in f:
                line = json.loads(raw)
                src.append(i)
                off.append(pos)
                keys.append((i, line["r"]))
                flagged.append(bool(line["x"]))
                pos += len(raw)
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return SpoolIndex(np.asarray(src, dtype=np.int32), np.asarray(off, dtype=np.int64),
                      np.asarray(order, dtype=np.int64), np.asarray(flagged, dtype=bool))


class SpoolReader:
    """Random access to spooled records by spool index ``j``."""

    def __init__(self, spools: list[Path], index: SpoolIndex) -> None:
        self._files = [p.open("rb") for p in spools]
        self._index = index

    def __getitem__(self, j: int) -> dict[str, Any]:
        f = self._files[self._index.source[j]]
        f.seek(int(self._index.offset[j]))
        return json.loads(f.readline())

    def close(self) -> None:
        """Close the spool files."""
        for f in self._files:
            f.close()


@dataclass
class Checks:
    """Validation results in spool order (``(N,)`` arrays) plus the sparse error messages."""

    sha1: np.ndarray
    phash: np.ndarray
    width: np.ndarray
    height: np.ndarray
    channels: np.ndarray
    empty_label: np.ndarray
    errors: dict[int, str]
    cached: int = 0

    @classmethod
    def empty(cls, n: int) -> Checks:
        """Arrays for ``n`` images."""
        return cls(np.zeros(n, "S20"), np.zeros(n, np.uint64), np.zeros(n, np.int32), np.zeros(n, np.int32),
                   np.zeros(n, np.int16), np.zeros(n, bool), {})

    def put(self, j: int, c: ImageCheck) -> None:
        """Store the check of record ``j``."""
        if c.error:
            self.errors[j] = c.error
        else:
            self.sha1[j] = bytes.fromhex(c.sha1)
        self.phash[j], self.width[j], self.height[j], self.channels[j] = c.phash, c.width, c.height, c.channels
        self.empty_label[j] = c.empty_label


def _load_cache(path: Path) -> dict[str, list]:
    cache: dict[str, list] = {}
    if path.exists():
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    key, *vals = json.loads(line)
                except (ValueError, TypeError):  # a line cut by a killed build
                    continue
                cache[key] = vals
    return cache


def _cache_key(path: str, label: str | None) -> str | None:
    """Validation-cache key: image and label file identities (path, size, mtime); None when the image is missing."""
    parts = []
    for p in (path, label):
        if p is None:
            parts.append("-")
            continue
        try:
            st = os.stat(p)
        except OSError:
            if p == path:
                return None
            parts.append(f"{p}|missing")
            continue
        parts.append(f"{p}|{st.st_size}|{st.st_mtime_ns}")
    return "|".join(parts)


def _jobs(spools: list[Path], roots: list[Path]) -> Iterator[tuple[str, str | None]]:
    for spool, root in zip(spools, roots, strict=True):
        with spool.open(encoding="utf-8") as f:
            for raw in f:
                line = json.loads(raw)
                yield str(root / line["r"]), line["l"]


def validate_images(spools: list[Path], roots: list[Path], n: int, cache_path: Path, pool: Any,
                    advance: Callable[[int], None]) -> Checks:
    """Validate every spooled image (cache hits skipped), in blocks of ``BLOCK`` through ``pool`` if given."""
    cache = _load_cache(cache_path)
    checks = Checks.empty(n)
    jobs = _jobs(spools, roots)
    with cache_path.open("a", encoding="utf-8") as out:
        if out.tell() and cache_path.read_bytes()[-1:] != b"\n":
            out.write("\n")  # a killed build may have cut the last line
        for start in range(0, n, BLOCK):
            block = [next(jobs) for _ in range(min(BLOCK, n - start))]
            keys, todo = [], []
            for i, (path, label) in enumerate(block):
                key = _cache_key(path, label)
                keys.append(key)
                if key is not None and key in cache:
                    checks.put(start + i, ImageCheck(*cache[key]))
                    checks.cached += 1
                else:
                    todo.append(i)
            chunk = max(1, min(64, len(todo) // 32))
            todo_jobs = [block[i] for i in todo]
            results = pool.imap(check_job, todo_jobs, chunksize=chunk) if pool is not None else map(
                check_job, todo_jobs)
            for i, res in zip(todo, results, strict=True):
                checks.put(start + i, res)
                if keys[i] is not None:
                    out.write(json.dumps([keys[i], res.sha1, res.phash, res.width, res.height, res.channels,
                                          res.error, res.empty_label]) + "\n")
                advance(1)
            out.flush()
            advance(len(block) - len(todo))
    return checks
