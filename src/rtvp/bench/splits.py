"""Closed (train/val) and open (seen/unseen) splits on compact per-image metadata.

Images are described by arrays, never by records: ``groups`` ``(N,)`` near-duplicate group labels and the image ->
category incidence in CSR form (``indptr`` ``(N + 1,)``, ``cats`` ``(M,)`` 0-based category indices, unique per
image). Every split decision is made per near-duplicate group, so a group never straddles train and val.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

EmbedFn = Callable[[list[str]], np.ndarray]
"""Text embedding function: ``texts -> (len(texts), D)`` float array with L2-normalised rows."""


def _rows(indptr: np.ndarray) -> np.ndarray:
    """Row index of each CSR entry, ``(M,)``."""
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


def _group_incidence(groups: np.ndarray, indptr: np.ndarray, cats: np.ndarray):
    """Dense group ids and the weighted group -> class incidence.

    Returns:
        ``(gid (N,), sizes (G,), pair_g (P,), pair_c (P,), pair_w (P,))``: pair ``p`` says group ``pair_g[p]``
        holds ``pair_w[p]`` images containing class ``pair_c[p]``.
    """
    _, gid = np.unique(groups, return_inverse=True)
    gid = gid.reshape(-1)
    sizes = np.bincount(gid)
    if len(cats) == 0:
        e = np.zeros(0, dtype=np.int64)
        return gid, sizes, e, e, e
    n_cat = int(cats.max()) + 1
    key = gid[_rows(indptr)].astype(np.int64) * n_cat + cats
    uk, w = np.unique(key, return_counts=True)
    return gid, sizes, uk // n_cat, uk % n_cat, w


def closed_split(groups: np.ndarray, indptr: np.ndarray, cats: np.ndarray, num_classes: int,
                 val_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Stratified ~``1 - f`` / ``f`` image split over near-duplicate groups (iterative stratification).

    Classes are processed rarest first (fewest groups); each unassigned group holding the class goes to the side
    that still needs more images of that class (ties: the side needing more images overall, then a seeded coin).
    A class present in ``>= 2`` groups needs at least one image in val, and a final pass moves groups so such a
    class is on both sides. Groups without labels fill the overall quota. Deterministic for a given ``seed``.

    Args:
        groups: ``(N,)`` near-duplicate group label of each image.
        indptr: ``(N + 1,)`` CSR row pointers of image -> class incidence.
        cats: ``(M,)`` 0-based class indices (unique within an image).
        num_classes: ``C``.
        val_fraction: ``f``.
        seed: seed of the tie-breaking and group order.

    Returns:
        ``(N,)`` bool, True for validation images.
    """
    gid, sizes, pg, pc, pw = _group_incidence(groups, indptr, cats)
    n_groups, rng = len(sizes), np.random.default_rng(seed)
    rank = rng.permutation(n_groups)  # group visiting order inside a class
    n_img = np.bincount(pc, weights=pw, minlength=num_classes)
    n_grp = np.bincount(pc, minlength=num_classes)
    need_val = np.where(n_grp >= 2, np.maximum(1.0, val_fraction * n_img), val_fraction * n_img)
    need = [(n_img - need_val).tolist(), need_val.tolist()]  # per side, per class: images still wanted
    total = [(1 - val_fraction) * len(gid), val_fraction * len(gid)]  # per side: images still wanted
    side = np.full(n_groups, -1, dtype=np.int8)
    order = np.argsort(pg, kind="stable")
    g_ptr = np.r_[0, np.cumsum(np.bincount(pg, minlength=n_groups))].tolist()
    g_cls, g_w, g_size = pc[order].tolist(), pw[order].tolist(), sizes.tolist()

    def assign(g: int, s: int) -> None:  # plain Python scalars: this runs once per group
        side[g] = s
        total[s] -= g_size[g]
        want = need[s]
        for i in range(g_ptr[g], g_ptr[g + 1]):
            want[g_cls[i]] -= g_w[i]

    by_class = np.argsort(pc, kind="stable")
    c_ptr = np.r_[0, np.cumsum(n_grp)]
    for c in np.lexsort((np.arange(num_classes), n_grp)).tolist():
        members = pg[by_class[c_ptr[c]:c_ptr[c + 1]]]
        members = members[np.argsort(rank[members])]
        for g in members[side[members] < 0].tolist():  # distinct groups: each is assigned once here
            diff = need[1][c] - need[0][c]
            if diff == 0:
                diff = total[1] - total[0]
            assign(g, int(diff > 0) if diff != 0 else int(rng.random() < val_fraction))
    by_rank = np.argsort(rank)
    for g in by_rank[side[by_rank] < 0].tolist():  # groups without labels fill the overall quota
        assign(g, int(total[1] > total[0]))
    _ensure_both_sides(side, sizes, pg, pc, num_classes)
    return side[gid] == 1


