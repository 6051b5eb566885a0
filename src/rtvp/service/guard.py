"""ASGI guard in front of the routes: API key on ``/v1``, a request-body cap and a body read timeout.

An unauthenticated client cannot make the server buffer an upload, and an oversized upload is refused from its
``Content-Length`` (or, for chunked bodies, as soon as the running total passes the cap) with 413. A client that
stops sending its body for ``body_timeout_s`` gets 408 and the connection is closed, instead of holding it forever.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from fastapi import HTTPException

from rtvp.service.errors import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PROTECTED_PREFIX = "/v1/"


def presented_key(headers: dict[str, str]) -> str | None:
    """The key a request carries: ``Authorization: Bearer <key>`` first, then ``X-API-Key``."""
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


def key_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison (``hmac.compare_digest`` on UTF-8 bytes)."""
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


class GuardMiddleware:
    """Reject unauthorized ``/v1`` calls (401), request bodies over ``max_body_bytes`` (413) and stalled ones (408).

    Args:
        app: the wrapped ASGI app.
        api_key: the expected key, or None for an open service.
        max_body_bytes: largest request body accepted.
        body_timeout_s: longest wait for the next body chunk while the body is incomplete.
    """

    def __init__(self, app: ASGIApp, api_key: str | None, max_body_bytes: int, body_timeout_s: float = 30.0) -> None:
        self.app, self.api_key, self.max_body_bytes = app, api_key, max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the key and the declared body size, then pass on with a capped ``receive``."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.api_key is not None and scope.get("path", "").startswith(PROTECTED_PREFIX):
            if not key_matches(presented_key(headers), self.api_key):
                await _reply(send, 401, "unauthorized", "missing or wrong API key: send 'Authorization: Bearer "
                             "<key>' or 'X-API-Key: <key>'", {"www-authenticate": 'Bearer realm="rtvp"'})
                return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await _reply(send, 413, "payload_too_large", self._too_large(int(length)))
            return
        await self.app(scope, self._capped(receive, send), send)

    def _too_large(self, size: int | None) -> str:
        got = f"{size:,} bytes" if size is not None else f"over {self.max_body_bytes:,} bytes"
        return f"request body is {got}; the limit is {self.max_body_bytes:,} bytes (upload a smaller image)"

    def _capped(self, receive: Receive, send: Send) -> Receive:
        """Wrap ``receive``: a body growing past the cap is cut off with 413, one that stalls with 408.

        The timeout applies only until the body is complete; later ``receive`` calls (a response waiting for a
        disconnect) pass through untimed.
        """
        total, complete = 0, False

        async def wrapped() -> Message:
            nonlocal total, complete
            if complete:
                return await receive()
            try:
                with anyio.fail_after(self.body_timeout_s):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(self.body_timeout_s) from None
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > self.max_body_bytes:
                    raise BodyTooLarge(self._too_large(None))
                complete = not message.get("more_body", False)
            else:  # http.disconnect
                complete = True
            return message

        return wrapped


class BodyTooLarge(HTTPException):
    """A streamed request body passed the cap: a 413 ``HTTPException`` so FastAPI's body parsing re-raises it."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=413, detail=message)


class BodyTimeout(HTTPException):
    """The client sent no body bytes for ``seconds``: 408 with ``Connection: close``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(status_code=408, headers={"Connection": "close"},
                         detail=f"request body stalled: nothing received for {seconds:g} s; send the whole body "
                                "promptly (the server closes this connection)")


async def _reply(send: Send, status: int, code: str, message: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps(error_body(code, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
