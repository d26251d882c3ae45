"""The one place that maps errors to HTTP, in the Binder protocol's body shape.

Every answer that is not a success is ``{"type", "error", "suggestions"}``
with the protocol's type names; nothing answers with a traceback. This
covers the farm's own errors, werkzeug's (unknown route, wrong method, body
too large), request arguments the schemas refuse (instead of webargs' 422
body) and flask-smorest's ``abort`` (``docs.Api`` hands its error hook to
``http_error``).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from common.errors import BadQuery, BinderError, MalformedRequest
from common.quoting import quoted
from common.validation import field_problems

log = logging.getLogger(__name__)

# HTTP errors Flask raises itself, by the protocol name a client understands.
_HTTP_TYPES = {400: "malformedRequest", 404: "doesNotExist", 405: "malformedRequest",
               413: "malformedRequest", 415: "malformedRequest"}
#: The ``type`` of any other HTTP error (flask-smorest's ``abort``, say).
HTTP_ERROR = "httpError"
# Request errors are answered 422, as the protocol's malformedRequest is.
_MALFORMED_CODES = {400, 413, 415}
#: Every error answer ends with where to read how to call the API.
_SEE_DOCS = "The API is described at /docs (and /openapi.json)."

#: Where a request argument came from (webargs' location) -> the protocol
#: error it raises and how its message begins.
_ARGUMENT_ERRORS: dict[str, tuple[type[BinderError], str]] = {
    "json": (MalformedRequest, "Request is not valid"),
    "query": (BadQuery, "Query is not valid"),
    "querystring": (BadQuery, "Query is not valid"),
    "headers": (BadQuery, "Request headers are not valid"),
    "path": (MalformedRequest, "Path is not valid"),
    "view_args": (MalformedRequest, "Path is not valid"),
}


def error_types() -> list[str]:
    """Every ``type`` an error answer may carry: each ``BinderError``'s (of the modules
    imported so far) and those of werkzeug's errors."""
    found: set[str] = set()
    kinds: list[type[BinderError]] = [BinderError]
    while kinds:
        kind = kinds.pop()
        found.add(kind.type)
        kinds.extend(kind.__subclasses__())
    return sorted(found | set(_HTTP_TYPES.values()) | {HTTP_ERROR})


def error_response(error: BinderError) -> tuple[Response, int]:
    body = error.to_body()
    if not body["suggestions"]:
        body["suggestions"] = [_SEE_DOCS]
    response = jsonify(body)
    response.headers.update(error.headers())
    return response, error.status


def validation_error(exc: ValidationError, kind: type[BinderError] = MalformedRequest,
                     what: str = "Request is not valid") -> BinderError:
    """A marshmallow error as ``kind`` (``malformedRequest`` by default) naming each field."""
    message = f"{what}: " + "; ".join(field_problems(exc))
    return kind(message if message.endswith(".") else message + ".",
                suggestions=["Fix the named fields and send the request again."])


def argument_error(error: ValidationError) -> BinderError:
    """A request argument the schemas refused, as the protocol error of its location.

    webargs puts the schema's messages under the location (``{"query": {...}}``).
    """
    messages = error.normalized_messages()
    if len(messages) == 1:
        (location, inner), = messages.items()
        if location in _ARGUMENT_ERRORS:
            kind, what = _ARGUMENT_ERRORS[location]
            return validation_error(ValidationError(inner), kind, what)
    return validation_error(error)


#: Longest path quoted back in an error message.
_MAX_QUOTED_PATH = 200


def _http_message_and_suggestions(error: HTTPException) -> tuple[str, list[str]]:
    """What went wrong and what to do, for each kind of werkzeug error."""
    code = error.code or 500
    if isinstance(error, RequestEntityTooLarge):
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return (f"Request body is too large (the limit is {limit} bytes).",
                ['Send a small JSON object such as {"repository": URL}.'])
    # flask-smorest's ``abort(code, message=...)`` keeps its message in ``data``.
    data = getattr(error, "data", None)
    given = data.get("message") if isinstance(data, dict) else None
    if given:
        return str(given), [_SEE_DOCS]
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        methods = ", ".join(sorted(error.valid_methods))
        return (f"{request.method} is not allowed on {_quoted_path()}.",
                [f"This path answers {methods}.", _SEE_DOCS])
    if code == 404:
        return (f"There is no {_quoted_path()} in this API.",
                ["Check the path: GET /openapi.json lists every path of the API.", _SEE_DOCS])
    if code in _MALFORMED_CODES:
        return (error.description or error.name,
                ['Send a JSON object such as {"repository": URL}.', _SEE_DOCS])
    return error.description or error.name, [_SEE_DOCS]


def _quoted_path() -> str:
    return quoted(request.path, _MAX_QUOTED_PATH)


def http_error(error: HTTPException) -> tuple[Response, int]:
    """werkzeug's errors (and flask-smorest's ``abort``) in the protocol's shape."""
    code = error.code or 500
    message, suggestions = _http_message_and_suggestions(error)
    body = {"type": _HTTP_TYPES.get(code, HTTP_ERROR), "error": message,
            "suggestions": suggestions}
    response = jsonify(body)
    if isinstance(error, RequestEntityTooLarge):
        # The unread body is still on the connection: the client must not reuse it.
        response.headers["Connection"] = "close"
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response, 422 if code in _MALFORMED_CODES else code


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(BinderError)
    def _binder(error: BinderError) -> tuple[Response, int]:
        return error_response(error)

    @app.errorhandler(ValidationError)
    def _validation(error: ValidationError) -> tuple[Response, int]:
        return error_response(validation_error(error))

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> tuple[Response, int]:
        return http_error(error)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        body = {"type": "internalError", "error": "The server failed to handle the request.",
                "suggestions": ["Retry; if it persists, operators should check the API log."]}
        return jsonify(body), 500
