import math

import pytest
import torch
from torch import nn

from rtvp.training.ema import ModelEMA


def test_ema_update_matches_formula_and_copies_int_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = ModelEMA(model, decay=0.9, tau=2.0)
    w0 = model[0].weight.detach().clone()
    assert not any(p.requires_grad for p in ema.module.parameters())
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].num_batches_tracked.fill_(7)
    d1 = 0.9 * (1 - math.exp(-1 / 2.0))
    ema.update(model)
    assert ema.updates == 1
    torch.testing.assert_close(ema.module[0].weight, d1 * w0 + (1 - d1) * (w0 + 1))
    assert int(ema.module[1].num_batches_tracked) == 7
    d2 = 0.9 * (1 - math.exp(-2 / 2.0))
    assert ema.current_decay() == pytest.approx(d2)
    prev = ema.module[0].weight.clone()
    ema.update(model)
    torch.testing.assert_close(ema.module[0].weight, d2 * prev + (1 - d2) * (w0 + 1))


def test_ema_state_round_trip_and_validation():
    model = nn.Linear(3, 1)
    ema = ModelEMA(model, decay=0.5, tau=1.0)
    for _ in range(3):
        ema.update(model)
    other = ModelEMA(nn.Linear(3, 1), decay=0.5, tau=1.0)
    other.load_state_dict(ema.state_dict(), updates=ema.updates)
    assert other.updates == 3
    torch.testing.assert_close(other.module.weight, ema.module.weight)
    with pytest.raises(ValueError):
        ModelEMA(model, decay=1.0)
    with pytest.raises(ValueError):
        ModelEMA(model, tau=0)


def test_frozen_parameters_are_skipped_but_kept():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    model[0].requires_grad_(False)
    ema = ModelEMA(model, decay=0.5, tau=1e-9)  # d = 0.5 from the first update
    frozen0 = model[0].weight.detach().clone()
    w1 = model[1].weight.detach().clone()
    with torch.no_grad():
        model[1].weight.add_(2.0)
    ema.update(model)
    torch.testing.assert_close(ema.module[0].weight, frozen0)
    torch.testing.assert_close(ema.module[1].weight, w1 + 1.0)
