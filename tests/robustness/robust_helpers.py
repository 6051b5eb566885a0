"""Builders of the robustness suite's inputs: a NEU-DET-like VOC source, its recipe, a two-image benchmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml


def toy_bench_at(root: Path) -> Path:
    """A two-image benchmark (one train, one val image; real PNGs, so a training run can start on it)."""
    from toybench import annotation, category, standard_splits, write_rgb, write_splits

    for name in ("a", "b"):
        write_rgb(root / "images" / f"{name}.png", np.full((64, 64, 3), 90, np.uint8))
    (root / "benchmark.yaml").write_text("name: toy\n")
    cats = [category(1, "scratch", "steel", "surface")]
    images = [{"id": i, "file_name": f"images/{n}.png", "width": 64, "height": 64} for i, n in ((1, "a"), (2, "b"))]
    anns = [annotation(1, 1, 1, (10, 10, 30, 30)), annotation(2, 2, 1, (20, 20, 40, 40))]
    write_splits(root, cats, images, anns, standard_splits([1, 2], anns, {2}, set()))
    return root


NEU_CLASSES = ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]


def voc_xml(filename: str, name: str, box: tuple[int, int, int, int] = (10, 20, 90, 120)) -> str:
    """A one-object Pascal VOC XML (200x200 image)."""
    x1, y1, x2, y2 = box
    return (f"<annotation><filename>{filename}</filename><size><width>200</width><height>200</height>"
            f"<depth>3</depth></size><object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin>"
            f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object></annotation>\n")


def write_neu(root: Path, n: int = 12) -> Path:
    """A NEU-DET-like VOC layout ``root/neu/{IMAGES,ANNOTATIONS}`` of ``n`` distinct 200x200 images, one box each."""
    from toybench import write_rgb

    src = root / "neu"
    (src / "ANNOTATIONS").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cls = NEU_CLASSES[i % len(NEU_CLASSES)]
        small = rng.integers(0, 256, (10, 10), dtype=np.uint8)
        write_rgb(src / "IMAGES" / f"{cls}_{i}.jpg", np.repeat(small, 20, 0).repeat(20, 1))
        (src / "ANNOTATIONS" / f"{cls}_{i}.xml").write_text(voc_xml(f"{cls}_{i}.jpg", cls))
    return src


def neu_recipe(folder: Path, **options) -> Path:
    """A one-source recipe over :func:`write_neu` (no text encoder needed: unseen class given)."""
    data = {"name": "neu-mini", "version": "1", "text_template": "{defect} on {scene}",
            "sources": [{"name": "neu_det", "format": "voc", "path": "neu", "scene": "steel strip",
                         "supercategory": "metal", "license": "test", "classes": {c: c for c in NEU_CLASSES},
                         "options": {"images": "IMAGES", "annotations": "ANNOTATIONS", **options}}],
            "split": {"val_fraction": 0.25, "seed": 0, "unseen_classes": ["scratches"]},
            "output": {"images": "link"}}
    path = folder / "r.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path
