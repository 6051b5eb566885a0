"""Controlled defect vocabulary: resolve user prompts (synonyms, Chinese, Japanese) to canonical terms.

The default text encoder is English-only (cosine of "划痕" to "scratch on steel strip" is 0.03), so prompts
resolve through a shipped table before encoding. Unknown terms pass through unchanged as free text, and every
resolution is reported so the user sees which canonical term each prompt mapped to.

Leaf module: yaml only, no torch.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rtvp.errors import ConfigError

MAX_PROMPT_CHARS = 200
MAX_SYNONYM_TEXTS = 3
"""Synonym texts per class in a text ensemble (``class_text_variants``)."""
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


def normalize(text: str) -> str:
    """NFKC, lower case, collapse whitespace and separators (``_``, ``-`` kept only inside words)."""
    t = unicodedata.normalize("NFKC", text).strip().lower().replace("_", " ")
    return re.sub(r"\s+", " ", t)


@dataclass(frozen=True)
class Resolved:
    """How one prompt was resolved.

    Attributes:
        prompt: the text the user typed.
        text: what gets encoded (the canonical term, or the prompt itself when unknown).
        canonical: the canonical term, or None when the prompt is free text.
        matched: which alias matched ("" when none).
    """

    prompt: str
    text: str
    canonical: str | None
    matched: str = ""


class Vocabulary:
    """Alias table ``alias -> canonical``; build from the shipped YAML with :meth:`default`.

    Examples:
        >>> vocab = Vocabulary.default()
        >>> vocab.resolve("划痕").canonical
        'scratch'
        >>> vocab.resolve("scratches").canonical
        'scratch'
        >>> vocab.resolve("hole in wood").canonical is None
        True
    """

    def __init__(self, terms: dict[str, dict[str, Any]]) -> None:
        self.terms = terms
        self.aliases: dict[str, str] = {}
        for canonical, entry in terms.items():
            for alias in [canonical, *entry.get("synonyms", []), *entry.get("zh", []), *entry.get("ja", [])]:
                self.aliases.setdefault(normalize(alias), canonical)
        # CJK aliases may appear inside a longer phrase ("钢板上的划痕"): longest first avoids partial matches
        self._cjk = sorted((a for a in self.aliases if _CJK.search(a)), key=len, reverse=True)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Vocabulary:
        """Load a vocabulary YAML (``terms: {canonical: {synonyms, zh, ja, description}}``)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{path}: cannot read vocabulary ({e})") from e
        terms = data.get("terms")
        if not isinstance(terms, dict):
            raise ConfigError(f"{path}: expected a top-level 'terms' mapping of canonical term -> aliases")
        for name, entry in terms.items():
            bad = set(entry or {}) - {"synonyms", "zh", "ja", "description"}
            if bad:
                raise ConfigError(f"{path}: term '{name}' has unknown key(s) {sorted(bad)}; use synonyms/zh/ja/"
                                  f"description")
            if not isinstance((entry or {}).get("description", ""), str):
                raise ConfigError(f"{path}: term '{name}': description must be one string, e.g. "
                                  f"'description: \"a thin dark line\"'")
        return cls({k: v or {} for k, v in terms.items()})

    @classmethod
    def default(cls) -> Vocabulary:
        """The vocabulary shipped with rtvp (``rtvp/assets/vocabulary.yaml``)."""
        return _default()

    def resolve(self, prompt: str) -> Resolved:
        """Map one prompt to its canonical term (exact alias, then a CJK alias inside the phrase)."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError("empty prompt: give at least one non-blank defect name, e.g. --prompts scratch,hole")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ConfigError(f"prompt '{prompt[:40]}...' is {len(prompt)} characters; the limit is "
                              f"{MAX_PROMPT_CHARS} (use a short defect name or phrase)")
        key = normalize(prompt)
        if key in self.aliases:
            return Resolved(prompt, self.aliases[key], self.aliases[key], key)
        for alias in self._cjk:
            if alias in key:
                return Resolved(prompt, self.aliases[alias], self.aliases[alias], alias)
        return Resolved(prompt, prompt.strip(), None)

    def resolve_all(self, prompts: list[str]) -> list[Resolved]:
        """Resolve a prompt list; an empty list is an error."""
        if not prompts:
            raise ConfigError("empty prompt list: give at least one prompt, e.g. --prompts scratch,hole")
        return [self.resolve(p) for p in prompts]


def class_text_variants(category: Mapping[str, Any], vocab: Vocabulary | None = None,
                        synonyms: int = MAX_SYNONYM_TEXTS) -> list[str]:
    """The texts whose mean embedding prompts a category in a text ensemble (``class_text=ensemble``).

    Prompt ensembling as in CLIP's zero-shot classifiers: one class, several phrasings, averaged in embedding space.
    The phrasings are the class text, the class text with the defect word replaced by English synonyms (the
    category's ``aliases``, then the shipped vocabulary's), and the class text followed by each visual description
    (the category's ``descriptions``, then the vocabulary term's ``description``).

    Args:
        category: a benchmark category: ``text`` (or ``name``), and optionally ``defect``, ``aliases`` and
            ``descriptions`` (a list of str, from the recipe).
        vocab: where synonyms and descriptions of the defect's canonical term come from (default: the shipped one).
        synonyms: at most this many synonym texts.

    Returns:
        Unique texts, the class text first; just ``[text]`` when nothing else is known about the class.

    Examples:
        >>> class_text_variants({"text": "scratch on wood", "defect": "scratch"}, synonyms=1)[:2]
        ['scratch on wood', 'scratches on wood']
    """
    text = str(category.get("text") or category.get("name"))
    defect = str(category.get("defect") or "").strip()
    vocab = vocab or Vocabulary.default()
    term = vocab.resolve(defect).canonical if defect else None
    entry = vocab.terms.get(term, {}) if term else {}
    out = [text]
    if defect and defect in text:
        names = [*category.get("aliases", []), *([term] if term else []), *entry.get("synonyms", [])]
        english = [n for n in dict.fromkeys(names) if n and not _CJK.search(n) and normalize(n) != normalize(defect)]
        out += [text.replace(defect, n, 1) for n in english[:synonyms]]
    descriptions = [*category.get("descriptions", []), *([entry["description"]] if entry.get("description") else [])]
    out += [f"{text}: {d}" for d in descriptions]
    return list(dict.fromkeys(out))


def parse_prompts(text: str | None = None, file: str | Path | None = None) -> list[str]:
    """Prompts from a comma-separated string and/or a file (one per line, ``#`` comments)."""
    prompts: list[str] = []
    if text:
        prompts += [p.strip() for p in re.split(r"[,，、]", text) if p.strip()]
    if file:
        path = Path(file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise ConfigError(f"{path}: cannot read prompts file ({e})") from e
        prompts += [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]
    return list(dict.fromkeys(prompts))


@lru_cache(maxsize=1)
def _default() -> Vocabulary:
    with resources.as_file(resources.files("rtvp") / "assets" / "vocabulary.yaml") as path:
        return Vocabulary.from_yaml(path)
