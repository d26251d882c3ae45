"""Git for untrusted repositories: resolve a ref, fetch exactly one commit, within bounds.

Every command talks to one checked target (``common/addresses.py``): only
its scheme is allowed (``GIT_ALLOW_PROTOCOL``), its host is pinned to the
addresses that were checked (``http.curloptResolve``, so git cannot
resolve the name again and land elsewhere) and redirects are not followed.
Never a prompt, hooks, submodules or a system/global config; every URL and
ref comes after ``--`` or was validated, so nothing reads as an option.

Sizes are bounded while bytes arrive, not after: output and every file git
writes are capped by ``RLIMIT_FSIZE``, what each git process allocates (a
host's ref list, the objects it unpacks) by ``RLIMIT_DATA``, the repository's ``.git`` is watched
while it downloads (its bytes, and its files: each ref a host advertises to
the full-history fetch is a file of its own), and the tree's size and file
count (``git ls-tree -r -l``) are checked before a single file is checked out.

What a user sees of a failure is a fixed sentence: git's own words (which
tell an open port from a closed one) go only to the worker's log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from common.addresses import CheckedTarget
from common.errors import BuildFailure, ConfigError
from common.models import FailureCause

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
#: What an abbreviated commit SHA looks like (Git abbreviates to 7 or more hex digits).
ABBREVIATED_SHA_RE = re.compile(r"^[0-9a-fA-F]{7,39}$")
#: Largest output (refs of ls-remote, the tree listing) read from git.
#: The oldest git that pins a host to the addresses checked: an older one ignores
#: ``http.curloptResolve`` without a word and resolves the name again itself.
MIN_GIT_VERSION = (2, 37)
MAX_OUTPUT = 64 * 1024 * 1024
#: Entries (files, links, directories) a checkout may have.
MAX_TREE_ENTRIES = 100_000
#: Files and folders a fetch may make under ``.git`` (refs and their logs are files).
MAX_GIT_ENTRIES = 100_000
#: How often a running download is measured (and the deadline checked).
WATCH_INTERVAL = 0.1
#: Attributes that make a checkout write each blob byte for byte (no CRLF,
#: no re-encoding, no filters), so the listed sizes are the sizes on disk.
EXACT_CHECKOUT = "* -text -eol -ident -filter -working-tree-encoding\n"
#: How git says an allocation failed ("Out of memory, malloc failed", "mmap failed:
#: Cannot allocate memory"), or a thread could not start: a thread's stack counts
#: towards the same limit.
OUT_OF_MEMORY_RE = re.compile(r"out of memory|cannot allocate memory|"
                              r"cannot create async thread|unable to create thread",
                              re.IGNORECASE)

Say = Callable[[str], None]
log = logging.getLogger(__name__)

#: The mode Git gives a submodule's entry (a commit of another repository) in a tree.
GITLINK_MODE = "160000"


@dataclass(frozen=True)
class Tree:
    """What the listing of a commit's tree says: the bytes of its blobs, and the
    folders that are submodules (Git's own record of them, whatever ``.gitmodules``
    says), which the checkout leaves empty."""

    size: int
    submodules: list[str]


class GitError(BuildFailure):
    """A git command failed; ``message`` is a fixed sentence, ``stderr`` for operators."""

    def __init__(self, message: str, stderr: str = "",
                 suggestions: list[str] | None = None) -> None:
        super().__init__(message, suggestions)
        self.stderr = stderr

    def __reduce__(self) -> tuple[type, tuple[str, str, list[str]]]:
        return (type(self), (self.message, self.stderr, self.suggestions))


@dataclass(frozen=True)
class GitLimits:
    """What one git command may write."""

    max_bytes: int = MAX_OUTPUT  # each file, including its stdout
    max_memory: int = 0  # what each git process may allocate; 0 for no bound
    watch: Path | None = None  # a directory whose total size is also bounded
    watch_bytes: int = 0
    watch_entries: int = 0  # and its count of files and folders, when not 0


#: Extra git configuration for one command, as ``{key: value}`` (the header
#: that carries a token to one host). It travels in the environment
#: (``GIT_CONFIG_COUNT``), never on the command line or in ``.git/config``.
GitConfig = Mapping[str, str]


def header_config(url: str, header: str) -> dict[str, str]:
    """Git configuration sending ``header`` with requests to ``url``'s host only."""
    parts = urlsplit(url)
    return {f"http.{parts.scheme}://{parts.netloc}/.extraHeader": header}


