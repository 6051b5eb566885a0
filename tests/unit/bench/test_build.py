from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rtvp.bench import ingest
from rtvp.bench.build import build_benchmark, partial_dir
from rtvp.bench.check import check_benchmark
from rtvp.bench.recipe import recipe_from_dict
from rtvp.errors import ConfigError, DataError

SPLITS = ("closed_train", "closed_val", "open_train", "open_val")


def _load(out: Path, split: str) -> dict:
    return json.loads((out / "annotations" / f"{split}.json").read_text(encoding="utf-8"))


def _issues(out: Path) -> list[dict]:
    with (out / "report" / "issues.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _build(kit, root: Path, out: Path, **kw):
    recipe = recipe_from_dict(kit.recipe_dict(unseen_fraction=0.25), where="tiny.yaml")
    return build_benchmark(recipe, root, out, embed=kit.fixed_embed, text_encoder="fixed", **kw)


def test_build_writes_layout_and_coco_content(kit, clean_root, tmp_path):
    out = tmp_path / "bench"
    before = kit.tree_digest(clean_root)
    summary = _build(kit, clean_root, out)
    assert kit.tree_digest(clean_root) == before  # sources never modified
    assert summary.images == 50 and summary.per_source == {"shop": 34, "mill": 16}
    for split in SPLITS:
        assert (out / "annotations" / f"{split}.json").is_file()
    for name in ("stats.md", "longtail.png", "issues.csv"):
        assert (out / "report" / name).is_file()
    assert not any(p.name.startswith("bench.partial-") for p in tmp_path.iterdir())
    ct = _load(out, "closed_train")
    cats = {c["name"]: c for c in ct["categories"]}
    assert list(cats) == ["scratch on metal plate", "hole on metal plate", "crack on wood", "knot on wood"]
    assert [c["id"] for c in ct["categories"]] == [1, 2, 3, 4]
    assert cats["scratch on metal plate"]["aliases"] == ["scratches", "划痕", "傷"]
    assert cats["hole on metal plate"]["supercategory"] == "metal" and cats["crack on wood"]["scene"] == "wood"
    img = ct["images"][0]
    assert set(img) >= {"id", "file_name", "width", "height", "source", "scene", "sha1", "channels", "group"}
    link = out / img["file_name"]
    assert link.is_symlink() and Path(os.readlink(link)) == clean_root / img["source"] / "images" / link.name
    ann = ct["annotations"][0]
    assert ann["iscrowd"] == 0 and ann["segmentation"] == [] and ann["area"] == ann["bbox"][2] * ann["bbox"][3]
    assert set(ann["attributes"]) == {"location", "size", "morphology"}
    # s00: "0 0.5 0.5 0.25 0.25" on 64x48 -> [24, 18, 16, 12]
    s00 = next(i for i in ct["images"] + _load(out, "closed_val")["images"] if i["file_name"].endswith("s00.png"))
    anns = [a for s in ("closed_train", "closed_val") for a in _load(out, s)["annotations"] if a["image_id"] ==
            s00["id"]]
    assert [a["bbox"] for a in anns] == [[24.0, 18.0, 16.0, 12.0]]
    assert anns[0]["attributes"] == {"location": "center", "size": "small", "morphology": "irregular"}
    # knots are YOLO polygons: segmentation kept in pixels, area = rasterised polygon area (12.8 x 9.6 square)
    all_anns = [a for s in ("closed_train", "closed_val") for a in _load(out, s)["annotations"]]
    knot = next(a for a in all_anns if a["category_id"] == 4)
    assert knot["segmentation"] == [[25.6, 19.2, 38.4, 19.2, 38.4, 28.8, 25.6, 28.8]]
    assert knot["bbox"] == [25.6, 19.2, 12.8, 9.6] and abs(knot["area"] - 12.8 * 9.6) < 15
    assert knot["attributes"]["morphology"] == "round"  # a compact square outline
    assert check_benchmark(out) == []


def test_every_validation_case_is_counted_and_listed(kit, bad_root, tmp_path):
    root, cases = bad_root
    out = tmp_path / "bench"
    summary = _build(kit, root, out)
    rows = _issues(out)
    counts = Counter(r["reason"] for r in rows)
    assert counts == Counter({reason: 1 for reason in cases}), rows
    assert summary.issues == dict(counts)
    for reason, file in cases.items():
        assert [r["file"] for r in rows if r["reason"] == reason] == [file]
    # the junk class (mapped to null) is dropped silently; dent is the one unknown class
    assert "'dent'" in next(r["detail"] for r in rows if r["reason"] == "unknown_class")
    images = {i["file_name"].split("/")[-1]: i for s in ("closed_train", "closed_val") for i in _load(out, s)["images"]}
    anns = [a for s in ("closed_train", "closed_val") for a in _load(out, s)["annotations"]]
    by_image = {name: [a for a in anns if a["image_id"] == img["id"]] for name, img in images.items()}
    assert "trunc.png" not in images and "garbage.png" not in images  # unreadable -> dropped
    assert "zdup_diff.png" not in images and "zdup_same.png" not in images  # exact duplicates dropped
    assert sorted(a["category_id"] for a in by_image["s00.png"]) == [1, 2]  # zdup_diff's hole merged into s00
    assert len(by_image["s01.png"]) == 1  # same labels: nothing added
    assert by_image["oob.png"][0]["bbox"] == [51.2, 19.2, 12.8, 9.6]  # x 51.2..70.4 clipped to 64
    assert [a["category_id"] for a in by_image["degen.png"]] == [2]
    assert [a["category_id"] for a in by_image["unknown.png"]] == [1]
    assert by_image["empty.png"] == [] and "empty.png" in images  # kept as a defect-free image
    assert images["near_a.png"]["group"] == images["near_b.png"]["group"]
    assert check_benchmark(out) == []


def test_strict_makes_issues_fatal(kit, bad_root, tmp_path):
    root, _ = bad_root
    out = tmp_path / "bench"
    with pytest.raises(DataError, match=r"--strict: 9 issue\(s\).*unknown_class: 1"):
        _build(kit, root, out, strict=True)
    assert not out.exists()


def test_strict_passes_on_clean_data(kit, clean_root, tmp_path):
    assert _build(kit, clean_root, tmp_path / "bench", strict=True).issues == {}


def test_rebuild_is_byte_identical(kit, bad_root, tmp_path):
    root, _ = bad_root
    a, b = tmp_path / "a", tmp_path / "b"
    _build(kit, root, a, workers=2)
    _build(kit, root, b)
    first = {s: (a / "annotations" / f"{s}.json").read_bytes() for s in SPLITS}
    assert first == {s: (b / "annotations" / f"{s}.json").read_bytes() for s in SPLITS}
    assert (a / "benchmark.yaml").read_bytes() == (b / "benchmark.yaml").read_bytes()
    _build(kit, root, a)  # rebuild in place replaces the old benchmark
    assert first == {s: (a / "annotations" / f"{s}.json").read_bytes() for s in SPLITS}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "datasets"]


