"""Rebuild a detector from a checkpoint and bind a vocabulary to it, without any training code.

Shared by the predictor, the benchmark inference (``rtvp val --weights``), the ONNX export and the service:

- :func:`model_from_checkpoint` turns a checkpoint dict (see ``rtvp.checkpoint``) into an eval-mode
  ``RTVPNet`` or closed-set ``ExpertDetector`` plus its :class:`ModelMeta`;
- :func:`bind_prompts` resolves prompts (``rtvp.vocabulary``) and turns them into the model's inputs: text
  embeddings for RTVPNet, class-index groups for a closed-set expert;
- :class:`PromptedModel` holds those inputs, so ``PromptedModel(images) -> RawOutputs`` with logits over the prompts
  (the form the predictor runs and the ONNX export traces).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rtvp.checkpoint import CHECKPOINT_FORMAT, load_checkpoint
from rtvp.config import from_dict
from rtvp.errors import CheckpointError, ConfigError
from rtvp.models.config import TRAINING_KEYS, ModelConfig
from rtvp.models.detector import RTVPNet
from rtvp.models.expert import ExpertDetector
from rtvp.models.fuse import fuse_conv_bn
from rtvp.models.outputs import RawOutputs
from rtvp.vocabulary import MAX_PROMPT_CHARS, Resolved, Vocabulary, normalize

ARCHS = ("rtvpnet", "expert")
DEFAULT_IMGSZ = 640


@dataclass
class ModelMeta:
    """What a checkpoint says about its model, beyond the weights.

    Attributes:
        arch: ``"rtvpnet"`` (open vocabulary) or ``"expert"`` (closed-set).
        vocabulary: class texts in category order (the expert's classes; RTVPNet's training classes).
        categories: COCO category dicts of the training benchmark (may be empty).
        text_encoder: text-encoder registry name (``None`` for an expert).
        text_encoder_options: keyword options rebuilding the same encoder.
        text_dim: Dt, width of the text embeddings (``None`` for an expert).
        text_embeddings: ``(C, Dt)`` embeddings of ``vocabulary`` stored at training time, or ``None``.
        imgsz: training image size (the default inference size).
        in_channels: image channels the model takes.
        weights: which weights were loaded: ``"ema"`` or ``"model"``.
        version: rtvp version that wrote the checkpoint.
        source: the checkpoint path (or ``"<dict>"``).
    """

    arch: str
    vocabulary: list[str]
    categories: list[dict[str, Any]] = field(default_factory=list)
    text_encoder: str | None = None
    text_encoder_options: dict[str, Any] = field(default_factory=dict)
    text_dim: int | None = None
    text_embeddings: torch.Tensor | None = None
    imgsz: int = DEFAULT_IMGSZ
    in_channels: int = 3
    weights: str = "model"
    version: str = ""
    source: str = "<dict>"


def _arch(ckpt: Mapping[str, Any], state: Mapping[str, torch.Tensor], where: str) -> str:
    arch = ckpt.get("arch", ckpt.get("kind"))
    if arch is None:  # older/foreign writers: infer from the weights
        arch = "rtvpnet" if "text_proj.weight" in state else "expert"
    if arch not in ARCHS:
        raise CheckpointError(f"{where}: checkpoint architecture '{arch}' cannot be served; expected one of "
                              f"{list(ARCHS)} (a checkpoint written by `rtvp train`)")
    return str(arch)


def _vocabulary(ckpt: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    cats = [dict(c) for c in ckpt.get("categories") or []]
    vocab = [str(t) for t in ckpt.get("vocabulary") or []]
    if not vocab and cats:
        vocab = [str(c.get("text") or c.get("name")) for c in cats]
    return vocab, cats


def _expert_classes(vocab: list[str], cats: list[dict[str, Any]], nc: int,
                    where: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The expert's ``nc`` class texts (and categories).

    The vocabulary when its length is ``nc``; else the seen categories (a stage-1 expert of the open protocol is
    trained on those); else the vocabulary cut or padded with ``class<i>`` names (warned).
    """
    if len(vocab) == nc:
        return vocab, cats
    seen = [c for c in cats if c.get("split", "seen") == "seen"]
    if len(seen) == nc:
        return [str(c.get("text") or c.get("name")) for c in seen], seen
    warnings.warn(f"{where}: expert has {nc} classes but the checkpoint lists {len(vocab)} class texts; "
                  "extra classes are named class<i>", stacklevel=3)
    names = vocab[:nc] + [f"class{i}" for i in range(len(vocab), nc)]
    return names, cats[:nc] if len(cats) >= nc else []


