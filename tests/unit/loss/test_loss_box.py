from __future__ import annotations

import torch
from torchvision.ops import box_iou, complete_box_iou_loss

from rtvp.loss import bbox2dist, box_iou_elementwise, ciou, ciou_loss, dist2bbox


def _random_boxes(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 100
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 60 + 0.5
    return torch.cat((xy, xy + wh), 1)


def _pairs() -> tuple[torch.Tensor, torch.Tensor]:
    b1, b2 = _random_boxes(200, 1), _random_boxes(200, 2)
    special1 = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 6, 30.0]],
                            dtype=torch.float64)
    special2 = torch.tensor([[0, 0, 10, 10], [20, 20, 30, 40], [2, 2, 8, 8], [5, 0, 15, 10], [0, 0, 40, 3.0]],
                            dtype=torch.float64)  # identical, disjoint, nested, half overlap, crossing
    return torch.cat((b1, special1)), torch.cat((b2, special2))


def test_ciou_loss_matches_torchvision_values():
    b1, b2 = _pairs()
    ours = ciou_loss(b1, b2)
    ref = complete_box_iou_loss(b1, b2, reduction="none")
    torch.testing.assert_close(ours, ref, rtol=1e-7, atol=1e-7)  # eps guards differ (atan w/(h+eps))
    torch.testing.assert_close(ciou_loss(b1.float(), b2.float()), ref.float(), rtol=1e-5, atol=1e-6)
    assert ours[-5].abs() < 1e-9  # identical boxes
    assert ours[-4] > 1.0  # disjoint boxes: IoU term 0 plus a distance penalty


def test_ciou_loss_matches_torchvision_gradients():
    b1, b2 = _pairs()
    p1, p2 = b1.clone().requires_grad_(True), b2.clone().requires_grad_(True)
    q1, q2 = b1.clone().requires_grad_(True), b2.clone().requires_grad_(True)
    w = torch.rand(len(b1), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    (ciou_loss(p1, p2) * w).sum().backward()
    (complete_box_iou_loss(q1, q2, reduction="none") * w).sum().backward()
    torch.testing.assert_close(p1.grad, q1.grad, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(p2.grad, q2.grad, rtol=1e-6, atol=1e-9)


def test_ciou_alpha_is_not_differentiated():
    # With alpha under no_grad, d(alpha*v)/dw = alpha * dv/dw; differentiating alpha too would change the gradient.
    b1 = torch.tensor([[0.0, 0.0, 10.0, 30.0]], dtype=torch.float64, requires_grad=True)
    b2 = torch.tensor([[0.0, 0.0, 20.0, 20.0]], dtype=torch.float64)
    ciou(b1, b2).sum().backward()
    x = b1.detach().clone().requires_grad_(True)
    inter = torch.minimum(x[:, 2], b2[:, 2]) * torch.minimum(x[:, 3], b2[:, 3])
    union = x[:, 2] * x[:, 3] + 400 - inter
    iou = inter / union
    rho2 = ((x[:, 2] - 20) ** 2 + (x[:, 3] - 20) ** 2) / 4
    c2 = 20.0**2 + 30.0**2
    v = 4 / torch.pi**2 * (torch.atan(torch.tensor(1.0)) - torch.atan(x[:, 2] / x[:, 3])) ** 2
    full = iou - rho2 / c2 - v**2 / (1 - iou + v)  # alpha differentiated
    full.sum().backward()
    assert not torch.allclose(b1.grad, x.grad)


def test_elementwise_iou_is_diagonal_of_box_iou_and_broadcasts():
    b1, b2 = _pairs()
    torch.testing.assert_close(box_iou_elementwise(b1, b2, eps=0), box_iou(b1, b2).diagonal())
    full = box_iou_elementwise(b1[:, None], b2[None], eps=0)
    torch.testing.assert_close(full, box_iou(b1, b2))


def test_dist_box_round_trip_and_clamp():
    anchors = torch.tensor([[10.0, 10.0], [50.0, 20.0]])
    dist = torch.tensor([[[1.0, 2.0, 3.0, 4.0], [5.0, 0.0, 1.0, 2.0]]])
    boxes = dist2bbox(dist, anchors)
    torch.testing.assert_close(boxes, torch.tensor([[[9.0, 8.0, 13.0, 14.0], [45.0, 20.0, 51.0, 22.0]]]))
    torch.testing.assert_close(bbox2dist(anchors, boxes, 100.0), dist)
    # anchor outside the box -> negative distance clamped to 0; far edge clamped to max_dist
    out = bbox2dist(torch.tensor([0.0, 0.0]), torch.tensor([5.0, -30.0, 40.0, 3.0]), 15.0)
    torch.testing.assert_close(out, torch.tensor([0.0, 15.0, 15.0, 3.0]))


def test_dfl_target_layout_agrees_with_model_decode():
    # bbox2dist (stride units) of a decoded box gives back the one-hot bins that produced it
    from rtvp.models.decode import decode_boxes

    anchors, strides = torch.tensor([[12.0, 20.0], [40.0, 40.0]]), torch.tensor([8.0, 16.0])
    bins = torch.tensor([[1, 2, 3, 4], [0, 15, 7, 2]])
    logits = torch.full((1, 2, 4, 16), -50.0).scatter_(-1, bins[None, ..., None], 50.0)
    boxes = decode_boxes(logits.view(1, 2, -1), anchors, strides)[0]
    dist = bbox2dist(anchors / strides[:, None], boxes / strides[:, None], 15.0)
    torch.testing.assert_close(dist, bins.float())
