import pytest
import torch

from rtvp.device import resolve_device
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
