from __future__ import annotations

import numpy as np

from rtvp.data import DetectionDataset
from rtvp.data.annotations import box_corners
from rtvp.data.copy_paste import InstanceBank, instance_mask, paste
from rtvp.data.mosaic import mosaic4
from rtvp.data.transforms import Annotated

NO_AUG = dict(mosaic=0.0, flip=0.0, flipud=0.0, hsv=(0.0, 0.0, 0.0), affine=(0.0, 0.0, 0.0, 0.0), copy_paste=0.0)


def boxed(img: np.ndarray, boxes, labels) -> Annotated:
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    owner = np.repeat(np.arange(len(boxes)), 4)
    return Annotated(img, boxes, np.asarray(labels, dtype=np.int64), box_corners(boxes), owner, owner,
                     np.zeros(len(boxes), bool))


def test_mosaic_places_tiles_around_centre(renderer):
    rects = [(12, 12, 20, 20)] * 3 + [(20, 20, 30, 30)]
    tiles = [boxed(renderer(32, 32, 3, [r], seed=i), [r], [i]) for i, r in enumerate(rects)]
    out = mosaic4(tiles, 32, center=(40, 24))
    assert out.image.shape == (64, 64, 3)
    # offsets: tile0 (8, -8), tile1 (40, -8), tile2 (8, 24), tile3 (40, 24); tile3's box is cut at x = 64
    expected = [[20, 4, 28, 12], [52, 4, 60, 12], [20, 36, 28, 44], [60, 44, 64, 54]]
    np.testing.assert_allclose(out.boxes, expected)
    assert out.labels.tolist() == [0, 1, 2, 3]
    for x1, y1, x2, y2 in out.boxes.astype(int):
        assert (out.image[y1:y2, x1:x2] == 255).all()
    assert (out.image.min(axis=2) == 255).sum() == 3 * 64 + 40


def test_mosaic_drops_instances_cut_off(renderer):
    tiles = [boxed(renderer(32, 32, 3, [(2, 2, 10, 10)], seed=i), [(2, 2, 10, 10)], [i]) for i in range(4)]
    out = mosaic4(tiles, 32, center=(40, 24))
    # tile0 moves by (8, -8): its box keeps 2 px of height -> dropped; tile1 too; tiles 2 and 3 stay whole
    np.testing.assert_allclose(out.boxes, [[10, 26, 18, 34], [42, 26, 50, 34]])
    assert out.labels.tolist() == [2, 3]


def test_dataset_mosaic_shape_and_boxes_on_objects(bench):
    ds = DetectionDataset(bench, "closed_train", imgsz=64, augment=True, **{**NO_AUG, "mosaic": 1.0})
    total = sum(len(e.boxes) for e in ds.entries)
    n_boxes = []
    for epoch in range(4):
        s = ds[(epoch, 3)]
        assert s.image.shape == (64, 64, 3)
        assert len(s.boxes) <= 4 * max(len(e.boxes) for e in ds.entries) and len(s.boxes) <= 4 * total
        assert (s.boxes >= 0).all() and (s.boxes <= 64).all()
        for x1, y1, x2, y2 in np.round(s.boxes).astype(int):
            inner = s.image[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1]
            assert inner.size == 0 or inner.mean() > 180, "a mosaic box left its white object"
        n_boxes.append(len(s.boxes))
    assert max(n_boxes) >= 2  # four tiles really were combined


def make_triangle_source(renderer) -> Annotated:
    img = renderer(40, 40, 3, [], seed=5)
    img[8:30, 6:34] = np.random.default_rng(9).integers(100, 255, (22, 28, 3), dtype=np.uint8)
    pts = np.array([[6, 8], [34, 8], [20, 30]], dtype=np.float32)
    return Annotated(img, np.array([[6, 8, 34, 30]], np.float32), np.array([2]), pts, np.zeros(3, np.int64),
                     np.zeros(3, np.int64), np.array([True]))


