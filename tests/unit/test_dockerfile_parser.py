"""``workers/dockerfile_parser/``: every image a Dockerfile pulls and every URL it downloads,
found as Docker finds them."""

from __future__ import annotations

import pytest

from workers.dockerfile_parser import DockerfileError
from workers.dockerfile_parser.downloads import downloaded_sources
from workers.dockerfile_parser.images import pulled_images, syntax_images
from workers.dockerfile_parser.lexer import ShellLexer
from workers.dockerfile_parser.mounts import cache_ids


def images(text: str, **build_args: str) -> list[tuple[str, str]]:
    return [(use.image, use.how) for use in pulled_images(text, build_args)]


def test_plain_stages_and_stage_references_pull_only_real_images() -> None:
    text = ("FROM python:3.12 AS build\nRUN pip wheel .\nFROM build AS test\n"
            "FROM debian:12\nCOPY --from=build /w /w\nCOPY --from=0 /a /a\n"
            "COPY --from=test /t /t\nFROM scratch\n")
    assert images(text) == [("python:3.12", "FROM"), ("debian:12", "FROM")]


def test_stage_names_are_matched_in_any_case_as_docker_matches_them() -> None:
    text = ("FROM python:3.12 AS Build\nFROM BUILD\nFROM debian:12 as b\n"
            "COPY --from=B /w /w\nRUN --mount=from=bUiLd,target=/m true\nFROM B\n")
    assert images(text) == [("python:3.12", "FROM"), ("debian:12", "FROM")]


@pytest.mark.parametrize(("text", "image"), [
    # a line continuation splits the instruction word itself
    ("FROM ok\nFR\\\nOM evil\n", "evil"),
    ("FROM ok\nFROM \\\n  # a comment inside the instruction\n\n  evil\n", "evil"),
    ("FROM ok\nRUN echo \\ \t\nFROM evil\n", None),  # continuation with trailing blanks
    # a byte-order mark before the first instruction
    ("\ufeffFROM evil\n", "evil"),
    # the escape directive makes ` the continuation character
    ("# escape=`\nFROM ok\nRUN echo \\\nFROM evil\n", "evil"),
    ("# escape=`\nFROM ok\nRUN dir c:\\\nFR`\nOM evil\n", "evil"),
    # leading whitespace, lower case, flags, quotes and escapes in the name
    ("  from --platform=linux/amd64 evil AS x\n", "evil"),
    ('FROM "evil"\n', "evil"),
    ("FROM ev\\il\n", "evil"),
    # ARG defaults, ${X:-default}, build args, BuildKit's automatic platform args
    ("ARG BASE=evil\nFROM $BASE\n", "evil"),
    ("ARG REG=docker.io\nARG BASE=${REG}/evil\nFROM ${BASE}:1\n", "docker.io/evil:1"),
    ("ARG BASE\nFROM ${BASE:-evil}\n", "evil"),
    ("ARG BASE='ev'il\nFROM ${BASE}\n", "evil"),
    ("ARG X=${TARGETOS:-evil}\nFROM ${X}\n", "evil"),
    # COPY --from and RUN --mount from= name images too
    ("FROM ok\nCOPY --from=evil /etc/passwd /x\n", "evil"),
    ("FROM ok\nCOPY --from evil /etc/passwd /x\n", "evil"),
    ("FROM ok\nRUN --mount=type=bind,from=evil,target=/m cat /m/x\n", "evil"),
    ("FROM ok\nRUN --mount=type=cache,target=/c --mount=from=evil,target=/m true\n", "evil"),
    ('FROM ok\nRUN --mount="from=evil",target=/m true\n', "evil"),
    # a stage used before it is defined is an image
    ("FROM builder\nFROM ok AS builder\n", "builder"),
    ("FROM ok\nCOPY --from=later /x /x\nFROM ok AS later\n", "later"),
    # ONBUILD triggers run when a later stage builds on this one
    ("FROM ok AS base\nONBUILD COPY --from=evil / /\nFROM base\n", "evil"),
    # heredoc bodies are data; what follows the terminator is not
    ("FROM ok\nRUN <<EOF\nFROM notpulled\nEOF\nFROM evil\n", "evil"),
    ("FROM ok\nRUN <<-EOF\n\tFROM notpulled\n\tEOF\nFROM evil\n", "evil"),
    # where versions disagree, every reading counts
    ("FROM ok\nRUN echo a\\\\\nFROM evil\n", "evil"),
    # a quote left open stops Docker from reading heredocs on that line
    ('FROM ok\nRUN <<RUN "\nFROM evil\nRUN\n', "evil"),
])
def test_hidden_images_are_found(text: str, image: str | None) -> None:
    found = [name for name, _ in images(text)]
    if image is None:
        assert "evil" not in found
    else:
        assert image in found, found


