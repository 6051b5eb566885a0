"""Procedural defects for the synthetic renderer: a *shape* (where, as an alpha map) and a *paint* (how it looks).

A shape function ``(rng, size, surface) -> alpha`` returns an ``(S, S)`` float32 map in ``[0, 1]`` (hard shapes are
0/1, stains are soft) or ``None`` when it cannot be placed (e.g. no PCB trace long enough). The instance mask is
``alpha >= MASK_THRESHOLD``: the pixels the paint changes by at least that share, so the box is the mask extent.
A paint function ``(surface, alpha, rng, scene) -> None`` blends the defect into ``surface.image`` in place.
Sizes scale with the image side ``S`` so a 128 px render is a downscaled 256 px one; defects are built to be
visible (strong contrast, >= 1-2 px wide), because a small detector must learn them in minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from rtvp.bench.synth_textures import Surface

MASK_THRESHOLD = 0.35
"""Alpha at or above which a pixel belongs to the instance mask."""

ShapeFn = Callable[[np.random.Generator, int, Surface], "np.ndarray | None"]
PaintFn = Callable[[Surface, np.ndarray, np.random.Generator, str], None]


def _line_width(size: int) -> int:
    return max(1, round(size / 128))


def _canvas(size: int) -> np.ndarray:
    return np.zeros((size, size), np.uint8)


def _centre(rng: np.random.Generator, size: int, margin: float) -> np.ndarray:
    return rng.uniform(margin * size, (1 - margin) * size, 2)


def _blob_polygon(rng: np.random.Generator, centre: np.ndarray, radius: float, wobble: float, n: int) -> np.ndarray:
    """Closed irregular polygon: radius modulated by 3 random low harmonics, ``(n, 2)`` int32 points."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    amp = rng.uniform(0, wobble, 3)
    phase = rng.uniform(0, 2 * np.pi, 3)
    r = radius * (1 + sum(a * np.sin(k * t + p) for k, a, p in zip((2, 3, 5), amp, phase, strict=True)))
    pts = centre[None, :] + np.stack([np.cos(t), np.sin(t)], 1) * r[:, None]
    return np.round(pts).astype(np.int32)


def scratch_shape(rng: np.random.Generator, size: int, surface: Surface) -> np.ndarray:
    """Thin smooth curve (quadratic Bezier), 0.25-0.55 S long."""
    c, length, theta = _centre(rng, size, 0.15), rng.uniform(0.25, 0.55) * size, rng.uniform(0, np.pi)
    d = np.array([np.cos(theta), np.sin(theta)]) * length / 2
    bend = np.array([-d[1], d[0]]) * rng.uniform(-0.25, 0.25)
    t = np.linspace(0, 1, 24)[:, None]
    p0, p1, p2 = c - d, c + bend, c + d
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    m = _canvas(size)
    cv2.polylines(m, [np.round(pts).astype(np.int32)], False, 1, _line_width(size))
    return m.astype(np.float32)


def _walk(rng: np.random.Generator, start: np.ndarray, angle: float, length: float, step: float) -> np.ndarray:
    """Random walk with a smoothly drifting heading, ``(n, 2)`` points."""
    n = max(3, int(length / step))
    heading = angle + np.cumsum(rng.normal(0, 0.35, n))
    steps = np.stack([np.cos(heading), np.sin(heading)], 1) * step
    return start[None, :] + np.concatenate([np.zeros((1, 2)), np.cumsum(steps, 0)])


def crack_shape(rng: np.random.Generator, size: int, surface: Surface) -> np.ndarray:
    """Branching random walk: a jagged main crack 0.25-0.5 S long with 1-3 thinner side branches."""
    step = max(2.0, 0.015 * size)
    length, angle = rng.uniform(0.25, 0.5) * size, rng.uniform(0, 2 * np.pi)
    main = _walk(rng, _centre(rng, size, 0.2), angle, length, step)
    main -= (main.mean(0) - _centre(rng, size, 0.3))  # keep the whole crack well inside
    m = _canvas(size)
    width = _line_width(size)
    cv2.polylines(m, [np.round(main).astype(np.int32)], False, 1, width)
    for _ in range(int(rng.integers(1, 4))):
        at = main[int(rng.integers(1, len(main) - 1))]
        side = angle + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
        branch = _walk(rng, at, side, length * rng.uniform(0.25, 0.5), step)
        cv2.polylines(m, [np.round(branch).astype(np.int32)], False, 1, max(1, width - 1))
    return m.astype(np.float32)


