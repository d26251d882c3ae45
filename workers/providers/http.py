"""Bounded HTTP for providers that speak to web APIs (archives, DOI resolvers).

Every request is a GET with redirects followed by hand, at most
``MAX_HOPS``. Each hop's URL passes the address check
(``common/addresses.py``) before anything connects, and the connection
goes to the very addresses that were checked (``PinnedAdapter``: TLS still
verifies the host name), so a second DNS answer cannot lead elsewhere. A
token is sent only to the host it is configured for (looked up again at
every hop, so a redirect never carries it elsewhere). Bodies are bounded
in bytes and the whole exchange by the fetch deadline. Every way a remote
service can answer badly (error status, HTML instead of JSON, a body too
large) becomes a ``ProviderError`` with a sentence.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from common.addresses import CheckedTarget, check_url, resolve_host
from common.config import Config
from common.errors import BadRepoSource, BuildFailure
from workers.providers.base import FetchLimits

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


def check_hop(url: str, config: Config) -> CheckedTarget:
    """``url`` resolved and checked (``common/addresses.py``); a ``ProviderError`` if refused."""
    try:
        return check_url(url, config.allowed_source_hosts, resolve=resolve_host)
    except BadRepoSource as exc:
        raise ProviderError(exc.message, exc.suggestions) from exc


class PinnedAdapter(HTTPAdapter):
    """Connects to a checked address of the target; TLS checks the target's host name."""

    def __init__(self, target: CheckedTarget) -> None:
        self.target = target
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        if self.target.scheme == "https":
            pool_kwargs.update(server_hostname=self.target.host,
                               assert_hostname=self.target.host)
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


def pinned_url(target: CheckedTarget, address: str) -> str:
    """``target.url`` with its host replaced by ``address`` (the port kept)."""
    parts = urlsplit(target.url)
    host = f"[{address}]" if ":" in address else address
    return urlunsplit((parts.scheme, f"{host}:{target.port}", parts.path or "/", parts.query, ""))


class HttpClient:
    """GETs on behalf of one provider, within one ``FetchLimits``."""

    def __init__(self, config: Config, limits: FetchLimits, service: str,
                 auth: AuthHeaders = bearer, verify: str | bool = True) -> None:
        self.config = config
        self.limits = limits
        self.service = service
        self.auth = auth
        #: certificate authorities to trust (a CA bundle path), or True for the default ones
        self.verify = verify

    def _timeout(self) -> tuple[float, float]:
        left = self.limits.remaining(f"Talking to {self.service}")
        return (min(10.0, left), min(60.0, left))

    def _headers(self, target: CheckedTarget, accept: str) -> dict[str, str]:
        netloc = urlsplit(target.url).netloc
        headers = {"User-Agent": USER_AGENT, "Accept": accept, "Host": netloc}
        token = self.limits.token_for(netloc)
        if token:
            headers.update(self.auth(token))
        return headers

    def _send(self, target: CheckedTarget, accept: str) -> requests.Response:
        """One GET of ``target`` at its checked addresses (the first that answers)."""
        addresses = target.addresses or (target.host,)
        session = requests.Session()
        session.trust_env = False  # no proxies or .netrc from the worker's environment
        session.mount(f"{target.scheme}://", PinnedAdapter(target))
        for index, address in enumerate(addresses):
            try:
                return session.get(pinned_url(target, address),
                                   headers=self._headers(target, accept),
                                   timeout=self._timeout(), stream=True, allow_redirects=False,
                                   verify=self.verify)
            except requests.ConnectionError:
                if index == len(addresses) - 1:
                    raise
        raise AssertionError("unreachable: a target has at least one address")

    @contextmanager
    def _get(self, url: str, accept: str, what: str,
             follow: bool = True) -> Iterator[requests.Response]:
        """The final response to a GET of ``url`` (redirects followed and checked)."""
        for _hop in range(MAX_HOPS + 1):
            target = check_hop(url, self.config)
            try:
                response = self._send(target, accept)
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
                    self._check_status(response, target.host, what)
                yield response
            finally:
                response.close()
            return
        raise ProviderError(f"{self.service} redirected {what} more than {MAX_HOPS} times.",
                            suggestions=["Retry later; report it if it persists."])

    def _check_status(self, response: requests.Response, host: str, what: str) -> None:
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
                             f"{host} in BINDER_SOURCE_TOKENS."])
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