def _encoder_spec(ckpt: Mapping[str, Any], model_cfg: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    spec = ckpt.get("text_encoder") or model_cfg.get("text_encoder") or "minilm"
    options = dict(ckpt.get("text_encoder_options") or {})
    if isinstance(spec, Mapping):  # {"name": ..., **options}
        options = {**{k: v for k, v in spec.items() if k != "name"}, **options}
        spec = spec.get("name", "minilm")
    return str(spec), options


def _imgsz(ckpt: Mapping[str, Any]) -> int:
    train = ckpt.get("train_config") or {}
    return int(ckpt.get("imgsz") or (train.get("imgsz") if isinstance(train, Mapping) else None) or DEFAULT_IMGSZ)


def _build_expert(cfg: Mapping[str, Any], state: Mapping[str, torch.Tensor], vocab: list[str],
                  where: str) -> ExpertDetector:
    cls_key = "head.cls.0.2.weight"
    nc = int(cfg.get("nc") or (state[cls_key].shape[0] if cls_key in state else len(vocab)))
    if nc < 1:
        raise CheckpointError(f"{where}: cannot tell the expert's class count (no vocabulary, no '{cls_key}')")
    try:
        return ExpertDetector(cfg.get("scale", "n"), int(cfg.get("in_channels", 3)), nc, int(cfg.get("reg_max", 16)),
                              masks=bool(cfg.get("masks", False)))
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{where}: bad expert model_config {dict(cfg)}: {e}") from None


def _build_rtvpnet(cfg_dict: Mapping[str, Any], ckpt: Mapping[str, Any], state: Mapping[str, torch.Tensor],
                   where: str) -> RTVPNet:
    keys = {k: v for k, v in cfg_dict.items() if k != "nc" and k not in TRAINING_KEYS}  # older checkpoints
    try:
        cfg = from_dict(ModelConfig, keys, where="model_config")
    except ConfigError as e:
        raise CheckpointError(f"{where}: {e} (checkpoint from another rtvp version?)") from None
    cfg = replace(cfg, sam_weights=None)  # SAM's weights travel in the state dict; the .pt path may not exist here
    text_dim = ckpt.get("text_dim") or (state["text_proj.weight"].shape[1] if "text_proj.weight" in state else None)
    if not text_dim:
        raise CheckpointError(f"{where}: no 'text_dim' and no 'text_proj.weight'; cannot size the text projection")
    sam = None
    if cfg.sam:
        from rtvp.models.sam import MobileSAMEncoder

        sam = MobileSAMEncoder()
    return RTVPNet.from_config(cfg, int(text_dim), sam)


def model_from_checkpoint(
    ckpt: Mapping[str, Any], device: str | torch.device = "cpu", use_ema: bool = True, source: str = "<dict>",
    fuse: bool = False,
) -> tuple[nn.Module, ModelMeta]:
    """Rebuild the model a checkpoint describes (eval mode, on ``device``).

    Args:
        ckpt: checkpoint dict (``rtvp.checkpoint.load_checkpoint``): ``model_config``, ``model`` and,
            when present, ``arch``, ``ema``, ``vocabulary``, ``categories``, ``text_encoder``, ``text_dim``,
            ``text_embeddings``, ``train_config.imgsz``.
        device: target device.
        use_ema: load the EMA weights when the checkpoint has them (what the trainer evaluated).
        source: name used in error messages.
        fuse: fold BatchNorm into the convolutions (:func:`rtvp.models.fuse.fuse_conv_bn`): faster inference,
            same outputs up to float rounding; the model is then for inference only.

    Returns:
        ``(model, meta)``.

    Raises:
        CheckpointError: missing keys, unknown architecture, a config this version does not know, or weights that
            do not fit the rebuilt model.
    """
    for key in ("model_config", "model"):
        if not isinstance(ckpt.get(key), Mapping):
            raise CheckpointError(f"{source}: not an rtvp checkpoint (no '{key}' mapping)")
    if ckpt.get("format", CHECKPOINT_FORMAT) != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{source}: checkpoint format {ckpt['format']} (rtvp {ckpt.get('version')}) is not "
                              f"supported; this rtvp reads format {CHECKPOINT_FORMAT}")
    use = "ema" if use_ema and isinstance(ckpt.get("ema"), Mapping) and ckpt["ema"] else "model"
    state, cfg = ckpt[use], dict(ckpt["model_config"])
    arch = _arch(ckpt, state, source)
    vocab, cats = _vocabulary(ckpt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # build-time warnings about untrained SAM do not apply to loaded weights
        model = _build_expert(cfg, state, vocab, source) if arch == "expert" else _build_rtvpnet(cfg, ckpt, state,
                                                                                                  source)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines()[1:4]]
        raise CheckpointError(f"{source}: weights do not fit the model its config describes ({'; '.join(lines)})"
                              "; the checkpoint is damaged or from an incompatible rtvp version") from None
    model.to(device).eval()
    if fuse:
        fuse_conv_bn(model)
    if arch == "expert":
        vocab, cats = _expert_classes(vocab, cats, model.nc, source)
        enc, opts, text_dim, emb = None, {}, None, None
    else:
        enc, opts = _encoder_spec(ckpt, cfg)
        text_dim, emb = model.text_dim, ckpt.get("text_embeddings")
        if emb is not None and (emb.ndim != 2 or emb.shape != (len(vocab), text_dim)):
            emb = None  # inconsistent table: re-encode instead of trusting it
    in_ch = model.expert.in_channels
    meta = ModelMeta(arch, vocab, cats, enc, opts, text_dim, None if emb is None else emb.float().cpu(),
                     _imgsz(ckpt), in_ch, use, str(ckpt.get("version", "")), source)
    return model, meta


