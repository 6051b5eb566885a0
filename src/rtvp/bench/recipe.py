"""Benchmark recipe: the typed YAML that says which sources go into a benchmark and how it is split.

Example (``configs/benchmarks/mmioc-mini.yaml`` is the full one)::

    name: demo
    version: 1                        # a number or a string
    text_template: "{defect} on {scene}"
    sources:
      - name: neu_det
        format: voc
        path: neu_det                 # relative to --root
        scene: steel strip
        supercategory: metal
        license: research only
        classes: {scratches: scratch, crazing: crazing, junk: null}   # optional: rename / drop (null)
        aliases: {scratch: [scratches, 划痕, 傷]}
        descriptions: {scratch: "a thin bright straight line"}        # optional: visual descriptions
        options: {images: IMAGES, annotations: ANNOTATIONS}
    split: {val_fraction: 0.2, seed: 0, unseen_fraction: 0.3, tau: 0.5}
    output: {images: link}
    validation: {phash_distance: 4, min_box_size: 1.0}

Unknown keys anywhere are a ``ConfigError`` naming the key and the file. Without ``classes`` a source keeps its
native class names, normalised (``pitted_surface`` -> ``pitted surface``; ``rtvp.bench.native`` reads them);
``split.val_sources`` uses whole sources (e.g. a dataset's own ``val`` split) as ``closed_val``.

``extends: base.yaml`` (relative to the recipe's folder) starts from another recipe: the keys given here replace
the base's, mappings merge key by key (``split: {unseen_classes: [...]}`` changes only that field), lists are
replaced whole (``configs/benchmarks/mmioc-cross.yaml`` is mmioc-mini with a cross-scene split).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rtvp.config import from_dict, to_dict
from rtvp.errors import ConfigError
from rtvp.fileio import read_yaml

MIN_OPEN_TRAIN_SHARE = 0.1
"""Share of a scene's images that must stay usable for ``open_train``: the unseen choice's floor by default and the
threshold of the report's starved-scene warning (``rtvp.bench.stats.scene_warnings``)."""


