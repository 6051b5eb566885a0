"""The expert E: YOLOv8-style C2f backbone + SPPF + PAFPN neck (strides 8/16/32), and the closed-set detector.

Nominal (scale ``l``) layout, channels scaled by ``Scale.ch`` and repeats by ``Scale.n``:

- backbone: Conv(C_in->64, 3, s2) -> Conv(->128, s2) -> C2f(128, n3, shortcut) -> Conv(->256, s2) -> C2f(256, n6)
  [C3] -> Conv(->512, s2) -> C2f(512, n6) [C4] -> Conv(->1024, s2) -> C2f(1024, n3) -> SPPF(1024) [C5].
- neck (PAFPN, no shortcuts): top-down ``up(C5) ++ C4 -> C2f(512) [N4]``, ``up(N4) ++ C3 -> C2f(256) [P3]``;
  bottom-up ``Conv s2(P3) ++ N4 -> C2f(512) [P4]``, ``Conv s2(P4) ++ C5 -> C2f(1024) [P5]``.

With ``embed_dim`` set, the four neck C2f blocks are T-CSP blocks (``C2fAttn``, Eq.10) that also take the text; their
extra parameters are named ``attn``/``attn_proj``, so a stage-1 expert state dict loads into them unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rtvp.models.decode import make_anchors
from rtvp.models.head import DetectHead
from rtvp.models.interaction import C2fAttn
from rtvp.models.layers import SPPF, C2f, Conv
from rtvp.models.outputs import RawOutputs
from rtvp.models.scales import Scale, get_scale
from rtvp.models.segment import MaskHead

STRIDES = (8, 16, 32)


def is_attention_param(name: str) -> bool:
    """True for the T->V extras of the neck (not part of a stage-1 expert)."""
    return ".attn." in f".{name}" or ".attn_proj." in f".{name}"


def check_input(images: torch.Tensor, in_channels: int) -> None:
    """Raise ``ValueError`` unless ``images`` is ``(B, in_channels, H, W)`` with H, W multiples of 32."""
    if images.ndim != 4 or images.shape[1] != in_channels:
        raise ValueError(f"expected images of shape (B, {in_channels}, H, W), got {tuple(images.shape)}")
    if images.shape[2] % 32 or images.shape[3] % 32:
        raise ValueError(f"image height and width must be multiples of 32 (letterbox/pad), got {tuple(images.shape)}")


class Backbone(nn.Module):
    """C2f backbone + SPPF: (B, C_in, H, W) -> [C3 (s8), C4 (s16), C5 (s32)]."""

    def __init__(self, scale: Scale, in_channels: int) -> None:
        super().__init__()
        ch, n = scale.ch, scale.n
        self.stem = nn.Sequential(Conv(in_channels, ch(64), 3, 2), Conv(ch(64), ch(128), 3, 2))
        self.stage2 = C2f(ch(128), ch(128), n(3), shortcut=True)
        self.stage3 = nn.Sequential(Conv(ch(128), ch(256), 3, 2), C2f(ch(256), ch(256), n(6), shortcut=True))
        self.stage4 = nn.Sequential(Conv(ch(256), ch(512), 3, 2), C2f(ch(512), ch(512), n(6), shortcut=True))
        self.stage5 = nn.Sequential(
            Conv(ch(512), ch(1024), 3, 2), C2f(ch(1024), ch(1024), n(3), shortcut=True), SPPF(ch(1024), ch(1024))
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Images -> three feature maps at strides 8/16/32."""
        c3 = self.stage3(self.stage2(self.stem(x)))
        c4 = self.stage4(c3)
        return [c3, c4, self.stage5(c4)]


