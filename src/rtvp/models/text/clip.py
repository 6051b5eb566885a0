"""CLIP text tower (the paper's choice) through open_clip, with weights from a file the user supplies.

open_clip is an optional dependency (``pip install 'rtvp[clip]'``) imported only when this encoder is built.
Nothing is downloaded: ``pretrained`` must be a local checkpoint file matching ``arch``.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from rtvp.errors import ConfigError
from rtvp.models.text.base import TEXT_ENCODERS, TextEncoder
from rtvp.models.text.cache import fingerprint


def import_open_clip() -> Any:
    """Import open_clip or raise a :class:`ConfigError` telling how to install it."""
    try:
        return importlib.import_module("open_clip")
    except ImportError:
        raise ConfigError(
            "text encoder 'clip' needs open_clip, which is not installed: pip install 'rtvp[clip]' "
            "(or use the default text encoder 'minilm')"
        ) from None


@TEXT_ENCODERS.register("clip")
class ClipEncoder(TextEncoder):
    """open_clip ``encode_text`` embeddings (512-d for ViT-B-32).

    Args:
        path: Local open_clip checkpoint file (e.g. ``open_clip_pytorch_model.bin``) for ``arch``.
        arch: open_clip model name, e.g. ``"ViT-B-32"``, or an open_clip model-config JSON file (its stem becomes
            the model name), for a model open_clip does not ship.
        pretrained: Alias of ``path`` (open_clip's argument name).
        batch_size: Prompts per forward pass.
        cache_dir: Embedding cache folder or ``None``.
        device: Torch device for the model.
    """

    name = "clip"

    def __init__(
        self,
        path: str | Path | None = None,
        arch: str = "ViT-B-32",
        pretrained: str | Path | None = None,
        batch_size: int = 64,
        cache_dir: str | Path | None = None,
        device: str = "cpu",
    ) -> None:
        if path is not None and pretrained is not None and Path(path) != Path(pretrained):
            raise ConfigError("text encoder 'clip': give the weights file once, as path= or pretrained=")
        weights = path if path is not None else pretrained
        if weights is None:
            raise ConfigError("text encoder 'clip' needs path=<local open_clip weights file>; nothing is downloaded")
        weights = Path(weights).expanduser()
        self.open_clip = import_open_clip()
        if not weights.is_file():
            raise ConfigError(f"text encoder 'clip': weights file {weights} does not exist")
        arch_option, arch = str(arch), self._register_arch(arch)
        cfg = self.open_clip.get_model_config(arch)
        if not cfg or "embed_dim" not in cfg:
            raise ConfigError(f"text encoder 'clip': unknown open_clip arch '{arch}'; use a name open_clip ships "
                              f"(e.g. ViT-B-32) or a model-config JSON file")
        super().__init__(int(cfg["embed_dim"]), cache_dir, device)
        self.path, self.arch, self.batch_size = weights, arch, int(batch_size)
        self.options = {"path": str(weights), "arch": arch_option}

    def _register_arch(self, arch: str) -> str:
        """``arch`` itself, or the model name of an open_clip model-config JSON file (registered with open_clip)."""
        if not str(arch).endswith(".json"):
            return arch
        path = Path(arch).expanduser()
        if not path.is_file():
            raise ConfigError(f"text encoder 'clip': arch config file {path} does not exist")
        self.open_clip.add_model_config(path)
        return path.stem

    @cached_property
    def identity(self) -> str:
        """``clip-<arch>-<content hash of the weights>``."""
        return f"clip-{self.arch}-{fingerprint(self.path)}"

    @cached_property
    def _model_and_tokenizer(self) -> tuple[Any, Any]:
        os.environ["HF_HUB_OFFLINE"] = "1"
        root = logging.getLogger()
        handlers = list(root.handlers)
        try:
            model = self.open_clip.create_model(self.arch, pretrained=str(self.path), device=self.device)
            tokenizer = self.open_clip.get_tokenizer(self.arch)
        except (RuntimeError, OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as e:
            why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise ConfigError(f"text encoder 'clip': cannot load {self.path} as open_clip '{self.arch}' ({why}); "
                              f"give an open_clip checkpoint of that arch") from e
        finally:  # open_clip logs through the root logger, whose implicit basicConfig would print rtvp's lines twice
            for handler in [h for h in root.handlers if h not in handlers]:
                root.removeHandler(handler)
        model.eval().requires_grad_(False)
        return model, tokenizer

    def num_parameters(self) -> int:
        """Parameters of the whole CLIP model (both towers are loaded)."""
        return sum(p.numel() for p in self._model_and_tokenizer[0].parameters())

    def _embed(self, texts: list[str]) -> torch.Tensor:
        """(N, dim) text-tower embeddings."""
        model, tokenizer = self._model_and_tokenizer
        chunks = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        return torch.cat([model.encode_text(tokenizer(c).to(self.device)).float() for c in chunks])
