"""Procedural surface textures for the synthetic defect renderer (numpy + OpenCV, whole-image array ops).

Every texture function takes ``(rng, size)`` and returns a ``Surface``: an ``(S, S, 3)`` float32 RGB image in
``[0, 255]`` plus what some defects need to know about the scene (the PCB's trace layout and bare board).
All randomness comes from ``rng`` so an image is a pure function of its seed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

Color = tuple[float, float, float]


@dataclass
class Surface:
    """A rendered background.

    Attributes:
        image: ``(S, S, 3)`` float32 RGB in ``[0, 255]``; defects are painted into it in place.
        base: ``(S, S, 3)`` float32 bare material under any printed layer (PCB board without copper), else None.
        layer: ``(S, S)`` uint8 mask of the printed traces (PCB copper lines, pads excluded), else None.
        segments: PCB trace segments ``(x1, y1, x2, y2, thickness)`` (axis aligned), empty for other scenes.
    """

    image: np.ndarray
    base: np.ndarray | None = None
    layer: np.ndarray | None = None
    segments: list[tuple[int, int, int, int, int]] = field(default_factory=list)


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """``(size, size)`` float32 low-frequency noise, zero mean, std ~1 (bicubic upsampling of a random grid)."""
    grid = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    out = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return (out - out.mean()) / (out.std() + 1e-6)


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only ``(S, S)`` float32 pixel x and y coordinates (cached per size)."""
    xx, yy = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    xx.setflags(write=False)
    yy.setflags(write=False)
    return xx, yy


def _colorize(gray: np.ndarray, color: Color) -> np.ndarray:
    """Scale a ``[0, 1]``-ish intensity map by an RGB colour -> ``(S, S, 3)``."""
    return gray[:, :, None] * np.asarray(color, np.float32)[None, None, :]


def metal(rng: np.random.Generator, size: int) -> Surface:
    """Brushed metal: grey, fine directional streaks (horizontal or vertical), soft illumination gradient."""
    streak = rng.standard_normal((size, size)).astype(np.float32)
    streak = cv2.GaussianBlur(streak, (0, 0), sigmaX=size * 0.12, sigmaY=0.7)
    streak = streak / (streak.std() + 1e-6)
    if rng.random() < 0.5:
        streak = streak.T
    xx, yy = _grid(size)
    angle = rng.uniform(0, 2 * np.pi)
    light = (np.cos(angle) * xx + np.sin(angle) * yy) / size - 0.5
    gray = rng.uniform(125, 165) + 9.0 * streak + rng.uniform(15, 30) * light + 3.0 * smooth_noise(rng, size, 4)
    return Surface(np.repeat(gray[:, :, None], 3, axis=2))


def wood(rng: np.random.Generator, size: int) -> Surface:
    """Wood grain: warped growth rings around a centre outside the image, light/dark brown, fine fibres."""
    xx, yy = _grid(size)
    cx, cy = rng.uniform(-1.0, 2.0) * size, -rng.uniform(0.8, 2.5) * size
    stretch = rng.uniform(1.5, 3.0)
    # the warp stays weaker than the distance gradient, so rings never close into blob-like "eyes" in the image
    r = np.sqrt((xx - cx) ** 2 + ((yy - cy) / stretch) ** 2) + 0.02 * size * smooth_noise(rng, size, 3)
    period = rng.uniform(0.05, 0.09) * size
    rings = (0.5 + 0.5 * np.sin(2 * np.pi * r / period)) ** 3
    fibre = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 0.6, 0.6 * stretch * 3)
    tone = rng.uniform(0.85, 1.1)
    light = np.array([205, 155, 100], np.float32) * tone
    dark = np.array([150, 98, 55], np.float32) * tone
    img = light + (dark - light) * rings[:, :, None]
    return Surface(img + 6.0 * fibre[:, :, None] / (fibre.std() + 1e-6))


_FABRIC_COLORS: list[Color] = [(55, 65, 120), (150, 150, 155), (205, 190, 155), (150, 45, 50), (70, 110, 80)]


