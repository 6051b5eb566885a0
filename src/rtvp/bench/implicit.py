"""Your own dataset in one command: a YOLO data YAML, a COCO JSON or a dataset folder becomes a recipe.

``rtvp train|val --data X`` and ``rtvp data build X`` accept, besides a built benchmark folder:

* a YOLO (Ultralytics / Roboflow) data YAML -- ``names`` give the classes, ``train``/``val`` the splits;
* a COCO instances JSON -- ``categories`` give the classes; images from ``--images DIR`` or found next to it;
* a recipe YAML (``sources:``) -- its folder is the root;
* a folder holding one of those: ``data.yaml``, ``annotations/*.json`` or ``<split>/_annotations.coco.json``
  (COCO exports), or ``images/`` + ``labels/`` (YOLO folders, class ids as names).

Class names are the dataset's own (normalised: ``pitted_surface`` -> ``pitted surface``), the scene is ``scene`` or
the dataset's name, and a dataset with its own train and val splits keeps them (``split.val_sources``); otherwise the
stratified random split is used. The open split has no automatic unseen choice (no text encoder is needed). The
benchmark is built once into ``<cache>/<name>-<hash>`` (``hash`` covers the recipe and the dataset's files:
annotation files by content, images by size and modification time) and reused while nothing changed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtvp.bench.recipe import Recipe, load_recipe, recipe_from_dict
from rtvp.errors import ConfigError
from rtvp.fileio import read_json, read_yaml

log = logging.getLogger("rtvp")

EXAMPLE = "e.g. --data my_dataset/data.yaml, --data annotations/instances_train.json --images images/"
_ANNOTATION_EXTS = {".json", ".yaml", ".yml", ".txt", ".xml", ".csv"}
_COCO_GLOBS = ("annotations/*.json", "*/_annotations.coco.json", "*.json")


@dataclass(frozen=True)
class DatasetRecipe:
    """A recipe made for a dataset given directly.

    Attributes:
        recipe: the recipe (native class names; see the module docstring).
        root: the folder its source paths are relative to.
        kind: what the input was, for messages (e.g. ``"YOLO data YAML"``).
    """

    recipe: Recipe
    root: Path
    kind: str


BENCHMARK_SPLITS = ("closed_train", "closed_val", "open_train", "open_val")


def is_benchmark(path: Path) -> bool:
    """True for a built benchmark folder (``benchmark.yaml`` or an ``annotations/<protocol>_<split>.json``)."""
    path = Path(path)
    if not path.is_dir():
        return False
    return (path / "benchmark.yaml").is_file() or any((path / "annotations" / f"{s}.json").is_file()
                                                      for s in BENCHMARK_SPLITS)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "dataset"


def _words(text: str) -> str:
    return " ".join(re.sub(r"[_\-]+", " ", text).split()) or "dataset"


def _split_of(path: Path) -> str | None:
    """``train`` / ``val`` / ``test`` from a COCO file or folder name (``instances_val2017``, ``valid``)."""
    for part in (path.stem, path.parent.name):
        words = set(re.split(r"[^a-z]+", part.lower()))
        for split, names in (("train", {"train"}), ("val", {"val", "valid", "validation"}), ("test", {"test"})):
            if words & names:
                return split
    return None


def _recipe(name: str, scene: str, sources: list[dict[str, Any]], val_sources: list[str]) -> Recipe:
    for src in sources:
        src.update(scene=scene, supercategory="custom", license="see the dataset")
    split: dict[str, Any] = {"unseen_fraction": 0.0, "val_sources": val_sources}
    return recipe_from_dict({"name": _slug(name), "sources": sources, "split": split}, where=name)


def _yolo(path: Path, scene: str | None) -> DatasetRecipe:
    """A YOLO data YAML: one source per own split (``train`` and ``val``) or one source."""
    cfg = read_yaml(path, "YOLO data YAML", error=ConfigError)
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a YOLO data YAML mapping, e.g. 'names: [scratch]', 'train: images/train'")
    name = path.parent.name if path.stem.lower() in ("data", "dataset") else path.stem
    has = [s for s in ("train", "val") if cfg.get(s) is not None]
    if has == ["train", "val"] and cfg["train"] != cfg["val"]:
        sources = [{"name": s, "format": "yolo", "path": ".", "options": {"data": path.name, "splits": [s]}}
                   for s in has]
        val = ["val"]
    else:
        sources = [{"name": _slug(name), "format": "yolo", "path": ".", "options": {"data": path.name}}]
        val = []
    return DatasetRecipe(_recipe(name, scene or _words(name), sources, val), path.parent, "YOLO data YAML")


def _coco_images(json_path: Path, images: Path | None) -> Path:
    """The folder COCO ``file_name`` entries are relative to: ``images`` or a guess next to the JSON."""
    if images is not None:
        if not images.is_dir():
            raise ConfigError(f"--images {images}: folder not found; give the folder the JSON's file_name entries "
                              f"are relative to, e.g. --images {json_path.parent / 'images'}")
        return images
    data = read_json(json_path, "COCO annotation file", error=ConfigError)
    first = next((i.get("file_name") for i in data.get("images", []) if isinstance(i, dict)), None) \
        if isinstance(data, dict) else None
    stem = json_path.stem.removeprefix("instances_")
    for cand in (json_path.parent, json_path.parent / "images", json_path.parent.parent / "images",
                 json_path.parent.parent / stem, json_path.parent.parent / "images" / stem):
        if cand.is_dir() and (first is None or (cand / str(first)).is_file()):
            return cand
    raise ConfigError(f"{json_path}: cannot find the image folder (looked for {first!r} next to the JSON and in "
                      f"images/); pass it with --images DIR, e.g. --images {json_path.parent.parent / 'images'}")


def _coco(jsons: list[Path], name: str, images: Path | None, scene: str | None) -> DatasetRecipe:
    """COCO JSON(s): one source each; a ``val`` file is the closed val split when a ``train`` file is there too."""
    dirs = [_coco_images(j, images) for j in jsons]
    root = Path(os.path.commonpath([str(p.absolute()) for p in [*jsons, *dirs]]))
    splits = [_split_of(j) if len(jsons) > 1 else None for j in jsons]
    sources = []
    for j, d, split in zip(jsons, dirs, splits, strict=True):
        src_name = split or _slug(j.stem)
        sources.append({"name": src_name, "format": "coco", "path": ".",
                        "options": {"annotations": os.path.relpath(j.absolute(), root),
                                    "images": os.path.relpath(d.absolute(), root)}})
    val = ["val"] if "val" in splits and "train" in splits else []
    return DatasetRecipe(_recipe(name, scene or _words(name), sources, val), root, "COCO JSON")


def _coco_files(folder: Path) -> list[Path]:
    """The COCO files of a folder: its train/val ones when they are named so, else the only one."""
    for pattern in _COCO_GLOBS:
        found = sorted(folder.glob(pattern))
        if not found:
            continue
        split = [p for p in found if _split_of(p) in ("train", "val")]
        if split:
            return split
        if len(found) == 1:
            return found
        raise ConfigError(f"{folder}: several COCO files ({[p.name for p in found[:5]]}) and none is named "
                          f"train/val; pass one, e.g. --data {found[0]}")
    return []


def _folder(folder: Path, images: Path | None, scene: str | None) -> DatasetRecipe:
    for yaml_name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (folder / yaml_name).is_file():
            return _yolo(folder / yaml_name, scene)
    jsons = _coco_files(folder)
    if jsons:
        return _coco(jsons, folder.name, images, scene)
    if (folder / "images").is_dir() and (folder / "labels").is_dir():
        sources = [{"name": _slug(folder.name), "format": "yolo", "path": "."}]
        return DatasetRecipe(_recipe(folder.name, scene or _words(folder.name), sources, []), folder, "YOLO folders")
    raise ConfigError(f"--data {folder}: not a benchmark (no benchmark.yaml) and no dataset found in it (expected "
                      f"data.yaml, annotations/*.json or images/ + labels/); build one with `rtvp data build` or "
                      f"point at the dataset file, {EXAMPLE}")


def dataset_recipe(path: Path, images: Path | None = None, scene: str | None = None) -> DatasetRecipe | None:
    """The recipe for ``--data path``, or ``None`` when ``path`` is a built benchmark (used as it is).

    Raises:
        ConfigError: ``path`` is none of the accepted inputs (the message lists them with an example).
    """
    path = Path(path)
    if is_benchmark(path):
        return None
    if path.is_dir():
        return _folder(path, images, scene)
    if not path.is_file():
        raise ConfigError(f"--data {path}: not found; give a benchmark folder, a YOLO data YAML, a COCO JSON or a "
                          f"dataset folder, {EXAMPLE}")
    if path.suffix.lower() == ".json":
        return _coco([path], path.parent.parent.name if path.parent.name == "annotations" else path.parent.name,
                     images, scene)
    if path.suffix.lower() in (".yaml", ".yml"):
        data = read_yaml(path, "config file (recipe or YOLO data YAML)", error=ConfigError)
        if isinstance(data, dict) and "names" in data:
            return _yolo(path, scene)
        if isinstance(data, dict) and ({"sources", "name"} & set(data)):
            return DatasetRecipe(load_recipe(path), path.parent, "recipe")
        raise ConfigError(f"{path}: neither a YOLO data YAML (no 'names' key) nor a recipe (no 'sources' key); "
                          f"add e.g. 'names: [scratch, dent]' and 'train: images/train', 'val: images/val'")
    raise ConfigError(f"--data {path}: expected a benchmark folder, a .yaml or a .json file, {EXAMPLE}")


def dataset_hash(ds: DatasetRecipe) -> str:
    """Hash of the recipe and the files under the root (annotation files by content, others by size and mtime)."""
    h = hashlib.sha1(ds.recipe.sha1().encode())
    for dirpath, dirnames, filenames in os.walk(ds.root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in sorted(filenames):
            p = Path(dirpath) / fname
            st = p.stat()
            h.update(f"{p.relative_to(ds.root)}\0{st.st_size}\0".encode())
            if p.suffix.lower() in _ANNOTATION_EXTS and st.st_size < 64 << 20:
                h.update(hashlib.sha1(p.read_bytes()).digest())
            else:
                h.update(str(st.st_mtime_ns).encode())
    return h.hexdigest()[:12]


def ensure_benchmark(path: Path, cache: Path, *, images: Path | None = None, scene: str | None = None,
                     workers: int = 1) -> Path:
    """The benchmark for ``--data path``: ``path`` itself, or one built (or reused) under ``cache``.

    Args:
        path: a benchmark folder or a dataset (see the module docstring).
        cache: folder of the implicit benchmarks (e.g. ``runs/.benchmarks``).
        images: COCO image folder (when it is not next to the JSON).
        scene: scene words of the class texts (default: the dataset's name).
        workers: build processes.

    Returns:
        The benchmark folder.
    """
    ds = dataset_recipe(path, images, scene)
    if ds is None:
        return Path(path)
    out = Path(cache) / f"{ds.recipe.name}-{dataset_hash(ds)}"
    if is_benchmark(out):
        log.info("--data %s: %s, reusing benchmark %s (same content hash)", path, ds.kind, out)
        return out
    from rtvp.bench.build import build_benchmark

    t0 = time.perf_counter()
    summary = build_benchmark(ds.recipe, ds.root, out, workers=workers)
    splits = ", ".join(f"{k} {v['images']}" for k, v in summary.splits.items() if k.startswith("closed"))
    log.info("--data %s: %s, built benchmark %s in %.1f s (%d images, %d classes, %s; issues: %s)", path, ds.kind,
             out, time.perf_counter() - t0, summary.images, summary.categories, splits,
             ", ".join(f"{k} {n}" for k, n in summary.issues.items()) or "none")
    return out
