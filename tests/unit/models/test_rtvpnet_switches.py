"""Every switch changes the computation (same weights for the shared parts) while output shapes stay the same."""

from __future__ import annotations

import pytest
import torch
from rtvp_helpers import build, images, single_thread, text  # noqa: F401 (autouse fixture)


def _run(model, train: bool = False, seed: int = 0):
    model.train(train)
    torch.manual_seed(seed)
    with torch.no_grad():
        return model(images(2), text(3))


def _ablate(reference, **overrides):
    """Model with ``overrides`` carrying the reference model's weights wherever the modules exist in both."""
    model = build(seed=1, **overrides)
    own = model.state_dict()
    shared = {k: v for k, v in reference.state_dict().items() if k in own and own[k].shape == v.shape}
    missing, _ = model.load_state_dict(shared, strict=False)
    assert not [k for k in missing if k.startswith(("expert.backbone", "head."))], missing
    if not overrides:
        assert not missing
    return model


@pytest.fixture(scope="module")
def reference():
    model = build(seed=0)
    return model, _run(model)


def test_copying_weights_reproduces_output(reference):
    model, ref = reference
    torch.testing.assert_close(_run(_ablate(model)).logits, ref.logits)


@pytest.mark.parametrize(
    "overrides",
    [
        {"edp": False},
        {"rvp": False},
        {"t2v": False},
        {"v2t": False},
        {"sam": False, "edp": False},
        {"activation": "cbam"},
        {"activation": "eca"},
        {"activation": "self_attn"},
        {"activation": "none"},
        {"patch_size": 64},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_switch_changes_outputs_not_shapes(reference, overrides):
    model, ref = reference
    out = _run(_ablate(model, **overrides))
    assert out.logits.shape == ref.logits.shape and out.box_dist.shape == ref.box_dist.shape
    assert out.text.shape == ref.text.shape and out.embeddings.shape == ref.embeddings.shape
    assert not torch.allclose(out.logits, ref.logits, atol=1e-5) or not torch.allclose(out.box_dist, ref.box_dist)


def test_all_off_is_text_only_baseline():
    model = build(sam=False, edp=False, rvp=False, t2v=False, v2t=False)
    assert model.sam is None and model.projection is None and model.prompt is None and model.inject is None
    assert model.v2t is None
    assert not any(".attn" in n for n, _ in model.named_parameters())
    out = _run(model, train=True)
    assert out.aux_box_dist is None and out.dp_pairs == [] and out.maps == {}
    assert out.logits.shape == (2, 84, 3)


def test_mask_ratio_changes_training_reconstruction_only():
    reference = build(seed=0, rvp=False, mask_ratio=0.0)
    masked = _ablate(reference, rvp=False, mask_ratio=0.5)
    c, d = _run(reference), _run(masked)
    torch.testing.assert_close(c.logits, d.logits)  # no masking at inference
    a, b = _run(reference, train=True), _run(masked, train=True)  # (updates BN statistics: run last)
    assert not torch.allclose(a.dp_pairs[0][0], b.dp_pairs[0][0])
    torch.testing.assert_close(a.dp_pairs[0][1], b.dp_pairs[0][1])  # the expert target is untouched


def test_expert_update_switch_freezes_only_stage1_weights():
    free, frozen = build(expert_update=True), build(expert_update=False)
    assert len(free.param_groups()["expert"]) > 0 and frozen.param_groups()["expert"] == []
    n_free = sum(p.numel() for p in free.parameters() if p.requires_grad)
    n_frozen = sum(p.numel() for p in frozen.parameters() if p.requires_grad)
    expert = sum(p.numel() for p in free.param_groups()["expert"])
    assert n_free - n_frozen == expert
