"""Text-encoder interface, registry and factory.

Every encoder maps prompts to frozen, L2-normalised float32 CPU embeddings ``(N, dim)``. Encoding deduplicates and
sorts the prompts before calling the model, so reordering or repeating the input gives bit-identical rows; a prompt
encoded within a different set of prompts agrees to float rounding (~2e-7 for MiniLM, whose padding depends on the
batch). Embeddings are cached per (encoder identity, text) on disk when a ``cache_dir`` is given.
"""

from __future__ import annotations

import inspect
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from rtvp.errors import ConfigError
from rtvp.models.text.cache import EmbeddingCache
from rtvp.registry import Registry
from rtvp.vocabulary import Vocabulary, class_text_variants


class TextEncoder(ABC):
    """Frozen prompt encoder: ``encode(texts) -> (N, dim)`` float32, L2-normalised, CPU, no grad.

    Subclasses set :attr:`name`, pass ``dim`` to ``__init__`` and implement :meth:`_embed` and :attr:`identity`;
    :attr:`options` holds the keyword arguments that rebuild the same encoder (stored in checkpoints).

    Args:
        dim: Embedding size.
        cache_dir: Folder of the on-disk embedding cache; ``None`` disables caching.
        device: Device the model runs on (outputs are always CPU).
    """

    name: ClassVar[str] = ""

    def __init__(self, dim: int, cache_dir: str | Path | None = None, device: str = "cpu") -> None:
        self.dim = int(dim)
        self.device = str(device)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.options: dict[str, Any] = {}

    @property
    @abstractmethod
    def identity(self) -> str:
        """Encoder name + model identity (e.g. a weights hash); the cache key, safe as a file stem."""

    @abstractmethod
    def _embed(self, texts: list[str]) -> torch.Tensor:
        """Run the model on unique texts; returns (N, dim) on any device/dtype (normalised by :meth:`encode`)."""

    def num_parameters(self) -> int:
        """Parameters of the underlying model (0 for weightless encoders)."""
        return 0

    @cached_property
    def cache(self) -> EmbeddingCache | None:
        """The on-disk cache, or ``None`` when disabled."""
        return None if self.cache_dir is None else EmbeddingCache(self.cache_dir, self.identity, self.dim)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed prompts.

        Args:
            texts: N prompts (a list/tuple of str; a bare str is rejected).

        Returns:
            (N, dim) float32 CPU tensor, rows of unit L2 norm, ``requires_grad=False``.
        """
        texts = _check_texts(texts)
        if not texts:
            return torch.zeros(0, self.dim)
        unique = sorted(set(texts))
        found = self.cache.lookup(unique) if self.cache is not None else {}
        missing = [t for t in unique if t not in found]
        if missing:
            with torch.no_grad():
                emb = self._embed(missing)
            emb = F.normalize(emb.detach().to("cpu", torch.float32), dim=-1).clone()  # clone: no inference tensors
            if emb.shape != (len(missing), self.dim):
                raise RuntimeError(
                    f"{self.identity}: model returned {tuple(emb.shape)}, expected ({len(missing)}, {self.dim})"
                )
            found.update(zip(missing, emb, strict=True))
            if self.cache is not None:
                try:
                    self.cache.add(missing, emb)
                except OSError as e:  # a cache that cannot be written only costs time
                    warnings.warn(f"cannot write text-embedding cache {self.cache.path}: {e}", stacklevel=2)
        return torch.stack([found[t] for t in texts])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, options={self.options})"


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str | bytes):
        raise TypeError(f"encode() takes a sequence of prompts, not a single string: use [{texts!r}]")
    out = list(texts)
    bad = [i for i, t in enumerate(out) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"encode() needs strings; item {bad[0]} is {type(out[bad[0]]).__name__}")
    return out


TEXT_ENCODERS: Registry[type[TextEncoder]] = Registry("text encoder")


def build_text_encoder(
    name: str = "minilm", cache_dir: str | Path | None = None, device: str = "cpu", **kw: Any
) -> TextEncoder:
    """Build a registered text encoder.

    Args:
        name: Registry name: ``minilm`` (default), ``clip`` or ``hash``.
        cache_dir: Embedding-cache folder (see ``default_cache_dir()``), ``None`` = no cache.
        device: Device for the model.
        **kw: Encoder options (``path=`` for minilm/clip, ``arch=`` for clip, ``dim=`` for hash, ...).

    Returns:
        The encoder (models load lazily, on the first cache miss).

    Raises:
        ConfigError: Unknown name (the message lists the registered ones) or unknown option.

    Examples:
        >>> enc = build_text_encoder("hash", dim=32)
        >>> enc.encode(["scratch on steel", "crack on glass"]).shape
        torch.Size([2, 32])
    """
    try:
        cls = TEXT_ENCODERS.get(name)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "cache_dir", "device")]
    unknown = sorted(set(kw) - set(accepted))
    if unknown:
        raise ConfigError(f"text encoder '{name}' got unknown option(s) {unknown}; accepted: {accepted}")
    return cls(cache_dir=cache_dir, device=device, **kw)


def encode_groups(encoder: TextEncoder, groups: Sequence[Sequence[str]]) -> torch.Tensor:
    """Prompt ensembling: one row per group, the normalised mean of its texts' unit embeddings.

    Args:
        encoder: the text encoder.
        groups: K non-empty lists of texts (e.g. ``rtvp.vocabulary.class_text_variants`` of K classes).

    Returns:
        ``(K, dim)`` float32 rows of unit L2 norm; a one-text group's row is that text's embedding.

    Raises:
        ValueError: a group is empty.
    """
    if any(len(g) == 0 for g in groups):
        raise ValueError("encode_groups: every group needs at least one text")
    emb = encoder.encode([t for g in groups for t in g])
    owner = torch.repeat_interleave(torch.arange(len(groups)), torch.tensor([len(g) for g in groups], dtype=torch.long))
    sums = torch.zeros(len(groups), emb.shape[1]).index_add_(0, owner, emb)
    return F.normalize(sums, dim=-1)


def encode_class_ensembles(encoder: TextEncoder, categories: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    """``(K, dim)`` class-text ensembles of K benchmark categories (``class_text=ensemble``).

    :func:`encode_groups` of each category's :func:`rtvp.vocabulary.class_text_variants`; training and evaluation
    both build their ensemble rows here.
    """
    vocab = Vocabulary.default()
    return encode_groups(encoder, [class_text_variants(c, vocab) for c in categories])


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise cosine similarity.

    Args:
        a: (N, D) or (D,).
        b: (M, D) or (D,).

    Returns:
        (N, M) similarities; 1-D inputs drop their axis (two vectors give a 0-d tensor).
    """
    out = (
        F.normalize(a.float().reshape(-1, a.shape[-1]), dim=-1)
        @ F.normalize(b.float().reshape(-1, b.shape[-1]), dim=-1).T
    )
    if b.ndim == 1:
        out = out[:, 0]
    return out[0] if a.ndim == 1 else out
