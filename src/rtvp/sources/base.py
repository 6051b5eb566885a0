"""The source-converter plugin point: ``SOURCES`` maps a format name to a converter function.

A converter is a function ``convert(root: Path, **options) -> Iterator[ImageRecord]``:

* ``root`` is the dataset folder in its native layout; the converter never writes into it;
* ``options`` are the recipe's ``options`` mapping for that source; an unknown option raises ``ConfigError``;
* records carry native class names, absolute image paths, sizes and boxes in pixels;
* a malformed label file raises ``DataError`` whose message names the file (and line where there is one).

Converters import no torch; they are plain file-format code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from rtvp.registry import Registry
from rtvp.structures import ImageRecord


class SourceConverter(Protocol):
    """Signature every registered converter follows."""

    def __call__(self, root: Path, **options: Any) -> Iterator[ImageRecord]:  # pragma: no cover - protocol
        """Yield the records of the dataset at ``root``."""
        ...


SOURCES: Registry[Callable[..., Iterator[ImageRecord]]] = Registry("source format")
