"""BinderHub's prefixes and spec forms mapped onto the farm's providers (no network)."""

from __future__ import annotations

import re

import pytest

from api.binderhub_specs import PREFIXES, farm_spec
from common.config import load_config
from common.errors import BadRepoSource
from workers.providers import parse_spec

CONFIG = load_config(environ={})


@pytest.mark.parametrize("prefix, spec, text", [
    ("gh", "jupyter/notebook/HEAD", "https://github.com/jupyter/notebook"),
    ("gh", "jupyter/notebook/main", "https://github.com/jupyter/notebook/tree/main"),
    ("gh", "jupyter/notebook/feature/x", "https://github.com/jupyter/notebook/tree/feature/x"),
    ("gh", "jupyter/notebook/feature%2Fx", "https://github.com/jupyter/notebook/tree/feature/x"),
    ("gl", "group%2Fsub%2Fproject/HEAD", "https://gitlab.com/group/sub/project"),
    ("gl", "group%2Fproject/v1.0", "https://gitlab.com/group/project/-/tree/v1.0"),
    ("gist", "someone/0123abcd", "https://gist.github.com/someone/0123abcd"),
    ("gist", "someone/0123abcd/HEAD", "https://gist.github.com/someone/0123abcd"),
    ("gist", "someone/0123abcd/feed", "https://gist.github.com/someone/0123abcd@feed"),
    ("git", "https%3A%2F%2Fexample.org%2Fa%2Fb.git/HEAD", "https://example.org/a/b.git"),
    ("git", "https%3A%2F%2Fexample.org%2Fa%2Fb/v2", "https://example.org/a/b@v2"),
    ("zenodo", "10.5281/zenodo.3242074", "doi:10.5281/zenodo.3242074"),
    ("figshare", "10.6084/m9.figshare.9782777.v1", "doi:10.6084/m9.figshare.9782777.v1"),
    ("dataverse", "10.7910/DVN/TJCLKP", "doi:10.7910/DVN/TJCLKP"),
])
def test_specs_map_onto_the_farms_spec(prefix: str, spec: str, text: str) -> None:
    assert farm_spec(prefix, spec, CONFIG) == text


def test_head_is_the_same_build_as_no_ref() -> None:
    with_head = parse_spec(farm_spec("gh", "Owner/Repo/HEAD", CONFIG), CONFIG)
    bare = parse_spec("https://github.com/Owner/Repo", CONFIG)
    assert with_head == bare and with_head.ref is None


def test_each_prefix_lands_on_its_provider() -> None:
    owners = {prefix: parse_spec(farm_spec(prefix, spec, CONFIG), CONFIG).provider
              for prefix, spec in [("gh", "a/b/HEAD"), ("gl", "a%2Fb/HEAD"),
                                   ("gist", "a/0ff1ce"), ("zenodo", "10.5281/zenodo.1"),
                                   ("figshare", "10.6084/m9.figshare.2")]}
    assert owners == {"gh": "github", "gl": "gitlab", "gist": "gist", "zenodo": "zenodo",
                      "figshare": "figshare"}


@pytest.mark.parametrize("prefix, spec, words", [
    ("hg", "a/b/HEAD", "No provider found for prefix hg"),
    ("gh", "only-owner", 'Did you mean "only-owner/HEAD"?'),
    ("gh", "a//HEAD", "user/repo/ref"),
    ("gl", "group%2Fproject", "url-escaped-namespace/ref"),
    ("git", "https%3A%2F%2Fexample.org%2Fa", "url-escaped-url/ref"),
    ("gist", "a/b/c/d", "user/gist-id"),
    ("zenodo", "not-a-doi", "is not a DOI"),
    # a Figshare DOI under the zenodo prefix belongs to another provider
    ("zenodo", "10.6084/m9.figshare.2", "is not a Zenodo DOI spec"),
    ("git", "ftp%3A%2F%2Fexample.org%2Fa%2Fb/HEAD", "not an allowed repository URL"),
])
def test_bad_specs_say_why(prefix: str, spec: str, words: str) -> None:
    with pytest.raises(BadRepoSource) as caught:
        farm_spec(prefix, spec, CONFIG)
    assert words in " ".join([caught.value.message, *caught.value.suggestions])


def test_a_bad_spec_is_quoted_as_a_json_string() -> None:
    with pytest.raises(BadRepoSource) as caught:
        farm_spec("zenodo", "not-a-doi\\", CONFIG)
    assert caught.value.message == '"not-a-doi\\\\" is not a DOI.'


@pytest.mark.parametrize("prefix, spec", [
    ("gh", "only\x1b[2J" + "x" * 5000), ("gl", "a\x1b]52;c;aGk=\x07" + "x" * 5000),
    ("git", "x" * 5000 + "\x1b[2J"), ("gist", "a/b/c/\x1b[2J" + "x" * 5000),
    ("h\x1b[2J" + "g" * 5000, "a/b/HEAD"),
])
def test_a_spec_not_of_its_form_is_quoted_bounded_and_escaped(prefix: str, spec: str) -> None:
    # The path of a request, as the launcher's page shows the refusal.
    with pytest.raises(BadRepoSource) as caught:
        farm_spec(prefix, spec, CONFIG)
    told = " ".join([caught.value.message, *caught.value.suggestions])
    assert "\x1b" not in told and "\x07" not in told
    assert len(told) < 1000


def test_display_configs_have_binderhubs_shape() -> None:
    for prefix in PREFIXES.values():
        shown = prefix.display_config(CONFIG)
        assert shown["id"] == prefix.id and shown["displayName"]
        assert set(shown["repo"]) == {"label", "placeholder", "urlEncode"}
        assert shown["ref"]["enabled"] is prefix.ref_enabled
        re.compile(shown["spec"]["validateRegex"])
    detect = PREFIXES["gh"].display_config(CONFIG)["detect"]["regex"]
    # JavaScript's named group; the rest is a Python-compatible pattern.
    match = re.match(detect.replace("(?<repo>", "(?P<repo>"), "https://github.com/a/b/")
    assert match is not None and match.group("repo") == "a/b"
