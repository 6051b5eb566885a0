"""Validation: per-image file checks (run in worker processes) and per-annotation box checks, plus the issue log.

``check_image`` decodes each image once, at reduced resolution where the codec allows it (JPEG DCT scaling via
PIL ``draft``), which also detects truncated files: PIL raises on a short entropy stream. It returns only
metadata (sha1, 64-bit perceptual hash, size, channels), never pixels, so a worker pool can stream millions of
images with constant memory.

The perceptual hash is pHash: 32x32 grayscale thumbnail -> 2-D DCT -> the 8x8 lowest frequencies -> one bit per
coefficient, set when above their median (DC excluded from the median). It ignores global brightness and contrast
(the same part under another exposure keeps its hash) and, thanks to the median, keeps ~32 ones per hash even on
flat textures. A difference hash (dHash) was measured and rejected: on the shared steel/tile textures a smooth
illumination gradient sets nearly every dHash bit, so 340 NEU-DET pairs collided at distance 0 and unrelated sources
chained together at distance 4, while pHash gave no cross-source pair up to distance 10.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

# reasons written to report/issues.csv (one row per case)
MISSING_IMAGE = "missing_image"
UNREADABLE_IMAGE = "unreadable_image"
SIZE_MISMATCH = "size_mismatch"
EMPTY_LABEL_FILE = "empty_label_file"
UNKNOWN_CLASS = "unknown_class"
BOX_CLIPPED = "box_out_of_bounds_clipped"
BOX_DEGENERATE = "box_degenerate_dropped"
EXACT_DUPLICATE = "exact_duplicate"
EXACT_DUPLICATE_LABELS_DIFFER = "exact_duplicate_labels_merged"
NEAR_DUPLICATE = "near_duplicate"
BAD_SEGMENTATION = "segmentation_dropped"
SOURCE_ISSUE = "source_issue"  # reported by the converter (unpaired label/image, skipped malformed file)


@dataclass(frozen=True)
class ImageCheck:
    """What validation learns about one image file (plain metadata, picklable, JSON-able as a list).

    Attributes:
        sha1: hex digest of the file bytes ("" when unreadable).
        phash: 64-bit perceptual hash (0 when unreadable).
        width: decoded width in pixels.
        height: decoded height in pixels.
        channels: stored channel count (1 grayscale, 3 RGB, 4 RGBA, ...).
        error: None when readable, else ``"missing_image: ..."`` / ``"unreadable_image: ..."``.
        empty_label: the record's label file exists but is empty (zero bytes or whitespace only).
    """

    sha1: str
    phash: int
    width: int
    height: int
    channels: int
    error: str | None = None
    empty_label: bool = False


def phash64(gray: np.ndarray) -> int:
    """Perceptual hash of a ``(32, 32)`` grayscale thumbnail: DCT, 8x8 low frequencies, bit = above median."""
    coeffs = cv2.dct(np.asarray(gray, dtype=np.float32))[:8, :8].reshape(-1)
    bits = coeffs > np.median(coeffs[1:])
    return int(np.packbits(bits).view(">u8")[0])


def _thumbnail(img: Image.Image) -> np.ndarray:
    """``(32, 32)`` float32 grayscale thumbnail of a PIL image of any mode."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        img = Image.fromarray(((arr - lo) * (255.0 / max(hi - lo, 1e-9))).astype(np.uint8))
    return np.asarray(img.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float32)


def _check_array(path: Path, data: bytes) -> tuple[int, int, int, int]:
    """``(width, height, channels, phash)`` of an ``.npy`` image ``(H, W[, C])``."""
    arr = np.load(io.BytesIO(data), allow_pickle=False)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ValueError(f"expected an (H, W[, C]) array, got shape {arr.shape}")
    gray = arr.astype(np.float64) if arr.ndim == 2 else arr.astype(np.float64).mean(axis=2)
    lo, hi = gray.min(), gray.max()
    small = Image.fromarray(((gray - lo) * (255.0 / max(hi - lo, 1e-9))).astype(np.uint8))
    return arr.shape[1], arr.shape[0], 1 if arr.ndim == 2 else arr.shape[2], phash64(_thumbnail(small))


def _is_empty_label(label_file: str | None) -> bool:
    if not label_file:
        return False
    p = Path(label_file)
    try:
        size = p.stat().st_size
        return size == 0 or (size < 4096 and not p.read_bytes().strip())
    except OSError:
        return False


