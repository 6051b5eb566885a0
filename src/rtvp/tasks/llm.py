"""LLM answerer for any OpenAI-compatible chat-completions endpoint (DeepSeek, vLLM, Ollama, llama.cpp server, ...).

The model never sees the image: the system prompt carries only the ``ImageFacts`` JSON and requires every statement
to cite box ids as ``[#2]``. Cited ids are parsed back into ``Answer.box_ids`` (ids that do not exist are dropped).
Standard library HTTP (``urllib``), so the runtime needs no extra dependency; proxies come from the environment.

Configuration: arguments, else ``RTVP_LLM_URL``, ``RTVP_LLM_MODEL``, ``RTVP_LLM_API_KEY`` (``LLMAnswerer.from_env``).
The URL may be a base with or without ``/v1`` or the full ``.../chat/completions`` endpoint.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from rtvp.errors import ConfigError, RtvpError
from rtvp.tasks.facts import ImageFacts
from rtvp.tasks.vqa import Answer

ENV_URL, ENV_MODEL, ENV_KEY = "RTVP_LLM_URL", "RTVP_LLM_MODEL", "RTVP_LLM_API_KEY"
SYSTEM_PROMPT = """You are an industrial visual-inspection assistant. You cannot see the image. The ONLY information \
you have is the JSON facts below, produced by a defect detector and a defect knowledge base. Box ids are the "id" \
fields of "boxes". Rules:
1. Use only these facts. Never invent defects, positions, sizes, severities or causes that are not in them.
2. Cite every box a statement rests on by its id in square brackets, e.g. [#2] or [#1] [#3].
3. When you give causes or severity, say they come from the knowledge base and name the source given in the facts.
4. If the facts cannot answer the question (e.g. a defect type that was not in the detector's vocabulary), say so.
5. Answer in the language of the question, concisely.

FACTS:
"""
_CITE = re.compile(r"\[\s*#\s*\d+(?:\s*[,;/]?\s*#?\s*\d+)*\s*\]")


class LLMError(RtvpError):
    """The chat endpoint could not be reached or gave an unusable reply; the message has URL, cause and a hint."""


def chat_url(url: str) -> str:
    """Full chat-completions URL from a base URL.

    Examples:
        >>> chat_url("http://127.0.0.1:8000")
        'http://127.0.0.1:8000/v1/chat/completions'
        >>> chat_url("https://api.deepseek.com/v1/")
        'https://api.deepseek.com/v1/chat/completions'
    """
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://", url):
        raise ConfigError(f"LLM URL '{url}' must start with http:// or https:// (e.g. http://127.0.0.1:11434/v1)")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if re.search(r"/v\d+$", url) else "/v1/chat/completions")


def cited_ids(text: str, valid: list[int] | set[int]) -> list[int]:
    """Box ids cited as ``[#2]`` or ``[#1, #3]`` in order of first citation, keeping only ``valid`` ones."""
    ok = set(valid)
    ids = [int(n) for m in _CITE.finditer(text) for n in re.findall(r"\d+", m.group(0))]
    return [i for i in dict.fromkeys(ids) if i in ok]


@dataclass
class LLMAnswerer:
    """Answer questions with a chat-completions model given only the facts.

    Attributes:
        url: endpoint base URL (``http://host:port``, ``.../v1`` or the full ``.../chat/completions``).
        model: model name as the server knows it (``deepseek-chat``, ``qwen2.5:7b``, ...).
        api_key: bearer token, or None for servers without auth.
        timeout: seconds per request (connect + read).
        retries: extra attempts after a timeout, a connection error, HTTP 429 or a 5xx.
        backoff: first retry delay in seconds (doubles per retry).
        temperature: sampling temperature (0: as deterministic as the server allows).
        max_tokens: reply length limit.
    """

    url: str
    model: str
    api_key: str | None = None
    timeout: float = 60.0
    retries: int = 2
    backoff: float = 1.0
    temperature: float = 0.0
    max_tokens: int = 800

    def __post_init__(self) -> None:
        if not self.url:
            raise ConfigError(f"no LLM URL: pass --llm-url or set {ENV_URL} (e.g. https://api.deepseek.com)")
        if not self.model:
            raise ConfigError(f"no LLM model: pass --llm-model or set {ENV_MODEL} (e.g. deepseek-chat)")
        if self.timeout <= 0 or self.retries < 0:
            raise ConfigError(f"LLM timeout must be > 0 and retries >= 0, got {self.timeout}, {self.retries}")
        self.endpoint = chat_url(self.url)

    @property
    def name(self) -> str:
        """``llm:<model>``."""
        return f"llm:{self.model}"

    @classmethod
    def from_env(cls, url: str | None = None, model: str | None = None, api_key: str | None = None,
                 key_env: str = ENV_KEY, **kw: Any) -> LLMAnswerer:
        """Arguments first, then ``RTVP_LLM_URL`` / ``RTVP_LLM_MODEL`` / the ``key_env`` variable."""
        return cls(url or os.environ.get(ENV_URL, ""), model or os.environ.get(ENV_MODEL, ""),
                   api_key or os.environ.get(key_env) or None, **kw)

    def messages(self, question: str, facts: ImageFacts) -> list[dict[str, str]]:
        """The chat messages sent: system prompt + facts JSON, then the question."""
        return [{"role": "system", "content": SYSTEM_PROMPT + facts.to_json()},
                {"role": "user", "content": question}]

    def answer(self, question: str, facts: ImageFacts) -> Answer:
        """Ask the model; ``box_ids`` are the existing ids the reply cites."""
        payload = {"model": self.model, "messages": self.messages(question, facts),
                   "temperature": self.temperature, "max_tokens": self.max_tokens, "stream": False}
        reply = self._post(payload)
        try:
            text = str(reply["choices"][0]["message"]["content"]).strip()
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"{self.endpoint}: reply has no choices[0].message.content "
                           f"({json.dumps(reply)[:200]}); is this an OpenAI-compatible chat endpoint?") from None
        ids = cited_ids(text, facts.ids)
        return Answer(text, ids, ["facts (all, as JSON)", *(f"boxes[#{i}]" for i in ids)], self.name)

    def _request(self, body: bytes) -> urllib.request.Request:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST with retries (exponential backoff) on timeouts, connection errors, 429 and 5xx."""
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        cause = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                with urllib.request.urlopen(self._request(body), timeout=self.timeout) as resp:
                    raw = resp.read()
            except urllib.error.HTTPError as e:
                detail = e.read()[:300].decode("utf-8", "replace")
                if e.code == 429 or e.code >= 500:
                    cause = f"HTTP {e.code}: {detail}"
                    continue
                raise LLMError(f"{self.endpoint}: HTTP {e.code} {detail}; hint: {_hint(e.code)}") from None
            except OSError as e:  # URLError, timeouts, refused / reset connections
                reason = getattr(e, "reason", e)
                cause = f"{type(reason).__name__}: {reason}"
                continue
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                raise LLMError(f"{self.endpoint}: reply is not JSON ({raw[:200]!r}); is this an OpenAI-compatible "
                               "chat endpoint?") from None
        raise LLMError(f"{self.endpoint}: no answer after {self.retries + 1} attempt(s) (timeout {self.timeout:g} s): "
                       f"{cause}; hint: check that the server is running and the URL (--llm-url / {ENV_URL}) is "
                       "right, or drop --llm-url to use the offline answerer")


def _hint(code: int) -> str:
    if code in (401, 403):
        return f"check the API key (--llm-key-env names the variable holding it; default {ENV_KEY})"
    if code == 404:
        return "check the URL path (base URL with or without /v1) and the model name (--llm-model)"
    return "check the request (model name, server version)"
