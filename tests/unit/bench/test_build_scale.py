"""Scale check of the build's in-memory structures on 100k synthetic records (metadata only, no images).

How a 1M-image build stays within memory (see also ``rtvp.bench.build``): converters stream records to JSON-lines
spools on disk; validation workers return ~60 bytes of metadata per image (never pixels); the build then holds
only flat numpy arrays per image (sha1 ``S20``, pHash ``uint64``, size, spool offset, group, split flags) and the
image -> class incidence in CSR form, and re-reads annotations from disk while writing the COCO files
incrementally. The dedup and split steps below are the only whole-dataset computations; this test measures their
peak Python-heap use at 100k images (measured ~18 MiB, ~0.9 s untraced; linear in N, so ~180 MiB for 1M).
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np

from rtvp.bench.dedup import first_occurrence, near_duplicate_groups
from rtvp.bench.splits import choose_unseen, closed_split, open_split

N, C = 100_000, 200


def _synthetic(rng: np.random.Generator):
    sha1 = rng.integers(0, 256, (N, 20), dtype=np.uint8).view("S20").reshape(-1)
    sha1[1::1000] = sha1[0::1000][: len(sha1[1::1000])]  # 100 exact duplicates
    phash = rng.integers(0, 2**63, N, dtype=np.int64).astype(np.uint64) << np.uint64(1)
    flips = np.uint64(1) << rng.integers(0, 64, 2000).astype(np.uint64)
    phash[N // 2: N // 2 + 2000] = phash[:2000] ^ flips  # 2000 near duplicates at distance 1
    p = np.arange(1, C + 1, dtype=float) ** -1.1
    counts = rng.integers(0, 4, N)
    draws = rng.choice(C, size=int(counts.sum()), p=p / p.sum())
    key = np.unique(np.repeat(np.arange(N), counts) * C + draws)  # unique (image, class) pairs, sorted by image
    indptr = np.r_[0, np.cumsum(np.bincount(key // C, minlength=N))].astype(np.int64)
    return sha1, phash, indptr, (key % C).astype(np.int64)


def test_dedup_and_splits_at_100k_records_stay_small_and_fast():
    rng = np.random.default_rng(0)
    sha1, phash, indptr, cats = _synthetic(rng)
    emb = rng.normal(size=(C, 32))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    tracemalloc.start()
    t0 = time.perf_counter()
    first = first_occurrence(sha1)
    groups = near_duplicate_groups(phash, 4)
    is_val = closed_split(groups, indptr, cats, C, 0.2, seed=0)
    choice = choose_unseen(emb, np.zeros(C, bool), np.ones(C, bool), 0.3, tau=0.1, seed=0)
    tr, va = open_split(groups, is_val, indptr, cats, choice.unseen, np.zeros(N, bool))
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (first != np.arange(N)).sum() == 100
    assert (groups != np.arange(N)).sum() == 2000
    assert abs(is_val.mean() - 0.2) < 0.01 and not (tr & va).any()
    assert peak < 80 * 2**20, f"peak {peak / 2**20:.1f} MiB"  # ~800 B/image upper bound incl. temporaries
    assert seconds < 30, f"{seconds:.1f} s"