def git_env(target: CheckedTarget | None = None, extra: GitConfig | None = None) \
        -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/true",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_ALLOW_PROTOCOL": target.scheme if target else "https",
        "GIT_LFS_SKIP_SMUDGE": "1",
        "LANG": "C",
    }
    for index, (key, value) in enumerate((extra or {}).items()):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    if extra:
        env["GIT_CONFIG_COUNT"] = str(len(extra))
    return env


def check_git_version(version: str | None = None) -> None:
    """Raise ``ConfigError`` unless this machine's git (or ``version``, as ``git
    --version`` prints it) is ``MIN_GIT_VERSION`` or newer. Every process that asks
    a repository's host for anything checks it as it starts."""
    wanted = ".".join(map(str, MIN_GIT_VERSION))
    advice = [f"Install git {wanted} or newer (Debian 12 has 2.39)."]
    if version is None:
        try:
            version = subprocess.run(["git", "--version"], capture_output=True, text=True,
                                     timeout=30, check=True).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConfigError(f"git could not be run: {exc}", suggestions=advice) from exc
    found = re.search(r"(\d+)\.(\d+)", version)
    if found is None or (int(found[1]), int(found[2])) < MIN_GIT_VERSION:
        raise ConfigError(
            f"{version.strip() or 'git'} cannot be held to the addresses the farm checked "
            f"(git {wanted} or newer pins a host's name to them; an older one resolves it "
            "again), so it could be led to a private address.", suggestions=advice)


def git_argv(args: list[str], target: CheckedTarget | None = None) -> list[str]:
    """The full command line: safety settings first, then ``args``."""
    argv = ["git", "-c", "core.hooksPath=/dev/null", "-c", "protocol.file.allow=never",
            "-c", "core.symlinks=true", "-c", "credential.helper=",
            "-c", "http.followRedirects=false", "-c", "fetch.unpackLimit=1"]
    if target is not None:
        argv += ["-c", f"http.curloptResolve={target.curl_resolve()}"]
    return argv + args


def _limit_process(limits: GitLimits) -> Callable[[], None]:
    """What the child runs before git: the bounds of its files and of its memory."""
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_bytes, limits.max_bytes))
        if limits.max_memory:
            # RLIMIT_DATA, not RLIMIT_AS: it counts what git allocates but not its
            # read-only maps of pack files, which may be as large as the download.
            _, hard = resource.getrlimit(resource.RLIMIT_DATA)
            memory = limits.max_memory if hard == resource.RLIM_INFINITY \
                else min(limits.max_memory, hard)
            resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    return apply


def directory_usage(path: Path) -> tuple[int, int]:
    """Bytes of the regular files under ``path`` (links not followed), and how many
    files and folders there are."""
    total = entries = 0
    for root, dirs, files in os.walk(path):
        entries += len(dirs) + len(files)
        for name in files:
            try:
                stat = os.lstat(os.path.join(root, name))
            except OSError:
                continue  # git renamed or removed it meanwhile
            total += stat.st_size
    return total, entries


