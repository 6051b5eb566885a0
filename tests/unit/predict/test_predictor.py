"""Predictor: checkpoint rebuild, prompt resolution, un-letterboxing (hand-checked), batching, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from predict_toys import (
    TEXT_DIM,
    VOCAB,
    expert_ckpt,
    one_thread,  # noqa: F401 - autouse fixture
    rtvpnet_ckpt,
    write_images,
)
from rtvp.checkpoint import save_checkpoint
from rtvp.errors import CheckpointError, ConfigError
from rtvp.models.decode import make_anchors
from rtvp.models.outputs import RawOutputs
from rtvp.models.text import build_text_encoder
from rtvp.predict import loading
from rtvp.predict.loading import load_model
from rtvp.predict.predictor import Predictor


@pytest.fixture(scope="module")
def ckpt():
    return rtvpnet_ckpt(imgsz=64)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("imgs"), [(100, 60), (64, 64), (30, 90)])


def test_checkpoint_rebuild_gives_the_same_outputs(tmp_path, ckpt):
    path = save_checkpoint(ckpt, tmp_path / "w.pt")
    model, meta = load_model(path)
    assert meta.arch == "rtvpnet" and meta.vocabulary == VOCAB and meta.imgsz == 64 and meta.text_dim == TEXT_DIM
    assert meta.text_encoder == "hash" and meta.weights == "model" and not model.training
    x = torch.rand(2, 3, 64, 64)
    reference, _ = load_model(ckpt)  # from the in-memory dict, whose tensors were never serialised
    with torch.no_grad():
        a, b = model(x, meta.text_embeddings), reference(x, meta.text_embeddings)
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.box_dist, b.box_dist)


def test_checkpoints_with_training_keys_in_model_config_still_load(ckpt):
    old = {**ckpt, "model_config": {**ckpt["model_config"], "dp_eps": 0.02, "coupling_ratio": 0.1,
                                    "expert_update": True}}  # written before these moved to TrainConfig
    model, _ = load_model(old)
    reference, _ = load_model(ckpt)
    x, text = torch.rand(1, 3, 64, 64), torch.randn(2, TEXT_DIM)
    with torch.no_grad():
        torch.testing.assert_close(model(x, text).logits, reference(x, text).logits)


def test_ema_weights_are_preferred(ckpt):
    ema = {k: v.clone() for k, v in ckpt["model"].items()}
    ema["head.beta"] = ema["head.beta"] + 3.0
    model, meta = load_model({**ckpt, "ema": ema})
    assert meta.weights == "ema" and torch.equal(model.head.beta, ema["head.beta"])
    _, meta = load_model({**ckpt, "ema": ema}, use_ema=False)
    assert meta.weights == "model"


@pytest.mark.parametrize("damage, match", [
    (lambda c: {k: v for k, v in c.items() if k != "arch"} | {"arch": "toy"}, "architecture 'toy'"),
    (lambda c: c | {"model_config": {**c["model_config"], "wings": 2}}, "wings"),
    (lambda c: c | {"model": {k: v for k, v in c["model"].items() if not k.startswith("head.")}}, "do not fit"),
    (lambda c: c | {"model_config": {**c["model_config"], "scale": "n"}}, "do not fit"),
    (lambda c: c | {"format": 99}, "format 99"),
])
def test_damaged_checkpoints_get_clear_errors(ckpt, damage, match):
    with pytest.raises(CheckpointError, match=match):
        load_model(damage(ckpt))


def test_files_that_are_not_checkpoints(tmp_path, ckpt):
    garbage = tmp_path / "notes.pt"
    garbage.write_text("definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="not a loadable rtvp checkpoint"):
        Predictor(garbage)
    bare = tmp_path / "bare.pt"
    torch.save(ckpt["model"], bare)
    with pytest.raises(CheckpointError, match="not an rtvp checkpoint"):
        Predictor(bare)
    future = tmp_path / "future.pt"
    torch.save({**ckpt, "format": 99}, future)
    with pytest.raises(CheckpointError, match="format 99"):
        Predictor(future)
    with pytest.raises(CheckpointError, match="not found"):
        Predictor(tmp_path / "missing.pt")


def test_prompts_resolve_through_the_vocabulary(ckpt, images):
    pred = Predictor(ckpt, conf=0.0, max_det=5)
    resolved = pred.set_prompts(["划痕", "scratches", "hole in wood"])
    assert [r.canonical for r in resolved] == ["scratch", "scratch", None]
    assert [r.text for r in resolved] == ["scratch", "scratch", "hole in wood"]
    expected = build_text_encoder("hash", dim=TEXT_DIM).encode(["scratch", "scratch", "hole in wood"])
    torch.testing.assert_close(pred._active.text, expected)
    dets = pred.predict(images[:1])
    assert dets[0].class_names == ["划痕", "scratches", "hole in wood"] and len(dets[0]) == 5
    assert dets[0].data["embedding"].shape == (5, 32) and dets[0].data["anchor"].shape == (5,)


def test_checkpoint_vocabulary_uses_the_stored_embeddings(ckpt):
    table = torch.nn.functional.normalize(torch.randn(len(VOCAB), TEXT_DIM), dim=-1)
    pred = Predictor({**ckpt, "text_embeddings": table})
    assert [r.prompt for r in pred.set_prompts(None)] == VOCAB
    torch.testing.assert_close(pred._active.text, table)
    pred.set_prompts(["hole on wood"])  # a checkpoint class text typed as a prompt: stored row, not re-encoded
    torch.testing.assert_close(pred._active.text, table[1:2])


@pytest.mark.parametrize("prompts, match", [([], "empty prompt list"), (["  "], "empty prompt"),
                                            (["x" * 201], "limit is 200")])
def test_bad_prompt_lists(ckpt, prompts, match):
    with pytest.raises(ConfigError, match=match):
        Predictor(ckpt).set_prompts(prompts)


def test_expert_prompts_select_its_classes(images):
    pred = Predictor(expert_ckpt(), conf=0.0, max_det=20)
    assert [r.canonical for r in pred.set_prompts(["scratch", "孔"])] == ["scratch", "hole"]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        full = pred.model(x).logits
        bound = pred._active(x).logits
    torch.testing.assert_close(bound, full[..., [0, 1]])
    assert set(pred.predict(images[:1])[0].labels) <= {"scratch", "孔"}
    with pytest.raises(ConfigError, match="not a class of this closed-set expert"):
        pred.set_prompts(["rust"])


def test_stage1_expert_of_the_open_protocol_names_its_seen_classes():
    ckpt = expert_ckpt()  # 3 classes, trained on the seen ones of 4 categories
    extra = {"id": 4, "name": "dent on car", "text": "dent on car", "defect": "dent", "split": "unseen"}
    ckpt["categories"] = [*ckpt["categories"][:1], extra, *ckpt["categories"][1:]]
    ckpt["vocabulary"] = [c["text"] for c in ckpt["categories"]]
    _, meta = load_model(ckpt)
    assert meta.vocabulary == VOCAB


def test_boxes_map_back_to_original_pixels(monkeypatch, ckpt, tmp_path):
    """A stubbed model output with one known box in the letterboxed frame, hand-mapped to the original image."""
    anchors, strides = make_anchors([(8, 8), (4, 4), (2, 2)], (8, 16, 32))
    j = 4 * 8 + 3  # level 0, cell (x=3, y=4): centre (28, 36)
    box_dist = torch.full((anchors.shape[0], 4, 16), -50.0)
    box_dist[:, :, 0] = 50.0  # zero distance everywhere ...
    box_dist[j] = -50.0
    for side, d in enumerate((1, 1, 2, 1)):  # ... but ltrb = (1, 1, 2, 1) bins * stride 8 at anchor j
        box_dist[j, side, d] = 50.0
    logits = torch.full((anchors.shape[0], 3), -10.0)
    logits[j, 1] = 10.0

    def fake_forward(self, images):
        b = images.shape[0]
        return RawOutputs(box_dist.flatten(1).expand(b, -1, -1), logits.expand(b, -1, -1), anchors, strides)

    monkeypatch.setattr(loading.PromptedModel, "forward", fake_forward)
    path = write_images(tmp_path, [(100, 50)])[0]  # scale 0.64 -> 64 x 32, pad (0, 16)
    dets = Predictor(ckpt, imgsz=64, conf=0.5).predict([path])[0]
    # letterboxed box (20, 28, 44, 44) -> ((20 - 0) / 0.64, (28 - 16) / 0.64, 44 / 0.64, (44 - 16) / 0.64)
    np.testing.assert_allclose(dets.xyxy, [[31.25, 18.75, 68.75, 43.75]], atol=1e-3)
    assert dets.class_id.tolist() == [1] and dets.data["anchor"].tolist() == [j]
    assert dets.confidence[0] == pytest.approx(1 / (1 + np.exp(-10.0)), rel=1e-5)


def test_batching_does_not_change_results(ckpt, images):
    one = Predictor(ckpt, conf=0.05, batch=1).predict(images)
    three = Predictor(ckpt, conf=0.05, batch=3).predict(images)
    for a, b in zip(one, three, strict=True):
        assert a.class_id.tolist() == b.class_id.tolist()
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-5)


def test_unreadable_images_are_reported_and_skipped(tmp_path, ckpt, images):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG not really")
    pred = Predictor(ckpt, conf=0.05, batch=2)
    sources = [images[0], tmp_path / "missing.jpg", corrupt, images[1]]
    dets = pred.predict(sources)
    assert len(dets) == 2 and pred.last_names == [str(images[0]), str(images[1])]
    assert [s for s, _ in pred.skipped] == [str(tmp_path / "missing.jpg"), str(corrupt)]
    assert "not found" in pred.skipped[0][1] and "not a readable image" in pred.skipped[1][1]
    ref = pred.predict([images[0], images[1]])
    for a, b in zip(dets, ref, strict=True):
        np.testing.assert_allclose(a.xyxy, b.xyxy)


def test_arrays_and_channel_conversion(images):
    gray = Predictor(rtvpnet_ckpt(in_channels=1), conf=0.05)
    rgb = np.random.default_rng(0).integers(0, 255, (40, 70, 3), dtype=np.uint8)
    dets = gray.predict([rgb, images[2], rgb[:, :, 0]])
    assert len(dets) == 3 and gray.channels == 1
    assert (dets[0].xyxy[:, 2] <= 70).all() and (dets[0].xyxy[:, 3] <= 40).all()
    assert gray.predict([np.zeros((4, 4), np.float32)]) == [] and "uint8" in gray.skipped[-1][1]


def test_maps_are_unletterboxed_to_the_image(monkeypatch, ckpt, tmp_path):
    path = write_images(tmp_path, [(100, 50)])[0]  # letterboxed at 64: content rows 16..48
    pred = Predictor(ckpt, imgsz=64, conf=0.05)
    pred.predict([path], save_maps=True)
    maps = pred.last_maps[0]
    assert set(maps) == {"uncertainty", "selection"} and maps["uncertainty"].shape == (50, 100)
    assert all(0.0 <= m.min() and m.max() <= 1.0 for m in maps.values())
    real = loading.PromptedModel.forward

    def with_known_map(self, images):
        out = real(self, images)
        level = torch.full((images.shape[0], 1, 8, 8), 1.0)
        level[:, :, 2:6] = 0.25  # the content rows of the stride-8 grid; the pad rows are 1
        out.maps = {"uncertainty": [level], "selection": [level]}
        return out

    monkeypatch.setattr(loading.PromptedModel, "forward", with_known_map)
    pred.predict([path], save_maps=True)
    heat = pred.last_maps[0]["uncertainty"]
    assert heat.shape == (50, 100) and np.median(heat) == pytest.approx(0.25, abs=1e-6)
    assert heat[10:40].max() == pytest.approx(0.25, abs=1e-6)  # no pad leaks into the middle of the image


def test_bad_settings(ckpt):
    with pytest.raises(ConfigError, match="multiple of 32"):
        Predictor(ckpt, imgsz=100)
    with pytest.raises(ConfigError, match="conf"):
        Predictor(ckpt, conf=1.5)


def test_bound_prompt_lists_are_bounded(monkeypatch, ckpt):
    import rtvp.predict.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "MAX_BOUND_PROMPT_LISTS", 2)
    predictor = Predictor(ckpt)
    for prompts in (["scratch"], ["hole"], ["crack"], ["hole"]):
        predictor.set_prompts(prompts)
    assert list(predictor._bound) == [("crack",), ("hole",)]


def test_bf16_autocast_inference_stays_close_to_fp32(ckpt):
    img = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    img[16:40, 20:44] = 240
    fp32 = Predictor(ckpt, conf=0.0, max_det=20).predict([img])[0]
    bf16 = Predictor(ckpt, conf=0.0, max_det=20, amp=True).predict([img])[0]
    assert len(bf16) == len(fp32) == 20 and bf16.xyxy.dtype == fp32.xyxy.dtype
    assert abs(float(bf16.confidence.max()) - float(fp32.confidence.max())) < 0.02  # bf16: ~3 significant digits
    top = int(fp32.confidence.argmax())
    assert np.abs(bf16.xyxy - fp32.xyxy[top]).sum(1).min() < 2.0  # the best box is found again within 2 px
