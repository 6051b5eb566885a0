"""Taxonomy: native class names -> benchmark categories (supercategory -> scene -> defect).

A category is one ``(scene, defect)`` pair. Ids run ``1..C`` in recipe order (sources in order, then each source's
``classes`` values in order of first appearance). Two sources with the same scene and defect share one category.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rtvp.bench.recipe import Recipe
from rtvp.errors import ConfigError

DROP = 0
"""Mapped id of a native class that the recipe drops on purpose (``null``)."""
UNKNOWN = -1
"""Mapped id of a native class that the recipe does not list (an issue)."""


@dataclass
class Category:
    """One benchmark category (written verbatim into every COCO file's ``categories``)."""

    id: int
    defect: str
    scene: str
    supercategory: str
    text: str
    aliases: list[str] = field(default_factory=list)
    split: str = "seen"
    descriptions: list[str] = field(default_factory=list)

    def to_coco(self) -> dict[str, Any]:
        """COCO category dict: ``name`` equals ``text`` (unique); ``descriptions`` only when the recipe gives some."""
        extra = {"descriptions": list(self.descriptions)} if self.descriptions else {}
        return {
            "id": self.id,
            "name": self.text,
            "defect": self.defect,
            "scene": self.scene,
            "supercategory": self.supercategory,
            "text": self.text,
            "aliases": list(self.aliases),
            "split": self.split,
            **extra,
        }


class Taxonomy:
    """Categories of a recipe plus the per-source native-name lookup.

    Examples:
        >>> from rtvp.bench.recipe import recipe_from_dict
        >>> r = recipe_from_dict({"name": "t", "sources": [{"name": "a", "format": "yolo", "path": "a",
        ...     "scene": "wood", "supercategory": "material", "classes": {"0": "hole", "1": None}}]})
        >>> tax = Taxonomy(r)
        >>> [c.text for c in tax.categories], tax.lookup(0, "0"), tax.lookup(0, "1"), tax.lookup(0, "x")
        (['hole on wood'], 1, 0, -1)
    """

    def __init__(self, recipe: Recipe) -> None:
        self.categories: list[Category] = []
        by_key: dict[tuple[str, str], Category] = {}
        by_text: dict[str, Category] = {}
        self._maps: list[dict[str, int]] = []
        scene_super: dict[str, str] = {}
        for src in recipe.sources:
            if scene_super.setdefault(src.scene, src.supercategory) != src.supercategory:
                raise ConfigError(f"sources '{src.name}': scene '{src.scene}' is under supercategory "
                                  f"'{scene_super[src.scene]}' in another source, not '{src.supercategory}'")
            mapping: dict[str, int] = {}
            for native, defect in src.classes.items():
                if defect is None:
                    mapping[native] = DROP
                    continue
                cat = by_key.get((src.scene, defect))
                if cat is None:
                    text = recipe.text_template.format(defect=defect, scene=src.scene)
                    if text in by_text:
                        raise ConfigError(f"sources '{src.name}': class text '{text}' collides with another "
                                          f"category; rename the defect or the scene")
                    cat = Category(len(self.categories) + 1, defect, src.scene, src.supercategory, text)
                    self.categories.append(cat)
                    by_key[(src.scene, defect)] = by_text[text] = cat
                for alias in src.aliases.get(defect, []):
                    if alias != defect and alias not in cat.aliases:
                        cat.aliases.append(alias)
                cat.descriptions += [d for d in src.descriptions.get(defect, []) if d not in cat.descriptions]
                mapping[native] = cat.id
            self._maps.append(mapping)

    def lookup(self, source_index: int, native: str) -> int:
        """Category id of a native class of source ``source_index``: ``>= 1``, ``DROP`` (0) or ``UNKNOWN`` (-1)."""
        return self._maps[source_index].get(native, UNKNOWN)

    def tree(self) -> dict[str, dict[str, list[str]]]:
        """Nested ``{supercategory: {scene: [defect, ...]}}`` in category order."""
        out: dict[str, dict[str, list[str]]] = {}
        for c in self.categories:
            out.setdefault(c.supercategory, {}).setdefault(c.scene, []).append(c.defect)
        return out

    def texts(self) -> list[str]:
        """Class texts in id order (row ``i`` of an embedding matrix is category ``i + 1``)."""
        return [c.text for c in self.categories]
