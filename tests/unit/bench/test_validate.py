from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from rtvp.bench.dedup import first_occurrence, near_duplicate_groups, near_duplicate_pairs
from rtvp.bench.validate import Issue, IssueLog, check_image, clip_segmentation, fix_boxes


def _jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_check_image_reads_metadata_and_hashes(kit, tmp_path):
    rgb = np.stack([kit.texture(1)] * 3, axis=2)
    path = tmp_path / "a.jpg"
    path.write_bytes(_jpeg(rgb))
    res = check_image(str(path))
    assert res.error is None
    assert (res.width, res.height, res.channels) == (64, 48, 3)
    assert res.sha1 == hashlib.sha1(path.read_bytes()).hexdigest()
    gray = tmp_path / "g.png"
    gray.write_bytes(kit.png(kit.texture(1)))
    assert check_image(str(gray)).channels == 1
    arr = tmp_path / "m.npy"
    np.save(arr, np.zeros((10, 20, 5), np.uint8))
    assert (lambda r: (r.width, r.height, r.channels))(check_image(str(arr))) == (20, 10, 5)


def test_phash_is_stable_under_exposure_and_far_between_textures(kit, tmp_path):
    base = kit.texture(7).astype(np.int16)
    hashes = []
    for i, img in enumerate([base, np.clip(base * 0.8 + 20, 0, 255), kit.texture(8)]):
        p = tmp_path / f"{i}.png"
        p.write_bytes(kit.png(img.astype(np.uint8)))
        hashes.append(check_image(str(p)).phash)
    dist = [bin(hashes[0] ^ h).count("1") for h in hashes[1:]]
    assert dist[0] <= 2 and dist[1] >= 16


@pytest.mark.parametrize("cut", [2, 200, 1000])
def test_truncated_jpeg_is_unreadable(kit, tmp_path, cut):
    data = _jpeg(np.stack([kit.texture(3)] * 3, axis=2))
    path = tmp_path / "t.jpg"
    path.write_bytes(data[:-cut])
    res = check_image(str(path))
    assert res.error is not None and res.error.startswith("unreadable_image")


def test_missing_garbage_and_empty_label(tmp_path):
    assert check_image(str(tmp_path / "none.png")).error.startswith("missing_image")
    (tmp_path / "x.png").write_bytes(b"garbage")
    assert check_image(str(tmp_path / "x.png")).error.startswith("unreadable_image")
    (tmp_path / "e.txt").write_text("  \n")
    (tmp_path / "f.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert check_image(str(tmp_path / "x.png"), str(tmp_path / "e.txt")).empty_label
    assert not check_image(str(tmp_path / "x.png"), str(tmp_path / "f.txt")).empty_label


def test_fix_boxes_hand_cases():
    boxes = [[-5, 2, 10, 8], [5, 5, 5, 9], [95, 40, 120, 60], [200, 10, 220, 20], [1, 1, 3, 3], [np.nan, 0, 1, 1],
             [9, 9, 2, 2]]
    clipped, was_clipped, keep = fix_boxes(np.array(boxes, float), 100, 50, min_size=1.0)
    assert clipped[0].tolist() == [0, 2, 10, 8] and clipped[2].tolist() == [95, 40, 100, 50]
    assert was_clipped.tolist() == [True, False, True, True, False, False, False]
    assert keep.tolist() == [True, False, True, False, True, False, False]  # zero-width, outside, NaN, inverted
    assert fix_boxes(np.array([[0, 0, 1.5, 1.5]]), 10, 10, min_size=2.0)[2].tolist() == [False]


def test_clip_segmentation():
    assert clip_segmentation([[-1, 2, 12, 3, 5, 20]], 10, 10) == [[0, 2, 10, 3, 5, 10]]
    rle = {"size": [10, 10], "counts": "abc"}
    assert clip_segmentation(rle, 10, 10) is rle


def test_issue_log_writes_csv_and_counts(tmp_path):
    log = IssueLog(tmp_path / "r" / "issues.csv", keep=1)
    log.add(Issue("a.txt", "unknown_class", "class 'x'", line=3))
    log.add(Issue("b.png", "unreadable_image"))
    log.close()
    assert (tmp_path / "r" / "issues.csv").read_text().splitlines() == [
        "file,line,reason,detail", "a.txt,3,unknown_class,class 'x'", "b.png,,unreadable_image,"]
    assert log.total == 2 and "1 more" in log.summary()


def test_first_occurrence():
    keys = np.array([b"b", b"a", b"b", b"c", b"a"], dtype="S20")
    assert first_occurrence(keys).tolist() == [0, 1, 0, 3, 1]
    assert first_occurrence(np.zeros(0, "S20")).tolist() == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2**12 - 1), min_size=0, max_size=120), st.integers(0, 6))
def test_multi_index_hashing_matches_brute_force(values, k):
    """Low-entropy 12-bit hashes force many near pairs: recall and precision must be exact."""
    hashes = np.unique(np.array(values, dtype=np.uint64))
    got = near_duplicate_pairs(hashes, k)
    dist = np.bitwise_count(hashes[:, None] ^ hashes[None, :]) if len(hashes) else np.zeros((0, 0))
    want = np.argwhere(np.triu(dist <= k, 1)) if k > 0 else np.zeros((0, 2), int)
    assert got.tolist() == want.tolist()


def test_near_duplicate_groups_chain_and_label_by_first_member():
    h = np.array([0b0000, 0b1111_0000, 0b0001, 0b0011, 0b0000, 0b1111_0001], dtype=np.uint64)
    assert near_duplicate_groups(h, 1).tolist() == [0, 1, 0, 0, 0, 1]  # 0-2-3 chain, 4 identical to 0
    assert near_duplicate_groups(h, 0).tolist() == [0, 1, 2, 3, 0, 5]
    assert near_duplicate_groups(np.zeros(0, np.uint64), 3).tolist() == []
