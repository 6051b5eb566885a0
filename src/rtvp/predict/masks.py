"""Detection masks in original pixels from the mask branch's prototypes and coefficients (numpy + OpenCV, no torch).

The mask logits ``coef . protos`` live on the stride-4 grid of the letterboxed input. Inside each detection's box,
every original pixel ``(x, y)`` is sampled (bilinear, ``cv2.remap``) at its letterboxed position
``((x + 0.5) * scale + pad) / 4 - 0.5`` in grid-index units, so the mask goes straight to the original frame with
no full-size upsample, and the work is proportional to the box area. A pixel belongs to the mask when its
probability is above ``threshold`` (0.5 by default: logit > 0) and its centre lies in the box. The PyTorch
predictor and the exported-model runners (ONNX Runtime, OpenVINO) share this function, so their masks agree wherever
their outputs do.
"""

from __future__ import annotations

import cv2
import numpy as np

from rtvp.errors import ConfigError

PROTO_STRIDE = 4
"""Input pixels per prototype cell (``rtvp.models.segment.PROTO_STRIDE``; a test keeps them equal)."""


def check_mask_thr(mask_thr: float) -> float:
    """Validate a mask probability threshold (``--mask-thr``): a number strictly between 0 and 1.

    Raises:
        ConfigError: anything else (the message names ``--mask-thr`` and the default).
    """
    if isinstance(mask_thr, bool) or not isinstance(mask_thr, (int, float, np.number)) or not 0.0 < mask_thr < 1.0:
        raise ConfigError(f"--mask-thr must be a mask probability strictly between 0 and 1 (default 0.5; lower "
                          f"keeps more of thin defects such as cracks); got {mask_thr!r}")
    return float(mask_thr)


def box_pixels(box: np.ndarray, h: int, w: int) -> tuple[int, int, int, int]:
    """Pixel index range ``[x0, x1) x [y0, y1)`` whose centres lie in ``box`` (``x1 <= x + 0.5 < x2``), clipped."""
    x0, y0 = (int(np.clip(np.ceil(v - 0.5), 0, n)) for v, n in ((box[0], w), (box[1], h)))
    x1, y1 = (int(np.clip(np.ceil(v - 0.5), 0, n)) for v, n in ((box[2], w), (box[3], h)))
    return x0, x1, y0, y1


def detection_masks(coef: np.ndarray, protos: np.ndarray, boxes: np.ndarray, scale: float,
                    pad: tuple[float, float], size: tuple[int, int], threshold: float = 0.5) -> np.ndarray:
    """Binary masks of one image's detections in original pixels.

    Args:
        coef: ``(N, nm)`` mask coefficients of the detections.
        protos: ``(nm, Hp, Wp)`` the image's prototypes.
        boxes: ``(N, 4)`` xyxy detection boxes in original pixels.
        scale: letterbox resize ratio (``letterboxed = original * scale + pad``).
        pad: letterbox ``(pad_x, pad_y)``.
        size: original ``(h, w)``.
        threshold: mask probability a pixel must exceed, in ``(0, 1)`` (0.5: logit > 0).

    Returns:
        ``(N, h, w)`` bool.
    """
    h, w = size
    out = np.zeros((len(boxes), h, w), dtype=bool)
    if not len(boxes):
        return out
    threshold = check_mask_thr(threshold)
    cut = float(np.log(threshold / (1.0 - threshold)))  # sigmoid(logit) > threshold  <=>  logit > cut
    nm, hp, wp = protos.shape
    logits = (np.asarray(coef, np.float32) @ np.asarray(protos, np.float32).reshape(nm, -1)).reshape(-1, hp, wp)
    for i, box in enumerate(np.asarray(boxes, np.float32)):
        x0, x1, y0, y1 = box_pixels(box, h, w)
        if x1 <= x0 or y1 <= y0:
            continue
        mx = ((np.arange(x0, x1, dtype=np.float32) + 0.5) * scale + pad[0]) / PROTO_STRIDE - 0.5
        my = ((np.arange(y0, y1, dtype=np.float32) + 0.5) * scale + pad[1]) / PROTO_STRIDE - 0.5
        grid_x, grid_y = (g.astype(np.float32) for g in np.meshgrid(mx, my))
        sampled = cv2.remap(logits[i], grid_x, grid_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[i, y0:y1, x0:x1] = sampled > cut
    return out
