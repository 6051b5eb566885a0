from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_util

from rtvp.bench.synth import SCENE_DEFECTS, SCENES, render_image, write_synth
from rtvp.errors import ConfigError


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    write_synth(out, seed=7, images=40, size=128)
    return out


def test_layout_and_coco_content(synth_dir):
    assert (synth_dir / "README.md").is_file()
    total = 0
    for scene in SCENES:
        data = json.loads((synth_dir / scene / "annotations.json").read_text())
        assert [c["name"] for c in data["categories"]] == list(SCENE_DEFECTS[scene])
        assert len(data["images"]) == 10  # round robin over 4 scenes
        for im in data["images"]:
            img = cv2.imread(str(synth_dir / scene / "images" / im["file_name"]), cv2.IMREAD_UNCHANGED)
            assert img.shape == (128, 128, 3) and (im["width"], im["height"]) == (128, 128)
        total += len(data["images"])
        ann_ids = [a["id"] for a in data["annotations"]]
        assert ann_ids == list(range(1, len(ann_ids) + 1))
    assert total == 40


def test_boxes_are_exact_mask_extents(synth_dir):
    for scene in SCENES:
        data = json.loads((synth_dir / scene / "annotations.json").read_text())
        assert data["annotations"], scene
        per_image: dict[int, list[np.ndarray]] = {}
        for a in data["annotations"]:
            m = mask_util.decode({"size": a["segmentation"]["size"], "counts": a["segmentation"]["counts"].encode()})
            ys, xs = np.nonzero(m)
            x, y, w, h = a["bbox"]
            assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
            assert a["area"] == m.sum() > 0 and a["iscrowd"] == 0
            per_image.setdefault(a["image_id"], []).append(m)
        for masks in per_image.values():  # instances never overlap
            assert np.sum(masks, axis=0).max() == 1


def test_same_seed_identical_bytes_different_seed_differs(tmp_path, synth_dir):
    write_synth(tmp_path / "again", seed=7, images=40, size=128)
    assert _files(tmp_path / "again") == _files(synth_dir)
    write_synth(tmp_path / "other", seed=8, images=40, size=128)
    a, b = _files(tmp_path / "other"), _files(synth_dir)
    assert a.keys() == b.keys()
    differing = [k for k in a if a[k] != b[k]]
    assert len(differing) >= 40  # every picture differs
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temporary folder left


def test_every_defect_class_appears():
    seen = set()
    for i in range(24):
        r = render_image(3, i, size=96, empty_fraction=0.0)
        assert r.instances, i  # no picture stays empty when empty_fraction is 0
        seen |= {(r.scene, inst.name) for inst in r.instances}
    assert seen == {(s, d) for s, ds in SCENE_DEFECTS.items() for d in ds}


def test_defects_are_visible_and_change_nothing_else():
    for i in range(16):
        r = render_image(1, i, size=128, empty_fraction=0.0, keep_clean=True)
        diff = np.abs(r.image.astype(np.float32) - r.clean).max(axis=2)
        outside = np.ones(diff.shape, bool)
        for inst in r.instances:
            assert diff[inst.mask].mean() >= 30, (r.scene, inst.name)  # strong contrast inside the mask
            outside &= ~inst.mask
        assert np.mean(diff[outside] > 30) < 0.003  # only soft stain fringes change outside the masks


def test_empty_fraction_and_size():
    rs = [render_image(0, i, size=64, empty_fraction=0.5) for i in range(40)]
    empty = sum(not r.instances for r in rs)
    assert 8 <= empty <= 32
    assert all(r.image.shape == (64, 64, 3) and r.image.dtype == np.uint8 for r in rs)
    # metal is grey: the channels agree outside coloured defects
    metal = render_image(0, 0, size=64, empty_fraction=0.99).image
    assert np.array_equal(metal[..., 0], metal[..., 2])


def test_read_back_with_coco_converter(synth_dir):
    from rtvp.sources import SOURCES

    if "coco" not in SOURCES:
        pytest.skip("coco converter not registered")
    records = list(SOURCES.get("coco")(synth_dir / "pcb"))
    data = json.loads((synth_dir / "pcb" / "annotations.json").read_text())
    assert len(records) == len(data["images"])
    assert sum(len(r.annotations) for r in records) == len(data["annotations"])
    assert {a.label for r in records for a in r.annotations} <= set(SCENE_DEFECTS["pcb"])
    assert all((r.width, r.height) == (128, 128) for r in records)


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="images >= 1"):
        write_synth(tmp_path / "x", images=0)
    with pytest.raises(ConfigError, match="size"):
        write_synth(tmp_path / "x", size=32)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="overwrite"):
        write_synth(tmp_path / "full", images=2, size=64)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    write_synth(tmp_path / "full", images=2, size=64, overwrite=True)
    assert not (tmp_path / "full" / "keep.txt").exists()


def test_recipe_builds_a_benchmark(tmp_path):
    build = pytest.importorskip("rtvp.bench.build")
    from rtvp.bench.recipe import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[3] / "configs" / "benchmarks" / "synth.yaml")
    write_synth(tmp_path / "data", seed=0, images=96, size=64)
    summary = build.build_benchmark(recipe, tmp_path / "data", tmp_path / "bench")
    assert summary.images == 96 and summary.categories == 16
    assert sorted(summary.unseen) == ["crack on wood", "hole on fabric", "stain on brushed metal"]
    cats = json.loads((tmp_path / "bench" / "annotations" / "closed_train.json").read_text())["categories"]
    assert "short circuit on circuit board" in [c["name"] for c in cats]
    assert (tmp_path / "bench" / "report" / "stats.md").is_file()
