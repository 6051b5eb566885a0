"""Grounded visual question answering: question + ``ImageFacts`` -> ``Answer`` citing the boxes it rests on.

``OfflineAnswerer`` is rule-based. Intents (English keywords plus common Chinese and Japanese ones): presence ("is
there a crack?"), count ("how many holes?"), types ("what defects are there?"), where, size ("how large?"),
severity ("how severe?"), why (root causes from the knowledge base, with their sources) and describe (a caption, also
the fallback). A question may carry several intents ("what defects are there and why?"); they are answered in the
order they appear. Defect terms in the question (vocabulary aliases, any language) restrict the answer to those
types; location / size / shape words ("at the top-left", "small", "the largest") restrict it to the boxes that
satisfy them exactly (prior == 1 in ``rtvp.tasks.query``). Boxes with mask measurements (``BoxFact.mask``) are
also sized by their masks: "a 14 mm long crack [#0] at the top-left" (where), the mask's length, width and area
(size), "large elongated, 14 mm long, at the top" (describe), and "the largest" compares mask areas.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from rtvp.tasks.facts import BoxFact, ImageFacts
from rtvp.tasks.knowledge import severity_rank
from rtvp.tasks.query import constraint_prior, find_terms, parse_constraints
from rtvp.vocabulary import normalize

INTENTS = ("presence", "count", "types", "where", "size", "severity", "why", "describe")
_PATTERNS: dict[str, str] = {
    "why": r"\bwhy\b|\bcause[sd]?\b|\breasons?\b|root[- ]cause|how come|what (?:led|leads) to|为什么|为何|原因|成因|"
           r"怎么造成|导致|なぜ|どうして",
    "severity": r"\bsever(?:e|ity)\b|\bserious\b|\bcritical\b|\bdangerous\b|\bhow bad\b|\bacceptable\b|\breject\b|"
                r"\bpass\b|\bok\b|严重|危害|能否接受|合格|深刻|重大|重要度|許容",
    "size": r"how (?:large|big|small|long|wide)|\bsizes?\b|\bdimensions?\b|\barea\b|多大|大小|尺寸|面积|长度|"
            r"大きさ|サイズ|寸法",
    "count": r"how many|\bcount\b|\bnumber of\b|多少|几个|几处|几条|数量|いくつ|何個|何箇所|何か所",
    "where": r"\bwhere\b|\blocat(?:ed|ion|ions)\b|\bpositions?\b|哪里|哪儿|在哪|位置|どこ|場所",
    "types": r"what (?:kinds?|types?|sorts?) of|which (?:defects?|types?|kinds?)|what defects?|"
             r"what (?:is|are) (?:the )?defects?|types? of defects?|什么缺陷|哪些缺陷|什么类型|哪种|どんな欠陥|"
             r"何の欠陥|種類|どの欠陥",
    "presence": r"\bis there\b|\bare there any\b|\bany\b[^?]*\?$|\bpresent\b|\bcontains?\b|有没有|是否有|有无|"
                r"存在吗|ありますか|あるか|ある\?|有無",
    "describe": r"\bdescribe\b|\bcaption\b|\bsummar|\bwhat do you see\b|\bwhat(?:'s| is) (?:in|on) (?:the|this)\b|"
                r"\boverview\b|\btell me about\b|\breport\b|描述|概括|总结|介绍|説明|記述|要約",
}
_WEAK_PRESENCE = r"^(?:is|are|does|do|has|have|can you see)\b|吗\s*\??$"
_HOW_SIZE = r"how (?:large|big|small|long|wide)"
LEVELS = {"minor": "cosmetic, usually acceptable", "major": "functional risk, review",
          "critical": "reject / stop the line"}


@dataclass
class Answer:
    """An answer and what it rests on.

    Attributes:
        text: the answer, citing boxes as ``[#id]``.
        box_ids: ids of the boxes the answer rests on (``ImageFacts.boxes[*].id``).
        facts_used: the facts consulted, e.g. ``"types[crack].count"``, ``"boxes[#2].location"``.
        answerer: which answerer produced it (``"offline"`` or ``"llm:<model>"``).
        intents: the intents detected in the question (offline answerer).
    """

    text: str
    box_ids: list[int]
    facts_used: list[str]
    answerer: str
    intents: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)


class Answerer(Protocol):
    """Anything that answers a question from facts alone."""

    def answer(self, question: str, facts: ImageFacts) -> Answer:
        """Answer ``question`` using only ``facts``; cite the boxes used."""
        ...


def detect_intents(question: str) -> list[str]:
    """Intents in a question, in order of appearance; ``["describe"]`` when none is recognised.

    Examples:
        >>> detect_intents("what defects are there and why?")
        ['types', 'why']
        >>> detect_intents("裂纹有多少条？")
        ['count']
    """
    q = normalize(question)
    found = {name: m.start() for name, p in _PATTERNS.items() if (m := re.search(p, q, re.IGNORECASE))}
    if "why" in found:
        found.pop("presence", None)  # "why is there a crack?" asks for causes
    if not found and re.search(_WEAK_PRESENCE, q, re.IGNORECASE):
        found["presence"] = 0
    return sorted(found, key=lambda k: (found[k], INTENTS.index(k))) or ["describe"]


def plural(term: str, n: int) -> str:
    """``"1 crack"``, ``"2 cracks"`` (English-only; terms ending in s, or CJK terms, stay as they are)."""
    if n == 1 or term.endswith("s") or not term.isascii():
        return f"{n} {term}"
    return f"{n} {term}{'es' if term.endswith(('ch', 'sh', 'x')) else 's'}"


def cite(ids: list[int]) -> str:
    """``[#1, #3]`` (empty string for no ids)."""
    return f"[{', '.join(f'#{i}' for i in ids)}]" if ids else ""


@dataclass
class _Scope:
    """The boxes a question is about and how they were chosen."""

    boxes: list[BoxFact]
    targets: list[str]
    where: str

    def types(self) -> dict[str, list[BoxFact]]:
        out: dict[str, list[BoxFact]] = {}
        for b in self.boxes:
            out.setdefault(b.defect, []).append(b)
        return out


def _scope(question: str, facts: ImageFacts) -> _Scope:
    q = normalize(question)
    targets = find_terms(q)
    targets += [t.defect for t in facts.types if t.defect not in targets and normalize(t.defect) in q]
    constraints, _ = parse_constraints(re.sub(_HOW_SIZE, " ", q))
    boxes = [b for b in facts.boxes if not targets or b.defect in targets]
    if constraints and boxes:
        xyxy = np.array([b.box for b in boxes], dtype=np.float64)
        keep = constraint_prior(xyxy, facts.width, facts.height, replace(constraints, extreme=None)) >= 0.999
        boxes = [b for b, k in zip(boxes, keep.tolist(), strict=True) if k]
        if constraints.extreme and boxes:
            pick = max if constraints.extreme == "largest" else min
            boxes = [pick(boxes, key=lambda b: b.mask["area_px"] if b.mask else b.area_px)]
    where = f" ({constraints.describe()})" if constraints else ""
    return _Scope(boxes, targets, where)


def _not_found(term: str, facts: ImageFacts, where: str) -> str:
    if facts.vocabulary and not facts.searched(term):
        searched = ", ".join(dict.fromkeys(p.defect for p in facts.vocabulary))
        return (f"No {term} detected{where}, but '{term}' was not in the detector's vocabulary ({searched}); "
                f"re-run with --prompts \"{term}\" to look for it.")
    return f"No {term} detected{where} (above the detector's confidence threshold)."


def _type_list(groups: dict[str, list[BoxFact]]) -> str:
    return ", ".join(f"{plural(t, len(bs))} {cite([b.id for b in bs])}" for t, bs in groups.items())


def _presence(s: _Scope, facts: ImageFacts) -> tuple[str, list[BoxFact], list[str]]:
    groups = s.types()
    if not s.targets:
        if not s.boxes:
            return f"No defects detected{s.where}.", [], ["boxes"]
        return (f"Yes{s.where}: {plural('defect', len(s.boxes))}: {_type_list(groups)}.", s.boxes,
                [f"types[{t}].count" for t in groups])
    parts, used = [], []
    for term in s.targets:
        bs = groups.get(term, [])
        used.append(f"types[{term}].count")
        parts.append(f"Yes: {plural(term, len(bs))}{s.where} {cite([b.id for b in bs])} (highest confidence "
                     f"{max(b.confidence for b in bs):.2f})." if bs else _not_found(term, facts, s.where))
    return " ".join(parts), s.boxes, used


def _count(s: _Scope, facts: ImageFacts) -> tuple[str, list[BoxFact], list[str]]:
    groups = s.types()
    if s.targets:
        parts = [f"{plural(t, len(groups.get(t, [])))}{s.where} {cite([b.id for b in groups.get(t, [])])}".rstrip()
                 for t in s.targets]
        missing = [t for t in s.targets if t not in groups and facts.vocabulary and not facts.searched(t)]
        note = "".join(f" ({_not_found(t, facts, '')})" for t in missing)
        return "; ".join(parts) + "." + note, s.boxes, [f"types[{t}].count" for t in s.targets]
    if not s.boxes:
        return f"0 defects detected{s.where}.", [], ["boxes"]
    return (f"{plural('defect', len(s.boxes))}{s.where}: {_type_list(groups)}.", s.boxes,
            [f"types[{t}].count" for t in groups])


def _types(s: _Scope, facts: ImageFacts) -> tuple[str, list[BoxFact], list[str]]:
    groups = s.types()
    if not groups:
        return f"No defects detected{s.where}.", [], ["types"]
    items = ", ".join(f"{t} ×{len(bs)} {cite([b.id for b in bs])} (max confidence "
                      f"{max(b.confidence for b in bs):.2f})" for t, bs in groups.items())
    n = len(groups)
    return f"{n} defect type{'s' if n != 1 else ''}{s.where}: {items}.", s.boxes, [f"types[{t}]" for t in groups]


def _where(s: _Scope, facts: ImageFacts) -> tuple[str, list[BoxFact], list[str]]:
    if not s.boxes:
        return _empty(s, facts), [], ["boxes"]
    items = "; ".join(f"{f'a {b.extent()} ' if b.mask else ''}{b.defect} [#{b.id}] at the {b.where()} "
                      f"(x {b.box[0]:.0f}-{b.box[2]:.0f}, y {b.box[1]:.0f}-{b.box[3]:.0f} px)" for b in s.boxes)
    return items + ".", s.boxes, [f"boxes[#{b.id}].location" for b in s.boxes]


def _size(s: _Scope, facts: ImageFacts) -> tuple[str, list[BoxFact], list[str]]:
    if not s.boxes:
        return _empty(s, facts), [], ["boxes"]
    items = "; ".join(f"{b.defect} [#{b.id}]: {f'{b.mask_sizes()} (mask), box ' if b.mask else ''}"
                      f"{b.width_px:.0f}×{b.height_px:.0f} px ({b.area_pct:.2f}% of the image), {b.size}, "
                      f"{b.morphology}" for b in s.boxes)
    used = [f"boxes[#{b.id}].{part}" for b in s.boxes for part in (("mask", "size") if b.mask else ("size",))]
    return items + ".", s.boxes, used


def _severity(s: _Scope, facts: ImageFacts) -> tuple[str, list[BoxFact], list[str]]:
    groups = s.types()
    if not groups:
        return _empty(s, facts), [], ["boxes"]
    worst = max((b.severity for b in s.boxes), key=severity_rank)
    items = "; ".join(
        f"{t} {cite([b.id for b in bs])}: {max((b.severity for b in bs), key=severity_rank)} ("
        + ", ".join(f"#{b.id} {b.size}: {b.severity}" for b in bs) + ")" for t, bs in groups.items())
    text = (f"Overall severity{s.where}: {worst} ({LEVELS[worst]}). {items}. Severity by size class from rtvp's "
            "knowledge base (engineering judgement).")
    return text, s.boxes, [f"boxes[#{b.id}].severity" for b in s.boxes]


def _why(s: _Scope, facts: ImageFacts) -> tuple[str, list[BoxFact], list[str]]:
    groups = s.types()
    if not groups:
        return _empty(s, facts), [], ["boxes"]
    parts = []
    for t, bs in groups.items():
        tf = facts.type_of(t)
        causes = "; ".join(f"{c.cause} (source: {c.source})" for c in (tf.causes if tf else []))
        head = f"Likely causes of {t} {cite([b.id for b in bs])}"
        if tf is not None and not tf.in_knowledge_base:
            head += " (not in the knowledge base; generic advice)"
        parts.append(f"{head}: {causes}.")
    return " ".join(parts), s.boxes, [f"types[{t}].causes" for t in groups]


def _describe(s: _Scope, facts: ImageFacts) -> tuple[str, list[BoxFact], list[str]]:
    groups = s.types()
    if not groups:
        return f"No defects detected{s.where} in the {facts.width}×{facts.height} image.", [], ["boxes"]
    items = []
    for t, bs in groups.items():
        details = "; ".join(f"{b.size} {b.morphology}{f', {b.extent()},' if b.mask else ''} at the {b.where()} "
                            f"[#{b.id}]" for b in bs)
        items.append(f"{plural(t, len(bs))} ({details})")
    worst = max((b.severity for b in s.boxes), key=severity_rank)
    text = (f"{plural('defect', len(s.boxes))} detected{s.where} in the {facts.width}×{facts.height} image: "
            f"{' and '.join(items)}. Worst severity: {worst}.")
    return text, s.boxes, [f"boxes[#{b.id}]" for b in s.boxes]


def _empty(s: _Scope, facts: ImageFacts) -> str:
    if s.targets:
        return " ".join(_not_found(t, facts, s.where) for t in s.targets)
    return f"No defects detected{s.where}."


_HANDLERS = {"presence": _presence, "count": _count, "types": _types, "where": _where, "size": _size,
             "severity": _severity, "why": _why, "describe": _describe}


class OfflineAnswerer:
    """Rule-based answerer over ``ImageFacts`` (no network, deterministic).

    Examples:
        >>> from rtvp.structures import Detections
        >>> from rtvp.tasks.facts import facts_from_detections
        >>> f = facts_from_detections(Detections([[0, 0, 50, 5], [90, 90, 99, 99]], [0.9, 0.8], [0, 1],
        ...                                      ["crack", "hole"]), 100, 100)
        >>> a = OfflineAnswerer().answer("how many cracks?", f)
        >>> a.text, a.box_ids
        ('1 crack [#0].', [0])
    """

    name = "offline"

    def answer(self, question: str, facts: ImageFacts) -> Answer:
        """Answer every intent found in ``question`` from ``facts``; box ids are those the sentences cite."""
        intents = detect_intents(question)
        scope = _scope(question, facts)
        texts, ids, used = [], [], []
        for intent in intents:
            text, boxes, facts_used = _HANDLERS[intent](scope, facts)
            texts.append(text)
            ids += [b.id for b in boxes]
            used += facts_used
        text = " ".join(dict.fromkeys(texts))  # several intents over no boxes give the same sentence once
        return Answer(text, list(dict.fromkeys(ids)), list(dict.fromkeys(used)), self.name, intents)
