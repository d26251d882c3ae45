"""Bounded HTTP for providers that speak to web APIs (archives, DOI resolvers).

Every request is a GET with redirects followed by hand, at most
``MAX_HOPS``, each hop's URL checked by ``check_hop`` before anything
connects to it; a token is sent only to the host it is configured for
(looked up again at every hop, so a redirect never carries it elsewhere).
Bodies are bounded in bytes and the whole exchange by the fetch deadline.
Every way a remote service can answer badly (error status, HTML instead of
JSON, a body too large) becomes a ``ProviderError`` with a sentence.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from common.config import Config
from common.errors import BadRepoSource, BuildFailure
from workers.providers.base import FetchLimits, check_url_policy, host_of

MAX_HOPS = 5
MAX_JSON_BYTES = 32 * 1024 * 1024
CHUNK = 256 * 1024
USER_AGENT = "binder-build"

#: Headers that carry a token to one host: ``token -> headers``.
AuthHeaders = Callable[[str], dict[str, str]]


class ProviderError(BuildFailure):
    """A provider's service answered in a way the build cannot use."""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def check_hop(url: str, config: Config) -> None:
    """Refuse a URL the farm may not connect to (scheme, host policy)."""
    try:
        check_url_policy(url, config)
    except BadRepoSource as exc:
        raise ProviderError(exc.message, exc.suggestions) from exc
    if "@" in urlsplit(url).netloc:
        raise ProviderError("A provider sent a URL with credentials in it; it was not "
                            "followed.", suggestions=["Report this to the provider."])


class HttpClient:
    """GETs on behalf of one provider, within one ``FetchLimits``."""

    def __init__(self, config: Config, limits: FetchLimits, service: str,
                 auth: AuthHeaders = bearer) -> None:
        self.config = config
        self.limits = limits
        self.service = service
        self.auth = auth
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies or .netrc from the worker's environment

    def _timeout(self) -> tuple[float, float]:
        left = self.limits.remaining(f"Talking to {self.service}")
        return (min(10.0, left), min(60.0, left))

    def _headers(self, url: str, accept: str) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": accept}
        token = self.limits.token_for(host_of(url))
        if token:
            headers.update(self.auth(token))
        return headers

    @contextmanager
    def _get(self, url: str, accept: str, what: str,
             follow: bool = True) -> Iterator[requests.Response]:
        """The final response to a GET of ``url`` (redirects followed and checked)."""
        for _hop in range(MAX_HOPS + 1):
            check_hop(url, self.config)
            try:
                response = self.session.get(url, headers=self._headers(url, accept),
                                            timeout=self._timeout(), stream=True,
                                            allow_redirects=False)
            except requests.RequestException as exc:
                raise ProviderError(
                    f"{self.service} could not be reached for {what} "
                    f"({type(exc).__name__}).",
                    suggestions=["Retry later; the service may be down."]) from exc
            location = response.headers.get("Location")
            if follow and response.is_redirect and location:
                response.close()
                url = urljoin(url, location)
                continue
            try:
                if not (response.is_redirect and location):
                    self._check_status(response, what)
                yield response
            finally:
                response.close()
            return
        raise ProviderError(f"{self.service} redirected {what} more than {MAX_HOPS} times.",
                            suggestions=["Retry later; report it if it persists."])

    def _check_status(self, response: requests.Response, what: str) -> None:
        status = response.status_code
        if status == 200:
            return
        if status in (404, 410):
            raise ProviderError(f"{what} was not found on {self.service} (HTTP {status}).",
                                suggestions=["Check the link; the record may be private, "
                                             "deleted or not published yet."])
        if status in (401, 403):
            raise ProviderError(
                f"{self.service} refused access to {what} (HTTP {status}).",
                suggestions=["Is it private? Operators can give the farm a token for "
                             f"{host_of(response.url)} in BINDER_SOURCE_TOKENS."])
        raise ProviderError(f"{self.service} answered HTTP {status} for {what}.",
                            suggestions=["Retry later; the service may be busy or down."])

    def get_json(self, url: str, what: str) -> Any:
        """The JSON document at ``url``; a ``ProviderError`` for anything else."""
        with self._get(url, "application/json", what) as response:
            body = self._read(response, MAX_JSON_BYTES, what)
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        try:
            return json.loads(body)
        except ValueError as exc:
            said = "a web page" if kind == "text/html" or body.lstrip()[:1] == b"<" \
                else "something that is not JSON"
            raise ProviderError(
                f"{self.service} answered {what} with {said} instead of JSON.",
                suggestions=[f"Check the link and that {self.service} is up "
                             "(operators: check the provider's base URL setting)."]) from exc

    def _read(self, response: requests.Response, limit: int, what: str) -> bytes:
        chunks, size = [], 0
        for chunk in self._chunks(response, what):
            size += len(chunk)
            if size > limit:
                raise ProviderError(f"{self.service} sent more than {limit // 1024 // 1024} "
                                    f"MiB for {what}.",
                                    suggestions=["Retry later; report it if it persists."])
            chunks.append(chunk)
        return b"".join(chunks)

    def _chunks(self, response: requests.Response, what: str) -> Iterator[bytes]:
        try:
            for chunk in response.iter_content(CHUNK):
                self.limits.remaining(f"Downloading {what}")
                yield chunk
        except requests.RequestException as exc:
            raise ProviderError(f"The download of {what} from {self.service} broke off.",
                                suggestions=["Retry the build."]) from exc

    def download(self, url: str, target: Path, what: str, budget: int) -> int:
        """Stream ``url`` into ``target``, at most ``budget`` bytes; return the size."""
        size = 0
        with self._get(url, "*/*", what) as response, open(target, "xb") as out:
            for chunk in self._chunks(response, what):
                size += len(chunk)
                if size > budget:
                    raise ProviderError(
                        f"The content is over this farm's limit of "
                        f"{self.limits.max_bytes // 1024 // 1024} MiB (at {what}).",
                        suggestions=["Keep large data out of the record (operators: "
                                     "BINDER_MAX_REPO_MB)."])
                out.write(chunk)
        return size

    def redirect_of(self, url: str, what: str) -> str | None:
        """Where ``url`` redirects to (one hop, checked before connecting), if anywhere."""
        with self._get(url, "*/*", what, follow=False) as response:
            location = response.headers.get("Location")
        return urljoin(url, location) if location else None
