"""COCO converter for users' own data: one instances JSON + an image folder.

``images[i].file_name`` is resolved against the ``images`` folder. ``bbox`` ``[x, y, w, h]`` becomes
``(x, y, x + w, y + h)``; ``segmentation`` (polygons or RLE) is passed through; the class is the category
``name``. Crowd annotations (``iscrowd: 1``) are regions, not instances: they are left out and counted in
``meta["crowd"]``. Every image of the JSON is yielded, with or without annotations (COCO lists negatives
explicitly). The size comes from the image header (the JSON's width/height are not trusted).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rtvp.errors import DataError
from rtvp.sources._common import LabelError, abspath, make_record, parse_options, require_dir, to_float
from rtvp.sources.base import SOURCES
from rtvp.structures import BoxAnnotation, ImageRecord

NAME = "coco"


@dataclass(frozen=True)
class COCOOptions:
    """Options of the ``coco`` source.

    Attributes:
        annotations: the instances JSON, relative to the root.
        images: image folder that ``file_name`` is relative to, relative to the root.
        on_error: ``raise`` (default) a ``DataError`` on a malformed annotation, or ``skip`` that image's record
            (issue record). A JSON that does not parse, or broken ``images``/``categories`` lists, always raise.
    """

    annotations: str = "annotations.json"
    images: str = "images"
    on_error: Literal["raise", "skip"] = "raise"


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DataError(f"{path}: COCO annotation file not found; set the 'annotations' option") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise DataError(f"{path}: not valid COCO JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{path}: expected a COCO object with an 'images' list")
    for key in ("annotations", "categories"):
        if not isinstance(data.get(key, []), list):
            raise DataError(f"{path}: '{key}' must be a list")
    return data


def _categories(data: dict[str, Any], path: Path) -> dict[Any, str]:
    out = {}
    for i, cat in enumerate(data.get("categories", [])):
        if not (isinstance(cat, dict) and isinstance(cat.get("id"), (int, str)) and isinstance(cat.get("name"), str)):
            raise DataError(f"{path}: categories[{i}] needs an 'id' and a string 'name'")
        out[cat["id"]] = cat["name"]
    return out


def _annotation(ann: Any, i: int, cats: dict[Any, str], path: Path) -> BoxAnnotation | None:
    """One COCO annotation -> ``BoxAnnotation`` (``None`` for crowd regions); ``DataError`` naming the entry."""
    where = f"{path}: annotations[{i}]"
    if not isinstance(ann, dict):
        raise DataError(f"{where}: expected an object")
    cid = ann.get("category_id")
    if not isinstance(cid, (int, str)) or cid not in cats:
        raise DataError(f"{where}: category_id {ann.get('category_id')!r:.40} is not in 'categories'")
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise DataError(f"{where}: 'bbox' must be [x, y, w, h], got {bbox!r:.60}")
    x, y, w, h = (to_float(v, f"{where} bbox") for v in bbox)
    if ann.get("iscrowd", 0):
        return None
    seg = ann.get("segmentation")
    if seg in (None, [], {}):
        seg = None
    elif isinstance(seg, list):
        if not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg):
            raise DataError(f"{where}: polygon segmentation must be lists of >= 3 (x, y) pairs")
        seg = [[to_float(v, f"{where} segmentation") for v in p] for p in seg]
    elif not _is_rle(seg):
        raise DataError(f"{where}: segmentation must be polygons or an RLE {{size, counts}}")
    return BoxAnnotation(bbox=(x, y, x + w, y + h), label=cats[ann["category_id"]], segmentation=seg)


def _is_rle(seg: Any) -> bool:
    if not isinstance(seg, dict) or not isinstance(seg.get("size"), list) or len(seg["size"]) != 2:
        return False
    if not all(isinstance(v, int) and v > 0 for v in seg["size"]):
        return False
    counts = seg.get("counts")
    return isinstance(counts, str) or (isinstance(counts, list) and all(isinstance(v, int) for v in counts))


def _group(data: dict[str, Any], path: Path, cats: dict[Any, str], on_error: str):
    """Annotations per image id -> ``(boxes, crowd count, issues)``."""
    per: dict[Any, tuple[list[BoxAnnotation], list[int], list[str]]] = {}
    for i, ann in enumerate(data.get("annotations", [])):
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        if not isinstance(image_id, (int, str)):
            raise DataError(f"{path}: annotations[{i}] has no valid 'image_id'")
        boxes, crowd, issues = per.setdefault(image_id, ([], [0], []))
        try:
            box = _annotation(ann, i, cats, path)
        except DataError as e:
            if on_error == "raise":
                raise
            issues.append(LabelError(str(e)))
            continue
        if box is None:
            crowd[0] += 1
        else:
            boxes.append(box)
    return per


@SOURCES.register(NAME)
def convert(root: Path, **options: Any) -> Iterator[ImageRecord]:
    """Yield one record per entry of ``images`` in the COCO JSON.

    Args:
        root: dataset folder.
        **options: see ``COCOOptions``.

    Examples:
        >>> recs = list(convert(Path("my_data"), annotations="ann/train.json", images="train"))  # doctest: +SKIP
    """
    opts = parse_options(COCOOptions, NAME, options)
    path = abspath(Path(root) / opts.annotations)
    image_dir = require_dir(Path(root), opts.images, NAME, "images")
    data = _load(path)
    cats = _categories(data, path)
    images = _images(data, path)
    per = _group(data, path, cats, opts.on_error)
    orphan = sorted(map(str, set(per) - {img["id"] for img in images}))
    if orphan:
        raise DataError(f"{path}: annotations refer to image ids missing from 'images': {orphan[:5]}")
    for img in images:
        boxes, crowd, issues = per.get(img["id"], ([], [0], []))
        meta = {"coco_id": img["id"], **({"crowd": crowd[0]} if crowd[0] else {})}
        yield make_record(NAME, image_dir / img["file_name"], boxes, path, meta, issues)


def _images(data: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    """The ``images`` entries, checked: each has a unique int/str ``id`` and a string ``file_name``."""
    ids = set()
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or not isinstance(img.get("file_name"), str) \
                or not isinstance(img.get("id"), (int, str)):
            raise DataError(f"{path}: images[{i}] needs an int/str 'id' and a string 'file_name'")
        if img["id"] in ids:
            raise DataError(f"{path}: images[{i}] repeats image id {img['id']!r}")
        ids.add(img["id"])
    return data["images"]
