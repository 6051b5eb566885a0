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
