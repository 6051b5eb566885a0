"""Reading and writing rtvp's files: one JSON/YAML reader whose errors name the file, atomic writers.

Every JSON or YAML file a user hands to rtvp (a COCO split, a predictions file, a review queue, a sidecar) is read
through :func:`read_json` / :func:`read_yaml`, so a missing file, a binary file or a syntax error always gives the same
kind of message: the path, what was expected, where the syntax broke, and how to get a good file. Every file rtvp
writes goes through :func:`atomic_write_bytes`: readers never see half a file, and an interrupted run leaves the old
file intact.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from rtvp.errors import DataError


def _fail(path: Path, what: str, why: str, fix: str, error: type[Exception]) -> Exception:
    return error(f"{path}: {what} {why}" + (f"; {fix}" if fix else ""))


def read_text(path: str | Path, what: str = "file", fix: str = "", error: type[Exception] = DataError) -> str:
    """Read a UTF-8 text file; a missing, unreadable or binary file raises ``error`` naming it.

    Args:
        path: the file.
        what: what the file should be, for the message (e.g. ``"predictions file"``).
        fix: how to get a good file, appended to the message.
        error: the exception class raised (``DataError`` by default; ``ConfigError`` for configs).

    Returns:
        The file's text.
    """
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(path, what, "not found", fix, error) from None
    except IsADirectoryError:
        raise _fail(path, what, "is a folder, not a file", fix, error) from None
    except UnicodeDecodeError as e:
        raise _fail(path, what, f"is not UTF-8 text (binary byte at offset {e.start})", fix, error) from None
    except OSError as e:
        raise _fail(path, what, f"cannot be read ({e.strerror})", fix, error) from None


def read_json(path: str | Path, what: str = "JSON file", fix: str = "", error: type[Exception] = DataError) -> Any:
    """Parse a JSON file; every failure raises ``error`` naming the file (and the line of a syntax error).

    Args:
        path: the file.
        what: what the file should be, for the message.
        fix: how to get a good file, appended to the message.
        error: the exception class raised.

    Returns:
        The parsed JSON value.
    """
    text = read_text(path, what, fix, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise _fail(Path(path), what, f"is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})", fix,
                    error) from None


def read_yaml(path: str | Path, what: str = "YAML file", fix: str = "", error: type[Exception] = DataError) -> Any:
    """Parse a YAML file with ``yaml.safe_load``; failures raise ``error`` naming the file and the line.

    Args:
        path: the file.
        what: what the file should be, for the message.
        fix: how to get a good file, appended to the message.
        error: the exception class raised.

    Returns:
        The parsed value (``None`` for an empty file).
    """
    text = read_text(path, what, fix, error)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise _fail(Path(path), what, f"is not valid YAML{where}: {problem}", fix, error) from None


@functools.cache
def _umask() -> int:
    """The process umask, read once (``os.umask`` can only be read by setting it, so never at import time)."""
    try:  # Linux: read it without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + fsync + rename); folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON (UTF-8, non-ASCII kept) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")
