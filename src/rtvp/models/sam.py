"""MobileSAM image encoder (TinyViT-5M, stride 16, 256 channels) with SAM's input normalisation and strict loading.

The official ``mobile_sam.pt`` (ChaoningZhang/MobileSAM, Apache-2.0, git blob
``7ef2d090979fd9853adf17b7a99c8b94a1c5a6a7``) is a flat state dict with keys prefixed ``image_encoder.``,
``prompt_encoder.`` and ``mask_decoder.``; only the first group is used. Weights are never downloaded: the user
passes the file.

Freezing: :meth:`MobileSAMEncoder.freeze` turns off gradients, puts BatchNorm in eval mode and keeps the module in
eval mode through later ``.train()`` calls; a frozen encoder's forward runs under ``torch.no_grad()`` (no activation
memory is kept, its output has ``requires_grad=False``).

Cost (5.74 M parameters, batch 1, FLOPs counted by ``torch.utils.flop_counter``: one multiply-add = 2 FLOPs):
2.2 / 8.1 / 29.8 / 77.5 GFLOPs at 160 / 320 / 640 / 1024 px; CPU, 1 thread: about 50 / 170 / 700 ms.

Examples:
    >>> enc = MobileSAMEncoder()
    >>> enc(torch.rand(1, 3, 64, 96)).shape
    torch.Size([1, 256, 4, 6])
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from rtvp.errors import CheckpointError
from rtvp.models.tinyvit import TinyViT

MOBILE_SAM_BLOB_SHA = "7ef2d090979fd9853adf17b7a99c8b94a1c5a6a7"  # git blob id of weights/mobile_sam.pt at HEAD
ENCODER_PREFIX = "image_encoder."
SAM_PREFIXES = (ENCODER_PREFIX, "prompt_encoder.", "mask_decoder.")
CLASSIFIER_PREFIXES = ("head.", "norm_head.")  # TinyViT's unused classifier; may be present or absent
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


class MobileSAMEncoder(TinyViT):
    """MobileSAM's image encoder: (B, 3, H, W) in [0, 1] -> (B, 256, H/16, W/16).

    Parameter names equal the official checkpoint's ``image_encoder.*`` keys without the prefix, so
    ``state_dict()`` round-trips with :func:`load_mobile_sam`. H and W must be multiples of 16 (RTVPNet uses
    multiples of 32). Input normalisation: x * 255, then (x - mean) / std with SAM's RGB mean/std.
    """

    feature_dim = 256

    def __init__(self, drop_path_rate: float = 0.0) -> None:
        super().__init__(drop_path_rate=drop_path_rate)
        self.frozen = False
        mean = torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1) / 255.0
        std = torch.tensor(PIXEL_STD).view(1, 3, 1, 1) / 255.0
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode images.

        Args:
            x: (B, 3, H, W) float RGB in [0, 1], H and W multiples of 16.

        Returns:
            (B, 256, H/16, W/16) features (no gradient when frozen).
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"MobileSAMEncoder expects (B, 3, H, W) RGB input, got shape {tuple(x.shape)}")
        if x.shape[2] % 16 or x.shape[3] % 16:
            raise ValueError(f"MobileSAMEncoder needs H and W divisible by 16 (32 in RTVPNet), got {tuple(x.shape)}")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return super().forward((x - self.pixel_mean) / self.pixel_std)

    def freeze(self) -> MobileSAMEncoder:
        """Stop all gradients and keep BatchNorm (and the whole module) in eval mode, even after ``.train()``."""
        self.frozen = True
        self.requires_grad_(False)
        return self.train(False)

    def unfreeze(self) -> MobileSAMEncoder:
        """Undo :meth:`freeze`: parameters trainable again; the train/eval mode is left to the caller."""
        self.frozen = False
        self.requires_grad_(True)
        return self

    def train(self, mode: bool = True) -> MobileSAMEncoder:
        """Set train/eval mode; a frozen encoder always stays in eval mode (BN statistics untouched)."""
        return super().train(mode and not self.frozen)


def git_blob_sha1(path: str | Path) -> str:
    """``git hash-object`` of a file: sha1 over the header ``blob <size>`` + NUL + content, read in 1 MiB chunks."""
    path = Path(path)
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify_mobile_sam(path: str | Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is byte-identical to the official ``mobile_sam.pt``."""
    sha = git_blob_sha1(path)
    if sha != MOBILE_SAM_BLOB_SHA:
        raise CheckpointError(
            f"{path}: git blob sha {sha} is not the official mobile_sam.pt ({MOBILE_SAM_BLOB_SHA}); "
            "download weights/mobile_sam.pt from github.com/ChaoningZhang/MobileSAM or skip the sha check"
        )


