"""API-key checks for the protocol's authorized endpoints.

An auth decorator goes right under ``@bp.route`` (above ``@bp.arguments``),
so the key is checked before the body is read; it documents itself in the
OpenAPI document (the ``apiKey`` security requirement and the 403 answer).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, request
from flask_smorest import Blueprint

from common.errors import Unauthorized

F = TypeVar("F", bound=Callable[..., Any])

_SCHEMES = ("bearer ", "token ")

#: How a client presents a key, as the OpenAPI document declares it.
API_KEY_SCHEME = {"type": "apiKey", "in": "header", "name": "Authorization",
                  "description": "The farm's API key: raw, 'Bearer KEY' or 'token KEY'."}
#: The part of an operation's document a key check adds.
_KEY_DOC: dict[str, Any] = {"security": [{"apiKey": []}], "responses": {403: "FORBIDDEN"}}


def documented_key_check(wrapper: Callable[..., Any]) -> Any:
    """``wrapper``, a view wrapped by a key check, with the check in the OpenAPI document
    (the ``apiKey`` requirement and the 403 answer). Every auth decorator returns this."""
    return Blueprint.doc(**_KEY_DOC)(wrapper)


def presented_key() -> str:
    """The key the client sent: raw (Binder clients), ``Bearer KEY`` or ``token KEY``."""
    header = request.headers.get("Authorization", "").strip()
    lowered = header.lower()
    for scheme in _SCHEMES:
        if lowered.startswith(scheme):
            return header[len(scheme):].strip()
    return header


def require_key(view: F) -> F:
    """Abort with ``unauthorized`` (403) unless the request carries the API key."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        expected = current_app.config["BINDER"].api_key
        given = presented_key()
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized("Unauthorized request",
                               suggestions=["Send the farm's API key in the Authorization "
                                            "header (raw, 'Bearer KEY' or 'token KEY')."])
        return view(*args, **kwargs)

    return documented_key_check(wrapper)
