from __future__ import annotations

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from tinybench import write_tiny_bench
from typer.testing import CliRunner

from rtvp.bench.export_seg import bridge, yolo_seg_labels
from rtvp.cli.main import app
from rtvp.errors import DataError

W, H = 200, 100


def _coco(*anns):
    return {"images": [{"id": 1, "width": W, "height": H}], "categories": [{"id": 3, "name": "crack"}],
            "annotations": [{"id": i, "image_id": 1, "category_id": 3, **a} for i, a in enumerate(anns)]}


def _raster(line: str) -> np.ndarray:
    """Fill a label line's polygon at the image size, as Ultralytics rasterises it (cv2.fillPoly)."""
    pts = np.array(line.split()[1:], dtype=np.float64).reshape(-1, 2) * [W, H]
    out = np.zeros((H, W), np.uint8)
    cv2.fillPoly(out, [np.round(pts).astype(np.int32)], 1)
    return out.astype(bool)


def _poly_mask(polys: list[list[float]]) -> np.ndarray:
    out = np.zeros((H, W), np.uint8)
    cv2.fillPoly(out, [np.round(np.array(p).reshape(-1, 2)).astype(np.int32) for p in polys], 1)
    return out.astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_single_polygon_is_normalised_hand_checked():
    lines = yolo_seg_labels(_coco({"bbox": [20, 10, 40, 30], "segmentation": [[20, 10, 60, 10, 40, 40]]}))
    assert lines == {1: ["0 0.100000 0.100000 0.300000 0.100000 0.200000 0.400000"]}


def test_three_pieces_bridge_to_their_union():
    pieces = [[10, 10, 30, 10, 30, 30, 10, 30], [100, 20, 130, 20, 130, 60, 100, 60],
              [160, 70, 190, 70, 175, 95]]
    ring = bridge([np.array(p, dtype=float).reshape(-1, 2) for p in pieces])
    assert ring.shape == (4 + 4 + 3 + 3 + 1, 2)  # each piece closed on itself, then back over piece 2's first point
    assert ring[-1].tolist() == [100, 20]
    (line,) = yolo_seg_labels(_coco({"bbox": [10, 10, 180, 85], "segmentation": pieces}))[1]
    got, want = _raster(line), _poly_mask(pieces)
    jumps = np.hypot(90, 10) + np.hypot(60, 50)  # bridge lengths in px: a0 -> b0 -> c0
    assert (got & want).sum() == want.sum()  # the union of the pieces is covered, none of the three lost
    assert (got & ~want).sum() <= jumps + 4  # what is extra is the one-pixel bridges


def test_rle_is_traced_and_box_only_becomes_its_rectangle():
    mask = np.zeros((H, W), np.uint8, order="F")
    mask[40:60, 50:150] = 1
    rle = mask_utils.encode(mask)
    rle["counts"] = rle["counts"].decode("ascii")
    lines = yolo_seg_labels(_coco({"bbox": [50, 40, 100, 20], "segmentation": rle},
                                  {"bbox": [0, 0, 20, 10]},  # box-only
                                  {"bbox": [0, 0, 5, 5], "segmentation": [[0, 0, 5, 0, 5, 5]], "iscrowd": 1}))[1]
    assert len(lines) == 2
    assert _iou(_raster(lines[0]), mask.astype(bool)) > 0.95
    assert lines[1] == "0 0.000000 0.000000 0.100000 0.000000 0.100000 0.100000 0.000000 0.100000"


def test_points_are_clipped_and_outside_instances_dropped():
    lines = yolo_seg_labels(_coco({"bbox": [190, 90, 20, 20], "segmentation": [[190, 90, 210, 90, 210, 110]]},
                                  {"bbox": [300, 0, 5, 5], "segmentation": [[300, 0, 305, 0, 305, 5]]}))[1]
    assert lines == ["0 0.950000 0.900000 1.000000 0.900000 1.000000 1.000000"]
    with pytest.raises(DataError, match="annotation 0 refers to unknown image/category"):
        yolo_seg_labels({**_coco(), "annotations": [{"id": 0, "image_id": 9, "category_id": 3, "bbox": [0, 0, 1, 1]}]})


def test_export_command_yolo_seg(tmp_path):
    bench = write_tiny_bench(tmp_path)
    result = CliRunner().invoke(app, ["data", "export", str(bench), "--format", "yolo-seg", "--out",
                                      str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "segmentation dataset" in (tmp_path / "s" / "data.yaml").read_text()
    # image 1 is 200x100 and its instances carry no polygon in the tiny bench: box rectangles
    line = (tmp_path / "s/labels/train/metal__img1.txt").read_text().splitlines()[0]
    assert line == "0 0.000000 0.000000 0.500000 0.000000 0.500000 0.050000 0.000000 0.050000"
