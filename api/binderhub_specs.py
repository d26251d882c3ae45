"""BinderHub's provider prefixes and spec forms, mapped onto the farm's content providers.

A BinderHub launcher asks for ``/build/<prefix>/<spec>``; this module turns
that into the repository spec the farm's own API takes (a URL or a DOI),
which ``workers.providers.parse_spec`` understands. The forms are
BinderHub's:

==========  ==========================================  ============================
prefix      spec                                        farm spec
==========  ==========================================  ============================
gh          ``OWNER/REPO/REF``                          ``GITHUB/OWNER/REPO/tree/REF``
gl          ``URL-ESCAPED-NAMESPACE/REF``               ``GITLAB/NAMESPACE/-/tree/REF``
gist        ``USER/ID[/REF]``                           ``GIST/USER/ID@REF``
git         ``URL-ESCAPED-URL/REF``                     ``URL@REF``
zenodo      a Zenodo DOI (``10.5281/zenodo.N``)         ``doi:DOI``
figshare    a Figshare DOI (``10.6084/m9.figshare.N``)  ``doi:DOI``
dataverse   a dataset's DOI (``10.7910/DVN/X``)          ``doi:DOI``
==========  ==========================================  ============================

A ``REF`` of ``HEAD`` means the default branch: the farm spec then has no
ref, so it is the same build as a start without one. ``/api/repoproviders``
serves each prefix's ``display_config`` (BinderHub's launch-form settings).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from common.config import Config
from common.errors import BadRepoSource
from common.quoting import quoted

#: The ref BinderHub uses for "the default branch".
DEFAULT_REF = "HEAD"


def _ref(ref: str) -> str | None:
    return None if ref in ("", DEFAULT_REF) else ref


def _two_parts(spec: str, form: str) -> tuple[str, str]:
    """``ESCAPED/REF`` split at the first ``/``, both unescaped; the ref is required."""
    escaped, _, ref = spec.partition("/")
    if not escaped or not ref:
        raise BadRepoSource(f'Spec is not of the form "{form}", provided: {quoted(spec)}.',
                            suggestions=[f"Give the ref too: {quoted(spec + '/HEAD')} for the "
                                         "default branch."])
    return unquote(escaped), unquote(ref)


def _github(spec: str, config: Config) -> str:
    parts = spec.split("/", 2)  # the ref may contain "/"
    if len(parts) != 3 or not all(parts):
        raise BadRepoSource(f'Spec is not of the form "user/repo/ref", provided: {quoted(spec)}.',
                            suggestions=[f'Did you mean {quoted(spec.rstrip("/") + "/HEAD")}?'])
    owner, repo, ref = (unquote(part) for part in parts)
    tree = f"/tree/{ref}" if _ref(ref) else ""
    return f"{config.github_url.rstrip('/')}/{owner}/{repo}{tree}"


def _gitlab(spec: str, config: Config) -> str:
    namespace, ref = _two_parts(spec, "url-escaped-namespace/ref")
    tree = f"/-/tree/{ref}" if _ref(ref) else ""
    return f"{config.gitlab_url.rstrip('/')}/{namespace.strip('/')}{tree}"


def _gist(spec: str, config: Config) -> str:
    parts = spec.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise BadRepoSource('Spec is not of the form "user/gist-id[/ref]", provided: '
                            f'{quoted(spec)}.',
                            suggestions=["Give the gist as USER/ID, or USER/ID/REVISION."])
    user, gist_id = unquote(parts[0]), unquote(parts[1])
    ref = _ref(unquote(parts[2])) if len(parts) == 3 else None
    return f"{config.gist_url.rstrip('/')}/{user}/{gist_id}" + (f"@{ref}" if ref else "")


def _git(spec: str, config: Config) -> str:
    url, given = _two_parts(spec, "url-escaped-url/ref")
    ref = _ref(given)
    return url + (f"@{ref}" if ref else "")


_DOI = re.compile(r"^10\.\d{4,9}/\S+$")


def _doi(spec: str, config: Config) -> str:
    if not _DOI.match(spec):
        raise BadRepoSource(f"{quoted(spec)} is not a DOI.",
                            suggestions=["Give the DOI as 10.NNNN/SUFFIX."])
    return f"doi:{spec}"


@dataclass(frozen=True)
class Prefix:
    """One of BinderHub's provider prefixes."""

    id: str
    #: the farm spec for a BinderHub spec of this prefix (no network)
    to_farm: Callable[[str, Config], str]
    #: farm providers that may own the result (a DOI of another kind is refused)
    providers: tuple[str, ...]
    display_name: str
    label: str
    placeholder: str
    url_encode: bool
    ref_enabled: bool
    validate_regex: str
    #: the base URL a pasted URL of this provider starts with (launch forms detect it)
    base: Callable[[Config], str] | None = None

    def display_config(self, config: Config) -> dict[str, Any]:
        """BinderHub's ``display_config`` of this prefix, for ``/api/repoproviders``."""
        shown: dict[str, Any] = {
            "displayName": self.display_name,
            "id": self.id,
            "spec": {"validateRegex": self.validate_regex},
            "repo": {"label": self.label, "placeholder": self.placeholder,
                     "urlEncode": self.url_encode},
            "ref": {"enabled": self.ref_enabled,
                    **({"default": DEFAULT_REF} if self.ref_enabled else {})},
        }
        if self.base is not None:
            base = re.escape(self.base(config).rstrip("/") + "/")
            shown["detect"] = {"regex": f"^({base})?(?<repo>.*[^/])/?"}
        return shown