def test_killed_build_leaves_nothing_and_rerun_completes(kit, bad_root, tmp_path, monkeypatch):
    root, _ = bad_root
    clean = tmp_path / "clean"
    _build(kit, root, clean)
    out = tmp_path / "bench"
    real, calls = ingest.check_job, []

    def dying(job):
        if len(calls) == 20:
            raise KeyboardInterrupt("killed")
        calls.append(job)
        return real(job)

    monkeypatch.setattr(ingest, "check_job", dying)
    with pytest.raises(KeyboardInterrupt):
        _build(kit, root, out)
    assert not out.exists()
    recipe = recipe_from_dict(kit.recipe_dict(unseen_fraction=0.25), where="tiny.yaml")
    partial = partial_dir(recipe, root, out)
    assert partial.is_dir()
    with (partial / ".work" / "validate-cache.jsonl").open("a") as f:
        f.write('["a line cut by the kill')  # no newline: the rerun must not lose its first entry to it
    monkeypatch.setattr(ingest, "check_job", real)
    summary = _build(kit, root, out)
    assert summary.cached == 20  # the 20 images validated before the kill were not decoded again
    assert not partial.exists()
    for s in SPLITS:
        assert (out / "annotations" / f"{s}.json").read_bytes() == (clean / "annotations" / f"{s}.json").read_bytes()


def test_failure_while_writing_keeps_old_benchmark(kit, clean_root, tmp_path, monkeypatch):
    out = tmp_path / "bench"
    _build(kit, clean_root, out)
    before = (out / "annotations" / "closed_train.json").read_bytes()
    import rtvp.bench.stats as stats

    def boom(_):
        raise OSError("disk full")

    monkeypatch.setattr(stats, "write_report", boom)
    with pytest.raises(OSError, match="disk full"):
        _build(kit, clean_root, out)
    assert (out / "annotations" / "closed_train.json").read_bytes() == before  # old benchmark untouched
    monkeypatch.undo()
    _build(kit, clean_root, out)
    assert (out / "annotations" / "closed_train.json").read_bytes() == before


