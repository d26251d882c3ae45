"""``explain_failure`` and the client command: BuildKit's plain output made into a sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.image_build import (
    MAX_EXPLANATION,
    BuildRequest,
    build_command,
    explain_failure,
    failure_suggestions,
    step_output,
)

STEP_FAILED = "executor failed running [/bin/sh -c exit 1]: exit code: 1"


def explain(error: str, recent: list[str]) -> str:
    return explain_failure(error, recent, "4G")


def test_step_output_strips_the_progress_prefix() -> None:
    assert step_output("#5 0.057 hello world") == "hello world"
    assert step_output("#12 104.250 ") == ""
    assert step_output("#5 [2/2] RUN make") is None
    assert step_output("#5 sha256:a4a0fab1") is None
    assert step_output("#5 DONE 0.4s") is None


def test_pip_missing_distribution() -> None:
    recent = ["Looking in indexes: http://127.0.0.1:9/simple/",
              "ERROR: Could not find a version that satisfies the requirement numpy==99",
              "ERROR: No matching distribution found for numpy==99"]
    assert explain("executor failed running [/bin/sh -c pip install]: exit code: 1",
                   recent) == "pip could not install numpy==99: no matching distribution found."


def test_pip_version_not_found_alone() -> None:
    recent = ["ERROR: Could not find a version that satisfies the requirement tinypkg>=5 "
              "(from versions: 0.1)"]
    assert explain("failed", recent) == \
        "pip could not install tinypkg>=5: no matching distribution found."


def test_failed_step_names_the_command_and_exit_code() -> None:
    assert explain(STEP_FAILED, []) == "The build step `RUN exit 1` failed with exit code 1."


def test_failed_step_quotes_the_last_output_line() -> None:
    recent = ["compiling", "make: *** [all] Error 2", "   "]
    message = explain("executor failed running [/bin/sh -c make]: exit code: 2", recent)
    assert message == ("The build step `RUN make` failed with exit code 2. "
                       "Its last output: make: *** [all] Error 2")


def test_failed_exec_form_step() -> None:
    message = explain("executor failed running [python3 -c raise SystemExit(3)]: exit code: 3",
                      [])
    assert message == "The build step `RUN python3 -c raise SystemExit(3)` failed with exit code 3."


def test_killed_step_names_the_memory_limit() -> None:
    message = explain_failure(
        "executor failed running [/bin/sh -c python3 grow.py]: exit code: 137",
        ["allocating", "Killed"], "512M")
    assert message == ("The build step `RUN python3 grow.py` was killed (exit code 137): the "
                       "build ran out of memory; builds on this farm are limited to 512M.")


@pytest.mark.parametrize("said", [
    "sh: 1: Cannot fork",
    "/bin/sh: fork: retry: Resource temporarily unavailable",
    "RuntimeError: can't start new thread",
    "OpenBLAS blas_thread_init: pthread_create failed for thread 3 of 8: Resource "
    "temporarily unavailable",
])
def test_a_step_that_could_not_fork_names_the_process_limit(said: str) -> None:
    error = "executor failed running [/bin/sh -c make -j]: exit code: 2"
    message = explain_failure(error, ["compiling", said], "4G", 4096)
    assert message == ("The build step `RUN make -j` could not start a process or thread "
                       "(exit code 2): builds on this farm may have 4096 processes and "
                       "threads at once.")
    assert explain_failure(error, [said], "4G").endswith(": the host could start no more.")


def test_binder_error_line_wins() -> None:
    recent = ["ERROR: No matching distribution found for numpy==99",
              "BINDER-ERROR: conda could not solve the environment: nothing provides x  ",
              "some trailing output"]
    assert explain(STEP_FAILED, recent) == \
        "conda could not solve the environment: nothing provides x"


@pytest.mark.parametrize("line", [
    "BINDER-ERROR: " + "x" * 200_000,  # a step can print the farm's marker too
    "ERROR: No matching distribution found for " + "y" * 200_000,
    "BINDER-ERROR: two\x1b[2Jlines\rand an escape",
])
def test_what_a_step_printed_is_quoted_bounded_and_printable(line: str) -> None:
    message = explain(STEP_FAILED, [line])
    assert len(message) <= MAX_EXPLANATION
    assert message.isprintable(), message


def test_generic_failure_drops_buildkit_prefixes() -> None:
    error = ("failed to solve with frontend dockerfile.v0: failed to create LLB definition: "
             "127.0.0.1:5000/nope:latest: not found")
    assert explain(error, []) == \
        "Docker could not build the image: 127.0.0.1:5000/nope:latest: not found"
    assert explain('failed to compute cache key: "/missing" not found: not found', []) == \
        'Docker could not build the image: "/missing" not found: not found'


def test_generic_failure_is_bounded() -> None:
    message = explain("x" * 5000, [])
    assert message.startswith("Docker could not build the image: x")
    assert len(message) <= len("Docker could not build the image: ") + 500


def test_command_uses_buildkit_with_plain_progress_and_inline_cache() -> None:
    request = BuildRequest(Path("/w/context.tar"), "Dockerfile", "reg/img:abc", network="host",
                           labels={"b": "2", "a": "1"}, cache_from=["reg/img:old"])
    argv = build_command(request, Path("/w/iid"))
    assert argv[:4] == ["/usr/bin/docker", "build", "--progress", "plain"]
    assert argv[-1] == "-"  # the context tar arrives on stdin
    joined = " ".join(argv)
    assert "--build-arg BUILDKIT_INLINE_CACHE=1" in joined
    assert "--cache-from reg/img:old" in joined
    assert "--network host" in joined
    assert "--label a=1 --label b=2" in joined
    assert "--memory" not in joined  # BuildKit ignores it; see workers/build_cgroup.py


def test_default_network_is_left_to_the_engine() -> None:
    argv = build_command(BuildRequest(Path("c.tar"), "Dockerfile", "t"), Path("iid"))
    assert "--network" not in argv


UV_STEP = ("executor failed running [/bin/sh -c echo 'installing requirements.txt with uv pip' "
           "&& uv pip install --no-config -r requirements.txt]: exit code: 1")


def test_uv_resolution_failure_quotes_uv_cause() -> None:
    recent = ["Using Python 3.11.2 environment at: /srv/env",
              "error: No solution found when resolving dependencies",
              "  cause: Because there is no version of tinypkg==9.0 and you require "
              "tinypkg==9.0, we can conclude that your requirements are unsatisfiable."]
    assert explain(UV_STEP, recent) == (
        "uv could not install the Python packages: No solution found when resolving "
        "dependencies: Because there is no version of tinypkg==9.0 and you require "
        "tinypkg==9.0, we can conclude that your requirements are unsatisfiable.")


def test_uv_cause_over_several_lines_and_terminal_marks() -> None:
    recent = ["  × No solution found when resolving dependencies:",
              "  ╰─▶ Because only tinypkg==1.0 is available and all versions of needy depend "
              "on tinypkg>=5, we can conclude that all versions of needy cannot be used.",
              "         And because you require needy, we can conclude that your requirements "
              "are unsatisfiable."]
    message = explain(UV_STEP, recent)
    assert message.startswith("uv could not install the Python packages: No solution found "
                              "when resolving dependencies: Because only tinypkg==1.0")
    assert message.endswith("cannot be used. And because you require needy, we can conclude "
                            "that your requirements are unsatisfiable.")


def test_uv_parse_error_leaves_out_the_caret_line() -> None:
    recent = ["error: Couldn't parse requirement in `requirements.txt` at position 13",
              "  cause: Expected one of `@`, `(`, `<`, `=`, `>`, `~`, `!`, `;`, found `l`",
              "         bad line here!",
              "             ^"]
    assert explain(UV_STEP, recent) == (
        "uv could not install the Python packages: Couldn't parse requirement in "
        "`requirements.txt` at position 13: Expected one of `@`, `(`, `<`, `=`, `>`, `~`, `!`, "
        "`;`, found `l` bad line here!")


def test_error_lines_of_other_steps_are_not_read_as_uv() -> None:
    recent = ["error: cannot open file", "  cause: gone"]
    assert explain("executor failed running [/bin/sh -c make]: exit code: 2", recent) == (
        "The build step `RUN make` failed with exit code 2. Its last output: cause: gone")


@pytest.mark.parametrize("error", [
    "failed to solve with frontend dockerfile.v0: failed to create LLB definition: "
    "dockerfile parse error line 3: Unknown flag: link",
    "failed to solve with frontend dockerfile.v0: failed to create LLB definition: "
    "dockerfile parse error line 4: unknown instruction: ECHO",
])
def test_a_line_the_engine_cannot_parse_points_at_its_frontend(error: str) -> None:
    assert failure_suggestions(error) == [
        "The Docker engine reads the Dockerfile with its built-in frontend, which may not "
        "know syntax added after it (heredocs, COPY --link, ...): write that line without it."]
    assert failure_suggestions(STEP_FAILED) == []
