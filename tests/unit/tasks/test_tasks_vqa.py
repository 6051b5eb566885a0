import pytest

from rtvp.structures import Detections
from rtvp.tasks.facts import facts_from_detections
from rtvp.tasks.vqa import OfflineAnswerer, cite, detect_intents, plural


@pytest.fixture
def facts(scene_dets):
    return facts_from_detections(scene_dets, 300, 300)


@pytest.mark.parametrize(
    ("question", "intents", "ids", "fragments"),
    [("Is there a crack?", ["presence"], [0, 2], ["Yes: 2 cracks [#0, #2]", "0.90"]),
     ("Is there a spot?", ["presence"], [], ["No spot detected", "not in the detector's vocabulary", "--prompts"]),
     ("Are there any defects?", ["presence"], [0, 1, 2], ["Yes: 3 defects", "2 cracks [#0, #2], 1 hole [#1]"]),
     ("How many holes?", ["count"], [1], ["1 hole [#1]."]),
     ("How many cracks are there at the top?", ["count"], [0], ["1 crack (top) [#0]"]),
     ("How many defects?", ["count"], [0, 1, 2], ["3 defects: 2 cracks [#0, #2], 1 hole [#1]"]),
     ("What kinds of defects are there?", ["types"], [0, 1, 2], ["2 defect types", "crack ×2 [#0, #2]",
                                                                   "hole ×1 [#1]"]),
     ("Where is the hole?", ["where"], [1], ["hole [#1] at the left, near the left edge", "x 0-40"]),
     ("How large is the hole?", ["size"], [1], ["40×40 px", "1.78% of the image", "medium", "round"]),
     ("How severe are the cracks?", ["severity"], [0, 2], ["critical", "#0 medium: critical", "#2 small: major",
                                                            "knowledge base"]),
     ("Why is there a crack?", ["why"], [0, 2], ["Likely causes of crack [#0, #2]", "thermal stress",
                                                 "(source: engineering judgement)"]),
     ("Describe the image.", ["describe"], [0, 1, 2], ["3 defects detected in the 300×300 image", "2 cracks",
                                                       "medium elongated at the top", "Worst severity: critical"]),
     ("What defects are there and why?", ["types", "why"], [0, 1, 2], ["2 defect types", "Likely causes of hole [#1]"]),
     ("How big is the largest crack?", ["size"], [0], ["crack [#0]: 190×10 px"]),
     ("hello", ["describe"], [0, 1, 2], ["3 defects detected"])],
)
def test_offline_intents(facts, question, intents, ids, fragments):
    a = OfflineAnswerer().answer(question, facts)
    assert a.intents == intents and a.box_ids == ids and a.answerer == "offline"
    for fragment in fragments:
        assert fragment in a.text, (fragment, a.text)
    assert a.facts_used


@pytest.mark.parametrize(
    ("question", "intents", "ids", "fragment"),
    [("有裂纹吗？", ["presence"], [0, 2], "2 cracks [#0, #2]"),
     ("裂纹有多少条？", ["count"], [0, 2], "2 cracks [#0, #2]"),
     ("为什么会有孔洞？", ["why"], [1], "Likely causes of hole [#1]"),
     ("孔洞在哪里？", ["where"], [1], "hole [#1] at the left"),
     ("裂纹严重吗？", ["severity"], [0, 2], "critical"),
     ("穴はいくつ？", ["count"], [1], "1 hole [#1]"),
     ("ひび割れはどこ？", ["where"], [0, 2], "crack [#0] at the top"),
     ("亀裂の原因は？", ["why"], [0, 2], "thermal stress"),
     ("左上角有划痕吗？", ["presence"], [], "No scratch detected (top-left)")],
)
def test_chinese_and_japanese_questions(facts, question, intents, ids, fragment):
    a = OfflineAnswerer().answer(question, facts)
    assert (a.intents, a.box_ids) == (intents, ids) and fragment in a.text, a.text


def test_searched_but_absent_and_empty_image():
    dets = Detections([[0, 0, 10, 10]], [0.9], [0], ["crack"])
    f = facts_from_detections(dets[dets.confidence > 1], 100, 100)  # searched for crack, found nothing
    a = OfflineAnswerer().answer("is there a crack?", f)
    assert a.box_ids == [] and "No crack detected (above the detector's confidence threshold)" in a.text
    for q in ("how many cracks?", "where are the defects?", "why?", "how severe?", "describe", "what defects?"):
        a = OfflineAnswerer().answer(q, f)
        assert a.box_ids == [] and ("No" in a.text or a.text.startswith("0 cracks")), (q, a.text)
    a = OfflineAnswerer().answer("what defects are there and why?", f)
    assert a.intents == ["types", "why"] and a.text == "No defects detected."  # one sentence, not one per intent


def test_detect_intents_and_helpers():
    assert detect_intents("Is the scratch severe?") == ["severity"]  # a yes/no opener is not 'presence' here
    assert detect_intents("Does it have defects") == ["presence"]
    assert detect_intents("is there a crack and how big is it?") == ["presence", "size"]
    assert plural("crack", 2) == "2 cracks" and plural("patches", 2) == "2 patches" and plural("patch", 3) == \
        "3 patches" and plural("划痕", 2) == "2 划痕" and plural("hole", 1) == "1 hole"
    assert cite([1, 3]) == "[#1, #3]" and cite([]) == ""