def test_heredoc_bodies_are_not_instructions() -> None:
    text = "FROM ok\nCOPY <<EOF /etc/x\nFROM notpulled\nEOF\n"
    assert images(text) == [("ok", "FROM")]


def test_an_escaped_space_before_the_end_does_not_hide_the_next_line() -> None:
    assert [name for name, _ in images("FROM ok\nRUN echo \\\\ \nFROM evil\n")] == \
        ["ok", "evil"]


@pytest.mark.parametrize(("text", "image", "how"), [
    ("# syntax=evil/frontend:1\nFROM ok\n", "evil/frontend:1", "# syntax"),
    ("#syntax = evil/frontend:1 --flag\nFROM ok\n", "evil/frontend:1", "# syntax"),
    ("  # syntax=evil/frontend\nFROM ok\n", "evil/frontend", "# syntax"),
    ("# escape=\\\n# check=skip=all\n# syntax=evil\nFROM ok\n", "evil", "# syntax"),
])
def test_syntax_directives_name_a_frontend_image(text: str, image: str, how: str) -> None:
    assert (image, how) in images(text)


def test_syntax_after_an_instruction_is_a_comment() -> None:
    assert images("FROM ok\n# syntax=evil\n") == [("ok", "FROM")]


def test_other_syntax_forms_are_found_even_when_the_file_is_no_dockerfile() -> None:
    assert [u.image for u in syntax_images("#!/usr/bin/env x\n//syntax=evil/js\n")] == \
        ["evil/js"]
    assert [u.image for u in syntax_images('{"syntax": "evil/json"}')] == ["evil/json"]


@pytest.mark.parametrize(("text", "reason"), [
    ("RUN true\n", "no FROM line"),
    ("# FROM ok\nRUN true\n", "no FROM line"),
    ("FROM ok\nFOO bar\n", "line 2: unknown instruction FOO"),
    ("FROM a b\n", "FROM takes an image"),
    ("FROM ok AS 1x\n", "not a valid stage name"),
    ("ARG X\nFROM $X\n", "FROM names no image"),
    ("# escape=x\nFROM ok\n", "parser directives"),
    ("# escape=\\\n# escape=`\nFROM ok\n", "parser directives"),
    ("FROM ok\nRUN <<EOF\nnever closed\n", "never closed"),
])
def test_files_docker_cannot_build_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(DockerfileError) as caught:
        pulled_images(text)
    assert "cannot be built" in str(caught.value)
    assert reason in str(caught.value)


@pytest.mark.parametrize(("text", "what"), [
    ("ARG X=a\nFROM ${X#a}evil\n", "${X#...}` on line 2"),
    ("ARG X=a\nFROM ${X/a/b}\n", "${X/...}` on line 2"),
    ("FROM ok\nRUN --mount=type=bind,from=$IMG,target=/m true\n", "from=$IMG` on line 2"),
])
def test_variable_forms_the_farm_does_not_evaluate_are_refused(text: str, what: str) -> None:
    with pytest.raises(DockerfileError) as caught:
        pulled_images(text)
    assert what in str(caught.value) and "cannot check" in str(caught.value)


def test_build_args_override_arg_defaults() -> None:
    assert images("ARG BASE=evil\nFROM ${BASE}\n", BASE="ok") == [("ok", "FROM")]


@pytest.mark.parametrize(("word", "env", "result"), [
    ("plain", {}, "plain"),
    ("$A-${B}", {"A": "1", "B": "2"}, "1-2"),
    ("${A:-x}${U:-y}${E:-z}${E-w}", {"A": "1", "E": ""}, "1yz"),
    ("${A:+set}${U:+set}", {"A": "1"}, "set"),
    ("'$A' \"$A\" \\$A", {"A": "1"}, "$A 1 $A"),
    ('"a\\"b\\c"', {}, 'a"b\\c'),
    ("$", {}, "$"),
])
def test_shell_lexer_expands_as_docker_does(word: str, env: dict[str, str],
                                            result: str) -> None:
    assert ShellLexer("\\", env).process(word) == result


