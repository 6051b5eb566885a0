"""Writers of the benchmark folder: COCO annotation files (streamed), ``benchmark.yaml`` and the image links.

COCO files are written incrementally: one pass over the processed per-image lines appends each image and its
annotations to per-split part files, which are then concatenated behind the header. Memory therefore holds one
image's annotations at a time, whatever the benchmark size. Output is deterministic (fixed key order, rounded
floats, ids from the image order), so a rebuild is byte-identical.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rtvp.bench.attributes import derive_attributes

SPLITS = ("closed_train", "closed_val", "open_train", "open_val")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _r(x: float) -> float:
    """Round a coordinate for stable, compact JSON (``-0.0`` normalised)."""
    return round(float(x), 2) + 0.0


def segmentation_area(seg: Any, height: int, width: int) -> float | None:
    """Pixel area of a COCO segmentation (polygons rasterised by pycocotools), None when empty."""
    if not seg:
        return None
    from pycocotools import mask as mask_util

    if isinstance(seg, dict):
        rle = dict(seg)
        if isinstance(rle.get("counts"), list):
            rle = mask_util.frPyObjects(rle, height, width)
        elif isinstance(rle.get("counts"), str):
            rle["counts"] = rle["counts"].encode("ascii")
        return float(mask_util.area(rle))
    rles = mask_util.frPyObjects([list(p) for p in seg], height, width)
    return float(mask_util.area(mask_util.merge(rles)))


def coco_annotation(ann_id: int, image_id: int, category_id: int, xyxy: list[float], seg: Any,
                    width: int, height: int) -> dict[str, Any]:
    """One COCO annotation dict with ``area`` (mask area if segmented, else ``w * h``) and ``attributes``."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    bbox = [_r(x1), _r(y1), _r(x2 - x1), _r(y2 - y1)]
    if isinstance(seg, list):
        seg = [[_r(v) for v in p] for p in seg if len(p) >= 6 and len(p) % 2 == 0]
    seg = seg or []
    area = segmentation_area(seg, height, width)
    area = _r(area if area is not None else bbox[2] * bbox[3])
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": bbox,
        "area": area,
        "iscrowd": 0,
        "segmentation": seg,
        "attributes": derive_attributes(bbox, seg, width, height, area=area),
    }


def write_coco_splits(ann_dir: Path, work: Path, lines: Iterable[dict[str, Any]], members: dict[str, np.ndarray],
                      groups: np.ndarray, categories: list[dict[str, Any]], info: dict[str, Any]) -> dict[str, dict]:
    """Write ``<split>.json`` for every split of ``members``, streaming.

    Args:
        ann_dir: output folder (``<bench>/annotations``).
        work: scratch folder for part files.
        lines: processed images in final order: ``{"image": {...no id...}, "anns": [[cat, x1, y1, x2, y2, seg]]}``.
        members: split name -> ``(N,)`` bool membership.
        groups: ``(N,)`` near-duplicate group label (index of the group's first image).
        categories: COCO categories (identical in every file).
        info: COCO ``info`` block (the split name is added).

    Returns:
        split -> ``{"images": n, "annotations": m}``.
    """
    ann_dir.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    parts = {s: (open(work / f"{s}.images.part", "w", encoding="utf-8"),
                 open(work / f"{s}.anns.part", "w", encoding="utf-8")) for s in members}
    counts = {s: {"images": 0, "annotations": 0} for s in members}
    try:
        ann_id = 0
        for k, line in enumerate(lines):
            img = {"id": k + 1, **line["image"], "group": int(groups[k]) + 1}
            h, w = img["height"], img["width"]
            anns = []
            for cat, x1, y1, x2, y2, seg in line["anns"]:
                ann_id += 1
                anns.append(_dumps(coco_annotation(ann_id, k + 1, cat, [x1, y1, x2, y2], seg, w, h)))
            img_text = _dumps(img)
            for s, mask in members.items():
                if not mask[k]:
                    continue
                fi, fa = parts[s]
                fi.write(("," if counts[s]["images"] else "") + "\n" + img_text)
                for a in anns:
                    fa.write(("," if counts[s]["annotations"] else "") + "\n" + a)
                    counts[s]["annotations"] += 1
                counts[s]["images"] += 1
    finally:
        for fi, fa in parts.values():
            fi.close()
            fa.close()
    for s in members:
        _assemble(ann_dir / f"{s}.json", work / f"{s}.images.part", work / f"{s}.anns.part", categories,
                  {**info, "split": s})
    return counts


def _assemble(path: Path, images_part: Path, anns_part: Path, categories: list[dict[str, Any]],
              info: dict[str, Any]) -> None:
    """Write one COCO file: header, categories, then the streamed image and annotation parts (deleted after)."""
    cats = ",\n".join(_dumps(c) for c in categories)
    with open(path, "w", encoding="utf-8") as out:
        out.write(f'{{"info":{_dumps(info)},\n"licenses":[],\n"categories":[\n{cats}],\n"images":[')
        _append(out, images_part)
        out.write('],\n"annotations":[')
        _append(out, anns_part)
        out.write("]}\n")
    images_part.unlink()
    anns_part.unlink()


def _append(out: Any, part: Path) -> None:
    with open(part, encoding="utf-8") as f:
        shutil.copyfileobj(f, out, 1 << 20)


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """Stream a JSON-lines file."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def place_image(src: Path, dst: Path, mode: str) -> None:
    """Make ``dst`` a symlink to (``link``) or a copy of (``copy``) ``src``; idempotent (resumed builds)."""
    if mode == "none":
        return
    if os.path.lexists(dst):
        if mode == "link" and dst.is_symlink() and os.readlink(dst) == str(src):
            return
        if mode == "copy" and not dst.is_symlink() and dst.stat().st_size == src.stat().st_size:
            return
        dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "link":
        os.symlink(src, dst)
    else:
        shutil.copy2(src, dst)


def write_benchmark_yaml(path: Path, data: dict[str, Any]) -> None:
    """Write ``benchmark.yaml`` (UTF-8, key order kept, aliases in their own scripts)."""
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
