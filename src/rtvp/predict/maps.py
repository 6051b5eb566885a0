"""RVP uncertainty/selection maps of a letterboxed batch -> one map per image in original pixels (Fig. 13 overlays)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from rtvp.predict.predictor import Letterboxed


def maps_to_images(maps: dict[str, list[torch.Tensor]], geo: Letterboxed, imgsz: int) -> list[dict[str, np.ndarray]]:
    """RVP maps per level -> one ``(H, W)`` map per image and kind, in original pixels.

    Levels are upsampled (bilinear) to the letterboxed frame and combined: uncertainty by the mean over levels,
    selection by the maximum (a cell selected at any level shows). The letterbox border is cropped off.

    Args:
        maps: ``{"uncertainty": [(B, 1, H_i, W_i)], "selection": [...]}`` (``RawOutputs.maps``).
        geo: letterbox geometry of the batch.
        imgsz: letterboxed side.
    """
    import cv2

    out: list[dict[str, np.ndarray]] = [{} for _ in range(len(geo.scales))]
    for kind, levels in maps.items():
        if not levels:
            continue
        up = torch.stack([F.interpolate(m.float(), size=(imgsz, imgsz), mode="bilinear", align_corners=False)
                          for m in levels])  # (L, B, 1, S, S)
        full = (up.amax(0) if kind == "selection" else up.mean(0))[:, 0].clamp(0, 1).cpu().numpy()
        for b, (scale, (px, py), (h, w)) in enumerate(zip(geo.scales, geo.pads, geo.sizes, strict=True)):
            nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
            crop = np.ascontiguousarray(full[b, int(py) : int(py) + nh, int(px) : int(px) + nw])
            out[b][kind] = cv2.resize(crop, (int(w), int(h)), interpolation=cv2.INTER_LINEAR)
    return out