@dataclass(frozen=True)
class SourceSpec:
    """One source dataset of the recipe.

    Attributes:
        name: unique short name; images land under ``images/<name>/``.
        format: converter registry key (``rtvp.sources.SOURCES``), e.g. ``voc``.
        path: dataset folder relative to the build's ``--root`` (default: the recipe's own folder).
        scene: scene word(s) used in the class text, e.g. ``"steel strip"``.
        supercategory: top taxonomy level, e.g. ``"metal"``.
        classes: native class name -> defect name; ``null`` drops the class on purpose. A native class that is
            missing here is an *unknown class* issue (annotation dropped, fatal with ``--strict``). ``None``
            (the default) keeps every native class under its normalised name (``rtvp.bench.native``).
        license: licence / terms of use of the source (copied into ``benchmark.yaml``).
        aliases: defect name -> extra names (synonyms, other languages).
        descriptions: defect name -> a short visual description (or a list of them): shape, contrast, typical size
            and location. Written into the category (``descriptions``) and used by the text ensemble
            (``--set class_text=ensemble``) next to the shipped vocabulary's description.
        options: keyword options passed to the converter.
    """

    name: str
    format: str
    path: str
    scene: str
    supercategory: str
    classes: dict[str, str | None] | None = None
    license: str = "unknown"
    aliases: dict[str, list[str]] = field(default_factory=dict)
    descriptions: dict[str, str | list[str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # YAML reads `0: hole` with an int key; native names are strings (YOLO ids become "0", "1", ...)
        if self.classes is not None:
            object.__setattr__(self, "classes", {str(k): v for k, v in self.classes.items()})
        listed = {}
        for defect, text in self.descriptions.items():
            texts = [text] if isinstance(text, str) else list(text)
            if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
                raise ConfigError(f"sources ({self.name}): descriptions.{defect} must be a non-empty text or list of "
                                  f"texts, e.g. 'descriptions: {{{defect}: \"a thin dark line\"}}'")
            listed[str(defect)] = [t.strip() for t in texts]
        object.__setattr__(self, "descriptions", listed)


@dataclass(frozen=True)
class SplitSpec:
    """Closed and open split parameters.

    Attributes:
        val_fraction: share of images (near-duplicate groups) in ``closed_val``.
        seed: seed of every random choice of the split.
        unseen_fraction: share of classes chosen as unseen automatically (0 disables the automatic choice).
        tau: cosine similarity an unseen class must reach with at least one seen class.
        unseen_classes: manual unseen list (category text or defect name); when non-empty it replaces the
            automatic choice.
        unseen_scenes: scenes whose classes are all unseen (cross-domain transfer); their images never enter
            ``open_train``.
        min_open_train_share: the automatic choice skips a class that would leave a scene it appears in with fewer
            than this share of its annotated images free of unseen classes (those that can enter ``open_train``);
            0 disables the check. Manual lists and unseen scenes are not checked (``rtvp data stats`` warns).
        val_sources: names of sources whose images are ``closed_val`` (e.g. a dataset's own val split); the other
            sources are ``closed_train`` (a near-duplicate group touching a val source goes to val whole). Empty
            (default): the stratified random split by ``val_fraction``.
    """

    val_fraction: float = 0.2
    seed: int = 0
    unseen_fraction: float = 0.3
    tau: float = 0.5
    unseen_classes: list[str] = field(default_factory=list)
    unseen_scenes: list[str] = field(default_factory=list)
    min_open_train_share: float = MIN_OPEN_TRAIN_SHARE
    val_sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"split.val_fraction must be in (0, 1), got {self.val_fraction}; e.g. val_fraction: 0.2")
        if not 0.0 <= self.unseen_fraction < 1.0:
            raise ConfigError(f"split.unseen_fraction must be in [0, 1), got {self.unseen_fraction}; e.g. "
                              f"unseen_fraction: 0.3 (0 = no automatic unseen classes)")
        if not 0.0 <= self.min_open_train_share < 1.0:
            raise ConfigError(f"split.min_open_train_share must be in [0, 1), got {self.min_open_train_share}; "
                              f"e.g. min_open_train_share: 0.1")
        if not -1.0 <= self.tau <= 1.0:
            raise ConfigError(f"split.tau is a cosine similarity in [-1, 1], got {self.tau}; e.g. tau: 0.5")


@dataclass(frozen=True)
class OutputSpec:
    """How images reach the benchmark folder: ``link`` (symlink, default), ``copy`` or ``none``."""

    images: Literal["link", "copy", "none"] = "link"


@dataclass(frozen=True)
class ValidationSpec:
    """Validation thresholds.

    Attributes:
        phash_distance: near-duplicate threshold, Hamming distance between 64-bit perceptual hashes (0 = only
            identical hashes; at most 15).
        min_box_size: a box whose clipped width or height is below this many pixels is degenerate and dropped.
    """

    phash_distance: int = 4
    min_box_size: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.phash_distance <= 15:
            raise ConfigError(f"validation.phash_distance must be in 0..15, got {self.phash_distance}; "
                              f"e.g. phash_distance: 4")
        if self.min_box_size < 0:
            raise ConfigError(f"validation.min_box_size must be >= 0, got {self.min_box_size}; e.g. min_box_size: 1.0")


@dataclass(frozen=True)
class Recipe:
    """A whole benchmark recipe (see the module docstring for the YAML form)."""

    name: str
    sources: list[SourceSpec]
    version: str | int | float = "1"
    text_template: str = "{defect} on {scene}"
    split: SplitSpec = field(default_factory=SplitSpec)
    output: OutputSpec = field(default_factory=OutputSpec)
    validation: ValidationSpec = field(default_factory=ValidationSpec)

    def __post_init__(self) -> None:
        # `version: 1` and `version: 1.2` are versions too; benchmark.yaml and the COCO info keep a string
        object.__setattr__(self, "version", str(self.version))

    def sha1(self) -> str:
        """Hash of the normalised recipe (key order and comments in the YAML do not matter).

        A source without descriptions hashes as before the field existed, so earlier builds keep their hash.
        """
        data = to_dict(self)
        for src in data["sources"]:
            if not src.get("descriptions"):
                src.pop("descriptions", None)
        text = json.dumps(data, sort_keys=True, ensure_ascii=False)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _check(recipe: Recipe, where: str) -> Recipe:
    """Cross-field checks that a single dataclass cannot do; errors name the file and the field."""
    if not recipe.sources:
        raise ConfigError(f"{where}: sources: the recipe lists no source; add one, e.g. "
                          f"'sources: [{{name: mine, format: yolo, path: ., scene: wood, supercategory: material}}]'")
    try:
        recipe.text_template.format(defect="d", scene="s")
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"{where}: text_template {recipe.text_template!r} may only use {{defect}} and "
                          f"{{scene}} ({e})") from None
    seen: set[str] = set()
    for i, src in enumerate(recipe.sources):
        at = f"{where}: sources[{i}] ({src.name})"
        if not src.name or "/" in src.name or src.name in (".", ".."):
            raise ConfigError(f"{at}: name must be a non-empty folder name, e.g. 'name: my_parts'")
        if src.name in seen:
            raise ConfigError(f"{at}: duplicate source name '{src.name}'; give each source its own name")
        seen.add(src.name)
        _check_classes(src, at)
        if Path(src.path).is_absolute():
            raise ConfigError(f"{at}: path '{src.path}' must be relative to --root (default: the recipe's "
                              f"folder), e.g. 'path: {Path(src.path).name}' with --root {Path(src.path).parent}")
    names = [s.name for s in recipe.sources]
    for name in recipe.split.val_sources:
        if name not in names:
            raise ConfigError(f"{where}: split.val_sources: '{name}' is not a source name (sources: {names})")
    if recipe.split.val_sources and set(names) <= set(recipe.split.val_sources):
        raise ConfigError(f"{where}: split.val_sources lists every source, so nothing is left to train on; "
                          f"list only the validation source(s), e.g. 'val_sources: [{names[-1]}]'")
    scenes = {s.scene for s in recipe.sources}
    for scene in recipe.split.unseen_scenes:
        if scene not in scenes:
            raise ConfigError(f"{where}: split.unseen_scenes: '{scene}' is not a scene of any source "
                              f"(scenes: {sorted(scenes)})")
    return recipe


