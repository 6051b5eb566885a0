from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rtvp.bench.recipe import Recipe, load_recipe, recipe_from_dict
from rtvp.bench.taxonomy import DROP, UNKNOWN, Taxonomy
from rtvp.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_defaults_and_types(kit, tmp_path):
    r = load_recipe(_write(tmp_path, kit.recipe_dict()))
    assert isinstance(r, Recipe)
    assert r.text_template == "{defect} on {scene}"
    assert r.split.val_fraction == 0.25 and r.output.images == "link" and r.validation.phash_distance == 4
    assert r.sources[0].classes["junk"] is None and r.sources[0].aliases["scratch"] == ["scratches", "划痕", "傷"]


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d["sources"][0].update(scnee="x"), "scnee"),
        (lambda d: d["split"].update(theta=0.3), "theta"),
        (lambda d: d.update(validation={"phash": 3}), "phash"),
    ],
)
def test_unknown_key_names_key_and_file(kit, tmp_path, patch, key):
    data = kit.recipe_dict()
    patch(data)
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    assert key in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (lambda d: d["sources"][0]["aliases"].update(dent=["d"]), r"aliases\.dent.*not a defect"),
        (lambda d: d["sources"][1].update(name="shop"), "duplicate source name"),
        (lambda d: d["split"].update(unseen_scenes=["glass"]), r"unseen_scenes.*'glass'"),
        (lambda d: d["split"].update(val_fraction=1.5), "val_fraction"),
        (lambda d: d["split"].update(min_open_train_share=1.0), r"min_open_train_share must be in \[0, 1\)"),
        (lambda d: d.update(text_template="{defect} in {place}"), "text_template"),
        (lambda d: d["sources"][0].update(classes={}), "classes is empty"),
        (lambda d: d["sources"][0].update(path="/abs/path"), "relative to --root"),
        (lambda d: d["output"].update(images="hardlink") if "output" in d else d.update(output={"images": "hard"}),
         "not one of"),
        (lambda d: d.pop("sources"), "sources"),
    ],
)
def test_bad_values_are_config_errors(kit, patch, message):
    data = kit.recipe_dict()
    patch(data)
    with pytest.raises(ConfigError, match=message):
        recipe_from_dict(data, where="r.yaml")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: config file is not valid YAML \(line 2"):
        load_recipe(tmp_path / "bad.yaml")


def test_sha1_ignores_formatting_but_not_content(kit, tmp_path):
    a = load_recipe(_write(tmp_path, kit.recipe_dict()))
    b = recipe_from_dict(kit.recipe_dict())
    assert a.sha1() == b.sha1()
    c = kit.recipe_dict()
    c["split"]["seed"] = 1
    assert recipe_from_dict(c).sha1() != a.sha1()


def test_taxonomy_ids_texts_and_lookup(kit):
    data = kit.recipe_dict()
    data["sources"].append({"name": "shop2", "format": "coco", "path": "x", "scene": "metal plate",
                            "supercategory": "metal", "classes": {"Scratch": "scratch", "Dent": "dent"},
                            "aliases": {"scratch": ["rayure", "scratches"]}})
    tax = Taxonomy(recipe_from_dict(data))
    assert [(c.id, c.text) for c in tax.categories] == [
        (1, "scratch on metal plate"), (2, "hole on metal plate"), (3, "crack on wood"), (4, "knot on wood"),
        (5, "dent on metal plate")]
    assert tax.lookup(0, "scratch") == 1 and tax.lookup(2, "Scratch") == 1  # same scene + defect: one category
    assert tax.lookup(0, "junk") == DROP and tax.lookup(0, "dent") == UNKNOWN and tax.lookup(2, "Dent") == 5
    assert tax.categories[0].aliases == ["scratches", "划痕", "傷", "rayure"]
    assert tax.tree() == {"metal": {"metal plate": ["scratch", "hole", "dent"]},
                          "material": {"wood": ["crack", "knot"]}}


def test_taxonomy_conflicts(kit):
    data = kit.recipe_dict()
    data["sources"][1].update(scene="metal plate")  # same scene under another supercategory
    with pytest.raises(ConfigError, match="supercategory"):
        Taxonomy(recipe_from_dict(data))
    data = kit.recipe_dict()
    data["text_template"] = "{defect}"
    data["sources"][1]["classes"] = {"crack": "scratch"}  # "scratch" text twice (different scenes)
    with pytest.raises(ConfigError, match="collides"):
        Taxonomy(recipe_from_dict(data))


def test_shipped_mmioc_mini_recipe_loads():
    r = load_recipe(REPO / "configs" / "benchmarks" / "mmioc-mini.yaml")
    assert [s.name for s in r.sources] == ["deeppcb", "neu_det", "magnetic_tile", "cplid", "bsdata", "crackforest"]
    assert {s.supercategory for s in r.sources} == {"electronics", "metal", "ceramics", "power", "machine element",
                                                    "civil"}
    tax = Taxonomy(r)
    assert len(tax.categories) == 20
    scratch = next(c for c in tax.categories if c.defect == "scratch")
    assert {"scratches", "划痕", "傷"} <= set(scratch.aliases)
    assert tax.lookup(3, "insulator") == DROP  # CPLID insulator boxes are not a defect class
    assert all(s.license and s.license != "unknown" for s in r.sources)


def test_numeric_class_keys_become_native_strings(kit, tmp_path):
    data = kit.recipe_dict()
    data["sources"][1]["classes"] = {0: "crack", 1: "knot"}  # YOLO without names: ids are the native names
    r = load_recipe(_write(tmp_path, data))
    assert r.sources[1].classes == {"0": "crack", "1": "knot"}
    assert Taxonomy(r).lookup(1, "1") == 4


@pytest.mark.parametrize("version", [1, 2.5, "1"])
def test_version_may_be_a_number(kit, tmp_path, version):
    data = kit.recipe_dict()
    data["version"] = version
    assert load_recipe(_write(tmp_path, data)).version == str(version)


def test_version_rejects_a_mapping(kit):
    data = kit.recipe_dict()
    data["version"] = {"major": 1}
    with pytest.raises(ConfigError, match=r"r\.yaml\.version"):
        recipe_from_dict(data, where="r.yaml")


@pytest.mark.parametrize("key", ["scene", "format", "supercategory"])
def test_missing_required_source_key_names_it_not_a_signature(kit, tmp_path, key):
    data = kit.recipe_dict()
    del data["sources"][0][key]
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    msg = str(err.value)
    assert f"{path}.sources[0]: missing required key(s) ['{key}']" in msg and f"'{key}: <value>'" in msg
    assert "__init__" not in msg and "positional argument" not in msg


def test_classes_may_be_omitted_and_native_names_are_normalised(kit, clean_root):
    from rtvp.bench.native import resolve_classes

    data = kit.recipe_dict()
    del data["sources"][0]["classes"]
    del data["sources"][0]["aliases"]
    data["sources"][0]["options"]["names"] = ["deep_scratch", "hole", "pitted__surface "]
    data["sources"][1]["classes"] = {"crack": None, "knot": "knot"}  # `classes` still renames / drops
    recipe = recipe_from_dict(data)
    assert recipe.sources[0].classes is None
    resolved = resolve_classes(recipe, clean_root)
    assert resolved.sources[0].classes == {"deep_scratch": "deep scratch", "hole": "hole",
                                           "pitted__surface ": "pitted surface"}
    assert resolved.sources[1].classes == {"crack": None, "knot": "knot"}
    assert [c.text for c in Taxonomy(resolved).categories] == [
        "deep scratch on metal plate", "hole on metal plate", "pitted surface on metal plate", "knot on wood"]


def test_omitted_classes_are_scanned_when_the_source_lists_none(kit, clean_root):
    from rtvp.bench.native import resolve_classes

    data = kit.recipe_dict()
    del data["sources"][1]["classes"]
    del data["sources"][1]["options"]  # YOLO folders without names: the class ids found in the labels
    resolved = resolve_classes(recipe_from_dict(data), clean_root)
    assert resolved.sources[1].classes == {"0": "0", "1": "1"}


def test_omitted_classes_with_an_alias_of_no_native_class(kit, clean_root):
    from rtvp.bench.native import resolve_classes

    data = kit.recipe_dict()
    del data["sources"][0]["classes"]
    data["sources"][0]["aliases"] = {"dent!": ["d"]}
    with pytest.raises(ConfigError, match=r"aliases\.dent!: 'dent!' is not a defect of this source"):
        resolve_classes(recipe_from_dict(data), clean_root)


def test_val_sources_must_name_sources_and_leave_a_train_source(kit):
    data = kit.recipe_dict(val_sources=["mil"])
    with pytest.raises(ConfigError, match=r"r\.yaml: split\.val_sources: 'mil' is not a source name"):
        recipe_from_dict(data, where="r.yaml")
    data = kit.recipe_dict(val_sources=["mill", "shop"])
    with pytest.raises(ConfigError, match="nothing is left to train on"):
        recipe_from_dict(data, where="r.yaml")


def test_section_value_errors_name_the_file_and_an_example(kit, tmp_path):
    data = kit.recipe_dict()
    data["split"]["val_fraction"] = 1.5
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError, match=rf"^{path}: split\.val_fraction must be in \(0, 1\), got 1\.5; "
                                          r"e\.g\. val_fraction: 0\.2$"):
        load_recipe(path)