def hole_shape(rng: np.random.Generator, size: int, surface: Surface) -> np.ndarray:
    """Disk of radius 0.025-0.05 S (the rim is part of the hole)."""
    c, r = _centre(rng, size, 0.08), rng.uniform(0.025, 0.05) * size
    m = _canvas(size)
    cv2.circle(m, (int(round(c[0])), int(round(c[1]))), max(2, int(round(r))), 1, -1)
    return m.astype(np.float32)


def spot_shape(rng: np.random.Generator, size: int, surface: Surface) -> np.ndarray:
    """Small irregular blob, radius 0.022-0.036 S."""
    m = _canvas(size)
    r = max(2.0, rng.uniform(0.022, 0.036) * size)
    cv2.fillPoly(m, [_blob_polygon(rng, _centre(rng, size, 0.06), r, 0.15, 16)], 1)
    return m.astype(np.float32)


def stain_shape(rng: np.random.Generator, size: int, surface: Surface) -> np.ndarray:
    """Large soft irregular blob, radius 0.08-0.15 S, feathered edge (soft alpha)."""
    m = _canvas(size)
    r = rng.uniform(0.08, 0.15) * size
    cv2.fillPoly(m, [_blob_polygon(rng, _centre(rng, size, 0.18), r, 0.25, 48)], 1)
    soft = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 0.12 * r)
    return np.clip((soft - 0.15) / 0.6, 0.0, 1.0)


def missing_trace_shape(rng: np.random.Generator, size: int, surface: Surface) -> np.ndarray | None:
    """A 0.06-0.1 S gap cut out of one PCB trace (mask = the copper that is missing)."""
    if surface.layer is None:
        return None
    gap = rng.uniform(0.06, 0.1) * size
    long_enough = [s for s in surface.segments if abs(s[2] - s[0]) + abs(s[3] - s[1]) > gap + 0.08 * size]
    if not long_enough:
        return None
    x1, y1, x2, y2, t = long_enough[int(rng.integers(len(long_enough)))]
    seg_len = abs(x2 - x1) + abs(y2 - y1)
    start = rng.uniform(0.04 * size, seg_len - gap - 0.04 * size)
    ux, uy = np.sign(x2 - x1), np.sign(y2 - y1)
    a = np.array([x1 + ux * start, y1 + uy * start])
    b = a + np.array([ux, uy]) * gap
    lo, hi = np.minimum(a, b) - t, np.maximum(a, b) + t
    rect = _canvas(size)
    cv2.rectangle(rect, tuple(int(v) for v in lo), tuple(int(v) for v in hi), 1, -1)
    m = rect & surface.layer
    return m.astype(np.float32) if m.any() else None


def short_shape(rng: np.random.Generator, size: int, surface: Surface) -> np.ndarray:
    """Diagonal copper bridge 0.05-0.09 S long, ~0.012 S wide (PCB traces are axis-aligned)."""
    c, length = _centre(rng, size, 0.1), rng.uniform(0.05, 0.09) * size
    theta = rng.choice([np.pi / 4, 3 * np.pi / 4]) + rng.uniform(-0.25, 0.25)
    d = np.array([np.cos(theta), np.sin(theta)]) * length / 2
    m = _canvas(size)
    p, q = np.round(c - d).astype(int), np.round(c + d).astype(int)
    cv2.line(m, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), 1, max(2, round(0.012 * size)))
    return m.astype(np.float32)


# --------------------------------------------------------------------------------------------- paints
_SCRATCH_COLOR = {"metal": (238, 238, 238), "wood": (240, 212, 170), "pcb": (225, 238, 215), "fabric": (235, 235, 230)}
_SPOT_COLOR = {"metal": (150, 78, 35), "fabric": (25, 22, 20), "pcb": (30, 26, 22), "wood": (45, 30, 20)}
_STAIN_TINT = {"metal": (0.62, 0.58, 0.48), "wood": (0.55, 0.45, 0.38), "fabric": (0.55, 0.55, 0.42),
               "pcb": (0.6, 0.55, 0.4)}


