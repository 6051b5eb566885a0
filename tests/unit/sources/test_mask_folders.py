from __future__ import annotations

import numpy as np
import pytest
from source_layouts import assert_valid_record, write_image, write_mask

from rtvp.errors import ConfigError, DataError
from rtvp.sources import SOURCES
from rtvp.sources._masks import edge_polygons, mask_instances, segmentation_to_mask

convert = SOURCES.get("mask_folders")


def _blob_mask() -> np.ndarray:
    m = np.zeros((30, 40), np.uint8)
    m[2:6, 3:11] = 255  # 4x8 block
    m[1, 3:11] = 100  # soft edge below threshold: not object
    m[6, 3:11] = 128  # soft edge at threshold: object -> rows 2..6
    m[15:25, 20:30] = 255  # 10x10 ring with a hole -> RLE
    m[18:22, 23:27] = 0
    m[28, 0:2] = 255  # 2-pixel speck < min_area 4
    return m


@pytest.fixture
def tiles(tmp_path):
    write_image(tmp_path / "MT_Blowhole/Imgs/a.jpg", 40, 30, 1)
    write_mask(tmp_path / "MT_Blowhole/Imgs/a.png", _blob_mask())
    write_image(tmp_path / "MT_Free/Imgs/b.jpg", 40, 30, 1)
    write_mask(tmp_path / "MT_Free/Imgs/b.png", np.zeros((30, 40)))
    return tmp_path


def test_components_boxes_and_exact_segmentation(tiles):
    recs = list(convert(tiles, image_glob="MT_*/Imgs/*.jpg"))
    assert [r.path.name for r in recs] == ["a.jpg", "b.jpg"]
    blob, free = recs
    for r in recs:
        assert_valid_record(r)
    assert free.annotations == [] and free.meta["class_folder"] == "MT_Free" and free.label_file.name == "b.png"
    assert [a.label for a in blob.annotations] == ["MT_Blowhole", "MT_Blowhole"]
    block, ring = blob.annotations
    assert block.bbox == (3.0, 2.0, 11.0, 7.0) and ring.bbox == (20.0, 15.0, 30.0, 25.0)
    assert isinstance(block.segmentation, list) and isinstance(ring.segmentation, dict)
    truth = _blob_mask() >= 128
    truth[28] = False
    got = sum(segmentation_to_mask(a.segmentation, 30, 40).astype(int) for a in blob.annotations)
    np.testing.assert_array_equal(got, truth.astype(int))


def test_min_area_and_parent_class(tiles):
    recs = list(convert(tiles, image_glob="MT_*/Imgs/*.jpg", min_area=1, class_from="parent"))
    assert len(recs[0].annotations) == 3 and recs[0].annotations[0].label == "Imgs"


def test_merge_gap_joins_close_fragments():
    m = np.zeros((10, 20), np.uint8)
    m[4, 2:8] = 1
    m[4, 10:16] = 1  # 2-pixel gap
    assert len(mask_instances(m, "crack", min_area=1)) == 2
    (joined,) = mask_instances(m, "crack", min_area=1, merge_gap=2)
    assert joined.bbox == (2.0, 4.0, 16.0, 5.0) and len(joined.segmentation) == 2
    np.testing.assert_array_equal(segmentation_to_mask(joined.segmentation, 10, 20), m)


@pytest.mark.parametrize("mask", [np.eye(5, dtype=np.uint8), np.ones((1, 7), np.uint8), np.array([[1, 0], [0, 1]])])
def test_edge_polygons_are_exact_for_thin_shapes(mask):
    polys = edge_polygons(mask)
    np.testing.assert_array_equal(segmentation_to_mask(polys, *mask.shape), mask)


def test_missing_mask_and_size_mismatch(tiles):
    write_image(tiles / "MT_Crack/Imgs/c.jpg", 10, 10, 1)
    recs = {r.path.stem: r for r in convert(tiles, image_glob="MT_*/Imgs/*.jpg")}
    assert "mask file not found" in recs["c"].meta["issues"][0]
    write_mask(tiles / "MT_Crack/Imgs/c.png", np.zeros((11, 10)))
    with pytest.raises(DataError, match=r"c\.png: mask is 10x11 but image c\.jpg is 10x10"):
        list(convert(tiles, image_glob="MT_*/Imgs/*.jpg"))


def test_low_valued_binary_mask_asks_for_threshold(tiles):
    write_mask(tiles / "MT_Free/Imgs/b.png", (_blob_mask() > 0).astype(np.uint8))
    with pytest.raises(DataError, match=r"b\.png: binary mask with values 0/1.*threshold: 1"):
        list(convert(tiles, image_glob="MT_*/Imgs/*.jpg"))
    recs = list(convert(tiles, image_glob="MT_*/Imgs/*.jpg", threshold=1))
    assert len(recs[1].annotations) == 2


def test_corrupt_mask_and_bad_suffix(tiles):
    (tiles / "MT_Free/Imgs/b.png").write_bytes(b"\x89PNG\r\n")
    with pytest.raises(DataError, match=r"b\.png"):
        list(convert(tiles))
    recs = list(convert(tiles, on_error="skip"))
    assert "b.png" in recs[1].meta["issues"][0] and recs[1].annotations == []
    with pytest.raises(ConfigError, match="own mask"):
        list(convert(tiles, image_glob="**/*.png"))


def test_mask_suffix_skips_masks_matched_by_glob(tmp_path):
    write_image(tmp_path / "dent/x.png", 8, 8, 1)
    m = np.zeros((8, 8))
    m[1:4, 1:4] = 255
    write_mask(tmp_path / "dent/x_mask.png", m)
    recs = list(convert(tmp_path, image_glob="*/*.png", mask_suffix="_mask.png"))
    assert [r.path.name for r in recs] == ["x.png"] and recs[0].annotations[0].bbox == (1.0, 1.0, 4.0, 4.0)
