"""GitHub and GitHub Enterprise: ``BASE/OWNER/REPO[.git][/][/tree/REF]``.

``BINDER_GITHUB_URL`` is the base (``https://github.com`` by default). The
build name is the original Binder's ``owner-repo[-ref]``; owner and
repository compare case-insensitively, as GitHub does.
"""

from __future__ import annotations

from common.errors import BadRepoSource
from common.quoting import quoted
from workers.providers.base import Spec, check_part, check_ref
from workers.providers.git import HostedGitProvider


class GitHubProvider(HostedGitProvider):
    id = "github"
    label = "GitHub"
    base_setting = "github_url"
    usage = "{base}/OWNER/REPO, with a ref as {base}/OWNER/REPO/tree/REF"
    ref_marker = "/tree/"

    def parse(self, text: str, base: str, path: str, hint: str) -> Spec:
        owner, _, remainder = path.partition("/")
        repo, _, tail = remainder.partition("/")
        ref = None
        if tail:
            kind, _, ref_part = tail.partition("/")
            if kind != "tree" or not ref_part:
                raise BadRepoSource(f"{quoted(text)} is not a repository URL.", suggestions=[hint])
            ref = check_ref(ref_part, hint=hint)
        repo = repo.removesuffix(".git")
        if not owner or not repo:
            raise BadRepoSource(f"{quoted(text)} names no repository.", suggestions=[hint])
        check_part(owner, "owner", hint)
        check_part(repo, "repository name", hint)
        return self.hosted_spec(base, f"{owner}/{repo}", ref, (owner, repo))
