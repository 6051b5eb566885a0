"""4-image mosaic: tiles meet at a random centre of a ``2s x 2s`` canvas (a random affine then crops it to ``s``)."""

from __future__ import annotations

import numpy as np

from rtvp.data.transforms import PAD_VALUE, Annotated, clip_filter, concat, shift


def mosaic4(tiles: list[Annotated], size: int, center: tuple[int, int], pad_value: int = PAD_VALUE) -> Annotated:
    """Place 4 tiles (long side <= ``size``) around ``center`` on a ``(2 size, 2 size)`` canvas.

    Tile 0 ends at the centre from the top-left, 1 top-right, 2 bottom-left, 3 bottom-right. Parts of a tile that
    fall off the canvas are cut; its instances are clipped to the tile's visible region and dropped when too small.

    Args:
        tiles: four annotated images with the same channel count.
        size: output side ``s`` (the canvas is ``2s``).
        center: ``(xc, yc)`` meeting point in canvas pixels, each in ``[0, 2s]``.
        pad_value: grey level where no tile lands.

    Returns:
        The annotated ``(2s, 2s, C)`` canvas.
    """
    if len(tiles) != 4:
        raise ValueError(f"mosaic4 needs 4 tiles, got {len(tiles)}")
    s2 = 2 * size
    xc, yc = center
    canvas = np.full((s2, s2, tiles[0].image.shape[2]), pad_value, dtype=np.uint8)
    placed = []
    for i, tile in enumerate(tiles):
        h, w = tile.hw
        left, top = i % 2 == 0, i < 2
        x1a, x2a = (max(xc - w, 0), xc) if left else (xc, min(xc + w, s2))
        y1a, y2a = (max(yc - h, 0), yc) if top else (yc, min(yc + h, s2))
        x1b = w - (x2a - x1a) if left else 0
        y1b = h - (y2a - y1a) if top else 0
        canvas[y1a:y2a, x1a:x2a] = tile.image[y1b : y1b + (y2a - y1a), x1b : x1b + (x2a - x1a)]
        moved = shift(tile, x1a - x1b, y1a - y1b)
        placed.append(clip_filter(moved, (x1a, y1a, x2a, y2a)))
    return concat(placed, canvas)