def source_split(groups: np.ndarray, source: np.ndarray, val_sources: np.ndarray) -> np.ndarray:
    """Closed split by source: images of the ``val_sources`` are val; a near-duplicate group touching one is val whole.

    Args:
        groups: ``(N,)`` near-duplicate group label of each image.
        source: ``(N,)`` source index of each image.
        val_sources: ``(S,)`` bool, True for a validation source.

    Returns:
        ``(N,)`` bool, True for validation images.
    """
    if not len(groups):
        return np.zeros(0, dtype=bool)
    _, gid = np.unique(groups, return_inverse=True)
    val = val_sources[source]
    group_val = np.zeros(int(gid.max()) + 1, dtype=bool)
    np.logical_or.at(group_val, gid, val)
    return group_val[gid]


def _ensure_both_sides(side: np.ndarray, sizes: np.ndarray, pg: np.ndarray, pc: np.ndarray, num_classes: int) -> None:
    """Move groups so that every class present in ``>= 2`` groups has a group on each side (in place).

    The moved group is the smallest one whose classes all keep a group on the donor side (if none qualifies, the
    smallest group of the class). Only classes missing on a side are visited, so this is ``O(P)`` when the greedy
    pass already succeeded.
    """
    n_grp = np.bincount(pc, minlength=num_classes)
    for c in range(num_classes):
        if n_grp[c] < 2:
            continue
        for target in (0, 1):
            on_side = side[pg] == target
            if np.bincount(pc[on_side], minlength=num_classes)[c] > 0:
                continue
            donor_count = np.bincount(pc[~on_side], minlength=num_classes)
            members = sorted(pg[pc == c].tolist(), key=lambda m: (sizes[m], m))
            safe = [g for g in members if (donor_count[pc[pg == g]] >= 2).all()]
            side[(safe or members)[0]] = target


@dataclass
class OpenChoice:
    """Result of the unseen-class selection.

    Attributes:
        unseen: ``(C,)`` bool, True for unseen classes.
        nearest: ``(C,)`` int, index of the most similar seen class (``-1`` without embeddings).
        similarity: ``(C,)`` float, cosine similarity to that seen class.
        without_neighbour: unseen classes (forced ones only) lacking a seen neighbour ``>= tau``.
        target: number of unseen classes the fraction asked for.
    """

    unseen: np.ndarray
    nearest: np.ndarray
    similarity: np.ndarray
    without_neighbour: list[int] = field(default_factory=list)
    target: int = 0


class SceneGuard:
    """Keeps every scene trainable under the open protocol while unseen classes are chosen.

    An image holding an unseen class never enters ``open_train``. The guard tracks, per scene, the annotated images
    that hold no unseen class yet ("free" images) and refuses a candidate class whose choice would leave a scene it
    appears in with fewer than ``min_share`` of its annotated images free (e.g. every DeepPCB image shows most of
    the six PCB defects, so one unseen PCB class would empty the scene from ``open_train``). Image-level, before
    near-duplicate grouping and the closed split; ``O(images of the class)`` per candidate (an inverted index).

    Args:
        indptr: ``(N + 1,)`` CSR row pointers of the image -> class incidence; ``cats`` ``(M,)`` class indices.
        cats: see ``indptr``.
        image_scene: ``(N,)`` int scene index of each image.
        num_classes: ``C``.
        min_share: required share of free annotated images per scene.
        exempt: ``(S,)`` bool, scenes never checked (``unseen_scenes``: all their classes are unseen on purpose).
    """

    def __init__(self, indptr: np.ndarray, cats: np.ndarray, image_scene: np.ndarray, num_classes: int,
                 min_share: float, exempt: np.ndarray) -> None:
        order = np.argsort(cats, kind="stable")
        self._images = _rows(indptr)[order]  # image of each incidence, grouped by class
        self._start = np.searchsorted(cats[order], np.arange(num_classes + 1))
        self._scene = np.asarray(image_scene, dtype=np.int64)
        self._holds = np.zeros(len(self._scene), dtype=bool)
        annotated = np.diff(indptr) > 0
        self.free = np.bincount(self._scene[annotated], minlength=len(exempt))
        self._floor = np.where(exempt, 0.0, min_share * self.free)

    def _new_images(self, c: int) -> np.ndarray:
        images = self._images[self._start[c]:self._start[c + 1]]
        return images[~self._holds[images]]

    def accepts(self, c: int) -> bool:
        """True when making class ``c`` unseen keeps every scene it appears in at or above its floor."""
        drop = np.bincount(self._scene[self._new_images(c)], minlength=len(self.free))
        hit = drop > 0
        return bool((self.free[hit] - drop[hit] >= self._floor[hit]).all())

    def add(self, c: int) -> None:
        """Record class ``c`` as unseen."""
        new = self._new_images(c)
        self._holds[new] = True
        self.free -= np.bincount(self._scene[new], minlength=len(self.free))


