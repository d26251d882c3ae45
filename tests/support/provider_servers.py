"""Loopback stand-ins for Zenodo, Figshare, Dataverse and a DOI resolver.

Each answers the requests the farm's providers make with the response
shapes the real services document, and nothing more:

- Zenodo: the InvenioRDM records API, ``GET /api/records/N`` (fields
  ``id``, ``conceptrecid``, ``metadata``, ``links.files``, ``files``) and
  ``GET /api/records/N/files`` (``entries`` of ``key``, ``size``,
  ``checksum``, ``links.content``), as the record in Zenodo's REST API
  documentation and the mocks of repo2docker's
  ``tests/unit/contentproviders/test_zenodo.py`` show; a concept id
  redirects to its latest version, as zenodo.org does.
- Figshare: ``GET /v2/articles/N`` and ``/v2/articles/N/versions/V``
  (``id``, ``version``, ``files`` of ``id``, ``name``, ``size``,
  ``is_link_only``, ``download_url``, ``computed_md5``), Figshare's
  documented public article shape, as in repo2docker's
  ``test_figshare.py`` ``test_fetch_zip``; downloads redirect once to
  storage, as ndownloader.figshare.com does.
- Dataverse: ``GET /api/datasets/:persistentId?persistentId=PID``
  (``status``, ``data.latestVersion`` with ``versionNumber``,
  ``versionMinorNumber`` and ``files`` of ``label``, ``directoryLabel``,
  ``restricted``, ``dataFile.{id,filesize,md5}``), the native API's
  answer as in repo2docker's ``test_dataverse.py`` ``test_dataverse_fetch``,
  and ``GET /api/access/datafile/ID``; errors as ``{"status": "ERROR"}``.
- DOI resolver: ``GET /DOI`` answers 302 to the registered landing page,
  or 404, as doi.org does (repo2docker's ``doi_resolver`` mocks).

A ``fault`` per path fragment makes a server misbehave (HTML instead of
JSON, an error status), for the bad-input tests. Every request is logged
with its headers, so tests can check where tokens went.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, quote, unquote, urlsplit

Answer = tuple[int, dict[str, str], bytes]


def json_answer(data: Any, status: int = 200) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode()


def html_answer(text: str, status: int = 200) -> Answer:
    return status, {"Content-Type": "text/html; charset=utf-8"}, \
        f"<!DOCTYPE html><html><body>{text}</body></html>".encode()


def redirect(location: str, status: int = 302) -> Answer:
    return status, {"Location": location}, b""


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324 - the services' own checksum


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class FakeService:
    """A threaded HTTP server on 127.0.0.1 whose answers come from ``answer``."""

    name = "service"

    def __init__(self) -> None:
        self.requests: list[Request] = []
        #: path fragment -> "html" | an HTTP status: how to misbehave there
        self.faults: dict[str, str | int] = {}
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server hook
                parts = urlsplit(self.path)
                request = Request("GET", unquote(parts.path), parse_qs(parts.query),
                                  {k.lower(): v for k, v in self.headers.items()})
                service.requests.append(request)
                status, headers, body = service.dispatch(request)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=f"fake {self.name}")

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def dispatch(self, request: Request) -> Answer:
        for fragment, fault in self.faults.items():
            if fragment in request.path:
                if fault == "html":
                    return html_answer("<h1>We are down for maintenance</h1>")
                return json_answer({"status": int(fault), "message": "fault"}, int(fault))
        return self.answer(request)

    def answer(self, request: Request) -> Answer:
        raise NotImplementedError

    def authorised(self, request: Request, token: str | None, header: str,
                   value: Callable[[str], str]) -> bool:
        return token is None or request.headers.get(header.lower()) == value(token)


# Zenodo


@dataclass
class ZenodoRecord:
    record_id: int
    concept_id: int
    files: dict[str, bytes]
    version: str
    resource_type: str = "software"
    token: str | None = None


class FakeZenodo(FakeService):
    name = "zenodo"

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[int, ZenodoRecord] = {}
        self.latest: dict[int, int] = {}  # concept id -> newest record id

    def publish(self, record_id: int, files: dict[str, bytes], concept_id: int | None = None,
                version: str = "1.0", token: str | None = None) -> ZenodoRecord:
        """Publish a record (a new version of ``concept_id`` when given)."""
        record = ZenodoRecord(record_id, concept_id or record_id + 1_000_000, files, version,
                              token=token)
        self.records[record_id] = record
        self.latest[record.concept_id] = record_id
        return record

    def record_json(self, record: ZenodoRecord) -> dict[str, Any]:
        api = f"{self.url}/api/records/{record.record_id}"
        entries = {key: self.entry_json(record, key) for key in record.files}
        return {
            "id": record.record_id, "recid": str(record.record_id),
            "conceptrecid": str(record.concept_id),
            "doi": f"10.5281/zenodo.{record.record_id}",
            "conceptdoi": f"10.5281/zenodo.{record.concept_id}",
            "metadata": {"title": f"record {record.record_id}", "version": record.version,
                         "resource_type": {"id": record.resource_type}},
            "links": {"self": api, "self_html": f"{self.url}/records/{record.record_id}",
                      "files": f"{api}/files",
                      "latest": f"{self.url}/api/records/{record.record_id}/versions/latest",
                      "latest_html": f"{self.url}/records/{record.record_id}/latest"},
            "revision_id": 3, "is_published": True, "status": "published",
            "files": {"enabled": True, "count": len(entries),
                      "total_bytes": sum(len(data) for data in record.files.values()),
                      "entries": entries},
        }

    def entry_json(self, record: ZenodoRecord, key: str) -> dict[str, Any]:
        data = record.files[key]
        base = f"{self.url}/api/records/{record.record_id}/files/{quote(key)}"
        return {"key": key, "size": len(data), "checksum": f"md5:{md5(data)}",
                "mimetype": "application/octet-stream", "storage_class": "L",
                "links": {"self": base, "content": f"{base}/content"}}

    def answer(self, request: Request) -> Answer:
        parts = request.path.strip("/").split("/")
        if parts[:1] == ["doi"]:  # zenodo.org/doi/10.5281/zenodo.N -> /records/N
            number = int(parts[-1].rsplit(".", 1)[-1])
            return redirect(f"{self.url}/records/{self.latest.get(number, number)}")
        if parts[:1] == ["records"] and len(parts) == 2:
            number = int(parts[1])
            if number in self.latest:
                return redirect(f"{self.url}/records/{self.latest[number]}", 301)
            return html_answer(f"record {number}", 200 if number in self.records else 404)
        if parts[:2] != ["api", "records"] or len(parts) < 3 or not parts[2].isdigit():
            return json_answer({"status": 404, "message": "Not found."}, 404)
        number = int(parts[2])
        if number in self.latest and number not in self.records:  # a concept id
            return redirect(f"{self.url}/api/records/{self.latest[number]}", 301)
        record = self.records.get(number)
        if record is None or not self.authorised(request, record.token, "Authorization",
                                                 lambda t: f"Bearer {t}"):
            return json_answer({"status": 404, "message": "The persistent identifier does "
                                                          "not exist."}, 404)
        rest = parts[3:]
        if not rest:
            return json_answer(self.record_json(record))
        if rest == ["files"]:
            return json_answer({"enabled": True, "order": [],
                                "entries": [self.entry_json(record, key)
                                            for key in record.files]})
        if len(rest) == 3 and rest[0] == "files" and rest[2] == "content" \
                and rest[1] in record.files:
            return 200, {"Content-Type": "application/octet-stream"}, record.files[rest[1]]
        return json_answer({"status": 404, "message": "Not found."}, 404)


# Figshare


@dataclass
class FigshareArticle:
    article_id: int
    versions: list[dict[str, bytes]] = field(default_factory=list)
    link_only: list[str] = field(default_factory=list)


class FakeFigshare(FakeService):
    """Site pages at ``/articles/...``, the API at ``/v2``, downloads at ``/ndownloader``."""

    name = "figshare"

    def __init__(self) -> None:
        super().__init__()
        self.articles: dict[int, FigshareArticle] = {}
        self.blobs: dict[int, bytes] = {}

    @property
    def api(self) -> str:
        return f"{self.url}/v2"

    def publish(self, article_id: int, files: dict[str, bytes],
                link_only: list[str] | None = None) -> int:
        """Publish ``files`` as the next version of ``article_id``; return the version."""
        article = self.articles.setdefault(article_id, FigshareArticle(article_id))
        article.versions.append(files)
        article.link_only = link_only or []
        return len(article.versions)

    def article_json(self, article: FigshareArticle, version: int) -> dict[str, Any]:
        files = []
        for index, (name, data) in enumerate(article.versions[version - 1].items()):
            file_id = article.article_id * 1000 + version * 100 + index
            self.blobs[file_id] = data
            files.append({"id": file_id, "name": name, "size": len(data),
                          "is_link_only": False,
                          "download_url": f"{self.url}/ndownloader/files/{file_id}",
                          "supplied_md5": md5(data), "computed_md5": md5(data),
                          "mimetype": "application/octet-stream"})
        for name in article.link_only:
            files.append({"id": 1, "name": name, "size": 0, "is_link_only": True,
                          "download_url": "https://example.org/elsewhere",
                          "supplied_md5": "", "computed_md5": ""})
        page = f"{self.url}/articles/dataset/title/{article.article_id}/{version}"
        return {"id": article.article_id, "title": "title", "version": version,
                "doi": f"10.6084/m9.figshare.{article.article_id}.v{version}",
                "url_public_html": page, "defined_type_name": "dataset", "files": files}

    def answer(self, request: Request) -> Answer:
        parts = request.path.strip("/").split("/")
        if parts[:2] == ["ndownloader", "files"]:
            return redirect(f"{self.url}/storage/{parts[2]}")
        if parts[:1] == ["storage"] and int(parts[1]) in self.blobs:
            return 200, {"Content-Type": "application/octet-stream"}, self.blobs[int(parts[1])]
        if parts[:1] == ["articles"]:
            return html_answer("an article page")
        if parts[:2] == ["v2", "articles"] and len(parts) >= 3 and parts[2].isdigit():
            article = self.articles.get(int(parts[2]))
            if article is not None and len(parts) == 3:
                return json_answer(self.article_json(article, len(article.versions)))
            if article is not None and len(parts) == 5 and parts[3] == "versions" \
                    and parts[4].isdigit() and 1 <= int(parts[4]) <= len(article.versions):
                return json_answer(self.article_json(article, int(parts[4])))
        return json_answer({"message": "Entity not found: article", "code": "EntityNotFound"},
                           404)


# Dataverse


@dataclass
class DataverseFile:
    label: str
    data: bytes
    directory: str | None = None
    restricted: bool = False


class FakeDataverse(FakeService):
    name = "dataverse"

    def __init__(self) -> None:
        super().__init__()
        self.datasets: dict[str, list[list[DataverseFile]]] = {}
        self.blobs: dict[int, DataverseFile] = {}
        self.token: str | None = None

    def publish(self, pid: str, files: list[DataverseFile]) -> int:
        """Publish ``files`` as the next major version of dataset ``pid``."""
        versions = self.datasets.setdefault(pid, [])
        versions.append(files)
        return len(versions)

    def dataset_json(self, pid: str) -> dict[str, Any]:
        versions = self.datasets[pid]
        files = []
        for index, item in enumerate(versions[-1]):
            file_id = 5000 + len(versions) * 100 + index + 1000 * len(self.datasets)
            self.blobs[file_id] = item
            entry: dict[str, Any] = {
                "label": item.label, "restricted": item.restricted, "version": 1,
                "datasetVersionId": len(versions),
                "dataFile": {"id": file_id, "persistentId": "", "filename": item.label,
                             "contentType": "application/octet-stream",
                             "filesize": len(item.data), "md5": md5(item.data),
                             "checksum": {"type": "MD5", "value": md5(item.data)}}}
            if item.directory:
                entry["directoryLabel"] = item.directory
            files.append(entry)
        protocol, _, rest = pid.partition(":")
        authority, _, identifier = rest.partition("/")
        return {"status": "OK", "data": {
            "id": 42, "identifier": identifier, "protocol": protocol, "authority": authority,
            "persistentUrl": f"https://doi.org/{rest}", "publisher": "Fake Dataverse",
            "latestVersion": {"id": len(versions), "datasetPersistentId": pid,
                              "versionNumber": len(versions), "versionMinorNumber": 0,
                              "versionState": "RELEASED", "files": files}}}

    def answer(self, request: Request) -> Answer:
        path = request.path
        if path == "/api/datasets/:persistentId":
            pid = (request.query.get("persistentId") or [""])[0]
            if pid not in self.datasets:
                return json_answer({"status": "ERROR", "message": f"Dataset with Persistent "
                                                                  f"ID {pid} not found."}, 404)
            return json_answer(self.dataset_json(pid))
        if path.startswith("/api/access/datafile/"):
            item = self.blobs.get(int(path.rsplit("/", 1)[1]))
            if item is None:
                return json_answer({"status": "ERROR", "message": "not found"}, 404)
            if item.restricted and not self.authorised(request, self.token, "X-Dataverse-key",
                                                       lambda t: t):
                return json_answer({"status": "ERROR", "message": "restricted"}, 403)
            return 200, {"Content-Type": "application/octet-stream"}, item.data
        if path in ("/dataset.xhtml", "/file.xhtml"):
            return html_answer("a dataset page")
        return html_answer("Page not found", 404)


# DOI resolver


class FakeDoiResolver(FakeService):
    name = "doi"

    def __init__(self) -> None:
        super().__init__()
        self.dois: dict[str, str] = {}

    def register(self, doi: str, landing: str) -> None:
        """Point ``doi`` at ``landing`` (again, to move it to a new version)."""
        self.dois[doi.lower()] = landing

    def answer(self, request: Request) -> Answer:
        landing = self.dois.get(request.path.strip("/").lower())
        if landing is None:
            return html_answer("DOI Not Found", 404)
        return redirect(landing)


@dataclass
class ProviderServers:
    zenodo: FakeZenodo
    figshare: FakeFigshare
    dataverse: FakeDataverse
    doi: FakeDoiResolver

    @classmethod
    def start(cls) -> ProviderServers:
        return cls(FakeZenodo().start(), FakeFigshare().start(), FakeDataverse().start(),
                   FakeDoiResolver().start())

    def stop(self) -> None:
        for server in (self.zenodo, self.figshare, self.dataverse, self.doi):
            server.stop()

    @property
    def hosts(self) -> list[str]:
        return [s.host for s in (self.zenodo, self.figshare, self.dataverse, self.doi)]

    def settings(self) -> dict[str, str]:
        """The farm settings that aim its providers at these servers."""
        return {"BINDER_ZENODO_URL": self.zenodo.url,
                "BINDER_FIGSHARE_URL": self.figshare.url,
                "BINDER_FIGSHARE_API_URL": self.figshare.api,
                "BINDER_DATAVERSE_URLS": self.dataverse.url,
                "BINDER_DOI_RESOLVER_URL": self.doi.url}
