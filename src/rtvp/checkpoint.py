"""Checkpoint files: atomic save, safe load (``weights_only=True``) and RNG-state capture.

Kept free of trainer, loss and data imports so the predictor and the service can import ``load_checkpoint``.

A checkpoint is a plain dict of tensors and primitive containers:

``version`` (rtvp version that wrote it), ``format`` (:data:`CHECKPOINT_FORMAT`), ``arch`` ("rtvpnet" | "expert"),
``model_config`` (dict), ``train_config`` (dict), ``model`` (state_dict), ``ema`` (state_dict or ``None``),
``vocabulary`` (class texts, category order), ``categories`` (COCO category dicts), ``text_encoder`` (name),
``text_dim`` (int), ``text_embeddings`` (``(C, Dt)`` float32 or ``None``), ``optimizer``, ``scaler``,
``hooks`` (per-hook state), ``epoch`` (completed epochs), ``epoch_iter`` (batches done in the next epoch),
``step`` (optimizer steps), ``rng`` (per-rank RNG states as tensors).

A finished run's ``best.pt`` is *stripped* (:func:`strip_checkpoint`, as Ultralytics strips its weights): ``model``
and ``ema`` both hold the EMA weights (the same tensors, stored once), ``optimizer``, ``scaler`` and ``rng`` are
dropped and ``stripped`` is True: a quarter of the size (rtvpnet-n: 48 instead of 191 MB), enough to predict, export
or start a new training from; ``last.pt`` keeps everything ``--resume`` needs.
"""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rtvp.errors import CheckpointError
from rtvp.fileio import atomic_write_bytes

CHECKPOINT_FORMAT = 1
"""Version of the checkpoint layout; bumped when keys change incompatibly."""

REQUIRED_KEYS = ("version", "format", "model_config", "model")


def save_checkpoint(ckpt: dict[str, Any], path: str | Path, *more: str | Path) -> Path:
    """Serialise ``ckpt`` once with ``torch.save`` and write it atomically (temp file + ``os.replace``).

    Args:
        ckpt: checkpoint dict; must load back with ``weights_only=True`` (tensors and primitive containers only).
        path: destination file; parent folders are created.
        *more: further destinations of the same bytes (e.g. ``last.pt`` and ``best.pt``).

    Returns:
        The first written path.
    """
    path = Path(path)
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: refusing to write a checkpoint without keys {missing}")
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    for p in (path, *more):
        atomic_write_bytes(p, buf.getvalue())
    return path


def strip_checkpoint(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The inference/fine-tuning part of a training checkpoint (see the module docstring); the input is unchanged."""
    weights = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    return {**ckpt, "model": weights, "ema": weights, "optimizer": None, "scaler": None, "rng": [], "stripped": True}


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load an rtvp checkpoint safely (``weights_only=True``) and check its format.

    Args:
        path: a ``.pt`` file written by :func:`save_checkpoint`.
        map_location: where tensors are loaded (default CPU).

    Returns:
        The checkpoint dict (see the module docstring for its keys).

    Raises:
        CheckpointError: the file is missing, empty, truncated or corrupted (a member's CRC does not match), is
            not a torch file, holds pickled objects other than tensors and primitive containers, is not an rtvp
            checkpoint, has another format version, or holds non-finite (NaN/Inf) weights.
    """
    path = Path(path)
    _verify_archive(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ... depending on the damage
        raise CheckpointError(
            f"{path}: not a loadable rtvp checkpoint: its archive is intact but torch cannot unpickle it safely "
            f"({type(e).__name__}; it holds objects other than tensors and plain containers, e.g. a whole module, "
            "or was written by another program); pass a weights file written by `rtvp train` "
            "(runs/<name>/weights/best.pt or last.pt)"
        ) from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        keys = sorted(ckpt)[:10] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path}: not an rtvp checkpoint (expected keys {list(REQUIRED_KEYS)}, found {keys}); "
            "a bare state_dict or another project's weights cannot be loaded here"
        )
    if ckpt["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {ckpt['format']} (written by rtvp {ckpt.get('version')}) is not supported "
            f"by this rtvp, which reads format {CHECKPOINT_FORMAT}; use the matching rtvp version or retrain"
        )
    _check_finite(ckpt, path)
    return ckpt


