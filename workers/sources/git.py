"""Any other Git URL over https (GitLab, Gitea, self-hosted).

A ref may follow as ``/tree/REF`` (GitHub and Gitea style) or ``/-/tree/REF``
(GitLab style), or as ``@REF`` after the path. The owner is the path before
the repository name (nested groups joined with ``-``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from common.errors import BadRepoSource
from workers.sources.base import RepoSpec, Source, check_part, check_ref, check_url_policy


class GitSource(Source):
    id = "git"

    def parse(self, url: str) -> RepoSpec | None:
        check_url_policy(url, self.config)
        parts = urlsplit(url)
        if parts.query or parts.fragment or "@" in parts.netloc:
            raise BadRepoSource(f"{url!r} carries credentials, a query or a fragment.",
                                suggestions=["Give the plain repository URL."])
        path, ref = parts.path.strip("/"), None
        for marker in ("/-/tree/", "/tree/"):
            if marker in f"/{path}":
                path, _, ref = f"/{path}".partition(marker)
                path = path.strip("/")
                break
        else:
            if "@" in path.rsplit("/", 1)[-1]:
                path, _, ref = path.rpartition("@")
        segments = [segment for segment in path.split("/") if segment]
        if len(segments) < 2:
            raise BadRepoSource(f"{url!r} names no repository.",
                                suggestions=["Use https://HOST/OWNER/REPO."])
        repo = segments[-1].removesuffix(".git")
        owner = "-".join(segments[:-1])
        for segment in segments[:-1] + [repo]:
            check_part(segment, "path segment")
        ref = check_ref(ref)
        repo_path = "/".join(segments[:-1] + [repo])
        base = f"{parts.scheme}://{parts.netloc}"
        normalised = f"{base}/{repo_path}" + (f"/tree/{ref}" if ref else "")
        return RepoSpec(self.id, normalised, f"{base}/{'/'.join(segments)}", owner, repo, ref)
