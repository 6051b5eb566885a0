# ruff: noqa: NPY002 - the legacy global numpy RNG is exactly what capture_rng snapshots
import random

import numpy as np
import pytest
import torch
from torch import nn

from rtvp import __version__
from rtvp.checkpoint import CHECKPOINT_FORMAT, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from rtvp.errors import CheckpointError


def _ckpt(**extra):
    m = nn.Linear(2, 2)
    return {"version": __version__, "format": CHECKPOINT_FORMAT, "model_config": {"scale": "tiny"},
            "model": m.state_dict(), "vocabulary": ["scratch on steel"], "rng": [capture_rng()], **extra}


def test_round_trip_is_atomic_and_weights_only(tmp_path):
    ckpt = _ckpt()
    path = save_checkpoint(ckpt, tmp_path / "w" / "last.pt")
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temp file left behind
    back = load_checkpoint(path)
    torch.testing.assert_close(back["model"]["weight"], ckpt["model"]["weight"])
    assert back["vocabulary"] == ["scratch on steel"] and back["format"] == CHECKPOINT_FORMAT
    torch.load(path, map_location="cpu", weights_only=True)  # loads without any allow-listing


def test_missing_keys_refused_on_save(tmp_path):
    with pytest.raises(CheckpointError, match="without keys"):
        save_checkpoint({"model": {}}, tmp_path / "x.pt")


@pytest.mark.parametrize("kind", ["missing", "garbage", "state_dict", "pickled_object", "format"])
def test_bad_files_raise_checkpoint_error(tmp_path, kind):
    path = tmp_path / "w.pt"
    if kind == "garbage":
        path.write_text("this is not a checkpoint\n")
    elif kind == "state_dict":
        torch.save(nn.Linear(2, 2).state_dict(), path)
    elif kind == "pickled_object":
        torch.save({**_ckpt(), "module": nn.Linear(2, 2)}, path)  # whole modules are not weights_only-safe
    elif kind == "format":
        torch.save(_ckpt(format=CHECKPOINT_FORMAT + 1), path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)
    expected = {"missing": "not found", "garbage": "not a loadable", "state_dict": "not an rtvp checkpoint",
                "pickled_object": "not a loadable", "format": "format 2"}[kind]
    assert expected in str(e.value)


def test_rng_capture_restore_reproduces_all_streams(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.normal()  # leaves a cached gaussian in the legacy numpy state
    state = capture_rng()
    first = (random.random(), np.random.rand(), np.random.normal(), torch.rand(2).tolist())
    path = save_checkpoint(_ckpt(rng=[state]), tmp_path / "r.pt")
    restore_rng(load_checkpoint(path)["rng"][0])
    again = (random.random(), np.random.rand(), np.random.normal(), torch.rand(2).tolist())
    assert first == again
