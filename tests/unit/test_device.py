import pytest
import torch

from rtvp.device import default_workers, resolve_device
from rtvp.errors import ConfigError


def test_auto_and_explicit_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu", local_rank=3) == torch.device("cpu")
    with pytest.raises(ConfigError, match="'cuda' requested but CUDA is not available; use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="'gpu0' is not a device; use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")


def test_cuda_binds_the_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda:1")
    assert resolve_device("cuda", local_rank=2) == torch.device("cuda:2")
    assert resolve_device("cuda:0", local_rank=2) == torch.device("cuda:0")


@pytest.mark.parametrize(("device", "cpus", "expected"), [("cpu", 1, 0), ("cpu", 2, 0), ("cpu", 4, 2), ("cpu", 16, 4),
                                                          ("cuda", 2, 2), ("cuda", 16, 4)])
def test_default_workers_leave_a_small_cpu_to_the_model(device: str, cpus: int, expected: int):
    assert default_workers(torch.device(device), cpus) == expected


def test_train_config_workers_none_means_the_default_and_an_explicit_value_is_kept(monkeypatch):
    from rtvp.training.config import TrainConfig
    from rtvp.training.distributed import get_dist_info
    from rtvp.training.stages import make_loader

    monkeypatch.setattr("rtvp.device.usable_cpus", lambda: 2)
    ds = list(range(8))
    assert TrainConfig().workers is None
    for asked, expected in ((None, 0), (1, 1)):
        cfg = TrainConfig(device="cpu", workers=asked, batch=4)
        assert make_loader(cfg, ds, get_dist_info()).num_workers == expected