def load_model(weights: str | Path | Mapping[str, Any], device: str | torch.device = "cpu",
               use_ema: bool = True, fuse: bool = False) -> tuple[nn.Module, ModelMeta]:
    """:func:`model_from_checkpoint` from a path (loaded safely with ``load_checkpoint``) or a dict."""
    if isinstance(weights, Mapping):
        return model_from_checkpoint(weights, device, use_ema, fuse=fuse)
    return model_from_checkpoint(load_checkpoint(weights), device, use_ema, source=str(weights), fuse=fuse)


def build_encoder(meta: ModelMeta, device: str = "cpu") -> Any:
    """The text encoder the checkpoint was trained with (``TextEncoder``), checked against ``text_dim``."""
    from rtvp.models.text import build_text_encoder

    if meta.text_encoder is None:
        raise ConfigError("this closed-set expert checkpoint has no text encoder")
    options = dict(meta.text_encoder_options)
    if meta.text_encoder == "hash" and "dim" not in options and meta.text_dim:
        options["dim"] = meta.text_dim
    encoder = build_text_encoder(meta.text_encoder, device=device, **options)
    if encoder.dim != meta.text_dim:
        raise CheckpointError(f"{meta.source}: text encoder '{meta.text_encoder}' gives {encoder.dim}-d embeddings "
                              f"but the model was trained with {meta.text_dim}-d ones")
    return encoder


# --------------------------------------------------------------------------------------------- vocabulary binding
def _class_keys(meta: ModelMeta, vocab: Vocabulary) -> list[set[str]]:
    """Normalised names under which each expert class can be asked for (text, name, defect, aliases, canonical)."""
    out = []
    for i, text in enumerate(meta.vocabulary):
        cat = meta.categories[i] if i < len(meta.categories) else {}
        names = [text, *(str(cat[k]) for k in ("name", "text", "defect") if cat.get(k)), *cat.get("aliases", [])]
        keys = {normalize(n) for n in names}
        for n in names:
            if n.strip() and len(n) <= MAX_PROMPT_CHARS and (canonical := vocab.resolve(n).canonical):
                keys.add(normalize(canonical))
        out.append(keys)
    return out


def expert_groups(meta: ModelMeta, resolved: Sequence[Resolved], vocab: Vocabulary | None = None) -> list[list[int]]:
    """For a closed-set expert: the class indices each prompt selects (its text, name, defect word or alias).

    Raises:
        ConfigError: a prompt names no class of the checkpoint (the message lists them).
    """
    vocab = vocab or Vocabulary.default()
    keys = _class_keys(meta, vocab)
    groups = []
    for r in resolved:
        want = {normalize(r.prompt), normalize(r.text)} | ({normalize(r.canonical)} if r.canonical else set())
        idx = [i for i, k in enumerate(keys) if want & k]
        if not idx:
            shown = f"'{r.prompt}'" + (f" (-> '{r.text}')" if r.text != r.prompt else "")
            raise ConfigError(f"prompt {shown} is not a class of this closed-set expert checkpoint; its classes are "
                              f"{meta.vocabulary}. Use one of them, or an rtvpnet checkpoint for free-text prompts")
        groups.append(idx)
    return groups