def directory_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links not followed)."""
    return directory_usage(path)[0]


def _outgrown(limits: GitLimits) -> str | None:
    """``"bytes"`` or ``"entries"`` when the watched directory passed that bound."""
    if limits.watch is None:
        return None
    size, entries = directory_usage(limits.watch)
    if size > limits.watch_bytes:
        return "bytes"
    return "entries" if 0 < limits.watch_entries < entries else None


class ExitNotice:
    """Waits for a process to exit, returning the moment it does (a pidfd in ``select``).

    A quick git command (ls-remote of one ref) must not wait out a poll
    interval: that would add it to every cache answer and every fetch step.
    Without pidfds (not Linux, an old kernel) it falls back to ``Popen.wait``.
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.fd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self.fd = os.pidfd_open(process.pid)

    def wait(self, seconds: float) -> None:
        if self.fd is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=seconds)
            return
        select.select([self.fd], [], [], seconds)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def run_git(args: list[str], timeout: float, cwd: Path | None = None,
            target: CheckedTarget | None = None, limits: GitLimits | None = None,
            extra: GitConfig | None = None) -> str:
    """Run git within ``limits`` and ``timeout``; its stdout, or ``GitError``.

    Raises ``SizeExceeded`` when the watched directory outgrows its bound, and
    ``MemoryExceeded`` when git could not allocate within ``limits.max_memory``.
    """
    limits = limits or GitLimits()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            git_argv(args, target), cwd=cwd, env=git_env(target, extra), stdin=subprocess.DEVNULL,
            stdout=out, stderr=err, preexec_fn=_limit_process(limits))
        deadline = time.monotonic() + timeout
        outgrown: str | None = None
        exited = ExitNotice(process)
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    raise BuildFailure(
                        f"git {args[0]} took longer than {int(timeout)} s and was stopped.",
                        suggestions=["Is the repository very large or its host slow?"],
                        cause=FailureCause.TIMEOUT)
                outgrown = _outgrown(limits)
                if outgrown:
                    break
                exited.wait(min(WATCH_INTERVAL, max(0.0, deadline - time.monotonic())))
            # what git made between the last look and its exit counts too
            outgrown = outgrown or _outgrown(limits)
        finally:
            exited.close()
            if process.poll() is None:
                process.kill()
                process.wait()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read(64 * 1024).decode(errors="replace")
    if outgrown == "entries":
        raise TooManyFiles(f"git {args[0]} made more files than this farm allows.", stderr)
    if outgrown or _hit_file_limit(process.returncode, limits):
        raise SizeExceeded(f"git {args[0]} wrote more than this farm allows.", stderr)
    if process.returncode != 0 and limits.max_memory and OUT_OF_MEMORY_RE.search(stderr):
        log.warning("git %s ran out of memory: %s", args[0], stderr[-4000:])
        raise MemoryExceeded(f"git {args[0]} needed more memory than this farm's limit of "
                             f"{_mib(limits.max_memory)} and was stopped.", stderr,
                             ["Keep fewer branches and tags, and large files out of the "
                              "repository."])
    if process.returncode != 0:
        log.warning("git %s failed (exit %s): %s", args[0], process.returncode, stderr[-4000:])
        raise _failure(args[0], stderr)
    return stdout


def _hit_file_limit(returncode: int, limits: GitLimits) -> bool:
    if returncode == -25:  # SIGXFSZ: a write passed RLIMIT_FSIZE
        return True
    return returncode != 0 and limits.watch is not None and \
        directory_bytes(limits.watch) >= limits.watch_bytes - 64 * 1024


class SizeExceeded(GitError):
    """Git's output, a file or the watched directory passed its bound."""


class TooManyFiles(SizeExceeded):
    """The watched directory passed its count of files and folders."""


class MemoryExceeded(GitError):
    """Git could not allocate what it needed within ``GitLimits.max_memory``."""

    cause = FailureCause.RESOURCES


