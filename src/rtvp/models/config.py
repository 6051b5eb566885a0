"""``ModelConfig``: the typed switches and sizes of RTVPNet (paper 001 §4). Build it with ``rtvp.config.from_dict``.

Cost levers (GFLOPs from ``rtvp info``: 2 FLOPs per multiply-add; scale ``n`` at 320 px, K = 80 prompts):

- ``sam=False`` drops the MobileSAM branch (no EDP; RVP then refines the expert's own features): 6.2 -> 3.0 GFLOPs.
  With ``edp=rvp=t2v=v2t=False`` as well it is the YOLO-World-like open baseline (2.35 GFLOPs, 3.3 M parameters).
- ``sam_imgsz``: SAM's cost grows ~quadratically with its input side (TinyViT-5M: 2.2 / 8.1 / 29.8 GFLOPs at
  160 / 320 / 640 px, against 8.7 GFLOPs for the whole YOLOv8n expert at 640), while its output is always resized
  to the expert's stride-16 grid. Halving it (the default for ``n``) cuts the SAM cost ~4x at the price of coarser
  SAM features (stride 32 of the input instead of 16), which mostly hurts the visual prompts of the smallest
  defects; the expert still sees the full image.
- ``sam_freeze`` (default: frozen iff official weights are loaded): a frozen SAM runs under ``torch.no_grad`` (no
  activation memory, no backward: about a third of the branch's training cost) and its features may be computed
  once with ``RTVPNet.sam_features`` and passed to ``RTVPNet.forward(..., sam_features=...)`` for un-augmented
  passes (evaluation, several vocabularies on the same images).
- ``t2v``/``v2t`` cost grows linearly with the number of prompts K; ``patch_size``, ``mask_ratio``, ``mask_block``
  and ``activation`` change accuracy, not cost (``self_attn`` adds a little).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rtvp.errors import ConfigError
from rtvp.models.scales import SCALES, get_scale

Activation = Literal["energy", "cbam", "eca", "self_attn", "none"]
ACTIVATIONS: tuple[str, ...] = ("energy", "cbam", "eca", "self_attn", "none")


TRAINING_KEYS = ("dp_eps", "expert_update", "coupling_ratio")
"""Keys that older rtvp versions kept in the model section; they are training settings (``TrainConfig``) now."""


@dataclass(frozen=True)
class TextEncoderSpec:
    """The frozen text encoder: registry name plus what it loads (``model.text_encoder`` in a config).

    The plain string form ``text_encoder: minilm`` still works. A CLIP encoder needs its local weights::

        model: {text_encoder: {name: clip, path: weights/open_clip_vit_b32.bin, arch: ViT-B-32}}
        rtvp train ... --set model.text_encoder.name=clip --set model.text_encoder.path=weights/clip.bin

    Attributes:
        name: name in ``rtvp.models.text.TEXT_ENCODERS``: ``minilm``, ``clip`` or ``hash``.
        path: local weights (clip: an open_clip checkpoint file; minilm: a model folder); nothing is downloaded.
        arch: clip only: the open_clip model name (default ``ViT-B-32``) or an open_clip model-config JSON file.
    """

    name: str = "minilm"
    path: Path | None = None
    arch: str | None = None

    def options(self) -> dict[str, Any]:
        """Keyword options of ``build_text_encoder`` (unset ones left out)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in (("path", self.path), ("arch", self.arch))
                if v is not None}

    def to_meta(self) -> str | dict[str, Any]:
        """Checkpoint form: the name alone, or ``{"name": ..., **options}`` when it has options."""
        opts = self.options()
        return {"name": self.name, **opts} if opts else self.name


