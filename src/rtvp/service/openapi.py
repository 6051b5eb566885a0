"""What FastAPI's generated OpenAPI document leaves out about uploads, added so schema-generated clients work.

The ``image`` part of every multipart request must carry one of the accepted image content types (the server answers
415 otherwise), which OpenAPI says with the request body's ``encoding``; FastAPI emits none, so generated clients sent
the part as ``application/octet-stream``. The ``prompts`` field's limits (at most ``max_prompts`` prompts of at most
``MAX_PROMPT_CHARS`` characters; 422 otherwise) become a ``pattern``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtvp.vocabulary import MAX_PROMPT_CHARS

MULTIPART = "multipart/form-data"
IMAGE_FIELD = "image"


PROMPTS_FIELD = "prompts"


def prompts_pattern(max_prompts: int, max_chars: int = MAX_PROMPT_CHARS) -> str:
    """Regex of a ``prompts`` value the server accepts: up to ``max_prompts`` pieces of ``max_chars`` between commas."""
    piece = f"[^,，、]{{0,{max_chars}}}"
    return f"^{piece}(?:[,，、]{piece}){{0,{max_prompts - 1}}}$"


def declare_prompt_limits(schema: dict[str, Any], max_prompts: int) -> dict[str, Any]:
    """Set the ``pattern`` of every string ``prompts`` property in the document's schemas; returns ``schema``."""
    for component in schema.get("components", {}).get("schemas", {}).values():
        field = component.get("properties", {}).get(PROMPTS_FIELD)
        if field is not None and field.get("type") == "string":
            field["pattern"] = prompts_pattern(max_prompts)
    return schema


def declare_image_parts(schema: dict[str, Any], content_types: tuple[str, ...]) -> dict[str, Any]:
    """Add ``encoding.image.contentType`` to each multipart body holding an ``image`` part; returns ``schema``.

    Args:
        schema: the OpenAPI document (changed in place).
        content_types: the content types the server accepts for the image part.
    """
    components = schema.get("components", {}).get("schemas", {})
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            media = operation.get("requestBody", {}).get("content", {}).get(MULTIPART)
            if media is None:
                continue
            body = _resolve(media.get("schema", {}), components)
            _flatten(body, components)
            image = body.get("properties", {}).get(IMAGE_FIELD)
            if image is None:
                continue
            image.pop("contentMediaType", None)  # the part's type is the encoding's, one of several
            image["format"] = "binary"
            media.setdefault("encoding", {})[IMAGE_FIELD] = {"contentType": ", ".join(content_types)}
    return schema


def _flatten(body: dict[str, Any], components: dict[str, Any]) -> None:
    """Inline the form model FastAPI puts under ``allOf`` (its fields and ``required``) into the body object.

    Multipart clients and fuzzers handle one flat object of parts; some dropped the ``required`` of an ``allOf``
    member and sent a ``/v1/ground`` request without its ``query``.
    """
    properties: dict[str, Any] = {}
    required: list[str] = []
    for member in body.pop("allOf", []):
        part = _resolve(member, components)
        properties.update(part.get("properties", {}))
        required += part.get("required", [])
    body["properties"] = {**properties, **body.get("properties", {})}
    body["required"] = list(dict.fromkeys([*body.get("required", []), *required]))


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    return components.get(ref.rsplit("/", 1)[-1], {}) if ref.startswith("#/components/schemas/") else schema


def with_limits(openapi: Callable[[], dict[str, Any]], content_types: tuple[str, ...],
                max_prompts: int) -> Callable[[], dict[str, Any]]:
    """Wrap FastAPI's ``app.openapi`` so the (cached) document declares image part types and prompt limits."""
    done: list[dict[str, Any]] = []

    def build() -> dict[str, Any]:
        if not done:
            done.append(declare_prompt_limits(declare_image_parts(openapi(), content_types), max_prompts))
        return done[0]

    return build