def _failure(command: str, stderr: str) -> GitError:
    """The fixed sentence for a failed git command (see the module docstring)."""
    lowered = stderr.lower()
    if re.search(r"returned error: 3\d\d", lowered):
        return GitError("The repository's host answered with a redirect, which this farm "
                        "does not follow.", stderr,
                        ["Give the repository's final URL (where the redirect leads)."])
    if any(words in lowered for words in (
            "not found", "returned error: 404", "does not exist", "returned error: 401",
            "returned error: 403", "authentication", "terminal prompts disabled",
            "could not read username")):
        return GitError("The repository does not exist or is not public.", stderr,
                        ["Check the URL and that the repository is public."])
    return GitError(f"git {command} could not read the repository from its host (the host "
                    "is unreachable, refused the connection, or is not a Git server).", stderr,
                    ["Check the URL; retry later if the host is down."])


def _listed_refs(ref: str | None) -> list[str]:
    """The ls-remote options that list only what can name ``ref``: a branch or tag name
    asks for branches and tags alone (protocol v2 sends them as ref prefixes, so a host
    with thousands of pull-request refs does not send those), while the default branch
    (``HEAD``) and any other ``refs/...`` name need the full listing."""
    if ref is None or ref == "HEAD":
        return []
    if ref.startswith("refs/") and not ref.startswith(("refs/heads/", "refs/tags/")):
        return []
    return ["--heads", "--tags"]


def resolve_ref(target: CheckedTarget, ref: str | None, timeout: float,
                extra: GitConfig | None = None, max_memory: int = 0) -> str:
    """The full commit SHA of ``ref`` (default branch when ``None``) via ls-remote, git
    allocating at most ``max_memory`` bytes (0: no bound)."""
    if ref and SHA_RE.match(ref):
        return ref
    output = run_git(["ls-remote", *_listed_refs(ref), "--", target.url], timeout,
                     target=target, extra=extra, limits=GitLimits(max_memory=max_memory))
    refs: dict[str, str] = {}
    for line in output.splitlines():
        sha, _, name = line.partition("\t")
        refs[name] = sha
    if ref is None:
        if "HEAD" not in refs:
            raise BuildFailure("The repository has no default branch (is it empty?).",
                               suggestions=["Push a commit, or name a branch with /tree/REF."])
        return refs["HEAD"]
    for candidate in (f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}", ref):
        if candidate in refs:
            return refs[candidate]
    if ABBREVIATED_SHA_RE.match(ref):
        # A host fetches a commit by its full SHA only, and ls-remote lists only the
        # commits that refs point at, so an abbreviation cannot be resolved.
        raise BuildFailure(f"No branch or tag named {ref!r} in the repository, and a commit "
                           "must be given as its full 40-character SHA.",
                           suggestions=["Use the full SHA (git rev-parse "
                                        f"{ref}), or a branch or tag name."])
    raise BuildFailure(f"No branch or tag named {ref!r} in the repository.",
                       suggestions=["Check the name after /tree/, or use a full commit SHA."])


#: The configuration of a repository made by ``init_repository``.
EMPTY_REPOSITORY_CONFIG = "[core]\n\trepositoryformatversion = 0\n\tbare = false\n"


def init_repository(checkout: Path) -> None:
    """An empty repository in ``checkout/.git`` (``checkout`` is made), laid out as
    ``git init`` lays one out (gitrepository-layout: ``HEAD``, ``objects``, ``refs``,
    ``config``) without the sample hooks it copies, which nothing here runs: written
    here, it costs a fetch no git process. Its ``info/attributes`` make the checkout
    exact (``EXACT_CHECKOUT``)."""
    git_dir = checkout / ".git"
    for folder in ("objects/info", "objects/pack", "refs/heads", "refs/tags", "info"):
        (git_dir / folder).mkdir(parents=True)
    (git_dir / "HEAD").write_text("ref: refs/heads/main\n")
    (git_dir / "config").write_text(EMPTY_REPOSITORY_CONFIG)
    (git_dir / "info" / "attributes").write_text(EXACT_CHECKOUT)


