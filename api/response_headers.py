"""Headers every answer of the API carries, whatever route or error made it."""

from __future__ import annotations

from flask import Flask, Response

#: Browsers take each answer for its declared type: a build log (text/plain, the
#: repository's own words) never runs as a page on the origin that holds the key.
COMMON_HEADERS = {"X-Content-Type-Options": "nosniff"}


def register_response_headers(app: Flask) -> None:
    """Add ``COMMON_HEADERS`` to every answer of ``app``."""

    @app.after_request
    def _common_headers(response: Response) -> Response:
        for name, value in COMMON_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
