"""Per-batch vocabulary: which K category texts the contrastive head scores in a batch, and label remapping.

``"all"``: the allowed categories in fixed (ascending) order, padded with ``-1`` to ``size``.
``"sampled"``: every category present in the batch plus random allowed negatives, shuffled, padded with ``-1`` to
``size``. If more classes are present than ``size`` the vocabulary grows to hold them all (no ground truth is ever
turned into background); with ``size`` = number of allowed classes (the default) that cannot happen.
"""

from __future__ import annotations

import numpy as np

from rtvp.errors import ConfigError


def resolve_size(mode: str, size: int, n_allowed: int) -> int:
    """Vocabulary size ``K`` for ``mode`` (``0`` -> ``n_allowed``); ``"all"`` needs ``K >= n_allowed``."""
    if mode not in ("all", "sampled"):
        raise ConfigError(f"vocab={mode!r}: must be 'all' or 'sampled'")
    k = size or n_allowed
    if mode == "all" and k < n_allowed:
        raise ConfigError(f"vocab_size={size} is smaller than the {n_allowed} allowed classes; vocab='all' needs "
                          "them all (use vocab='sampled' or vocab_size=0)")
    if k < 1:
        raise ConfigError("the vocabulary is empty: the split has no allowed class")
    return k


def build_vocab(mode: str, present: np.ndarray, allowed: np.ndarray, size: int,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Vocabulary of one batch.

    Args:
        mode: ``"all"`` or ``"sampled"``.
        present: category indices occurring in the batch (any order, duplicates allowed).
        allowed: ``(A,)`` category indices the vocabulary may use (sorted).
        size: resolved ``K`` (see :func:`resolve_size`).
        rng: generator for the negatives and the shuffle (``"sampled"`` only).

    Returns:
        ``(K',)`` int64 global category indices, ``-1`` for padding slots; ``K' = max(K, #present)``.
    """
    allowed = np.asarray(allowed, dtype=np.int64)
    if mode == "all":
        ids = allowed
    else:
        if rng is None:
            raise ValueError("vocab='sampled' needs a random generator")
        pos = np.unique(np.asarray(present, dtype=np.int64))
        stray = np.setdiff1d(pos, allowed)
        if len(stray):
            raise ValueError(f"categories {stray.tolist()} occur in the batch but are not allowed")
        neg_pool = np.setdiff1d(allowed, pos)
        n_neg = min(max(size - len(pos), 0), len(neg_pool))
        neg = rng.choice(neg_pool, size=n_neg, replace=False) if n_neg else neg_pool[:0]
        ids = rng.permutation(np.concatenate([pos, neg]))
    out = np.full(max(size, len(ids)), -1, dtype=np.int64)
    out[: len(ids)] = ids
    return out


def remap_labels(labels: np.ndarray, vocab_ids: np.ndarray, n_categories: int) -> np.ndarray:
    """Global category indices ``(...)`` -> vocabulary slots (``-1`` where a category has no slot)."""
    lut = np.full(max(n_categories, 1), -1, dtype=np.int64)
    real = vocab_ids >= 0
    lut[vocab_ids[real]] = np.flatnonzero(real)
    return lut[labels] if labels.size else np.asarray(labels, dtype=np.int64)
