"""Any Git repository over https: ``https://HOST/OWNER/.../REPO[.git][@REF]``.

Also the base of the hosted-Git providers (GitHub, GitLab, Gist), which
only understand their own URL forms: resolving is ``git ls-remote`` (no API
rate limits) and fetching is a shallow fetch of exactly the resolved
commit, both through ``workers/git.py``. The content id is the commit SHA.
Git connects only to the addresses the address check resolved
(``common/addresses.py``), and follows no redirect.

A ref of a plain Git URL is given as ``URL@REF`` (pip's form), the one
form that cannot be mistaken for a path on any host.
"""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import urlsplit

from common.errors import BadRepoSource
from common.quoting import quoted
from workers.git import SHA_RE, GitConfig, fetch_commit, header_config, resolve_ref
from workers.providers.base import (
    ContentProvider,
    FetchLimits,
    Resolved,
    Say,
    Spec,
    check_part,
    check_ref,
    check_url_policy,
    checked_target,
    host_of,
    split_base,
)
from workers.submodules import report_submodules

HINT = "Use https://HOST/OWNER/REPO, with a ref as https://HOST/OWNER/REPO@REF."


class GitProvider(ContentProvider):
    id = "git"
    label = "Git"
    #: user name that goes with a token in HTTP Basic auth (GitHub takes any)
    token_user = "x-access-token"
    #: what comes between the repository and the ref in this provider's URLs
    ref_marker = "@"

    def with_ref(self, spec: Spec, ref: str) -> str:
        if spec.ref is not None:
            raise BadRepoSource(f"{quoted(spec.text)} already names a ref ({spec.ref}).",
                                suggestions=["Give the ref either in the URL or on its own, "
                                             "not both."])
        return f"{spec.text.rstrip('/')}{self.ref_marker}{ref}"

    def detect(self, text: str) -> Spec | None:
        check_url_policy(text, self.config)
        parts = urlsplit(text)
        if parts.query or parts.fragment or "@" in parts.netloc:
            raise BadRepoSource(f"{quoted(text)} carries credentials, a query or a fragment.",
                                suggestions=["Give the plain repository URL. " + HINT])
        path, ref = parts.path.strip("/"), None
        last = path.rsplit("/", 1)[-1]
        if "@" in last:
            path, _, ref = path.rpartition("@")
        segments = [segment for segment in path.split("/") if segment]
        if len(segments) < 2:
            raise BadRepoSource(f"{quoted(text)} names no repository.", suggestions=[HINT])
        if "tree" in segments[2:]:
            raise BadRepoSource(
                f"{quoted(text)} looks like a web page of a repository, not a Git URL.",
                suggestions=["Give the ref of a plain Git URL as https://HOST/OWNER/REPO@REF."])
        segments[-1] = segments[-1].removesuffix(".git") or segments[-1]
        for segment in segments:
            check_part(segment, "path segment", HINT)
        ref = check_ref(ref, hint="Give a branch, tag or commit SHA after @.")
        host = host_of(text)
        repository = f"{parts.scheme}://{host}/{'/'.join(segments)}"
        clone_url = f"{parts.scheme}://{host}/{path}"
        return Spec(
            provider=self.id, repository=repository, ref=ref,
            text=clone_url + (f"@{ref}" if ref else ""),
            display_name=f"{host}/{'/'.join(segments)}" + (f"@{ref}" if ref else ""),
            name_parts=(host, *segments, *([ref] if ref else [])),
            locator={"clone_url": clone_url})


    def git_config(self, clone_url: str, limits: FetchLimits) -> GitConfig:
        """The header carrying this host's token (if one is configured), for git only."""
        token = limits.token_for(host_of(clone_url))
        if not token:
            return {}
        credentials = token if ":" in token else f"{self.token_user}:{token}"
        encoded = base64.b64encode(credentials.encode()).decode()
        return header_config(clone_url, f"Authorization: Basic {encoded}")

    def resolve(self, spec: Spec, limits: FetchLimits) -> Resolved:
        clone_url = spec.locator["clone_url"]
        target = checked_target(clone_url, self.config)
        commit = resolve_ref(target, spec.ref, limits.remaining("Resolving the ref"),
                             self.git_config(clone_url, limits), limits.git_memory)
        return Resolved(spec=spec, provider=self.id, content_id=commit, commit=commit,
                        description=f"{spec.ref or 'the default branch'} is commit {commit}",
                        detail={"target": target})

    def resolved_as(self, spec: Spec, content_id: str) -> Resolved | None:
        """A commit SHA is fetched as it is: no ``ls-remote``, the host checked again."""
        if not SHA_RE.match(content_id):
            return None
        target = checked_target(spec.locator["clone_url"], self.config)
        return Resolved(spec=spec, provider=self.id, content_id=content_id, commit=content_id,
                        description=f"{spec.ref or 'the default branch'} is commit "
                                    f"{content_id} (resolved when the build was requested)",
                        detail={"target": target})

    def fetch(self, resolved: Resolved, dest: Path, limits: FetchLimits, say: Say) -> None:
        clone_url = resolved.spec.locator["clone_url"]
        tree = fetch_commit(resolved.detail["target"], resolved.content_id, dest,
                            limits.remaining("The checkout"), limits.max_bytes, say,
                            self.git_config(clone_url, limits), limits.git_memory)
        report_submodules(tree.submodules, say)


class HostedGitProvider(GitProvider):
    """A Git host at a base URL taken from the settings (GitHub, GitLab, Gists).

    ``detect`` claims the URLs under the base; ``parse`` reads the path after
    it, in the host's own way, and ``hosted_spec`` makes the ``Spec`` all of
    them share: repository ``BASE/PATH`` (lower-cased, as the hosts compare
    it), the ref written after ``ref_marker``.
    """

    #: the setting that holds the host's base URL
    base_setting = ""
    #: what a URL of this host looks like, ``{base}`` standing for the base
    usage = ""

    def detect(self, text: str) -> Spec | None:
        base = str(getattr(self.config, self.base_setting)).rstrip("/")
        rest = split_base(text, base)
        if rest is None:
            return None
        check_url_policy(base, self.config)
        return self.parse(text, base, rest.strip("/"), f"Use {self.usage.format(base=base)}.")

    def parse(self, text: str, base: str, path: str, hint: str) -> Spec:
        """The ``Spec`` of ``text``, whose ``path`` follows ``base``; ``BadRepoSource``
        saying ``hint`` when it names no repository of this host."""
        raise NotImplementedError

    def hosted_spec(self, base: str, path: str, ref: str | None, name_parts: tuple[str, ...],
                    clone_path: str | None = None) -> Spec:
        """The ``Spec`` of repository ``path`` at ``ref``, cloned from ``BASE/CLONE_PATH.git``
        (``clone_path`` defaults to ``path``)."""
        at = f"{self.ref_marker}{ref}" if ref else ""
        return Spec(
            provider=self.id, repository=f"{base}/{path}".lower(), ref=ref,
            text=f"{base}/{path}{at}", display_name=f"{path}{at}",
            name_parts=(*name_parts, *([ref] if ref else [])),
            locator={"clone_url": f"{base}/{clone_path or path}.git"})
