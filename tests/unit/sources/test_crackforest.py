from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from source_layouts import assert_valid_record, write_image, write_mat

from rtvp.errors import DataError
from rtvp.sources import SOURCES
from rtvp.sources._masks import segmentation_to_mask

convert = SOURCES.get("crackforest")


def _seg() -> np.ndarray:
    seg = np.ones((32, 48), np.uint8)
    seg[4, 2:12] = 2
    seg[4, 13:20] = 2  # 1-px gap to the first fragment
    seg[20:28, 30:40] = 3  # enclosed block
    seg[12, 30:46] = 4  # faint crack line
    seg[30, 0:2] = 2  # 2-px speck
    return seg


@pytest.fixture
def cfd(tmp_path):
    write_image(tmp_path / "image/001.jpg", 48, 32)
    write_mat(tmp_path / "groundTruth/001.mat", _seg())
    write_image(tmp_path / "image/002.jpg", 48, 32)  # no ground truth: not yielded
    return tmp_path


def test_default_lines_mode_merges_fragments(cfd):
    (rec,) = convert(cfd)
    assert_valid_record(rec)
    assert rec.label_file.name == "001.mat" and (rec.width, rec.height) == (48, 32)
    assert [(a.bbox, a.label) for a in rec.annotations] == [((2.0, 4.0, 20.0, 5.0), "crack"),
                                                            ((30.0, 12.0, 46.0, 13.0), "crack")]
    mask = segmentation_to_mask(rec.annotations[0].segmentation, 32, 48)
    assert mask.sum() == 17 and mask[4, 12] == 0


@pytest.mark.parametrize(("mode", "boxes"), [
    ("crack", [(2.0, 4.0, 20.0, 5.0), (30.0, 12.0, 46.0, 13.0), (30.0, 20.0, 40.0, 28.0)]),
    ("ignore", [(2.0, 4.0, 20.0, 5.0)]),
])
def test_extra_values_modes(cfd, mode, boxes):
    (rec,) = convert(cfd, extra_values=mode)
    assert [a.bbox for a in rec.annotations] == boxes


def test_gap_zero_and_min_area(cfd):
    (rec,) = convert(cfd, merge_gap=0, min_area=1, label="Riss")
    assert len(rec.annotations) == 4 and {a.label for a in rec.annotations} == {"Riss"}


@pytest.mark.parametrize(("variables", "pattern"), [
    ({"other": np.ones((2, 2))}, r"001\.mat: no groundTruth\.Segmentation"),
    ({"groundTruth": {"Segmentation": np.full((32, 48), 7, np.uint8)}}, r"001\.mat: unexpected Segmentation value"),
    ({"groundTruth": {"Segmentation": np.ones((10, 10), np.uint8)}}, r"001\.mat: Segmentation is 10x10 but image"),
])
def test_malformed_mat_names_file(cfd, variables, pattern):
    scipy.io.savemat(str(cfd / "groundTruth/001.mat"), variables)
    with pytest.raises(DataError, match=pattern):
        list(convert(cfd))
    (rec,) = convert(cfd, on_error="skip")
    assert rec.annotations == [] and "001.mat" in rec.meta["issues"][0]


def test_junk_bytes_are_data_error(cfd):
    (cfd / "groundTruth/001.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(range(256)))
    with pytest.raises(DataError, match=r"001\.mat: not a readable MATLAB"):
        list(convert(cfd))
