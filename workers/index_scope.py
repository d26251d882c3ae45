"""Which paths of the package index's host the index proxy forwards.

The proxy adds the farm's credentials to what it forwards, and builds run
untrusted code, so it must not be a way to read anything else the farm's
login reaches on that host. It forwards only:

* the index itself: the index URL's path and every path under it;
* what the index pointed to: the links of the pages it served (HTML ``href``
  and the ``url`` of a JSON page), resolved against the page as pip
  resolves them, and same-host redirects, when they are on the index's
  origin; with each link, its ``.metadata`` file (PEP 658).

Paths are compared percent-decoded; a path with a ``.`` or ``..`` segment,
an escaped slash or a backslash is refused, since the host could read it
as another path than the one checked. The links are remembered per process
up to a bound, oldest forgotten first.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

#: Links remembered at once: several large index pages' worth, a few MB.
REMEMBERED_LINKS = 100_000
METADATA_SUFFIX = ".metadata"


class _LinkParser(HTMLParser):
    """The ``href`` of each ``<a>`` of a page, resolved against its ``<base>``, if any."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if href is None:
            return
        if tag == "base":
            self.base = urljoin(self.base, href)
        elif tag == "a":
            self.links.append(urljoin(self.base, href))


def _json_urls(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "url" and isinstance(item, str):
                yield item
            else:
                yield from _json_urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_urls(item)


def page_links(page_url: str, content_type: str, text: str) -> list[str]:
    """The absolute URLs an index page at ``page_url`` links to (HTML or JSON)."""
    if "json" in content_type:
        try:
            data = json.loads(text)
        except ValueError:
            return []
        return [urljoin(page_url, url) for url in _json_urls(data)]
    parser = _LinkParser(page_url)
    parser.feed(text)
    parser.close()
    return parser.links


def _plain_path(path: str) -> str | None:
    """``path`` percent-decoded, or ``None`` when the host could read it as another path."""
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered or "\\" in path:
        return None
    decoded = unquote(path)
    if any(segment in (".", "..") for segment in decoded.split("/")):
        return None
    return decoded


class IndexScope:
    """The paths the proxy forwards for the index at ``origin`` + ``index_path``."""

    def __init__(self, origin: str, index_path: str, remembered: int = REMEMBERED_LINKS) -> None:
        self.origin = origin.lower()
        self.prefix = (_plain_path(index_path) or "").rstrip("/")
        self.remembered = remembered
        self._linked: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def allows(self, request_path: str) -> bool:
        """True when ``request_path`` (path and query, as requested) may be forwarded."""
        path = _plain_path(urlsplit(request_path).path)
        if path is None:
            return False
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return True
        with self._lock:
            return path in self._linked

    def learn_page(self, request_path: str, content_type: str, text: str) -> None:
        """Remember the links of the page the index served for ``request_path``."""
        for link in page_links(self.origin + request_path, content_type, text):
            self._remember(link)

    def learn_redirect(self, request_path: str, location: str) -> None:
        """Remember where the index redirected ``request_path`` to."""
        self._remember(urljoin(self.origin + request_path, location))

    def _remember(self, url: str) -> None:
        parts = urlsplit(url)
        if urlunsplit((parts.scheme, parts.netloc, "", "", "")).lower() != self.origin:
            return
        path = _plain_path(parts.path)
        if path is None:
            return
        with self._lock:
            for known in (path, path + METADATA_SUFFIX):
                self._linked[known] = None
                self._linked.move_to_end(known)
            while len(self._linked) > self.remembered:
                self._linked.popitem(last=False)


__all__ = ["IndexScope", "page_links"]
