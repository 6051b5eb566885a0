"""Expert-assisted domain projection (EDP, paper 001 §4.3, Eq.2-6): SAM features -> coarse prompts V_c.

For level i in {3, 4, 5} (strides 8/16/32):

1. Multi-scale SAM features: ``F_s^4`` = SAM output resized to the expert's stride-16 grid (done by the caller),
   ``F_s^3 = deconv2x2_s2(F_s^4)`` (128 channels, to halve the stride-8 cost), ``F_s^5 = conv3x3_s2(F_s^4)``
   (256 channels); both trainable.
2. Masking (Eq.2), training only: the map is tiled into ``block x block``-cell blocks and
   ``round(ratio * n_blocks)`` of them, drawn uniformly per sample, are zeroed: ``F~ = F_s * M``.
3. Conditioning (Eq.3): ``c^i = Linear(GAP(F_e^i))`` (one value per SAM channel; zero-initialised, so it starts as
   plain reconstruction); the generator input is ``F~ * (1 + c^i)`` (FiLM-style channel modulation).
4. Reconstruction (Eq.4): ``V_c^i = G^i(.)``, ``G = conv3x3 -> ReLU -> conv3x3`` to the prompt width.
5. L_dp pairs (Eq.5): ``(phi_s(V_c^i), sg(phi_e(F_e^i)))`` with ``phi_s`` a 1x1 conv to the expert's channels and
   ``phi_e`` the identity: under the stop-gradient a learnable ``phi_e`` would never receive a gradient (it would
   stay a random projection), and outside it the pair could collapse to zero. The loss module takes the mean squared
   difference per level.

Without EDP (``edp=False`` but SAM on) the same pyramid and generator run with no masking, no conditioning and no
L_dp: plain SAM prompts, the ablation's "w/o EDP" row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rtvp.models.layers import Conv2d

SAM_DIM = 256
PYRAMID_DIMS = (SAM_DIM // 2, SAM_DIM, SAM_DIM)


def block_mask(batch: int, height: int, width: int, ratio: float, block: int, device: torch.device) -> torch.Tensor:
    """Random block mask (Eq.2).

    Args:
        batch: B.
        height: H cells.
        width: W cells.
        ratio: fraction of blocks to drop (rounded to a whole number of blocks per sample).
        block: block side in cells (edge blocks may be smaller).
        device: output device.

    Returns:
        ``(B, 1, H, W)`` float mask, 0 on dropped blocks and 1 elsewhere.
    """
    nh, nw = -(-height // block), -(-width // block)
    n = nh * nw
    k = int(round(ratio * n))
    order = torch.rand(batch, n, device=device).argsort(1)
    keep = torch.ones(batch, n, device=device)
    keep.scatter_(1, order[:, :k], 0.0)
    keep = keep.view(batch, 1, nh, nw).repeat_interleave(block, 2).repeat_interleave(block, 3)
    return keep[:, :, :height, :width]


class DomainProjection(nn.Module):
    """SAM pyramid + (EDP) masked, expert-conditioned reconstruction to coarse visual prompts.

    Args:
        expert_channels: C_i of the expert levels.
        prompt_channels: width of V_c^i per level.
        edp: masking + conditioning + L_dp pairs (else plain projection).
        mask_ratio: r of Eq.2.
        mask_block: block side b in cells.
    """

    def __init__(
        self,
        expert_channels: tuple[int, ...],
        prompt_channels: tuple[int, ...],
        edp: bool = True,
        mask_ratio: float = 0.2,
        mask_block: int = 2,
    ) -> None:
        super().__init__()
        self.edp, self.mask_ratio, self.mask_block = edp, mask_ratio, mask_block
        self.up = nn.ConvTranspose2d(SAM_DIM, PYRAMID_DIMS[0], 2, 2)
        self.down = Conv2d(SAM_DIM, PYRAMID_DIMS[2], 3, 2, 1)
        self.gen = nn.ModuleList(
            nn.Sequential(Conv2d(cs, c, 3, 1, 1), nn.ReLU(inplace=True), Conv2d(c, c, 3, 1, 1))
            for cs, c in zip(PYRAMID_DIMS, prompt_channels, strict=True)
        )
        if edp:
            self.film = nn.ModuleList(nn.Linear(c, cs) for c, cs in zip(expert_channels, PYRAMID_DIMS, strict=True))
            for lin in self.film:
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
            self.align = nn.ModuleList(
                Conv2d(cp, ce, 1) for cp, ce in zip(prompt_channels, expert_channels, strict=True)
            )

    def pyramid(self, f4: torch.Tensor, shapes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """``F_s^4`` (B, 256, H4, W4) -> [F_s^3 (128 ch), F_s^4, F_s^5 (256 ch)] on the expert grid ``shapes``."""
        feats = [self.up(f4), f4, self.down(f4)]
        return [
            f if tuple(f.shape[2:]) == tuple(s) else F.interpolate(f, size=s, mode="bilinear", align_corners=False)
            for f, s in zip(feats, shapes, strict=True)
        ]

    def forward(
        self, f4: torch.Tensor, expert_feats: list[torch.Tensor], with_dp: bool = False
    ) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        """Coarse visual prompts.

        Args:
            f4: (B, 256, H/16, W/16) SAM features on the expert's stride-16 grid.
            expert_feats: [F_e^3, F_e^4, F_e^5], (B, C_i, H_i, W_i).
            with_dp: also return the L_dp pairs (EDP only; the caller passes training and not terminated).

        Returns:
            ``[V_c^i]`` (B, prompt_channels_i, H_i, W_i) and ``[(phi_s(V_c^i), F_e^i.detach())]`` (possibly empty).
        """
        shapes = [(f.shape[2], f.shape[3]) for f in expert_feats]
        prompts, pairs = [], []
        for i, fs in enumerate(self.pyramid(f4, shapes)):
            if self.edp:
                if self.training and self.mask_ratio > 0:
                    b, _, h, w = fs.shape
                    fs = fs * block_mask(b, h, w, self.mask_ratio, self.mask_block, fs.device).to(fs.dtype)
                cond = self.film[i](expert_feats[i].mean((2, 3)))
                fs = fs * (1 + cond[:, :, None, None])
            v = self.gen[i](fs)
            prompts.append(v)
            if self.edp and with_dp:
                pairs.append((self.align[i](v), expert_feats[i].detach()))
        return prompts, pairs