PREFIXES: dict[str, Prefix] = {prefix.id: prefix for prefix in (
    Prefix("gh", _github, ("github",), "GitHub", "GitHub repository name or URL",
           "example: binder-examples/requirements or "
           "https://github.com/binder-examples/requirements",
           url_encode=False, ref_enabled=True, validate_regex=r"[^/]+/[^/]+/.+",
           base=lambda config: config.github_url),
    Prefix("gist", _gist, ("gist",), "GitHub Gist", "Gist ID (username/gistId) or URL",
           "example: https://gist.github.com/USER/GIST-ID or USER/GIST-ID",
           url_encode=False, ref_enabled=True, validate_regex=r"[^/]+/[^/]+(/[^/]+)?",
           base=lambda config: config.gist_url),
    Prefix("gl", _gitlab, ("gitlab",), "GitLab.com", "GitLab.com repository or URL",
           "example: https://gitlab.com/GROUP/PROJECT or GROUP/PROJECT",
           url_encode=True, ref_enabled=True, validate_regex=r"[^/]+/.+",
           base=lambda config: config.gitlab_url),
    Prefix("git", _git, ("git", "github", "gitlab", "gist"), "Git repository",
           "Arbitrary git repository URL", "example: https://example.com/some/repo",
           url_encode=True, ref_enabled=True, validate_regex=r"[^/]+/.+"),
    Prefix("zenodo", _doi, ("zenodo",), "Zenodo DOI", "Zenodo DOI",
           "example: 10.5281/zenodo.3242074",
           url_encode=False, ref_enabled=False, validate_regex=r"10\.\d+/(.)+"),
    Prefix("figshare", _doi, ("figshare",), "Figshare DOI", "Figshare DOI",
           "example: 10.6084/m9.figshare.9782777.v1",
           url_encode=False, ref_enabled=False, validate_regex=r"10\.\d+/(.)+"),
    Prefix("dataverse", _doi, ("dataverse", "doi"), "Dataverse DOI", "Dataverse DOI",
           "example: 10.7910/DVN/TJCLKP",
           url_encode=False, ref_enabled=False, validate_regex=r"10\.\d+/(.)+"),
)}


def farm_spec(prefix: str, spec: str, config: Config) -> str:
    """The farm's repository spec for BinderHub's ``/build/<prefix>/<spec>``.

    Raises ``BadRepoSource`` for an unknown prefix (BinderHub's sentence), a
    spec not of the prefix's form, or one another provider would own.
    """
    from workers.providers import parse_spec

    known = PREFIXES.get(prefix)
    if known is None:
        # BinderHub's sentence names a prefix of letters as it is; other text is quoted.
        shown = prefix if prefix.isalnum() and len(prefix) <= 60 else quoted(prefix, 60)
        raise BadRepoSource(f"No provider found for prefix {shown}",
                            suggestions=[f"Use one of: {', '.join(PREFIXES)}."])
    text = known.to_farm(spec.rstrip("/"), config)
    owner = parse_spec(text, config).provider
    if owner not in known.providers:
        raise BadRepoSource(f"{quoted(spec)} is not a {known.display_name} spec (it is {owner}'s).",
                            suggestions=[f"Use the prefix of {owner}."])
    return text