def _check_classes(src: SourceSpec, at: str) -> None:
    """``classes`` may be omitted (native names) but not empty; aliases and descriptions name a defect of the source."""
    if src.classes is None:
        return  # native names, resolved by rtvp.bench.native before the build; aliases are checked then
    if not src.classes:
        raise ConfigError(f"{at}: classes is empty; map native classes to defect names (or null), e.g. "
                          f"'classes: {{pitted_surface: pitting, junk: null}}', or drop the key to keep the "
                          f"native names")
    defects = {d for d in src.classes.values() if d is not None}
    for key, mapping in (("aliases", src.aliases), ("descriptions", src.descriptions)):
        for defect in mapping:
            if defect not in defects:
                raise ConfigError(f"{at}: {key}.{defect}: '{defect}' is not a defect of this source "
                                  f"(defects: {sorted(defects)}); use one of them as the key")


def check_recipe(recipe: Recipe, where: str = "recipe") -> Recipe:
    """Re-run the cross-field checks, e.g. after ``rtvp.bench.native`` filled in the native classes."""
    return _check(recipe, where)


def recipe_from_dict(data: dict[str, Any], where: str = "recipe") -> Recipe:
    """Build and check a ``Recipe`` from plain data; ``where`` prefixes error messages."""
    return _check(from_dict(Recipe, data, where=where), where)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s keys: mappings merged recursively, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _extended(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The raw mapping of ``path`` with its ``extends`` chain applied."""
    data = read_yaml(path, "config file", error=ConfigError) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level, got {type(data).__name__}")
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: extends must be the path of a base recipe, e.g. 'extends: mmioc-mini.yaml'")
    base_path = (path.parent / base).resolve()
    if base_path in chain or base_path == path.resolve():
        raise ConfigError(f"{path}: extends: '{base}' leads back to this recipe (a cycle)")
    if not base_path.is_file():
        raise ConfigError(f"{path}: extends: '{base}' not found (looked for {base_path}; the path is relative to "
                          f"the recipe's folder)")
    return _merge(_extended(base_path, (*chain, path.resolve())), data)


def load_recipe(path: str | Path) -> Recipe:
    """Load a recipe YAML; unknown keys and bad values raise ``ConfigError`` naming the file and the key.

    A recipe with ``extends`` is merged onto its base first (see the module docstring).
    """
    try:
        recipe = from_dict(Recipe, _extended(Path(path)), where=str(path))  # each file of the chain read once
    except ConfigError as e:
        if str(path) in str(e):
            raise
        raise ConfigError(f"{path}: {e}") from None  # a value check of a section (split.*, validation.*)
    return _check(recipe, str(path))
