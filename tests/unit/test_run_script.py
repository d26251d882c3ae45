"""run-script, the step that runs a repository's postBuild: its shebang's options apply,
and a failing shell script is named with its line (run here with the machine's bash)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from workers.buildpacks.compose import RUN_SCRIPT, SCRIPTS_SOURCE

BROKEN = "echo step1\nfalse\necho after > after.txt\n"


def run(tmp_path: Path, text: str, executable: bool = True) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "postBuild"
    script.write_text(text)
    script.chmod(0o755 if executable else 0o644)
    return subprocess.run(["bash", str(SCRIPTS_SOURCE / RUN_SCRIPT), "postBuild"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("shebang", [
    "#!/bin/bash -e", "#!/bin/bash -ex", "#!/bin/bash -eux", "#!/bin/sh -e",
    "#!/usr/bin/env -S bash -e", "#!/bin/bash  -e  ",
])
def test_the_shebangs_options_stop_the_script_at_an_error(tmp_path: Path, shebang: str) -> None:
    result = run(tmp_path, f"{shebang}\n{BROKEN}")
    assert result.returncode == 1, result
    assert not (tmp_path / "after.txt").exists()
    assert "step1" in result.stdout
    assert result.stdout.splitlines()[-1] == (
        "BINDER-ERROR: postBuild failed with exit code 1 at line 3: false"), result.stdout


@pytest.mark.parametrize("shebang", ["#!/bin/bash", "#!/usr/bin/env bash", ""])
def test_without_options_the_script_goes_on_as_bash_does(tmp_path: Path, shebang: str) -> None:
    result = run(tmp_path, f"{shebang}\n{BROKEN}".lstrip("\n"))
    assert result.returncode == 0, result
    assert (tmp_path / "after.txt").exists()


def test_the_option_is_one_argument_as_the_kernel_passes_it(tmp_path: Path) -> None:
    # Linux gives bash "-e -x" as one argument, which bash refuses: so does the build.
    result = run(tmp_path, f"#!/bin/bash -e -x\n{BROKEN}")
    assert result.returncode != 0
    assert not (tmp_path / "after.txt").exists()
    assert "invalid option" in result.stderr


def test_a_script_without_the_exec_bit_runs(tmp_path: Path) -> None:
    result = run(tmp_path, f"#!/bin/bash -e\n{BROKEN}", executable=False)
    assert result.returncode == 1
    assert not (tmp_path / "after.txt").exists()


def test_another_interpreter_runs_the_script_itself(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/usr/bin/env python3\nimport sys\nprint('py ran')\nsys.exit(3)\n")
    assert result.returncode == 3
    assert "py ran" in result.stdout
    assert result.stdout.splitlines()[-1] == (
        "BINDER-ERROR: postBuild failed with exit code 3; its output above says why.")


def test_a_failing_child_script_the_script_handles_is_not_named(tmp_path: Path) -> None:
    """The trap is postBuild's own: a bash script it runs, failing and handled, prints
    no BINDER-ERROR line that the farm would keep as the build's error."""
    child = tmp_path / "child.sh"
    child.write_text("#!/bin/bash\nexit 3\n")
    child.chmod(0o755)
    result = run(tmp_path, "#!/bin/bash -e\n./child.sh || echo handled\nbash ./child.sh || true\n")
    assert result.returncode == 0, result
    assert "handled" in result.stdout
    assert "BINDER-ERROR" not in result.stdout, result.stdout
