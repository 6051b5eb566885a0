"""Open-protocol diagnostics: class-agnostic recall and oracle-box accuracy on hand-computed cases, and in rtvp val."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from predict_toys import (
    expert_ckpt,
    one_thread,  # noqa: F401 - autouse fixture
    rtvpnet_ckpt,
    write_bench,
)
from rtvp.checkpoint import save_checkpoint
from rtvp.cli.main import app
from rtvp.errors import ConfigError
from rtvp.evaluation.diagnostics import agnostic_recall, oracle_accuracy
from rtvp.structures import Batch

CATS = [{"id": 1, "name": "scratch on steel", "scene": "steel", "split": "seen"},
        {"id": 2, "name": "hole on steel", "scene": "steel", "split": "unseen"},
        {"id": 3, "name": "crack on glass", "scene": "glass", "split": "unseen"},
        {"id": 4, "name": "spot on glass", "scene": "glass", "split": "seen"}]


def _ann(aid: int, image_id: int, cat: int, bbox: list[float], crowd: int = 0) -> dict:
    return {"id": aid, "image_id": image_id, "category_id": cat, "bbox": bbox, "area": bbox[2] * bbox[3],
            "iscrowd": crowd}


def _res(image_id: int, cat: int, bbox: list[float], score: float) -> dict:
    return {"image_id": image_id, "category_id": cat, "bbox": bbox, "score": score}


def test_agnostic_recall_counts_any_label_in_the_top_100_at_iou_half() -> None:
    gt = {"categories": CATS, "images": [{"id": 1}, {"id": 2}],
          "annotations": [_ann(1, 1, 2, [0, 0, 10, 10]), _ann(2, 1, 3, [20, 20, 10, 10]), _ann(3, 1, 1, [50, 50, 9, 9]),
                          _ann(4, 2, 2, [0, 0, 20, 20]), _ann(5, 2, 3, [40, 40, 5, 5], crowd=1)]}
    results = [_res(1, 1, [0, 0, 10, 10], 0.9),    # the seen label still finds the unseen hole (IoU 1)
               _res(1, 3, [24, 20, 10, 10], 0.8),  # crack: IoU 60/140 = 0.43 < 0.5: missed
               *[_res(2, 2, [100, 100, 5, 5], 0.5) for _ in range(100)],  # 100 junk boxes outrank ...
               _res(2, 2, [0, 0, 20, 20], 0.1)]    # ... the perfect one: outside the top 100
    out = agnostic_recall(gt, results, [2, 3])
    assert out["agnostic_AR100_50"] == pytest.approx(1 / 3) and out["agnostic_instances"] == 3  # crowd ignored
    assert out["per_class"] == {"hole on steel": {"agnostic_recall": 0.5, "instances": 2},
                                "crack on glass": {"agnostic_recall": 0.0, "instances": 1}}
    assert agnostic_recall(gt, results, [2, 3], max_dets=101)["agnostic_AR101_50"] == pytest.approx(2 / 3)
    assert agnostic_recall(gt, [], [2])["agnostic_AR100_50"] == 0.0
    assert agnostic_recall(gt, results, [])["agnostic_AR100_50"] is None


class _Stub(nn.Module):
    """Four anchors with fixed embeddings; prompt k's text is the k-th unit vector."""

    def __init__(self, emb: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.emb = emb
        self.box_dist: torch.Tensor | None = None

    @property
    def model(self) -> nn.Module:  # PromptedModel.model: the detector whose train/eval mode is kept
        return self

    def forward(self, images: torch.Tensor) -> SimpleNamespace:
        b = images.shape[0]
        anchors = torch.tensor([[4.0, 4.0], [12.0, 4.0], [4.0, 12.0], [12.0, 12.0]])
        box_dist = self.box_dist.expand(b, -1, -1) if self.box_dist is not None else None
        return SimpleNamespace(embeddings=self.emb.expand(b, -1, -1), anchors=anchors, strides=torch.full((4,), 8.0),
                               box_dist=box_dist, text=torch.eye(4).expand(b, -1, -1))


class _OneBatch(list):
    def collator(self, items: list) -> Batch:
        return items[0]


def test_oracle_accuracy_scene_and_all_against_a_hand_computed_case() -> None:
    e = torch.eye(4)
    emb = torch.stack([e[1], F.normalize(e[0] + 0.5 * e[2], dim=0), e[0], e[3]])  # anchors 0..3
    boxes = torch.tensor([[[0.0, 0.0, 8.0, 8.0],      # anchor 0 -> hole (unseen): right in scene and overall
                           [8.0, 0.0, 16.0, 8.0],     # anchor 1 -> crack (unseen): overall argmax is scratch (wrong),
                           [0.0, 8.0, 8.0, 16.0]]])   # within glass {crack, spot} crack wins; anchor 2: seen, skipped
    batch = Batch(images=torch.zeros(1, 3, 16, 16), gt_boxes=boxes, gt_labels=torch.tensor([[1, 2, 0]]),
                  gt_mask=torch.ones(1, 3, dtype=torch.bool), vocab_ids=torch.arange(4), image_ids=[1],
                  orig_sizes=torch.tensor([[16, 16]]), scales=torch.ones(1), pads=torch.zeros(1, 2))
    out = oracle_accuracy(_Stub(emb), _OneBatch([batch]), CATS, batch=1, iou_pooling=False)
    assert out["oracle_top1_all"] == 0.5 and out["oracle_top1_scene"] == 1.0 and out["oracle_instances"] == 2
    assert out["oracle_chance_scene"] == 0.5 and out["oracle_chance_all"] == 0.25
    assert out["per_class"] == {"hole on steel": {"oracle_top1_scene": 1.0, "oracle_top1_all": 1.0, "instances": 1},
                                "crack on glass": {"oracle_top1_scene": 1.0, "oracle_top1_all": 0.0, "instances": 1}}


def test_oracle_iou_pooling_uses_the_anchor_whose_predicted_box_matches() -> None:
    """Two anchor centres lie in the crack's box; only anchor 2's predicted box matches it, and it says crack."""
    e = torch.eye(4)
    emb = torch.stack([e[1], e[0], e[2], e[3]])
    stub = _Stub(emb)
    dist = torch.full((4, 4, 16), -1e4)  # DFL logits: one bin each -> ltrb distances in stride units (stride 8)
    dist[:, :, 0] = 1e4  # every anchor: a 0-size box at its centre ...
    dist[2, :, 0], dist[2, :, 1] = -1e4, 1e4  # ... except anchor 2 at (4, 12): 1 stride on each side -> 0..12, 4..20
    stub.box_dist = dist.view(1, 4, 64)
    boxes = torch.tensor([[[0.0, 4.0, 12.0, 20.0]]])  # holds the centres of anchors 0 (4, 4) and 2 (4, 12)
    batch = Batch(images=torch.zeros(1, 3, 16, 16), gt_boxes=boxes, gt_labels=torch.tensor([[2]]),
                  gt_mask=torch.ones(1, 1, dtype=torch.bool), vocab_ids=torch.arange(4), image_ids=[1],
                  orig_sizes=torch.tensor([[16, 16]]), scales=torch.ones(1), pads=torch.zeros(1, 2))
    assert oracle_accuracy(stub, _OneBatch([batch]), CATS, batch=1)["oracle_top1_all"] == 1.0  # anchor 2: crack
    centre = oracle_accuracy(stub, _OneBatch([batch]), CATS, batch=1, iou_pooling=False)
    assert centre["oracle_top1_all"] == 0.0  # the mean of hole and crack: a tie broken towards hole (index 1)


@pytest.mark.parametrize("protocol", ["open", "generalized"])
def test_rtvp_val_json_carries_the_diagnostics(tmp_path, protocol) -> None:
    bench = write_bench(tmp_path / "b")
    weights = save_checkpoint(rtvpnet_ckpt(imgsz=64), tmp_path / "w.pt")
    res = CliRunner().invoke(app, ["val", "--data", str(bench), "--protocol", protocol, "--weights", str(weights),
                                   "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.output)
    gt = json.loads((bench / "annotations" / "open_val.json").read_text())
    unseen = [c for c in gt["categories"] if c["split"] == "unseen"]
    n = sum(a["category_id"] in {c["id"] for c in unseen} for a in gt["annotations"])
    assert m["agnostic_instances"] == m["oracle_instances"] == n > 0
    assert 0.0 <= m["agnostic_AR100_50"] <= 1.0 and 0.0 <= m["oracle_top1_scene"] <= 1.0
    assert m["oracle_chance_all"] == 1 / len(gt["categories"])
    for c in unseen:
        assert {"agnostic_recall", "oracle_top1_scene", "oracle_top1_all"} <= set(m["per_class"][c["name"]])
    text = CliRunner().invoke(app, ["val", "--data", str(bench), "--protocol", protocol, "--weights", str(weights)])
    assert "unseen diagnostics: agnostic_AR100_50" in text.output


def test_expert_gets_recall_but_no_oracle(tmp_path) -> None:
    bench = write_bench(tmp_path / "b")
    weights = save_checkpoint(expert_ckpt(imgsz=64), tmp_path / "e.pt")
    res = CliRunner().invoke(app, ["val", "--data", str(bench), "--protocol", "generalized", "--weights",
                                   str(weights), "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.output)
    assert m["agnostic_AR100_50"] is not None and m["oracle_top1_scene"] is None and "no region" in m["oracle_note"]


def test_saved_predictions_get_the_agnostic_recall_only(tmp_path) -> None:
    bench = write_bench(tmp_path / "b")
    gt = json.loads((bench / "annotations" / "open_val.json").read_text())
    unseen = next(c["id"] for c in gt["categories"] if c["split"] == "unseen")
    box = next(a["bbox"] for a in gt["annotations"] if a["category_id"] == unseen)
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps([{"image_id": next(a["image_id"] for a in gt["annotations"]
                                                   if a["category_id"] == unseen),
                                  "category_id": unseen, "bbox": box, "score": 0.9}]))
    res = CliRunner().invoke(app, ["val", "--data", str(bench), "--protocol", "open", "--predictions", str(preds),
                                   "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.output)
    assert m["agnostic_AR100_50"] == 1.0 and "oracle_top1_all" not in m
    off = CliRunner().invoke(app, ["val", "--data", str(bench), "--protocol", "open", "--predictions", str(preds),
                                   "--json", "--no-diagnostics"])
    assert "agnostic_AR100_50" not in json.loads(off.output)


def test_rtvp_val_class_text_ensemble(tmp_path) -> None:
    """``--class-text ensemble`` re-prompts every class (boxes, AP and the oracle change); a bad value is a clean
    error naming the choices."""
    bench = write_bench(tmp_path / "b")
    weights = save_checkpoint(rtvpnet_ckpt(imgsz=64), tmp_path / "w.pt")
    args = ["val", "--data", str(bench), "--protocol", "generalized", "--weights", str(weights), "--json"]
    stored, ens = (CliRunner().invoke(app, [*args, "--class-text", c]) for c in ("stored", "ensemble"))
    assert stored.exit_code == ens.exit_code == 0, ens.output
    assert json.loads(stored.output)["num_predictions"] > 0 and json.loads(ens.output) != json.loads(stored.output)
    bad = CliRunner().invoke(app, [*args, "--class-text", "names"])  # rtvp's entry point prints it as "error: ..."
    assert isinstance(bad.exception, ConfigError) and "--class-text names: choose 'stored'" in str(bad.exception)
