"""Downstream tasks on top of the detector: structured facts, visual grounding, grounded VQA (offline and LLM).

Layer: imports ``engine``/``models``/``structures``/``vocabulary`` (and the benchmark's attribute rules), never the
training code. The predictor is passed in, so everything here is testable with hand-built ``Detections``.
"""

from rtvp.tasks.facts import BoxFact, ImageFacts, PromptFact, TypeFact, facts_from_detections
from rtvp.tasks.grounding import GroundedBox, GroundingQuery, evaluate_grounding, ground, parse_query, rank
from rtvp.tasks.knowledge import Cause, DefectKnowledge, KnowledgeBase
from rtvp.tasks.llm import LLMAnswerer, LLMError
from rtvp.tasks.vqa import Answer, Answerer, OfflineAnswerer, detect_intents

__all__ = [
    "Answer", "Answerer", "BoxFact", "Cause", "DefectKnowledge", "GroundedBox", "GroundingQuery", "ImageFacts",
    "KnowledgeBase", "LLMAnswerer", "LLMError", "OfflineAnswerer", "PromptFact", "TypeFact", "detect_intents",
    "evaluate_grounding", "facts_from_detections", "ground", "parse_query", "rank",
]
