"""Richer class text (issue 15): a class's phrasings (synonyms, visual descriptions) averaged in embedding space,
behind ``class_text=ensemble`` in training and ``--class-text ensemble`` in evaluation; recipe ``descriptions``."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
import torch.nn.functional as F

from rtvp.bench.recipe import recipe_from_dict
from rtvp.bench.taxonomy import Taxonomy
from rtvp.config import apply_overrides, to_dict
from rtvp.errors import ConfigError
from rtvp.models.text import build_text_encoder, encode_groups
from rtvp.training.config import TrainConfig
from rtvp.training.distributed import DistInfo
from rtvp.training.stages import class_text_table
from rtvp.vocabulary import Vocabulary, class_text_variants

VOCAB = Vocabulary({
    "scratch": {"synonyms": ["scratches", "scrape", "score mark", "scuff"], "zh": ["划痕"],
                "description": "a thin bright line"},
    "hole": {"synonyms": ["perforation"]},
})


def test_variants_are_text_then_synonyms_then_descriptions() -> None:
    cat = {"text": "scratch on steel strip", "defect": "scratch", "aliases": ["划痕", "scratch mark", "scratches"],
           "descriptions": ["long and straight"]}
    assert class_text_variants(cat, VOCAB) == [
        "scratch on steel strip",
        "scratch mark on steel strip",  # the category's own aliases first (CJK skipped: the encoder is English)
        "scratches on steel strip",
        "scrape on steel strip",  # then the vocabulary's synonyms, up to 3 in all; "scratches" is not repeated
        "scratch on steel strip: long and straight",  # the recipe's description, then the vocabulary's
        "scratch on steel strip: a thin bright line",
    ]
    assert class_text_variants(cat, VOCAB, synonyms=0) == [
        "scratch on steel strip", "scratch on steel strip: long and straight",
        "scratch on steel strip: a thin bright line"]


def test_variants_of_unknown_or_bare_categories() -> None:
    assert class_text_variants({"name": "knot on wood", "defect": "knot"}, VOCAB) == ["knot on wood"]
    assert class_text_variants({"text": "weird thing"}, VOCAB) == ["weird thing"]
    # a custom text template without the defect word gets descriptions, never a half-replaced text
    assert class_text_variants({"text": "wood: hole", "defect": "perforation"}, VOCAB) == ["wood: hole"]


def test_every_shipped_term_has_a_description() -> None:
    vocab = Vocabulary.default()
    assert all(isinstance(e.get("description"), str) and len(e["description"]) > 20 for e in vocab.terms.values())


def test_vocabulary_yaml_rejects_a_bad_description(tmp_path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text("terms:\n  hole:\n    description: [a, b]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="description must be one string"):
        Vocabulary.from_yaml(path)


def test_encode_groups_averages_unit_embeddings() -> None:
    enc = build_text_encoder("hash", dim=16)
    rows = enc.encode(["a crack", "a long crack", "a hole"])
    out = encode_groups(enc, [["a crack", "a long crack"], ["a hole"]])
    assert torch.allclose(out[0], F.normalize(rows[0] + rows[1], dim=0), atol=1e-6)
    assert torch.allclose(out[1], rows[2], atol=1e-6)
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-6)
    with pytest.raises(ValueError, match="at least one text"):
        encode_groups(enc, [["a"], []])


def test_training_table_uses_the_ensemble_only_when_asked() -> None:
    cats = [{"text": "scratch on steel", "defect": "scratch"}, {"text": "hole on wood", "defect": "hole"}]
    texts = [c["text"] for c in cats]
    enc = build_text_encoder("hash")  # the spec's default dim, as the trainer builds it
    base = apply_overrides(TrainConfig(), ["model.text_encoder=hash"])
    plain = class_text_table(base, texts, DistInfo(), cats)
    assert torch.allclose(plain, enc.encode(texts))
    ens = class_text_table(apply_overrides(base, ["class_text=ensemble"]), texts, DistInfo(), cats)
    vocab = Vocabulary.default()
    expected = encode_groups(enc, [class_text_variants(c, vocab) for c in cats])
    assert torch.allclose(ens, expected, atol=1e-6) and not torch.allclose(ens, plain)
    with pytest.raises(ConfigError, match="class_text"):
        apply_overrides(base, ["class_text=templates"])


SOURCE = {"name": "a", "format": "yolo", "path": "a", "scene": "wood", "supercategory": "material",
          "classes": {"0": "hole", "1": "knot"}}


def test_recipe_descriptions_reach_the_category() -> None:
    r = recipe_from_dict({"name": "t", "sources": [{**SOURCE, "descriptions": {"hole": "a round dark opening",
                                                                                 "knot": ["a dark ring", "oval"]}}]})
    cats = [c.to_coco() for c in Taxonomy(r).categories]
    assert [c["descriptions"] for c in cats] == [["a round dark opening"], ["a dark ring", "oval"]]
    assert class_text_variants(cats[0], VOCAB, synonyms=0) == ["hole on wood", "hole on wood: a round dark opening"]


def test_recipe_without_descriptions_keeps_its_hash_and_coco() -> None:
    r = recipe_from_dict({"name": "t", "sources": [SOURCE]})
    assert "descriptions" not in Taxonomy(r).categories[0].to_coco()
    data = to_dict(r)
    del data["sources"][0]["descriptions"]  # the recipe as it was before the field existed
    expected = hashlib.sha1(json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
    assert r.sha1() == expected


@pytest.mark.parametrize(("descriptions", "match"), [
    ({"bark": "x"}, "descriptions.bark: 'bark' is not a defect of this source"),
    ({"hole": [""]}, "descriptions.hole must be a non-empty text"),
    ({"hole": []}, "descriptions.hole must be a non-empty text"),
])
def test_recipe_description_errors(descriptions, match) -> None:
    with pytest.raises(ConfigError, match=match):
        recipe_from_dict({"name": "t", "sources": [{**SOURCE, "descriptions": descriptions}]})
