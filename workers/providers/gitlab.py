"""GitLab (gitlab.com or a self-hosted base): ``BASE/GROUP[/SUBGROUP...]/PROJECT[/-/tree/REF]``.

``BINDER_GITLAB_URL`` is the base (``https://gitlab.com`` by default).
Nested groups are part of the path; the build name is
``gitlab-group-...-project[-ref]``. Paths compare case-insensitively, as
GitLab does.
"""

from __future__ import annotations

from common.errors import BadRepoSource
from common.quoting import quoted
from workers.providers.base import Spec, check_part, check_ref
from workers.providers.git import HostedGitProvider


class GitLabProvider(HostedGitProvider):
    id = "gitlab"
    label = "GitLab"
    token_user = "oauth2"
    base_setting = "gitlab_url"
    usage = "{base}/GROUP/PROJECT, with a ref as {base}/GROUP/PROJECT/-/tree/REF"
    ref_marker = "/-/tree/"

    def parse(self, text: str, base: str, path: str, hint: str) -> Spec:
        path, marker, ref_part = path.partition(self.ref_marker)
        if marker and not ref_part:
            raise BadRepoSource(f"{quoted(text)} names no ref after /-/tree/.", suggestions=[hint])
        if "/-/" in f"/{path}/":
            raise BadRepoSource(f"{quoted(text)} is not a project URL.", suggestions=[hint])
        ref = check_ref(ref_part, hint=hint) if marker else None
        segments = [segment for segment in path.split("/") if segment]
        if len(segments) < 2:
            raise BadRepoSource(f"{quoted(text)} names no project.", suggestions=[hint])
        segments[-1] = segments[-1].removesuffix(".git") or segments[-1]
        for segment in segments:
            check_part(segment, "group or project name", hint)
        return self.hosted_spec(base, "/".join(segments), ref, ("gitlab", *segments))
