"""`rtvp data build` on hostile sources and outputs: every problem at once, checks first, no hidden leftovers."""

from __future__ import annotations

import csv

import yaml
from robust_helpers import neu_recipe, voc_xml, write_neu


def _build(rtvp_cli, recipe, root, out, *extra):
    return rtvp_cli("data", "build", recipe, "--root", root, "--out", out, "--quiet", *extra)


def test_every_malformed_label_file_is_reported_in_one_pass(tmp_path, rtvp_cli):
    src = write_neu(tmp_path / "ds")
    ann = src / "ANNOTATIONS"
    (ann / "crazing_0.xml").write_text("<annotation><object><name>crazing</name></object>")  # cut
    (ann / "inclusion_1.xml").write_text("<voc/>")
    (ann / "patches_2.xml").write_text(voc_xml("patches_2.jpg", "patches").replace("<difficult>0", "<difficult>x"))
    code, out = _build(rtvp_cli, neu_recipe(tmp_path), tmp_path / "ds", tmp_path / "b")
    assert code == 2
    assert "source neu_det" in out and "3 malformed label file(s); nothing was built" in out
    assert f"{ann}/crazing_0.xml:1: invalid XML" in out
    assert f"{ann}/inclusion_1.xml: root element is <voc>, expected <annotation>" in out
    assert f"{ann}/patches_2.xml: object 0 ('patches'): <difficult> is 'x', expected 0 or 1" in out
    assert "set on_error: skip in the source's options" in out
    assert not (tmp_path / "b").exists()


def test_skip_mode_still_builds_and_lists_them(tmp_path, rtvp_cli):
    src = write_neu(tmp_path / "ds")
    (src / "ANNOTATIONS" / "crazing_0.xml").write_text("<voc/>")
    code, out = _build(rtvp_cli, neu_recipe(tmp_path, on_error="skip"), tmp_path / "ds", tmp_path / "b")
    assert code == 0, out
    rows = list(csv.DictReader((tmp_path / "b" / "report" / "issues.csv").open()))
    assert [(r["file"], r["reason"]) for r in rows] == [("neu/ANNOTATIONS/crazing_0.xml", "source_issue")]


def test_out_that_is_not_a_benchmark_is_refused_before_the_build(tmp_path, rtvp_cli):
    write_neu(tmp_path / "ds")
    out = tmp_path / "b"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    code, text = _build(rtvp_cli, neu_recipe(tmp_path), tmp_path / "ds", out)
    assert code == 2
    assert f"--out {out} exists and is not an rtvp benchmark (no benchmark.yaml); refusing to replace it" in text
    assert not list(tmp_path.glob("b.partial-*"))  # nothing was converted or validated
    assert (out / "thesis.tex").read_text() == "precious"
    afile = tmp_path / "c"
    afile.write_text("x")
    code, text = _build(rtvp_cli, neu_recipe(tmp_path), tmp_path / "ds", afile)
    assert code == 2 and f"--out {afile} is a file, not a folder" in text


def test_issues_csv_has_line_numbers_and_root_relative_paths(tmp_path, rtvp_cli, monkeypatch):
    src = write_neu(tmp_path / "ds")
    (src / "ANNOTATIONS" / "crazing_0.xml").write_text("<annotation>\n<object>\n")  # error on line 3
    (src / "ANNOTATIONS" / "ghost.xml").write_text(voc_xml("ghost.jpg", "crazing"))  # label without image
    monkeypatch.chdir(tmp_path / "ds")  # --root given with '..' components and relative
    code, out = _build(rtvp_cli, neu_recipe(tmp_path, on_error="skip"), "../ds", tmp_path / "b")
    assert code == 0, out
    rows = list(csv.DictReader((tmp_path / "b" / "report" / "issues.csv").open()))
    by_file = {r["file"]: r for r in rows}
    assert by_file["neu/ANNOTATIONS/crazing_0.xml"]["line"] == "3"
    assert by_file["neu/IMAGES/ghost.jpg"]["detail"] == ("image file not found (label neu/ANNOTATIONS/ghost.xml); "
                                                         "record dropped")
    assert all(not r["file"].startswith("/") and str(tmp_path) not in r["detail"] for r in rows)


def test_partial_folders_are_listed_then_cleaned(tmp_path, rtvp_cli):
    src = write_neu(tmp_path / "ds")
    xml = src / "ANNOTATIONS" / "crazing_0.xml"
    xml.write_text(voc_xml("crazing_0.jpg", "bogus"))
    recipe, out = neu_recipe(tmp_path), tmp_path / "b"
    code, text = _build(rtvp_cli, recipe, tmp_path / "ds", out, "--strict")
    assert code == 2
    first = list(tmp_path.glob("b.partial-*"))
    assert len(first) == 1 and f"State of this build kept in {first[0]}" in text
    data = yaml.safe_load(recipe.read_text())
    data["split"]["val_fraction"] = 0.5  # another recipe: another partial folder
    recipe.write_text(yaml.safe_dump(data))
    code, text = _build(rtvp_cli, recipe, tmp_path / "ds", out, "--strict")
    assert code == 2
    assert f"Older partial builds of {out}: {first[0].name} (removed by the next successful build of b" in text
    assert len(list(tmp_path.glob("b.partial-*"))) == 2
    xml.write_text(voc_xml("crazing_0.jpg", "crazing"))
    code, text = _build(rtvp_cli, recipe, tmp_path / "ds", out, "--strict")
    assert code == 0, text
    assert not list(tmp_path.glob("b.partial-*"))
