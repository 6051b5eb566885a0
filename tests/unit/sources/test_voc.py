from __future__ import annotations

import pytest
from source_layouts import assert_valid_record, voc_xml, write_image

from rtvp.errors import ConfigError, DataError
from rtvp.sources import SOURCES

convert = SOURCES.get("voc")


def _xml(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def neu(tmp_path):
    """NEU-DET quirks: <filename> without extension or naming another file; image extensions differ."""
    write_image(tmp_path / "IMAGES/scratches_1.jpg", 32, 24)
    write_image(tmp_path / "IMAGES/patches_2.png", 16, 16)
    _xml(tmp_path / "ANNOTATIONS/scratches_1.xml",
         voc_xml("scratches_1", [("scratches", (2, 3, 20, 21)), ("inclusion", (1.5, 0, 4, 4))]))
    _xml(tmp_path / "ANNOTATIONS/patches_2.xml", voc_xml("WRONG_NAME.jpg", [("patches", (0, 0, 16, 16))]))
    return tmp_path


def test_pairs_by_stem_and_reads_names(neu):
    recs = list(convert(neu, images="IMAGES", annotations="ANNOTATIONS"))
    assert [r.path.name for r in recs] == ["patches_2.png", "scratches_1.jpg"]
    for r in recs:
        assert_valid_record(r)
    assert (recs[0].width, recs[0].height) == (16, 16) and (recs[1].width, recs[1].height) == (32, 24)
    assert [(a.label, a.bbox) for a in recs[1].annotations] == [
        ("scratches", (2.0, 3.0, 20.0, 21.0)), ("inclusion", (1.5, 0.0, 4.0, 4.0))]
    assert recs[0].label_file.name == "patches_2.xml"


def test_difficult_objects_kept_or_dropped(tmp_path):
    write_image(tmp_path / "IMAGES/a.jpg", 32, 24)
    xml = voc_xml("a", [("crazing", (1, 1, 9, 9)), ("crazing", (2, 2, 8, 8)), ("pitted", (3, 3, 7, 7))])
    xml = xml.replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1)  # the first object
    xml = xml.replace("<difficult>0</difficult>", "", 1)  # the second has no <difficult> at all
    _xml(tmp_path / "ANNOTATIONS/a.xml", xml)
    kept = list(convert(tmp_path, images="IMAGES", annotations="ANNOTATIONS"))
    assert [a.bbox for a in kept[0].annotations] == [(1, 1, 9, 9), (2, 2, 8, 8), (3, 3, 7, 7)]
    dropped = list(convert(tmp_path, images="IMAGES", annotations="ANNOTATIONS", difficult="drop"))
    assert [(a.label, a.bbox) for a in dropped[0].annotations] == [("crazing", (2, 2, 8, 8)), ("pitted", (3, 3, 7, 7))]
    _xml(tmp_path / "ANNOTATIONS/a.xml", xml.replace("<difficult>1</difficult>", "<difficult>yes</difficult>"))
    with pytest.raises(DataError, match=r"a\.xml: object 0 \('crazing'\): <difficult> is 'yes', expected 0 or 1"):
        list(convert(tmp_path, images="IMAGES", annotations="ANNOTATIONS"))
    with pytest.raises(ConfigError, match="difficult"):
        list(convert(tmp_path, images="IMAGES", annotations="ANNOTATIONS", difficult="ignore"))


def test_cplid_two_folders_merge_per_stem(tmp_path):
    root = tmp_path / "Defective_Insulators"
    for stem in ("000", "001"):
        write_image(root / f"images/{stem}.jpg", 40, 30)
        _xml(root / f"labels/defect/{stem}.xml", voc_xml(stem, [("defect", (1, 1, 5, 5))]))
        _xml(root / f"labels/insulator/{stem}.xml", voc_xml(stem, [("insulator", (0, 0, 30, 20))]))
    recs = list(convert(tmp_path, images="Defective_Insulators/images",
                        annotations=["Defective_Insulators/labels/defect", "Defective_Insulators/labels/insulator"]))
    assert len(recs) == 2
    assert all(sorted(a.label for a in r.annotations) == ["defect", "insulator"] for r in recs)
    assert len(recs[0].meta["label_files"]) == 2


def test_unlabeled_images_and_orphan_xml(neu):
    write_image(neu / "IMAGES/extra.jpg", 8, 8)
    _xml(neu / "ANNOTATIONS/ghost.xml", voc_xml("ghost", [("crazing", (0, 0, 2, 2))]))
    opts = {"images": "IMAGES", "annotations": "ANNOTATIONS"}
    recs = {r.path.stem: r for r in convert(neu, **opts)}
    assert "no VOC XML" in recs["extra"].meta["issues"][0]
    assert "image file not found" in recs["ghost"].meta["issues"][0] and recs["ghost"].annotations
    assert "extra" not in {r.path.stem for r in convert(neu, **opts, unlabeled="skip")}
    empty = {r.path.stem: r for r in convert(neu, **opts, unlabeled="empty")}["extra"]
    assert empty.annotations == [] and "issues" not in empty.meta


@pytest.mark.parametrize(("text", "pattern"), [
    ("<annotation><object><name>a</name>", r"a_1\.xml:1: invalid XML"),
    ("<foo/>", r"a_1\.xml: root element"),
    ("<annotation><object><bndbox/></object></annotation>", r"a_1\.xml: object 0: missing <name>"),
    ("<annotation><object><name>a</name></object></annotation>", r"a_1\.xml: object 0 \('a'\): missing <bndbox>"),
    (voc_xml("a_1", [("a", ("x", 1, 2, 3))]), r"a_1\.xml: object 0 <xmin>"),
])
def test_malformed_xml_names_file(tmp_path, text, pattern):
    write_image(tmp_path / "IMAGES/a_1.jpg", 8, 8)
    _xml(tmp_path / "ANN/a_1.xml", text)
    with pytest.raises(DataError, match=pattern):
        list(convert(tmp_path, images="IMAGES", annotations="ANN"))
    recs = list(convert(tmp_path, images="IMAGES", annotations="ANN", on_error="skip"))
    assert len(recs) == 1 and recs[0].annotations == [] and "a_1.xml" in recs[0].meta["issues"][0]


def test_missing_folder_is_config_error(neu):
    with pytest.raises(ConfigError, match="annotations folder"):
        list(convert(neu, images="IMAGES", annotations=["ANNOTATIONS", "nope"]))
