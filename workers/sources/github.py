"""GitHub (and GitHub Enterprise): ``BASE/OWNER/REPO[.git][/][/tree/REF]``."""

from __future__ import annotations

from common.errors import BadRepoSource
from workers.sources.base import RepoSpec, Source, check_part, check_ref, check_url_policy


class GitHubSource(Source):
    id = "github"

    def parse(self, url: str) -> RepoSpec | None:
        base = self.config.github_url.rstrip("/")
        if not url.lower().startswith(base.lower() + "/"):
            return None
        check_url_policy(base, self.config)
        rest = url[len(base) + 1:].strip("/")
        owner, _, remainder = rest.partition("/")
        repo, _, tail = remainder.partition("/")
        ref = None
        if tail:
            kind, _, ref_part = tail.partition("/")
            if kind != "tree" or not ref_part:
                raise BadRepoSource(
                    f"{url!r} is not a repository URL.",
                    suggestions=[f"Use {base}/OWNER/REPO or {base}/OWNER/REPO/tree/REF."])
            ref = check_ref(ref_part)
        if repo.endswith(".git"):
            repo = repo[:-4]
        if not owner or not repo:
            raise BadRepoSource(f"{url!r} names no repository.",
                                suggestions=[f"Use {base}/OWNER/REPO."])
        check_part(owner, "owner")
        check_part(repo, "repository name")
        normalised = f"{base}/{owner}/{repo}" + (f"/tree/{ref}" if ref else "")
        return RepoSpec(self.id, normalised, f"{base}/{owner}/{repo}.git", owner, repo, ref)
