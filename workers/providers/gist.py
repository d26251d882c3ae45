"""GitHub Gists: ``BASE/USER/ID[@REF]``.

``BINDER_GIST_URL`` is the base (``https://gist.github.com`` by default).
A gist is cloned from ``BASE/ID.git`` (the clone URL GitHub shows); the
user is part of the name, ``gist-user-id[-ref]``. A ref (a revision SHA)
is given as for any plain Git URL: ``URL@REF``.
"""

from __future__ import annotations

import re

from common.errors import BadRepoSource
from workers.providers.base import Spec, check_part, check_ref
from workers.providers.git import GitProvider

_GIST_ID = re.compile(r"^[0-9a-fA-F]{1,64}$")


class GistProvider(GitProvider):
    id = "gist"
    label = "Gist"

    def detect(self, text: str) -> Spec | None:
        base = self.config.gist_url.rstrip("/")
        rest = self.path_on(text, base)
        if rest is None:
            return None
        hint = f"Use {base}/USER/ID, with a revision as {base}/USER/ID@REF."
        path, _, ref_part = rest.strip("/").partition("@")
        user, _, gist_id = path.partition("/")
        gist_id = gist_id.removesuffix(".git")
        if not _GIST_ID.match(gist_id):
            raise BadRepoSource(f"{text!r} names no gist.", suggestions=[hint])
        check_part(user, "user name", hint)
        ref = check_ref(ref_part, hint=hint)
        at = f"@{ref}" if ref else ""
        return Spec(
            provider=self.id, repository=f"{base}/{user}/{gist_id}".lower(), ref=ref,
            text=f"{base}/{user}/{gist_id}{at}", display_name=f"{user}/{gist_id}{at}",
            name_parts=("gist", user, gist_id, *([ref] if ref else [])),
            locator={"clone_url": f"{base}/{gist_id}.git"})
