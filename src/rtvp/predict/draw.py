"""Drawing detections and attention maps on images (OpenCV, no torch).

Line width and font scale follow the image size so labels stay readable on large photos and on small defects;
label boxes sit above the box (inside the image when the box touches the top edge). Each class has its own colour.
OpenCV's fonts are ASCII-only, so non-ASCII names (e.g. Chinese prompts) are drawn through ``names=`` overrides
(the CLI passes the canonical English term) or, failing that, as ``class <id>``. Instance masks
(``Detections.mask``) are blended under the boxes in the box colour.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

from rtvp.structures import Detections

FONT = cv2.FONT_HERSHEY_SIMPLEX
MASK_ALPHA = 0.45  # weight of the class colour inside a mask (half of it for faded, non-highlighted detections)


def class_color(index: int) -> tuple[int, int, int]:
    """A distinct, saturated RGB colour per class (golden-ratio hue steps)."""
    hue = (0.07 + index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95 if index % 2 == 0 else 0.75)
    return int(r * 255), int(g * 255), int(b * 255)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, >3)`` uint8 -> contiguous ``(H, W, 3)`` RGB copy."""
    img = image if image.ndim == 3 else image[:, :, None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3]).copy()


def style(height: int, width: int) -> tuple[int, float, int]:
    """``(line thickness, font scale, font thickness)`` for an image of this size."""
    side = (height + width) / 2
    thickness = max(1, round(side / 320))
    font_scale = float(np.clip(side / 900, 0.35, 2.0))
    return thickness, font_scale, max(1, round(font_scale * 1.6))


def _ascii(name: str, index: int) -> str:
    return name if name.isascii() else f"class {index}"


