"""Helpers shared by the converters: option parsing, image lookup, cheap image sizes, issue records.

Conventions every converter follows (the builder relies on them):

* paths are absolute (``os.path.abspath``: normalised, symlinks not resolved) so ``path.relative_to(root)`` works;
* ``width``/``height`` come from the image header (PIL opens lazily, no pixel decode);
* a malformed label file raises ``DataError`` naming the file (and line where there is one) -- unless the source's
  ``on_error: skip`` option is set, in which case the image is still yielded, without annotations, carrying the
  error text in ``meta["issues"]``;
* a pairing problem (label without image, unreadable image header, image without its expected label) never stops the
  source: the record is yielded with ``meta["issues"]`` (a list of "file: reason" strings). A record with issues is
  not trustworthy: the builder reports each issue (``issues.csv``) and drops the record.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image, UnidentifiedImageError

from rtvp.config import from_dict
from rtvp.errors import ConfigError, DataError
from rtvp.structures import BoxAnnotation, ImageRecord

T = TypeVar("T")

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jpe", ".npy")
"""Extensions searched (in this order of preference) when a label names an image by stem only."""

ISSUES = "issues"
"""``ImageRecord.meta`` key holding the list of non-fatal problems found for that record."""


def parse_options(cls: type[T], fmt: str, options: dict[str, Any]) -> T:
    """Build the converter's options dataclass; unknown keys raise ``ConfigError`` listing the valid ones.

    Args:
        cls: the converter's options dataclass.
        fmt: the source format name (used in the error message).
        options: the recipe's ``options`` mapping.
    """
    return from_dict(cls, dict(options), where=f"{fmt} source options")


def abspath(path: str | Path) -> Path:
    """Absolute, normalised path without resolving symlinks."""
    return Path(os.path.abspath(path))


def require_dir(root: Path, rel: str | Path, fmt: str, option: str) -> Path:
    """``root / rel`` as an absolute directory; ``ConfigError`` naming the option when it does not exist."""
    path = abspath(Path(root) / rel)
    if not path.is_dir():
        raise ConfigError(f"{fmt} source: {option} folder {path} does not exist; set the '{option}' option "
                          f"(relative to the source root {abspath(root)})")
    return path


def image_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from the image header (no decode); ``None`` when the file is missing or unreadable."""
    if path.suffix.lower() == ".npy":
        try:
            import numpy as np

            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            return (int(arr.shape[1]), int(arr.shape[0])) if arr.ndim >= 2 else None
        except (OSError, ValueError):
            return None
    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def index_images(folder: Path, exts: Iterable[str] = IMAGE_EXTS) -> dict[str, Path]:
    """Map file stem -> image path for the images directly inside ``folder`` (first extension in ``exts`` wins)."""
    order = {e: i for i, e in enumerate(exts)}
    best: dict[str, tuple[int, Path]] = {}
    if not folder.is_dir():
        return {}
    for entry in os.scandir(folder):
        ext = os.path.splitext(entry.name)[1].lower()
        if ext in order and entry.is_file():
            stem = entry.name[: -len(ext)]
            rank = order[ext]
            if stem not in best or rank < best[stem][0]:
                best[stem] = (rank, abspath(entry.path))
    return {k: v[1] for k, v in sorted(best.items())}


def make_record(
    fmt: str,
    image: Path,
    annotations: list[BoxAnnotation],
    label_file: Path | None = None,
    meta: dict[str, Any] | None = None,
    issues: list[str] | None = None,
    size: tuple[int, int] | None = None,
) -> ImageRecord:
    """Build an ``ImageRecord``, reading the size from the header; a missing/unreadable image becomes an issue.

    Args:
        fmt: converter name stored in ``record.source``.
        image: image path (made absolute here).
        annotations: the instances (native class names).
        label_file: the label file the annotations came from.
        meta: extra JSON-serialisable metadata.
        issues: problems already found for this record (label-side).
        size: ``(width, height)`` when the caller already read the header.
    """
    image = abspath(image)
    meta = dict(meta or {})
    issues = list(issues or [])
    size = size or image_size(image)
    if size is None:
        reason = "image file not found" if not image.exists() else "cannot read the image header (corrupt/unknown)"
        issues.append(f"{image}: {reason}" + (f" (label {label_file})" if label_file else ""))
        size = (0, 0)
    if issues:
        meta[ISSUES] = issues
    return ImageRecord(path=image, width=size[0], height=size[1], annotations=annotations, source=fmt,
                       label_file=abspath(label_file) if label_file else None, meta=meta)


class LabelError(str):
    """An issue string that is a malformed label file (what ``on_error: raise`` raises), not a pairing problem.

    The builder runs converters with ``on_error: skip`` and tells these apart, so a default build reports every
    malformed file of a source in one pass instead of stopping at the first.
    """


def parse_guarded(on_error: str, fn: Callable[..., T], *args: Any) -> tuple[T | None, list[str]]:
    """Run a label parser; with ``on_error == "skip"`` a ``DataError`` becomes an issue string instead of raising."""
    try:
        return fn(*args), []
    except DataError as e:
        if on_error == "raise":
            raise
        return None, [LabelError(str(e))]


def to_float(value: Any, where: str) -> float:
    """``float(value)`` that must be finite; ``DataError`` naming ``where`` otherwise."""
    if isinstance(value, bool):
        raise DataError(f"{where}: expected a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: expected a number, got {value!r}") from None
    if out != out or out in (float("inf"), float("-inf")):
        raise DataError(f"{where}: expected a finite number, got {value!r}")
    return out


def read_label_text(path: Path) -> str:
    """A text label file's content; ``DataError`` naming the file when it cannot be read or decoded."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read label file ({e})") from None
