"""GitHub Gists: ``BASE/USER/ID[@REF]``.

``BINDER_GIST_URL`` is the base (``https://gist.github.com`` by default).
A gist is cloned from ``BASE/ID.git`` (the clone URL GitHub shows); the
user is part of the name, ``gist-user-id[-ref]``. A ref (a revision SHA)
is given as for any plain Git URL: ``URL@REF``.
"""

from __future__ import annotations

import re

from common.errors import BadRepoSource
from common.quoting import quoted
from workers.providers.base import Spec, check_part, check_ref
from workers.providers.git import HostedGitProvider

_GIST_ID = re.compile(r"^[0-9a-fA-F]{1,64}$")


class GistProvider(HostedGitProvider):
    id = "gist"
    label = "Gist"
    base_setting = "gist_url"
    usage = "{base}/USER/ID, with a revision as {base}/USER/ID@REF"

    def parse(self, text: str, base: str, path: str, hint: str) -> Spec:
        path, _, ref_part = path.partition("@")
        user, _, gist_id = path.partition("/")
        gist_id = gist_id.removesuffix(".git")
        if not _GIST_ID.match(gist_id):
            raise BadRepoSource(f"{quoted(text)} names no gist.", suggestions=[hint])
        check_part(user, "user name", hint)
        ref = check_ref(ref_part, hint=hint)
        return self.hosted_spec(base, f"{user}/{gist_id}", ref, ("gist", user, gist_id),
                                clone_path=gist_id)
