import pytest

from rtvp.errors import ConfigError
from rtvp.vocabulary import Vocabulary, parse_prompts


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary.default()


@pytest.mark.parametrize(
    ("prompt", "canonical"),
    [("划痕", "scratch"), ("scratches", "scratch"), ("Scratch", "scratch"), ("傷", "scratch"), ("裂纹", "crack"),
     ("ひび割れ", "crack"), ("pin hole", "pin-hole"), ("Rolled_in scale", "rolled-in scale"),
     ("钢板上的划痕", "scratch"), ("ピンホール", "pin-hole"), ("气孔", "blowhole")],
)
def test_aliases_resolve(vocab, prompt, canonical):
    r = vocab.resolve(prompt)
    assert r.canonical == canonical and r.text == canonical and r.prompt == prompt


def test_unknown_terms_pass_through(vocab):
    r = vocab.resolve("  hole in wood ")
    assert r.canonical is None and r.text == "hole in wood"


def test_errors(vocab):
    with pytest.raises(ConfigError, match="empty prompt"):
        vocab.resolve("  ")
    with pytest.raises(ConfigError, match="limit"):
        vocab.resolve("x" * 500)
    with pytest.raises(ConfigError, match="empty prompt list"):
        vocab.resolve_all([])


def test_every_alias_maps_to_exactly_one_term(vocab):
    seen = {}
    for canonical, entry in vocab.terms.items():
        for alias in [canonical, *entry.get("synonyms", []), *entry.get("zh", []), *entry.get("ja", [])]:
            seen.setdefault(alias.lower(), set()).add(canonical)
    clashes = {a: t for a, t in seen.items() if len(t) > 1}
    assert not clashes, f"aliases mapped to several terms: {clashes}"


def test_parse_prompts(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("hole  # a comment\n\n裂纹\nscratch\n", encoding="utf-8")
    assert parse_prompts("scratch, hole，划痕", f) == ["scratch", "hole", "划痕", "裂纹"]


def test_bad_yaml(tmp_path):
    f = tmp_path / "v.yaml"
    f.write_text("terms:\n  scratch:\n    german: [Kratzer]\n")
    with pytest.raises(ConfigError, match="german"):
        Vocabulary.from_yaml(f)