_FIX = "pass a weights file written by `rtvp train` (runs/<name>/weights/best.pt or last.pt)"


def _verify_archive(path: Path) -> None:
    """Refuse a missing, empty, truncated or corrupted checkpoint before ``torch.load`` reads it.

    ``torch.save`` writes a zip archive with a CRC-32 per member, but torch's reader does not check them: a flipped
    byte in a tensor block loads as a silently wrong weight. ``ZipFile.testzip`` recomputes every CRC (one
    sequential read; ~20 ms for a 16 MB rtvpnet-n checkpoint vs ~90 ms for ``torch.load``, see
    ``tests/robustness/test_checkpoint_integrity.py``).
    """
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: not a loadable rtvp checkpoint: the file is empty (0 bytes), so the write "
                              f"was interrupted or the copy failed; {_FIX}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a loadable rtvp checkpoint: it is not a torch checkpoint archive "
                              f"({size} bytes without a zip directory: a truncated copy, or not a file written by "
                              f"torch.save); {_FIX}")
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise CheckpointError(f"{path}: not a loadable rtvp checkpoint: its archive is truncated or damaged "
                              f"({type(e).__name__}); {_FIX}") from None
    if bad is not None:
        raise CheckpointError(f"{path}: corrupted checkpoint: archive member '{bad}' fails its CRC-32 check (the "
                              f"file was damaged on disk or in transfer); copy it again from where it was "
                              f"trained, or {_FIX}")


def _check_finite(ckpt: dict[str, Any], path: Path) -> None:
    """Refuse weights with NaN/Inf (a diverged run): such a model runs but predicts nothing.

    Screen: one sum per tensor (NaN/Inf propagate; ~2 ms for rtvpnet-n's 4M weights); only when a sum is not finite
    (NaN/Inf, or a finite overflow) is that tensor scanned element-wise, so huge-but-finite weights are never refused.
    """
    for key in ("model", "ema", "text_embeddings"):
        state = ckpt.get(key)
        if isinstance(state, torch.Tensor):
            state = {key: state}
        if not isinstance(state, dict):
            continue
        floats = [(name, t) for name, t in state.items() if isinstance(t, torch.Tensor) and t.is_floating_point()]
        if not floats:
            continue
        sums = torch.stack([t.detach().sum(dtype=torch.float64) for _, t in floats])
        suspects = torch.nonzero(~torch.isfinite(sums)).flatten().tolist()
        bad = [floats[i][0] for i in suspects if not bool(torch.isfinite(floats[i][1]).all())]
        if bad:
            raise CheckpointError(f"{path}: unusable checkpoint: {len(bad)} of {len(floats)} floating tensors of "
                                  f"'{key}' hold NaN or Inf (first: {bad[0]}); the training diverged before this "
                                  f"file was written. Use an earlier checkpoint, or retrain with a lower learning "
                                  f"rate")


def capture_rng() -> dict[str, Any]:
    """Snapshot the python, numpy, torch (and CUDA) RNG states as tensors and ints (``weights_only``-safe)."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()  # noqa: NPY002 - the legacy global RNG is what we snapshot
    state: dict[str, Any] = {
        "python": torch.tensor(py_state, dtype=torch.int64),
        "python_version": int(py_version),
        "python_gauss": py_gauss,
        "numpy_kind": str(np_kind),
        "numpy": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
        "numpy_pos": int(np_pos),
        "numpy_has_gauss": int(np_has_gauss),
        "numpy_gauss": float(np_gauss),
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore RNG states captured by :func:`capture_rng`."""
    random.setstate((state["python_version"], tuple(int(v) for v in state["python"].tolist()), state["python_gauss"]))
    np.random.set_state((  # noqa: NPY002
        state["numpy_kind"],
        state["numpy"].numpy().astype(np.uint32),
        state["numpy_pos"],
        state["numpy_has_gauss"],
        state["numpy_gauss"],
    ))
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda[: torch.cuda.device_count()]])
