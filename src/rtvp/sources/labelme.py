"""labelme converter: one JSON per image with ``shapes`` (polygons, rectangles, circles).

The embedded base64 ``imageData`` is ignored; the image is ``imagePath`` resolved against the JSON's folder (labelme's
convention) or, with the ``images`` option, looked up by file name in that folder (BSData: ``images: data``,
``labels: label``), falling back to the JSON's stem with any image extension. Each ``polygon`` becomes one instance
(bbox = polygon extent, segmentation = the polygon), a ``rectangle`` a box, a ``circle`` its bounding box; other
shape types (point, line, linestrip) are not objects and are only counted in ``meta["skipped_shapes"]``.
Images without a JSON are not yielded (labelme only writes JSONs for images someone annotated).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rtvp.errors import DataError
from rtvp.sources._common import IMAGE_EXTS, abspath, make_record, parse_guarded, parse_options, require_dir, to_float
from rtvp.sources.base import SOURCES
from rtvp.structures import BoxAnnotation, ImageRecord

NAME = "labelme"


@dataclass(frozen=True)
class LabelmeOptions:
    """Options of the ``labelme`` source.

    Attributes:
        labels: folder holding the ``*.json`` files, relative to the root.
        images: image folder relative to the root; ``None`` resolves ``imagePath`` against the JSON's folder.
        on_error: ``raise`` (default) a ``DataError`` on a malformed JSON, or ``skip`` it (issue record).
    """

    labels: str = "."
    images: str | None = None
    on_error: Literal["raise", "skip"] = "raise"


def _points(shape: dict[str, Any], where: str) -> list[tuple[float, float]]:
    pts = shape.get("points")
    if not isinstance(pts, list) or not pts:
        raise DataError(f"{where}: 'points' must be a non-empty list of [x, y]")
    out = []
    for j, p in enumerate(pts):
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise DataError(f"{where}: points[{j}] must be [x, y], got {p!r:.60}")
        out.append((to_float(p[0], f"{where} points[{j}]"), to_float(p[1], f"{where} points[{j}]")))
    return out


def _shape_box(shape: dict[str, Any], kind: str, where: str) -> BoxAnnotation | None:
    label = shape.get("label")
    if not isinstance(label, str) or not label.strip():
        raise DataError(f"{where}: 'label' must be a non-empty string, got {label!r:.60}")
    pts = _points(shape, where)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    if kind == "polygon":
        if len(pts) < 3:
            raise DataError(f"{where}: polygon with {len(pts)} point(s); needs >= 3")
        flat = [v for p in pts for v in p]
        return BoxAnnotation(bbox=(min(xs), min(ys), max(xs), max(ys)), label=label, segmentation=[flat])
    if kind == "rectangle":
        if len(pts) != 2:
            raise DataError(f"{where}: rectangle needs 2 points, got {len(pts)}")
        return BoxAnnotation(bbox=(min(xs), min(ys), max(xs), max(ys)), label=label)
    if kind == "circle":
        if len(pts) != 2:
            raise DataError(f"{where}: circle needs 2 points (centre, rim), got {len(pts)}")
        (cx, cy), (px, py) = pts
        r = math.hypot(px - cx, py - cy)
        return BoxAnnotation(bbox=(cx - r, cy - r, cx + r, cy + r), label=label)
    return None


def parse_json(path: Path) -> tuple[list[BoxAnnotation], str | None, int]:
    """Parse one labelme JSON -> ``(boxes, imagePath or None, number of skipped non-object shapes)``."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise DataError(f"{path}: not valid labelme JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise DataError(f"{path}: expected a labelme object with a 'shapes' list")
    image_path = data.get("imagePath")
    if image_path is not None and not isinstance(image_path, str):
        raise DataError(f"{path}: 'imagePath' must be a string, got {image_path!r:.60}")
    boxes, skipped = [], 0
    for i, shape in enumerate(data["shapes"]):
        where = f"{path}: shapes[{i}]"
        if not isinstance(shape, dict):
            raise DataError(f"{where}: expected an object, got {type(shape).__name__}")
        kind = shape.get("shape_type") or "polygon"
        if not isinstance(kind, str):
            raise DataError(f"{where}: 'shape_type' must be a string")
        box = _shape_box(shape, kind, where)
        if box is None:
            skipped += 1
        else:
            boxes.append(box)
    return boxes, image_path or None, skipped


def _find_image(json_path: Path, image_path: str | None, image_dir: Path | None) -> Path:
    """Resolve the image of ``json_path`` (see module docstring); returns the best guess when nothing exists."""
    name = image_path.replace("\\", "/") if image_path else None
    if image_dir is None:
        candidates = [json_path.parent / name] if name else []
        folder = json_path.parent
    else:
        candidates = [image_dir / Path(name).name] if name else []
        folder = image_dir
    candidates += [folder / f"{json_path.stem}{ext}" for ext in IMAGE_EXTS]
    for c in candidates:
        if c.is_file():
            return abspath(c)
    return abspath(candidates[0])


@SOURCES.register(NAME)
def convert(root: Path, **options: Any) -> Iterator[ImageRecord]:
    """Yield one record per labelme JSON in ``labels``.

    Args:
        root: dataset folder.
        **options: see ``LabelmeOptions``.

    Examples:
        >>> recs = list(convert(Path("bsdata"), images="data", labels="label"))  # doctest: +SKIP
    """
    opts = parse_options(LabelmeOptions, NAME, options)
    label_dir = require_dir(Path(root), opts.labels, NAME, "labels")
    image_dir = require_dir(Path(root), opts.images, NAME, "images") if opts.images is not None else None
    for path in sorted(label_dir.glob("*.json")):
        parsed, issues = parse_guarded(opts.on_error, parse_json, path)
        boxes, image_path, skipped = parsed if parsed is not None else ([], None, 0)
        meta = {"skipped_shapes": skipped} if skipped else {}
        yield make_record(NAME, _find_image(path, image_path, image_dir), boxes, path, meta, issues)
