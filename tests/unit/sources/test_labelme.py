from __future__ import annotations

import json

import pytest
from source_layouts import assert_valid_record, labelme_json, polygon_shape, write_image

from rtvp.errors import DataError
from rtvp.sources import SOURCES

convert = SOURCES.get("labelme")


@pytest.fixture
def bsdata(tmp_path):
    write_image(tmp_path / "data/a.jpg", 50, 40)
    write_image(tmp_path / "data/b.png", 20, 20)
    (tmp_path / "label").mkdir()
    shapes = [polygon_shape("Pitting", [[10.5, 5], [20, 8.25], [12, 30]]),
              polygon_shape("Pitting", [[40, 30], [30, 20]], "rectangle"),
              polygon_shape("marker", [[1, 1]], "point")]
    (tmp_path / "label/a.json").write_text(labelme_json("..\\data\\a.jpg", shapes))  # Windows-style imagePath
    (tmp_path / "label/b.json").write_text(labelme_json("", [polygon_shape("Pitting", [[1, 1], [5, 1], [3, 4]])]))
    return tmp_path


def test_polygons_rectangles_and_image_lookup(bsdata):
    recs = list(convert(bsdata, images="data", labels="label"))
    assert [r.path.name for r in recs] == ["a.jpg", "b.png"]  # b: no imagePath -> found by JSON stem
    for r in recs:
        assert_valid_record(r)
    poly, rect = recs[0].annotations
    assert poly.bbox == (10.5, 5.0, 20.0, 30.0) and poly.segmentation == [[10.5, 5.0, 20.0, 8.25, 12.0, 30.0]]
    assert rect.bbox == (30.0, 20.0, 40.0, 30.0) and rect.segmentation is None
    assert recs[0].meta["skipped_shapes"] == 1 and (recs[0].width, recs[0].height) == (50, 40)


def test_image_path_relative_to_json_by_default(tmp_path):
    write_image(tmp_path / "imgs/x.jpg", 9, 7)
    (tmp_path / "ann").mkdir()
    circle = polygon_shape("dent", [[4, 4], [4, 6]], "circle")
    (tmp_path / "ann/x.json").write_text(labelme_json("../imgs/x.jpg", [circle]))
    (rec,) = convert(tmp_path, labels="ann")
    assert rec.path == tmp_path / "imgs/x.jpg" and rec.annotations[0].bbox == (2.0, 2.0, 6.0, 6.0)


def test_missing_image_is_issue(bsdata):
    (bsdata / "data/a.jpg").unlink()
    recs = list(convert(bsdata, images="data", labels="label"))
    assert "image file not found" in recs[0].meta["issues"][0] and recs[0].annotations


@pytest.mark.parametrize(("data", "pattern"), [
    ("{not json", r"a\.json: not valid labelme JSON"),
    ([1, 2], r"a\.json: expected a labelme object"),
    ({"shapes": [{"label": "x", "points": [[1, 2], [3, "y"]]}]}, r"a\.json: shapes\[0\] points\[1\]"),
    ({"shapes": [{"label": "x", "points": [[1, 2], [3, 4]], "shape_type": "polygon"}]}, r"shapes\[0\]: polygon"),
    ({"shapes": [{"label": "", "points": [[1, 2], [3, 4], [5, 6]]}]}, r"shapes\[0\]: 'label'"),
    ({"shapes": [{"label": "x", "points": [[1, 2]], "shape_type": "rectangle"}]}, r"rectangle needs 2"),
    ({"shapes": [], "imagePath": 5}, r"'imagePath' must be a string"),
])
def test_malformed_json_names_file(bsdata, data, pattern):
    (bsdata / "label/a.json").write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(DataError, match=pattern):
        list(convert(bsdata, images="data", labels="label"))
    recs = list(convert(bsdata, images="data", labels="label", on_error="skip"))
    assert recs[0].annotations == [] and "a.json" in recs[0].meta["issues"][0]
