"""Read defect terms and location / size / shape words out of a free-text query or question.

Used by grounding ("crack near the left edge" -> defect phrase "crack" + an edge constraint) and by the offline
answerer ("how many holes at the top?" -> term "hole" + a row constraint). English words plus the common Chinese and
Japanese location words.

Spatial prior (documented once here; ``constraint_prior`` computes it for all boxes at once). With the box centre
normalised to ``(u, v)`` in ``[0, 1]`` and ``g(d) = exp(-d^2 / (2 * SIGMA^2))``, ``SIGMA = 1/6`` (half a grid cell):

* row / column constraint (3x3 grid, e.g. "top-left", "on the left", "center"): ``d`` = distance from ``u`` (``v``) to
  the target third ``[k/3, (k+1)/3]`` (0 inside); factor ``g(d)`` -- one cell off gives ``exp(-2) = 0.14``.
* edge constraint ("near the left edge"): ``d = max(0, gap - EDGE_BAND)`` where ``gap`` is the distance from the box's
  side to that image edge as a fraction of the image side, ``EDGE_BAND = 0.1``; factor ``g(d)``.
* size class ("small", "large crack"): factor ``SIZE_STEP ** |class steps apart|`` with ``SIZE_STEP = 0.5``.
* superlative ("largest", "smallest"): factor ``area / max area`` (``min area / area``).
* shape ("elongated", "round"): factor 1 when the box morphology matches, else ``SHAPE_MISMATCH = 0.5``.

Factors multiply; a box satisfying every constraint gets 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np

from rtvp.bench.attributes import ELONGATED_ASPECT, size_class
from rtvp.errors import ConfigError
from rtvp.vocabulary import Vocabulary, normalize

SIGMA = 1.0 / 6.0
EDGE_BAND = 0.1
SIZE_STEP = 0.5
SHAPE_MISMATCH = 0.5
ROUND_MAX_ASPECT = 1.5
"""Box-only morphology: ``elongated`` when long/short >= ``ELONGATED_ASPECT`` (3, the benchmark's threshold), ``round``
(compact: a box cannot tell a disk from a square blob) when < 1.5, ``irregular`` in between."""

_SIZES = ("small", "medium", "large")
_ROW = {"top": 0, "upper": 0, "bottom": 2, "lower": 2}
_COL = {"left": 0, "right": 2}
_EDGE = {"left": "left", "right": "right", "top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom"}
_PRE = r"(?:(?:near|at|on|in|along|by|close to|next to|towards?|to)\s+)?(?:the\s+)?"
_IMG = r"(?:\s+(?:of|in|on)\s+the\s+(?:image|picture|photo|frame))?"

# (pattern, kind, value) in matching order; each match is cut out of the text before the next pattern runs
_EN: list[tuple[str, str, object]] = [
    (_PRE + r"\b(left|right|top|bottom|upper|lower)\s+(?:edge|border|boundary|margin)s?\b" + _IMG, "edge", None),
    (_PRE + r"\b(top|upper|bottom|lower)[\s-]?(left|right)\b(?:\s+(?:corner|side|part|region|area|quadrant))?" + _IMG,
     "corner", None),
    (_PRE + r"\b(?:center|centre|middle)\b(?:\s+(?:part|region|area))?" + _IMG, "cell", (1, 1)),
    (_PRE + r"\b(left|right|top|bottom|upper|lower)\b(?:\s+(?:side|half|part|region|area))?" + _IMG, "side", None),
    (r"\b(?:the\s+)?(largest|biggest|smallest|tiniest)\b", "extreme", None),
    (r"\b(small|tiny|little|medium|mid-sized|moderate|large|big|huge)\b", "size", None),
    (r"\b(long|elongated|thin|linear|narrow|round|circular|roundish|compact|irregular)\b", "shape", None),
]
_SIZE_WORD = {"small": "small", "tiny": "small", "little": "small", "medium": "medium", "mid-sized": "medium",
              "moderate": "medium", "large": "large", "big": "large", "huge": "large"}
_SHAPE_WORD = {"long": "elongated", "elongated": "elongated", "thin": "elongated", "linear": "elongated",
               "narrow": "elongated", "round": "round", "circular": "round", "roundish": "round", "compact": "round",
               "irregular": "irregular"}
# Chinese / Japanese words, longest first (no word boundaries in CJK text)
_CJK: list[tuple[str, str, object]] = [
    (r"左上[角方部]?", "cell", (0, 0)), (r"右上[角方部]?", "cell", (0, 2)), (r"左下[角方部]?", "cell", (2, 0)),
    (r"右下[角方部]?", "cell", (2, 2)),
    (r"左(?:侧|側)?(?:边缘|边沿|端|縁)", "edge", "left"), (r"右(?:侧|側)?(?:边缘|边沿|端|縁)", "edge", "right"),
    (r"(?:上|顶部)(?:边缘|端|縁)", "edge", "top"), (r"(?:下|底部)(?:边缘|端|縁)", "edge", "bottom"),
    (r"中间|中心|中央|中部|真ん中", "cell", (1, 1)),
    (r"左(?:侧|側|边|邊|半部|方)", "col", 0), (r"右(?:侧|側|边|邊|半部|方)", "col", 2),
    (r"上(?:方|部|側|半部)|顶部", "row", 0), (r"下(?:方|部|側|半部)|底部", "row", 2),
    (r"最大", "extreme", "largest"), (r"最小", "extreme", "smallest"),
    (r"较大|大的|大きい|大きな", "size", "large"), (r"较小|小的|微小|小さい|小さな", "size", "small"),
    (r"细长|細長い", "shape", "elongated"), (r"圆形|円形|丸い", "shape", "round"),
]
_LEAD = re.compile(r"^(?:(?:please|can you|could you|find|locate|show(?: me)?|where(?:'s| is| are)?|point to|ground|"
                   r"detect|give me|highlight|mark|the|a|an|any|all|one|there)\s+)+")
_TRAIL = re.compile(r"(?:\s+(?:near|at|on|in|of|the|and|with|to|towards?|located|which is|that is|is|are|"
                    r"please|image|picture))+$")


@dataclass(frozen=True)
class Constraints:
    """Location / size / shape constraints read from a query.

    Attributes:
        row: target grid row (0 top, 1 middle, 2 bottom) or None.
        col: target grid column (0 left, 1 middle, 2 right) or None.
        edges: image edges the box must be near (``"left"``, ``"right"``, ``"top"``, ``"bottom"``).
        size: target COCO size class or None.
        extreme: ``"largest"`` / ``"smallest"`` or None.
        shape: target morphology (``elongated`` / ``round`` / ``irregular``) or None.
        words: the phrases that produced the constraints, as matched.
    """

    row: int | None = None
    col: int | None = None
    edges: tuple[str, ...] = ()
    size: str | None = None
    extreme: str | None = None
    shape: str | None = None
    words: tuple[str, ...] = field(default=(), compare=False)

    def __bool__(self) -> bool:
        return any(v not in (None, ()) for v in (self.row, self.col, self.edges, self.size, self.extreme, self.shape))

    def describe(self) -> str:
        """Readable summary, e.g. ``"top-left, near the left edge, large"`` ("" when unconstrained)."""
        parts = []
        if self.row is not None or self.col is not None:
            r = ("top", "", "bottom")[self.row] if self.row is not None else ""
            c = ("left", "", "right")[self.col] if self.col is not None else ""
            parts.append("-".join(p for p in (r, c) if p) or "center")
        parts += [f"near the {e} edge" for e in self.edges]
        parts += [v for v in (self.size, self.extreme, self.shape) if v]
        return ", ".join(parts)


def _apply(c: Constraints, kind: str, value: object, groups: tuple[str, ...]) -> Constraints:
    g = [x for x in groups if x]
    if kind == "edge":
        edge = str(value) if value is not None else _EDGE[g[0]]
        return replace(c, edges=tuple(dict.fromkeys((*c.edges, edge))))
    if kind == "corner":
        return replace(c, row=_ROW[g[0]], col=_COL[g[1]])
    if kind == "cell":
        row, col = value  # type: ignore[misc]
        return replace(c, row=row, col=col)
    if kind == "side":
        return replace(c, col=_COL[g[0]]) if g[0] in _COL else replace(c, row=_ROW[g[0]])
    if kind in ("row", "col"):
        return replace(c, **{kind: int(value)})  # type: ignore[call-overload]
    if kind == "extreme":
        word = str(value) if value is not None else g[0]
        return replace(c, extreme="largest" if word in ("largest", "biggest") else "smallest")
    if kind == "size":
        return replace(c, size=str(value) if value is not None else _SIZE_WORD[g[0]])
    return replace(c, shape=str(value) if value is not None else _SHAPE_WORD[g[0]])


def parse_constraints(text: str) -> tuple[Constraints, str]:
    """Split a query into constraints and the remaining text (the defect phrase, fillers trimmed).

    Examples:
        >>> c, rest = parse_constraints("crack near the left edge")
        >>> rest, c.edges
        ('crack', ('left',))
        >>> c, rest = parse_constraints("the large crack on magnetic tile at the top-left")
        >>> rest, c.row, c.col, c.size
        ('crack on magnetic tile', 0, 0, 'large')
    """
    rest = normalize(text)
    c = Constraints()
    words: list[str] = []
    for table, flags in ((_EN, re.IGNORECASE), (_CJK, 0)):
        for pattern, kind, value in table:
            for m in list(re.finditer(pattern, rest, flags)):
                c = _apply(c, kind, value, m.groups())
                words.append(m.group(0).strip())
            rest = re.sub(pattern, " ", rest, flags=flags)
    rest = re.sub(r"\s+", " ", re.sub(r"[?？!！.。,，]", " ", rest)).strip()
    for _ in range(3):
        rest = _TRAIL.sub("", _LEAD.sub("", rest)).strip()
    rest = re.sub(r"^[的在の]+|[的在の]+$", "", rest).strip()
    return replace(c, words=tuple(words)), rest


def box_morphology(xyxy: np.ndarray) -> np.ndarray:
    """Morphology word per box from its aspect ratio (rules at ``ROUND_MAX_ASPECT``): ``(N, 4)`` -> ``(N,)`` str."""
    wh = np.clip(np.stack([xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]], 1), 1e-6, None)
    aspect = wh.max(1) / wh.min(1)
    return np.where(aspect >= ELONGATED_ASPECT, "elongated", np.where(aspect < ROUND_MAX_ASPECT, "round", "irregular"))


def _g(d: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * (d / SIGMA) ** 2)


def _third_distance(u: np.ndarray, k: int) -> np.ndarray:
    return np.maximum(0.0, np.maximum(k / 3.0 - u, u - (k + 1) / 3.0))


def constraint_prior(xyxy: np.ndarray, width: int, height: int, c: Constraints) -> np.ndarray:
    """Soft prior in ``(0, 1]`` per box for the constraints (formula in the module docstring).

    Args:
        xyxy: ``(N, 4)`` boxes in pixels.
        width: image width in pixels.
        height: image height in pixels.
        c: the constraints.

    Returns:
        ``(N,)`` float64 factors (1 where every constraint holds).
    """
    if width <= 0 or height <= 0:
        raise ConfigError(f"image size must be positive, got {width}x{height}")
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    prior = np.ones(len(xyxy))
    u, v = (xyxy[:, 0] + xyxy[:, 2]) / (2 * width), (xyxy[:, 1] + xyxy[:, 3]) / (2 * height)
    if c.col is not None:
        prior *= _g(_third_distance(u, c.col))
    if c.row is not None:
        prior *= _g(_third_distance(v, c.row))
    gaps = {"left": xyxy[:, 0] / width, "right": (width - xyxy[:, 2]) / width,
            "top": xyxy[:, 1] / height, "bottom": (height - xyxy[:, 3]) / height}
    for edge in c.edges:
        prior *= _g(np.maximum(0.0, gaps[edge] - EDGE_BAND))
    area = np.clip((xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1]), 1e-6, None)
    if c.size is not None:
        steps = np.array([abs(_SIZES.index(size_class(a)) - _SIZES.index(c.size)) for a in area.tolist()])
        prior *= SIZE_STEP ** steps
    if c.extreme == "largest" and len(area):
        prior *= area / area.max()
    elif c.extreme == "smallest" and len(area):
        prior *= area.min() / area
    if c.shape is not None:
        prior *= np.where(box_morphology(xyxy) == c.shape, 1.0, SHAPE_MISMATCH)
    return prior


def _english_aliases(vocab: Vocabulary) -> list[tuple[str, str]]:
    return sorted(((a, t) for a, t in vocab.aliases.items() if a.isascii()), key=lambda x: len(x[0]), reverse=True)


def find_terms(text: str, vocab: Vocabulary | None = None) -> list[str]:
    """Canonical defect terms mentioned in a text, in order of appearance.

    English aliases match as whole words with an optional plural ``s``/``es`` (longest alias first, matched spans are
    consumed); CJK aliases match as substrings.

    Examples:
        >>> find_terms("how many holes and pin holes are there?")
        ['hole', 'pin-hole']
    """
    vocab = vocab or Vocabulary.default()
    key = normalize(text)
    found: list[tuple[int, str]] = []
    cjk = sorted((a for a in vocab.aliases if not a.isascii()), key=len, reverse=True)
    for alias, term in _english_aliases(vocab) + [(a, vocab.aliases[a]) for a in cjk]:
        pattern = re.escape(alias) if not alias.isascii() else rf"(?<![\w-]){re.escape(alias)}(?:e?s)?(?![\w-])"
        for m in re.finditer(pattern, key):
            found.append((m.start(), term))
            key = key[: m.start()] + "\0" * (m.end() - m.start()) + key[m.end():]
    return list(dict.fromkeys(t for _, t in sorted(found)))


def canonical_term(text: str, vocab: Vocabulary | None = None) -> str | None:
    """Canonical term of a class text or prompt; None for free text.

    An exact alias first, else the first term mentioned inside the phrase (``"crack on magnetic tile"`` -> ``"crack"``,
    ``"hole in wood"`` -> ``"hole"``).
    """
    vocab = vocab or Vocabulary.default()
    if not text or not text.strip():
        return None
    key = normalize(text)
    if key in vocab.aliases:
        return vocab.aliases[key]
    terms = find_terms(text, vocab)
    return terms[0] if terms else None
