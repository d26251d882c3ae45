"""How long the API takes to answer, by endpoint, method and status.

The histogram lives in each API process. Under gunicorn the farm sets
``PROMETHEUS_MULTIPROC_DIR`` before any process starts (``binder-build
api``), so prometheus-client writes every process's observations to files
there and ``/metrics`` sums them, whichever process answers the scrape.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import Histogram

#: prometheus-client's own variable for its multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Upper bounds (seconds) of the latency histogram.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: Registered by ``api.metrics`` (directly, or through the multiprocess collector).
REQUEST_SECONDS = Histogram(
    "binder_api_request_duration_seconds",
    "Time from a request's arrival to its response headers (a followed log stream counts "
    "until its first byte), by endpoint (the route's rule), method (other for any "
    "unusual one) and status.",
    ["endpoint", "method", "status"], buckets=LATENCY_BUCKETS, registry=None)

#: Methods with a series of their own; any other (gunicorn passes on every upper-case
#: token a client makes up) counts as ``other``, so no client adds series at will.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def register_request_metrics(app: Flask) -> None:
    """Time every request ``app`` answers."""

    @app.before_request
    def _started() -> None:
        g.binder_request_started = time.perf_counter()

    @app.after_request
    def _answered(response: Response) -> Response:
        started = g.pop("binder_request_started", None)
        if started is not None:
            # The rule, not the path: one series per route, whatever names users ask for.
            endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
            REQUEST_SECONDS.labels(endpoint, method_label(request.method),
                                   str(response.status_code)).observe(
                time.perf_counter() - started)
        return response
