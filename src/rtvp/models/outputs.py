"""``RawOutputs``: what ``RTVPNet.forward`` (and the expert detector) returns. No loss is computed in the model.

All per-anchor tensors are flattened over the three scales (strides 8/16/32, row-major per scale, scales
concatenated in that order), so ``A = sum_i H_i * W_i``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass
class RawOutputs:
    """Raw detector outputs for one batch.

    Attributes:
        box_dist: ``(B, A, 4 * reg_max)`` DFL logits of the ltrb distances (in stride units).
        logits: ``(B, A, K)`` class (contrastive region-text) logits, before sigmoid.
        anchors: ``(A, 2)`` anchor centres in input pixels (``(grid + 0.5) * stride``).
        strides: ``(A,)`` stride of each anchor in pixels.
        embeddings: ``(B, A, D)`` L2-normalised region embeddings (``None`` for a closed-set expert head).
        text: ``(B, K, D)`` L2-normalised text embeddings after the visual->text update (``None`` for the expert).
        objectness: ``(B, A)`` class-agnostic objectness logits (``model.objectness``; None without the branch).
        mask_coef: ``(B, A, nm)`` mask coefficients (``model.masks``; None without the mask branch).
        protos: ``(B, nm, H / 4, W / 4)`` mask prototypes (``model.masks``; None without the mask branch).
        aux_box_dist: ``(B, A, 4 * reg_max)`` auxiliary box head of the refined visual prompt (training only).
        dp_pairs: ``[(pred_i, target_i)]`` per scale for the domain-projection loss L_dp; ``target_i`` is already
            detached (stop-gradient). Empty when EDP is off, in eval mode, or after early termination.
        maps: diagnostic maps per scale for visualisation, e.g. ``{"uncertainty": [(B,1,H,W)...],
            "selection": [(B,1,H,W)...]}``.
        feat_shapes: ``[(H_i, W_i)]`` per scale.
        reg_max: number of DFL bins.
    """

    box_dist: torch.Tensor
    logits: torch.Tensor
    anchors: torch.Tensor
    strides: torch.Tensor
    embeddings: torch.Tensor | None = None
    text: torch.Tensor | None = None
    objectness: torch.Tensor | None = None
    mask_coef: torch.Tensor | None = None
    protos: torch.Tensor | None = None
    aux_box_dist: torch.Tensor | None = None
    dp_pairs: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    maps: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    feat_shapes: list[tuple[int, int]] = field(default_factory=list)
    reg_max: int = 16

    def float(self) -> RawOutputs:
        """A copy whose floating tensors are float32 (the loss runs in fp32 after a bf16/fp16 autocast forward)."""

        def f32(t: torch.Tensor | None) -> torch.Tensor | None:
            return t.float() if t is not None and t.is_floating_point() and t.dtype != torch.float32 else t

        return replace(self, box_dist=f32(self.box_dist), logits=f32(self.logits), embeddings=f32(self.embeddings),
                       text=f32(self.text), objectness=f32(self.objectness), mask_coef=f32(self.mask_coef),
                       protos=f32(self.protos), aux_box_dist=f32(self.aux_box_dist),
                       dp_pairs=[(f32(p), f32(t)) for p, t in self.dp_pairs])
