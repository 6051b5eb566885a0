"""Native class names of a source, for recipes that leave ``classes`` out.

A source without ``classes`` keeps every native class under its normalised name (``pitted_surface`` ->
``pitted surface``). The names come from the dataset's own class list where it has one (the YOLO data YAML's
``names`` or the ``names`` option, the COCO ``categories``), otherwise from one pass of the converter over the
source (labels in order of first appearance).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rtvp.bench.recipe import Recipe, SourceSpec, check_recipe
from rtvp.errors import ConfigError
from rtvp.fileio import read_json, read_yaml
from rtvp.sources import SOURCES
from rtvp.sources._common import parse_options


def normalise_class_name(name: str) -> str:
    """Native class name -> defect words: underscores become spaces, runs of spaces collapse.

    Examples:
        >>> normalise_class_name("pitted_surface"), normalise_class_name(" rolled-in_scale ")
        ('pitted surface', 'rolled-in scale')
    """
    return " ".join(str(name).replace("_", " ").split()) or str(name)


def _yolo_names(root: Path, options: dict) -> list[str] | None:
    from rtvp.sources.yolo import NAME, YOLOOptions, _names

    opts = parse_options(YOLOOptions, NAME, options)
    if opts.data is None:
        return list(opts.names) if opts.names else None
    path = root / str(opts.data)
    data = read_yaml(path, "YOLO data YAML", error=ConfigError)
    if not isinstance(data, dict) or "names" not in data:
        return None
    return _names(data["names"], path)


def _coco_names(root: Path, options: dict) -> list[str] | None:
    from rtvp.sources.coco import NAME, COCOOptions, _categories

    opts = parse_options(COCOOptions, NAME, options)
    path = root / opts.annotations
    data = read_json(path, "COCO annotation file", error=ConfigError)
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
        return None
    return list(dict.fromkeys(_categories(data, path).values()))


def _scanned_names(fmt: str, root: Path, options: dict) -> list[str]:
    """Labels of every record, in order of first appearance (one converter pass)."""
    try:
        convert = SOURCES.get(fmt)
    except KeyError as e:
        raise ConfigError(f"source format: {e.args[0]}") from None
    seen: dict[str, None] = {}
    for rec in convert(root, **options):
        for ann in rec.annotations:
            seen.setdefault(str(ann.label), None)
    return list(seen)


def native_class_names(src: SourceSpec, root: Path) -> list[str]:
    """The native class names of ``src`` (dataset folder ``root / src.path``)."""
    folder = Path(root) / src.path
    if not folder.is_dir():
        raise ConfigError(f"sources.{src.name}.path: folder {folder} does not exist; fix 'path' (relative to "
                          f"--root {root})")
    listed = {"yolo": _yolo_names, "coco": _coco_names}.get(src.format)
    names = listed(folder, dict(src.options)) if listed is not None else None
    return names if names is not None else _scanned_names(src.format, folder, dict(src.options))


def resolve_classes(recipe: Recipe, root: Path, where: str = "recipe") -> Recipe:
    """``recipe`` with every omitted ``classes`` filled in as ``{native: normalised native}``; checked again."""
    if all(s.classes is not None for s in recipe.sources):
        return recipe
    sources = []
    for src in recipe.sources:
        if src.classes is None:
            names = native_class_names(src, root)
            if not names:
                raise ConfigError(f"{where}: sources.{src.name}: no class names found in {Path(root) / src.path}; "
                                  f"list them, e.g. 'classes: {{scratch: scratch}}'")
            src = dataclasses.replace(src, classes={n: normalise_class_name(n) for n in names})
        sources.append(src)
    return check_recipe(dataclasses.replace(recipe, sources=sources), where)
