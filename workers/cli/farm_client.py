"""The farm's HTTP API as the user commands call it (the Binder protocol's wire format).

``FarmClient`` turns each endpoint into a method returning the decoded JSON,
and every way a request can go wrong (no answer, an error body, a body that
is not the protocol's) into one ``ApiError`` carrying a sentence and
suggestions, so callers never see a ``requests`` exception or a traceback.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

#: Seconds to wait for a connection and for each answer (a followed log waits longer).
TIMEOUT = 30
#: A followed log carries a keep-alive comment every 15 s; silence past this means a dead link.
FOLLOW_READ_TIMEOUT = 60
#: How often a dropped log stream is resumed before giving up.
FOLLOW_RECONNECTS = 5


@dataclass
class ApiError(Exception):
    """A request that did not succeed, as a user should read it."""

    message: str
    suggestions: list[str] = field(default_factory=list)
    type: str = "clientError"
    status: int | None = None
    #: the build an answer names (``alreadyBuilding``: the one running)
    name: str | None = None

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class LogEvent:
    """One event of a followed log: a line (``kind == "line"``) or the end with its status."""

    kind: str
    text: str
    id: int | None = None


def _segment(name: str) -> str:
    return quote(name, safe="")


def not_a_farm_url(url: str) -> ApiError:
    """The error of a farm address the client cannot call, naming it as given."""
    return ApiError(f"{url} is not a URL the client can call.",
                    suggestions=["Give the farm's address as http(s)://HOST:PORT with --url "
                                 "or BINDER_URL."])


class FarmClient:
    """One farm at ``url``; ``key`` goes raw in ``Authorization`` as Binder clients send it."""

    def __init__(self, url: str, key: str | None = None, timeout: float = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.key = key or None
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "binder-build-cli"
        self._closing = threading.Event()

    # -- builds -----------------------------------------------------------

    def start(self, repository: str, force: bool = False,
              ref: str | None = None) -> dict[str, Any]:
        # An empty ref is sent too: the farm refuses it rather than build the default branch.
        body = {"repository": repository, "force": force,
                **({"ref": ref} if ref is not None else {})}
        return self._json("POST", "/builds/repo", json=body)

    def build(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/builds/{_segment(name)}")

    def builds(self, status: str | None = None, repository: str | None = None,
               limit: int | None = None) -> list[dict[str, Any]]:
        params = {key: value for key, value in
                  (("status", status), ("repository", repository), ("limit", limit))
                  if value is not None}
        return self._json("GET", "/builds/", params=params)

    def history(self, name: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/builds/{_segment(name)}/history")

    def cancel(self, name: str) -> dict[str, Any]:
        return self._json("DELETE", f"/builds/{_segment(name)}")

    def log_text(self, name: str, build_id: str | None = None) -> str:
        params = {"build-id": build_id} if build_id else {}
        response = self._request("GET", f"/builds/{_segment(name)}/logs", params=params)
        return response.text

    def follow_log(self, name: str, build_id: str | None = None,
                   after: int = 0) -> Iterator[LogEvent]:
        """Lines of the build's log as they are written, then one ``end`` event.

        A dropped connection (a proxy, the API's hour limit, a restart) or a busy
        API (503) is resumed after the last line received, so no line is lost or
        repeated.
        """
        params: dict[str, Any] = {"follow": 1}
        if build_id:
            params["build-id"] = build_id
        failures = 0
        while not self._closing.is_set():
            headers = {"Last-Event-ID": str(after)} if after else {}
            try:
                response = self._request("GET", f"/builds/{_segment(name)}/logs", params=params,
                                         headers=headers, stream=True,
                                         timeout=(self.timeout, FOLLOW_READ_TIMEOUT))
                with response:
                    for event in parse_sse(response):
                        if event.kind == "line" and event.id is not None:
                            after = event.id
                            failures = 0
                        yield event
                        if event.kind in ("end", "error"):
                            return
            except ApiError as exc:
                # 503: the API process follows all it may, or lost its store for a
                # moment; both pass, as a dropped connection does.
                if exc.status not in (None, 503) or failures >= FOLLOW_RECONNECTS:
                    raise
            except requests.RequestException as exc:
                if failures >= FOLLOW_RECONNECTS:
                    raise self._unreachable(exc) from exc
            failures += 1
            self._closing.wait(min(failures, 5))

    def close(self) -> None:
        """Stop following logs (from another thread) and drop pooled connections."""
        self._closing.set()
        self.session.close()

    # -- templates --------------------------------------------------------

    def templates(self) -> list[dict[str, Any]]:
        return self._json("GET", "/templates/")

    def template(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/templates/{_segment(name)}")

    # -- hosts ------------------------------------------------------------

    def hosts(self) -> list[dict[str, Any]]:
        return self._json("GET", "/hosts/")

    def drain(self, host: str, draining: bool = True) -> dict[str, Any]:
        action = "drain" if draining else "undrain"
        return self._json("POST", f"/hosts/{_segment(host)}/{action}")

    # -- plumbing ---------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(f"The farm at {self.url} answered {path} with something other "
                           "than JSON.",
                           suggestions=["Check that --url (BINDER_URL) points at the farm's "
                                        "API, not at another web server."]) from exc

    def _request(self, method: str, path: str, timeout: Any = None,
                 headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(headers or {})
        if self.key:
            headers["Authorization"] = self.key
        try:
            response = self.session.request(method, f"{self.url}{path}", headers=headers,
                                            timeout=timeout or self.timeout,
                                            allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 300:
            raise self._error(response)
        return response

    def _unreachable(self, exc: requests.RequestException) -> ApiError:
        reason = type(exc).__name__
        if isinstance(exc, requests.ConnectionError):
            reason = "connection refused or host unreachable"
        elif isinstance(exc, requests.Timeout):
            reason = "no answer in time"
        elif isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema
                        | requests.exceptions.InvalidSchema):
            return not_a_farm_url(self.url)
        return ApiError(f"Cannot reach the farm at {self.url} ({reason}).",
                        suggestions=["Check --url (BINDER_URL); is the farm running "
                                     "(binder-build up)?"])

    def _error(self, response: requests.Response) -> ApiError:
        """The protocol's error body (``type``, ``error``, ``suggestions``) as an ``ApiError``."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            suggestions = [str(item) for item in body.get("suggestions") or []]
            kind = str(body.get("type") or "httpError")
            name = body.get("name") if isinstance(body.get("name"), str) else None
            return ApiError(body["error"], suggestions, kind, response.status_code, name)
        return ApiError(f"The farm at {self.url} answered HTTP {response.status_code} "
                        f"{response.reason or ''}".rstrip() + ".",
                        suggestions=["Check that --url (BINDER_URL) points at the farm's API."],
                        type="httpError", status=response.status_code)


def parse_sse(response: requests.Response) -> Iterator[LogEvent]:
    """The API's log events: ``message`` (a line, id = its number), ``end``, ``error``."""
    fields: dict[str, list[str]] = {}
    # Bytes, split on CR/LF only: a decoded str would also split on U+2028 and friends.
    for raw in response.iter_lines(chunk_size=None):
        line = raw.decode("utf-8", "replace")
        if line == "":
            if "data" in fields:
                yield _event(fields)
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            fields.setdefault(key, []).append(value.removeprefix(" "))


def _event(fields: dict[str, list[str]]) -> LogEvent:
    kind = (fields.get("event") or ["message"])[-1]
    text = "\n".join(fields["data"])
    ids = fields.get("id")
    seq = int(ids[-1]) if ids and ids[-1].isdigit() else None
    return LogEvent("line" if kind == "message" else kind, text, seq)