def fabric(rng: np.random.Generator, size: int) -> Surface:
    """Plain weave: alternating warp/weft thread bumps on a 2-thread checker, per-thread tone jitter."""
    xx, yy = _grid(size)
    pitch = rng.uniform(0.022, 0.032) * size
    cx, cy = xx / pitch, yy / pitch
    col_j = rng.normal(0, 0.05, int(size / pitch) + 2).astype(np.float32)
    row_j = rng.normal(0, 0.05, int(size / pitch) + 2).astype(np.float32)
    ix, iy = cx.astype(np.int32), cy.astype(np.int32)
    warp = 0.75 + 0.25 * np.cos(np.pi * (2 * (cx % 1) - 1) / 2) * np.cos(np.pi * ((cy % 1) - 0.5)) + col_j[ix]
    weft = 0.75 + 0.25 * np.cos(np.pi * (2 * (cy % 1) - 1) / 2) * np.cos(np.pi * ((cx % 1) - 0.5)) + row_j[iy]
    gray = np.where((ix + iy) % 2 == 0, warp, weft) + 0.03 * smooth_noise(rng, size, 6)
    color = _FABRIC_COLORS[int(rng.integers(len(_FABRIC_COLORS)))]
    return Surface(_colorize(gray, color))


def _trace_path(rng: np.random.Generator, size: int, thick: int) -> list[tuple[int, int, int, int, int]]:
    """A Manhattan polyline of 2-4 axis-aligned segments inside the image margin."""
    lo, hi = int(0.06 * size), int(0.94 * size)
    x, y = (int(v) for v in rng.integers(lo, hi, 2))
    horizontal = bool(rng.random() < 0.5)
    segs = []
    for _ in range(int(rng.integers(2, 5))):
        step = int(rng.integers(int(0.15 * size), int(0.5 * size))) * (1 if rng.random() < 0.5 else -1)
        if horizontal:
            nx, ny = int(np.clip(x + step, lo, hi)), y
        else:
            nx, ny = x, int(np.clip(y + step, lo, hi))
        if (nx, ny) != (x, y):
            segs.append((x, y, nx, ny, thick))
        x, y, horizontal = nx, ny, not horizontal
    return segs


def pcb(rng: np.random.Generator, size: int) -> Surface:
    """PCB-like: green solder-mask board, lighter-green copper traces (Manhattan), gold pads and vias."""
    green = np.array([30, rng.uniform(100, 125), 60], np.float32)
    base = _colorize(1.0 + 0.04 * smooth_noise(rng, size, 8), tuple(green))
    base += rng.normal(0, 2.0, (size, size, 1)).astype(np.float32)
    layer = np.zeros((size, size), np.uint8)
    thick = max(2, round(0.024 * size))
    segments: list[tuple[int, int, int, int, int]] = []
    for _ in range(int(rng.integers(5, 9))):
        segments += _trace_path(rng, size, thick)
    for x1, y1, x2, y2, t in segments:
        cv2.line(layer, (x1, y1), (x2, y2), 1, t)
    pads = np.zeros((size, size), np.uint8)
    pad = max(3, round(0.022 * size))
    for x1, y1, _, _, _ in segments[:: 2]:
        cv2.rectangle(pads, (x1 - pad, y1 - pad), (x1 + pad, y1 + pad), 1, -1)
    for x, y in rng.integers(int(0.05 * size), int(0.95 * size), (int(rng.integers(3, 7)), 2)):
        cv2.circle(pads, (int(x), int(y)), pad, 1, -1)
    img = base.copy()
    trace_color = np.array([70, 175, 90], np.float32)
    img[layer > 0] = trace_color + 0.3 * (base[layer > 0] - green)
    img[pads > 0] = np.array([205, 175, 85], np.float32)
    traces = ((layer > 0) & (pads == 0)).astype(np.uint8)
    return Surface(img, base=base, layer=traces, segments=segments)


TEXTURES: dict[str, Callable[[np.random.Generator, int], Surface]] = {
    "metal": metal, "wood": wood, "fabric": fabric, "pcb": pcb,
}
"""Scene name -> texture function."""
