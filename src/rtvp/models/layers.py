"""Generic YOLOv8-style convolution blocks: ``Conv``, ``Bottleneck``, ``C2f``, ``SPPF`` (written from the math).

Conventions (YOLOv8): ``Conv`` = bias-free Conv2d + BatchNorm2d (eps 1e-3, momentum 0.03) + SiLU, "same" padding.
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.03


_BF16_CONV_FALLBACK = [os.environ.get("RTVP_BF16_CONV_FALLBACK", "0") == "1"]


def set_bf16_conv_fallback(enabled: bool) -> bool:
    """Turn the fp32 fallback of :class:`Conv2d` under CPU bf16 autocast on or off; returns the previous setting.

    Off by default; ``RTVP_BF16_CONV_FALLBACK=1`` in the environment turns it on for a whole run.
    """
    previous, _BF16_CONV_FALLBACK[0] = _BF16_CONV_FALLBACK[0], bool(enabled)
    return previous


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and ``state_dict``) that can train in fp32 where oneDNN's bf16 kernels stall.

    On an AMD EPYC Zen 4 (torch 2.14, oneDNN, 2 threads) the bf16 weight gradient of a strided convolution, or of
    one whose output has at most 100 pixels, took 10-15x longer than in fp32 while another process held a core
    (58 ms vs 5 ms for a 3x3 128->128 conv on 8x128x10x10, a one-off measurement): the kernel waits on its threads,
    and a descheduled thread stalls it. With the fallback on, such a convolution trains in fp32 under bf16 autocast
    (input cast up, output left in fp32 for the next op to cast down): a rtvpnet-n step went from 2.9 s to 1.9 s on
    the shared machine. On a quiet machine the bf16 kernels are fine and the fallback costs 9.6 % of a rtvpnet-n
    step (``benchmarks/results/profile_step/epyc-rtvpnet-n-320``: 1204 vs 1098 ms), so it is off by default: turn
    it on (``RTVP_BF16_CONV_FALLBACK=1``) when training shares the CPU, e.g. with dataloader workers on a small
    machine. Inference is never affected.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H', W')."""
        if (_BF16_CONV_FALLBACK[0] and self.training and torch.is_grad_enabled() and x.device.type == "cpu"
                and torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
                and (self.stride[0] > 1 or self.stride[1] > 1 or self._out_pixels(x) <= 100)):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)

    def _out_pixels(self, x: torch.Tensor) -> int:
        """Output pixels at stride 1."""
        if isinstance(self.padding, str):  # "same" keeps the size
            return x.shape[-2] * x.shape[-1]
        (kh, kw), (ph, pw), (dh, dw) = self.kernel_size, self.padding, self.dilation
        return (x.shape[-2] + 2 * ph - dh * (kh - 1)) * (x.shape[-1] + 2 * pw - dw * (kw - 1))


def make_divisible(x: float, divisor: int = 8) -> int:
    """Smallest multiple of ``divisor`` that is >= ``x`` (YOLOv8's channel rounding)."""
    return int(math.ceil(x / divisor) * divisor)


class Conv(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> SiLU (or identity when ``act=False``).

    Args:
        c_in: input channels.
        c_out: output channels.
        k: square kernel size; padding ``k // 2`` keeps the size at stride 1.
        s: stride.
        act: apply SiLU.
        groups: conv groups.
    """

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, act: bool = True, groups: int = 1) -> None:
        super().__init__()
        self.conv = Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c_in, H, W) -> (B, c_out, H / s, W / s)."""
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two 3x3 ``Conv`` with an optional residual (used only when input and output channels match)."""

    def __init__(self, c_in: int, c_out: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = Conv(c_in, c_out, 3)
        self.cv2 = Conv(c_out, c_out, 3)
        self.add = shortcut and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c_in, H, W) -> (B, c_out, H, W)."""
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP block with two convolutions: split, a chain of ``n`` bottlenecks, concatenate every stage, fuse.

    ``cv1`` (1x1) maps to ``2c`` channels (``c = c_out * e``) split in two halves; each bottleneck consumes the last
    tensor of the list; ``cv2`` (1x1) fuses the ``(2 + n) c`` concatenated channels to ``c_out``.
    """

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = False, e: float = 0.5) -> None:
        super().__init__()
        self.c = int(c_out * e)
        self.cv1 = Conv(c_in, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c_out, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut) for _ in range(n))

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The ``2 + n`` tensors (each ``(B, c, H, W)``) that ``cv2`` fuses."""
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c_in, H, W) -> (B, c_out, H, W)."""
        return self.cv2(torch.cat(self.branches(x), 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): 1x1 to ``c_in/2``, three chained k x k stride-1 max-pools, concat 4, 1x1."""

    def __init__(self, c_in: int, c_out: int, k: int = 5) -> None:
        super().__init__()
        hidden = c_in // 2
        self.cv1 = Conv(c_in, hidden, 1)
        self.cv2 = Conv(hidden * 4, c_out, 1)
        self.pool = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c_in, H, W) -> (B, c_out, H, W)."""
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, 1))
