from __future__ import annotations

import pytest
from source_layouts import assert_valid_record, deeppcb

from rtvp.errors import ConfigError, DataError
from rtvp.sources import SOURCES

convert = SOURCES.get("deeppcb")


@pytest.fixture
def pcb(tmp_path):
    labels = {"00001000": "10 20 30 40 1\n5,6,17,18,6\n\n", "00001001": "1 2 3 4 3\n0 0 64 48 5\n"}
    return deeppcb(tmp_path, labels, {"00001000": "trainval", "00001001": "test"})


def test_boxes_types_and_split_meta(pcb):
    recs = list(convert(pcb))
    assert [r.path.name for r in recs] == ["00001000_test.jpg", "00001001_test.jpg"]
    for r in recs:
        assert_valid_record(r)
        assert (r.width, r.height) == (64, 48) and r.source == "deeppcb"
    a = recs[0].annotations
    assert [(x.bbox, x.label) for x in a] == [((10.0, 20.0, 30.0, 40.0), "open"), ((5.0, 6.0, 17.0, 18.0), "pin-hole")]
    assert [x.label for x in recs[1].annotations] == ["mousebite", "copper"]
    assert recs[0].meta["official_split"] == "trainval" and recs[1].meta["official_split"] == "test"
    assert recs[0].label_file.name == "00001000.txt" and recs[0].annotations[0].segmentation is None


def test_root_may_be_pcbdata_itself(pcb):
    assert len(list(convert(pcb / "PCBData"))) == 2


@pytest.mark.parametrize(("split", "expected"), [("all", 2), ("trainval", 1), ("test", 1)])
def test_split_option(pcb, split, expected):
    recs = list(convert(pcb, split=split))
    assert len(recs) == expected
    assert all(split == "all" or r.meta["official_split"] == split for r in recs)


def test_templates_are_boxless_records(pcb):
    recs = list(convert(pcb, templates=True))
    assert len(recs) == 4
    temps = [r for r in recs if r.path.name.endswith("_temp.jpg")]
    assert len(temps) == 2 and all(not r.annotations and r.meta["template_of"] for r in temps)


@pytest.mark.parametrize("line", ["1 2 3 4 7", "1 2 3 4 0", "1 2 3 4", "1 2 x 4 1", "1 2 3 4 1 9", "1 2 3 nan 1"])
def test_malformed_line_names_file_and_line(tmp_path, line):
    deeppcb(tmp_path, {"00001000": f"1 2 3 4 1\n{line}\n"})
    with pytest.raises(DataError, match=r"00001000\.txt:2"):
        list(convert(tmp_path))


def test_on_error_skip_yields_issue_record(tmp_path):
    deeppcb(tmp_path, {"00001000": "garbage\n", "00001001": "1 2 3 4 2\n"})
    recs = list(convert(tmp_path, on_error="skip"))
    assert len(recs) == 2
    assert recs[0].annotations == [] and "00001000.txt:1" in recs[0].meta["issues"][0]
    assert [a.label for a in recs[1].annotations] == ["short"] and "issues" not in recs[1].meta


def test_missing_image_is_an_issue_not_a_crash(pcb):
    (pcb / "PCBData/group00001/00001/00001000_test.jpg").unlink()
    recs = list(convert(pcb))
    assert len(recs) == 2
    assert "image file not found" in recs[0].meta["issues"][0] and recs[0].width == 0
    assert "issues" not in recs[1].meta


def test_split_without_lists_and_missing_root_are_config_errors(tmp_path, pcb):
    (pcb / "PCBData/trainval.txt").unlink()
    (pcb / "PCBData/test.txt").unlink()
    with pytest.raises(ConfigError, match="trainval.txt"):
        list(convert(pcb, split="test"))
    with pytest.raises(ConfigError, match="PCBData"):
        list(convert(tmp_path / "nowhere"))