def choose_unseen(emb: np.ndarray | None, forced: np.ndarray, eligible: np.ndarray, fraction: float, tau: float,
                  seed: int = 0, manual: bool = False, guard: SceneGuard | None = None) -> OpenChoice:
    """Pick unseen classes so each has a seen neighbour with cosine similarity ``>= tau`` (paper §3.1.4).

    Candidates are visited in a seeded random order; a candidate becomes unseen if, after removing it from the
    seen set, it and every class already unseen still have a seen neighbour ``>= tau`` and ``guard`` (when given)
    accepts it. It stops when ``round(fraction * C)`` classes are unseen (classes forced by ``unseen_scenes`` count
    towards the share), or when the candidates run out.

    Args:
        emb: ``(C, D)`` L2-normalised class-text embeddings, or None (then only forced classes are unseen).
        forced: ``(C,)`` bool, classes that are unseen whatever their neighbours (manual list, unseen scenes).
        eligible: ``(C,)`` bool, classes that may be chosen automatically (e.g. those with annotations).
        fraction: target unseen share of all ``C`` classes.
        tau: similarity threshold.
        seed: seed of the candidate order.
        manual: True when a manual list was given: no automatic choice at all.
        guard: per-scene ``open_train`` floor for the automatic choice (forced classes already added to it).

    Returns:
        An ``OpenChoice``.
    """
    c = len(forced)
    unseen = forced.astype(bool).copy()
    target = round(fraction * c) if not manual else int(unseen.sum())
    if emb is None:
        return OpenChoice(unseen, np.full(c, -1), np.zeros(c), [], target)
    emb = np.asarray(emb, dtype=np.float64)
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    if not manual:
        for cand in np.random.default_rng(seed).permutation(c):
            if unseen.sum() >= target:
                break
            if unseen[cand] or not eligible[cand]:
                continue
            seen = ~unseen
            seen[cand] = False
            trial = unseen.copy()
            trial[cand] = True
            if not seen.any() or not (sim[np.ix_(trial & ~forced, seen)].max(axis=1, initial=-np.inf) >= tau).all():
                continue
            if guard is None or guard.accepts(int(cand)):
                unseen = trial
                if guard is not None:
                    guard.add(int(cand))
    seen_idx = np.flatnonzero(~unseen)
    nearest, best = np.full(c, -1), np.zeros(c)
    if len(seen_idx):
        nearest = seen_idx[np.argmax(sim[:, seen_idx], axis=1)]
        best = sim[np.arange(c), nearest]
    lacking = [int(i) for i in np.flatnonzero(unseen & (best < tau))]
    return OpenChoice(unseen, nearest, np.where(np.isfinite(best), best, 0.0), lacking, target)


def open_split(groups: np.ndarray, is_val: np.ndarray, indptr: np.ndarray, cats: np.ndarray,
               unseen_cls: np.ndarray, unseen_scene_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Assign images to ``open_train`` / ``open_val``.

    A near-duplicate group is *unseen* when any member holds an unseen class or belongs to an unseen scene; such
    groups go to ``open_val`` entirely. ``open_train`` = closed-train images of the other groups, ``open_val`` =
    unseen groups plus closed-val images. The two sets are disjoint and no group straddles them.

    Args:
        groups: ``(N,)`` near-duplicate group labels.
        is_val: ``(N,)`` bool, closed split.
        indptr: ``(N + 1,)`` CSR row pointers; ``cats`` ``(M,)`` 0-based class indices.
        cats: see ``indptr``.
        unseen_cls: ``(C,)`` bool.
        unseen_scene_image: ``(N,)`` bool, image of an unseen scene.

    Returns:
        ``(open_train (N,), open_val (N,))`` bool masks.
    """
    holds = np.zeros(len(groups), dtype=bool)
    if len(cats):
        np.logical_or.at(holds, _rows(indptr), unseen_cls[cats])
    holds |= unseen_scene_image
    _, gid = np.unique(groups, return_inverse=True)
    gid = gid.reshape(-1)
    group_unseen = np.zeros(gid.max() + 1 if len(gid) else 0, dtype=bool)
    np.logical_or.at(group_unseen, gid, holds)
    unseen_img = group_unseen[gid]
    return ~is_val & ~unseen_img, is_val | unseen_img
