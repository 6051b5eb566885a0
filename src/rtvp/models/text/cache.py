"""On-disk prompt-embedding cache: one file per encoder identity, ``<cache_dir>/<identity>.pt``.

File content (``torch.save``, read back with ``weights_only=True``)::

    {"format": "rtvp-text-cache", "version": 1, "encoder": identity, "dim": D,
     "texts": [str, ...] (N, unique), "embeddings": float32 tensor (N, D)}

Writes merge with what is on disk and replace the file atomically (temp file + rename), so a crash never leaves a
half-written cache and two processes at worst lose each other's newest entries. A file that cannot be read or does not
match (other encoder, other dim, bad shapes, non-finite values) is ignored with a warning and rebuilt on the next
write.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from rtvp.fileio import atomic_write_bytes

FORMAT = "rtvp-text-cache"
VERSION = 1


def default_cache_dir() -> Path:
    """``$RTVP_CACHE_DIR/text`` when the variable is set, else ``~/.cache/rtvp/text``."""
    root = os.environ.get("RTVP_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "rtvp") / "text"


def fingerprint(path: str | Path, full_hash_limit: int = 1 << 28) -> str:
    """Short content hash of a file or a model directory (relative names, sizes and bytes), for cache identities.

    Files up to ``full_hash_limit`` bytes are hashed whole; bigger ones by size plus their first and last 8 MiB.

    Returns:
        12 hex characters.
    """
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha1()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.relative_to(path) if path.is_dir() else f.name}\0{size}\0".encode())
        with f.open("rb") as fh:
            if size <= full_hash_limit:
                while chunk := fh.read(1 << 22):
                    h.update(chunk)
            else:
                h.update(fh.read(1 << 23))
                fh.seek(size - (1 << 23))
                h.update(fh.read())
    return h.hexdigest()[:12]


class EmbeddingCache:
    """text -> (dim,) float32 embedding store of one encoder, persisted in ``cache_dir/<identity>.pt``.

    Args:
        cache_dir: Folder (created on first write).
        identity: Encoder name + model identity, e.g. ``"minilm-3f2a9c0d1e4b"``.
        dim: Embedding size; entries of another size are rejected.
    """

    def __init__(self, cache_dir: str | Path, identity: str, dim: int) -> None:
        self.identity = identity
        self.dim = dim
        self.path = Path(cache_dir) / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', identity)}.pt"
        self._entries: dict[str, torch.Tensor] = {}
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read

    def lookup(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Cached embeddings of those ``texts`` that are in the cache (re-reads the file if it changed on disk)."""
        self._refresh()
        return {t: self._entries[t] for t in texts if t in self._entries}

    def add(self, texts: Sequence[str], embeddings: torch.Tensor) -> None:
        """Store (N,) texts with their (N, dim) embeddings, merged with the file's current content, atomically."""
        if embeddings.shape != (len(texts), self.dim):
            raise ValueError(f"expected embeddings of shape ({len(texts)}, {self.dim}), got {tuple(embeddings.shape)}")
        self._refresh()
        self._entries.update(zip(texts, embeddings.to(torch.float32).cpu(), strict=True))
        names = list(self._entries)
        obj = {
            "format": FORMAT,
            "version": VERSION,
            "encoder": self.identity,
            "dim": self.dim,
            "texts": names,
            "embeddings": torch.stack([self._entries[t] for t in names]).contiguous(),
        }
        buf = io.BytesIO()
        torch.save(obj, buf)
        atomic_write_bytes(self.path, buf.getvalue())
        self._stamp = self._file_stamp()

    def __len__(self) -> int:
        self._refresh()
        return len(self._entries)

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:  # missing (or its folder is not a directory): nothing cached
            return None
        return (st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            loaded = self._read()
        except Exception as e:  # noqa: BLE001 - any unreadable cache is only a missed optimisation
            warnings.warn(f"ignoring corrupt text-embedding cache {self.path} ({e}); it will be rebuilt", stacklevel=3)
            return
        self._entries.update(loaded)

    def _read(self) -> dict[str, torch.Tensor]:
        obj = torch.load(self.path, map_location="cpu", weights_only=True)
        if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("version") != VERSION:
            raise ValueError("not an rtvp text cache")
        if obj.get("encoder") != self.identity or obj.get("dim") != self.dim:
            raise ValueError(f"made by encoder {obj.get('encoder')!r} (dim {obj.get('dim')}), not {self.identity!r}")
        texts, emb = obj.get("texts"), obj.get("embeddings")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or len(set(texts)) != len(texts):
            raise ValueError("'texts' is not a list of unique strings")
        if not isinstance(emb, torch.Tensor) or emb.shape != (len(texts), self.dim) or not torch.isfinite(emb).all():
            raise ValueError("'embeddings' has the wrong shape or non-finite values")
        return dict(zip(texts, emb.to(torch.float32), strict=True))
