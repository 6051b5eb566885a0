from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rtvp.config import from_dict
from rtvp.data import DataConfig, DetectionDataset
from rtvp.errors import ConfigError, DataError

AUG = dict(mosaic=0.5, flip=0.5, flipud=0.5, hsv=(0.015, 0.7, 0.4), affine=(10.0, 0.1, 0.3, 2.0), copy_paste=0.5)


def test_categories_allowed_and_texts(bench):
    closed = DetectionDataset(bench, "closed_train", imgsz=64)
    assert [c["id"] for c in closed.categories] == [1, 2, 3, 4]
    assert closed.class_texts == ["scratch on steel", "hole on steel", "crack on steel", "short on pcb"]
    assert closed.allowed.tolist() == [0, 1, 2, 3] and len(closed) == 6
    open_train = DetectionDataset(bench, "open_train", "open", imgsz=64)
    assert open_train.allowed.tolist() == [0, 2, 3] and [e.id for e in open_train.entries] == [1, 3, 4, 5]
    assert DetectionDataset(bench, "open_val", "open", imgsz=64).allowed.tolist() == [0, 1, 2, 3]


def test_open_protocol_drops_unseen_annotations_from_a_train_split(bench):
    ds = DetectionDataset(bench, "closed_train", "open", imgsz=64)  # open protocol on a split holding unseen boxes
    assert ds.split.endswith("_train") and ds.dropped == 2
    assert all(1 not in e.labels.tolist() for e in ds.entries)


def test_empty_image_sample(bench):
    ds = DetectionDataset(bench, "closed_train", imgsz=64, augment=False)
    s = ds[2]
    assert s.image_id == 3 and s.boxes.shape == (0, 4) and s.labels.shape == (0,) and s.image.shape == (64, 64, 3)


def test_grayscale_replicated_or_kept(bench):
    rgb = DetectionDataset(bench, "closed_train", imgsz=64, channels=3)[1]
    assert rgb.image.shape == (64, 64, 3)
    assert (rgb.image[:, :, 0] == rgb.image[:, :, 1]).all() and (rgb.image[:, :, 0] == rgb.image[:, :, 2]).all()
    gray = DetectionDataset(bench, "closed_train", imgsz=64, channels=1, augment=True, **AUG)
    assert gray.channels == 1
    batch = gray.collate([gray[(0, i)] for i in range(len(gray))])
    assert batch.images.shape == (6, 1, 64, 64)


def test_channels_none_needs_agreeing_images(bench):
    with pytest.raises(DataError, match=r"differ in channel count \{1: 1, 3: 5\}.*channels=3"):
        DetectionDataset(bench, "closed_train", imgsz=64, channels=None)
    ds = DetectionDataset(bench, "open_train", "open", imgsz=64, channels=None)  # all RGB there
    assert ds.channels == 3


def test_multichannel_npy_images(bench4):
    ds = DetectionDataset(bench4, "closed_train", imgsz=64, channels=None, augment=True, **{**AUG, "mosaic": 1.0})
    assert ds.channels == 4
    batch = ds.collate([ds[(e, i)] for e in range(2) for i in range(len(ds))])
    assert batch.images.shape == (12, 4, 64, 64) and batch.images.dtype.is_floating_point
    assert 0.0 <= float(batch.images.min()) and float(batch.images.max()) <= 1.0
    plain = DetectionDataset(bench4, "closed_train", imgsz=64, channels=3)
    assert plain[0].image.shape == (64, 64, 3)


def test_determinism(bench):
    a = DetectionDataset(bench, "closed_train", imgsz=64, augment=True, seed=3, **AUG)
    b = DetectionDataset(bench, "closed_train", imgsz=64, augment=True, seed=3, **AUG)
    for i in range(len(a)):
        x, y = a[(1, i)], b[(1, i)]
        assert np.array_equal(x.image, y.image) and np.array_equal(x.boxes, y.boxes)
        assert np.array_equal(x.labels, y.labels)
    differ = [not np.array_equal(a[(1, i)].image, a[(2, i)].image) for i in range(len(a))]
    assert all(differ)
    other = DetectionDataset(bench, "closed_train", imgsz=64, augment=True, seed=4, **AUG)
    assert not np.array_equal(a[(1, 0)].image, other[(1, 0)].image)
    a.set_epoch(1)
    assert np.array_equal(a[0].image, a[(1, 0)].image)


def test_cache_gives_identical_samples(bench):
    plain = DetectionDataset(bench, "closed_train", imgsz=64, augment=True, cache=False, **AUG)
    assert plain._cache is None
    cached = DetectionDataset(bench, "closed_train", imgsz=64, augment=True, cache=True, **AUG)
    for i in range(len(plain)):
        assert np.array_equal(plain[(0, i)].image, cached[(0, i)].image)
    assert np.array_equal(cached._cache[0][0], DetectionDataset(bench, "closed_train", imgsz=64)._read(0)[0])


def test_auto_cache_follows_the_memory_budget(bench, monkeypatch):
    auto = DetectionDataset(bench, "closed_train", imgsz=64)  # cache=None: a few 64 px images fit
    assert auto.cached and auto.cache_bytes() == len(auto) * 64 * 64 * 3
    monkeypatch.setattr("rtvp.data.dataset.AUTO_CACHE_BYTES", auto.cache_bytes() - 1)
    assert not DetectionDataset(bench, "closed_train", imgsz=64).cached
    assert DetectionDataset(bench, "closed_train", imgsz=64, cache=True).cached  # forced


