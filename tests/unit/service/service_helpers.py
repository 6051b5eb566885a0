"""Helpers shared by the service tests (image bytes)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode(img: np.ndarray | Image.Image, fmt: str = "PNG", **kw) -> bytes:
    """Image (array or PIL) -> file bytes in ``fmt``."""
    im = img if isinstance(img, Image.Image) else Image.fromarray(img)
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def grey(width: int = 200, height: int = 100, value: int = 120) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)
