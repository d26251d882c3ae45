"""``workers/docker_build.explain_failure``: a sentence a user can act on."""

from __future__ import annotations

from workers.image_build import explain_failure

STEP_FAILED = "The command '/bin/sh -c exit 1' returned a non-zero code: 1"


def test_pip_missing_distribution() -> None:
    recent = ["Step 5/9 : RUN pip install -r requirements.txt",
              "ERROR: Could not find a version that satisfies the requirement numpy==99",
              "ERROR: No matching distribution found for numpy==99"]
    assert explain_failure("The command '/bin/sh -c pip install' returned a non-zero code: 1",
                           recent) == \
        "pip could not install numpy==99: no matching distribution found."


def test_pip_version_not_found_alone() -> None:
    recent = ["ERROR: Could not find a version that satisfies the requirement tinypkg>=5 "
              "(from versions: 0.1)"]
    assert explain_failure("failed", recent) == \
        "pip could not install tinypkg>=5: no matching distribution found."


def test_failed_step_names_the_command_and_exit_code() -> None:
    message = explain_failure(STEP_FAILED, ["Step 3/4 : RUN exit 1",
                                            " ---> Running in 0123abcd"])
    assert message == "The build step `RUN exit 1` failed with exit code 1."


def test_failed_step_quotes_the_last_output_line() -> None:
    recent = ["Step 3/4 : RUN make", "compiling", "make: *** [all] Error 2", "   "]
    message = explain_failure(
        "The command '/bin/sh -c make' returned a non-zero code: 2", recent)
    assert message == ("The build step `RUN make` failed with exit code 2. "
                       "Its last output: make: *** [all] Error 2")


def test_failed_exec_form_step() -> None:
    message = explain_failure(
        "The command 'python3 -c raise SystemExit(3)' returned a non-zero code: 3", [])
    assert message == "The build step `RUN python3 -c raise SystemExit(3)` failed with exit code 3."


def test_binder_error_line_wins() -> None:
    recent = ["ERROR: No matching distribution found for numpy==99",
              "BINDER-ERROR: conda could not solve the environment: nothing provides x  ",
              "some trailing output"]
    assert explain_failure(STEP_FAILED, recent) == \
        "conda could not solve the environment: nothing provides x"


def test_generic_failure_quotes_docker() -> None:
    assert explain_failure("  pull access denied for nope  ", ["Step 1/2 : FROM nope"]) == \
        "Docker could not build the image: pull access denied for nope"


def test_generic_failure_is_bounded() -> None:
    message = explain_failure("x" * 5000, [])
    assert message.startswith("Docker could not build the image: x")
    assert len(message) <= len("Docker could not build the image: ") + 500
