"""The one place that maps errors to HTTP, in the Binder protocol's body shape."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from common.errors import BinderError, MalformedRequest

log = logging.getLogger(__name__)

# HTTP errors Flask raises itself, by the protocol name a client understands.
_HTTP_TYPES = {400: "malformedRequest", 404: "doesNotExist", 405: "malformedRequest",
               413: "malformedRequest", 415: "malformedRequest"}


def error_response(error: BinderError) -> tuple[Response, int]:
    return jsonify(error.to_body()), error.status


def validation_error(exc: ValidationError) -> MalformedRequest:
    """A marshmallow error as ``malformedRequest`` naming each field and reason."""
    messages = exc.normalized_messages()
    parts = []
    if isinstance(messages, dict):
        for field, reasons in sorted(messages.items()):
            reason = "; ".join(reasons) if isinstance(reasons, list) else str(reasons)
            parts.append(f"{field}: {reason}")
    else:
        parts.append(str(messages))
    return MalformedRequest("Request is not valid: " + ", ".join(parts),
                            suggestions=["Fix the named fields and send the request again."])


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(BinderError)
    def _binder(error: BinderError) -> tuple[Response, int]:
        return error_response(error)

    @app.errorhandler(ValidationError)
    def _validation(error: ValidationError) -> tuple[Response, int]:
        return error_response(validation_error(error))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(error: RequestEntityTooLarge) -> tuple[Response, int]:
        return error_response(MalformedRequest(
            "Request body is too large.", suggestions=["Send a small JSON object."]))

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> tuple[Response, int]:
        code = error.code or 500
        body = {"type": _HTTP_TYPES.get(code, "httpError"), "error": error.description or "",
                "suggestions": []}
        status = 422 if code in (400, 413, 415) else code
        return jsonify(body), status

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        body = {"type": "internalError", "error": "The server failed to handle the request.",
                "suggestions": ["Retry; if it persists, operators should check the API log."]}
        return jsonify(body), 500
