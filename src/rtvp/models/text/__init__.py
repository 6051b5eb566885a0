"""Frozen text encoders for prompt embeddings: ``minilm`` (default), ``clip`` (optional extra), ``hash`` (tests).

Examples:
    >>> from rtvp.models.text import build_text_encoder
    >>> enc = build_text_encoder("hash", dim=16)
    >>> enc.encode(["crack on glass"]).shape
    torch.Size([1, 16])
"""

from __future__ import annotations

from rtvp.models.text import clip, hashing, minilm  # noqa: F401 - registration side effect
from rtvp.models.text.base import TEXT_ENCODERS, TextEncoder, build_text_encoder, cosine, encode_groups
from rtvp.models.text.cache import EmbeddingCache, default_cache_dir
from rtvp.models.text.clip import ClipEncoder
from rtvp.models.text.hashing import HashingEncoder
from rtvp.models.text.minilm import MiniLMEncoder

__all__ = [
    "TEXT_ENCODERS",
    "ClipEncoder",
    "EmbeddingCache",
    "HashingEncoder",
    "MiniLMEncoder",
    "TextEncoder",
    "build_text_encoder",
    "cosine",
    "default_cache_dir",
    "encode_groups",
]