@dataclass(frozen=True)
class ModelConfig:
    """RTVPNet configuration. Every component has an on/off switch for the ablations.

    Attributes:
        scale: expert size, a key of ``SCALES`` (``tiny``, ``n``, ``s``, ``l``).
        in_channels: image channels the expert takes (1 grayscale, 3 RGB, more e.g. RGB + polarization).
            SAM always sees a 3-channel view: 1 channel is repeated, 2 channels become (c0, c1, c0), 3 are used as
            they are, and with more than 3 only the first three (by convention the RGB ones) are used.
        embed_dim: joint embedding width D; ``None`` takes the scale's (n/s 256, l 512, tiny 32; YOLO-World uses
            512 with CLIP; 256 is ample for a 384-d MiniLM text space and halves the head and T->V cost).
        reg_max: DFL bins per box side.
        sam: use the MobileSAM branch (False: a pure expert + text model).
        sam_imgsz: long side of SAM's input in pixels (rounded to a multiple of 32, at least 32; aspect kept).
            ``None``: half the input size for scale ``n`` (CPU default), the input size otherwise.
        sam_weights: official ``mobile_sam.pt`` to load (strict), or ``None`` for a randomly initialised encoder.
        sam_freeze: freeze SAM; ``None`` means "frozen iff ``sam_weights`` is given". Training SAM from scratch
            (no weights, not frozen) is allowed with a warning; a frozen random SAM carries no information (warned).
        edp: expert-assisted domain projection (Eq.2-6: masking, expert-conditioned reconstruction, L_dp). Needs sam.
        rvp: refined visual prompt (Eq.7-9: activation, uncertainty, sparse selection, aux box head).
        t2v: text->visual max-sigmoid attention branch in the neck's C2f blocks (Eq.10, T-CSP).
        v2t: visual->text similarity-weighted text update after the neck (Eq.11).
        objectness: class-agnostic objectness shared by all prompts (an open-vocabulary lever, not in the paper;
            off keeps earlier checkpoints loading): see ``rtvp.models.head``.
        text_proj_freeze: keep the text projection (``Dt -> D``) a fixed random semi-orthogonal map instead of
            learning it (an open-vocabulary lever, not in the paper): the region embeddings are then trained into
            the text encoder's own geometry, so a class text never seen in training keeps its cosines to the seen
            ones. Off keeps earlier checkpoints loading.
        masks: instance-mask branch (prototypes + per-anchor coefficients, ``rtvp.models.segment``) on the expert
            and on RTVPNet; instances with a ``segmentation`` train it. Off keeps earlier checkpoints loading.
        activation: RVP activation: SimAM ``energy`` (paper), ``cbam`` (RTVP's spatial-channel one), ``eca``,
            ``self_attn`` or ``none``.
        patch_size: RVP sparse-selection patch side in input pixels (>= 2x2 cells at every level).
        mask_ratio: EDP fraction of SAM-feature blocks zeroed in training (0 disables masking).
        mask_block: EDP block side in feature cells.
        text_encoder: the text encoder: a name in ``rtvp.models.text.TEXT_ENCODERS`` or a ``TextEncoderSpec``
            mapping ``{name, path, arch}`` (recorded for checkpoints; the model only needs ``text_dim`` at build
            time). Always a ``TextEncoderSpec`` once built.
    """

    scale: str = "n"
    in_channels: int = 3
    embed_dim: int | None = None
    reg_max: int = 16
    sam: bool = True
    sam_imgsz: int | None = None
    sam_weights: Path | None = None
    sam_freeze: bool | None = None
    edp: bool = True
    rvp: bool = True
    t2v: bool = True
    v2t: bool = True
    objectness: bool = False
    text_proj_freeze: bool = False
    masks: bool = False
    activation: Activation = "energy"
    patch_size: int = 32
    mask_ratio: float = 0.2
    mask_block: int = 2
    text_encoder: TextEncoderSpec | str = "minilm"

    def __post_init__(self) -> None:
        if isinstance(self.text_encoder, str):  # the plain name form
            object.__setattr__(self, "text_encoder", TextEncoderSpec(self.text_encoder))
        if self.scale not in SCALES:
            raise ConfigError(f"model.scale: unknown scale '{self.scale}'; choose one of {SCALES.names()}")
        checks = [
            (self.in_channels >= 1, "in_channels must be >= 1"),
            (self.embed_dim is None or self.embed_dim >= 8, "embed_dim must be >= 8 (or null for the scale's)"),
            (self.reg_max >= 2, "reg_max must be >= 2"),
            (self.sam_imgsz is None or self.sam_imgsz >= 32, "sam_imgsz must be >= 32 (or null)"),
            (self.activation in ACTIVATIONS, f"activation must be one of {list(ACTIVATIONS)}"),
            (self.patch_size >= 1, "patch_size must be >= 1 pixel"),
            (0.0 <= self.mask_ratio < 1.0, "mask_ratio must be in [0, 1)"),
            (self.mask_block >= 1, "mask_block must be >= 1 cell"),
            (not (self.edp and not self.sam), "edp needs the SAM branch: set sam: true or edp: false"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"model: {msg}")
        if self.embed_dim is not None and self.embed_dim % self.heads:
            raise ConfigError(f"model.embed_dim={self.embed_dim} must be divisible by the scale's {self.heads} heads")

    @property
    def dim(self) -> int:
        """Resolved embedding width D."""
        return self.embed_dim if self.embed_dim is not None else get_scale(self.scale).embed_dim

    @property
    def heads(self) -> int:
        """T->V attention heads of the scale."""
        return get_scale(self.scale).attn_heads

    @property
    def freeze_sam(self) -> bool:
        """Resolved ``sam_freeze``."""
        return self.sam_weights is not None if self.sam_freeze is None else self.sam_freeze
