"""API-key checks for the protocol's authorized endpoints."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, request

from common.errors import Unauthorized

F = TypeVar("F", bound=Callable[..., Any])

_SCHEMES = ("bearer ", "token ")


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

    return wrapper  # type: ignore[return-value]
