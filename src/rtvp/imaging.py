"""Image reading and letterboxing shared by the builder, the data pipeline and the predictor (numpy + OpenCV).

Leaf module: no torch. Images are ``(H, W, C)`` uint8 arrays; ``C`` is 1 for grayscale sources, 3 for RGB (RGB
channel order, not OpenCV's BGR), more for multi-channel stacks (read from ``.npy``/``.tif``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from rtvp.errors import DataError

cv2.setNumThreads(1)  # the loaders parallelise over images; per-call threads only fight over 2 cores


def read_image(path: str | Path, channels: int | None = 3) -> np.ndarray:
    """Read an image as ``(H, W, C)`` uint8.

    Args:
        path: image file (anything OpenCV decodes, or ``.npy`` holding an ``(H, W[, C])`` uint8 array).
        channels: ``3`` -> RGB (grayscale replicated), ``1`` -> grayscale, ``None`` -> as stored.

    Raises:
        DataError: the file is missing, truncated or not an image; the message names the file.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            img = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read array image ({e})") from e
    else:
        buf = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
        if buf is None:
            raise DataError(f"{path}: image file not found")
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
        if img is None:
            raise DataError(f"{path}: not a readable image (truncated or unknown format)")
        if img.ndim == 3 and img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        elif img.ndim == 3 and img.shape[2] == 4:  # RGB + a 4th channel (alpha, polarization, NIR): all kept
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    if img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    return to_channels(img, channels, source=str(path))


_WARNED: set[tuple[int, int]] = set()


def to_channels(img: np.ndarray, channels: int | None, source: str = "") -> np.ndarray:
    """Convert ``(H, W, C)`` uint8 to the requested channel count (1: luminance, 3: RGB, None: unchanged).

    Channels beyond the first three (a polarization or NIR plane next to RGB) are dropped only when the model
    takes 1 or 3 channels, and then said once per process, naming the first such file: a model that should use them
    is trained with ``model.in_channels`` equal to the images' channel count.
    """
    c = img.shape[2]
    if channels is None or channels == c:
        return img
    if c > 3 and channels in (1, 3) and (c, channels) not in _WARNED:
        _WARNED.add((c, channels))
        logging.getLogger("rtvp.data").warning(
            "%s has %d channels; the model takes %d, so channels 4..%d are dropped (train with "
            "--set model.in_channels=%d to use them all)", source or "an image", c, channels, c, c)
    if channels == 1:
        if c >= 3:
            return cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2GRAY)[:, :, None]
        return img[:, :, :1]
    if channels == 3:
        if c == 1:
            return np.repeat(img, 3, axis=2)
        return np.ascontiguousarray(img[:, :, :3])
    if c == 1:
        return np.repeat(img, channels, axis=2)
    raise DataError(f"cannot convert a {c}-channel image to {channels} channels")


def letterbox(img: np.ndarray, size: int, pad_value: int = 114) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping aspect ratio so the long side is ``size``, pad to ``size x size`` (centred).

    Args:
        img: ``(H, W, C)`` uint8.
        size: output side in pixels.
        pad_value: grey level of the border.

    Returns:
        ``(out, scale, (pad_x, pad_y))`` with ``out`` ``(size, size, C)``; a point maps as ``p * scale + pad``.
    """
    h, w = img.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(img, (nw, nh), interpolation=interp)
        if resized.ndim == 2:
            resized = resized[:, :, None]
    else:
        resized = img
    px, py = (size - nw) // 2, (size - nh) // 2
    out = np.full((size, size, img.shape[2]), pad_value, dtype=np.uint8)
    out[py : py + nh, px : px + nw] = resized
    return out, scale, (px, py)


def unletterbox_boxes(boxes: np.ndarray, scale: float, pad: tuple[float, float], width: int, height: int) -> np.ndarray:
    """Map ``(N, 4)`` xyxy boxes from the letterboxed frame back to original pixels, clipped to the image."""
    out = boxes.astype(np.float32).copy()
    out[:, [0, 2]] = (out[:, [0, 2]] - pad[0]) / scale
    out[:, [1, 3]] = (out[:, [1, 3]] - pad[1]) / scale
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out
