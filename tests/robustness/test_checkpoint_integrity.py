"""Damaged checkpoints are refused on load, naming the file and the damage (corrupted, empty, truncated, NaN)."""

from __future__ import annotations

import time
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from predict_toys import one_thread, rtvpnet_ckpt, write_images  # noqa: F401 - autouse fixture
from rtvp.checkpoint import load_checkpoint, save_checkpoint
from rtvp.errors import CheckpointError


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ck") / "best.pt"
    rtvpnet_ckpt(path, imgsz=64)
    return path


def flip_tensor_bytes(src: Path, dst: Path) -> int:
    """Copy ``src`` to ``dst`` with one byte flipped in the middle of every tensor block; returns the count."""
    data = bytearray(src.read_bytes())
    n = 0
    with zipfile.ZipFile(src) as z:
        for info in z.infolist():
            if "/data/" in info.filename and info.file_size:
                start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
                data[start + info.file_size // 2] ^= 0xFF
                n += 1
    dst.write_bytes(bytes(data))
    return n


def test_flipped_bytes_are_refused_not_predicted(good, tmp_path, rtvp_cli):
    bad = tmp_path / "best.pt"
    assert flip_tensor_bytes(good, bad) > 10
    img = write_images(tmp_path / "src", [(64, 48)])[0]
    code, out = rtvp_cli("predict", "--weights", bad, "--source", img, "--out", tmp_path / "pred")
    assert code == 2
    assert f"{bad}: corrupted checkpoint: archive member 'archive/data/" in out
    assert "fails its CRC-32 check" in out and "copy it again" in out
    assert not (tmp_path / "pred" / "predictions.json").exists()
    code, out = rtvp_cli("predict", "--weights", good, "--source", img, "--out", tmp_path / "ok", "--conf", "0")
    assert code == 0, out  # the intact file still runs


@pytest.mark.parametrize("where", ["model", "ema"])
def test_non_finite_weights_are_refused(tmp_path, where):
    ckpt = rtvpnet_ckpt()
    state = {k: v.clone() for k, v in ckpt["model"].items()}
    for v in state.values():
        if v.is_floating_point():
            v.fill_(float("nan"))
    path = save_checkpoint({**ckpt, where: state}, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    n = sum(v.is_floating_point() for v in state.values())
    assert str(e.value).startswith(f"{path}: unusable checkpoint: {n} of {n} floating tensors of '{where}' hold NaN")
    assert "training diverged" in str(e.value)


def test_nan_text_embeddings_are_refused(tmp_path):
    ckpt = rtvpnet_ckpt()
    ckpt["text_embeddings"][1, 0] = float("nan")
    path = save_checkpoint(ckpt, tmp_path / "emb.pt")
    with pytest.raises(CheckpointError, match="1 of 1 floating tensors of 'text_embeddings' hold NaN or Inf"):
        load_checkpoint(path)


def test_one_inf_is_named(tmp_path):
    ckpt = rtvpnet_ckpt()
    name = next(k for k, v in ckpt["model"].items() if v.is_floating_point() and v.numel() > 1)
    ckpt["model"][name].view(-1)[1] = float("inf")
    path = save_checkpoint(ckpt, tmp_path / "inf.pt")
    pattern = rf"1 of \d+ floating tensors of 'model' hold NaN or Inf \(first: {name}\)"
    with pytest.raises(CheckpointError, match=pattern):
        load_checkpoint(path)


@pytest.mark.parametrize("command", ["predict", "val", "serve", "train"])
def test_empty_checkpoint_is_a_message_everywhere(tmp_path, rtvp_cli, command, toy_bench):
    empty = tmp_path / "weights" / "last.pt"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    if command == "predict":
        args = ["predict", "--weights", empty, "--source", tmp_path]
    elif command == "val":
        args = ["val", "--data", toy_bench, "--weights", empty]
    elif command == "serve":
        args = ["serve", "--weights", empty, "--port", "8765"]  # fails on load, before binding
    else:
        (tmp_path / "config.yaml").write_text(f"data: {toy_bench}\nout: {tmp_path}\ndevice: cpu\narch: expert\n"
                                              "imgsz: 64\nbatch: 1\nworkers: 0\nmodel:\n  scale: tiny\n")
        args = ["train", "--resume", "--out", tmp_path]
    code, out = rtvp_cli(*args)
    assert code == 2, out
    assert f"{empty}: not a loadable rtvp checkpoint: the file is empty (0 bytes)" in out
    assert "Traceback" not in out and "IndexError" not in out


def test_truncated_checkpoint_is_said_in_rtvp_words(good, tmp_path):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(cut)
    msg = str(e.value)
    assert msg.startswith(f"{cut}: not a loadable rtvp checkpoint: it is not a torch checkpoint archive")
    assert "a truncated copy" in msg and msg.endswith("(runs/<name>/weights/best.pt or last.pt)")


def test_integrity_check_does_not_dominate_model_load(tmp_path):
    """Measured on rtvpnet-n: CRC pass + finite scan must cost well under the ``torch.load`` it guards."""
    from rtvp.checkpoint import _check_finite, _verify_archive
    from rtvp.config import to_dict
    from rtvp.models import ModelConfig, build_model

    cfg = ModelConfig(scale="n", sam=False, edp=False, text_encoder="hash")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg, 16)
    ckpt = {**rtvpnet_ckpt(), "model_config": to_dict(cfg), "model": model.state_dict(), "ema": model.state_dict()}
    path = save_checkpoint(ckpt, tmp_path / "n.pt")

    def best(fn) -> float:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    t_load = best(lambda: torch.load(path, weights_only=True))
    loaded = torch.load(path, weights_only=True)
    t_check = best(lambda: (_verify_archive(path), _check_finite(loaded, path)))
    assert t_check < t_load, f"integrity check {t_check * 1e3:.1f} ms vs torch.load {t_load * 1e3:.1f} ms"
