import pytest

from rtvp.errors import ConfigError
from rtvp.tasks.knowledge import SEVERITY_LEVELS, KnowledgeBase, severity_rank
from rtvp.vocabulary import Vocabulary


def test_every_vocabulary_term_has_knowledge_and_every_cause_a_source():
    kb, vocab = KnowledgeBase.default(), Vocabulary.default()
    assert set(kb.entries) == set(vocab.terms), "knowledge.yaml keys must be the vocabulary's canonical terms"
    for entry in [*kb.entries.values(), kb.fallback]:
        assert entry.causes and all(c.cause.strip() and c.source.strip() for c in entry.causes)
        assert set(entry.severity.values()) <= set(SEVERITY_LEVELS)


def test_lookup_severity_and_fallback():
    kb = KnowledgeBase.default()
    assert kb.severity("scratch", "small") == "minor" and kb.severity("scratch", "large") == "major"
    assert kb.lookup("crack").known and not kb.lookup("wood knot").known and not kb.lookup(None).known
    assert kb.severity("wood knot", "medium") == kb.fallback.severity["medium"]
    assert severity_rank("minor") < severity_rank("major") < severity_rank("critical")
    with pytest.raises(ConfigError, match="size class"):
        kb.severity("crack", "huge")


@pytest.mark.parametrize(
    ("text", "match"),
    [("version: 1\ndefects: {}\n", "default"),
     ("version: 1\nextra: 1\ndefects: {}\ndefault: {}\n", "unknown top-level"),
     ("defects:\n  crack: {severity: {small: minor, medium: minor, large: fatal}, causes: [{cause: a, source: b}]}\n"
      "default: {severity: {small: minor, medium: minor, large: minor}, causes: [{cause: a, source: b}]}\n",
      "crack.*fatal"),
     ("defects:\n  crack: {severity: {small: minor, medium: minor, large: minor}, causes: [{cause: a}]}\n"
      "default: {severity: {small: minor, medium: minor, large: minor}, causes: [{cause: a, source: b}]}\n",
      "crack.*source"),
     ("defects:\n  crack: {severity: {small: minor}, causes: [{cause: a, source: b}]}\n"
      "default: {severity: {small: minor, medium: minor, large: minor}, causes: [{cause: a, source: b}]}\n",
      "crack.*severity"),
     ("defects: {}\ndefault: {severity: {small: minor, medium: minor, large: minor}, causes: [], note: x}\n",
      "unknown key")],
)
def test_malformed_knowledge_is_a_clear_error(tmp_path, text, match):
    path = tmp_path / "kb.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as e:
        KnowledgeBase.from_yaml(path)
    assert str(path) in str(e.value)
