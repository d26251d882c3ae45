"""Marshmallow's nested error messages as sentences: ``field.sub: reason``.

Field names may be a user's own keys (an unknown key in a request or a
repository's file), so each is quoted bounded and printable.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError


def field_problems(error: ValidationError) -> list[str]:
    """One ``path: reason`` line per problem, in field order."""
    return _flatten(error.normalized_messages(), "")


def _flatten(messages: Any, prefix: str) -> list[str]:
    if isinstance(messages, dict):
        return [line for key, value in sorted(messages.items(), key=lambda item: str(item[0]))
                for line in _flatten(value, prefix if key == "_schema" else
                                     f"{prefix}{_field_name(key)}.")]
    if isinstance(messages, list):
        return [line for item in messages for line in _flatten(item, prefix)]
    where = prefix.rstrip(".")
    reason = str(messages)
    return [f"{where}: {reason}" if where else reason]


def _field_name(key: object, limit: int = 40) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(key)[: limit + 1])
    return text if len(text) <= limit else text[: limit - 1] + "…"
