"""RTVPNet (paper 001 §4): expert + MobileSAM prompts + text interaction + contrastive head.

Forward pass for images I (B, C, H, W) and prompts T (K, Dt) or (B, K, Dt):

1. ``T = L2norm(Linear(Dt -> D)(T))`` (B, K, D).
2. Expert: ``[F_e^3, F_e^4, F_e^5] = neck(backbone(I), T)``; with ``t2v`` the neck's C2f blocks are T-CSP (Eq.10).
3. SAM (when built with a SAM encoder): a 3-channel view of I resized to ``sam_size`` -> MobileSAM -> bilinear to
   the stride-16 grid; EDP (``edp``) or a plain projection turns it into coarse prompts V_c^i (``projection.py``).
   Without SAM and with ``rvp``, the expert's own features are the coarse prompts.
4. RVP (``rvp``): V_r^i = activation/uncertainty/sparse selection of V_c^i (``prompt.py``); otherwise V_r = V_c.
5. Injection: ``F^i = F_e^i + conv1x1(V_r^i)`` (zero-initialised: a fresh model's features equal its expert's).
6. V->T (``v2t``): ``T <- T + gamma * ...`` (Eq.11, gamma = 0 at start), then T is L2-normalised again.
7. Head: DFL boxes + contrastive logits ``alpha <e, T> + beta``.

No loss is computed here: ``RawOutputs`` carries what the loss needs (``aux_box_dist``, ``dp_pairs``).

Parameter groups: ``expert`` = the stage-1 expert weights (backbone + neck without the T->V extras; trained at the
coupling lr), ``sam`` = a trainable SAM encoder, ``other`` = everything else trainable. Copying a stage-1 expert
into the model is :mod:`rtvp.models.transfer`.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from rtvp.models.config import ModelConfig
from rtvp.models.decode import make_anchors
from rtvp.models.expert import STRIDES, Expert, check_input, is_attention_param
from rtvp.models.head import TextHead
from rtvp.models.interaction import VisualTextUpdate, expand_mask
from rtvp.models.layers import Conv2d
from rtvp.models.outputs import RawOutputs
from rtvp.models.projection import SAM_DIM, DomainProjection
from rtvp.models.prompt import RefinedPrompt
from rtvp.models.scales import get_scale
from rtvp.models.segment import MaskHead


def sam_view(images: torch.Tensor) -> torch.Tensor:
    """3-channel view for SAM: 1 channel repeated, 2 -> (c0, c1, c0), 3 as is, > 3 -> the first three."""
    c = images.shape[1]
    return images[:, :3] if c >= 3 else images[:, [i % c for i in range(3)]]


def sam_input_size(height: int, width: int, scale: str, sam_imgsz: int | None) -> tuple[int, int]:
    """SAM input size (multiples of 32, at least 32, aspect kept) for an expert input of ``height x width``.

    ``sam_imgsz`` is the long side; ``None`` means half the input for scale ``n`` (the CPU default) and the input
    size otherwise.
    """
    factor = (0.5 if scale == "n" else 1.0) if sam_imgsz is None else sam_imgsz / max(height, width)
    return tuple(max(32, int(round(s * factor / 32)) * 32) for s in (height, width))  # type: ignore[return-value]


class RTVPNet(nn.Module):
    """The full model. :func:`build_model` builds it from a :class:`~rtvp.models.config.ModelConfig`.

    Args:
        scale: model scale (``n``, ``s``, ``l``, ``tiny``): widths, depths and T->V heads of the expert.
        text_dim: Dt, width of the text encoder's embeddings.
        in_channels: image channels C_in.
        embed_dim: joint embedding width D (``None``: the scale's).
        reg_max: DFL bins per box side.
        sam_encoder: SAM image encoder ((B, 3, H, W) in [0, 1] -> (B, 256, H/16, W/16)), or ``None`` for a model
            without the SAM branch.
        sam_imgsz: long side of SAM's input (``None``: half the input for scale ``n``, the input otherwise).
        edp: expert-assisted domain projection (needs ``sam_encoder``).
        rvp: refined visual prompt.
        t2v: text->visual attention in the neck.
        v2t: visual->text update after the neck.
        activation: RVP activation (``energy``, ``cbam``, ``eca``, ``self_attn``, ``none``).
        patch_size: RVP sparse-selection patch side in input pixels.
        mask_ratio: EDP fraction of SAM-feature blocks zeroed in training.
        mask_block: EDP block side in feature cells.
        objectness: class-agnostic objectness branch in the head (``rtvp.models.head``).
        masks: instance-mask branch on the neck's features (``rtvp.models.segment``, state-dict keys ``seg.*``).
    """

    def __init__(self, scale: str, text_dim: int, *, in_channels: int = 3, embed_dim: int | None = None,
                 reg_max: int = 16, sam_encoder: nn.Module | None = None, sam_imgsz: int | None = None,
                 edp: bool = True, rvp: bool = True, t2v: bool = True, v2t: bool = True, activation: str = "energy",
                 patch_size: int = 32, mask_ratio: float = 0.2, mask_block: int = 2,
                 objectness: bool = False, masks: bool = False, text_proj_freeze: bool = False) -> None:
        super().__init__()
        if edp and sam_encoder is None:
            raise ValueError("edp needs a SAM encoder (pass sam_encoder, or edp=False)")
        spec = get_scale(scale)
        dim, chans = embed_dim or spec.embed_dim, spec.out_channels
        self.scale, self.text_dim, self.in_channels, self.reg_max = scale, text_dim, in_channels, reg_max
        self.embed_dim = dim
        self.sam_imgsz, self.edp, self.t2v = sam_imgsz, edp, t2v
        self.text_proj = nn.Linear(text_dim, dim)
        if text_proj_freeze:  # orthonormal rows (or columns): cosines between texts survive the projection
            nn.init.orthogonal_(self.text_proj.weight)
            nn.init.zeros_(self.text_proj.bias)
            self.text_proj.requires_grad_(False)
        self.expert = Expert(spec, in_channels, dim if t2v else None, spec.attn_heads)
        self.sam = sam_encoder
        has_sam = sam_encoder is not None
        self.projection = DomainProjection(chans, spec.prompt_dims, edp, mask_ratio, mask_block) if has_sam else None
        prompt_dims = spec.prompt_dims if has_sam else chans
        self.prompt = RefinedPrompt(prompt_dims, activation, patch_size, STRIDES, reg_max) if rvp else None
        self.inject = None
        if has_sam or rvp:
            self.inject = nn.ModuleList(Conv2d(cp, ce, 1) for cp, ce in zip(prompt_dims, chans, strict=True))
            for conv in self.inject:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
        self.v2t = VisualTextUpdate(chans, dim) if v2t else None
        self.head = TextHead(chans, dim, reg_max, objectness)
        self.seg = MaskHead(chans) if masks else None
        self._dp_active = True

    @classmethod
    def from_config(cls, cfg: ModelConfig, text_dim: int, sam_encoder: nn.Module | None = None) -> RTVPNet:
        """The model a config describes, with ``sam_encoder`` as its SAM branch.

        The encoder is used as given: loading weights, freezing and warnings are :func:`build_model`'s.
        """
        return cls(cfg.scale, text_dim, in_channels=cfg.in_channels, embed_dim=cfg.dim, reg_max=cfg.reg_max,
                   sam_encoder=sam_encoder if cfg.sam else None, sam_imgsz=cfg.sam_imgsz, edp=cfg.edp, rvp=cfg.rvp,
                   t2v=cfg.t2v, v2t=cfg.v2t, activation=cfg.activation, patch_size=cfg.patch_size,
                   mask_ratio=cfg.mask_ratio, mask_block=cfg.mask_block, objectness=cfg.objectness,
                   masks=cfg.masks, text_proj_freeze=cfg.text_proj_freeze)

    # ------------------------------------------------------------------ state
    @property
    def dp_active(self) -> bool:
        """Whether L_dp pairs are produced in training (False after early termination)."""
        return self._dp_active

    def set_dp_active(self, active: bool) -> None:
        """Toggle L_dp (early termination of the domain-projection objective)."""
        self._dp_active = bool(active)

    def train(self, mode: bool = True) -> RTVPNet:
        """Set train/eval mode; BatchNorm layers whose parameters are all frozen stay in eval mode."""
        super().train(mode)
        if mode:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                    m.eval()
        return self

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters split into ``expert``, ``sam`` and ``other`` (disjoint, frozen ones excluded)."""
        groups: dict[str, list[nn.Parameter]] = {"expert": [], "sam": [], "other": []}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith("expert.") and not is_attention_param(name):
                groups["expert"].append(p)
            elif name.startswith("sam."):
                groups["sam"].append(p)
            else:
                groups["other"].append(p)
        return groups

    # ---------------------------------------------------------------- forward
    def sam_features(self, images: torch.Tensor) -> torch.Tensor:
        """SAM features for ``images`` (B, C, H, W) in [0, 1]: (B, 256, H/16, W/16) on the expert's stride-16 grid.

        Cacheable for un-augmented passes when SAM is frozen (pass them to ``forward(..., sam_features=...)``).
        """
        if self.sam is None:
            raise ValueError("this model has no SAM branch (built without a SAM encoder)")
        h, w = images.shape[2:]
        x = sam_view(images)
        size = self.sam_size(h, w)
        if tuple(x.shape[2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        frozen = not any(p.requires_grad for p in self.sam.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            f = self.sam(x)
        if tuple(f.shape[2:]) != (h // 16, w // 16):
            f = F.interpolate(f, size=(h // 16, w // 16), mode="bilinear", align_corners=False)
        return f

    def sam_size(self, height: int, width: int) -> tuple[int, int]:
        """SAM input size for an expert input of ``height x width`` pixels (see :func:`sam_input_size`)."""
        return sam_input_size(height, width, self.scale, self.sam_imgsz)

    def project_text(self, text: torch.Tensor) -> torch.Tensor:
        """Prompt vectors in the region-embedding space: ``(..., Dt)`` text embeddings -> ``(..., D)``, L2-normalised.

        This is where a class text meets the head's region embeddings (``RawOutputs.embeddings``); an exemplar
        prompt (a pooled region embedding, :mod:`rtvp.predict.exemplars`) lives in the same space and is passed to
        :meth:`forward` with ``projected=True``.
        """
        return F.normalize(self.text_proj(text.to(self.text_proj.weight.dtype)), dim=-1)

    def _text(self, text: torch.Tensor, batch: int, projected: bool = False) -> torch.Tensor:
        if text.ndim == 2:
            text = text.unsqueeze(0).expand(batch, -1, -1)
        width = self.embed_dim if projected else self.text_dim
        if text.ndim != 3 or text.shape[0] != batch or text.shape[2] != width or text.shape[1] < 1:
            what = "projected prompts" if projected else "text"
            raise ValueError(f"{what} must be (K, {width}) or ({batch}, K, {width}) with K >= 1, got "
                             f"{tuple(text.shape)}")
        return F.normalize(text, dim=-1) if projected else self.project_text(text)

    def _prompts(
        self, images: torch.Tensor, feats: list[torch.Tensor], sam_features: torch.Tensor | None
    ) -> tuple[list[torch.Tensor] | None, torch.Tensor | None, list, dict]:
        """Visual prompts per level (None without a prompt path), aux box logits, L_dp pairs and RVP maps."""
        prompts, aux, pairs, maps = None, None, [], {}
        if self.projection is not None:
            f4 = self.sam_features(images) if sam_features is None else sam_features
            with_dp = self.edp and self.training and self._dp_active
            prompts, pairs = self.projection(f4.to(feats[0].dtype), feats, with_dp)
        elif self.prompt is not None:
            prompts = feats
        if self.prompt is not None:
            prompts, aux, maps = self.prompt(prompts)
        return prompts, aux, pairs, maps

    def forward(
        self,
        images: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        sam_features: torch.Tensor | None = None,
        projected: bool = False,
    ) -> RawOutputs:
        """Detect the prompted categories.

        Args:
            images: (B, C_in, H, W) in [0, 1], H and W multiples of 32.
            text: (K, Dt) or (B, K, Dt) prompt embeddings from the text encoder.
            text_mask: (K,) or (B, K) bool, False for padded prompts (their logits are -1e4); None = all real.
            sam_features: optional precomputed ``self.sam_features(images)`` (B, 256, H/16, W/16).
            projected: ``text`` is already in the region-embedding space, (K, D) or (B, K, D) (exemplar prompts,
                :meth:`project_text` of class texts): the text projection is skipped.

        Returns:
            ``RawOutputs``; ``aux_box_dist`` only in training with RVP, ``dp_pairs`` only in training with EDP
            while L_dp is active.
        """
        check_input(images, self.in_channels)
        b = images.shape[0]
        t = self._text(text, b, projected)
        mask = expand_mask(text_mask, b, t.shape[1])
        if mask is not None:
            mask = mask.to(t.device)
        feats = self.expert(images, t, mask) if self.t2v else self.expert(images)
        shapes = [(f.shape[2], f.shape[3]) for f in feats]
        prompts, aux, pairs, maps = self._prompts(images, feats, sam_features)
        if prompts is not None and self.inject is not None:
            feats = [f + conv(p) for f, conv, p in zip(feats, self.inject, prompts, strict=True)]
        if self.v2t is not None:
            t = F.normalize(self.v2t(feats, t), dim=-1)
        box, logits, embeddings, objectness = self.head(feats, t, mask)
        coef, protos = self.seg(feats) if self.seg is not None else (None, None)
        anchors, strides = make_anchors(shapes, STRIDES, images.device)
        return RawOutputs(
            box_dist=box,
            logits=logits,
            anchors=anchors,
            strides=strides,
            embeddings=embeddings,
            text=t,
            objectness=objectness,
            mask_coef=coef,
            protos=protos,
            aux_box_dist=aux,
            dp_pairs=pairs,
            maps=maps,
            feat_shapes=shapes,
            reg_max=self.reg_max,
        )


def build_model(cfg: ModelConfig, text_dim: int, sam_encoder: nn.Module | None = None) -> RTVPNet:
    """Build RTVPNet from its config.

    Args:
        cfg: model configuration.
        text_dim: width Dt of the text encoder's embeddings (e.g. 384 for MiniLM, 512 for CLIP).
        sam_encoder: optional replacement SAM encoder (same contract as ``MobileSAMEncoder``); by default
            ``MobileSAMEncoder`` is built, loaded from ``cfg.sam_weights`` when given, and frozen per
            ``cfg.freeze_sam``.

    Returns:
        The model in training mode.

    Examples:
        >>> model = build_model(ModelConfig(scale="tiny", sam=False, edp=False), text_dim=16)
        >>> model(torch.rand(1, 3, 64, 64), torch.randn(3, 16)).logits.shape
        torch.Size([1, 84, 3])
    """
    if text_dim < 1:
        raise ValueError(f"text_dim must be >= 1, got {text_dim}")
    if sam_encoder is not None and not cfg.sam:
        raise ValueError("a SAM encoder was passed but cfg.sam is false")
    if cfg.sam and sam_encoder is None:
        from rtvp.models.sam import MobileSAMEncoder, load_mobile_sam

        sam_encoder = load_mobile_sam(cfg.sam_weights) if cfg.sam_weights is not None else MobileSAMEncoder()
    if sam_encoder is not None:
        if getattr(sam_encoder, "feature_dim", SAM_DIM) != SAM_DIM:
            raise ValueError(f"the SAM encoder must output {SAM_DIM} channels")
        if cfg.freeze_sam:
            if cfg.sam_weights is None:
                warnings.warn("SAM is frozen without weights: its random features carry no information", stacklevel=2)
            if hasattr(sam_encoder, "freeze"):
                sam_encoder.freeze()
            else:
                sam_encoder.requires_grad_(False)
        elif cfg.sam_weights is None:
            warnings.warn(
                "no sam_weights given: the SAM encoder trains from scratch (slow and data-hungry); pass the official "
                "mobile_sam.pt as model.sam_weights to freeze it instead",
                stacklevel=2,
            )
    return RTVPNet.from_config(cfg, text_dim, sam_encoder).train()