def test_data_config_matches_dataset_defaults(bench):
    sig = inspect.signature(DetectionDataset.__init__).parameters
    for f in dataclasses.fields(DataConfig):
        assert sig[f.name].default == f.default, f.name
    ds = DetectionDataset.from_config(bench, "closed_train", "closed", DataConfig(imgsz=64, flip=0.0), augment=True)
    assert ds.cfg.flip == 0.0 and ds.imgsz == 64
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(DataConfig, {"imgsz": 64, "mosiac": 0.5})
    with pytest.raises(ConfigError, match="multiple of 32"):
        DataConfig(imgsz=100)
    with pytest.raises(ConfigError, match="data.flip"):
        DetectionDataset(bench, "closed_train", imgsz=64, flip=1.5)


def test_train_config_augment_section_is_the_data_one(tmp_path):
    """``rtvp train``'s ``augment`` section is ``rtvp.data.AugmentConfig`` (one definition) and validates itself."""
    from rtvp.config import apply_overrides
    from rtvp.data import AugmentConfig
    from rtvp.training.config import TrainConfig

    cfg = apply_overrides(TrainConfig(data=tmp_path), ["augment.mosaic=0.25", "augment.affine=[0, 0.2, 0.3, 0]"])
    assert type(cfg.augment) is AugmentConfig
    assert (cfg.augment.mosaic, cfg.augment.affine) == (0.25, (0.0, 0.2, 0.3, 0.0))
    assert {f.name for f in dataclasses.fields(AugmentConfig)} < {f.name for f in dataclasses.fields(DataConfig)}
    with pytest.raises(ConfigError, match=r"augment\.copy_paste=2"):
        apply_overrides(TrainConfig(data=tmp_path), ["augment.copy_paste=2"])


def test_bad_arguments(bench):
    with pytest.raises(ConfigError, match="protocol"):
        DetectionDataset(bench, "closed_train", "generalized", imgsz=64)
    with pytest.raises(ConfigError, match="vocab_size=2"):
        DetectionDataset(bench, "closed_train", imgsz=64, vocab="all", vocab_size=2)
    with pytest.raises(DataError, match=r"split file not found.*closed_train"):
        DetectionDataset(bench, "closed_test", imgsz=64)


def _bench_copy(bench: Path, tmp_path: Path, edit) -> Path:
    root = tmp_path / "b"
    shutil.copytree(bench, root)
    path = root / "annotations" / "closed_train.json"
    data = json.loads(path.read_text())
    edit(data, root)
    path.write_text(json.dumps(data))
    return root


@pytest.mark.parametrize(("edit", "match"), [
    (lambda d, r: d["annotations"][0].pop("bbox"), r"annotation id=1: missing field 'bbox'"),
    (lambda d, r: d["annotations"][1].update(category_id=99), r"annotation id=2: category_id 99"),
    (lambda d, r: d["annotations"][0].update(bbox=[1, 2]), r"'bbox' must be \[x, y, w, h\]"),
    (lambda d, r: d["annotations"][0].update(image_id=77), r"unknown image_id"),
    (lambda d, r: d["annotations"][0].update(segmentation={"size": 3}), r"annotation id=1: malformed 'segm"),
    (lambda d, r: d.pop("categories"), r"missing COCO list 'categories'"),
])
def test_malformed_annotations_name_the_problem(bench, tmp_path, edit, match):
    root = _bench_copy(bench, tmp_path, edit)
    with pytest.raises(DataError, match=match):
        DetectionDataset(root, "closed_train", imgsz=64, augment=True)


def test_missing_or_resized_image_is_reported(bench, tmp_path):
    root = _bench_copy(bench, tmp_path, lambda d, r: d["images"][1].update(width=70))
    with pytest.raises(DataError, match=r"gray.png: decoded size 64x64 differs"):
        DetectionDataset(root, "closed_train", imgsz=64)[1]
    (root / "images/src/a.png").unlink()
    with pytest.raises(DataError, match=r"a.png: image file not found"):
        DetectionDataset(root, "closed_train", imgsz=64)[0]


def test_rle_segmentation_gives_outline(bench, tmp_path):
    from pycocotools import mask as mask_utils

    m = np.zeros((64, 96), dtype=np.uint8, order="F")
    m[10:30, 20:50] = 1
    rle = mask_utils.encode(m)
    rle["counts"] = rle["counts"].decode()
    root = _bench_copy(bench, tmp_path, lambda d, r: d["annotations"][0].update(segmentation=rle))
    e = DetectionDataset(root, "closed_train", imgsz=64, augment=True).entries[0]
    assert e.polygonal.tolist() == [True]
    np.testing.assert_allclose([*e.points.min(0), *e.points.max(0)], [20.5, 10.5, 49.5, 29.5])


def test_mosaic_stops_at_the_close_mosaic_epoch(bench):
    none = dict(flip=0.0, flipud=0.0, hsv=(0.0, 0.0, 0.0), affine=(0.0, 0.0, 0.0, 0.0), copy_paste=0.0)
    ds = DetectionDataset(bench, "closed_train", imgsz=64, augment=True, mosaic=1.0, mosaic_stop_epoch=2, **none)
    plain = DetectionDataset(bench, "closed_train", imgsz=64)
    assert not np.array_equal(ds[(1, 0)].image, plain[0].image)
    late = ds[(2, 0)]
    assert np.array_equal(late.image, plain[0].image) and np.array_equal(late.boxes, plain[0].boxes)
