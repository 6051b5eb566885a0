"""A hand-made 16-image benchmark (benchmark.yaml + annotations/ + images/) and tiny random checkpoints.

Two scenes (steel, wood), three classes drawn as solid rectangles of a class colour on dark noise: "scratch on
steel" (red), "hole on steel" (green, unseen), "spot on wood" (blue). 64x64 RGB PNGs; images 13-16 are closed_val.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import yaml

from rtvp import __version__
from rtvp.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
from rtvp.config import to_dict
from rtvp.models import ExpertDetector, ModelConfig, build_model
from rtvp.models.text import build_text_encoder
from toybench import STEEL_WOOD, annotation, render_colored, standard_splits, write_rgb, write_splits

CATEGORIES = STEEL_WOOD
TEXTS = [c["text"] for c in CATEGORIES]
SIZE = 64
VAL = {13, 14, 15, 16}


def layout(iid: int) -> tuple[str, list[tuple[int, tuple[int, int, int, int]]]]:
    """Scene and ``[(category, (x1, y1, x2, y2))]`` of image ``iid`` (deterministic)."""
    rng = np.random.default_rng(100 + iid)
    scene = "steel" if iid % 2 else "wood"
    cats = [1, 2] if scene == "steel" else [3]
    objs = []
    for k in range(1 + iid % 2):
        x, y = (int(v) for v in rng.integers(2, 34, 2))
        w, h = (int(v) for v in rng.integers(14, 28, 2))
        objs.append((cats[(iid + k) % len(cats)], (x, y, min(SIZE, x + w), min(SIZE, y + h))))
    return scene, objs


def write_bench(root: Path, n: int = 16) -> Path:
    """Write images, the four COCO files and ``benchmark.yaml`` under ``root``; returns ``root``."""
    images, anns = [], []
    for iid in range(1, n + 1):
        scene, objs = layout(iid)
        file = f"images/toy/{iid:03d}.png"
        write_rgb(root / file, render_colored(iid, SIZE, objs))
        images.append({"id": iid, "file_name": file, "width": SIZE, "height": SIZE, "source": "toy", "scene": scene,
                       "sha1": f"{iid:040d}", "channels": 3, "group": iid})
        anns += [annotation(len(anns) + 1 + k, iid, cat, box) for k, (cat, box) in enumerate(objs)]
    write_splits(root, CATEGORIES, images, anns, standard_splits(range(1, n + 1), anns, VAL, {2}))
    meta = {"name": "toy", "version": "1", "categories": CATEGORIES, "output": {"images": "link"}}
    (root / "benchmark.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return root


def _ckpt(arch: str, cfg: dict, model: torch.nn.Module, vocab: list[str]) -> dict:
    return {"version": __version__, "format": CHECKPOINT_FORMAT, "arch": arch, "model_config": cfg,
            "model": model.state_dict(), "ema": None, "vocabulary": list(vocab), "categories": CATEGORIES,
            "train_config": {"imgsz": SIZE}, "epoch": 1, "step": 1}


def rtvpnet_ckpt(path: Path, seed: int = 0) -> Path:
    """A random tiny RTVPNet checkpoint over the benchmark's classes (hash text encoder, no SAM)."""
    cfg = ModelConfig(scale="tiny", sam=False, edp=False, text_encoder="hash")
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg, 16)
    table = build_text_encoder("hash", dim=16).encode(TEXTS)
    save_checkpoint({**_ckpt("rtvpnet", to_dict(cfg), model, TEXTS), "text_encoder": "hash", "text_dim": 16,
                     "text_embeddings": table}, path)
    return path


def expert_ckpt(path: Path, seed: int = 0) -> Path:
    """A random tiny closed-set expert checkpoint over the benchmark's classes."""
    torch.manual_seed(seed)
    model = ExpertDetector("tiny", 3, len(TEXTS))
    save_checkpoint(_ckpt("expert", {"scale": "tiny", "in_channels": 3}, model, TEXTS), path)
    return path


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every regular file under ``root`` except ``work/`` (links: their target)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel.startswith("work/") or p.is_dir():
            continue
        out[rel] = str(p.readlink()).encode() if p.is_symlink() else p.read_bytes()
    return out
