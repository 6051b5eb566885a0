"""Masks through the service: RLE and measurements on detections, ``px_size``, facts for ``/v1/ask``, and the
page's RLE decoder (``static/masks.js``, run under Node.js).

``FakePredictor(masks=True)`` on the 200 x 100 image: prompt 0's box is [10, 10, 60, 30], its mask a 3-px strip,
rows 19-21 and columns 10-59 (area 150, width 3); prompt 1's box [74, 10, 124, 30], strip columns 74-123.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from rtvp.masks import decode_rle, encode_rle, measure_mask
from rtvp.service.app import STATIC
from rtvp.service.testing import FakePredictor


def post(client, path, image: bytes, **fields):
    return client.post(path, files={"image": ("part.png", image, "image/png")},
                       data={k: str(v) for k, v in fields.items()})


def _strip(x1: int, x2: int) -> np.ndarray:
    m = np.zeros((100, 200), bool)
    m[19:22, x1:x2] = True
    return m


@pytest.fixture
def masked(make_client):
    return make_client(predictor=FakePredictor(masks=True))


def test_detections_carry_rle_and_measurements(masked, png):
    r = post(masked, "/v1/detect", png, prompts="scratch, hole")
    assert r.status_code == 200, r.text
    first, second = r.json()["detections"]
    assert first["box"] == [10.0, 10.0, 60.0, 30.0]
    assert first["segmentation"]["size"] == [100, 200]
    np.testing.assert_array_equal(decode_rle(first["segmentation"]), _strip(10, 60))
    np.testing.assert_array_equal(decode_rle(second["segmentation"]), _strip(74, 124))
    assert (first["area_px"], first["width_px"]) == (150.0, 3.0)
    assert first["length_px"] == round(measure_mask(_strip(10, 60))["length_px"], 2) and 45 <= first["length_px"] <= 50
    assert first["area_mm"] is None and first["length_mm"] is None and first["width_mm"] is None


def test_px_size_adds_millimetres(masked, png):
    d = post(masked, "/v1/detect", png, prompts="scratch", px_size=0.1).json()["detections"][0]
    assert (d["area_mm"], d["width_mm"]) == (1.5, 0.3)  # 150 px * 0.01 mm^2; 3 px * 0.1 mm
    assert d["length_mm"] == pytest.approx(d["length_px"] * 0.1, abs=1e-3)


def test_conf_filter_keeps_masks_aligned(masked, png):
    dets = post(masked, "/v1/detect", png, prompts="a,b,c", conf=0.8).json()["detections"]
    assert [d["id"] for d in dets] == [0, 1]  # 0.9 and 0.83 pass, 0.76 does not
    np.testing.assert_array_equal(decode_rle(dets[1]["segmentation"]), _strip(74, 124))


def test_models_without_masks_return_null_fields(client, png):
    d = post(client, "/v1/detect", png, prompts="hole", px_size=0.1).json()["detections"][0]
    assert all(d[k] is None for k in ("segmentation", "area_px", "length_px", "width_px", "area_mm", "length_mm",
                                      "width_mm"))


@pytest.mark.parametrize("path", ["/v1/detect", "/v1/ask"])
@pytest.mark.parametrize("bad", [0, -0.5, "nan", "inf", 2e6, "tiny"])
def test_bad_px_size_422_names_the_field(masked, png, path, bad):
    r = post(masked, path, png, question="how long?", px_size=bad)
    assert r.status_code == 422, r.text
    body = r.json()["error"]
    assert body["code"] == "invalid_request" and "px_size" in body["message"]


def test_ask_uses_mask_sizes(masked, png):
    r = post(masked, "/v1/ask", png, question="how long is the scratch?", prompts="scratch,hole", px_size=0.1)
    assert r.status_code == 200, r.text
    body = r.json()
    length_mm = body["detections"][0]["length_mm"]
    assert body["facts"]["boxes"][0]["mask"]["length_mm"] == pytest.approx(length_mm, abs=1e-3)
    assert body["answer"].startswith(f"scratch [#0]: {length_mm:.1f} mm long, 0.3 mm wide, 1.5 mm² (mask)")
    assert body["box_ids"] == [0] and "boxes[#0].mask" in body["facts_used"]
    plain = post(masked, "/v1/ask", png, question="where is the scratch?", prompts="scratch,hole").json()
    assert plain["answer"].startswith(f"a {body['detections'][0]['length_px']:.0f} px long scratch [#0] at the")


def test_ask_measures_each_mask_once(masked, png, monkeypatch):
    import rtvp.masks

    calls = []
    real = rtvp.masks.measure_mask
    monkeypatch.setattr(rtvp.masks, "measure_mask", lambda *a, **k: calls.append(1) or real(*a, **k))
    body = post(masked, "/v1/ask", png, question="how long is the scratch?", prompts="scratch,hole").json()
    assert len(calls) == len(body["detections"]) > 0  # facts and reported detections share one measurement


def test_openapi_documents_the_new_fields(client):
    spec = client.get("/openapi.json").json()
    detection = spec["components"]["schemas"]["Detection"]["properties"]
    assert {"segmentation", "area_px", "length_px", "width_px", "area_mm", "length_mm", "width_mm"} <= set(detection)
    for op in ("/v1/detect", "/v1/ask"):
        ref = spec["paths"][op]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
        form = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"]
        assert form["px_size"]["exclusiveMinimum"] == 0.0 and form["px_size"]["maximum"] == 1e6


def _runs(mask: np.ndarray) -> list[int]:
    """Column-major run lengths, starting with a run of 0s (COCO's uncompressed RLE), by hand."""
    flat = mask.flatten(order="F").astype(int)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])) != 0)
    return np.diff(np.concatenate([[0], edges])).tolist()


def test_page_rle_decoder_matches_pycocotools(tmp_path):
    """``rleCounts`` in static/masks.js (run by Node.js) reads the same runs the server encoded."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js not installed")
    rng = np.random.default_rng(0)
    masks = [rng.random((23, 31)) < 0.4, _strip(10, 60), np.ones((3, 4), bool), np.zeros((5, 5), bool)]
    rles = [encode_rle(m)["counts"] for m in masks]
    script = tmp_path / "check.js"
    script.write_text((STATIC / "masks.js").read_text()
                      + f"\nconsole.log(JSON.stringify({json.dumps(rles)}.map(rleCounts)));\n")
    got = json.loads(subprocess.run([node, str(script)], capture_output=True, text=True, check=True,
                                    timeout=60).stdout)
    assert got[0] == _runs(masks[0]) and got[1] == _runs(masks[1])
    assert got[2] == [0, 12] and got[3] == [25]
