"""Shipped defect knowledge base: likely root causes and size-dependent severity per canonical defect term.

The YAML (``rtvp/assets/knowledge.yaml``) is keyed by the canonical terms of the controlled vocabulary
(``rtvp/assets/vocabulary.yaml``). Every cause names its source: a citation, or ``engineering judgement`` (process
knowledge written by the rtvp authors: a starting hypothesis for the line engineer, not a diagnosis). Terms without an
entry fall back to the ``default`` entry, and answers say so.

Severity levels, least to most severe: ``minor`` (cosmetic, usually acceptable), ``major`` (functional risk, review),
``critical`` (reject / stop the line). They depend on the COCO size class of the box (small/medium/large).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from rtvp.errors import ConfigError

SEVERITY_LEVELS = ("minor", "major", "critical")
SIZE_CLASSES = ("small", "medium", "large")


@dataclass(frozen=True)
class Cause:
    """One likely root cause and where the claim comes from."""

    cause: str
    source: str


@dataclass(frozen=True)
class DefectKnowledge:
    """Knowledge about one defect term.

    Attributes:
        term: the canonical term (``"default"`` for the fallback entry).
        severity: size class -> severity level.
        causes: likely root causes, most common first.
        known: False when this is the fallback entry used for a term the knowledge base does not list.
    """

    term: str
    severity: dict[str, str]
    causes: tuple[Cause, ...]
    known: bool = True


def severity_rank(level: str) -> int:
    """Order of a severity level (``minor`` 0 < ``major`` 1 < ``critical`` 2)."""
    return SEVERITY_LEVELS.index(level)


def _parse_entry(term: str, entry: object, where: str) -> DefectKnowledge:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: entry '{term}' must be a mapping with 'severity' and 'causes'")
    bad = set(entry) - {"severity", "causes"}
    if bad:
        raise ConfigError(f"{where}: entry '{term}' has unknown key(s) {sorted(bad)}; allowed: severity, causes")
    severity = entry.get("severity")
    if not isinstance(severity, dict) or set(severity) != set(SIZE_CLASSES):
        raise ConfigError(f"{where}: entry '{term}': 'severity' must map exactly {list(SIZE_CLASSES)} to a level")
    for size, level in severity.items():
        if level not in SEVERITY_LEVELS:
            raise ConfigError(f"{where}: entry '{term}': severity.{size} = '{level}'; use one of {SEVERITY_LEVELS}")
    causes = entry.get("causes")
    if not isinstance(causes, list) or not causes:
        raise ConfigError(f"{where}: entry '{term}': 'causes' must be a non-empty list of {{cause, source}}")
    parsed = []
    for i, c in enumerate(causes):
        if not isinstance(c, dict) or set(c) != {"cause", "source"} or not all(str(v).strip() for v in c.values()):
            raise ConfigError(f"{where}: entry '{term}': causes[{i}] must be {{cause: ..., source: ...}} with both "
                              "non-empty (source: a citation or 'engineering judgement')")
        parsed.append(Cause(str(c["cause"]), str(c["source"])))
    return DefectKnowledge(term, {k: str(v) for k, v in severity.items()}, tuple(parsed))


class KnowledgeBase:
    """Root causes and severity per canonical defect term.

    Examples:
        >>> kb = KnowledgeBase.default()
        >>> kb.severity("crack", "medium")
        'critical'
        >>> kb.lookup("no such defect").known
        False
    """

    def __init__(self, entries: dict[str, DefectKnowledge], fallback: DefectKnowledge) -> None:
        self.entries = entries
        self.fallback = fallback

    @classmethod
    def from_yaml(cls, path: str | Path) -> KnowledgeBase:
        """Load and validate a knowledge YAML (``version``, ``defects: {term: {severity, causes}}``, ``default``)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{path}: cannot read knowledge base ({e})") from e
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping with 'defects' and 'default'")
        bad = set(data) - {"version", "defects", "default"}
        if bad:
            raise ConfigError(f"{path}: unknown top-level key(s) {sorted(bad)}; allowed: version, defects, default")
        defects = data.get("defects")
        if not isinstance(defects, dict) or "default" not in data:
            raise ConfigError(f"{path}: needs a 'defects' mapping (term -> entry) and a 'default' entry")
        entries = {str(k): _parse_entry(str(k), v, str(path)) for k, v in defects.items()}
        fallback = _parse_entry("default", data["default"], str(path))
        return cls(entries, DefectKnowledge("default", fallback.severity, fallback.causes, known=False))

    @classmethod
    def default(cls) -> KnowledgeBase:
        """The knowledge base shipped with rtvp (``rtvp/assets/knowledge.yaml``)."""
        return _default()

    def lookup(self, term: str | None) -> DefectKnowledge:
        """Entry for a canonical term; the fallback entry (``known=False``) for unknown or free-text terms."""
        if term is not None and term in self.entries:
            return self.entries[term]
        return self.fallback

    def severity(self, term: str | None, size: str) -> str:
        """Severity level of a defect of COCO size class ``size`` (``small``/``medium``/``large``)."""
        if size not in SIZE_CLASSES:
            raise ConfigError(f"unknown size class '{size}'; use one of {SIZE_CLASSES}")
        return self.lookup(term).severity[size]


@lru_cache(maxsize=1)
def _default() -> KnowledgeBase:
    with resources.as_file(resources.files("rtvp") / "assets" / "knowledge.yaml") as path:
        return KnowledgeBase.from_yaml(path)
