import math

import numpy as np
import pytest

from rtvp.tasks.query import EDGE_BAND, Constraints, canonical_term, constraint_prior, find_terms, parse_constraints


@pytest.mark.parametrize(
    ("query", "phrase", "fields"),
    [("crack near the left edge", "crack", {"edges": ("left",)}),
     ("the large crack on magnetic tile at the top-left", "crack on magnetic tile",
      {"row": 0, "col": 0, "size": "large"}),
     ("Find the thin scratch on the right side of the image", "scratch", {"col": 2, "shape": "elongated"}),
     ("largest hole", "hole", {"extreme": "largest"}),
     ("spot in the center", "spot", {"row": 1, "col": 1}),
     ("scratch along the bottom border", "scratch", {"edges": ("bottom",)}),
     ("near the top edge", "", {"edges": ("top",)}),
     ("左边缘的裂纹", "裂纹", {"edges": ("left",)}),
     ("右上角的划痕", "划痕", {"row": 0, "col": 2}),
     ("左上の傷", "傷", {"row": 0, "col": 0}),
     ("hole in wood", "hole in wood", {})],
)
def test_parse_constraints(query, phrase, fields):
    c, rest = parse_constraints(query)
    assert rest == phrase
    expected = Constraints(**fields)
    assert c == expected and bool(c) == bool(fields)


def test_prior_location_edge_size_values():
    boxes = np.array([[0, 0, 60, 60],       # centre (30, 30): top-left cell, touching left/top edges
                      [120, 0, 180, 60],    # centre (150, 30): top-middle, one column right of "left"
                      [240, 240, 300, 300]])  # bottom-right
    p = constraint_prior(boxes, 300, 300, Constraints(col=0))
    # box 2: centre u = 0.5, left third ends at 1/3 -> d = 1/6 = SIGMA -> exp(-0.5)
    # box 3: u = 0.9 -> d = 0.9 - 1/3
    assert p[0] == 1.0 and p[1] == pytest.approx(math.exp(-0.5))
    assert p[2] == pytest.approx(math.exp(-0.5 * ((0.9 - 1 / 3) * 6) ** 2))
    p = constraint_prior(boxes, 300, 300, Constraints(edges=("left",)))
    # box 2: gap 120/300 = 0.4 -> d = 0.4 - 0.1 = 0.3 -> exp(-0.5 (0.3*6)^2)
    assert p[0] == 1.0 and p[1] == pytest.approx(math.exp(-0.5 * (0.3 * 6) ** 2))
    edge = np.array([[300 * EDGE_BAND, 0, 40, 10]])
    assert constraint_prior(edge, 300, 300, Constraints(edges=("left",)))[0] == pytest.approx(1.0)
    sizes = np.array([[0, 0, 10, 10], [0, 0, 40, 40], [0, 0, 100, 100]])  # small, medium, large
    assert constraint_prior(sizes, 300, 300, Constraints(size="large")).tolist() == [0.25, 0.5, 1.0]
    assert constraint_prior(sizes, 300, 300, Constraints(extreme="largest")).tolist() == pytest.approx([0.01, 0.16, 1])
    shapes = np.array([[0, 0, 90, 30], [0, 0, 40, 40]])
    assert constraint_prior(shapes, 300, 300, Constraints(shape="elongated")).tolist() == [1.0, 0.5]


def test_terms_in_text():
    assert find_terms("how many holes and pin holes are there?") == ["hole", "pin-hole"]
    assert find_terms("为什么有裂纹和划痕") == ["crack", "scratch"]
    assert find_terms("any blowholes?") == ["blowhole"]  # 'hole' is not matched inside 'blowhole'
    assert find_terms("what defects are there?") == []
    assert canonical_term("crack on magnetic tile") == "crack"
    assert canonical_term("spurious copper on pcb") == "spurious copper"
    assert canonical_term("Scratches") == "scratch"
    assert canonical_term("wood knot") is None
