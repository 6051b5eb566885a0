"""Weightless, deterministic text encoder for tests: signed feature hashing of words and character n-grams."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

import torch

from rtvp.errors import ConfigError
from rtvp.models.text.base import TEXT_ENCODERS, TextEncoder

_WORD = re.compile(r"\w+")


def hash_features(text: str, ngram: int = 3) -> list[str]:
    """Features of a text: NFKC-lowercased word tokens plus character n-grams of each ``<word>``.

    Strings that share words or word pieces ("scratch" / "scratches") share features, so their embeddings are
    similar. An empty or punctuation-only text gets the single feature ``"<empty>"``.

    Args:
        text: Any string.
        ngram: Character n-gram length.

    Returns:
        Feature strings (with repeats).
    """
    words = _WORD.findall(unicodedata.normalize("NFKC", text).lower())
    feats = [f"w:{w}" for w in words]
    for w in words:
        padded = f"<{w}>"
        feats += [f"c:{padded[i : i + ngram]}" for i in range(max(1, len(padded) - ngram + 1))]
    return feats or ["<empty>"]


@TEXT_ENCODERS.register("hash")
class HashingEncoder(TextEncoder):
    """Signed feature hashing into ``dim`` buckets, then L2 normalisation (see :func:`hash_features`).

    Each feature's blake2b digest picks a bucket (``h % dim``) and a sign (bit 32), so unrelated features cancel
    on average. No weights, no randomness, stable across processes and machines. For tests only: it knows no
    synonyms or translations.

    Args:
        dim: Embedding size (>= 2).
        ngram: Character n-gram length (>= 1).
        cache_dir: Embedding cache folder or ``None``.
        device: Ignored (computed on CPU).
    """

    name = "hash"

    def __init__(self, dim: int = 64, ngram: int = 3, cache_dir: str | Path | None = None, device: str = "cpu") -> None:
        if int(dim) < 2 or int(ngram) < 1:
            raise ConfigError(f"text encoder 'hash': need dim >= 2 and ngram >= 1, got dim={dim}, ngram={ngram}")
        super().__init__(dim, cache_dir, device)
        self.ngram = int(ngram)
        self.options = {"dim": self.dim, "ngram": self.ngram}

    @property
    def identity(self) -> str:
        """``hash-v1-d<dim>-n<ngram>``."""
        return f"hash-v1-d{self.dim}-n{self.ngram}"

    def _embed(self, texts: list[str]) -> torch.Tensor:
        """(N, dim) summed signed one-hot features (normalised by the caller)."""
        rows, cols, signs = [], [], []
        for i, text in enumerate(texts):
            for feat in hash_features(text, self.ngram):
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
                rows.append(i)
                cols.append(h % self.dim)
                signs.append(1.0 if (h >> 32) & 1 else -1.0)
        out = torch.zeros(len(texts), self.dim)
        out.index_put_((torch.tensor(rows), torch.tensor(cols)), torch.tensor(signs), accumulate=True)
        zero = out.abs().sum(1) == 0  # all features cancelled (rare): use the unit vector e_0
        out[zero, 0] = 1.0
        return out
