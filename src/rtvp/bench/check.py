"""Re-validate a built benchmark folder (``rtvp data check``).

Checks: files exist, COCO files load in pycocotools, ids are consistent and the splits do not leak (no image, exact
duplicate or near-duplicate group on both sides; no unseen class in open_train).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import yaml

from rtvp.bench.writer import SPLITS

IMAGE_KEYS = ("id", "file_name", "width", "height", "source", "scene", "sha1", "channels")
ANN_KEYS = ("id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation", "attributes")


def _load(path: Path, problems: list[str]) -> dict[str, Any] | None:
    """Load a COCO file with pycocotools (its own checks run too); None after recording the problem."""
    from pycocotools.coco import COCO

    if not path.is_file():
        problems.append(f"{path}: missing")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        coco = COCO()
        coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
    except Exception as e:  # noqa: BLE001 - any failure to load is a problem to list
        problems.append(f"{path}: does not load in pycocotools ({type(e).__name__}: {e})")
        return None
    return data


def _check_file(name: str, data: dict[str, Any], categories: list, problems: list[str]) -> None:
    where = f"annotations/{name}.json"
    if data.get("categories") != categories:
        problems.append(f"{where}: categories differ from closed_train.json")
    cat_ids = {c["id"] for c in categories}
    img_ids: set[int] = set()
    sizes: dict[int, tuple[int, int]] = {}
    for img in data.get("images", []):
        missing = [k for k in IMAGE_KEYS if k not in img]
        if missing:
            problems.append(f"{where}: image {img.get('id')} lacks {missing}")
        if img.get("id") in img_ids:
            problems.append(f"{where}: duplicate image id {img.get('id')}")
        img_ids.add(img.get("id"))
        sizes[img.get("id")] = (img.get("width", 0), img.get("height", 0))
    ann_ids: set[int] = set()
    for ann in data.get("annotations", []):
        missing = [k for k in ANN_KEYS if k not in ann]
        if missing:
            problems.append(f"{where}: annotation {ann.get('id')} lacks {missing}")
            continue
        if ann["id"] in ann_ids:
            problems.append(f"{where}: duplicate annotation id {ann['id']}")
        ann_ids.add(ann["id"])
        if ann["image_id"] not in img_ids:
            problems.append(f"{where}: annotation {ann['id']} refers to missing image {ann['image_id']}")
        if ann["category_id"] not in cat_ids:
            problems.append(f"{where}: annotation {ann['id']} has unknown category {ann['category_id']}")
        x, y, w, h = ann["bbox"]
        iw, ih = sizes.get(ann["image_id"], (0, 0))
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > iw + 1e-3 or y + h > ih + 1e-3:
            problems.append(f"{where}: annotation {ann['id']} box {ann['bbox']} is degenerate or outside "
                            f"its {iw}x{ih} image")


def _disjoint(a: str, b: str, files: dict[str, dict], problems: list[str]) -> None:
    """Images, sha1s and near-duplicate groups of split ``a`` and ``b`` must not overlap."""
    for key in ("id", "sha1", "group"):
        left = {img.get(key) for img in files[a]["images"]} - {None}
        both = left & {img.get(key) for img in files[b]["images"]}
        if both:
            problems.append(f"leakage: {len(both)} image {key}(s) in both {a} and {b}, e.g. {sorted(both)[:5]}")


def check_benchmark(bench: Path) -> list[str]:
    """All problems found in the benchmark at ``bench`` (empty list = valid).

    Args:
        bench: benchmark root (holding ``benchmark.yaml``, ``annotations/``, ``images/``).

    Returns:
        Human-readable problem lines, each naming the file.
    """
    bench = Path(bench)
    problems: list[str] = []
    meta_path = bench / "benchmark.yaml"
    try:
        meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        return [f"{meta_path}: cannot read ({e})"]
    files = {s: _load(bench / "annotations" / f"{s}.json", problems) for s in SPLITS}
    if any(f is None for f in files.values()):
        return problems
    categories = files["closed_train"]["categories"]
    if meta.get("categories") != categories:
        problems.append(f"{meta_path}: categories differ from annotations/closed_train.json")
    for s, data in files.items():
        _check_file(s, data, categories, problems)
    by_id: dict[int, str] = {}
    for s, data in files.items():
        for img in data["images"]:
            if by_id.setdefault(img["id"], img["file_name"]) != img["file_name"]:
                problems.append(f"annotations/{s}.json: image id {img['id']} is {img['file_name']} here but "
                                f"{by_id[img['id']]} elsewhere")
    check_files = (meta.get("output") or {}).get("images", "link") != "none"
    if check_files:
        for img_id, name in sorted(by_id.items()):
            if not os.path.exists(bench / name):  # follows symlinks: a dangling link is missing
                problems.append(f"{bench / name}: image {img_id} is missing (or a dangling link)")
    _disjoint("closed_train", "closed_val", files, problems)
    _disjoint("open_train", "open_val", files, problems)
    unseen = {c["id"] for c in categories if c.get("split") == "unseen"}
    leaked = {a["image_id"] for a in files["open_train"]["annotations"] if a["category_id"] in unseen}
    if leaked:
        problems.append(f"leakage: {len(leaked)} open_train image(s) hold unseen classes, e.g. {sorted(leaked)[:5]}")
    return problems
