"""Synthetic defect dataset: procedural textured surfaces with exact-mask defects, written as per-scene COCO.

``write_synth(out)`` renders ``images`` pictures of ``size`` x ``size`` px, cycling over four scenes, and writes::

    out/README.md                         what this is, the parameters, the licence (generated, CC0)
    out/<scene>/annotations.json          COCO: images, categories (native defect names), annotations with
                                          bbox = exact mask extent, area = mask pixels, RLE segmentation
    out/<scene>/images/<scene>_NNNNN.png  RGB PNG (metal is grey but stored RGB)

which is the default layout of the ``coco`` source (``annotations: annotations.json``, ``images: images``);
``configs/benchmarks/synth.yaml`` builds a benchmark from it with ``rtvp data build ... --root out``.

Scenes and their defects (``SCENE_DEFECTS``): metal (scratch, crack, hole, spot, stain), wood (scratch, crack,
hole, stain), fabric (hole, spot, stain), pcb (scratch, spot, missing trace, short). About ``empty_fraction`` of
the images are defect-free; the others hold 1-3 non-touching defects. Image ``i`` is a pure function of
``(seed, i, size)`` (its own ``numpy`` generator), so the output is byte-identical for the same arguments.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rtvp.bench.export import atomic_dir
from rtvp.bench.synth_defects import DEFECTS, MASK_THRESHOLD
from rtvp.bench.synth_textures import TEXTURES
from rtvp.errors import ConfigError

SCENE_DEFECTS: dict[str, tuple[str, ...]] = {
    "metal": ("scratch", "crack", "hole", "spot", "stain"),
    "wood": ("scratch", "crack", "hole", "stain"),
    "fabric": ("hole", "spot", "stain"),
    "pcb": ("scratch", "spot", "missing trace", "short"),
}
"""Scene -> defect names (native class names of that scene's COCO file), in category id order."""

SCENES = tuple(SCENE_DEFECTS)
PLACEMENT_TRIES = 20


@dataclass
class Instance:
    """One rendered defect: native class name and exact ``(S, S)`` bool mask."""

    name: str
    mask: np.ndarray


@dataclass
class Rendered:
    """One rendered picture: ``image`` ``(S, S, 3)`` uint8 RGB, its scene and its defect instances.

    ``clean`` (same shape, only with ``keep_clean``) is the same picture without its defects (same sensor noise),
    a defect-free reference like DeepPCB's templates.
    """

    image: np.ndarray
    scene: str
    instances: list[Instance] = field(default_factory=list)
    clean: np.ndarray | None = None


def scene_of(index: int) -> str:
    """Scene of image ``index`` (round robin, so scenes are balanced)."""
    return SCENES[index % len(SCENES)]


def _defect_names(rng: np.random.Generator, index: int, scene: str, empty_fraction: float) -> list[str]:
    """Which defects image ``index`` gets: none, or 1-3 with the first cycling so every class shows up early."""
    kinds = SCENE_DEFECTS[scene]
    if rng.random() < empty_fraction:
        return []
    n = 1 + int(rng.choice(3, p=[0.45, 0.35, 0.2]))
    first = kinds[(index // len(SCENES)) % len(kinds)]
    return [first] + [kinds[int(k)] for k in rng.integers(len(kinds), size=n - 1)]


def _to_uint8(image: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image + noise), 0, 255).astype(np.uint8)


def render_image(seed: int, index: int, size: int = 256, empty_fraction: float = 0.1,
                 keep_clean: bool = False) -> Rendered:
    """Render picture ``index`` of the dataset of ``seed`` (deterministic).

    Args:
        seed: dataset seed.
        index: picture number (selects the scene, seeds the picture's own generator).
        size: side in pixels (defect sizes scale with it; >= 64).
        empty_fraction: probability that the picture is defect-free.
        keep_clean: also return the picture without its defects (``Rendered.clean``).

    Returns:
        the image and its instances; masks never touch (a margin of ``max(2, S/64)`` px separates them).
    """
    rng = np.random.default_rng([seed, index, size])
    scene = scene_of(index)
    surface = TEXTURES[scene](rng, size)
    clean = surface.image.copy() if keep_clean else None
    occupied = np.zeros((size, size), np.uint8)
    margin = max(2, size // 64)
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    instances = []
    for name in _defect_names(rng, index, scene, empty_fraction):
        kind = DEFECTS[name]
        for _ in range(PLACEMENT_TRIES):
            alpha = kind.shape(rng, size, surface)
            if alpha is None:
                break
            mask = alpha >= MASK_THRESHOLD
            if mask.sum() < 4 or (cv2.dilate(mask.astype(np.uint8), kernel) & occupied).any():
                continue
            kind.paint(surface, alpha, rng, scene)
            occupied |= mask.astype(np.uint8)
            instances.append(Instance(name, mask))
            break
    noise = rng.normal(0.0, 2.0, (size, size, 1)).astype(np.float32)
    return Rendered(_to_uint8(surface.image, noise), scene, instances,
                    None if clean is None else _to_uint8(clean, noise))


def instance_annotation(inst: Instance, ann_id: int, image_id: int, category_id: int) -> dict:
    """COCO annotation of one instance: RLE segmentation, bbox = mask extent, area = mask pixel count."""
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(inst.mask.astype(np.uint8)))
    bbox = [float(v) for v in mask_util.toBbox(rle)]
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox,
            "area": float(inst.mask.sum()), "iscrowd": 0,
            "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}}


@dataclass
class SynthSummary:
    """What ``write_synth`` wrote: counts and timing."""

    out: Path
    images: int
    instances: int
    empty_images: int
    per_scene: dict[str, int]
    per_class: dict[str, int]
    seconds: float


def _readme(seed: int, images: int, size: int, empty_fraction: float, summary: dict[str, int]) -> str:
    lines = ["# rtvp synthetic defects", "",
             f"Generated by `rtvp data synth --seed {seed} --images {images} --size {size}` "
             f"(empty fraction {empty_fraction}). Procedural, no source data: licence CC0-1.0.", "",
             "One COCO dataset per scene: `<scene>/annotations.json` + `<scene>/images/`; RLE masks, boxes are",
             "exact mask extents. Build a benchmark with `rtvp data build configs/benchmarks/synth.yaml --root .`.",
             "", "| scene | defects |", "|---|---|"]
    lines += [f"| {s} | {', '.join(d)} |" for s, d in SCENE_DEFECTS.items()]
    lines += ["", "| class | instances |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in sorted(summary.items())]
    return "\n".join(lines) + "\n"


def write_synth(out: str | Path, seed: int = 0, images: int = 240, size: int = 256, empty_fraction: float = 0.1,
                overwrite: bool = False) -> SynthSummary:
    """Render and write the synthetic dataset (layout in the module docstring), atomically.

    Args:
        out: output folder (absent or empty, unless ``overwrite``).
        seed: dataset seed; the same arguments give byte-identical files.
        images: number of pictures (>= 1), spread round-robin over the scenes.
        size: picture side in pixels (64..2048).
        empty_fraction: share of defect-free pictures, in ``[0, 1)``.
        overwrite: replace a non-empty ``out``.

    Examples:
        >>> summary = write_synth("/tmp/synth", seed=0, images=240)  # doctest: +SKIP
        >>> summary.per_scene["metal"]  # doctest: +SKIP
        60
    """
    if images < 1 or not 64 <= size <= 2048 or not 0.0 <= empty_fraction < 1.0:
        raise ConfigError(f"synth: need images >= 1, 64 <= size <= 2048, 0 <= empty_fraction < 1; got "
                          f"images={images}, size={size}, empty_fraction={empty_fraction}")
    t0 = time.perf_counter()
    out = Path(out)
    cats = {s: {d: i + 1 for i, d in enumerate(ds)} for s, ds in SCENE_DEFECTS.items()}
    coco = {s: {"info": {"description": f"rtvp synthetic defects: {s}", "seed": seed, "size": size},
                "images": [], "annotations": [],
                "categories": [{"id": i, "name": d, "supercategory": s} for d, i in cats[s].items()]}
            for s in SCENES}
    per_class: Counter[str] = Counter()
    empty = 0
    with atomic_dir(out, overwrite) as tmp:
        for index in range(images):
            r = render_image(seed, index, size, empty_fraction)
            data = coco[r.scene]
            name = f"{r.scene}_{index:05d}.png"
            path = tmp / r.scene / "images" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            ok, buf = cv2.imencode(".png", cv2.cvtColor(r.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
            path.write_bytes(buf.tobytes())
            data["images"].append({"id": index + 1, "file_name": name, "width": size, "height": size})
            for inst in r.instances:
                ann_id = len(data["annotations"]) + 1
                data["annotations"].append(instance_annotation(inst, ann_id, index + 1, cats[r.scene][inst.name]))
                per_class[f"{inst.name} on {r.scene}"] += 1
            empty += not r.instances
        for scene, data in coco.items():
            if data["images"]:
                (tmp / scene / "annotations.json").write_text(json.dumps(data, separators=(",", ":")) + "\n")
        (tmp / "README.md").write_text(_readme(seed, images, size, empty_fraction, dict(per_class)))
    per_scene = {s: len(coco[s]["images"]) for s in SCENES}
    return SynthSummary(out, images, sum(per_class.values()), empty, per_scene, dict(sorted(per_class.items())),
                        time.perf_counter() - t0)


def montage(synth_dir: str | Path, path: str | Path, count: int = 16, cols: int = 4, tile: int = 256) -> Path:
    """Write a PNG grid of the first ``count`` pictures of a synth folder with their boxes and class names drawn.

    Args:
        synth_dir: a folder written by ``write_synth``.
        path: output PNG.
        count: number of pictures (taken in index order across scenes).
        cols: grid columns.
        tile: tile side in pixels.
    """
    from rtvp.fileio import atomic_write_bytes

    synth_dir = Path(synth_dir)
    items = []
    for scene in SCENES:
        ann_file = synth_dir / scene / "annotations.json"
        if ann_file.is_file():
            data = json.loads(ann_file.read_text())
            names = {c["id"]: c["name"] for c in data["categories"]}
            boxes: dict[int, list] = {}
            for a in data["annotations"]:
                boxes.setdefault(a["image_id"], []).append((a["bbox"], names[a["category_id"]]))
            items += [(im["id"], synth_dir / scene / "images" / im["file_name"], boxes.get(im["id"], []))
                      for im in data["images"]]
    items = sorted(items)[:count]
    rows = (len(items) + cols - 1) // cols
    grid = np.zeros((max(rows, 1) * tile, cols * tile, 3), np.uint8)
    for k, (_, img_path, boxes) in enumerate(items):
        img = cv2.imread(str(img_path))
        scale = tile / img.shape[1]
        img = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA)
        for (x, y, w, h), name in boxes:
            p, q = (int(x * scale), int(y * scale)), (int((x + w) * scale), int((y + h) * scale))
            cv2.rectangle(img, p, q, (0, 0, 255), 1)
            cv2.putText(img, name, (p[0], max(8, p[1] - 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 255, 255), 1)
        r, c = divmod(k, cols)
        grid[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = img
    atomic_write_bytes(path, cv2.imencode(".png", grid)[1].tobytes())
    return Path(path)