def test_paste_copies_the_masked_source_pixels(renderer):
    src = make_triangle_source(renderer)
    target = boxed(renderer(64, 64, 3, [], seed=1), np.zeros((0, 4)), [])
    before = target.image.copy()
    out = paste(target, src, 0, np.random.default_rng(0), mirror=False)
    assert len(out) == 1 and out.labels.tolist() == [2]
    assert np.array_equal(target.image, before), "the target array must not be written in place"
    x, y = int(out.boxes[0, 0]), int(out.boxes[0, 1])
    np.testing.assert_allclose(out.boxes[0], [x, y, x + 28, y + 22])
    mask = instance_mask(src, 0, 6, 8, 28, 22)
    assert mask.any() and not mask.all() and mask[0, 14] and not mask[21, 0]  # a triangle, apex down
    region, crop = out.image[y : y + 22, x : x + 28], src.image[8:30, 6:34]
    assert np.array_equal(region[mask], crop[mask])
    assert np.array_equal(region[~mask], before[y : y + 22, x : x + 28][~mask])
    np.testing.assert_allclose(out.points, src.points + [x - 6, y - 8])


def test_paste_mirrored_moves_outline_with_pixels(renderer):
    src = make_triangle_source(renderer)
    target = boxed(renderer(64, 64, 3, [], seed=1), np.zeros((0, 4)), [])
    out = paste(target, src, 0, np.random.default_rng(0), mirror=True)
    x, y = int(out.boxes[0, 0]), int(out.boxes[0, 1])
    mask = instance_mask(src, 0, 6, 8, 28, 22)[:, ::-1]
    assert np.array_equal(out.image[y : y + 22, x : x + 28][mask], src.image[8:30, 6:34][:, ::-1][mask])
    assert out.boxes[0, 2] - out.boxes[0, 0] == 28


def test_paste_avoids_heavy_overlap(renderer):
    src = make_triangle_source(renderer)
    crowded = boxed(renderer(64, 64, 3, [], seed=1), [[0, 0, 64, 64]], [0])
    assert len(paste(crowded, src, 0, np.random.default_rng(0))) == 1  # no free spot: unchanged
    half = boxed(renderer(64, 64, 3, [], seed=1), [[0, 0, 30, 64]], [0])
    for seed in range(5):
        out = paste(half, src, 0, np.random.default_rng(seed), tries=64)
        if len(out) == 2:
            inter = max(0.0, 30 - out.boxes[1, 0]) * 22
            assert inter / (28 * 22) < 0.3


def test_instance_bank_stays_within_scene(bench):
    ds = DetectionDataset(bench, "closed_train", imgsz=64, augment=True, **{**NO_AUG, "copy_paste": 1.0})
    bank = InstanceBank(ds.entries)
    groups = [e.group for e in ds.entries]
    for target in range(len(ds)):
        for j, _ in bank.draw(target, 10, np.random.default_rng(target)):
            assert j != target and groups[j] == groups[target]
    assert bank.defect_free.tolist() == [False, False, True, False, False, False]


def test_dataset_copy_paste_fills_defect_free_image(bench):
    ds = DetectionDataset(bench, "closed_train", imgsz=96, augment=True, **{**NO_AUG, "copy_paste": 1.0})
    counts = []
    for epoch in range(6):
        s = ds[(epoch, 2)]  # image 3: defect-free steel image
        counts.append(len(s.boxes))
        assert set(s.labels.tolist()) <= {0, 1, 2}  # steel classes only, never the pcb one
        for x1, y1, x2, y2 in np.round(s.boxes).astype(int):
            assert s.image[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1].mean() > 200  # the pasted white defect
    assert min(counts) >= 1 and max(counts) <= 3


def test_open_protocol_never_pastes_unseen(bench):
    ds = DetectionDataset(bench, "open_train", "open", imgsz=64, augment=True, **{**NO_AUG, "copy_paste": 1.0})
    for epoch in range(6):
        for i in range(len(ds)):
            assert 1 not in ds[(epoch, i)].labels.tolist()
