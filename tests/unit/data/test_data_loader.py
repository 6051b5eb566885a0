from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from rtvp.data import Collator, DetectionDataset, EpochSampler, Sample, build_dataloader
from rtvp.errors import ConfigError
from rtvp.structures import Batch

AUG = dict(mosaic=0.5, flip=0.5, flipud=0.5, hsv=(0.015, 0.7, 0.4), affine=(10.0, 0.1, 0.3, 2.0), copy_paste=0.5)


def sample(n: int, label0: int = 0, index: int = 0) -> Sample:
    boxes = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    return Sample(np.full((32, 32, 3), 255, np.uint8), boxes, np.arange(label0, label0 + n, dtype=np.int64),
                  10 + index, (20, 30), 0.5, (1, 2), index, 0)


def test_collate_pads_boxes_and_labels():
    c = Collator("all", 5, (0, 1, 2, 3), seed=0, n_categories=4)
    b = c([sample(1, 2), sample(0, index=1), sample(2, 0, index=2)])
    assert isinstance(b, Batch)
    assert b.images.shape == (3, 3, 32, 32) and b.images.dtype == torch.float32 and float(b.images.max()) == 1.0
    assert b.gt_boxes.shape == (3, 2, 4) and b.gt_labels.tolist() == [[2, -1], [-1, -1], [0, 1]]
    assert b.gt_mask.tolist() == [[True, False], [False, False], [True, True]]
    assert b.gt_boxes[1].abs().sum() == 0 and b.gt_boxes[2, 1].tolist() == [4, 5, 6, 7]
    assert b.vocab_ids.tolist() == [0, 1, 2, 3, -1]
    assert b.image_ids == [10, 11, 12] and b.orig_sizes.tolist() == [[20, 30]] * 3
    assert b.scales.tolist() == [0.5] * 3 and b.pads.tolist() == [[1.0, 2.0]] * 3


def test_collate_all_empty_batch_keeps_one_masked_slot():
    b = Collator("sampled", 3, (0, 1, 2, 3), seed=0)([sample(0), sample(0, index=1)])
    assert b.gt_boxes.shape == (2, 1, 4) and not b.gt_mask.any() and (b.gt_labels == -1).all()
    assert len(b.vocab_ids) == 3 and (b.vocab_ids >= 0).all()


def test_collator_is_picklable_and_seeded():
    c = Collator("sampled", 2, (0, 1, 2, 3, 4, 5), seed=7)
    c2 = pickle.loads(pickle.dumps(c))
    batch = [sample(1, 2), sample(1, 4, index=3)]
    assert c(batch).vocab_ids.tolist() == c2(batch).vocab_ids.tolist()
    vocabs = {tuple(c([sample(1, 2, index=i)]).vocab_ids.tolist()) for i in range(20)}
    assert len(vocabs) > 1 and all(2 in v for v in vocabs)


def test_epoch_sampler_order_resume_and_shards():
    data = list(range(10))
    s = EpochSampler(data, shuffle=True, seed=1)
    s.set_epoch(3)
    full = list(s)
    assert sorted(i for _, i in full) == data and {e for e, _ in full} == {3}
    s.set_epoch(3, start=4)
    assert list(s) == full[4:] and len(s) == 6
    s.set_epoch(4)
    assert [i for _, i in s] != [i for _, i in full]
    shards = []
    for rank in range(2):
        d = EpochSampler(data, shuffle=True, seed=1, distributed=True, num_replicas=2, rank=rank)
        d.set_epoch(3)
        shards.append([i for _, i in d])
    assert sorted(shards[0] + shards[1]) == data and len(shards[0]) == 5
    assert EpochSampler(data, shuffle=False).order().tolist() == data


def _batches(loader, epoch, start=0):
    loader.sampler.set_epoch(epoch, start=start)
    return [(b.image_ids, b.images, b.gt_boxes, b.gt_labels, b.vocab_ids) for b in loader]


def _same(xs, ys):
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys, strict=True):
        assert x[0] == y[0]
        for a, b in zip(x[1:], y[1:], strict=True):
            assert torch.equal(a, b)


@pytest.fixture(scope="module")
def aug_ds(bench):
    return DetectionDataset(bench, "closed_train", imgsz=64, augment=True, vocab="sampled", vocab_size=3, **AUG)


def test_two_workers_match_main_process_and_resume(aug_ds):
    main = build_dataloader(aug_ds, batch_size=2, shuffle=True, workers=0, seed=5)
    ref = _batches(main, 1)
    assert sorted(i for b in ref for i in b[0]) == [1, 2, 3, 4, 5, 6]
    workers = build_dataloader(aug_ds, batch_size=2, shuffle=True, workers=2, seed=5)
    assert workers.persistent_workers
    _same(_batches(workers, 1), ref)
    _same(_batches(workers, 1, start=2), ref[1:])  # resume after one consumed batch of 2
    assert [b[0] for b in _batches(workers, 2)] != [b[0] for b in ref]


def test_build_dataloader_arguments(aug_ds):
    with pytest.raises(ConfigError, match="batch_size"):
        build_dataloader(aug_ds, batch_size=0, shuffle=True)
    with pytest.raises(ConfigError, match="workers"):
        build_dataloader(aug_ds, batch_size=2, shuffle=True, workers=-1)
    loader = build_dataloader(aug_ds, batch_size=4, shuffle=False, drop_last=True)
    assert len(loader) == 1 and isinstance(loader.sampler, EpochSampler)
