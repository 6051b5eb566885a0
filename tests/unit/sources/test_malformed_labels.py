"""Property tests: malformed label files never crash a converter with anything but an error naming the file.

For every format a valid one-image layout is written, then its label file is replaced by generated content: random
bytes/text, truncations and byte flips of the valid file, and structure-aware junk (wrong column counts, odd
tokens, JSON with wrong types, masks/matrices of the wrong size or values). Each run must either yield valid
records or raise ``DataError``/``ConfigError`` whose message contains the label file's name.
"""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from source_layouts import assert_valid_record, minimal, voc_xml

from rtvp.errors import ConfigError, DataError
from rtvp.sources import SOURCES

FORMATS = ["coco", "crackforest", "deeppcb", "labelme", "mask_folders", "voc", "yolo"]

TOKENS = st.one_of(st.sampled_from(["0", "1", "3", "6", "7", "-2", "0.5", "1e400", "nan", "inf", "x", ",", "1,2"]),
                   st.text(alphabet="0123456789.-e,x ", max_size=5))
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-(10**400), 10**400), st.floats(), st.text(max_size=6))


def _lines(n_max: int = 9) -> st.SearchStrategy[bytes]:
    line = st.lists(TOKENS, max_size=n_max).map(" ".join)
    return st.lists(line, max_size=4).map("\n".join).map(str.encode)


def _json_tree() -> st.SearchStrategy[bytes]:
    keys = st.sampled_from(["shapes", "points", "label", "shape_type", "imagePath", "images", "annotations",
                            "categories", "id", "name", "file_name", "image_id", "category_id", "bbox",
                            "segmentation", "iscrowd", "size", "counts"])
    tree = st.recursive(JUNK, lambda c: st.lists(c, max_size=4) | st.dictionaries(keys, c, max_size=5), max_leaves=25)
    return tree.map(lambda v: json.dumps(v).encode())


def _labelme() -> st.SearchStrategy[bytes]:
    point = st.lists(st.one_of(st.floats(-1e6, 1e6), JUNK), min_size=0, max_size=3)
    shape = st.fixed_dictionaries({
        "label": st.one_of(st.text(max_size=5), JUNK),
        "points": st.one_of(st.lists(point, max_size=5), JUNK),
        "shape_type": st.one_of(st.sampled_from(["polygon", "rectangle", "circle", "point", "line"]), JUNK)})
    doc = st.fixed_dictionaries({"shapes": st.one_of(st.lists(shape, max_size=3), JUNK),
                                 "imagePath": st.one_of(st.just("a.jpg"), JUNK)})
    return doc.map(lambda v: json.dumps(v).encode())


def _coco() -> st.SearchStrategy[bytes]:
    number = st.one_of(st.integers(-5, 50), st.floats(-5, 50), JUNK)
    ann = st.fixed_dictionaries({
        "image_id": st.one_of(st.sampled_from([1, 2]), JUNK), "category_id": st.one_of(st.sampled_from([3, 4]), JUNK),
        "bbox": st.one_of(st.lists(number, min_size=3, max_size=5), JUNK), "iscrowd": st.sampled_from([0, 1]),
        "segmentation": st.one_of(st.lists(st.lists(number, max_size=8), max_size=2),
                                  st.fixed_dictionaries({"size": st.lists(number, max_size=3), "counts": JUNK}),
                                  JUNK)})
    image = st.fixed_dictionaries({"id": st.one_of(st.just(1), JUNK), "file_name": st.one_of(st.just("a.png"), JUNK)})
    doc = st.fixed_dictionaries({"images": st.one_of(st.lists(image, max_size=2), JUNK),
                                 "categories": st.just([{"id": 3, "name": "dent"}]),
                                 "annotations": st.lists(ann, max_size=3)})
    return doc.map(lambda v: json.dumps(v).encode())


def _voc() -> st.SearchStrategy[bytes]:
    obj = st.tuples(st.text(max_size=5), st.tuples(TOKENS, TOKENS, TOKENS, TOKENS))
    return st.lists(obj, max_size=3).map(lambda objs: voc_xml("a_1", objs).encode())


def _png() -> st.SearchStrategy[bytes]:
    shape = st.one_of(st.just((12, 16)), st.tuples(st.integers(1, 20), st.integers(1, 20)))
    arr = shape.flatmap(lambda s: st.lists(st.integers(0, 255), min_size=s[0] * s[1], max_size=s[0] * s[1])
                        .map(lambda v, s=s: np.array(v, np.uint8).reshape(s)))
    return arr.map(lambda a: cv2.imencode(".png", a)[1].tobytes())


def _mat() -> st.SearchStrategy[bytes]:
    shape = st.one_of(st.just((16, 24)), st.tuples(st.integers(1, 20), st.integers(1, 30)))
    seg = shape.flatmap(lambda s: st.integers(0, 2**32 - 1).map(
        lambda seed, s=s: np.random.default_rng(seed).choice([0, 1, 1, 2, 2, 3, 4, 5], size=s).astype(np.uint8)))
    var = st.one_of(seg.map(lambda a: {"groundTruth": {"Segmentation": a}}),
                    seg.map(lambda a: {"groundTruth": a}), seg.map(lambda a: {"Segmentation": a}),
                    st.just({"groundTruth": {"Segmentation": "text"}}))

    def dump(v: dict) -> bytes:
        buf = io.BytesIO()
        scipy.io.savemat(buf, v)
        return buf.getvalue()

    return var.map(dump)


STRUCTURED = {"deeppcb": _lines(), "yolo": _lines(), "voc": _voc(), "labelme": _labelme(), "coco": _coco(),
              "mask_folders": _png(), "crackforest": _mat()}


def _content(fmt: str, valid: bytes) -> st.SearchStrategy[bytes]:
    flips = st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)).map(
        lambda t: valid[: t[0]] + bytes([t[1]]) + valid[t[0] + 1 :])
    generic = st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode),
                        st.integers(0, len(valid)).map(lambda n: valid[:n]), flips)
    extra = _json_tree() if fmt in ("labelme", "coco") else st.nothing()
    return st.one_of(generic, STRUCTURED[fmt], STRUCTURED[fmt], extra)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_malformed_label_yields_valid_records_or_names_the_file(fmt, tmp_path, data):
    options, label = minimal(fmt, tmp_path)
    label.write_bytes(data.draw(_content(fmt, label.read_bytes()), label="label file content"))
    for on_error in ("raise", "skip"):
        try:
            recs = list(SOURCES.get(fmt)(tmp_path, **options, on_error=on_error))
        except (DataError, ConfigError) as e:
            assert on_error == "raise" or fmt == "coco", f"on_error=skip still raised: {e}"
            assert label.name in str(e)
            continue
        for rec in recs:
            assert_valid_record(rec)
