"""Decoupled detection heads (YOLOv8-style box branch with DFL) for the closed-set expert and the open model.

Per level i (strides 8/16/32) and input channels C_i, with C_0 the stride-8 channels:

- box branch: Conv3x3(C_i -> c2) -> Conv3x3(c2 -> c2) -> Conv2d1x1(c2 -> 4 * reg_max), c2 = max(16, C_0 / 4,
  4 * reg_max); final bias 1.0 (uniform DFL start).
- closed-set class branch (``DetectHead``): Conv3x3 -> Conv3x3 -> Conv2d1x1 to nc, width max(C_0, min(nc, 100)),
  bias ``log(5 / nc / (640 / s)^2)`` (a low prior that depends on the stride).
- embedding branch (``TextHead``): Conv3x3 -> Conv3x3 -> Conv2d1x1 to D, width max(C_0, 80); region embedding
  ``e = L2norm(.)``; contrastive logit ``alpha_i * <e, T_k> + beta_i`` with T L2-normalised, alpha = exp(log_alpha)
  initialised to 1 / 0.07 and beta initialised to ``log(0.01 / 0.99)`` so every score starts near a 1 % prior.
  Padded prompts get logit ``MASK_FILL`` (-1e4).
- optional class-agnostic objectness (``objectness=True``, an open-vocabulary lever): a Conv2d1x1 to 1 channel on the
  embedding branch's hidden features, shared by every prompt ("is there a defect here"), trained against the
  assigner's best target score of each anchor. In eval mode the prompt scores become
  ``sqrt(sigmoid(logit) * sigmoid(obj))`` (:func:`fuse_objectness`), so a prompt the classifier is unsure of can
  still be proposed where the model sees a defect; in training the two logits stay separate.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rtvp.models.interaction import MASK_FILL
from rtvp.models.layers import Conv, Conv2d

PRIOR = 0.01


def _branch(c_in: int, hidden: int, c_out: int, bias: float) -> nn.Sequential:
    last = Conv2d(hidden, c_out, 1)
    nn.init.constant_(last.bias, bias)
    return nn.Sequential(Conv(c_in, hidden, 3), Conv(hidden, hidden, 3), last)


def box_width(c0: int, reg_max: int) -> int:
    """Hidden width of the box branch."""
    return max(16, c0 // 4, 4 * reg_max)


def flatten_levels(maps: list[torch.Tensor]) -> torch.Tensor:
    """``[(B, C, H_i, W_i)]`` -> ``(B, sum_i H_i W_i, C)``."""
    return torch.cat([m.flatten(2) for m in maps], 2).transpose(1, 2)


class DetectHead(nn.Module):
    """Closed-set YOLOv8 head with ``nc`` classes (stage-1 expert pre-training, Eq.1).

    Args:
        in_channels: channels per level.
        nc: number of classes.
        reg_max: DFL bins.
        strides: level strides.
    """

    def __init__(
        self, in_channels: tuple[int, ...], nc: int, reg_max: int = 16, strides: tuple[int, ...] = (8, 16, 32)
    ) -> None:
        super().__init__()
        c2, c3 = box_width(in_channels[0], reg_max), max(in_channels[0], min(nc, 100))
        self.box = nn.ModuleList(_branch(c, c2, 4 * reg_max, 1.0) for c in in_channels)
        self.cls = nn.ModuleList(
            _branch(c, c3, nc, math.log(5 / nc / (640 / s) ** 2)) for c, s in zip(in_channels, strides, strict=True)
        )

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-level maps -> box_dist ``(B, A, 4 reg_max)``, logits ``(B, A, nc)``."""
        box = flatten_levels([m(f) for m, f in zip(self.box, feats, strict=True)])
        cls = flatten_levels([m(f) for m, f in zip(self.cls, feats, strict=True)])
        return box, cls


def fuse_objectness(logits: torch.Tensor, objectness: torch.Tensor) -> torch.Tensor:
    """Logits whose sigmoid is ``sqrt(sigmoid(logits) * sigmoid(objectness))``.

    Args:
        logits: ``(B, A, K)`` prompt logits.
        objectness: ``(B, A)`` class-agnostic logits.

    Returns:
        ``(B, A, K)``; computed in log space (``MASK_FILL`` logits stay hugely negative).
    """
    s = 0.5 * (F.logsigmoid(logits.float()) + F.logsigmoid(objectness.float()).unsqueeze(-1))  # log of the fused p
    return (s - torch.log(-torch.expm1(s)).clamp(min=-1e30)).to(logits.dtype)


