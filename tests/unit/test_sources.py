"""``workers/sources/``: understanding repository URLs, and the URL policy."""

from __future__ import annotations

import pytest

from common.config import Config, load_config
from common.errors import BadRepoSource
from workers.sources import parse_repository

CONFIG = load_config(environ={})
LOCAL_GITHUB = CONFIG.replace(github_url="http://127.0.0.1:8000/some/prefix",
                              allowed_source_hosts=("127.0.0.1:8000",))


# GitHub


@pytest.mark.parametrize("url", [
    "https://github.com/jupyter/notebook",
    "https://github.com/jupyter/notebook/",
    "https://github.com/jupyter/notebook.git",
    "https://github.com/jupyter/notebook.git/",
    "  https://github.com/jupyter/notebook  ",
])
def test_github_url_variants_name_the_same_repository(url: str) -> None:
    spec = parse_repository(url, CONFIG)
    assert spec.source == "github"
    assert (spec.owner, spec.repo, spec.ref) == ("jupyter", "notebook", None)
    assert spec.repository == "https://github.com/jupyter/notebook"
    assert spec.clone_url == "https://github.com/jupyter/notebook.git"
    assert spec.name == "jupyter-notebook"
    assert spec.display_name == "jupyter/notebook"


def test_github_tree_ref() -> None:
    spec = parse_repository("https://github.com/o/r/tree/v1.2", CONFIG)
    assert spec.ref == "v1.2"
    assert spec.repository == "https://github.com/o/r/tree/v1.2"
    assert spec.clone_url == "https://github.com/o/r.git"
    assert spec.name == "o-r-v1.2"
    assert spec.display_name == "o/r/tree/v1.2"


def test_github_ref_may_contain_slashes() -> None:
    spec = parse_repository("https://github.com/o/r/tree/feature/deep/x/", CONFIG)
    assert spec.ref == "feature/deep/x"
    assert spec.name == "o-r-feature-deep-x"


def test_github_sha_ref() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert parse_repository(f"https://github.com/o/r/tree/{sha}", CONFIG).ref == sha


def test_github_host_matches_case_insensitively() -> None:
    spec = parse_repository("HTTPS://GitHub.com/Owner/Repo", CONFIG)
    assert spec.source == "github"
    assert spec.name == "owner-repo"


@pytest.mark.parametrize("url", [
    "https://github.com/o",
    "https://github.com/o/r/blob/main/README.md",
    "https://github.com/o/r/tree/",
    "https://github.com/o/r?tab=readme",
    "https://github.com/-o/r",
    "https://github.com/o/r/tree/a..b",
    "https://github.com/o/r/tree/-upload-pack=x",
    "https://github.com/o/r/tree/main.",
    "https://github.com/o/r/tree/a//b",
    "https://github.com/o/r/tree/a~1",
    "https://github.com/o/r/tree/HEAD@{1}",
])
def test_malformed_github_urls_are_refused(url: str) -> None:
    with pytest.raises(BadRepoSource):
        parse_repository(url, CONFIG)


# GitHub at a custom base (GitHub Enterprise, the test git server)


def test_custom_github_base_with_a_path_prefix() -> None:
    spec = parse_repository("http://127.0.0.1:8000/some/prefix/o/r/tree/feat/x", LOCAL_GITHUB)
    assert spec.source == "github"
    assert (spec.owner, spec.repo, spec.ref) == ("o", "r", "feat/x")
    assert spec.clone_url == "http://127.0.0.1:8000/some/prefix/o/r.git"
    assert spec.repository == "http://127.0.0.1:8000/some/prefix/o/r/tree/feat/x"


def test_custom_github_base_over_http_needs_the_host_allowed() -> None:
    config = CONFIG.replace(github_url="http://127.0.0.1:8000/some/prefix")
    with pytest.raises(BadRepoSource) as caught:
        parse_repository("http://127.0.0.1:8000/some/prefix/o/r", config)
    assert "BINDER_ALLOWED_SOURCE_HOSTS" in caught.value.suggestions[0]


def test_github_com_is_generic_git_when_the_base_is_elsewhere() -> None:
    spec = parse_repository("https://github.com/o/r", LOCAL_GITHUB)
    assert spec.source == "git"
    assert spec.clone_url == "https://github.com/o/r"


# Generic Git over https


