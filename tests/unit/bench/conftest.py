"""Fixtures of the builder tests: two tiny YOLO sources written by the test, with every validation case."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

W, H = 64, 48


def _texture(seed: int) -> np.ndarray:
    """A distinct random grey texture (its pHash is far from every other seed's)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (12, 16), dtype=np.uint8)
    return cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def _put(root: Path, stem: str, data: bytes, labels: str | None) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "images" / f"{stem}.png").write_bytes(data)
    if labels is not None:
        (root / "labels" / f"{stem}.txt").write_text(labels)


def write_clean_sources(root: Path) -> None:
    """``shop`` (metal plate: scratch, hole; 34 images incl. 4 negatives) and ``mill`` (wood: crack, knot; 16)."""
    seed = 0
    shop, mill = root / "shop", root / "mill"
    for i in range(12):
        _put(shop, f"s{i:02d}", _png(_texture(seed := seed + 1)), "0 0.5 0.5 0.25 0.25\n")
        _put(shop, f"h{i:02d}", _png(_texture(seed := seed + 1)), "1 0.3 0.3 0.2 0.2\n1 0.7 0.7 0.2 0.3\n")
    for i in range(6):
        _put(shop, f"b{i:02d}", _png(_texture(seed := seed + 1)), "0 0.2 0.2 0.2 0.1\n1 0.7 0.6 0.2 0.2\n")
    for i in range(4):
        _put(shop, f"n{i:02d}", _png(_texture(seed := seed + 1)), None)  # negatives: no label file
    for i in range(8):
        _put(mill, f"c{i:02d}", _png(_texture(seed := seed + 1)), "0 0.5 0.5 0.6 0.1\n")
        _put(mill, f"k{i:02d}", _png(_texture(seed := seed + 1)), "1 0.4 0.4 0.6 0.4 0.6 0.6 0.4 0.6\n")  # polygon


def write_bad_cases(root: Path) -> dict[str, str]:
    """Add one file per validation case to ``shop``; returns case -> file (relative to the root)."""
    shop = root / "shop"
    s00 = (shop / "images" / "s00.png").read_bytes()
    s01 = (shop / "images" / "s01.png").read_bytes()
    h00 = _texture(1000).astype(np.int16)
    _put(shop, "trunc", _png(_texture(2000))[:-40], "0 0.5 0.5 0.2 0.2\n")  # header fine, data cut
    _put(shop, "garbage", b"this is not an image", "0 0.5 0.5 0.2 0.2\n")
    _put(shop, "oob", _png(_texture(3000)), "0 0.95 0.5 0.3 0.2\n")  # x2 = 1.1 W -> clipped
    _put(shop, "degen", _png(_texture(4000)), "0 0.5 0.5 0.0 0.2\n1 0.5 0.5 0.2 0.2\n")  # zero width -> dropped
    _put(shop, "unknown", _png(_texture(5000)), "2 0.5 0.5 0.2 0.2\n3 0.4 0.4 0.2 0.2\n0 0.5 0.5 0.2 0.2\n")
    _put(shop, "empty", _png(_texture(6000)), "")
    _put(shop, "zdup_diff", s00, "1 0.5 0.5 0.3 0.3\n")  # same bytes as s00, other labels -> merged
    _put(shop, "zdup_same", s01, "0 0.5 0.5 0.25 0.25\n")  # same bytes and labels as s01
    _put(shop, "near_a", _png(h00.astype(np.uint8)), "0 0.5 0.5 0.2 0.2\n")
    _put(shop, "near_b", _png(np.clip(h00 + 6, 0, 255).astype(np.uint8)), "0 0.5 0.5 0.2 0.2\n")  # brighter
    return {
        "unreadable_image": "shop/images/trunc.png",
        "source_issue": "shop/images/garbage.png",
        "box_out_of_bounds_clipped": "shop/labels/oob.txt",
        "box_degenerate_dropped": "shop/labels/degen.txt",
        "unknown_class": "shop/labels/unknown.txt",
        "empty_label_file": "shop/labels/empty.txt",
        "exact_duplicate_labels_merged": "shop/images/zdup_diff.png",
        "exact_duplicate": "shop/images/zdup_same.png",
        "near_duplicate": "shop/images/near_b.png",
    }


def recipe_dict(unseen_fraction: float = 0.0, **split) -> dict:
    """Recipe over the two fixture sources (``dent`` is deliberately not mapped, ``junk`` is dropped)."""
    return {
        "name": "tiny",
        "version": "1",
        "sources": [
            {"name": "shop", "format": "yolo", "path": "shop", "scene": "metal plate", "supercategory": "metal",
             "license": "CC0", "classes": {"scratch": "scratch", "hole": "hole", "junk": None},
             "aliases": {"scratch": ["scratches", "划痕", "傷"]},
             "options": {"names": ["scratch", "hole", "dent", "junk"]}},
            {"name": "mill", "format": "yolo", "path": "mill", "scene": "wood", "supercategory": "material",
             "license": "CC0", "classes": {"crack": "crack", "knot": "knot"},
             "options": {"names": ["crack", "knot"]}},
        ],
        "split": {"val_fraction": 0.25, "seed": 0, "unseen_fraction": unseen_fraction, "tau": 0.5, **split},
    }


FIXED = {  # fixed unit vectors: scratch ~ hole (0.8), crack ~ knot (0.6), the scenes unrelated
    "scratch on metal plate": [1.0, 0.0, 0.0, 0.0],
    "hole on metal plate": [0.8, 0.6, 0.0, 0.0],
    "crack on wood": [0.0, 0.0, 1.0, 0.0],
    "knot on wood": [0.0, 0.0, 0.6, 0.8],
}


def fixed_embed(texts: list[str]) -> np.ndarray:
    """Embedding function with the hand-set vectors of ``FIXED``."""
    return np.array([FIXED[t] for t in texts], dtype=np.float64)


def tree_digest(root: Path) -> str:
    """Hash of every path, size, mtime and content under ``root`` (to prove sources are never modified)."""
    h = hashlib.sha1()
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}|{st.st_mode}".encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture()
def clean_root(tmp_path: Path) -> Path:
    """Dataset root holding the two clean fixture sources."""
    root = tmp_path / "datasets"
    write_clean_sources(root)
    return root


@pytest.fixture()
def bad_root(clean_root: Path) -> tuple[Path, dict[str, str]]:
    """``clean_root`` plus one file per validation case; returns ``(root, case -> file)``."""
    return clean_root, write_bad_cases(clean_root)


class Kit:
    """Helpers handed to the tests through the ``kit`` fixture (conftest modules are not importable by name)."""

    recipe_dict = staticmethod(recipe_dict)
    fixed_embed = staticmethod(fixed_embed)
    tree_digest = staticmethod(tree_digest)
    write_clean_sources = staticmethod(write_clean_sources)
    write_bad_cases = staticmethod(write_bad_cases)
    texture = staticmethod(_texture)
    png = staticmethod(_png)
    FIXED = FIXED


@pytest.fixture()
def kit() -> type[Kit]:
    """The helper namespace."""
    return Kit
