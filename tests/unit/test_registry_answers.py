"""What the registry's answers about a tag mean: there, not there, or not known.

A stub registry on loopback answers each manifest request with the status a
test sets; only a 404 means the tag is not there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from common.config import load_config
from workers.registry import delete_tag, manifest_digest, manifest_exists

DIGEST = "sha256:" + "d" * 64


class _Registry(BaseHTTPRequestHandler):
    status = 200
    deletes: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_response(self.status)
        if self.status == 200:
            self.send_header("Docker-Content-Digest", DIGEST)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_DELETE(self) -> None:  # noqa: N802
        self.deletes.append(self.path)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def registry() -> Iterator[tuple[type[_Registry], str]]:
    handler = type("Registry", (_Registry,), {"status": 200, "deletes": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _config(address: str) -> Any:
    return load_config(environ={"BINDER_REGISTRY": address, "BINDER_REGISTRY_INSECURE": "true"})


def test_a_tag_there_has_its_digest(registry: tuple[type[_Registry], str]) -> None:
    _, address = registry
    image = f"{address}/binder-o-r:abc"
    assert manifest_digest(_config(address), image) == DIGEST
    assert manifest_exists(_config(address), image)


def test_only_a_404_means_no_such_tag(registry: tuple[type[_Registry], str]) -> None:
    handler, address = registry
    handler.status = 404
    assert manifest_digest(_config(address), f"{address}/binder-o-r:abc") is None


@pytest.mark.parametrize("status", [500, 503, 401, 403])
def test_a_registry_that_refuses_says_nothing_of_the_tag(
        registry: tuple[type[_Registry], str], status: int) -> None:
    """A failing registry, or a login it refuses, is no answer: taken for "no such tag",
    a withdrawal would report a tag gone that is there, and retention would delete a
    manifest a kept tag shares."""
    handler, address = registry
    handler.status = status
    image = f"{address}/binder-o-r:abc"
    with pytest.raises(requests.HTTPError, match=f"HTTP {status}"):
        manifest_digest(_config(address), image)
    with pytest.raises(requests.HTTPError):
        delete_tag(_config(address), image)
    assert handler.deletes == []


def test_retention_deletes_nothing_when_the_registry_cannot_say_what_to_keep(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without every kept tag's digest a deletion could take a manifest one of them
    shares: the pass deletes nothing and sets no mark, so the next one looks again."""
    from workers import retention

    kept, old = "127.0.0.1:5000/binder-o-r:new", "127.0.0.1:5000/binder-o-r:old"
    marks: list[Any] = []
    deleted: list[str] = []

    def refused(config: Any, image: str, timeout: float = 5) -> str:
        raise requests.HTTPError("HTTP 503 unavailable")

    monkeypatch.setattr(retention, "_mark", lambda config, kind: None)
    monkeypatch.setattr(retention, "_set_mark", lambda *args, **kwargs: marks.append(args))
    monkeypatch.setattr(retention, "_images_of", lambda config, names: ([], {}))
    monkeypatch.setattr(retention, "images_to_prune",
                        lambda records, templates, keep, registry: ([("o-r", old)], [kept]))
    monkeypatch.setattr(retention, "manifest_digest", refused)
    monkeypatch.setattr(retention, "delete_tag",
                        lambda config, image, keep=frozenset(): deleted.append(image))
    assert retention.prune_images(load_config(environ={})) == []
    assert deleted == [] and marks == []
