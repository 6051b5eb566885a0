"""YOLO (Ultralytics layout) converter for users' own data.

Two ways to point at the data:

* ``data: my.yaml`` -- an Ultralytics data YAML (``path``, ``train``/``val``/``test`` = folders, ``.txt`` image lists
  or lists of those, ``names`` = list or ``{id: name}``). Labels sit where Ultralytics looks: the last ``/images/``
  of the image path replaced by ``/labels/``, extension ``.txt``. ``meta["split"]`` says which split listed the image.
* otherwise ``images``/``labels`` folders under the root, labels mirroring the image tree; class names from ``names``
  (or the class id as a string when absent).

Label lines are ``cls cx cy w h`` normalised to ``[0, 1]`` (a box) or ``cls x1 y1 ... xn yn`` (a polygon, n >= 3:
bbox = extent, segmentation = the polygon), converted to pixels with the header size; values are not clipped.
An image without a label file is a background image (Ultralytics' convention): a record without boxes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rtvp.errors import ConfigError, DataError
from rtvp.sources._common import (
    IMAGE_EXTS,
    abspath,
    image_size,
    make_record,
    parse_guarded,
    parse_options,
    read_label_text,
    require_dir,
    to_float,
)
from rtvp.sources.base import SOURCES
from rtvp.structures import BoxAnnotation, ImageRecord

NAME = "yolo"


@dataclass(frozen=True)
class YOLOOptions:
    """Options of the ``yolo`` source.

    Attributes:
        data: Ultralytics data YAML relative to the root; when set, ``images``/``labels``/``names`` are unused.
        splits: which YAML splits to read (those absent from the YAML are skipped).
        images: image folder (searched recursively) relative to the root, without ``data``.
        labels: label folder mirroring ``images``, without ``data``.
        names: class names indexed by class id, without ``data``.
        on_error: ``raise`` (default) a ``DataError`` on a malformed label file, or ``skip`` it (issue record).
    """

    data: str | None = None
    splits: list[str] = field(default_factory=lambda: ["train", "val", "test"])
    images: str = "images"
    labels: str = "labels"
    names: list[str] | None = None
    on_error: Literal["raise", "skip"] = "raise"


def parse_label_file(path: Path, width: int, height: int, names: list[str] | None) -> list[BoxAnnotation]:
    """Parse one YOLO label file into pixel boxes; ``DataError`` naming ``path:line`` when malformed."""
    text = read_label_text(path)
    boxes = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{lineno}"
        if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
            raise DataError(f"{where}: expected 'cls cx cy w h' or 'cls x1 y1 x2 y2 x3 y3 ...', got {len(fields)} "
                            f"fields: {line[:80]!r}")
        cls = to_float(fields[0], where)
        if not cls.is_integer() or cls < 0 or (names is not None and cls >= len(names)):
            n = "" if names is None else f" < {len(names)} (names: {names[:10]})"
            raise DataError(f"{where}: class id {fields[0]!r:.20} must be an integer >= 0{n}")
        label = names[int(cls)] if names is not None else str(int(cls))
        vals = [to_float(v, where) for v in fields[1:]]
        if len(vals) == 4:
            cx, cy, w, h = vals[0] * width, vals[1] * height, vals[2] * width, vals[3] * height
            boxes.append(BoxAnnotation(bbox=(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), label=label))
            continue
        poly = [v * (width if i % 2 == 0 else height) for i, v in enumerate(vals)]
        xs, ys = poly[0::2], poly[1::2]
        boxes.append(BoxAnnotation(bbox=(min(xs), min(ys), max(xs), max(ys)), label=label, segmentation=[poly]))
    return boxes


def _names(raw: Any, where: Path) -> list[str]:
    if isinstance(raw, list) and all(isinstance(n, (str, int)) for n in raw):
        return [str(n) for n in raw]
    if isinstance(raw, dict) and all(isinstance(k, int) for k in raw):
        if sorted(raw) != list(range(len(raw))):
            raise DataError(f"{where}: 'names' ids must be 0..{len(raw) - 1}, got {sorted(raw)[:10]}")
        return [str(raw[i]) for i in range(len(raw))]
    raise DataError(f"{where}: 'names' must be a list or an {{id: name}} mapping")


def _list_images(entry: Any, base: Path, where: Path) -> list[Path]:
    """Images of one split entry: a folder (recursive), a ``.txt`` list, an image, or a list of those."""
    if isinstance(entry, list):
        return [p for e in entry for p in _list_images(e, base, where)]
    if not isinstance(entry, str):
        raise DataError(f"{where}: split entries must be paths (str) or lists of paths, got {entry!r:.60}")
    p = abspath(base / entry)
    if p.is_dir():
        return sorted(abspath(f) for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTS and f.is_file())
    if p.suffix.lower() == ".txt" and p.is_file():
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
        return [abspath(p.parent / ln.strip()) for ln in lines if ln.strip()]
    if p.suffix.lower() in IMAGE_EXTS:
        return [p]
    raise DataError(f"{where}: split path {p} is neither a folder, a .txt image list nor an image")


def _label_path(image: Path) -> Path:
    s = str(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in s:
        s = sb.join(s.rsplit(sa, 1))
    return Path(os.path.splitext(s)[0] + ".txt")


def _from_yaml(root: Path, opts: YOLOOptions) -> tuple[list[tuple[Path, Path, str | None]], list[str]]:
    """``[(image, label, split)]`` and class names from the data YAML."""
    ypath = abspath(root / str(opts.data))
    try:
        cfg = yaml.safe_load(ypath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{NAME} source: data YAML {ypath} not found; set the 'data' option") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DataError(f"{ypath}: invalid YAML ({e})") from None
    if not isinstance(cfg, dict) or "names" not in cfg:
        raise DataError(f"{ypath}: expected an Ultralytics data YAML mapping with 'names'")
    names = _names(cfg["names"], ypath)
    base = ypath.parent
    if isinstance(cfg.get("path"), str) and (base / cfg["path"]).is_dir():
        base = abspath(base / cfg["path"])
    items, seen = [], set()
    for split in opts.splits:
        if cfg.get(split) is None:
            continue
        for img in _list_images(cfg[split], base, ypath):
            if img not in seen:
                seen.add(img)
                items.append((img, _label_path(img), split))
    return items, names


def _from_folders(root: Path, opts: YOLOOptions) -> list[tuple[Path, Path, str | None]]:
    image_dir = require_dir(root, opts.images, NAME, "images")
    label_dir = abspath(root / opts.labels)
    images = sorted(f for f in image_dir.rglob("*") if f.suffix.lower() in IMAGE_EXTS and f.is_file())
    return [(abspath(f), label_dir / f.relative_to(image_dir).with_suffix(".txt"), None) for f in images]


@SOURCES.register(NAME)
def convert(root: Path, **options: Any) -> Iterator[ImageRecord]:
    """Yield one record per image of the YOLO dataset.

    Args:
        root: dataset folder.
        **options: see ``YOLOOptions``.

    Examples:
        >>> recs = list(convert(Path("my_yolo"), data="data.yaml", splits=["train"]))  # doctest: +SKIP
    """
    opts = parse_options(YOLOOptions, NAME, options)
    root = abspath(root)
    if opts.data is not None:
        items, names = _from_yaml(root, opts)
    else:
        items, names = _from_folders(root, opts), opts.names
    for image, label, split in items:
        meta = {"split": split} if split else {}
        size = image_size(image)
        if size is None or not label.is_file():
            yield make_record(NAME, image, [], label if label.is_file() else None, meta)
            continue
        boxes, issues = parse_guarded(opts.on_error, parse_label_file, label, size[0], size[1], names)
        yield make_record(NAME, image, boxes or [], label, meta, issues, size=size)
