"""Tiny checkpoints, images and a stub model output for the inference/export tests (hash text encoder, CPU)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rtvp import __version__
from rtvp.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
from rtvp.config import to_dict
from rtvp.models import ExpertDetector, ModelConfig, build_model
from rtvp.models.text import build_text_encoder

TEXT_DIM = 16


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Run these tests single-threaded: on a loaded 2-core machine two torch threads spin-wait (measured 40x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

VOCAB = ["scratch on steel", "hole on wood", "crack on glass"]
CATEGORIES = [
    {"id": i + 1, "name": t, "text": t, "defect": t.split(" on ")[0], "scene": t.split(" on ")[1],
     "supercategory": "surface", "aliases": [], "split": "seen"}
    for i, t in enumerate(VOCAB)
]


def _meta(arch: str, cfg: dict, model: torch.nn.Module, imgsz: int, vocab: list[str]) -> dict:
    return {"version": __version__, "format": CHECKPOINT_FORMAT, "arch": arch, "model_config": cfg,
            "model": model.state_dict(), "ema": None, "vocabulary": list(vocab),
            "categories": [c for c in CATEGORIES if c["text"] in vocab], "train_config": {"imgsz": imgsz},
            "epoch": 1, "step": 1}


def rtvpnet_ckpt(path: Path | None = None, imgsz: int = 64, seed: int = 0, in_channels: int = 3,
                 vocab: list[str] | None = None, encoder: str = "hash", **switches) -> dict:
    """A random tiny RTVPNet checkpoint (no SAM, RVP on, hash encoder); saved to ``path`` when given."""
    vocab = list(vocab or VOCAB)
    cfg = ModelConfig(**{"scale": "tiny", "sam": False, "edp": False, "text_encoder": encoder,
                         "in_channels": in_channels, **switches})
    enc = build_text_encoder("hash", dim=TEXT_DIM) if encoder == "hash" else build_text_encoder(encoder)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg, enc.dim)
    ckpt = {**_meta("rtvpnet", to_dict(cfg), model, imgsz, vocab), "text_encoder": encoder, "text_dim": enc.dim,
            "text_embeddings": enc.encode(vocab)}
    if path is not None:
        save_checkpoint(ckpt, path)
    return ckpt


def expert_ckpt(path: Path | None = None, imgsz: int = 64, seed: int = 0) -> dict:
    """A random tiny closed-set expert checkpoint over :data:`VOCAB`."""
    torch.manual_seed(seed)
    model = ExpertDetector("tiny", 3, len(VOCAB))
    ckpt = _meta("expert", {"scale": "tiny", "in_channels": 3}, model, imgsz, VOCAB)
    if path is not None:
        save_checkpoint(ckpt, path)
    return ckpt


def write_images(folder: Path, sizes: list[tuple[int, int]], seed: int = 0) -> list[Path]:
    """PNG images of the given ``(w, h)`` with a bright rectangle each; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, (w, h) in enumerate(sizes):
        img = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
        img[h // 4 : h // 2, w // 4 : w // 2] = 250
        p = folder / f"img{i}.png"
        cv2.imwrite(str(p), img)
        paths.append(p)
    return paths


def write_bench(root: Path, unseen: str = "crack on glass") -> Path:
    """A 4-image benchmark over :data:`VOCAB` (``unseen`` is the unseen class) with all four split files."""
    bench = root / "bench"
    sizes = [(100, 60), (64, 64), (30, 90), (80, 40)]
    paths = write_images(bench / "images" / "toy", sizes)
    cats = [{**c, "split": "unseen" if c["text"] == unseen else "seen"} for c in CATEGORIES]
    images = [{"id": i + 1, "file_name": str(p.relative_to(bench)), "width": w, "height": h, "source": "toy",
               "scene": "toy", "sha1": "0" * 40, "channels": 3}
              for i, (p, (w, h)) in enumerate(zip(paths, sizes, strict=True))]
    anns = []
    for im in images:  # the bright rectangle written by write_images, class by image id
        w, h = im["width"], im["height"]
        box = [w // 4, h // 4, w // 2 - w // 4, h // 2 - h // 4]
        anns.append({"id": im["id"], "image_id": im["id"], "category_id": (im["id"] - 1) % 3 + 1, "bbox": box,
                     "area": box[2] * box[3], "iscrowd": 0, "segmentation": [],
                     "attributes": {"location": "center", "size": "small", "morphology": "round"}})
    unseen_ids = {c["id"] for c in cats if c["split"] == "unseen"}
    with_unseen = {a["image_id"] for a in anns if a["category_id"] in unseen_ids}
    splits = {"closed_train": (set(), None), "closed_val": ({im["id"] for im in images}, None),
              "open_train": ({im["id"] for im in images} - with_unseen, unseen_ids),
              "open_val": ({im["id"] for im in images}, None)}
    (bench / "annotations").mkdir(parents=True, exist_ok=True)
    for name, (ids, drop) in splits.items():
        data = {"images": [im for im in images if im["id"] in ids],
                "annotations": [a for a in anns if a["image_id"] in ids and a["category_id"] not in (drop or ())],
                "categories": cats}
        (bench / "annotations" / f"{name}.json").write_text(json.dumps(data))
    return bench