def text_table(meta: ModelMeta, texts: Sequence[str], encoder: Callable[[], Any]) -> torch.Tensor:
    """``(K, Dt)`` embeddings of ``texts``: the checkpoint's stored rows for its own class texts, else encoded.

    Args:
        meta: checkpoint metadata.
        texts: prompt texts to embed.
        encoder: returns the text encoder (called only when some text is not stored).
    """
    stored = {}
    if meta.text_embeddings is not None:
        stored = {t: meta.text_embeddings[i] for i, t in enumerate(meta.vocabulary)}
    missing = [t for t in texts if t not in stored]
    if missing:
        stored.update(zip(missing, encoder().encode(missing), strict=True))
    return torch.stack([stored[t].float() for t in texts])


def bind_prompts(model: nn.Module, meta: ModelMeta, prompts: Sequence[str] | None, encoder: Callable[[], Any],
                 resolve: bool = True) -> tuple[PromptedModel, list[Resolved]]:
    """Resolve ``prompts`` (``None``: the checkpoint vocabulary) and wrap ``model`` for them.

    Args:
        model: the detector (its train/eval mode is kept).
        meta: its checkpoint metadata.
        prompts: prompts as typed, or ``None``.
        encoder: returns the text encoder (called only for texts the checkpoint does not store).
        resolve: map prompts through the controlled vocabulary (off for benchmark class texts, used verbatim).

    Returns:
        ``(prompted model, resolutions)``; the prompted model's logits follow the prompt order.

    Raises:
        ConfigError: empty or over-long prompts, or (expert) prompts outside its classes.
    """
    if prompts is None or not resolve:
        texts = meta.vocabulary if prompts is None else list(prompts)
        if not texts:
            raise ConfigError("empty prompt list: give at least one prompt")
        resolved = [Resolved(t, t, None, "") for t in texts]
    else:
        resolved = Vocabulary.default().resolve_all(list(prompts))
    device = next(model.parameters()).device
    if meta.arch == "expert":
        groups = [[i] for i in range(len(meta.vocabulary))] if prompts is None else expert_groups(meta, resolved)
        bound = PromptedModel(model, groups=groups)
    else:
        bound = PromptedModel(model, text=text_table(meta, [r.text for r in resolved], encoder))
    return bound.to(device).train(model.training), resolved


class PromptedModel(nn.Module):
    """A detector with its vocabulary baked in: ``forward(images) -> RawOutputs`` with logits over K prompts.

    Args:
        model: ``RTVPNet`` (needs ``text``) or ``ExpertDetector`` (needs ``groups``).
        text: ``(K, Dt)`` prompt embeddings for RTVPNet (a buffer, so it moves and exports with the model), or with
            ``projected`` ``(K, D)`` prompt vectors already in the region-embedding space (exemplar prompts).
        groups: for an expert, the class indices each prompt selects; the prompt's logit is their maximum.
        projected: ``text`` is in the region-embedding space (``RTVPNet.project_text`` / exemplar prompts).
    """

    def __init__(self, model: nn.Module, text: torch.Tensor | None = None,
                 groups: Sequence[Sequence[int]] | None = None, projected: bool = False) -> None:
        super().__init__()
        if (text is None) == (groups is None):
            raise ValueError("give text (RTVPNet) or groups (closed-set expert), not both")
        self.model = model
        self.projected = projected
        self.register_buffer("text", text.float() if text is not None else None)
        index = None
        if groups is not None:
            width = max(len(g) for g in groups)
            index = torch.tensor([list(g) + [g[0]] * (width - len(g)) for g in groups], dtype=torch.long)
        self.register_buffer("index", index)  # (K, G) padded by repeating; max over G is unaffected

    @property
    def num_prompts(self) -> int:
        """K."""
        return int(self.text.shape[0] if self.text is not None else self.index.shape[0])

    def forward(self, images: torch.Tensor) -> RawOutputs:
        """(B, C, H, W) in [0, 1] -> ``RawOutputs`` (logits ``(B, A, K)``)."""
        if self.text is not None:
            if self.projected:
                return self.model(images, self.text, projected=True)
            return self.model(images, self.text)
        out = self.model(images)
        out.logits = out.logits[..., self.index].amax(-1)  # (B, A, nc) -> (B, A, K, G) -> (B, A, K)
        return out
