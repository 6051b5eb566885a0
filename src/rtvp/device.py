"""Where rtvp runs: one device resolver for training, prediction and annotation.

``"auto"`` means this process's GPU when CUDA is available, else the CPU; ``"cuda"`` means ``cuda:LOCAL_RANK`` so
each DDP process binds its own GPU; ``"cpu"`` and ``"cuda:N"`` are taken as they are. Asking for CUDA on a machine
without it is a :class:`~rtvp.errors.ConfigError` that says to use ``--device cpu``.
"""

from __future__ import annotations

import torch

from rtvp import usable_cpus  # torch-free, in the package root: the wait policy needs it before torch loads
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
"""CPU flags (``/proc/cpuinfo``) of native bf16 matrix math: Intel AMX and AVX-512 BF16 (Cooper Lake+, Zen 4+).

Measured with ``benchmarks/train_speed.py`` (training steps at 320 px, 2 threads): AMD EPYC Zen 4 (avx512_bf16, no
AMX) expert-n 1.68x fp32 (1.92x with channels_last), rtvpnet-n 1.44x (1.58x); an Intel Xeon with AMX 1.9x / 2.4x
(expert-n). On an oversubscribed machine the gain vanished (0.9x in a run that shared the 2 cores with a training
job), so compare on a quiet machine."""


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

    ``amp=None`` (auto): float16 on CUDA, bfloat16 on a CPU with native bf16 (AMX or AVX-512 BF16), fp32 elsewhere.
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
    flags = cpu_bf16_flags(cpuinfo) if torch.backends.mkldnn.is_available() else []
    if flags:
        return torch.bfloat16, f"bf16 autocast (CPU has {', '.join(flags)}; --no-amp for fp32)"
    if amp:
        return torch.bfloat16, "bf16 autocast forced by --amp (emulated: this CPU has no native bf16, likely slower)"
    return None, "fp32 (this CPU reports no native bf16: no amx_bf16 / avx512_bf16; --amp forces bf16)"


def default_workers(device: torch.device, cpus: int | None = None) -> int:
    """Data-loader workers when none are asked for (``TrainConfig.workers = None``).

    On CUDA 4 (at most the CPUs). On a CPU the loader's processes take cores from the model's threads: on a 2-core
    AMD EPYC, ``rtvp train`` of expert-n at 192 px ran 57.7 img/s with 0 workers, 53.7 with 2 and 47.3 with 4
    (``benchmarks/results/loader_workers/epyc-192``), so up to 2 CPUs get none; more CPUs get half of them, at most 4
    (not measured).
    """
    cpus = usable_cpus() if cpus is None else cpus
    if device.type == "cuda":
        return min(4, cpus)
    return 0 if cpus <= 2 else min(4, cpus // 2)


def resolve_workers(workers: int | None, device: torch.device) -> int:
    """``workers``, or :func:`default_workers` for ``device`` when it is ``None`` (``TrainConfig.workers``)."""
    return default_workers(device) if workers is None else workers

