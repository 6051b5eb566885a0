"""Build from the real shared datasets (skipped when ../shared is absent): three of the six mmioc-mini sources."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from rtvp.bench.build import build_benchmark
from rtvp.bench.check import check_benchmark
from rtvp.bench.recipe import load_recipe, recipe_from_dict
from rtvp.config import to_dict

REPO = Path(__file__).resolve().parents[3]


def test_real_sources_build_with_expected_counts(shared_datasets, kit, tmp_path):
    full = to_dict(load_recipe(REPO / "configs" / "benchmarks" / "mmioc-mini.yaml"))
    full["sources"] = [s for s in full["sources"] if s["name"] in ("cplid", "bsdata", "crackforest")]
    full["split"].update(unseen_fraction=0.0, unseen_scenes=["road pavement"])
    before = kit.tree_digest(shared_datasets / "bsdata")
    out = tmp_path / "mini"
    summary = build_benchmark(recipe_from_dict(full), shared_datasets, out, workers=2)
    assert kit.tree_digest(shared_datasets / "bsdata") == before
    assert summary.per_source == {"cplid": 142, "bsdata": 105, "crackforest": 98}  # SOURCE.md counts
    assert set(summary.issues) <= {"near_duplicate"}, summary.issues
    images = {}
    anns = []
    for s in ("closed_train", "closed_val"):
        data = json.loads((out / "annotations" / f"{s}.json").read_text(encoding="utf-8"))
        images.update({i["id"]: i for i in data["images"]})
        anns += data["annotations"]
    cats = {c["id"]: c["name"] for c in data["categories"]}
    per_class = Counter(cats[a["category_id"]] for a in anns)
    assert per_class["missing cap on insulator"] == 142  # one defect box per image; insulator boxes dropped
    assert per_class["pitting on ball screw drive"] == 129  # SOURCE.md: 129 polygons
    assert per_class["crack on road pavement"] >= 98
    assert all(a["segmentation"] for a in anns if cats[a["category_id"]] != "missing cap on insulator")
    # near-duplicate groups (BSData time series) never mix sources
    by_group: dict[int, set] = {}
    for img in images.values():
        by_group.setdefault(img["group"], set()).add(img["source"])
    assert all(len(s) == 1 for s in by_group.values())
    assert summary.issues.get("near_duplicate", 0) > 0
    # the unseen scene: all its images are in open_val, none in open_train
    open_train = json.loads((out / "annotations" / "open_train.json").read_text(encoding="utf-8"))
    assert not any(i["source"] == "crackforest" for i in open_train["images"])
    assert check_benchmark(out) == []


def test_cross_scene_recipe_builds_with_unseen_scenes_whose_words_are_seen_elsewhere(shared_datasets, tmp_path):
    recipe = load_recipe(REPO / "configs" / "benchmarks" / "mmioc-cross.yaml")
    full = to_dict(recipe)
    full["sources"] = [s for s in full["sources"] if s["name"] in ("magnetic_tile", "bsdata", "crackforest")]
    out = tmp_path / "cross"
    build_benchmark(recipe_from_dict(full), shared_datasets, out, workers=2)
    cats = json.loads((out / "annotations" / "open_val.json").read_text(encoding="utf-8"))["categories"]
    unseen = {c["name"] for c in cats if c["split"] == "unseen"}
    assert unseen == {"crack on road pavement", "pitting on ball screw drive"}
    assert "crack on magnetic tile" in {c["name"] for c in cats if c["split"] == "seen"}
    open_train = json.loads((out / "annotations" / "open_train.json").read_text(encoding="utf-8"))
    assert not {i["source"] for i in open_train["images"]} & {"crackforest", "bsdata"}
    assert check_benchmark(out) == []
