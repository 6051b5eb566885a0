"""Benchmark inference (``rtvp val --weights``) and the trainer's eval function: valid COCO results, same boxes as
the predictor, the protocol's vocabulary, live models left as they were."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from predict_toys import (
    VOCAB,
    expert_ckpt,
    one_thread,  # noqa: F401 - autouse fixture
    rtvpnet_ckpt,
    write_bench,
)
from rtvp.errors import ConfigError
from rtvp.evaluation import inference
from rtvp.evaluation.evaluator import evaluate
from rtvp.evaluation.inference import make_eval_fn, predict_split, with_segmentation
from rtvp.masks import decode_rle
from rtvp.predict.inputs import coco_results
from rtvp.predict.loading import load_model
from rtvp.predict.predictor import Predictor
from rtvp.structures import Detections


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return write_bench(tmp_path_factory.mktemp("b"))


@pytest.fixture(scope="module")
def ckpt():
    return rtvpnet_ckpt(imgsz=64)


@pytest.mark.parametrize("protocol, split", [("closed", "closed_val"), ("open", "open_val"),
                                             ("generalized", "open_val")])
def test_results_are_valid_coco_for_the_protocol(bench, ckpt, protocol, split):
    results = predict_split(ckpt, bench, split, protocol, batch=3)
    gt = json.loads((bench / "annotations" / f"{split}.json").read_text())
    sizes = {im["id"]: (im["width"], im["height"]) for im in gt["images"]}
    cats = {c["id"] for c in gt["categories"] if protocol != "open" or c["split"] == "unseen"}
    assert results and {r["category_id"] for r in results} <= cats
    assert {r["image_id"] for r in results} <= set(sizes)
    for r in results:
        x, y, w, h = r["bbox"]
        iw, ih = sizes[r["image_id"]]
        assert 0 <= x and 0 <= y and x + w <= iw + 1e-3 and y + h <= ih + 1e-3 and 0.001 < r["score"] <= 1
    metrics = evaluate(bench / "annotations" / f"{split}.json", results, protocol)
    assert metrics["num_predictions"] == len(results) and 0.0 <= metrics["AP"] <= 1.0
    if protocol == "open":
        assert {r["category_id"] for r in results} == {3}


def test_same_boxes_as_the_predictor(bench, ckpt):
    results = predict_split(ckpt, bench, "closed_val", "closed", batch=4)
    gt = json.loads((bench / "annotations" / "closed_val.json").read_text())
    pred = Predictor(ckpt, conf=0.001, max_det=300)
    dets = pred.predict([bench / im["file_name"] for im in gt["images"]])
    for im, d in zip(gt["images"], dets, strict=True):
        mine = sorted((r["category_id"], *r["bbox"]) for r in results if r["image_id"] == im["id"])
        xywh = np.round(np.c_[d.xyxy[:, :2], d.xyxy[:, 2:] - d.xyxy[:, :2]], 2)
        theirs = sorted((int(c) + 1, *b) for c, b in zip(d.class_id, xywh.tolist(), strict=True))
        assert len(mine) == len(theirs)
        np.testing.assert_allclose(np.array(mine), np.array(theirs), atol=0.02)


def test_expert_checkpoint_on_the_closed_protocol(bench):
    results = predict_split(expert_ckpt(), bench, "closed_val", "closed")
    assert results and {r["category_id"] for r in results} <= {1, 2, 3}
    other = expert_ckpt()
    other["vocabulary"], other["categories"] = ["rust on iron", "dent on car", "burr on gear"], []
    with pytest.raises(ConfigError, match="not a class of this closed-set expert"):
        predict_split(other, bench, "closed_val", "closed")


def test_eval_fn_on_a_live_model(bench, ckpt):
    model, meta = load_model(ckpt)
    model.train()
    calls = []
    eval_fn = make_eval_fn(bench, "generalized", imgsz=64, batch=2, text_embeddings=meta.text_embeddings,
                           text_encoder_name=meta.text_encoder)
    from rtvp.models.text import HashingEncoder

    encode = HashingEncoder.encode
    try:  # count encoder calls: every class text is in the stored table, so none should be encoded
        HashingEncoder.encode = lambda self, texts: calls.append(list(texts)) or encode(self, texts)
        metrics = eval_fn(model, VOCAB)
    finally:
        HashingEncoder.encode = encode
    assert {"AP", "AP50", "AP_seen", "AP_unseen", "HM", "per_class"} <= set(metrics)
    assert model.training and calls == []  # the live model is left in training mode
    assert metrics == eval_fn(model, VOCAB)  # deterministic, dataset reused
    unseen_only = make_eval_fn(bench, "open", imgsz=64, text_encoder_name="hash")(model)  # no table: texts encoded
    assert set(unseen_only["per_class"]) == {"crack on glass"}


def test_eval_fn_on_a_live_expert(bench):
    model, _ = load_model(expert_ckpt())
    metrics = make_eval_fn(bench, "closed", imgsz=64)(model, VOCAB)
    assert metrics["num_predictions"] > 0 and set(metrics["per_class"]) == set(VOCAB)


def test_eval_matches_predict_split(bench, ckpt):
    model, meta = load_model(ckpt)
    metrics = make_eval_fn(bench, "closed", imgsz=64, text_embeddings=meta.text_embeddings)(model, VOCAB)
    direct = evaluate(bench / "annotations" / "closed_val.json", predict_split(ckpt, bench, "closed_val", "closed"),
                      "closed")
    assert metrics["AP"] == direct["AP"] and metrics["num_predictions"] == direct["num_predictions"]
    with torch.no_grad():
        assert not model.training


def test_with_segmentation_encodes_each_mask_in_order():
    masks = np.zeros((2, 5, 7), dtype=bool)
    masks[0, 1:3, 2:6] = True  # 8 px
    masks[1, 4, 0] = True  # 1 px
    dets = Detections(np.array([[2, 1, 6, 3], [0, 4, 1, 5]]), np.array([0.9, 0.5]), np.array([0, 1]), mask=masks)
    results = with_segmentation(coco_results(dets, 7, category_ids=[3, 4]), dets)
    assert [r["category_id"] for r in results] == [3, 4]
    for r, m in zip(results, masks, strict=True):
        assert r["segmentation"]["size"] == [5, 7] and isinstance(r["segmentation"]["counts"], str)
        np.testing.assert_array_equal(decode_rle(r["segmentation"]), m)
    json.dumps(results)  # JSON-able for `rtvp val --save`
    kept = [{"segmentation": "already there"}, {}]
    assert with_segmentation(kept, dets)[0]["segmentation"] == "already there"
    no_masks = Detections(dets.xyxy, dets.confidence, dets.class_id)
    assert "segmentation" not in with_segmentation(coco_results(no_masks, 7), no_masks)[0]
    with pytest.raises(ValueError, match="1 COCO results for 2 detections"):
        with_segmentation(kept[:1], dets)


def test_split_results_carry_masks_in_original_pixels(bench, ckpt, monkeypatch):
    real = inference.run_batch

    def with_box_masks(prompted, images, geo, *args):  # stand-in for a model with a mask branch: filled boxes
        dets, maps = real(prompted, images, geo, *args)
        for d, (h, w) in zip(dets, geo.sizes.tolist(), strict=True):
            m = np.zeros((len(d), int(h), int(w)), dtype=bool)
            for k, (x1, y1, x2, y2) in enumerate(d.xyxy.astype(int).tolist()):
                m[k, y1:y2 + 1, x1:x2 + 1] = True
            d.mask = m
        return dets, maps

    monkeypatch.setattr(inference, "run_batch", with_box_masks)
    results = predict_split(ckpt, bench, "closed_val", "closed", batch=3)
    gt = json.loads((bench / "annotations" / "closed_val.json").read_text())
    sizes = {im["id"]: [im["height"], im["width"]] for im in gt["images"]}
    assert results and all(r["segmentation"]["size"] == sizes[r["image_id"]] for r in results)
    for r in results:  # each mask is its own detection's filled box (to the pixel; boxes are rounded to 0.01)
        ys, xs = np.nonzero(decode_rle(r["segmentation"]))
        x, y, w, h = r["bbox"]
        assert abs(xs.min() - x) <= 1 and abs(ys.min() - y) <= 1
        assert abs(xs.max() - (x + w)) <= 1 and abs(ys.max() - (y + h)) <= 1
    metrics = evaluate(bench / "annotations" / "closed_val.json", results, "closed")  # GT has no masks
    assert metrics["mask_AP"] is None and (metrics["mask_images"], metrics["mask_classes"]) == (0, 0)


def test_ensemble_class_text_equals_a_checkpoint_storing_the_ensemble(bench, ckpt):
    """``class_text="ensemble"`` prompts with the mean of each class's phrasings: the same results as a checkpoint
    whose stored rows are those means (what ``class_text=ensemble`` training saves), and not the plain texts'."""
    from rtvp.models.text import build_text_encoder, encode_groups
    from rtvp.vocabulary import Vocabulary, class_text_variants

    gt = json.loads((bench / "annotations" / "closed_val.json").read_text())
    groups = [class_text_variants(c, Vocabulary.default()) for c in gt["categories"]]
    assert all(len(g) > 1 for g in groups)  # each toy class has synonyms and a description in the shipped vocabulary
    stored = {**ckpt, "text_embeddings": encode_groups(build_text_encoder("hash", dim=ckpt["text_dim"]), groups)}
    ens = predict_split(ckpt, bench, "closed_val", "closed", batch=4, class_text="ensemble")
    assert ens == predict_split(stored, bench, "closed_val", "closed", batch=4)
    plain = predict_split(ckpt, bench, "closed_val", "closed", batch=4)
    assert [r["score"] for r in ens] != [r["score"] for r in plain]
    with pytest.raises(ConfigError, match="class_text='names'"):
        predict_split(ckpt, bench, "closed_val", "closed", class_text="names")
