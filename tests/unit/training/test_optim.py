import math

import pytest
import torch
from torch import nn

from rtvp.errors import ConfigError
from rtvp.training.optim import WarmupCosine, build_optimizer, build_param_groups


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.expert = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Linear(4, 2)
        self.logit_scale = nn.Parameter(torch.tensor(1.0))
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)

    def param_groups(self):
        return {"expert": list(self.expert.parameters()),
                "other": [self.head.weight, self.head.bias, self.logit_scale]}


def test_groups_split_decay_and_apply_coupling_ratio():
    m = Grouped()
    groups = {g["name"]: g for g in build_param_groups(m, lr=2e-3, weight_decay=0.025, expert_lr_ratio=0.1)}
    assert set(groups) == {"expert/decay", "expert/no_decay", "other/decay", "other/no_decay"}
    assert groups["expert/decay"]["params"] == [m.expert[0].weight]
    assert {id(p) for p in groups["expert/no_decay"]["params"]} == {id(m.expert[0].bias), id(m.expert[1].weight),
                                                                    id(m.expert[1].bias)}
    assert groups["other/decay"]["params"] == [m.head.weight]
    assert {id(p) for p in groups["other/no_decay"]["params"]} == {id(m.head.bias), id(m.logit_scale)}
    assert groups["expert/decay"]["lr"] == pytest.approx(2e-4) and groups["other/decay"]["lr"] == pytest.approx(2e-3)
    assert groups["expert/no_decay"]["weight_decay"] == 0 and groups["other/decay"]["weight_decay"] == 0.025
    all_ids = {id(p) for g in groups.values() for p in g["params"]}
    assert id(m.frozen.weight) not in all_ids and id(m.frozen.bias) not in all_ids


def test_plain_model_is_one_component_and_frozen_excluded():
    m = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3))
    m[0].weight.requires_grad_(False)
    opt = build_optimizer(m, lr=1e-3, weight_decay=0.1)
    assert isinstance(opt, torch.optim.AdamW)
    names = [g["name"] for g in opt.param_groups]
    assert names == ["other/no_decay"]  # only the bias and LayerNorm params remain trainable
    assert sum(len(g["params"]) for g in opt.param_groups) == 3


def test_param_groups_that_miss_parameters_are_rejected():
    m = Grouped()
    m.param_groups = lambda: {"other": [m.head.weight]}
    with pytest.raises(ValueError, match="misses"):
        build_param_groups(m, 1e-3, 0.0)
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable"):
        build_param_groups(frozen, 1e-3, 0.0)


def test_warmup_cosine_hand_computed():
    s = WarmupCosine(total_steps=12, warmup_steps=3, final=0.1)
    assert [s.factor(i) for i in range(3)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert s.factor(3) == pytest.approx(1.0)
    # halfway through the cosine part (steps 3..11, span 8): 0.1 + 0.9 * 0.5 = 0.55
    assert s.factor(7) == pytest.approx(0.55)
    assert s.factor(11) == pytest.approx(0.1)
    assert s.factor(5) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 2 / 8)))
    m = Grouped()
    opt = build_optimizer(m, lr=1.0, weight_decay=0.0, expert_lr_ratio=0.5)
    s.apply(opt, 7)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["expert/decay"] == pytest.approx(0.275) and lrs["other/decay"] == pytest.approx(0.55)


def test_warmup_longer_than_run_and_bad_final():
    s = WarmupCosine(total_steps=4, warmup_steps=10, final=0.0)
    assert [s.factor(i) for i in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    with pytest.raises(ConfigError):
        WarmupCosine(10, 1, final=1.5)