def test_extends_merges_mappings_and_replaces_lists(kit, tmp_path):
    base = _write(tmp_path, kit.recipe_dict())
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {base.name}\nname: child\nsplit: {{unseen_fraction: 0.0, unseen_scenes: [wood]}}\n",
                     encoding="utf-8")
    parent, r = load_recipe(base), load_recipe(child)
    assert r.name == "child" and r.sources == parent.sources
    assert r.split.unseen_scenes == ["wood"] and r.split.unseen_fraction == 0.0
    assert r.split.seed == parent.split.seed and r.split.val_fraction == parent.split.val_fraction  # merged
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop.yaml\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cycle"):
        load_recipe(loop)
    missing = tmp_path / "m.yaml"
    missing.write_text("extends: nope.yaml\nname: x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"m.yaml: extends: 'nope.yaml' not found"):
        load_recipe(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {base.name}\nsplit: {{unseen_scenes: [glass]}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml: split.unseen_scenes: 'glass'"):
        load_recipe(bad)


def test_shipped_cross_scene_recipe_extends_mmioc_mini():
    mini = load_recipe(REPO / "configs" / "benchmarks" / "mmioc-mini.yaml")
    cross = load_recipe(REPO / "configs" / "benchmarks" / "mmioc-cross.yaml")
    assert cross.name == "mmioc-cross" and cross.sources == mini.sources
    assert cross.split.unseen_scenes == ["road pavement", "ball screw drive"] and cross.split.unseen_fraction == 0
    words = {c.defect for c in Taxonomy(cross).categories if c.scene not in cross.split.unseen_scenes}
    assert "crack" in words and "pitted surface" in words
