"""``ServeSettings``: what the inspection service accepts and how it runs (no FastAPI import here).

Defaults are safe for a machine beside the line: bind to loopback, 20 MiB uploads, 50 Mpx images, PNG / JPEG /
BMP / TIFF / WebP only, one inference at a time per model with at most 64 requests waiting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from ipaddress import ip_address

from rtvp.errors import ConfigError

DEFAULT_CONTENT_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/tiff", "image/webp")
FORM_OVERHEAD_BYTES = 64 * 1024
"""Request bodies may exceed ``max_upload_bytes`` by this much (multipart boundaries and the text fields)."""


@dataclass(frozen=True)
class ServeSettings:
    """Service limits and runtime settings.

    Attributes:
        host: bind address; loopback by default (anything else should come with an API key).
        port: TCP port.
        api_key: when set, every ``/v1`` call needs ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.
        max_upload_bytes: largest accepted image file; larger request bodies get 413 before they are read.
        max_pixels: largest accepted ``width * height`` (checked from the image header before decoding); 413.
        content_types: accepted ``Content-Type`` of the ``image`` part; others get 415.
        max_prompts: most prompts per request (each prompt is at most 200 characters, see ``rtvp.vocabulary``).
        workers: threads that decode images and run inference; the predictor itself is serialized by a lock.
        max_queue: requests allowed to wait for a worker; beyond that the service answers 503 ``busy``.
        model_name: name reported by ``/v1/model`` (default: the weights file stem).
        body_timeout_s: longest wait for the next piece of a request body; a client that stops sending gets 408
            and the connection is closed (without it a stalled upload held its connection indefinitely).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = field(default=None, repr=False)
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    content_types: tuple[str, ...] = DEFAULT_CONTENT_TYPES
    max_prompts: int = 64
    workers: int = 2
    max_queue: int = 64
    model_name: str = "rtvp"
    body_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"serve port {self.port} is out of range; use 1..65535 (e.g. --port 8000)")
        for name in ("max_upload_bytes", "max_pixels", "max_prompts", "workers", "max_queue"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"serve setting {name} must be >= 1, got {getattr(self, name)}")
        if not self.body_timeout_s > 0:
            raise ConfigError(f"serve setting body_timeout_s must be > 0 seconds, got {self.body_timeout_s} "
                              "(e.g. --body-timeout 30)")
        if not self.content_types:
            raise ConfigError("serve setting content_types is empty; accept at least one, e.g. image/png")
        object.__setattr__(self, "content_types", tuple(t.strip().lower() for t in self.content_types))
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("the API key is empty; set a non-empty key or run without --api-key-env")

    @property
    def max_body_bytes(self) -> int:
        """Largest request body read: the upload limit plus the multipart overhead."""
        return self.max_upload_bytes + FORM_OVERHEAD_BYTES

    @property
    def loopback(self) -> bool:
        """Whether ``host`` only accepts local connections."""
        if self.host == "localhost":
            return True
        try:
            return ip_address(self.host).is_loopback
        except ValueError:
            return False


def api_key_from_env(var: str | None) -> str | None:
    """The API key held by environment variable ``var`` (None when ``var`` is None).

    Raises:
        ConfigError: ``var`` is given but unset or empty (the service would otherwise run without the key
            its operator asked for).
    """
    if var is None:
        return None
    key = os.environ.get(var, "")
    if not key.strip():
        raise ConfigError(f"--api-key-env {var}: environment variable {var} is unset or empty; "
                          f"export {var}=<secret> or drop --api-key-env")
    return key
