"""API keys and their scopes, checked before a view reads anything.

Every view takes exactly one of these decorators, right under
``@bp.route`` (above ``@bp.arguments``), so the key is checked before the
body is read; each documents itself in the OpenAPI document (the
``apiKey`` security requirement and the 403 answer):

- ``require_read``, ``require_build``, ``require_admin``: a key of at least
  that scope (``api/keys.py``: admin > build > read);
- ``public_read``: no key while ``BINDER_PUBLIC_READS`` is on (the default),
  else ``require_read``;
- ``no_key``: open to anyone (health, documents, the web page); the view
  may still look at :func:`current_key` (health shows details only to a key).

No key, or one the farm does not know, answers 403 ``unauthorized`` (the
protocol's); a known key of too small a scope 403 ``insufficientScope``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request
from flask_smorest import Blueprint

from api.keys import ApiKey, KeyRing, Scope
from common.errors import InsufficientScope, Unauthorized

F = TypeVar("F", bound=Callable[..., Any])

_SCHEMES = ("bearer ", "token ")

#: How a client presents a key, as the OpenAPI document declares it.
API_KEY_SCHEME = {"type": "apiKey", "in": "header", "name": "Authorization",
                  "description": "An API key of the farm: raw, 'Bearer KEY' or 'token KEY'. "
                                 "Scopes: read < build < admin."}
_KEY_DOC: dict[str, Any] = {"security": [{"apiKey": []}], "responses": {403: "FORBIDDEN"}}
#: A public read: a key is optional (the farm may be set to want one).
_OPTIONAL_KEY_DOC: dict[str, Any] = {"security": [{}, {"apiKey": []}],
                                     "responses": {403: "FORBIDDEN"}}
_NO_KEY_DOC: dict[str, Any] = {"security": []}
#: Where ``create_app`` keeps the key ring.
KEYS_EXTENSION = "binder_keys"


def documented_key_check(wrapper: Callable[..., Any], doc: dict[str, Any] | None = None) -> Any:
    """``wrapper``, a view wrapped by a key check, with the check in the OpenAPI document
    (the ``apiKey`` requirement and the 403 answer). Every auth decorator returns this."""
    return Blueprint.doc(**(doc or _KEY_DOC))(wrapper)


def presented_key() -> str:
    """The key the client sent: raw (Binder clients), ``Bearer KEY`` or ``token KEY``."""
    header = request.headers.get("Authorization", "").strip()
    lowered = header.lower()
    for scheme in _SCHEMES:
        if lowered.startswith(scheme):
            return header[len(scheme):].strip()
    return header


def current_key() -> ApiKey | None:
    """The farm's key this request presents, or ``None`` (looked up once per request)."""
    if "binder_key" not in g:
        ring: KeyRing = current_app.extensions[KEYS_EXTENSION]
        g.binder_key = ring.find(presented_key())
    key: ApiKey | None = g.binder_key
    return key


def check_scope(scope: Scope) -> ApiKey:
    """The request's key, if it has ``scope``; else ``Unauthorized`` or ``InsufficientScope``."""
    key = current_key()
    if key is None:
        raise Unauthorized("Unauthorized request",
                           suggestions=["Send an API key of the farm in the Authorization "
                                        "header (raw, 'Bearer KEY' or 'token KEY')."])
    if not key.allows(scope):
        raise InsufficientScope(
            f"The key {key.name!r} has the scope {key.scope.label}; this request needs "
            f"{scope.label}.",
            suggestions=[f"Use a key of scope {scope.label} or wider (read < build < admin)."])
    return key


def require_scope(scope: Scope) -> Callable[[F], F]:
    """A decorator: the view runs only for a key of at least ``scope``."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            check_scope(scope)
            return view(*args, **kwargs)

        return documented_key_check(wrapper)

    return decorator


require_read = require_scope(Scope.READ)
require_build = require_scope(Scope.BUILD)
require_admin = require_scope(Scope.ADMIN)


def public_read(view: F) -> F:
    """The view runs for anyone while ``BINDER_PUBLIC_READS`` is on, else for a read key."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_app.config["BINDER"].public_reads:
            check_scope(Scope.READ)
        return view(*args, **kwargs)

    return documented_key_check(wrapper, _OPTIONAL_KEY_DOC)


def no_key(view: F) -> F:
    """The view is open to anyone, and says so in the document."""
    return Blueprint.doc(**_NO_KEY_DOC)(view)
