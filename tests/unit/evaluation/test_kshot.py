"""k-shot exemplar evaluation: seeded draws, exemplar images excluded from scoring, open-protocol results."""

from __future__ import annotations

import json

import pytest

from predict_toys import (
    one_thread,  # noqa: F401 - autouse fixture
    rtvpnet_ckpt,
    write_bench,
)
from rtvp.errors import DataError
from rtvp.evaluation.kshot import draw_exemplars, kshot_eval


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return write_bench(tmp_path_factory.mktemp("k"), unseen="scratch on steel")  # images 1 and 4 hold a scratch


def test_draws_are_seeded_and_per_unseen_class(bench):
    gt = json.loads((bench / "annotations" / "open_val.json").read_text())
    picks = [draw_exemplars(gt, 1, seed) for seed in range(6)]
    assert all(len(p) == 1 and p[0][0]["text"] == "scratch on steel" for p, _ in picks)
    assert draw_exemplars(gt, 1, 3) == picks[3]  # same seed, same draw
    assert {a["image_id"] for p, _ in picks for _, a in p} == {1, 4}  # both boxes get drawn over the seeds
    assert draw_exemplars(gt, 2, 0)[1] == {1, 4}
    with pytest.raises(DataError, match="fewer than k=3"):
        draw_exemplars(gt, 3, 0)


def test_kshot_scores_the_images_left_with_the_exemplar_prompts(bench):
    out = kshot_eval(rtvpnet_ckpt(imgsz=64), bench, k=1, draws=2)
    assert out["k"] == 1 and [d["seed"] for d in out["draws"]] == [0, 1]
    for d in out["draws"]:
        assert d["exemplar_images"] == 1 and d["scored_images"] == 3  # the exemplar's image is not scored
        assert 0.0 <= d["AP"] <= 1.0 and 0.0 <= d["AP50"] <= 1.0  # one scratch left in the scored images
    aps = [d["AP"] for d in out["draws"]]
    assert out["AP_mean"] == pytest.approx(sum(aps) / 2)
    assert out["AP_sd"] == pytest.approx(abs(aps[0] - aps[1]) / 2 ** 0.5)
    assert kshot_eval(rtvpnet_ckpt(imgsz=64), bench, k=1, draws=1)["AP_sd"] is None
