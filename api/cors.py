"""CORS: which other origins' pages may call the API (``BINDER_CORS_ALLOW_ORIGIN``).

Off by default. With ``*`` any page may; with a comma list, pages of those
origins (the matching one is echoed; every answer then has ``Vary: Origin``).
Preflights (``OPTIONS`` with ``Access-Control-Request-Method``) are answered
for every route, allowing the ``Authorization`` header, so a launcher page can
open the build stream with a key; a granted page may read ``Retry-After`` and
``Link`` too.
"""

from __future__ import annotations

from flask import Flask, Response, request

#: Headers a page may send: the key, JSON bodies, resuming a followed log.
ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID"
PREFLIGHT_MAX_AGE = "600"
#: Headers of answers a page may read besides the simple ones: when to retry (429,
#: 503) and the next page of builds.
EXPOSED_HEADERS = "Retry-After, Link"


def allowed_origin(setting: str, origin: str | None) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for a request from ``origin``, if any."""
    origins = [entry.strip().rstrip("/") for entry in setting.split(",") if entry.strip()]
    if "*" in origins:
        return "*"
    if origin and origin.rstrip("/") in origins:
        return origin
    return None


def register_cors(app: Flask, setting: str) -> None:
    """Answer cross-origin requests and preflights of ``app`` as ``setting`` allows."""
    if not setting.strip():
        return

    any_origin = allowed_origin(setting, None) == "*"

    @app.after_request
    def add_cors_headers(response: Response) -> Response:
        if not any_origin:
            # The grant depends on the Origin, also when there is none: a cache must
            # not hand an allowed origin the answer another one got.
            response.vary.add("Origin")
        allowed = allowed_origin(setting, request.headers.get("Origin"))
        if allowed is None:
            return response
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            methods = response.headers.get("Allow") or "GET, POST, DELETE, OPTIONS"
            response.headers["Access-Control-Allow-Methods"] = methods
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return response