def fetch_commit(target: CheckedTarget, commit: str, checkout: Path, timeout: float,
                 max_bytes: int, say: Say, extra: GitConfig | None = None,
                 max_memory: int = 0) -> Tree:
    """Check out exactly ``commit`` into ``checkout``; return what its tree listing says.

    The download may not pass ``max_bytes``, nor may the tree (checked with
    ``ls-tree`` before anything is written), nor its entry count
    ``MAX_TREE_ENTRIES``, nor may a git process allocate more than ``max_memory``
    bytes (0: no bound): each refusal is a ``BuildFailure`` naming the limit.
    """
    if checkout.exists():
        shutil.rmtree(checkout)
    init_repository(checkout)
    download = GitLimits(max_bytes=max_bytes, max_memory=max_memory, watch=checkout / ".git",
                         watch_bytes=max_bytes, watch_entries=MAX_GIT_ENTRIES)
    try:
        try:
            run_git(["fetch", "--quiet", "--depth", "1", "--no-tags", "--", target.url, commit],
                    timeout, cwd=checkout, target=target, limits=download, extra=extra)
        except (SizeExceeded, MemoryExceeded):
            raise  # the full history would only be larger
        except GitError:
            say("server refused a shallow fetch by SHA; fetching the full history")
            run_git(["fetch", "--quiet", "--no-tags", "--", target.url,
                     "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"],
                    timeout, cwd=checkout, target=target, limits=download, extra=extra)
    except TooManyFiles as exc:
        raise BuildFailure(f"The repository's download made more than {MAX_GIT_ENTRIES} "
                           "files (each branch and tag is one) and was stopped.",
                           suggestions=["Keep fewer branches and tags in the "
                                        "repository."]) from exc
    except SizeExceeded as exc:
        raise BuildFailure(f"The repository's download passed this farm's limit of "
                           f"{_mib(max_bytes)} and was stopped.",
                           suggestions=["Keep large data out of the repository."]) from exc
    tree = check_tree(checkout, commit, timeout, max_bytes)
    try:
        run_git(["checkout", "--quiet", "--detach", commit], timeout, cwd=checkout,
                limits=GitLimits(max_bytes=max(max_bytes, 1), max_memory=max_memory))
    except GitError as exc:
        raise BuildFailure(f"Commit {commit} is not in the repository.",
                           suggestions=["Check the commit SHA."]) from exc
    return tree


def check_tree(checkout: Path, commit: str, timeout: float, max_bytes: int) -> Tree:
    """What ``commit``'s tree holds, from one listing; ``BuildFailure`` when it is over
    a limit."""
    try:
        listing = run_git(["ls-tree", "-r", "-t", "-l", "-z", "--full-tree", commit], timeout,
                          cwd=checkout)
    except SizeExceeded as exc:
        raise BuildFailure("The repository has too many files and folders for this farm.",
                           suggestions=["Keep generated or data files out of the "
                                        "repository."]) from exc
    except GitError as exc:
        raise BuildFailure(f"Commit {commit} is not in the repository.",
                           suggestions=["Check the commit SHA."]) from exc
    total = entries = 0
    submodules: list[str] = []
    for entry in listing.split("\0"):
        if not entry:
            continue
        entries += 1
        described, _, path = entry.partition("\t")
        fields = described.split()
        if len(fields) == 4 and fields[3].isdigit():
            total += int(fields[3])
        if fields and fields[0] == GITLINK_MODE:
            submodules.append(path)
    if entries > MAX_TREE_ENTRIES:
        raise BuildFailure(f"The repository has {entries} files and folders, over this farm's "
                           f"limit of {MAX_TREE_ENTRIES}.",
                           suggestions=["Keep generated or data files out of the repository."])
    if total > max_bytes:
        raise BuildFailure(f"The repository is {_mib(total)}, over this farm's limit of "
                           f"{_mib(max_bytes)}; nothing was checked out.",
                           suggestions=["Keep large data out of the repository."])
    return Tree(total, submodules)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MiB" if size >= 1024 * 1024 else f"{size} bytes"