class PAFPN(nn.Module):
    """Path-aggregation neck; optional text-guided (T-CSP) C2f blocks.

    Args:
        scale: model scale.
        embed_dim: D for T->V attention, or ``None`` for plain C2f blocks.
        heads: attention heads.
    """

    def __init__(self, scale: Scale, embed_dim: int | None = None, heads: int = 1) -> None:
        super().__init__()
        ch, n = scale.ch, scale.n(3)
        c3, c4, c5 = ch(256), ch(512), ch(1024)

        def block(c_in: int, c_out: int) -> nn.Module:
            return C2f(c_in, c_out, n) if embed_dim is None else C2fAttn(c_in, c_out, n, embed_dim, heads)

        self.top4 = block(c5 + c4, c4)
        self.top3 = block(c4 + c3, c3)
        self.down3 = Conv(c3, c3, 3, 2)
        self.bottom4 = block(c3 + c4, c4)
        self.down4 = Conv(c4, c4, 3, 2)
        self.bottom5 = block(c4 + c5, c5)

    def forward(
        self, feats: list[torch.Tensor], text: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """[C3, C4, C5] (+ text (B, K, D), mask (B, K)) -> [P3, P4, P5]."""
        c3, c4, c5 = feats
        extra = () if text is None else (text, mask)
        n4 = self.top4(torch.cat((F.interpolate(c5, scale_factor=2.0, mode="nearest"), c4), 1), *extra)
        p3 = self.top3(torch.cat((F.interpolate(n4, scale_factor=2.0, mode="nearest"), c3), 1), *extra)
        p4 = self.bottom4(torch.cat((self.down3(p3), n4), 1), *extra)
        p5 = self.bottom5(torch.cat((self.down4(p4), c5), 1), *extra)
        return [p3, p4, p5]


class Expert(nn.Module):
    """Backbone + neck. ``forward(images, text=None, mask=None) -> [P3, P4, P5]``.

    Args:
        scale: scale name or ``Scale``.
        in_channels: image channels.
        embed_dim: enables T-CSP neck blocks (D) when given.
        heads: T->V heads.
    """

    def __init__(
        self, scale: str | Scale = "n", in_channels: int = 3, embed_dim: int | None = None, heads: int = 1
    ) -> None:
        super().__init__()
        self.scale = get_scale(scale)
        self.in_channels = in_channels
        self.backbone = Backbone(self.scale, in_channels)
        self.neck = PAFPN(self.scale, embed_dim, heads)

    @property
    def out_channels(self) -> tuple[int, int, int]:
        """Channels of P3, P4, P5."""
        return self.scale.out_channels

    def forward(
        self, images: torch.Tensor, text: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """(B, C_in, H, W) in [0, 1] -> [(B, C_i, H / s_i, W / s_i)] for s = 8, 16, 32."""
        return self.neck(self.backbone(images), text, mask)


class ExpertDetector(nn.Module):
    """Closed-set detector for stage-1 expert pre-training (Eq.1): expert + plain YOLOv8 head with ``nc`` classes.

    Its ``state_dict`` (keys ``expert.*``, ``head.*``) is what ``RTVPNet.load_expert`` takes.

    Args:
        scale: scale name or ``Scale``.
        in_channels: image channels.
        nc: number of (seen) classes.
        reg_max: DFL bins.
        masks: add the instance-mask branch (``rtvp.models.segment``, state-dict keys ``seg.*``).

    Examples:
        >>> det = ExpertDetector("tiny", in_channels=1, nc=5)
        >>> det(torch.rand(2, 1, 64, 64)).logits.shape
        torch.Size([2, 84, 5])
    """

    def __init__(self, scale: str | Scale = "n", in_channels: int = 3, nc: int = 80, reg_max: int = 16,
                 masks: bool = False) -> None:
        super().__init__()
        if nc < 1:
            raise ValueError(f"nc must be >= 1, got {nc}")
        self.nc, self.reg_max = nc, reg_max
        self.expert = Expert(scale, in_channels)
        self.head = DetectHead(self.expert.out_channels, nc, reg_max, STRIDES)
        self.seg = MaskHead(self.expert.out_channels) if masks else None

    def forward(self, images: torch.Tensor) -> RawOutputs:
        """(B, C_in, H, W) in [0, 1] -> ``RawOutputs`` with logits ``(B, A, nc)``."""
        check_input(images, self.expert.in_channels)
        feats = self.expert(images)
        box, cls = self.head(feats)
        coef, protos = self.seg(feats) if self.seg is not None else (None, None)
        shapes = [(f.shape[2], f.shape[3]) for f in feats]
        anchors, strides = make_anchors(shapes, STRIDES, images.device)
        return RawOutputs(
            box_dist=box, logits=cls, anchors=anchors, strides=strides, feat_shapes=shapes, reg_max=self.reg_max,
            mask_coef=coef, protos=protos,
        )
