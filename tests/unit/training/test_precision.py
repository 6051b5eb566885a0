"""Mixed precision on CPU: which path runs (and says so), bf16 forward, fp32 loss, weights and checkpoint."""

import logging

import pytest
import torch
from trainer_toys import single_thread, toy_cfg, toy_parts  # noqa: F401

from rtvp.checkpoint import load_checkpoint
from rtvp.device import autocast_dtype, cpu_bf16_flags
from rtvp.training.runner import fit

ZEN4 = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE = "flags\t\t: fpu avx512f amx_bf16 amx_tile avx512_bf16\n"
OLD = "flags\t\t: fpu sse avx2\n"
CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


def test_native_bf16_flags_are_read_from_cpuinfo():
    assert cpu_bf16_flags(ZEN4) == ["avx512_bf16"]
    assert cpu_bf16_flags(SAPPHIRE) == ["amx_bf16", "avx512_bf16"]
    assert cpu_bf16_flags(OLD) == [] and cpu_bf16_flags("") == []


@pytest.mark.parametrize("cpuinfo,amp,dtype,says", [
    (ZEN4, None, torch.bfloat16, "bf16 autocast (CPU has avx512_bf16; --no-amp for fp32)"),
    (ZEN4, True, torch.bfloat16, "bf16 autocast (CPU has avx512_bf16"),
    (SAPPHIRE, None, torch.bfloat16, "bf16 autocast (CPU has amx_bf16, avx512_bf16;"),
    (OLD, None, None, "fp32 (this CPU reports no native bf16"),
    (OLD, True, torch.bfloat16, "forced by --amp (emulated: this CPU has no native bf16"),
    (ZEN4, False, None, "fp32 (amp off)"),
])
def test_autocast_choice_on_cpu(cpuinfo, amp, dtype, says):
    got, why = autocast_dtype(CPU, amp, cpuinfo)
    assert got == dtype and says in why


def test_autocast_choice_on_cuda():
    assert autocast_dtype(CUDA, None, OLD) == (torch.float16, "fp16 autocast + GradScaler (CUDA)")
    assert autocast_dtype(CUDA, False, OLD)[0] is None


def test_bf16_training_keeps_loss_weights_and_checkpoint_in_fp32(tmp_path, caplog):
    cfg = toy_cfg(tmp_path, epochs=1, amp=True, channels_last=True)
    parts = toy_parts(cfg)
    seen = {}

    def spy(outputs, batch):
        seen["loss_in"] = outputs.logits.dtype
        return criterion(outputs, batch)

    criterion, parts.criterion = parts.criterion, spy
    parts.model.cls.register_forward_hook(lambda m, i, o: seen.setdefault("forward", o.dtype) and None)
    with caplog.at_level(logging.INFO, logger="rtvp.train"):
        trainer = fit(cfg, parts)
    assert seen == {"forward": torch.bfloat16, "loss_in": torch.float32}
    assert "precision: bf16 autocast" in caplog.text and "memory format: channels_last" in caplog.text
    conv = trainer.bare_model.expert[0].weight
    assert conv.dtype == torch.float32 and conv.is_contiguous(memory_format=torch.channels_last)
    ckpt = load_checkpoint(tmp_path / "weights" / "last.pt")
    assert all(v.dtype == torch.float32 for v in ckpt["model"].values() if v.is_floating_point())
    assert all(v.dtype == torch.float32 for v in ckpt["ema"].values() if v.is_floating_point())


def test_no_amp_trains_in_fp32(tmp_path, caplog):
    cfg = toy_cfg(tmp_path, epochs=1, amp=False)
    parts = toy_parts(cfg)
    seen = []
    parts.model.cls.register_forward_hook(lambda m, i, o: seen.append(o.dtype))  # returns None
    with caplog.at_level(logging.INFO, logger="rtvp.train"):
        fit(cfg, parts)
    assert set(seen) == {torch.float32} and "precision: fp32 (amp off); memory format: contiguous" in caplog.text
