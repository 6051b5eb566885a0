from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rtvp.loss import DetectionCriterion

VOCAB = [3, 0, 5, -1]  # K = 4, last slot is padding
TERMS = ("box", "dfl", "cls", "nce", "aux", "dp")


def _gt(b: int = 2):
    boxes = torch.tensor([[[4.0, 6, 40, 30], [30, 20, 62, 60], [0, 0, 0, 0]],
                          [[10.0, 10, 50, 50], [0, 0, 0, 0], [0, 0, 0, 0]]])[:b]
    labels = torch.tensor([[0, 2, -1], [1, -1, -1]])[:b]
    mask = labels >= 0
    return boxes, labels, mask


def test_total_is_batch_times_sum_of_detached_terms(toy):
    out, batch = toy["outputs"](2, 4), toy["batch"](*_gt(), VOCAB)
    res = DetectionCriterion()(out, batch)
    assert set(res) == {"loss", *TERMS}
    assert res["loss"].requires_grad and all(not res[k].requires_grad for k in TERMS)
    torch.testing.assert_close(res["loss"].detach(), 2 * sum(res[k] for k in TERMS))
    assert all(torch.isfinite(res[k]) and res[k] > 0 for k in TERMS)


def test_gains_scale_their_terms(toy):
    out, batch = toy["outputs"](2, 4), toy["batch"](*_gt(), VOCAB)
    base = DetectionCriterion(box=1, dfl=1, cls=1, nce=1, aux=1, dp=1)(out, batch)
    scaled = DetectionCriterion(box=2, dfl=3, cls=4, nce=5, aux=6, dp=7)(out, batch)
    for k, g in zip(TERMS, (2, 3, 4, 5, 6, 7), strict=True):
        torch.testing.assert_close(scaled[k], g * base[k])


def test_gradients_reach_box_dist_and_logits(toy):
    out, batch = toy["outputs"](2, 4), toy["batch"](*_gt(), VOCAB)
    crit = DetectionCriterion()
    crit(out, batch)["loss"].backward()
    fg = crit.assign(out, batch).fg_mask
    assert fg.any()
    assert out.box_dist.grad[fg].abs().sum() > 0 and (out.box_dist.grad[~fg] == 0).all()
    assert out.aux_box_dist.grad[fg].abs().sum() > 0 and (out.aux_box_dist.grad[~fg] == 0).all()
    assert out.logits.grad[..., :3].abs().gt(0).all()  # BCE touches every valid logit
    assert out.embeddings.grad[fg].abs().sum() > 0 and out.text.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p, _ in out.dp_pairs)


def test_padded_vocab_slots_get_no_gradient(toy):
    out, batch = toy["outputs"](2, 4), toy["batch"](*_gt(), VOCAB)
    with torch.no_grad():
        out.logits[..., 3] = float("-inf")  # a model may mask padded prompts like this
    DetectionCriterion()(out, batch)["loss"].backward()
    assert (out.logits.grad[..., 3] == 0).all() and torch.isfinite(out.logits.grad).all()
    assert (out.text.grad[:, 3] == 0).all() and out.text.grad[:, :3].abs().sum() > 0


def test_padded_slot_does_not_change_the_loss(toy):
    out, batch = toy["outputs"](2, 4), toy["batch"](*_gt(), VOCAB)
    res = DetectionCriterion()(out, batch)
    with torch.no_grad():
        out.logits[..., 3] += 100.0
        out.text[:, 3] = out.embeddings[0, 0]
    res2 = DetectionCriterion()(out, batch)
    for k in TERMS:
        torch.testing.assert_close(res[k], res2[k])


@pytest.mark.parametrize("m", [0, 3])
def test_empty_gt_pushes_all_logits_down(toy, m: int):
    out = toy["outputs"](2, 4)
    batch = toy["batch"](torch.zeros(2, m, 4), torch.full((2, m), -1), torch.zeros(2, m, dtype=torch.bool), VOCAB)
    res = DetectionCriterion()(out, batch)
    assert torch.isfinite(res["loss"])
    for k in ("box", "dfl", "nce", "aux"):
        assert res[k] == 0
    # target_scores_sum is clamped to 1: cls = gain * sum softplus(valid logits)
    torch.testing.assert_close(res["cls"], 0.5 * F.softplus(out.logits[..., :3].detach()).sum())
    res["loss"].backward()
    assert (out.logits.grad[..., :3] > 0).all()  # gradient descent lowers every valid logit
    assert out.box_dist.grad is not None and (out.box_dist.grad == 0).all()  # graph stays connected (DDP)


