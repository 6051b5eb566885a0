import json

import pytest

from rtvp.errors import ConfigError
from rtvp.structures import Detections
from rtvp.tasks.facts import facts_from_detections
from rtvp.vocabulary import Vocabulary


def _one(box, w=300, h=300, name="crack"):
    return facts_from_detections(Detections([box], [0.8], [0], [name]), w, h).boxes[0]


@pytest.mark.parametrize(
    ("box", "location"),
    [([80, 0, 100, 20], "top-left"),      # centre x 90 < 100
     ([90, 0, 110, 20], "top"),           # centre x exactly 100 = grid line -> the cell to its right
     ([190, 90, 210, 110], "right"),      # centre (200, 100): both on grid lines -> right column, middle row
     ([140, 140, 160, 160], "center"),
     ([290, 290, 300, 300], "bottom-right"),
     ([0, 190, 10, 210], "bottom-left")],
)
def test_location_words_at_grid_boundaries(box, location):
    assert _one(box).location == location


def test_edge_words_band():
    assert _one([30, 100, 60, 130]).edges == ["left"]        # gap exactly 10 % of the width
    assert _one([31, 100, 60, 130]).edges == []
    assert _one([0, 0, 300, 300]).edges == ["left", "right", "top", "bottom"]
    assert _one([0, 0, 300, 300]).where() == "center, near all four edges"
    assert _one([0, 0, 300, 20]).where() == "top, near the left, right and top edges"
    assert _one([0, 0, 20, 20]).where() == "top-left, near the left and top edges"
    assert _one([100, 280, 130, 300]).where() == "bottom, near the bottom edge"


@pytest.mark.parametrize(
    ("wh", "size", "morph"),
    [((31, 33), "small", "round"),          # area 1023 < 32^2; aspect 1.06
     ((32, 32), "medium", "round"),         # 1024 = 32^2 -> medium
     ((96, 96), "large", "round"),          # 96^2 -> large
     ((90, 30), "medium", "elongated"),     # aspect exactly 3 -> elongated
     ((15, 10), "small", "irregular"),      # aspect exactly 1.5 -> not round
     ((40, 27), "medium", "round"),         # aspect 1.48
     ((10, 40), "small", "elongated")],     # vertical: aspect 4
)
def test_size_class_and_morphology(wh, size, morph):
    b = _one([0, 0, wh[0], wh[1]])
    assert (b.size, b.morphology) == (size, morph)
    assert b.area_px == wh[0] * wh[1] and b.area_pct == round(100 * wh[0] * wh[1] / 90000, 2)


def test_types_counts_severity_and_causes(scene_dets):
    f = facts_from_detections(scene_dets, 300, 300)
    assert [b.id for b in f.boxes] == [0, 1, 2]  # ids = detection indices
    assert [(b.defect, b.label) for b in f.boxes] == [("crack", "crack on magnetic tile"), ("hole", "hole in wood"),
                                                      ("crack", "crack on magnetic tile")]
    crack, hole = f.types
    assert (crack.defect, crack.count, crack.box_ids, crack.max_confidence) == ("crack", 2, [0, 2], 0.9)
    # knowledge.yaml: crack medium -> critical, small -> major; worst wins for the type
    assert [f.box(0).severity, f.box(2).severity, crack.severity] == ["critical", "major", "critical"]
    assert crack.in_knowledge_base and crack.causes[0].source == "engineering judgement"
    assert (hole.count, hole.box_ids) == (1, [1])
    assert [p.defect for p in f.vocabulary] == ["crack", "hole"] and f.searched("crack") and not f.searched("spot")
    data = json.loads(f.to_json())
    assert data == f.to_dict() and data["types"][0]["causes"][0]["cause"].startswith("thermal stress")


def test_size_dependent_severity():
    dets = Detections([[0, 0, 10, 10], [0, 0, 50, 50]], [0.9, 0.9], [0, 0], ["scratch"])
    f = facts_from_detections(dets, 300, 300)
    assert [b.severity for b in f.boxes] == ["minor", "major"]


def test_prompt_resolution_and_free_text():
    vocab = Vocabulary.default()
    resolved = vocab.resolve_all(["划痕", "wood knot"])
    dets = Detections([[0, 0, 10, 10], [20, 20, 40, 40]], [0.7, 0.6], [0, 1], ["划痕", "wood knot"])
    f = facts_from_detections(dets, 100, 100, resolved)
    assert [b.defect for b in f.boxes] == ["scratch", "wood knot"]
    knot = f.type_of("wood knot")
    assert knot is not None and not knot.in_knowledge_base and "unknown defect type" in knot.causes[0].cause
    with pytest.raises(ConfigError, match="prompts_resolved"):
        facts_from_detections(dets, 100, 100, resolved[:1])
    with pytest.raises(ConfigError, match="positive"):
        facts_from_detections(dets, 0, 100)


def test_empty_detections():
    f = facts_from_detections(Detections.empty(["crack"]), 64, 48)
    assert f.boxes == [] and f.types == [] and f.vocabulary[0].defect == "crack"
    with pytest.raises(KeyError, match="no box #0"):
        f.box(0)