def draw_label(img: np.ndarray, text: str, x1: int, y1: int, y2: int, color: tuple[int, int, int],
               font_scale: float, font_thick: int) -> None:
    """Filled label box with ``text`` above ``(x1, y1)`` (below ``y1`` when there is no room), clipped to the image."""
    (tw, th), base = cv2.getTextSize(text, FONT, font_scale, font_thick)
    h, w = img.shape[:2]
    pad = max(1, th // 4)
    box_h = th + base + 2 * pad
    top = y1 - box_h if y1 - box_h >= 0 else min(max(y1, 0), max(h - box_h, 0))
    left = int(np.clip(x1, 0, max(w - tw - 2 * pad, 0)))
    cv2.rectangle(img, (left, top), (left + tw + 2 * pad, top + box_h), color, -1)
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(img, text, (left + pad, top + pad + th), FONT, font_scale, ink, font_thick, cv2.LINE_AA)


def draw_detections(image: np.ndarray, dets: Detections, highlight: set[int] | None = None,
                    names: Sequence[str] | None = None, show_conf: bool = True, min_side: int = 0) -> np.ndarray:
    """Draw masks (when ``dets.mask`` is set), boxes and ``name conf`` labels.

    Args:
        image: ``(H, W[, C])`` uint8 RGB (grayscale is replicated; extra channels dropped). Not modified.
        dets: detections in the image's pixels; ``dets.mask`` ``(N, H, W)`` bool, if set, is blended in the box colour.
        highlight: detection indices to emphasise (drawn thicker, labelled with ``#index``; the others are thin
            and unlabelled). ``None`` draws every detection the same way.
        names: display name per class (default ``dets.class_names``); must be ASCII to render.
        show_conf: append the confidence to labels.
        min_side: upscale images whose short side is below this (for legible labels on small images such as
            200 px steel strips); 0 keeps the size.

    Returns:
        ``(H', W', 3)`` uint8 RGB copy with the drawing (``H' = H`` unless upscaled by ``min_side``).

    Raises:
        ValueError: ``dets.mask`` is not the image's size.
    """
    img = as_rgb(image)
    h, w = img.shape[:2]
    if dets.mask is not None and dets.mask.shape[1:] != (h, w):
        raise ValueError(f"dets.mask is {dets.mask.shape[1]}x{dets.mask.shape[2]} (H x W) but the image is {h}x{w}; "
                         f"masks must be in the original image's pixels")
    factor = min_side / min(h, w) if min_side and min(h, w) < min_side else 1.0
    if factor > 1.0:
        img = cv2.resize(img, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_LINEAR)
        h, w = img.shape[:2]
    thick, font_scale, font_thick = style(h, w)
    labels = list(names) if names is not None else list(dets.class_names)
    order = np.argsort(dets.confidence, kind="stable")  # low scores first: the best boxes end on top
    if highlight is not None:
        order = np.concatenate([[i for i in order if i not in highlight], [i for i in order if i in highlight]])
    if dets.mask is not None:
        for i in order.astype(int).tolist():
            faded = highlight is not None and i not in highlight
            overlay_mask(img, dets.mask[i], class_color(int(dets.class_id[i])), MASK_ALPHA / (2 if faded else 1))
    for i in order.astype(int).tolist():
        cls = int(dets.class_id[i])
        color = class_color(cls)
        x1, y1, x2, y2 = (int(round(v * factor)) for v in dets.xyxy[i])
        x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)  # tiny boxes stay visible
        faded = highlight is not None and i not in highlight
        width = max(1, thick // 2) if faded else thick * (2 if highlight else 1)
        cv2.rectangle(img, (x1, y1), (x2, y2), color, width)  # crisp edges (no anti-aliasing) on tiny boxes
        if faded:
            continue
        name = _ascii(labels[cls], cls) if cls < len(labels) else f"class {cls}"
        text = (f"#{i} " if highlight is not None else "") + name
        if show_conf:
            text += f" {float(dets.confidence[i]):.2f}"
        draw_label(img, text, x1, y1, y2, color, font_scale, font_thick)
    return img


def overlay_mask(img: np.ndarray, mask: np.ndarray, color: tuple[int, int, int], alpha: float = MASK_ALPHA) -> None:
    """Blend ``color`` into ``img`` where ``mask`` is set, in place: ``(1 - alpha) * pixel + alpha * color``.

    Args:
        img: ``(H', W', 3)`` uint8 RGB, modified.
        mask: ``(H, W)`` bool; resized (nearest neighbour) when ``img`` is an upscaled copy.
        color: RGB.
        alpha: weight of the colour in ``[0, 1]``.
    """
    h, w = img.shape[:2]
    if mask.shape != (h, w):
        mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    if mask.any():
        px = img[mask].astype(np.float32)
        img[mask] = np.round(px * (1.0 - alpha) + np.asarray(color, np.float32) * alpha).astype(np.uint8)


def overlay_heatmap(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, title: str = "") -> np.ndarray:
    """Blend a ``(H, W)`` map in [0, 1] over the image with the JET colour map (paper Fig. 13 style).

    Args:
        image: ``(H, W[, C])`` uint8.
        heat: ``(H', W')`` float in [0, 1] (resized to the image when sizes differ); values are shown absolute,
            not re-normalised, so maps of different images compare.
        alpha: weight of the heat map.
        title: optional caption drawn in the top-left corner.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    img = as_rgb(image)
    h, w = img.shape[:2]
    if heat.shape != (h, w):
        heat = cv2.resize(heat.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    colored = cv2.applyColorMap((np.clip(heat, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    out = cv2.addWeighted(img, 1.0 - alpha, cv2.cvtColor(colored, cv2.COLOR_BGR2RGB), alpha, 0.0)
    if title:
        _, font_scale, font_thick = style(h, w)
        draw_label(out, title, 0, 0, 0, (255, 255, 255), font_scale, font_thick)
    return out


def encode_image(image: np.ndarray, suffix: str = ".png") -> tuple[bytes, str]:
    """RGB ``(H, W, 3)`` uint8 -> encoded bytes; unknown suffixes fall back to PNG. Returns ``(bytes, suffix)``."""
    suffix = suffix.lower() if suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp") else ".png"
    ok, buf = cv2.imencode(suffix, cv2.cvtColor(as_rgb(image), cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV encodes every listed format
        raise RuntimeError(f"OpenCV could not encode a {suffix} image")
    return buf.tobytes(), suffix
