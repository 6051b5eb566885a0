"""Fixtures of the annotation-pipeline tests: the toy benchmark and its tiny random checkpoints."""

from __future__ import annotations

import pytest
from annot_bench import expert_ckpt, rtvpnet_ckpt, write_bench


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return write_bench(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    return rtvpnet_ckpt(d / "ov.pt"), expert_ckpt(d / "expert.pt")


@pytest.fixture(autouse=True)
def _text_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RTVP_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the toy models are tiny, and two threads spin against each other on a shared CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _drop_cli_log_handlers():
    """CLI commands attach a stream handler to the "rtvp" logger; CliRunner closes that stream after the call."""
    import logging

    log = logging.getLogger("rtvp")
    before = list(log.handlers)
    yield
    log.handlers = before
