"""Prediction I/O without torch: list image sources (file, folder, glob) and write results (COCO JSON, YOLO txt).

Examples:
    >>> paths = iter_sources("data/boards/*.jpg")  # doctest: +SKIP
"""

from __future__ import annotations

import glob
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rtvp.errors import DataError
from rtvp.fileio import atomic_write_text
from rtvp.structures import Detections

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".npy"})


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTS and not path.name.startswith(".")


def iter_sources(source: str | Path) -> list[Path]:
    """Image files named by ``source``: one file, a folder (recursive, sorted) or a glob pattern (``**`` allowed).

    A file given explicitly is returned whatever its extension (an unreadable one is reported when read); in
    folders and globs only image extensions (:data:`IMAGE_EXTS`) are kept.

    Raises:
        DataError: nothing matches (the message names the source).
    """
    path = Path(source).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and _is_image(p))
        if not found:
            raise DataError(f"{path}: folder holds no image files ({', '.join(sorted(IMAGE_EXTS))})")
        return found
    matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
    found = [p for p in matches if p.is_file() and _is_image(p)]
    if not found:
        raise DataError(f"{source}: no such file or folder, and no image matches it as a glob pattern")
    return found


def unique_stems(names: Sequence[str]) -> list[str]:
    """Output stems for the given source names: the file stem, with ``_2``, ``_3``... added on collisions."""
    used: set[str] = set()
    out = []
    for name in names:
        stem = Path(name).stem or "image"
        cand, n = stem, 1
        while cand in used:
            n += 1
            cand = f"{stem}_{n}"
        used.add(cand)
        out.append(cand)
    return out


def coco_results(dets: Detections, image_id: int, file_name: str | None = None,
                 category_ids: Sequence[int] | None = None, decimals: int = 2) -> list[dict[str, Any]]:
    """COCO results (``bbox`` [x, y, w, h] pixels) of one image.

    Args:
        dets: detections in original pixels.
        image_id: COCO image id.
        file_name: stored as ``file_name`` when given.
        category_ids: COCO category id of each class index (default ``class_id + 1``).
        decimals: rounding of box coordinates.

    Returns:
        One dict per detection with ``image_id, category_id, category_name, bbox, score`` (+ ``file_name``).
    """
    xywh = dets.xyxy.astype(np.float64).copy()
    xywh[:, 2:] -= xywh[:, :2]
    xywh = np.round(xywh, decimals)
    out = []
    for box, score, cls in zip(xywh.tolist(), dets.confidence.tolist(), dets.class_id.tolist(), strict=True):
        r: dict[str, Any] = {"image_id": int(image_id)}
        if file_name is not None:
            r["file_name"] = file_name
        r["category_id"] = int(category_ids[cls]) if category_ids is not None else int(cls) + 1
        if dets.class_names:
            r["category_name"] = dets.class_names[cls]
        r.update(bbox=box, score=round(float(score), 5))
        out.append(r)
    return out


def yolo_lines(dets: Detections, width: int, height: int) -> list[str]:
    """YOLO txt rows ``cls cx cy w h conf`` (normalised to [0, 1]) of one image."""
    if not len(dets):
        return []
    b = dets.xyxy.astype(np.float64)
    cx, cy = (b[:, 0] + b[:, 2]) / 2 / width, (b[:, 1] + b[:, 3]) / 2 / height
    w, h = (b[:, 2] - b[:, 0]) / width, (b[:, 3] - b[:, 1]) / height
    return [f"{c} {x:.6f} {y:.6f} {ww:.6f} {hh:.6f} {s:.5f}"
            for c, x, y, ww, hh, s in zip(dets.class_id.tolist(), cx, cy, w, h, dets.confidence.tolist(), strict=True)]


def write_yolo(path: Path, dets: Detections, width: int, height: int) -> None:
    """Write one image's YOLO txt (an empty file when nothing was detected), atomically."""
    lines = yolo_lines(dets, width, height)
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (UTF-8, non-ASCII kept readable; a list is written one item per line)."""
    if isinstance(data, list):
        text = "[\n" + ",\n".join(json.dumps(d, ensure_ascii=False) for d in data) + ("\n]\n" if data else "]\n")
    else:
        text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
    atomic_write_text(path, text)
