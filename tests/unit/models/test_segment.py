"""The mask branch (``model.masks``): shapes, off-by-default checkpoints, expert -> RTVPNet transfer, grid strides."""

from __future__ import annotations

import warnings

import torch

from rtvp.data.masks import MASK_STRIDE
from rtvp.models import ExpertDetector, ModelConfig, build_model
from rtvp.models.segment import PROTO_STRIDE, MaskHead, box_cells, mask_logits
from rtvp.models.transfer import load_expert
from rtvp.predict import masks as predict_masks


def _rtvpnet(masks: bool) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model(ModelConfig(scale="tiny", sam=False, edp=False, masks=masks), text_dim=16)


def test_the_three_grids_agree():
    assert PROTO_STRIDE == MASK_STRIDE == predict_masks.PROTO_STRIDE == 4


def test_mask_head_shapes_follow_the_stride_8_map():
    head = MaskHead((16, 32, 64), nm=8)
    feats = [torch.rand(2, c, 12 // 2**i, 16 // 2**i) for i, c in enumerate((16, 32, 64))]
    coef, protos = head(feats)
    assert coef.shape == (2, 12 * 16 + 6 * 8 + 3 * 4, 8)
    assert protos.shape == (2, 8, 24, 32)  # stride 4 of a 96 x 128 input


def test_models_carry_the_branch_only_when_asked():
    x = torch.rand(1, 3, 64, 96)
    out = ExpertDetector("tiny", nc=2, masks=True)(x)
    assert out.mask_coef.shape == (1, 8 * 12 + 4 * 6 + 2 * 3, 32) and out.protos.shape == (1, 32, 16, 24)
    plain = ExpertDetector("tiny", nc=2)
    assert plain(x).mask_coef is None and not any(k.startswith("seg.") for k in plain.state_dict())
    out = _rtvpnet(True)(x, torch.randn(3, 16))
    assert out.mask_coef.shape[:2] == out.logits.shape[:2] and out.protos.shape == (1, 32, 16, 24)
    assert _rtvpnet(False)(x, torch.randn(3, 16)).protos is None


def test_load_expert_copies_the_mask_branch():
    expert = ExpertDetector("tiny", nc=2, masks=True)
    with torch.no_grad():
        for p in expert.seg.parameters():
            p.uniform_(-1, 1)
    model = _rtvpnet(True)
    counts = load_expert(model, expert.state_dict())
    assert counts["seg"] == len(expert.seg.state_dict())
    for k, v in expert.seg.state_dict().items():
        assert torch.equal(model.seg.state_dict()[k], v), k
    assert load_expert(_rtvpnet(False), expert.state_dict())["seg"] == 0  # a model without the branch ignores it


def test_box_cells_and_logits_by_hand():
    # box [1, 0.4, 3, 2.6]: columns whose centre x + 0.5 in [1, 3) -> 1, 2; rows with y + 0.5 in [0.4, 2.6) -> 0, 1, 2
    cells = box_cells(torch.tensor([[1.0, 0.4, 3.0, 2.6]]), 4, 4)
    expected = torch.zeros(1, 4, 4, dtype=torch.bool)
    expected[0, 0:3, 1:3] = True
    assert torch.equal(cells, expected)
    protos = torch.stack([torch.ones(2, 3), torch.arange(6.0).view(2, 3)])  # (nm=2, 2, 3)
    got = mask_logits(torch.tensor([[2.0, -1.0]]), protos)
    assert torch.equal(got, (2 - torch.arange(6.0)).view(1, 2, 3))