def _roi(alpha: np.ndarray, pad: int = 8) -> tuple[slice, slice]:
    """Slices of the bounding box of ``alpha > 0`` grown by ``pad`` px (paints only touch this window)."""
    x, y, w, h = cv2.boundingRect((alpha > 0).astype(np.uint8))
    return slice(max(0, y - pad), y + h + pad), slice(max(0, x - pad), x + w + pad)


def _blend_color(surface: Surface, alpha: np.ndarray, color: tuple[float, float, float], strength: float) -> None:
    roi = _roi(alpha)
    a = (alpha[roi] * strength)[:, :, None]
    surface.image[roi] = surface.image[roi] * (1 - a) + np.asarray(color, np.float32) * a


def paint_scratch(surface: Surface, alpha: np.ndarray, rng: np.random.Generator, scene: str) -> None:
    """Bright line (polished or exposed material)."""
    _blend_color(surface, alpha, _SCRATCH_COLOR[scene], rng.uniform(0.8, 0.95))


def paint_crack(surface: Surface, alpha: np.ndarray, rng: np.random.Generator, scene: str) -> None:
    """Very dark line (shadowed gap)."""
    roi = _roi(alpha)
    surface.image[roi] *= 1 - alpha[roi][:, :, None] * rng.uniform(0.75, 0.85)


def paint_hole(surface: Surface, alpha: np.ndarray, rng: np.random.Generator, scene: str) -> None:
    """Near-black core with a bright rim (~1/4 radius wide)."""
    roi = _roi(alpha)
    a = alpha[roi]
    m = (a > 0).astype(np.uint8)
    k = max(1, int(round(np.sqrt(m.sum() / np.pi) / 4)))
    core = cv2.erode(m, np.ones((2 * k + 1, 2 * k + 1), np.uint8)).astype(np.float32)
    img = surface.image[roi]
    img += (a - core)[:, :, None] * (0.55 * (250 - img))
    c = (core * 0.95)[:, :, None]
    surface.image[roi] = img * (1 - c) + np.array([14, 12, 12], np.float32) * c


def paint_spot(surface: Surface, alpha: np.ndarray, rng: np.random.Generator, scene: str) -> None:
    """Opaque small blob of a scene-specific colour (rust, oil, burn mark)."""
    _blend_color(surface, alpha, _SPOT_COLOR[scene], rng.uniform(0.85, 0.95))


def paint_stain(surface: Surface, alpha: np.ndarray, rng: np.random.Generator, scene: str) -> None:
    """Soft multiplicative tint (darker, yellow-brown), feathered by the soft alpha."""
    roi = _roi(alpha)
    a = alpha[roi][:, :, None]
    surface.image[roi] *= 1 - a + a * np.asarray(_STAIN_TINT[scene], np.float32)


def paint_missing_trace(surface: Surface, alpha: np.ndarray, rng: np.random.Generator, scene: str) -> None:
    """Restore the bare board where copper is missing."""
    roi = _roi(alpha)
    a = alpha[roi][:, :, None]
    surface.image[roi] = surface.image[roi] * (1 - a) + surface.base[roi] * a


def paint_short(surface: Surface, alpha: np.ndarray, rng: np.random.Generator, scene: str) -> None:
    """Bare copper (orange) bridge."""
    _blend_color(surface, alpha, (220, 125, 60), 0.95)


@dataclass(frozen=True)
class DefectKind:
    """A defect type: how its alpha map is placed and how it is painted."""

    shape: ShapeFn
    paint: PaintFn


DEFECTS: dict[str, DefectKind] = {
    "scratch": DefectKind(scratch_shape, paint_scratch),
    "crack": DefectKind(crack_shape, paint_crack),
    "hole": DefectKind(hole_shape, paint_hole),
    "spot": DefectKind(spot_shape, paint_spot),
    "stain": DefectKind(stain_shape, paint_stain),
    "missing trace": DefectKind(missing_trace_shape, paint_missing_trace),
    "short": DefectKind(short_shape, paint_short),
}
"""Defect name -> kind. Names are the native class names written into the synthetic COCO files."""
