"""When may a resumed build reuse a converter's spool? Only when nothing it was parsed from has changed.

A spool (``records-<i>-<name>.jsonl``) is the parsed form of one source. It is reused by a rerun only when
(a) the recipe section of the source (format, path, options) is the same, (b) the source folder lists the same
files with the same sizes (nothing added, removed or resized), and (c) every record's label files still have the
same content: each spool line carries ``k``, the sha1 of the bytes of the files it was parsed from (``l`` plus any
``f``). Images are not part of the key: they are re-checked by the validation cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from rtvp.bench.recipe import SourceSpec


def spec_key(src: SourceSpec) -> str:
    """sha1 of the recipe section that shapes a source's records."""
    text = json.dumps({"name": src.name, "format": src.format, "path": src.path, "options": src.options},
                      sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


def listing_key(folder: Path) -> str:
    """sha1 of every file under ``folder`` (relative path and size, sorted): catches added/removed/resized files."""
    h = hashlib.sha1()
    rows = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            p = os.path.join(dirpath, name)
            try:
                size = os.stat(p).st_size
            except OSError:
                size = -1
            rows.append(f"{os.path.relpath(p, folder)}\t{size}")
    for row in sorted(rows):
        h.update(row.encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest()


class ContentKeys:
    """sha1 of file contents, memoised per path (a COCO JSON is the label file of every record)."""

    def __init__(self) -> None:
        self._memo: dict[str, str] = {}

    def file(self, path: str) -> str:
        """Hex sha1 of ``path``'s bytes (``"missing"`` when unreadable)."""
        if path not in self._memo:
            h = hashlib.sha1()
            try:
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                self._memo[path] = h.hexdigest()
            except OSError:
                self._memo[path] = "missing"
        return self._memo[path]

    def record(self, files: list[str]) -> str:
        """Key of one record: the content of every file it was parsed from."""
        return hashlib.sha1("|".join(f"{f}={self.file(f)}" for f in files).encode()).hexdigest()[:20]


def record_files(label_file: str | None, meta: dict[str, Any]) -> list[str]:
    """The files a record was parsed from: its label file plus any further ones (VOC merged annotation folders)."""
    files = [str(label_file)] if label_file else []
    return files + [str(f) for f in meta.get("label_files", []) if str(f) not in files]


def sidecar(spool: Path) -> Path:
    """Where a spool's source-level key (recipe section + folder listing) is stored."""
    return spool.with_suffix(".key.json")


def spool_is_current(spool: Path, src: SourceSpec, folder: Path) -> bool:
    """True when ``spool`` was parsed from exactly the files and recipe section the source has now."""
    try:
        meta = json.loads(sidecar(spool).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if meta.get("spec") != spec_key(src) or meta.get("listing") != listing_key(folder):
        return False
    keys = ContentKeys()
    with spool.open(encoding="utf-8") as f:
        for raw in f:
            line = json.loads(raw)
            files = ([line["l"]] if line["l"] else []) + line.get("f", [])
            if line.get("k") != keys.record(files):
                return False
    return True