def check_image(path: str, label_file: str | None = None) -> ImageCheck:
    """Read and hash one image file (the unit of work of the validation pool).

    Args:
        path: image file (any format PIL decodes, or ``.npy``).
        label_file: the record's label file, checked for emptiness.

    Returns:
        An ``ImageCheck``; never raises for bad files (the error is in ``ImageCheck.error``).
    """
    empty = _is_empty_label(label_file)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return ImageCheck("", 0, 0, 0, 0, f"{MISSING_IMAGE}: {e.strerror or e}", empty)
    try:
        if path.lower().endswith(".npy"):
            w, h, c, ph = _check_array(Path(path), data)
        else:
            with Image.open(io.BytesIO(data)) as img:
                (w, h), c = img.size, len(img.getbands())
                img.draft("L", (64, 64))  # JPEG: decode at 1/2..1/8 scale; still reads the whole stream
                img.load()
                ph = phash64(_thumbnail(img))
    except Exception as e:  # noqa: BLE001 - any decoder failure means "unreadable"
        return ImageCheck("", 0, 0, 0, 0, f"{UNREADABLE_IMAGE}: {type(e).__name__}: {e}", empty)
    if w <= 0 or h <= 0:
        return ImageCheck("", 0, 0, 0, 0, f"{UNREADABLE_IMAGE}: empty image {w}x{h}", empty)
    return ImageCheck(hashlib.sha1(data).hexdigest(), ph, w, h, c, None, empty)


def check_job(job: tuple[str, str | None]) -> ImageCheck:
    """``check_image`` on a ``(path, label_file)`` tuple (for ``Pool.imap``)."""
    return check_image(*job)


def fix_boxes(boxes: np.ndarray, width: int, height: int, min_size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip boxes to the image and flag degenerate ones.

    Args:
        boxes: ``(K, 4)`` float xyxy pixels.
        width: image width.
        height: image height.
        min_size: minimum width and height (pixels) of a kept box, after clipping.

    Returns:
        ``(clipped (K, 4), was_clipped (K,) bool, keep (K,) bool)``. Non-finite or inverted boxes are not kept.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    lim = np.array([width, height, width, height], dtype=np.float64)
    clipped = np.clip(boxes, 0.0, lim)
    finite = np.isfinite(boxes).all(axis=1)
    was_clipped = finite & (np.abs(clipped - boxes) > 1e-6).any(axis=1)
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = finite & (w >= max(min_size, 1e-6)) & (h >= max(min_size, 1e-6))
    return clipped, was_clipped, keep


def clip_segmentation(seg: Any, width: int, height: int) -> Any:
    """Clip polygon coordinates to the image; RLE is returned as is (its size is checked by the caller)."""
    if isinstance(seg, list):
        out = []
        for poly in seg:
            xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
            xy = np.clip(xy, 0.0, [width, height])
            out.append(xy.reshape(-1).tolist())
        return out
    return seg


@dataclass(frozen=True)
class Issue:
    """One row of ``report/issues.csv``."""

    file: str
    reason: str
    detail: str = ""
    line: int | None = None


class IssueLog:
    """Streams issues to ``issues.csv`` (file, line, reason, detail) and keeps counts plus the first few rows."""

    COLUMNS = ("file", "line", "reason", "detail")

    def __init__(self, path: Path, keep: int = 20) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh = path.open("w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(self.COLUMNS)
        self.counts: Counter[str] = Counter()
        self.first: list[Issue] = []
        self._keep = keep

    def add(self, issue: Issue) -> None:
        """Record one issue."""
        self.counts[issue.reason] += 1
        if len(self.first) < self._keep:
            self.first.append(issue)
        self._writer.writerow([issue.file, "" if issue.line is None else issue.line, issue.reason, issue.detail])

    def extend(self, issues: Sequence[Issue]) -> None:
        """Record several issues."""
        for issue in issues:
            self.add(issue)

    def close(self) -> None:
        """Flush and close the CSV file."""
        self._fh.close()

    @property
    def total(self) -> int:
        """Number of issues recorded."""
        return sum(self.counts.values())

    def summary(self) -> str:
        """Human summary: counts per reason and the first rows."""
        head = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items()))
        rows = "\n".join(f"  {i.file}{'' if i.line is None else f':{i.line}'}: {i.reason} {i.detail}".rstrip()
                         for i in self.first)
        more = f"\n  ... ({self.total - len(self.first)} more in {self.path})" if self.total > len(self.first) else ""
        return f"{self.total} issue(s) ({head})\n{rows}{more}"