def test_a_megabyte_of_blank_lines_parses() -> None:
    text = "\n" * 1_000_000 + "FROM ok\n" + " " * 100_000 + "\n# escape" + " " * 100_000
    assert images(text) == [("ok", "FROM")]


# ADD sources the engine downloads itself


@pytest.mark.parametrize(("text", "url", "how"), [
    ("FROM ok\nADD http://169.254.169.254/latest/meta-data /m\n",
     "http://169.254.169.254/latest/meta-data", "ADD"),
    ("FROM ok\nADD --chown=1:1 local.txt HTTPS://h.example/x /dst/\n", "HTTPS://h.example/x",
     "ADD"),
    ('FROM ok\nADD ["https://h.example/x", "/dst"]\n', "https://h.example/x", "ADD"),
    ("FROM ok\nADD 'http://h.example/x' /d\n", "http://h.example/x", "ADD"),
    ("FROM ok\nAD\\\nD \\\n  git@h.example:o/r.git /src\n", "git@h.example:o/r.git", "ADD"),
    ("# escape=`\nFROM ok\nADD `\n  http://h.example/x /d\n", "http://h.example/x", "ADD"),
    ("FROM ok\nONBUILD ADD http://h.example/x /d\n", "http://h.example/x", "ONBUILD ADD"),
    # heredoc data to newer Dockerfile parsers, an instruction to older ones
    ("FROM ok\nRUN <<EOF\nADD http://h.example/x /d\nEOF\n", "http://h.example/x", "ADD"),
    # not JSON (nested deeper than a parser recurses): the shell form, as to Docker
    ("FROM ok\nADD " + "[" * 5000 + " http://h.example/x /d\n", "http://h.example/x", "ADD"),
])
def test_add_sources_the_engine_downloads_are_found(text: str, url: str, how: str) -> None:
    assert [(d.url, d.how) for d in downloaded_sources(text)] == [(url, how)]


@pytest.mark.parametrize("text", [
    "FROM ok\nADD files.tar.gz /srv/\nCOPY http://h.example/x /d\n",  # COPY takes no URL
    "FROM ok\nRUN echo ADD http://h.example/x /d\n",
    "FROM ok\nADD <<EOF /d\nhttp://h.example/x\nEOF\n",
])
def test_context_sources_and_other_text_are_not_downloads(text: str) -> None:
    assert downloaded_sources(text) == []


@pytest.mark.parametrize("source", ["$URL", "${URL}", "http${S}://h.example/x"])
def test_an_add_source_with_a_variable_is_refused(source: str) -> None:
    with pytest.raises(DockerfileError) as caught:
        downloaded_sources(f"FROM ok\nARG URL=http://h.example/x\nADD {source} /d\n")
    assert "line 3" in str(caught.value) and "cannot check" in str(caught.value)


@pytest.mark.parametrize(("text", "found"), [
    ("FROM ok\nRUN --mount=type=cache,id=binder-uv,target=/c uv pip install x\n",
     [("binder-uv", 2, "RUN")]),
    ('FROM ok\nRUN --mount="type=cache,id=binder-pip,target=/c" --mount=type=tmpfs,'
     'target=/t true\n', [("binder-pip", 2, "RUN")]),
    ("FROM ok\nRUN --mount=type=cache,target=/c,'id=binder-apt-lists' true\n",
     [("binder-apt-lists", 2, "RUN")]),
    ("FROM ok\nRUN \\\n  --mount=type=cache,id=mine,target=/c \\\n  true\n",
     [("mine", 2, "RUN")]),
    ("FROM ok\nONBUILD RUN --mount=type=cache,id=binder-uv,target=/c true\n",
     [("binder-uv", 2, "ONBUILD RUN")]),
    ("FROM ok\nRUN --mount=type=cache,target=/root/.cache true\n", []),
    ("FROM ok\nRUN echo --mount=type=cache,id=binder-uv\n", []),  # an argument, no flag
])
def test_the_caches_run_steps_mount_are_found_by_id(
        text: str, found: list[tuple[str, int, str]]) -> None:
    assert [(m.cache_id, m.line, m.how) for m in cache_ids(text)] == found


def test_a_mount_id_with_a_variable_is_refused() -> None:
    with pytest.raises(DockerfileError, match="write the id out"):
        cache_ids("FROM ok\nARG C=binder-uv\nRUN --mount=type=cache,id=$C,target=/c true\n")