def test_copy_and_none_image_modes(kit, clean_root, tmp_path):
    data = kit.recipe_dict()
    data["output"] = {"images": "copy"}
    build_benchmark(recipe_from_dict(data), clean_root, tmp_path / "copy")
    f = next((tmp_path / "copy" / "images" / "mill" / "images").iterdir())
    assert not f.is_symlink() and f.read_bytes() == (clean_root / "mill" / "images" / f.name).read_bytes()
    data["output"] = {"images": "none"}
    build_benchmark(recipe_from_dict(data), clean_root, tmp_path / "none")
    assert not (tmp_path / "none" / "images").exists()
    assert check_benchmark(tmp_path / "none") == []


def test_build_errors_name_the_problem(kit, clean_root, tmp_path):
    data = kit.recipe_dict()
    data["sources"][1]["path"] = "nowhere"
    with pytest.raises(ConfigError, match=r"mill.*nowhere.*--root"):
        build_benchmark(recipe_from_dict(data), clean_root, tmp_path / "x")
    data = kit.recipe_dict(unseen_fraction=0.3)
    with pytest.raises(ConfigError, match="text encoder"):
        build_benchmark(recipe_from_dict(data), clean_root, tmp_path / "y")
    data = kit.recipe_dict()
    data["sources"][0]["format"] = "nope"
    with pytest.raises(ConfigError, match="unknown source format 'nope'"):
        build_benchmark(recipe_from_dict(data), clean_root, tmp_path / "z")
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not an rtvp benchmark"):
        build_benchmark(recipe_from_dict(kit.recipe_dict()), clean_root, tmp_path / "occupied")
    assert (tmp_path / "occupied" / "precious.txt").read_text() == "keep me"


def test_malformed_label_file_is_fatal_with_the_file_name(kit, clean_root, tmp_path):
    (clean_root / "mill" / "labels" / "c00.txt").write_text("0 0.5 oops 0.1 0.1\n")
    with pytest.raises(DataError, match=r"c00\.txt:1"):
        build_benchmark(recipe_from_dict(kit.recipe_dict()), clean_root, tmp_path / "bench")
    assert not (tmp_path / "bench").exists()


def test_empty_source_builds_an_empty_valid_benchmark(kit, tmp_path):
    (tmp_path / "d" / "shop" / "images").mkdir(parents=True)
    (tmp_path / "d" / "mill" / "images").mkdir(parents=True)
    summary = build_benchmark(recipe_from_dict(kit.recipe_dict()), tmp_path / "d", tmp_path / "bench")
    assert summary.images == 0 and summary.splits["open_val"] == {"images": 0, "annotations": 0}
    assert _load(tmp_path / "bench", "closed_train")["images"] == []
    assert check_benchmark(tmp_path / "bench") == []


def test_automatic_unseen_choice_keeps_every_scene_in_open_train(kit, clean_root, tmp_path):
    for label in (clean_root / "mill" / "labels").glob("k*.txt"):  # every wood image now holds a crack
        label.write_text(label.read_text() + "0 0.2 0.2 0.1 0.1\n")
    # a seed whose candidate order starts with crack (class 2; tau passes through knot, 0.6)
    seed = next(s for s in range(100) if np.random.default_rng(s).permutation(4)[0] == 2)

    def unseen(share: float) -> tuple[list[str], list[str]]:
        recipe = recipe_from_dict(kit.recipe_dict(unseen_fraction=0.25, seed=seed, min_open_train_share=share),
                                  where="tiny.yaml")
        out = tmp_path / f"bench-{share}"
        summary = build_benchmark(recipe, clean_root, out, embed=kit.fixed_embed, text_encoder="fixed")
        return summary.unseen, sorted({im["scene"] for im in _load(out, "open_train")["images"]})

    assert unseen(0.0) == (["crack on wood"], ["metal plate"])  # unguarded: wood is gone from open_train
    chosen, scenes = unseen(0.1)
    assert len(chosen) == 1 and chosen != ["crack on wood"] and scenes == ["metal plate", "wood"]
