import json
import socket
import time

import pytest

from rtvp.errors import ConfigError, RtvpError
from rtvp.tasks.facts import facts_from_detections
from rtvp.tasks.llm import LLMAnswerer, LLMError, chat_url, cited_ids


@pytest.fixture
def facts(scene_dets):
    return facts_from_detections(scene_dets, 300, 300)


def test_chat_url_variants():
    assert chat_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_url("https://h/api/v3") == "https://h/api/v3/chat/completions"
    assert chat_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"
    with pytest.raises(ConfigError, match="http://"):
        chat_url("h:1")


def test_cited_ids():
    assert cited_ids("crack [#3] and hole [#1, #2]; again [#3] and [#7]", [1, 2, 3]) == [3, 1, 2]
    assert cited_ids("no citation, #2 bare, [2] footnote", [1, 2]) == []


@pytest.mark.parametrize("suffix", ["", "/v1"])
def test_answer_against_stub(llm_stub, facts, suffix):
    llm_stub.default = (200, "There is one long crack at the top [#0].", 0.0)
    a = LLMAnswerer(llm_stub.url + suffix, "stub-model", api_key="sk-test", timeout=5, retries=0).answer(
        "is there a crack?", facts)
    assert a.text == "There is one long crack at the top [#0]." and a.box_ids == [0]
    assert a.answerer == "llm:stub-model" and "boxes[#0]" in a.facts_used
    (req,) = llm_stub.requests
    assert req["path"] == "/v1/chat/completions" and req["headers"]["Authorization"] == "Bearer sk-test"
    body = req["json"]
    assert body["model"] == "stub-model" and [m["role"] for m in body["messages"]] == ["system", "user"]
    system = body["messages"][0]["content"]
    assert "[#2]" in system and json.loads(system.split("FACTS:\n", 1)[1]) == facts.to_dict()  # only the facts
    assert body["messages"][1]["content"] == "is there a crack?"


def test_nonexistent_ids_are_ignored(llm_stub, facts):
    llm_stub.default = (200, "Boxes [#2] and [#9] and [#0, #42].", 0.0)
    a = LLMAnswerer(llm_stub.url, "m", timeout=5, retries=0).answer("where?", facts)
    assert a.box_ids == [2, 0]  # ids 0..2 exist


def test_500_then_200_retries(llm_stub, facts):
    llm_stub.script = [(500, {"error": "overloaded"}, 0.0), (503, {"error": "busy"}, 0.0)]
    llm_stub.default = (200, "ok [#1]", 0.0)
    a = LLMAnswerer(llm_stub.url, "m", timeout=5, retries=2, backoff=0.01).answer("q", facts)
    assert a.box_ids == [1] and len(llm_stub.requests) == 3


def test_retries_exhausted_on_5xx(llm_stub, facts):
    llm_stub.default = (500, {"error": "down"}, 0.0)
    with pytest.raises(LLMError, match=r"2 attempt\(s\).*HTTP 500.*hint"):
        LLMAnswerer(llm_stub.url, "m", timeout=5, retries=1, backoff=0.01).answer("q", facts)
    assert len(llm_stub.requests) == 2


def test_client_errors_are_not_retried(llm_stub, facts):
    llm_stub.default = (401, {"error": "bad key"}, 0.0)
    with pytest.raises(LLMError, match="HTTP 401.*API key"):
        LLMAnswerer(llm_stub.url, "m", timeout=5, retries=3, backoff=0.01).answer("q", facts)
    assert len(llm_stub.requests) == 1
    llm_stub.default = (200, {"unexpected": True}, 0.0)
    with pytest.raises(LLMError, match="choices"):
        LLMAnswerer(llm_stub.url, "m", timeout=5, retries=0).answer("q", facts)
    llm_stub.default = (200, b"<html>not json</html>", 0.0)
    with pytest.raises(LLMError, match="not JSON"):
        LLMAnswerer(llm_stub.url, "m", timeout=5, retries=0).answer("q", facts)


def test_unreachable_url_is_a_clear_error(facts, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    with pytest.raises(LLMError) as e:
        LLMAnswerer(url, "m", timeout=2, retries=1, backoff=0.05).answer("q", facts)
    assert time.monotonic() - start < 2
    msg = str(e.value)
    assert f"{url}/v1/chat/completions" in msg and "refused" in msg.lower() and "hint" in msg
    assert isinstance(e.value, RtvpError)


def test_timeout_is_retried_then_reported(llm_stub, facts):
    llm_stub.default = (200, "late [#1]", 1.0)
    start = time.monotonic()
    with pytest.raises(LLMError, match=r"2 attempt\(s\) \(timeout 0.3 s\).*timed out"):
        LLMAnswerer(llm_stub.url, "m", timeout=0.3, retries=1, backoff=0.01).answer("q", facts)
    assert time.monotonic() - start < 1.5 and len(llm_stub.requests) == 2


def test_config_from_env(monkeypatch):
    monkeypatch.setenv("RTVP_LLM_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("RTVP_LLM_MODEL", "deepseek-chat")
    monkeypatch.setenv("MY_KEY", "secret")
    a = LLMAnswerer.from_env(key_env="MY_KEY", timeout=3)
    assert (a.endpoint, a.model, a.api_key, a.timeout) == ("http://127.0.0.1:9/v1/chat/completions",
                                                           "deepseek-chat", "secret", 3)
    assert LLMAnswerer.from_env(model="other").model == "other"
    monkeypatch.delenv("RTVP_LLM_MODEL")
    with pytest.raises(ConfigError, match="--llm-model"):
        LLMAnswerer.from_env()
    with pytest.raises(ConfigError, match="timeout"):
        LLMAnswerer("http://x", "m", timeout=0)
