"""``workers/repo_yaml.py``: the one loader for a repository's YAML files."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from workers.repo_yaml import (
    RepoYamlError,
    check_repo_file_size,
    load_repo_yaml,
    read_repo_file,
    shorten,
)

# 470 bytes that PyYAML's safe_load expands into ~10^9 list entries.
LAUGHS = "\n".join(
    ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]) + "\n"


def test_plain_data_loads() -> None:
    text = ("name: demo\nchannels: [conda-forge]\ndependencies:\n  - numpy=1.26\n"
            "  - pip: [requests]\nflag: true\nnothing: null\nwhen: 2024-01-02\nn: 3\n")
    assert load_repo_yaml(text, "environment.yml") == {
        "name": "demo", "channels": ["conda-forge"],
        "dependencies": ["numpy=1.26", {"pip": ["requests"]}],
        "flag": True, "nothing": None, "when": "2024-01-02", "n": 3}


def test_integers_of_64_bits_load() -> None:
    assert load_repo_yaml("a: 9223372036854775807\nb: -9223372036854775808\nc: '9' \n",
                          "f.yml") == {"a": 2**63 - 1, "b": -(2**63), "c": "9"}


def test_the_billion_laughs_is_refused_at_its_first_anchor() -> None:
    assert len(LAUGHS) < 600
    with pytest.raises(RepoYamlError) as caught:
        load_repo_yaml(LAUGHS, "environment.yml")
    message = str(caught.value)
    assert message.startswith("environment.yml (line 1): YAML anchors")
    assert len(message) < 200


def test_an_alias_alone_is_refused() -> None:
    with pytest.raises(RepoYamlError, match=r"\(line 2\): YAML aliases"):
        load_repo_yaml("a: 1\nb: *a\n", ".binder.yml")


@pytest.mark.parametrize(("text", "reason"), [
    ("a: 1\na: 2\n", "the key a appears twice"),
    ("1: one\n", "every mapping key must be text"),
    ("<<: {a: 1}\n", "merge keys"),
    ("x: !!python/object/apply:os.system [id]\n", "the tag tag:yaml.org,2002:python/object"),
    ("x: !!binary aGk=\n", "tag:yaml.org,2002:binary is not accepted"),
    ("x: !!set {a}\n", "tag:yaml.org,2002:set is not accepted"),
    ("x: !custom 1\n", "the tag !custom is not accepted"),
    ("[" * 60 + "]" * 60, "nested more than 50 deep"),
    ("a: [1\n", "is not valid YAML (line 2)"),
    # more digits than Python turns into an integer, or into text afterwards
    ("x: " + "1" * 5000 + "\n", "(line 1): integers must fit in 64 bits"),
    ("x: 0x" + "f" * 5000 + "\n", "integers must fit in 64 bits"),
    ("x: 9223372036854775808\n", "integers must fit in 64 bits"),  # what MongoDB stores
    ("x: -9223372036854775809\n", "integers must fit in 64 bits"),
])
def test_refusals_are_sentences_naming_the_file(text: str, reason: str) -> None:
    with pytest.raises(RepoYamlError) as caught:
        load_repo_yaml(text, "f.yml")
    assert str(caught.value).startswith("f.yml")
    assert reason in str(caught.value)


def test_a_file_is_read_only_within_its_cap(tmp_path: Path) -> None:
    path = tmp_path / "f.yml"
    path.write_text("a: " + "x" * 2048 + "\n")
    with pytest.raises(RepoYamlError) as caught:
        read_repo_file(path, "f.yml", 1024)
    assert str(caught.value) == "f.yml is 2 KiB; this farm reads config files of at most 1 KiB."
    assert load_repo_yaml(read_repo_file(path, "f.yml", 4096), "f.yml") == {"a": "x" * 2048}
    assert read_repo_file(path, "f.yml", 2052) == path.read_bytes()  # at the cap


def test_a_file_over_its_cap_is_never_opened(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as file:
        file.truncate(8 * 1024**3)  # sparse: 8 GiB by its size, nothing on disk
    monkeypatch.setattr(Path, "open", lambda *_, **__: pytest.fail("the file was opened"))
    with pytest.raises(RepoYamlError, match=r"^huge.txt is 8192.0 MiB; .* at most 1.0 MiB\.$"):
        read_repo_file(path, "huge.txt", 1024 * 1024)
    with pytest.raises(RepoYamlError):
        check_repo_file_size(path, "huge.txt", 1024 * 1024)


def test_a_file_larger_than_its_size_says_is_read_no_further_than_the_cap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # as /proc files (size 0) and files still being written report: the read itself stops
    class Recorded(io.BytesIO):
        sizes: list[int | None] = []

        def read(self, size: int | None = -1) -> bytes:
            self.sizes.append(size)
            return super().read(size)

    monkeypatch.setattr(Path, "stat", lambda *_, **__: os.stat_result((0,) * 10))
    monkeypatch.setattr(Path, "open", lambda *_, **__: Recorded(b"x" * 5000))
    with pytest.raises(RepoYamlError) as caught:
        read_repo_file(Path("f.txt"), "f.txt", 1024)
    assert str(caught.value) == ("f.txt is more than 1 KiB; this farm reads config files of at "
                                 "most 1 KiB.")
    assert Recorded.sizes == [1025]


def test_a_file_a_few_bytes_over_says_so_in_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * (1024 * 1024 + 3))
    with pytest.raises(RepoYamlError) as caught:
        read_repo_file(path, "f.txt", 1024 * 1024)
    # not "1.0 MiB ... at most 1.0 MiB"
    assert str(caught.value) == ("f.txt is 1048579 bytes; this farm reads config files of at "
                                 "most 1048576 bytes (1.0 MiB).")


def test_node_count_is_capped() -> None:
    text = "[" + ",".join(["1"] * 20_001) + "]"
    with pytest.raises(RepoYamlError, match="more than 20000 values"):
        load_repo_yaml(text, "f.yml")
    assert len(load_repo_yaml("[" + ",".join(["1"] * 19_000) + "]", "f.yml")) == 19_000


def test_user_text_in_messages_is_shortened_and_printable() -> None:
    long_key = "k" * 5000
    with pytest.raises(RepoYamlError) as caught:
        load_repo_yaml(f"{long_key}: 1\n{long_key}: 2\n", "f.yml")
    assert len(str(caught.value)) < 200
    assert shorten("a\x00b\nc") == "a?b?c"
    assert shorten("x" * 100, 10) == "x" * 9 + "…"
    assert shorten(3.5) == "float"
