"""Where rtvp runs: one device resolver for training, prediction and annotation.

``"auto"`` means this process's GPU when CUDA is available, else the CPU; ``"cuda"`` means ``cuda:LOCAL_RANK`` so
each DDP process binds its own GPU; ``"cpu"`` and ``"cuda:N"`` are taken as they are. Asking for CUDA on a machine
without it is a :class:`~rtvp.errors.ConfigError` that says to use ``--device cpu``.
"""

from __future__ import annotations

import torch

from rtvp.errors import ConfigError


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """Parse a device setting into a ``torch.device``.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (or a ``torch.device``).
        local_rank: this process's rank on its node; ``"cuda"`` binds ``cuda:local_rank``.

    Returns:
        The device to run on.

    Raises:
        ConfigError: the setting is not a device, or CUDA is requested but not available.
    """
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device '{device}' is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' requested but CUDA is not available; use --device cpu")
    return dev


NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""CPU flags (``/proc/cpuinfo``) of native bf16 matrix math: Intel AMX and AVX-512 BF16 (Cooper Lake+, Zen 4+)."""

FAST_BF16_FLAGS = ("amx_bf16",)
"""Flags with which bf16 autocast trains faster than fp32. Measured (``benchmarks/train_speed.py``): AMX 1.9-2.4x
(Intel Xeon, expert-n); AVX-512 BF16 alone 0.90x (AMD EPYC Zen 4, expert-n and rtvpnet-n at 320 px), so auto
keeps fp32 there."""


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """The native-bf16 flags this CPU reports (empty when it has none or the OS does not say).

    Args:
        cpuinfo: text of ``/proc/cpuinfo`` (read from the OS when ``None``; tests pass their own).
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpuinfo = f.read()
        except OSError:
            return []
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return [f for f in NATIVE_BF16_FLAGS if f in flags]


def autocast_dtype(device: torch.device, amp: bool | None,
                   cpuinfo: str | None = None) -> tuple[torch.dtype | None, str]:
    """Which autocast a run uses, and why (for the run log).

    ``amp=None`` (auto): float16 on CUDA, bfloat16 on a CPU where it is faster (AMX, :data:`FAST_BF16_FLAGS`), fp32
    elsewhere (including AVX-512 BF16 without AMX, where bf16 measured slower than fp32).
    ``amp=True`` forces mixed precision (bf16 on any CPU: emulated and slow without native support), ``False`` fp32.

    Args:
        device: the training device.
        amp: the ``amp`` setting (``--amp`` / ``--no-amp``; ``None`` = auto).
        cpuinfo: ``/proc/cpuinfo`` text for the CPU check (tests).

    Returns:
        ``(dtype or None for fp32, a sentence naming the path and the reason)``.
    """
    if amp is False:
        return None, "fp32 (amp off)"
    if device.type == "cuda":
        return torch.float16, "fp16 autocast + GradScaler (CUDA)"
    if device.type != "cpu":
        return None, f"fp32 (no autocast on {device.type})"
    flags = cpu_bf16_flags(cpuinfo)
    fast = [f for f in flags if f in FAST_BF16_FLAGS] and torch.backends.mkldnn.is_available()
    if fast and amp is None:
        return torch.bfloat16, f"bf16 autocast (CPU has {', '.join(flags)})"
    if amp:
        kind = "native" if flags else "emulated: this CPU has no native bf16"
        return torch.bfloat16, f"bf16 autocast forced by --amp ({kind}; CPU flags: {', '.join(flags) or 'none'})"
    if flags:
        return None, (f"fp32 (CPU has {', '.join(flags)} but no AMX: bf16 trains slower than fp32 here; "
                      "--amp forces bf16)")
    return None, "fp32 (this CPU reports no native bf16: no amx_bf16 / avx512_bf16; --amp forces bf16)"
