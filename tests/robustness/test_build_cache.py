"""A resumed build never reuses stale labels: cached records are keyed on the content of their label files."""

from __future__ import annotations

import json

import pytest
from robust_helpers import neu_recipe, voc_xml, write_neu

from rtvp.bench import ingest
from rtvp.bench.build import build_benchmark, partial_dir
from rtvp.bench.recipe import load_recipe


def _classes_in(out) -> dict[str, str]:
    """file stem -> category name of its single annotation, over closed_train + closed_val."""
    result = {}
    for split in ("closed_train", "closed_val"):
        coco = json.loads((out / "annotations" / f"{split}.json").read_text())
        names = {c["id"]: c["defect"] for c in coco["categories"]}
        images = {im["id"]: im["file_name"].rsplit("/", 1)[1].rsplit(".", 1)[0] for im in coco["images"]}
        for a in coco["annotations"]:
            result[images[a["image_id"]]] = names[a["category_id"]]
    return result


def test_strict_fix_rerun_sees_the_fixed_file(tmp_path, rtvp_cli):
    src = write_neu(tmp_path / "ds")
    xml = src / "ANNOTATIONS" / "crazing_0.xml"
    xml.write_text(voc_xml("crazing_0.jpg", "bogus"))
    recipe, out = neu_recipe(tmp_path), tmp_path / "b"
    code, text = rtvp_cli("data", "build", recipe, "--root", tmp_path / "ds", "--out", out, "--strict", "--quiet")
    assert code == 2 and "unknown_class" in text and "'bogus'" in text
    xml.write_text(voc_xml("crazing_0.jpg", "crazing"))  # the user fixes the source and reruns
    code, text = rtvp_cli("data", "build", recipe, "--root", tmp_path / "ds", "--out", out, "--strict", "--quiet")
    assert code == 0, text
    assert "bogus" not in text and "resumed:" not in text  # the stale spool was not reused
    assert _classes_in(out)["crazing_0"] == "crazing"


def test_kill_edit_rerun_writes_the_new_class(tmp_path, monkeypatch):
    src = write_neu(tmp_path / "ds")
    recipe = load_recipe(neu_recipe(tmp_path))
    out = tmp_path / "b"
    real, calls = ingest.check_job, []

    def dying(job):
        if len(calls) == 5:
            raise KeyboardInterrupt("kill -9")
        calls.append(job)
        return real(job)

    monkeypatch.setattr(ingest, "check_job", dying)
    with pytest.raises(KeyboardInterrupt):
        build_benchmark(recipe, tmp_path / "ds", out)
    assert partial_dir(recipe, tmp_path / "ds", out).is_dir()
    monkeypatch.setattr(ingest, "check_job", real)
    (src / "ANNOTATIONS" / "inclusion_1.xml").write_text(voc_xml("inclusion_1.jpg", "patches"))
    summary = build_benchmark(recipe, tmp_path / "ds", out)
    assert summary.reused == 0
    assert _classes_in(out)["inclusion_1"] == "patches"


def test_unchanged_sources_are_reused_and_counted(tmp_path, monkeypatch, rtvp_cli):
    write_neu(tmp_path / "ds")
    recipe_path = neu_recipe(tmp_path)
    recipe, out = load_recipe(recipe_path), tmp_path / "b"
    monkeypatch.setattr(ingest, "check_job", lambda job: (_ for _ in ()).throw(KeyboardInterrupt("kill")))
    with pytest.raises(KeyboardInterrupt):
        build_benchmark(recipe, tmp_path / "ds", out)
    monkeypatch.undo()
    code, text = rtvp_cli("data", "build", recipe_path, "--root", tmp_path / "ds", "--out", out, "--quiet")
    assert code == 0, text
    assert "resumed: 12 parsed records reused from an earlier interrupted build" in text


def test_same_size_label_edit_is_seen(tmp_path, monkeypatch):
    """Content, not size/mtime: an edit that keeps the byte count and the mtime still invalidates the spool."""
    import os

    src = write_neu(tmp_path / "ds")
    recipe, out = load_recipe(neu_recipe(tmp_path)), tmp_path / "b"
    monkeypatch.setattr(ingest, "check_job", lambda job: (_ for _ in ()).throw(KeyboardInterrupt("kill")))
    with pytest.raises(KeyboardInterrupt):
        build_benchmark(recipe, tmp_path / "ds", out)
    monkeypatch.undo()
    xml = src / "ANNOTATIONS" / "patches_2.xml"
    st = xml.stat()
    xml.write_text(xml.read_text().replace("<name>patches</name>", "<name>crazing</name>"))
    assert xml.stat().st_size == st.st_size
    os.utime(xml, ns=(st.st_atime_ns, st.st_mtime_ns))
    summary = build_benchmark(recipe, tmp_path / "ds", out)
    assert summary.reused == 0
    assert _classes_in(out)["patches_2"] == "crazing"
