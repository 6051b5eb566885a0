"""Exact and near-duplicate detection on per-image metadata (sha1 digests and 64-bit difference hashes).

Near duplicates are pairs of images whose 64-bit hashes differ in at most ``k`` bits. Comparing all pairs is
``O(n^2)``; instead we use multi-index hashing (Norouzi et al., 2012): split the 64 bits into ``k + 1`` disjoint
bands. By the pigeonhole principle two hashes within distance ``k`` agree exactly on at least one band, so every
near pair shows up as two equal band values. For each band we sort the band values (``O(n log n)``) and only
compare hashes inside runs of equal values, then keep pairs whose full distance is ``<= k``. Recall is exact.
Identical hashes are collapsed first so a run of identical images costs ``O(n)``, not ``O(n^2)``. Groups are the
connected components (union-find semantics, ``scipy.sparse.csgraph``) of the near pairs.

Cost: with ``b = 64 / (k + 1)`` bits per band and hashes spread evenly, a band bucket holds about ``n / 2^b``
hashes, so the work is ``O((k + 1) * n * (1 + n / 2^b))``: for ``k = 4`` (13-bit bands) and 1M images about
``5 * 1M * 120`` vectorised XOR/popcounts, a few seconds. Everything here is numpy on ``(N,)`` arrays: 8 bytes per
hash plus the candidate pairs of one shift at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def first_occurrence(keys: np.ndarray) -> np.ndarray:
    """For each element, the index of the first element with an equal key.

    Args:
        keys: ``(N,)`` array of hashable scalars, e.g. ``S20`` sha1 digests or hex strings.

    Returns:
        ``(N,)`` int64; ``out[i] == i`` exactly for the first occurrence of each key.
    """
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)].astype(np.int64)


def _bands(max_distance: int) -> list[tuple[int, int]]:
    """``(shift, width)`` of ``max_distance + 1`` disjoint bit bands covering the 64 bits as evenly as possible."""
    m = max_distance + 1
    widths = [64 // m + (1 if i < 64 % m else 0) for i in range(m)]
    shifts = np.cumsum([0, *widths[:-1]]).tolist()
    return list(zip(shifts, widths, strict=True))


def _runs_pairs(keys: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield index pairs ``(i, j)`` of every two elements with equal ``keys``, one shift at a time.

    Sorting puts equal keys in runs; shift ``d`` pairs each position with the one ``d`` further in its run, so
    the total work equals the number of candidate pairs (no quadratic scan over the whole array).
    """
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    start = np.r_[True, k[1:] != k[:-1]]
    run_start = np.flatnonzero(start)
    run_id = np.cumsum(start) - 1
    run_len = np.diff(np.r_[run_start, len(k)])
    remaining = run_len[run_id] - (np.arange(len(k)) - run_start[run_id]) - 1  # members after me in my run
    idx = np.flatnonzero(remaining > 0)
    d = 1
    while idx.size:
        yield order[idx], order[idx + d]
        d += 1
        idx = idx[remaining[idx] >= d]


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """All pairs of distinct hash values within ``max_distance`` bits (multi-index hashing).

    Args:
        hashes: ``(U,)`` uint64 hashes, assumed unique (collapse identical ones first).
        max_distance: Hamming threshold ``k`` (0..15).

    Returns:
        ``(P, 2)`` int64 index pairs ``i < j``, deduplicated.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    found: list[np.ndarray] = []
    if max_distance > 0 and len(hashes) > 1:
        for shift, width in _bands(max_distance):
            band = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
            for i, j in _runs_pairs(band):
                dist = np.bitwise_count(hashes[i] ^ hashes[j])
                keep = dist <= max_distance
                if keep.any():
                    found.append(np.stack([np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found).astype(np.int64), axis=0)


def near_duplicate_groups(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """Group images whose hashes chain within ``max_distance`` bits (connected components of near pairs).

    Args:
        hashes: ``(N,)`` uint64 perceptual hashes, any order, duplicates allowed.
        max_distance: Hamming threshold (0 groups only identical hashes).

    Returns:
        ``(N,)`` int64 group labels: each group is labelled with the index of its first member, so labels are
        deterministic for a given input order and ``out[i] == i`` for singletons.

    Examples:
        >>> near_duplicate_groups(np.array([0b0, 0b1, 0b1111, 0b0], dtype=np.uint64), 1).tolist()
        [0, 0, 2, 0]
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = len(hashes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    uniq, inverse = np.unique(hashes, return_inverse=True)
    pairs = near_duplicate_pairs(uniq, max_distance)
    u = len(uniq)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(u, u))
    _, comp = connected_components(graph, directed=False)
    comp_of_image = comp[inverse.reshape(-1)]
    # canonical label: smallest image index of the component
    first = np.full(comp.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, comp_of_image, np.arange(n, dtype=np.int64))
    return first[comp_of_image]