def test_one_box(toy):
    out = toy["outputs"](1, 4)
    batch = toy["batch"](torch.tensor([[[8.0, 8, 40, 36]]]), torch.tensor([[2]]), torch.tensor([[True]]), VOCAB)
    crit = DetectionCriterion(topk=10)
    res = crit(out, batch)
    assign = crit.assign(out, batch)
    assert 1 <= assign.num_fg <= 10 and (assign.target_labels[assign.fg_mask] == 2).all()
    assert res["box"] > 0 and res["dfl"] > 0 and torch.isfinite(res["loss"])


def test_closed_set_expert_has_zero_optional_terms(toy):
    out = toy["outputs"](2, 3, closed=True)
    res = DetectionCriterion()(out, toy["batch"](*_gt(), [0, 1, 2]))
    assert res["nce"] == 0 and res["aux"] == 0 and res["dp"] == 0
    assert res["box"] > 0 and res["cls"] > 0 and res["dfl"] > 0


def test_dp_is_sum_of_mses_and_target_is_stop_gradient(toy):
    out = toy["outputs"](2, 4)
    target = torch.zeros(2, 4, 2, 2, requires_grad=True)
    out.dp_pairs = [(torch.ones(2, 4, 2, 2, requires_grad=True), target),
                    (torch.full((2, 8), 3.0, requires_grad=True), torch.ones(2, 8))]
    res = DetectionCriterion(dp=0.5)(out, toy["batch"](*_gt(), VOCAB))
    torch.testing.assert_close(res["dp"], torch.tensor(0.5 * (1.0 + 4.0)))
    res["loss"].backward()
    assert target.grad is None


def test_aux_uses_the_main_assignment(toy):
    out = toy["outputs"](2, 4)
    out.aux_box_dist = out.box_dist.detach().clone().requires_grad_(True)
    res = DetectionCriterion(box=1.0, aux=1.0)(out, toy["batch"](*_gt(), VOCAB))
    torch.testing.assert_close(res["aux"], res["box"])
    out.aux_box_dist = torch.randn_like(out.box_dist)
    res2 = DetectionCriterion(box=1.0, aux=1.0)(out, toy["batch"](*_gt(), VOCAB))
    torch.testing.assert_close(res2["box"], res["box"])  # assignment only depends on the main head
    assert not torch.allclose(res2["aux"], res["aux"])


def test_sgd_on_a_tiny_head_decreases_the_loss(toy):
    torch.manual_seed(0)
    out0 = toy["outputs"](2, 4)
    batch = toy["batch"](*_gt(), VOCAB)
    a = len(out0.anchors)
    feats = torch.randn(2, a, 8)
    head = torch.nn.Linear(8, 64 * 2 + 4 + 8)
    text = torch.nn.Parameter(torch.randn(2, 4, 8))
    opt = torch.optim.SGD([*head.parameters(), text], lr=0.01)
    crit, losses = DetectionCriterion(), []
    for _ in range(30):
        y = head(feats)
        out0.box_dist, out0.aux_box_dist, out0.logits, out0.embeddings = y.split((64, 64, 4, 8), -1)
        out0.text, out0.dp_pairs = text, []
        loss = crit(out0, batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_shape_and_label_errors(toy):
    out = toy["outputs"](2, 4)
    with pytest.raises(ValueError, match="vocab_ids"):
        DetectionCriterion()(out, toy["batch"](*_gt(), [0, 1, 2]))
    with pytest.raises(ValueError, match="images"):
        DetectionCriterion()(out, toy["batch"](*_gt(1), VOCAB))
    boxes, labels, mask = _gt()
    labels[0, 0] = 3  # points at the padded slot
    with pytest.raises(ValueError, match="gt_labels"):
        DetectionCriterion()(out, toy["batch"](boxes, labels, mask, VOCAB))
    out.box_dist = out.box_dist[..., :60]
    with pytest.raises(ValueError, match="box_dist"):
        DetectionCriterion()(out, toy["batch"](*_gt(), VOCAB))
    with pytest.raises(ValueError, match="gains"):
        DetectionCriterion(box=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        DetectionCriterion(nce_temperature=0.0)
