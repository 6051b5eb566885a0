"""Model scales: YOLOv8 depth/width/max-channel multipliers for the expert plus RTVPNet's own widths.

Architecture is code (``expert.py`` ...); a scale is data. The SAM encoder (MobileSAM TinyViT-5M, 5.74 M) and the
text encoder are shared by all scales. Parameters of the full RTVPNet incl. SAM, text encoder excluded (``rtvp info``):
``tiny`` 7.4 M, ``n`` 11.7 M, ``s`` 21.2 M, ``l`` 58.9 M. The expert alone (backbone + PAFPN + an 80-class YOLOv8
head) reproduces YOLOv8's counts exactly: n 3.16 M / 8.7 GFLOPs, s 11.17 M / 28.6 GFLOPs, l 43.69 M at 640 px.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtvp.models.layers import make_divisible
from rtvp.registry import Registry


@dataclass(frozen=True)
class Scale:
    """One model size.

    Attributes:
        name: registry key.
        depth: repeat multiplier of the C2f blocks (``max(round(n * depth), 1)``).
        width: channel multiplier (``make_divisible(min(c, max_channels) * width, 8)``).
        max_channels: channel cap applied before ``width``.
        embed_dim: D, the joint region-text embedding width (text projection, T->V, V->T, head).
        attn_heads: heads of the T->V max-sigmoid attention (head dim ``embed_dim / attn_heads``).
        prompt_channels: cap on the visual-prompt width per level (``min(expert channels, prompt_channels)``);
            bounds the cost of the EDP generator and the RVP layers on the stride-8 map.
    """

    name: str
    depth: float
    width: float
    max_channels: int
    embed_dim: int
    attn_heads: int
    prompt_channels: int

    def ch(self, c: int) -> int:
        """Scaled channel count of a nominal (YOLOv8-L-sized) ``c``."""
        return make_divisible(min(c, self.max_channels) * self.width, 8)

    def n(self, repeats: int) -> int:
        """Scaled number of repeats of a nominal ``repeats``."""
        return max(round(repeats * self.depth), 1)

    @property
    def out_channels(self) -> tuple[int, int, int]:
        """Expert output channels at strides 8/16/32."""
        return self.ch(256), self.ch(512), self.ch(1024)

    @property
    def prompt_dims(self) -> tuple[int, int, int]:
        """Visual-prompt channels per level."""
        return tuple(min(c, self.prompt_channels) for c in self.out_channels)  # type: ignore[return-value]


SCALES: Registry[Scale] = Registry("scale")


def register_scale(scale: Scale) -> Scale:
    """Add ``scale`` to ``SCALES`` under ``scale.name``."""
    return SCALES.register(scale.name)(scale)


#: tests only: expert channels 16/32/64 at strides 8/16/32.
register_scale(Scale("tiny", 0.33, 0.0625, 1024, embed_dim=32, attn_heads=2, prompt_channels=32))
#: CPU default (YOLOv8n expert, 64/128/256).
register_scale(Scale("n", 0.33, 0.25, 1024, embed_dim=256, attn_heads=8, prompt_channels=128))
#: paper's RTVPNet-S expert (YOLOv8s / "C2F-S", 128/256/512).
register_scale(Scale("s", 0.33, 0.50, 1024, embed_dim=256, attn_heads=8, prompt_channels=128))
#: paper's RTVPNet-L expert (YOLOv8l / "C2F-L", 256/512/512).
register_scale(Scale("l", 1.00, 1.00, 512, embed_dim=512, attn_heads=16, prompt_channels=256))


def get_scale(scale: str | Scale) -> Scale:
    """Return the ``Scale`` for a name (error lists valid names) or pass a ``Scale`` through."""
    return scale if isinstance(scale, Scale) else SCALES.get(scale)