def encoder_state_dict(obj: object, source: str = "<state_dict>") -> dict[str, torch.Tensor]:
    """Extract the image-encoder tensors (prefix stripped) from a loaded MobileSAM/SAM-style object.

    Accepts the official flat SAM state dict (``image_encoder.*`` + other prefixes), the same wrapped in
    ``{"model": ...}`` or ``{"state_dict": ...}``, or a bare encoder state dict (no prefix).

    Args:
        obj: What ``torch.load`` returned.
        source: File name used in error messages.

    Returns:
        Encoder state dict, keys as in :class:`MobileSAMEncoder`.

    Raises:
        CheckpointError: Not a mapping of tensors, or a SAM checkpoint without ``image_encoder.*`` keys.
    """
    if isinstance(obj, Mapping) and len(obj) == 1 and next(iter(obj)) in ("model", "state_dict"):
        obj = next(iter(obj.values()))
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(k, str) for k in obj):
        raise CheckpointError(
            f"{source}: expected a MobileSAM state dict (str -> tensor), got {type(obj).__name__}; "
            "pass the official weights/mobile_sam.pt"
        )
    keys = list(obj)
    if any(k.startswith(ENCODER_PREFIX) for k in keys):
        sd = {k[len(ENCODER_PREFIX) :]: v for k, v in obj.items() if k.startswith(ENCODER_PREFIX)}
    elif any(k.startswith(SAM_PREFIXES) for k in keys):
        raise CheckpointError(f"{source}: SAM checkpoint without any 'image_encoder.*' key (first keys: {keys[:3]})")
    else:
        sd = dict(obj)
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: non-tensor values under {bad[:5]}; not a state dict")
    return sd


def load_encoder_weights(
    encoder: MobileSAMEncoder, sd: Mapping[str, torch.Tensor], source: str = "<state_dict>"
) -> None:
    """Load an encoder state dict strictly; only TinyViT's classifier keys (``head.*``, ``norm_head.*``) may differ.

    Raises:
        CheckpointError: Missing/unexpected keys or shape mismatches, listing up to 8 offending keys.
    """
    own = encoder.state_dict()
    sd = {k: v for k, v in sd.items() if not k.startswith(CLASSIFIER_PREFIXES)}
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in sd and sd[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s), e.g. {missing[:8]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:8]}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es), e.g. {shapes[:8]}")
    if problems:
        raise CheckpointError(
            f"{source}: not a MobileSAM (TinyViT-5M) image encoder: "
            + "; ".join(problems)
            + ". Expected the official mobile_sam.pt (keys 'image_encoder.*')."
        )
    encoder.load_state_dict(sd, strict=True)


def load_mobile_sam(path: str | Path, *, check_sha: bool = False, map_location: str = "cpu") -> MobileSAMEncoder:
    """Build a :class:`MobileSAMEncoder` and load ``mobile_sam.pt`` (or a bare encoder state dict) strictly.

    The module is returned trainable and in train mode; call :meth:`MobileSAMEncoder.freeze` to freeze it.
    The attention-bias cache is keyed on the parameters' version counters, so it never goes stale after loading.

    Args:
        path: Checkpoint file, read with ``torch.load(weights_only=True)``.
        check_sha: Also require the official file's git blob sha (:data:`MOBILE_SAM_BLOB_SHA`).
        map_location: ``torch.load`` map location.

    Returns:
        The loaded encoder.

    Raises:
        CheckpointError: Missing/unreadable file, not a state dict, no encoder keys, key or shape mismatch, sha.

    Examples:
        >>> enc = load_mobile_sam("weights/mobile_sam.pt").freeze()  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: MobileSAM weights not found; pass the path of weights/mobile_sam.pt")
    if check_sha:
        verify_mobile_sam(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: cannot be read as a torch state dict ({type(e).__name__}: {e})"[:500]) from e
    encoder = MobileSAMEncoder()
    load_encoder_weights(encoder, encoder_state_dict(obj, str(path)), str(path))
    return encoder