def test_gitlab_nested_groups_and_dash_tree_ref() -> None:
    spec = parse_repository("https://gitlab.com/group/sub/project/-/tree/feature/x", CONFIG)
    assert spec.source == "git"
    assert (spec.owner, spec.repo, spec.ref) == ("group-sub", "project", "feature/x")
    assert spec.clone_url == "https://gitlab.com/group/sub/project"
    assert spec.repository == "https://gitlab.com/group/sub/project/tree/feature/x"
    assert spec.name == "group-sub-project-feature-x"


def test_generic_git_url_with_dot_git_and_at_ref() -> None:
    spec = parse_repository("https://git.example.org/team/tool.git@v2", CONFIG)
    assert (spec.owner, spec.repo, spec.ref) == ("team", "tool", "v2")
    assert spec.clone_url == "https://git.example.org/team/tool.git"
    assert spec.repository == "https://git.example.org/team/tool/tree/v2"


def test_generic_git_without_ref() -> None:
    spec = parse_repository("https://codeberg.org/o/r/", CONFIG)
    assert (spec.source, spec.owner, spec.repo, spec.ref) == ("git", "o", "r", None)
    assert spec.repository == "https://codeberg.org/o/r"


def test_plain_http_git_to_an_allowed_host() -> None:
    config = CONFIG.replace(allowed_source_hosts=("git.internal:8080",))
    spec = parse_repository("http://GIT.internal:8080/o/r", config)
    assert spec.clone_url == "http://GIT.internal:8080/o/r"


# Refusals


@pytest.mark.parametrize("url", [
    "",
    "   ",
    "file:///etc",
    "file:///srv/repo.git",
    "ext::sh -c touch% /tmp/pwned",
    "ext::sh",
    "ssh://git@github.com/o/r",
    "git://github.com/o/r",
    "git@github.com:o/r.git",
    "http://github.com/o/r",
    "http://evil.example/o/r",
    "http://127.0.0.1:8000/o/r",  # not allowed without BINDER_ALLOWED_SOURCE_HOSTS
    "-uhttps://github.com/o/r",
    "--upload-pack=touch /tmp/x",
    "https://user:secret@gitlab.com/o/r",
    "https://token@gitlab.com/o/r",
    "https://user:secret@github.com/o/r",
    "https://gitlab.com/o/r?ref=main",
    "https://gitlab.com/o/r#main",
    "https:///o/r",
    "https://gitlab.com/onlyone",
    "https://gitlab.com/o/r/-/tree/..",
    "https://gitlab.com/o/r/-/tree/-x",
    "https://gitlab.com/o/-r",
    "https://github.com/o\n/r",
    "https://github.com/o/r\tx",
    "https://github.com/o/r/tree/ma\x00in",
    "/etc/passwd",
    "notaurl",
])
def test_refused_sources(url: str) -> None:
    with pytest.raises(BadRepoSource) as caught:
        parse_repository(url, CONFIG)
    assert caught.value.type == "badRepoSource"
    assert caught.value.suggestions


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/o/r", "https://127.1/o/r", "https://2130706433/o/r",
    "https://[::1]/o/r", "https://[::ffff:169.254.169.254]/o/r", "https://169.254.169.254/o/r",
    "https://10.0.0.8/group/repo", "https://0x7f000001/o/r",
])
def test_private_addresses_written_in_the_url_are_refused_without_dns(url: str) -> None:
    with pytest.raises(BadRepoSource, match="loopback, private or link-local"):
        parse_repository(url, CONFIG)


def test_http_host_allowance_is_for_that_host_only() -> None:
    config = CONFIG.replace(allowed_source_hosts=("127.0.0.1:8000",))
    for url in ("http://127.0.0.1:8001/o/r", "http://127.0.0.1/o/r",
                "http://127.0.0.1:8000@evil.example/o/r"):
        with pytest.raises(BadRepoSource):
            parse_repository(url, config)


def test_refusal_message_quotes_the_url() -> None:
    with pytest.raises(BadRepoSource, match="file:///etc"):
        parse_repository("file:///etc", CONFIG)


def test_default_config_comes_from_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import workers.sources as sources

    monkeypatch.setattr(sources, "get_config", lambda: LOCAL_GITHUB)
    assert parse_repository("http://127.0.0.1:8000/some/prefix/o/r").source == "github"


@pytest.mark.parametrize(("config", "url"), [
    (CONFIG, "https://gitlab.com/evil/../victim/repo"),
    (CONFIG, "https://github.com/../repo"),
    (CONFIG, "https://github.com/o/.."),
    (LOCAL_GITHUB, "http://127.0.0.1:8000/some/prefix/../repo"),
])
def test_dot_segments_are_refused(config: Config, url: str) -> None:
    with pytest.raises(BadRepoSource):
        parse_repository(url, config)
