"""Converters on the real shared copies: the image and box counts stated in each SOURCE.md."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
from source_layouts import assert_valid_record

from rtvp.imaging import read_image
from rtvp.sources import SOURCES
from rtvp.sources._masks import segmentation_to_mask

CPLID = {"images": "Defective_Insulators/images",
         "annotations": ["Defective_Insulators/labels/defect", "Defective_Insulators/labels/insulator"]}


def _convert(root, fmt, **options):
    t0 = time.perf_counter()
    recs = list(SOURCES.get(fmt)(root, **options))
    elapsed = time.perf_counter() - t0
    assert elapsed < 10, f"{fmt} on {root} took {elapsed:.1f} s"
    for r in recs:
        assert_valid_record(r)
        assert r.path.is_file() and "issues" not in r.meta and r.width > 0 and r.height > 0
    return recs


def _boxes(recs):
    return dict(Counter(a.label for r in recs for a in r.annotations))


def test_deeppcb(shared_datasets):
    recs = _convert(shared_datasets / "deeppcb", "deeppcb")
    assert len(recs) == 539 and {(r.width, r.height) for r in recs} == {(640, 640)}
    assert _boxes(recs) == {"open": 686, "mousebite": 746, "copper": 517, "pin-hole": 547, "short": 539, "spur": 589}
    assert Counter(r.meta["official_split"] for r in recs) == {"trainval": 381, "test": 158}
    assert all(1 <= len(r.annotations) <= 15 for r in recs)
    assert len(list(SOURCES.get("deeppcb")(shared_datasets / "deeppcb", split="test", templates=True))) == 2 * 158


def test_neu_det(shared_datasets):
    recs = _convert(shared_datasets / "neu_det", "voc", images="IMAGES", annotations="ANNOTATIONS")
    assert len(recs) == 1500 and {(r.width, r.height) for r in recs} == {(200, 200)}
    assert Counter(r.path.stem.rsplit("_", 1)[0] for r in recs) == dict.fromkeys(
        ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"], 250)
    assert _boxes(recs) == {"crazing": 568, "inclusion": 837, "scratches": 458, "patches": 736,
                            "pitted_surface": 354, "rolled-in_scale": 522}
    assert all(1 <= len(r.annotations) <= 9 for r in recs)


def test_cplid(shared_datasets):
    recs = _convert(shared_datasets / "cplid_insulator", "voc", **CPLID)
    assert len(recs) == 142 and {(r.width, r.height) for r in recs} == {(1152, 864)}
    assert all(sorted(a.label for a in r.annotations) == ["defect", "insulator"] for r in recs)


def test_magnetic_tile(shared_datasets):
    root = shared_datasets / "magnetic_tile"
    recs = _convert(root, "mask_folders", image_glob="MT_*/Imgs/*.jpg")
    assert Counter(r.meta["class_folder"] for r in recs) == {
        "MT_Blowhole": 92, "MT_Break": 68, "MT_Crack": 46, "MT_Fray": 26, "MT_Free": 154, "MT_Uneven": 82}
    assert not any(r.annotations for r in recs if r.meta["class_folder"] == "MT_Free")
    assert all(a.label == r.meta["class_folder"] for r in recs for a in r.annotations)
    assert all(a.segmentation for r in recs for a in r.annotations)
    defect = [r for r in recs if r.meta["class_folder"] != "MT_Free"]
    all_zero = {r.path.relative_to(root).with_suffix(".png").as_posix() for r in defect
                if not read_image(r.label_file, channels=1).any()}
    assert all_zero == {"MT_Uneven/Imgs/exp3_num_45042.png", "MT_Uneven/Imgs/exp4_num_124690.png",
                        "MT_Uneven/Imgs/exp4_num_352527.png"}
    boxless = {r.path.relative_to(root).with_suffix(".png").as_posix() for r in defect if not r.annotations}
    # plus exp4_num_24843, whose only foreground is a 3-pixel speck below min_area=4
    assert boxless == all_zero | {"MT_Uneven/Imgs/exp4_num_24843.png"}
    assert sum(len(r.annotations) for r in defect) == 366


def test_bsdata(shared_datasets):
    recs = _convert(shared_datasets / "bsdata", "labelme", images="data", labels="label")
    assert len(recs) == 105 and _boxes(recs) == {"Pitting": 129}
    assert all(1 <= len(r.annotations) <= 6 for r in recs)
    assert all(isinstance(a.segmentation, list) for r in recs for a in r.annotations)
    assert Counter((r.width, r.height) for r in recs)[(1130, 460)] > 0


def test_crackforest(shared_datasets):
    recs = _convert(shared_datasets / "crackforest", "crackforest")
    assert len(recs) == 98 and {(r.width, r.height) for r in recs} == {(480, 320)}
    assert all(r.annotations for r in recs)  # every CFD image has a crack
    n = sum(len(r.annotations) for r in recs)
    assert n == 144
    # merged instances never overlap and never add pixels outside the ground truth
    r = next(r for r in recs if r.path.stem == "097")
    cover = sum(segmentation_to_mask(a.segmentation, 320, 480).astype(int) for a in r.annotations)
    assert cover.max() == 1 and np.count_nonzero(cover) == 9724  # value 2 only (097 has no 4s)
