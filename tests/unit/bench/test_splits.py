from __future__ import annotations

import numpy as np
import pytest

from rtvp.bench.splits import SceneGuard, choose_unseen, closed_split, open_split


def _csr(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.r_[0, np.cumsum([len(r) for r in rows])].astype(np.int64)
    cats = np.array([c for r in rows for c in r], dtype=np.int64)
    return indptr, cats


def _random_images(n: int, c: int, seed: int) -> tuple[list[list[int]], np.ndarray]:
    """Long-tailed multi-label images plus near-duplicate groups (every 5th image joins its predecessor)."""
    rng = np.random.default_rng(seed)
    p = np.arange(1, c + 1, dtype=float) ** -1.5
    p /= p.sum()
    rows = [sorted(set(rng.choice(c, size=int(k), p=p).tolist())) for k in rng.integers(0, 4, n)]
    groups = np.arange(n)
    groups[5::5] = groups[4::5][: len(groups[5::5])]
    return rows, groups


def test_closed_split_is_deterministic_seeded_and_keeps_groups_together():
    rows, groups = _random_images(600, 12, 0)
    indptr, cats = _csr(rows)
    a = closed_split(groups, indptr, cats, 12, 0.2, seed=3)
    assert np.array_equal(a, closed_split(groups, indptr, cats, 12, 0.2, seed=3))
    assert not np.array_equal(a, closed_split(groups, indptr, cats, 12, 0.2, seed=4))
    for g in np.unique(groups):
        assert len(set(a[groups == g].tolist())) == 1
    assert abs(a.mean() - 0.2) < 0.02


def test_closed_split_stratifies_every_class_with_two_groups():
    rows, groups = _random_images(400, 30, 1)  # the tail classes have only a handful of images
    rows[0], rows[1] = [29], [29]  # a class with exactly two single-image groups
    groups[:2] = [0, 1]
    indptr, cats = _csr(rows)
    val = closed_split(groups, indptr, cats, 30, 0.2, seed=0)
    img_of = np.repeat(np.arange(len(rows)), np.diff(indptr))
    for c in range(30):
        members = img_of[cats == c]
        if len(np.unique(groups[members])) >= 2:
            assert val[members].any() and (~val[members]).any(), f"class {c} missing on one side"
        share = val[members].mean() if len(members) >= 50 else None
        if share is not None:
            assert abs(share - 0.2) < 0.06, (c, share)


def test_closed_split_hand_case():
    # class 0 in three single images, class 1 only inside one near-duplicate group of two: that group stays whole
    rows = [[0], [0], [0], [1], [1], []]
    groups = np.array([0, 1, 2, 3, 3, 5])
    val = closed_split(groups, *_csr(rows), 2, 0.34, seed=0)
    assert val[3] == val[4]
    assert val[:3].any() and not val[:3].all()


def test_choose_unseen_respects_tau_with_fixed_vectors():
    # a ~ b (0.9), c ~ d (0.6), e isolated; tau 0.5
    emb = np.array([[1, 0, 0, 0], [0.9, np.sqrt(0.19), 0, 0], [0, 0, 1, 0], [0, 0, 0.6, 0.8], [0, -1, 0, 0]])
    forced = np.zeros(5, bool)
    eligible = np.ones(5, bool)
    for seed in range(10):
        ch = choose_unseen(emb, forced, eligible, fraction=0.4, tau=0.5, seed=seed)
        unseen = np.flatnonzero(ch.unseen)
        assert len(unseen) == 2 and not ch.unseen[4]  # e has no neighbour >= tau
        sim = emb @ emb.T
        seen = np.flatnonzero(~ch.unseen)
        for u in unseen:
            assert sim[u, seen].max() >= 0.5
            assert ch.nearest[u] in seen and ch.similarity[u] == pytest.approx(sim[u, seen].max())
        # one of each pair at most: unseen {a, b} would leave both without a seen neighbour
        assert not (ch.unseen[0] and ch.unseen[1]) and not (ch.unseen[2] and ch.unseen[3])
    assert choose_unseen(emb, forced, eligible, 0.4, 0.95, seed=0).unseen.sum() == 0  # nothing that similar


def test_choose_unseen_manual_scenes_and_eligibility():
    emb = np.eye(4)
    forced = np.array([False, False, True, False])
    ch = choose_unseen(emb, forced, np.ones(4, bool), fraction=0.9, tau=0.5, manual=True)
    assert ch.unseen.tolist() == [False, False, True, False]  # manual list overrides: no automatic choice
    assert ch.without_neighbour == [2]  # reported, not enforced
    emb2 = np.array([[1.0, 0], [1.0, 0], [1.0, 0], [0, 1.0]])
    ch = choose_unseen(emb2, np.zeros(4, bool), np.array([False, True, False, True]), fraction=0.5, tau=0.5)
    assert ch.unseen.tolist() == [False, True, False, False]  # only eligible classes are chosen
    ch = choose_unseen(None, forced, np.ones(4, bool), fraction=0.5, tau=0.5)
    assert ch.unseen.tolist() == forced.tolist()


def _guard_case(min_share: float = 0.1, exempt=(False, False)) -> tuple[SceneGuard, np.ndarray]:
    # scene 0: ten images, each with classes 0 and 1; scene 1: five images of class 2, five of class 3, two empty
    rows = [[0, 1]] * 10 + [[2]] * 5 + [[3]] * 5 + [[], []]
    scene = np.array([0] * 10 + [1] * 12)
    return SceneGuard(*_csr(rows), scene, 4, min_share, np.array(exempt)), np.ones((4, 2)) / np.sqrt(2)


def test_scene_guard_keeps_a_share_of_each_scene_free():
    guard, _ = _guard_case()
    assert guard.free.tolist() == [10, 10]  # annotated images only: the two empty ones do not count
    assert not guard.accepts(0) and not guard.accepts(1)  # either would leave scene 0 with 0 of 10 free
    assert guard.accepts(2)
    guard.add(2)
    assert guard.free.tolist() == [10, 5]
    assert not guard.accepts(3)  # 0 of 10 free < 1
    guard.add(2)  # adding twice changes nothing
    assert guard.free.tolist() == [10, 5]
    guard, _ = _guard_case(min_share=0.5)
    guard.add(2)
    assert guard.free.tolist() == [10, 5] and not guard.accepts(3)
    guard, _ = _guard_case(exempt=(True, False))
    assert guard.accepts(0)  # an unseen scene is never checked
    guard.add(0)
    assert guard.free.tolist() == [0, 10] and guard.accepts(1)


def test_choose_unseen_with_guard_never_empties_a_scene():
    for seed in range(10):
        guard, emb = _guard_case()  # every class similar to every other: tau never refuses
        ch = choose_unseen(emb, np.zeros(4, bool), np.ones(4, bool), fraction=0.5, tau=0.5, seed=seed, guard=guard)
        assert ch.unseen.tolist() == [False, False, True, False] or ch.unseen.tolist() == [False, False, False, True]
        assert ch.target == 2  # asked for 2, only 1 possible: the target is reported, not forced
        free = choose_unseen(emb, np.zeros(4, bool), np.ones(4, bool), fraction=0.5, tau=0.5, seed=seed)
        assert free.unseen.sum() == 2
    assert any(choose_unseen(emb, np.zeros(4, bool), np.ones(4, bool), 0.5, 0.5, seed=s).unseen[:2].any()
               for s in range(10))  # without the guard some seed empties scene 0


def test_open_split_rules():
    rows = [[0], [1], [0, 1], [2], [], [0], [2], [1]]
    groups = np.array([0, 1, 2, 3, 4, 0, 6, 7])  # image 5 is a near duplicate of image 0
    is_val = np.array([False, False, False, False, False, False, True, True])
    unseen_cls = np.array([False, True, False])
    scene = np.array([False, False, False, True, False, False, False, False])  # image 3 from an unseen scene
    indptr, cats = _csr(rows)
    tr, va = open_split(groups, is_val, indptr, cats, unseen_cls, scene)
    assert tr.tolist() == [True, False, False, False, True, True, False, False]
    assert va.tolist() == [False, True, True, True, False, False, True, True]
    assert not (tr & va).any()
    img_of = np.repeat(np.arange(len(rows)), np.diff(indptr))
    assert not np.isin(img_of[unseen_cls[cats]], np.flatnonzero(tr)).any()  # no unseen defect in open_train
    assert (va >= is_val).all()  # closed_val images are all in open_val
