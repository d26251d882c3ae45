"""GitLab (gitlab.com or a self-hosted base): ``BASE/GROUP[/SUBGROUP...]/PROJECT[/-/tree/REF]``.

``BINDER_GITLAB_URL`` is the base (``https://gitlab.com`` by default).
Nested groups are part of the path; the build name is
``gitlab-group-...-project[-ref]``. Paths compare case-insensitively, as
GitLab does.
"""

from __future__ import annotations

from common.errors import BadRepoSource
from workers.providers.base import Spec, check_part, check_ref
from workers.providers.git import GitProvider


class GitLabProvider(GitProvider):
    id = "gitlab"
    label = "GitLab"
    token_user = "oauth2"

    def detect(self, text: str) -> Spec | None:
        base = self.config.gitlab_url.rstrip("/")
        rest = self.path_on(text, base)
        if rest is None:
            return None
        hint = f"Use {base}/GROUP/PROJECT, with a ref as {base}/GROUP/PROJECT/-/tree/REF."
        path, marker, ref_part = rest.strip("/").partition("/-/tree/")
        if marker and not ref_part:
            raise BadRepoSource(f"{text!r} names no ref after /-/tree/.", suggestions=[hint])
        if "/-/" in f"/{path}/":
            raise BadRepoSource(f"{text!r} is not a project URL.", suggestions=[hint])
        ref = check_ref(ref_part, hint=hint) if marker else None
        segments = [segment for segment in path.split("/") if segment]
        if len(segments) < 2:
            raise BadRepoSource(f"{text!r} names no project.", suggestions=[hint])
        segments[-1] = segments[-1].removesuffix(".git") or segments[-1]
        for segment in segments:
            check_part(segment, "group or project name", hint)
        project = "/".join(segments)
        tree = f"/-/tree/{ref}" if ref else ""
        return Spec(
            provider=self.id, repository=f"{base}/{project}".lower(), ref=ref,
            text=f"{base}/{project}{tree}", display_name=f"{project}{tree}",
            name_parts=("gitlab", *segments, *([ref] if ref else [])),
            locator={"clone_url": f"{base}/{project}.git"})
