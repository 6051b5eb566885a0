from __future__ import annotations

import numpy as np
import pytest

from rtvp.data import DetectionDataset, build_vocab, remap_labels
from rtvp.data.vocab import resolve_size
from rtvp.errors import ConfigError

ALLOWED = np.array([0, 2, 3, 5, 7, 8], dtype=np.int64)


@pytest.mark.parametrize("seed", range(20))
def test_sampled_vocab_keeps_present_and_fixed_size(seed):
    rng = np.random.default_rng(seed)
    present = rng.choice(ALLOWED, size=int(rng.integers(0, 4)))
    v = build_vocab("sampled", present, ALLOWED, 4, np.random.default_rng(seed))
    real = v[v >= 0]
    assert len(v) == 4 and len(real) == 4
    assert set(present.tolist()) <= set(real.tolist()) <= set(ALLOWED.tolist())
    assert len(set(real.tolist())) == len(real)


def test_sampled_vocab_pads_when_few_classes_allowed():
    v = build_vocab("sampled", np.array([2]), np.array([2, 3]), 5, np.random.default_rng(0))
    assert sorted(v[:2].tolist()) == [2, 3] and v[2:].tolist() == [-1, -1, -1]


def test_sampled_vocab_grows_rather_than_drop_ground_truth():
    v = build_vocab("sampled", np.array([0, 2, 3]), ALLOWED, 2, np.random.default_rng(0))
    assert sorted(v.tolist()) == [0, 2, 3]


def test_sampled_vocab_rejects_disallowed_present_class():
    with pytest.raises(ValueError, match=r"\[1\]"):
        build_vocab("sampled", np.array([1]), ALLOWED, 4, np.random.default_rng(0))


def test_all_vocab_is_fixed_order_padded():
    assert build_vocab("all", np.array([7]), ALLOWED, 8).tolist() == [0, 2, 3, 5, 7, 8, -1, -1]


def test_remap_labels_points_at_the_right_slot():
    vocab = np.array([7, 0, 5, -1])
    labels = np.array([0, 5, 7, 7, 3])
    slots = remap_labels(labels, vocab, 9)
    assert slots.tolist() == [1, 2, 0, 0, -1]
    assert (vocab[slots[:4]] == labels[:4]).all()


def test_resolve_size_errors():
    assert resolve_size("sampled", 0, 6) == 6 and resolve_size("all", 8, 6) == 8
    with pytest.raises(ConfigError, match="vocab_size=3"):
        resolve_size("all", 3, 6)
    with pytest.raises(ConfigError, match="vocab="):
        resolve_size("some", 0, 6)
    with pytest.raises(ConfigError, match="empty"):
        resolve_size("sampled", 0, 0)


@pytest.mark.parametrize("size", [0, 2])
def test_open_train_vocab_never_holds_unseen_classes(bench, size):
    ds = DetectionDataset(bench, "open_train", "open", imgsz=64, augment=True, vocab="sampled", vocab_size=size,
                          copy_paste=1.0)
    assert ds.allowed.tolist() == [0, 2, 3]
    for epoch in range(4):
        samples = [ds[(epoch, i)] for i in range(len(ds))]
        for lo in range(0, len(samples), 2):
            b = ds.collate(samples[lo : lo + 2])
            ids = b.vocab_ids.tolist()
            glob = np.concatenate([s.labels for s in samples[lo : lo + 2]])
            assert 1 not in ids and len(ids) == max(size or 3, len(set(glob.tolist())))  # grows, never drops GT
            lab, m = b.gt_labels[b.gt_mask], b.gt_mask
            assert b.vocab_ids[lab].tolist() == glob.tolist() and int(m.sum()) == len(glob)


def test_all_vocab_batch_uses_allowed_order(bench):
    ds = DetectionDataset(bench, "closed_train", imgsz=64, vocab="all", vocab_size=6)
    b = ds.collate([ds[0], ds[3]])
    assert b.vocab_ids.tolist() == [0, 1, 2, 3, -1, -1]
    assert b.gt_labels.tolist() == [[0, -1], [0, 2]]
