"""A Git smart-HTTP server on loopback: ``git http-backend`` behind a tiny WSGI app.

Repositories are bare repos under ``root``; ``make_repo`` writes one from a
dict of files, with branches and tags, and returns its commit SHAs.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _git(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


class GitServer:
    """Serves every bare repository under ``root`` at ``url/<path>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        #: seconds to stall requests whose path contains the key (slow hosts)
        self.delays: dict[str, float] = {}
        #: path prefix -> URL: requests under the prefix answer 302 to URL + the rest
        self.redirects: dict[str, str] = {}
        #: path prefix -> token: repositories there answer 401 without
        #: ``Authorization: Basic`` carrying that token (private repositories)
        self.tokens: dict[str, str] = {}
        #: the Authorization header of every request, for tests that follow a token
        self.authorizations: list[str] = []
        #: ``METHOD PATH`` of every request served, for tests that count them
        self.served: list[str] = []
        #: bytes of every answer body sent, for tests that measure what a host sends
        self.answered_bytes = 0
        root.mkdir(parents=True, exist_ok=True)
        self._server = make_server("127.0.0.1", 0, self._app, server_class=_ThreadingServer,
                                   handler_class=_QuietHandler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> GitServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        for fragment, seconds in list(self.delays.items()):
            if fragment in environ.get("PATH_INFO", ""):
                time.sleep(seconds)
        path = environ.get("PATH_INFO", "")
        for prefix, location in self.redirects.items():
            if path.startswith(prefix):
                start_response("302 Found", [("Location", location + path[len(prefix):])])
                return [b""]
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        self.authorizations.append(authorization)
        self.served.append(f"{environ['REQUEST_METHOD']} {path}")
        if not self._authorised(path, authorization):
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"'),
                                                ("Content-Type", "text/plain")])
            return [b"authentication required\n"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        cgi_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "safe.directory",
            "GIT_CONFIG_VALUE_0": "*", "GIT_CONFIG_KEY_1": "uploadpack.allowReachableSHA1InWant",
            "GIT_CONFIG_VALUE_1": "true",
            "REQUEST_METHOD": environ["REQUEST_METHOD"],
            "PATH_INFO": environ.get("PATH_INFO", ""),
            "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": str(len(body)),
            # git gzips a large request (hundreds of wants); http-backend inflates it
            "HTTP_CONTENT_ENCODING": environ.get("HTTP_CONTENT_ENCODING", ""),
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": environ.get("HTTP_GIT_PROTOCOL", ""),
        }
        done = subprocess.run(["git", "http-backend"], input=body, env=cgi_env,
                              capture_output=True)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = done.stdout.partition(b"\n\n")
        status = "200 OK"
        headers = []
        for line in head.decode(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = value.strip()
            elif key:
                headers.append((key, value.strip()))
        start_response(status, headers)
        self.answered_bytes += len(payload)
        return [payload]

    def _authorised(self, path: str, authorization: str) -> bool:
        for prefix, token in self.tokens.items():
            if path.lstrip("/").startswith(prefix):
                scheme, _, encoded = authorization.partition(" ")
                try:
                    credentials = base64.b64decode(encoded).decode()
                except ValueError:
                    return False
                return scheme == "Basic" and credentials.partition(":")[2] == token
        return True

    def make_repo(self, path: str, files: Mapping[str, str | bytes],
                  branches: dict[str, dict[str, str | bytes]] | None = None,
                  tags: dict[str, str] | None = None,
                  symlinks: dict[str, str] | None = None,
                  submodules: dict[str, str] | None = None) -> dict[str, str]:
        """Create bare repo ``path`` (``owner/name``); returns {ref: sha}.

        ``files`` is the default branch (main); each of ``branches`` adds its
        files on top of main; ``tags`` names a ref to tag; ``submodules`` maps
        a folder to the URL ``.gitmodules`` gives it (its commit is never served).
        """
        bare = self.root / f"{path}.git"
        with tempfile.TemporaryDirectory() as scratch:
            work = Path(scratch)
            _git(["init", "-q", "-b", "main"], work)
            _write(work, files, symlinks or {})
            _git(["add", "-A"], work)
            _add_submodules(work, submodules or {})  # after add -A, which drops gitlinks
            _git(["commit", "-q", "-m", "initial"], work)
            shas = {"main": _git(["rev-parse", "HEAD"], work)}
            for branch, extra in (branches or {}).items():
                _git(["checkout", "-q", "-b", branch, "main"], work)
                _write(work, extra, {})
                _git(["add", "-A"], work)
                _git(["commit", "-q", "-m", f"branch {branch}"], work)
                shas[branch] = _git(["rev-parse", "HEAD"], work)
            for tag, ref in (tags or {}).items():
                _git(["tag", "-a", tag, "-m", tag, shas[ref]], work)
                shas[tag] = shas[ref]
            bare.parent.mkdir(parents=True, exist_ok=True)
            if bare.exists():
                subprocess.run(["rm", "-rf", str(bare)], check=True)
            _git(["clone", "-q", "--bare", str(work), str(bare)], work.parent)
        return shas

    def push_commit(self, path: str, files: Mapping[str, str | bytes], branch: str = "main") -> str:
        """Add a commit with ``files`` to ``branch`` of an existing repo; return its SHA."""
        bare = self.root / f"{path}.git"
        with tempfile.TemporaryDirectory() as scratch:
            work = Path(scratch) / "w"
            _git(["clone", "-q", "-b", branch, str(bare), str(work)], Path(scratch))
            _write(work, files, {})
            _git(["add", "-A"], work)
            _git(["commit", "-q", "-m", "update"], work)
            _git(["push", "-q", "origin", branch], work)
            return _git(["rev-parse", "HEAD"], work)


def _add_submodules(work: Path, submodules: dict[str, str]) -> None:
    """``.gitmodules`` and a gitlink for each folder, as ``git submodule add`` leaves them."""
    if not submodules:
        return
    (work / ".gitmodules").write_text("".join(
        f'[submodule "{folder}"]\n\tpath = {folder}\n\turl = {url}\n'
        for folder, url in submodules.items()))
    _git(["add", ".gitmodules"], work)
    for folder in submodules:
        _git(["update-index", "--add", "--cacheinfo", f"160000,{'5' * 40},{folder}"], work)


def _write(work: Path, files: Mapping[str, str | bytes], symlinks: dict[str, str]) -> None:
    for name, content in files.items():
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    for name, destination in symlinks.items():
        (work / name).symlink_to(destination)


def serving(root: Path) -> Iterator[GitServer]:
    server = GitServer(root).start()
    try:
        yield server
    finally:
        server.stop()
