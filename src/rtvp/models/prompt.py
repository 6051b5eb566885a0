"""Refined visual prompt (RVP, paper 001 §4.4, Eq.7-9): activation, uncertainty, patch-wise sparse selection.

Per level, for a coarse prompt V (B, C, H, W):

1. Activation A (Eq.7). ``energy`` (SimAM, no parameters): per sample and channel, mu and the *unbiased* variance
   sigma^2 over the H*W positions; ``e = (V - mu)^2 / (4 (sigma^2 + lambda)) + 0.5``, ``A = V * sigmoid(e)``,
   lambda = 1e-4. Alternatives: ``cbam`` (channel MLP on avg+max pooling, then a 7x7 spatial gate), ``eca``
   (1-D conv over the pooled channel vector), ``self_attn`` (non-local attention with keys/values pooled to at
   most 16x16, used as a sigmoid gate), ``none`` (A = V).
2. Uncertainty (Eq.8): ``U = sigmoid(MLP(A))``, MLP = conv1x1 (C -> max(C/4, 8)) -> SiLU -> conv1x1 (-> 1).
3. Sparse selection (Eq.9): U is tiled into patches of ``p = max(patch_size // stride, 2)`` cells (edge patches may
   be smaller); candidates are the cells with U >= their patch mean. Training: ``S = cand * b`` with
   ``b ~ Bernoulli(U)`` and a straight-through gradient ``dS/dU = cand``; inference: ``S = cand * U`` (the
   expectation, deterministic). ``V_r = A * S``.
4. An auxiliary DFL box branch on V_r (training only) lets the loss pull the selected cells into GT boxes (CIoU).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rtvp.models.head import flatten_levels
from rtvp.models.layers import Conv, Conv2d

SIMAM_LAMBDA = 1e-4


class EnergyActivation(nn.Module):
    """SimAM energy activation (parameter-free), Eq.7."""

    def __init__(self, lam: float = SIMAM_LAMBDA) -> None:
        super().__init__()
        self.lam = lam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        n = x.shape[2] * x.shape[3]
        d = (x - x.mean((2, 3), keepdim=True)).pow(2)
        var = d.sum((2, 3), keepdim=True) / max(n - 1, 1)
        return x * torch.sigmoid(d / (4 * (var + self.lam)) + 0.5)


class CBAM(nn.Module):
    """Channel (shared MLP over avg- and max-pooled vectors) then spatial (7x7 conv over [mean, max]) gating."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), Conv2d(hidden, channels, 1))
        self.spatial = Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        x = x * torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True)))
        s = torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), 1)
        return x * torch.sigmoid(self.spatial(s))


class ECA(nn.Module):
    """Efficient channel attention: 1-D conv (adaptive odd kernel) over the pooled channel vector."""

    def __init__(self, channels: int, gamma: int = 2, b: int = 1) -> None:
        super().__init__()
        t = int(abs((math.log2(channels) + b) / gamma))
        k = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        w = self.conv(x.mean((2, 3)).unsqueeze(1)).squeeze(1)
        return x * torch.sigmoid(w)[:, :, None, None]


class SelfAttnActivation(nn.Module):
    """Spatial self-attention gate: queries at every cell, keys/values from the map pooled to <= ``pool`` x ``pool``."""

    def __init__(self, channels: int, pool: int = 16) -> None:
        super().__init__()
        self.dim, self.pool = max(channels // 4, 8), pool
        self.q = Conv2d(channels, self.dim, 1)
        self.kv = Conv2d(channels, self.dim + channels, 1)
        self.out = Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        q = self.q(x).flatten(2).transpose(1, 2)  # (B, HW, d)
        pooled = F.adaptive_avg_pool2d(x, (min(h, self.pool), min(w, self.pool)))
        k, v = self.kv(pooled).flatten(2).transpose(1, 2).split((self.dim, c), -1)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, c, h, w)
        return x * torch.sigmoid(self.out(y))


def build_activation(name: str, channels: int) -> nn.Module:
    """RVP activation by name (``energy``, ``cbam``, ``eca``, ``self_attn``, ``none``)."""
    table = {
        "energy": EnergyActivation,
        "cbam": lambda: CBAM(channels),
        "eca": lambda: ECA(channels),
        "self_attn": lambda: SelfAttnActivation(channels),
        "none": nn.Identity,
    }
    if name not in table:
        raise ValueError(f"unknown activation '{name}'; choose one of {sorted(table)}")
    return table[name]()


def patch_cells(patch_size: int, stride: int) -> int:
    """Patch side in cells at a level: ``max(patch_size // stride, 2)``."""
    return max(patch_size // stride, 2)


def sparse_select(u: torch.Tensor, cells: int, sample: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Patch-wise sparse selection (Eq.9).

    Args:
        u: (B, 1, H, W) uncertainty in [0, 1].
        cells: patch side in cells.
        sample: True -> Bernoulli sample with straight-through gradient; False -> expectation ``cand * u``.

    Returns:
        ``S`` (B, 1, H, W) and the candidate mask (B, 1, H, W) (1 where u >= its patch mean).
    """
    h, w = u.shape[2:]
    ud = u.detach()
    mean = F.avg_pool2d(ud, cells, cells, ceil_mode=True)  # edge patches: mean over their valid cells
    mean = F.interpolate(mean, scale_factor=float(cells), mode="nearest")[:, :, :h, :w]
    cand = (ud >= mean).to(u.dtype)
    if sample:
        return cand * (torch.bernoulli(ud) + u - ud), cand
    return cand * u, cand


class RefinedPrompt(nn.Module):
    """RVP over the three levels, with the auxiliary box branch.

    Args:
        channels: prompt channels per level.
        activation: activation name.
        patch_size: patch side in input pixels.
        strides: level strides.
        reg_max: DFL bins of the aux box branch.
    """

    def __init__(
        self,
        channels: tuple[int, ...],
        activation: str = "energy",
        patch_size: int = 32,
        strides: tuple[int, ...] = (8, 16, 32),
        reg_max: int = 16,
    ) -> None:
        super().__init__()
        self.cells = [patch_cells(patch_size, s) for s in strides]
        self.act = nn.ModuleList(build_activation(activation, c) for c in channels)
        self.mlp = nn.ModuleList(
            nn.Sequential(Conv2d(c, max(c // 4, 8), 1), nn.SiLU(), Conv2d(max(c // 4, 8), 1, 1)) for c in channels
        )
        hidden = max(16, 4 * reg_max)
        self.aux = nn.ModuleList(nn.Sequential(Conv(c, hidden, 3), Conv2d(hidden, 4 * reg_max, 1)) for c in channels)
        for branch in self.aux:
            nn.init.constant_(branch[-1].bias, 1.0)

    def forward(
        self, prompts: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], torch.Tensor | None, dict[str, list[torch.Tensor]]]:
        """Refine.

        Args:
            prompts: ``[V_c^i]`` (B, C_i, H_i, W_i).

        Returns:
            ``[V_r^i]``, aux box logits ``(B, A, 4 reg_max)`` (training only, else None), and maps
            ``{"uncertainty": [U^i], "selection": [S^i]}`` each (B, 1, H_i, W_i).
        """
        refined, us, ss = [], [], []
        for i, v in enumerate(prompts):
            a = self.act[i](v)
            u = torch.sigmoid(self.mlp[i](a))
            s, _ = sparse_select(u, self.cells[i], sample=self.training)
            refined.append(a * s)
            us.append(u)
            ss.append(s)
        aux = flatten_levels([m(v) for m, v in zip(self.aux, refined, strict=True)]) if self.training else None
        return refined, aux, {"uncertainty": us, "selection": ss}
