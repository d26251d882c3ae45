"""Git for untrusted repositories: resolve a ref, fetch exactly one commit.

Only the protocols the URL policy allows reach git (``GIT_ALLOW_PROTOCOL``),
never with a prompt, hooks, submodules or a system/global config; every
URL and ref comes after ``--`` or was validated, so nothing reads as an
option. Each command is bounded in time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from common.errors import BuildFailure

SHA_RE = re.compile(r"^[0-9a-f]{40}$")

Say = Callable[[str], None]


def git_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/true",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_ALLOW_PROTOCOL": "https:http",
        "GIT_LFS_SKIP_SMUDGE": "1",
        "LANG": "C",
    }


def run_git(args: list[str], timeout: float, cwd: Path | None = None) -> str:
    """Run git; on failure raise ``BuildFailure`` with git's own last words."""
    argv = ["git", "-c", "core.hooksPath=/dev/null", "-c", "protocol.file.allow=never",
            "-c", "core.symlinks=true", *args]
    try:
        done = subprocess.run(argv, cwd=cwd, env=git_env(), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise BuildFailure(f"git {args[0]} took longer than {int(timeout)} s and was stopped.",
                           suggestions=["Is the repository very large or its host slow?"]) \
            from exc
    if done.returncode != 0:
        raise GitError(args[0], done.stderr.strip())
    return done.stdout


class GitError(BuildFailure):
    def __init__(self, command: str, stderr: str) -> None:
        last = stderr.splitlines()[-1] if stderr else "no output"
        super().__init__(f"git {command} failed: {last}")
        self.stderr = stderr


def resolve_ref(clone_url: str, ref: str | None, timeout: float) -> str:
    """The full commit SHA of ``ref`` (default branch when ``None``) via ls-remote."""
    if ref and SHA_RE.match(ref):
        return ref
    try:
        output = run_git(["ls-remote", "--", clone_url], timeout)
    except GitError as exc:
        raise BuildFailure(
            f"The repository {clone_url} could not be read: "
            f"{_reason(exc.stderr)}.",
            suggestions=["Check the URL and that the repository is public."]) from exc
    refs: dict[str, str] = {}
    for line in output.splitlines():
        sha, _, name = line.partition("\t")
        refs[name] = sha
    if ref is None:
        if "HEAD" not in refs:
            raise BuildFailure(f"The repository {clone_url} has no default branch (empty?).",
                               suggestions=["Push a commit, or name a branch with /tree/REF."])
        return refs["HEAD"]
    for candidate in (f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}", ref):
        if candidate in refs:
            return refs[candidate]
    raise BuildFailure(f"No branch or tag named {ref!r} in {clone_url}.",
                       suggestions=["Check the name after /tree/, or use a full commit SHA."])


def _reason(stderr: str) -> str:
    lowered = stderr.lower()
    if "not found" in lowered or "404" in lowered or "does not exist" in lowered:
        return "it does not exist"
    if "could not resolve host" in lowered or "connection refused" in lowered:
        return "its host cannot be reached"
    if "authentication" in lowered or "terminal prompts disabled" in lowered:
        return "it needs credentials"
    return stderr.strip().splitlines()[-1] if stderr.strip() else "git failed"


def fetch_commit(clone_url: str, commit: str, target: Path, timeout: float, say: Say) -> None:
    """Check out exactly ``commit`` into ``target`` (shallow where the server allows)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    run_git(["init", "--quiet", str(target)], timeout)
    try:
        run_git(["fetch", "--quiet", "--depth", "1", "--no-tags", "--", clone_url, commit],
                timeout, cwd=target)
    except GitError:
        say("server refused a shallow fetch by SHA; fetching the full history")
        run_git(["fetch", "--quiet", "--no-tags", "--", clone_url,
                 "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"],
                timeout, cwd=target)
    try:
        run_git(["checkout", "--quiet", "--detach", commit], timeout, cwd=target)
    except GitError as exc:
        raise BuildFailure(f"Commit {commit} is not in {clone_url}.",
                           suggestions=["Check the commit SHA."]) from exc


def tree_size_mb(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            file = Path(root) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return total / (1024 * 1024)
