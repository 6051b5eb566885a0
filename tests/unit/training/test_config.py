import pytest

from rtvp.config import apply_overrides, load_yaml
from rtvp.errors import ConfigError
from rtvp.training.config import TrainConfig


def test_training_keys_moved_out_of_the_model_section_still_load(tmp_path):
    old = tmp_path / "config.yaml"  # a run config written before coupling_ratio/dp_eps/expert_update left `model`
    old.write_text("epochs: 3\nmodel:\n  scale: tiny\n  coupling_ratio: 0.5\n  dp_eps: 0.1\n  expert_update: false\n")
    cfg = load_yaml(TrainConfig, old)
    assert (cfg.coupling_ratio, cfg.dp_eps, cfg.expert_update, cfg.model.scale) == (0.5, 0.1, False, "tiny")
    cfg = apply_overrides(TrainConfig(), ["model.coupling_ratio=0.25", "dp_eps=0.3"])
    assert (cfg.coupling_ratio, cfg.dp_eps) == (0.25, 0.3)
    with pytest.raises(ConfigError, match="coupling_ratio=0"):
        TrainConfig(coupling_ratio=0)


def test_loss_section_reaches_the_criterion(tmp_path):
    """``--set loss.seg=2.5`` sets the criterion's gains; a config written before the section loads the defaults."""
    from rtvp.loss import DetectionCriterion
    from rtvp.loss.config import LossConfig

    old = tmp_path / "config.yaml"
    old.write_text("epochs: 3\n")
    assert load_yaml(TrainConfig, old).loss == LossConfig()
    cfg = apply_overrides(TrainConfig(), ["loss.seg=2.5", "loss.cls=1.0", "loss.topk=13"])
    crit = DetectionCriterion(**cfg.loss.criterion_kwargs())
    assert crit.gains["seg"] == 2.5 and crit.gains["cls"] == 1.0 and crit.gains["box"] == 7.5
    assert crit.assigner.topk == 13
    assert DetectionCriterion(**LossConfig().criterion_kwargs()).gains == DetectionCriterion().gains  # same defaults
    with pytest.raises(ConfigError, match=r"loss.box=-1.0, loss.topk=0"):
        apply_overrides(TrainConfig(), ["loss.box=-1", "loss.topk=0"])


@pytest.mark.parametrize(("stage", "expected"), [("expert", 20), ("full", 4)])
def test_close_mosaic_per_stage(tmp_path, stage, expected):
    """close_mosaic=10: stage 1 (30 epochs) closes at 20; stage 2 (8 epochs) keeps mosaic for its first half."""
    cfg = TrainConfig(expert_epochs=30, epochs=8, close_mosaic=10)
    assert cfg.mosaic_stop(stage) == expected
    assert TrainConfig(expert_epochs=30, epochs=8).mosaic_stop(stage) == expected  # 10 is the default
    assert TrainConfig(expert_epochs=30, epochs=8, close_mosaic=0).mosaic_stop(stage) is None  # mosaic throughout
    assert apply_overrides(TrainConfig(), ["close_mosaic=0", "augment.mosaic_stop_epoch=7"]).mosaic_stop(stage) == 7
    assert apply_overrides(TrainConfig(), ["augment.mosaic_stop_epoch=7"]).mosaic_stop(stage) == 7  # explicit wins
    with pytest.raises(ConfigError, match="close_mosaic=-1"):
        TrainConfig(close_mosaic=-1)
