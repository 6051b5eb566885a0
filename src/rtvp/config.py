"""Typed-dataclass config helpers: build from dict/YAML rejecting unknown keys, dump, dotted overrides.

Each section's dataclass lives next to what it configures's composition root (``ModelConfig`` in
``rtvp.models.config``, ``TrainConfig`` in ``rtvp.training.config``, the recipe in ``rtvp.bench.recipe``);
this module only holds the generic machinery so every loader behaves the same.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import yaml

from rtvp.errors import ConfigError
from rtvp.fileio import atomic_write_text, read_yaml

T = TypeVar("T")


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Convert ``value`` to annotation ``tp`` (dataclasses recursively), raising ConfigError naming ``where``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        mapping_arms = [a for a in args if dataclasses.is_dataclass(a)]
        if isinstance(value, dict) and len(mapping_arms) == 1:  # a mapping can only mean the dataclass form
            return _convert(mapping_arms[0], value, where)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} matches none of {tp}: " + "; ".join(errors))
    if origin is typing.Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
        item = args[0] if args else Any
        out = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple or tp is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        args = get_args(tp)
        vt = args[1] if args else Any
        return {k: _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is Path and isinstance(value, (str, Path)):
        return Path(value)
    if isinstance(tp, type):
        if tp is int and isinstance(value, bool):
            raise ConfigError(f"{where}: expected int, got bool {value!r}")
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def moved_keys(cls: type) -> dict[str, str]:
    """``{old dotted key: new dotted key}`` of a config class (its ``MOVED_KEYS`` class attribute, if any)."""
    return dict(getattr(cls, "MOVED_KEYS", {}))


def _migrate(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Move values written under an old key (``cls.MOVED_KEYS``) to their new key; a copy when anything moves."""
    moves = moved_keys(cls)
    if not moves:
        return data
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for old, new in moves.items():
        *section, leaf = old.split(".")
        node = data
        for part in section:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            value = node.pop(leaf)
            if new not in data:  # the new key wins when a file has both
                data[new] = value
    return data


def _check_required(cls: type, data: dict[str, Any], where: str) -> None:
    """``ConfigError`` naming the missing required keys (never the dataclass's ``__init__`` signature)."""
    fields = [f for f in dataclasses.fields(cls) if f.init]
    required = [f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        optional = sorted(f.name for f in fields if f.name not in required)
        raise ConfigError(f"{where or cls.__name__}: missing required key(s) {missing}; add them, e.g. "
                          f"'{missing[0]}: <value>' (required: {required}; optional: {optional})")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ``ConfigError`` naming the key.

    Values under keys the class has moved (``MOVED_KEYS``, e.g. ``model.dp_eps`` -> ``dp_eps``) are taken from
    their old place, so configs and checkpoints written by older versions still load.

    Args:
        cls: a dataclass type (nested dataclass fields are built recursively).
        data: plain mapping, e.g. from ``yaml.safe_load``.
        where: prefix used in error messages (file name or dotted path).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    data = _migrate(cls, data)
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    _check_required(cls, data, where)
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{where or cls.__name__}: {e}") from e


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain YAML/JSON-friendly data (tuples become lists, paths strings)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Load dataclass ``cls`` from a YAML file; errors name the file and the key."""
    data = read_yaml(path, "config file", error=ConfigError) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level, got {type(data).__name__}")
    return from_dict(cls, data, where=str(path))


def dump_yaml(obj: Any, path: str | Path) -> None:
    """Write a dataclass (or plain data) as YAML, atomically."""
    atomic_write_text(path, yaml.safe_dump(to_dict(obj), sort_keys=False, allow_unicode=True))


def apply_overrides(obj: T, overrides: list[str]) -> T:
    """Return a copy of dataclass ``obj`` with dotted ``key=value`` overrides applied (values parsed as YAML).

    Examples:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class C:
        ...     epochs: int = 1
        >>> apply_overrides(C(), ["epochs=3"]).epochs
        3
    """
    data = to_dict(obj)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected key=value, e.g. edp=false")
        key, raw = item.split("=", 1)
        key = moved_keys(type(obj)).get(key.strip(), key)
        value = yaml.safe_load(raw) if raw.strip() else None
        node = data
        parts = key.strip().split(".")
        for i, p in enumerate(parts[:-1]):
            if not isinstance(node, dict) or p not in node:
                raise ConfigError(f"override '{item}': unknown section '{p}'")
            node = node[p]
            if not isinstance(node, dict):
                section = ".".join(parts[: i + 1])
                raise ConfigError(f"override '{item}': '{section}' holds the value {node!r}, not a section; set the "
                                  f"section's keys one by one (e.g. {section}.name=... before {key.strip()}=...)")
        if not isinstance(node, dict) or parts[-1] not in node:
            valid = sorted(node) if isinstance(node, dict) else []
            raise ConfigError(f"override '{item}': unknown key '{parts[-1]}'; valid keys: {valid}")
        node[parts[-1]] = value
    return from_dict(type(obj), data)