class TextHead(nn.Module):
    """Open-vocabulary head: DFL box branch + embedding branch + contrastive region-text logits.

    Args:
        in_channels: channels per level.
        embed_dim: D.
        reg_max: DFL bins.
        objectness: add the class-agnostic objectness branch (see the module docstring).
    """

    def __init__(self, in_channels: tuple[int, ...], embed_dim: int, reg_max: int = 16,
                 objectness: bool = False) -> None:
        super().__init__()
        c2, c3 = box_width(in_channels[0], reg_max), max(in_channels[0], 80)
        self.box = nn.ModuleList(_branch(c, c2, 4 * reg_max, 1.0) for c in in_channels)
        self.embed = nn.ModuleList(_branch(c, c3, embed_dim, 0.0) for c in in_channels)
        self.obj = None
        if objectness:
            self.obj = nn.ModuleList(Conv2d(c3, 1, 1) for _ in in_channels)
            for conv in self.obj:
                nn.init.constant_(conv.bias, math.log(PRIOR / (1 - PRIOR)))
        n = len(in_channels)
        self.log_alpha = nn.Parameter(torch.full((n,), math.log(1 / 0.07)))
        self.beta = nn.Parameter(torch.full((n,), math.log(PRIOR / (1 - PRIOR))))

    def forward(
        self, feats: list[torch.Tensor], text: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Predict.

        Args:
            feats: per level (B, C_i, H_i, W_i).
            text: (B, K, D) L2-normalised prompt embeddings.
            mask: (B, K) bool, True = real prompt, or None.

        Returns:
            box_dist ``(B, A, 4 reg_max)``, logits ``(B, A, K)`` (fused with the objectness in eval mode),
            embeddings ``(B, A, D)`` (L2-normalised), objectness logits ``(B, A)`` or None without the branch.
        """
        boxes, logits, embeds, objs = [], [], [], []
        for i, f in enumerate(feats):
            boxes.append(self.box[i](f).flatten(2))
            hidden = self.embed[i][:2](f)
            e = F.normalize(self.embed[i][2](hidden).flatten(2), dim=1)  # (B, D, N)
            embeds.append(e)
            logits.append(self.log_alpha[i].exp() * torch.einsum("bdn,bkd->bnk", e, text) + self.beta[i])
            if self.obj is not None:
                objs.append(self.obj[i](hidden).flatten(1))  # (B, N)
        logit = torch.cat(logits, 1)
        obj = torch.cat(objs, 1) if objs else None
        if obj is not None and not self.training:
            logit = fuse_objectness(logit, obj)
        if mask is not None:
            logit = logit.masked_fill(~mask.unsqueeze(1), MASK_FILL)
        return torch.cat(boxes, 2).transpose(1, 2), logit, torch.cat(embeds, 2).transpose(1, 2), obj

    @torch.no_grad()
    def init_from_classifier(self, cls: nn.ModuleList, prompts: torch.Tensor) -> int:
        """Start the embedding branch as a closed-set class branch (a stage-1 expert's) for the given prompts.

        Per level, with ``c_e`` the class branch's width and ``c3 >= c_e`` this branch's: the class branch's two 3x3
        convs fill the first ``c_e`` channels (the other channels keep their init and get zero weights into those
        ``c_e``), and the final 1x1 conv becomes ``W = T^+ W_c``, ``b = T^+ b_c`` (``T`` the ``(nc, D)`` prompts,
        ``T^+`` its pseudo-inverse), so the raw embedding satisfies ``T e = z``: its dot product with prompt ``k`` is
        the expert's logit ``z_k``. After the L2 normalisation the logit is ``alpha * z_k / |e| + beta``: the class
        ranking at every anchor is the expert's, and stage 2 starts from the expert's detector instead of a random
        classifier (which took ~3 epochs to recover on DeepPCB).

        Args:
            cls: the expert's class branch (``DetectHead.cls``), one ``Sequential(Conv, Conv, Conv2d)`` per level.
            prompts: ``(nc, D)`` L2-normalised prompt embeddings in the order of the expert's logit columns.

        Returns:
            Number of levels initialised (0 when the widths or the level count do not fit).
        """
        if len(cls) != len(self.embed) or any(c[2].out_channels != prompts.shape[0] for c in cls):
            return 0
        if any(c[0].conv.out_channels > e[0].conv.out_channels for c, e in zip(cls, self.embed, strict=True)):
            return 0
        pinv = torch.linalg.pinv(prompts.float())  # (D, nc)
        for src, dst in zip(cls, self.embed, strict=True):
            ce = src[0].conv.out_channels
            _copy_conv_rows(src[0], dst[0], ce)
            _copy_conv_rows(src[1], dst[1], ce)
            dst[1].conv.weight[:ce, ce:].zero_()  # the first c_e outputs see only the copied channels
            last = dst[2]
            last.weight.zero_()
            last.weight[:, :ce] = (pinv @ src[2].weight.flatten(1)).view(-1, ce, 1, 1).to(last.weight.dtype)
            last.bias.copy_(pinv @ src[2].bias.float())
        return len(cls)


def _copy_conv_rows(src: nn.Module, dst: nn.Module, rows: int) -> None:
    """Copy ``src``'s conv weight and BatchNorm into the first ``rows`` output channels of ``dst`` (``Conv`` blocks)."""
    cin = src.conv.weight.shape[1]
    dst.conv.weight[:rows, :cin].copy_(src.conv.weight)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst.bn, name)[:rows].copy_(getattr(src.bn, name))
