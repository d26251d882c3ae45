"""GitHub and GitHub Enterprise: ``BASE/OWNER/REPO[.git][/][/tree/REF]``.

``BINDER_GITHUB_URL`` is the base (``https://github.com`` by default). The
build name is the original Binder's ``owner-repo[-ref]``; owner and
repository compare case-insensitively, as GitHub does.
"""

from __future__ import annotations

from common.errors import BadRepoSource
from workers.providers.base import Spec, check_part, check_ref
from workers.providers.git import GitProvider


class GitHubProvider(GitProvider):
    id = "github"
    label = "GitHub"

    def detect(self, text: str) -> Spec | None:
        base = self.config.github_url.rstrip("/")
        rest = self.path_on(text, base)
        if rest is None:
            return None
        hint = f"Use {base}/OWNER/REPO, with a ref as {base}/OWNER/REPO/tree/REF."
        owner, _, remainder = rest.strip("/").partition("/")
        repo, _, tail = remainder.partition("/")
        ref = None
        if tail:
            kind, _, ref_part = tail.partition("/")
            if kind != "tree" or not ref_part:
                raise BadRepoSource(f"{text!r} is not a repository URL.", suggestions=[hint])
            ref = check_ref(ref_part, hint=hint)
        repo = repo.removesuffix(".git")
        if not owner or not repo:
            raise BadRepoSource(f"{text!r} names no repository.", suggestions=[hint])
        check_part(owner, "owner", hint)
        check_part(repo, "repository name", hint)
        tree = f"/tree/{ref}" if ref else ""
        return Spec(
            provider=self.id, repository=f"{base}/{owner}/{repo}".lower(), ref=ref,
            text=f"{base}/{owner}/{repo}{tree}", display_name=f"{owner}/{repo}{tree}",
            name_parts=(owner, repo, *([ref] if ref else [])),
            locator={"clone_url": f"{base}/{owner}/{repo}.git"})
