"""Bidirectional text-visual interaction (paper 001 §4.5-4.6, Eq.10-11).

T->V max-sigmoid attention and V->T text update.

T->V (Eq.10), inside the neck's C2f blocks (a "T-CSP" layer): for the last bottleneck output X,
``X_e = BN(conv1x1(X))`` with D channels split into h heads of size d = D/h,
``a_h = max_k <X_e^h, T_k^h> / sqrt(d) + b_h`` (padded prompts excluded from the max),
``X' = BN(conv3x3(X)) * sigmoid(a_h)`` broadcast over each head's channels; X' is an extra branch of the C2f fusion.
The fusion is written as ``cv2.bn(cv2.conv(cat(branches)) + attn_proj(X'))`` with ``attn_proj`` a zero-initialised
1x1 conv. This equals a 1x1 conv over the ``(3 + n) c`` concatenation, keeps the expert's C2f weights under their own
names (stage-1 weights load unchanged), and makes the T-CSP neck start exactly as the pre-trained expert's neck.

V->T (Eq.11), after the neck: per level ``X_e = conv1x1(F)`` (D channels); per prompt k a spatial score
``s_k = softmax_hw(<X_e, T_k> / sqrt(D))`` and a channel score ``g_k = sigmoid(T_k * GAP(X_e))``;
``T_k <- T_k + gamma * mean_levels(g_k * sum_hw s_k X_e)``, gamma learnable, initialised at 0 (identity at start).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rtvp.models.layers import C2f, Conv, Conv2d

MASK_FILL = -1e4  # "minus infinity" that stays finite in fp16/bf16


def expand_mask(mask: torch.Tensor | None, batch: int, k: int) -> torch.Tensor | None:
    """Normalise a prompt mask to ``(B, K)`` bool (True = real prompt) or ``None``.

    Args:
        mask: ``None``, ``(K,)`` or ``(B, K)`` bool.
        batch: B.
        k: K.
    """
    if mask is None:
        return None
    mask = mask.to(torch.bool)
    if mask.shape == (k,):
        return mask.unsqueeze(0).expand(batch, k)
    if mask.shape == (batch, k):
        return mask
    raise ValueError(f"text_mask must have shape ({k},) or ({batch}, {k}), got {tuple(mask.shape)}")


class MaxSigmoidAttn(nn.Module):
    """Text-guided max-sigmoid attention (Eq.10).

    Args:
        c_in: channels of X.
        c_out: channels of the output branch (divisible by ``heads``).
        embed_dim: D (text width).
        heads: h.
    """

    def __init__(self, c_in: int, c_out: int, embed_dim: int, heads: int) -> None:
        super().__init__()
        if embed_dim % heads or c_out % heads:
            raise ValueError(f"embed_dim {embed_dim} and c_out {c_out} must be divisible by heads {heads}")
        self.heads = heads
        self.embed = Conv(c_in, embed_dim, 1, act=False)
        self.proj = Conv(c_in, c_out, 3, act=False)
        self.bias = nn.Parameter(torch.zeros(heads))

    def weights(self, x: torch.Tensor, text: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights ``sigmoid(a)``.

        Args:
            x: (B, c_in, H, W).
            text: (B, K, D).
            mask: (B, K) bool, True = real prompt, or None.

        Returns:
            (B, h, H, W) in (0, 1).
        """
        b, _, h, w = x.shape
        xe = self.embed(x).view(b, self.heads, -1, h, w)
        t = text.view(b, text.shape[1], self.heads, -1)
        sim = torch.einsum("bmchw,bkmc->bmkhw", xe, t)
        if mask is not None:
            sim = sim.masked_fill(~mask[:, None, :, None, None], MASK_FILL)
        a = sim.amax(dim=2) / math.sqrt(xe.shape[2]) + self.bias.view(1, -1, 1, 1)
        return a.sigmoid()

    def forward(self, x: torch.Tensor, text: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, c_in, H, W), (B, K, D) -> (B, c_out, H, W)."""
        b, _, h, w = x.shape
        y = self.proj(x).view(b, self.heads, -1, h, w) * self.weights(x, text, mask).unsqueeze(2)
        return y.view(b, -1, h, w)


class C2fAttn(C2f):
    """C2f with the T->V attention branch (T-CSP). Same names as ``C2f`` for the expert's weights.

    Extra parameters (not in a stage-1 expert): ``attn.*`` and ``attn_proj.*``.
    """

    def __init__(self, c_in: int, c_out: int, n: int, embed_dim: int, heads: int, shortcut: bool = False) -> None:
        super().__init__(c_in, c_out, n, shortcut)
        self.attn = MaxSigmoidAttn(self.c, self.c, embed_dim, heads)
        self.attn_proj = Conv2d(self.c, c_out, 1, bias=False)
        nn.init.zeros_(self.attn_proj.weight)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, text: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, c_in, H, W), text (B, K, D) -> (B, c_out, H, W); without text it is the plain C2f."""
        y = self.branches(x)
        z = self.cv2.conv(torch.cat(y, 1))
        if text is not None:
            z = z + self.attn_proj(self.attn(y[-1], text, mask))
        return self.cv2.act(self.cv2.bn(z))


class VisualTextUpdate(nn.Module):
    """Visual->text similarity-weighted update of the prompt embeddings (Eq.11).

    Args:
        in_channels: channels of each level's feature map.
        embed_dim: D.
    """

    def __init__(self, in_channels: tuple[int, ...], embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.ModuleList(Conv2d(c, embed_dim, 1) for c in in_channels)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, feats: list[torch.Tensor], text: torch.Tensor) -> torch.Tensor:
        """Update the text.

        Args:
            feats: per level (B, C_i, H_i, W_i).
            text: (B, K, D).

        Returns:
            (B, K, D) updated text (unchanged while gamma == 0).
        """
        scale = 1.0 / math.sqrt(text.shape[-1])
        update = torch.zeros_like(text)
        for proj, f in zip(self.proj, feats, strict=True):
            xe = proj(f).flatten(2)  # (B, D, N)
            s = torch.softmax(torch.einsum("bkd,bdn->bkn", text, xe) * scale, dim=-1)
            pooled = torch.einsum("bkn,bdn->bkd", s, xe)
            g = torch.sigmoid(text * xe.mean(-1).unsqueeze(1))
            update = update + g * pooled
        return text + self.gamma * update / len(feats)
