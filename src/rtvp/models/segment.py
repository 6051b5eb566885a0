"""Instance-mask branch (``model.masks``), in the spirit of YOLOv8-seg / YOLACT: prototypes + per-anchor coefficients.

- prototypes: ``Conv3x3(C_0 -> C_0) -> nearest 2x up -> Conv3x3(C_0 -> C_0) -> Conv1x1(C_0 -> nm)`` on the stride-8
  map P3, so the ``nm`` prototypes live on the stride-4 grid (``H / 4``, ``W / 4``);
- coefficients: per level ``Conv3x3(C_i -> c) -> Conv3x3(c -> c) -> Conv1x1(c -> nm)`` with ``c = max(C_0 / 4, nm)``;
- the mask of the detection at anchor ``a`` is ``sigmoid(sum_j coef[a, j] * proto_j)`` cropped to its box.

The branch reads the neck's features only, so it is shared by every prompt: a detection of an unseen word or of an
exemplar prompt gets a mask as well. ``rtvp.predict.masks`` turns kept detections into masks in original pixels
(PyTorch and exported runners alike); the training loss is ``rtvp.loss.segment``.
"""

from __future__ import annotations

import torch
from torch import nn

from rtvp.models.head import flatten_levels
from rtvp.models.layers import Conv, Conv2d

NUM_PROTOS = 32
PROTO_STRIDE = 4


class MaskHead(nn.Module):
    """Prototype net + per-anchor mask coefficients.

    Args:
        in_channels: channels of P3, P4, P5.
        nm: number of prototypes.

    Examples:
        >>> head = MaskHead((16, 32, 64), nm=8)
        >>> feats = [torch.rand(1, c, 8 // 2**i, 8 // 2**i) for i, c in enumerate((16, 32, 64))]
        >>> coef, protos = head(feats)
        >>> coef.shape, protos.shape
        (torch.Size([1, 84, 8]), torch.Size([1, 8, 16, 16]))
    """

    def __init__(self, in_channels: tuple[int, ...], nm: int = NUM_PROTOS) -> None:
        super().__init__()
        c0 = in_channels[0]
        self.nm = nm
        self.proto = nn.Sequential(Conv(c0, c0, 3), nn.Upsample(scale_factor=2.0, mode="nearest"), Conv(c0, c0, 3),
                                   Conv2d(c0, nm, 1))
        c = max(c0 // 4, nm)
        self.coef = nn.ModuleList(nn.Sequential(Conv(ci, c, 3), Conv(c, c, 3), Conv2d(c, nm, 1)) for ci in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Level maps ``[(B, C_i, H_i, W_i)]`` -> coefficients ``(B, A, nm)``, prototypes ``(B, nm, 2H_0, 2W_0)``."""
        coef = flatten_levels([m(f) for m, f in zip(self.coef, feats, strict=True)])
        return coef, self.proto(feats[0])


def box_cells(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Which cells of an ``h x w`` grid lie in each box (cell ``(x, y)`` when ``x1 <= x + 0.5 < x2``, same for y).

    Args:
        boxes: ``(N, 4)`` xyxy in cell units.
        h: grid rows.
        w: grid columns.

    Returns:
        ``(N, h, w)`` bool.
    """
    xs = torch.arange(w, device=boxes.device, dtype=torch.float32) + 0.5
    ys = torch.arange(h, device=boxes.device, dtype=torch.float32) + 0.5
    x1, y1, x2, y2 = boxes.float().unbind(-1)
    inside_x = (xs >= x1[:, None]) & (xs < x2[:, None])  # (N, W)
    inside_y = (ys >= y1[:, None]) & (ys < y2[:, None])  # (N, H)
    return inside_y[:, :, None] & inside_x[:, None, :]


def mask_logits(coef: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """Mask logits of some anchors of one image.

    Args:
        coef: ``(N, nm)`` coefficients.
        protos: ``(nm, Hp, Wp)`` prototypes of the image.

    Returns:
        ``(N, Hp, Wp)`` logits.
    """
    return (coef.float() @ protos.float().flatten(1)).view(-1, *protos.shape[1:])

