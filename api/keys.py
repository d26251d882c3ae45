"""The API's keys: several valid at once, each with a scope.

Scopes are ordered, each allowing what the smaller ones do:

- ``read``: build status, history, logs and the build list (when
  ``BINDER_PUBLIC_READS`` is off), templates, health details, metrics;
- ``build``: also start and cancel builds;
- ``admin``: also exempt from the start rate limits.

Keys come from three places, all valid at once, so a key is rotated by
adding the new one, moving clients to it, then removing the old one:

- ``BINDER_API_KEY``: one key of scope ``admin`` (generated into the data
  dir when empty), named ``default``;
- ``BINDER_API_KEYS``: comma-separated ``NAME:SCOPE:KEY`` entries;
- ``BINDER_API_KEYS_FILE``: one ``NAME:SCOPE:KEY`` per line (``#``
  comments), read again whenever it changes: no restart to rotate.

``KEY`` may be given as ``sha256:HEX``, the digest of the key, so the
configuration need not hold the key itself. Keys are compared by digest in
constant time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from common.config import Config
from common.errors import ConfigError

log = logging.getLogger(__name__)

FORMAT_HINT = "Write each key as NAME:SCOPE:KEY with SCOPE one of read, build, admin."


class Scope(enum.IntEnum):
    """What a key may do; a larger scope includes the smaller ones."""

    READ = 1
    BUILD = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class ApiKey:
    """A key the farm accepts: its name (for logs and limits), scope and digest."""

    name: str
    scope: Scope
    digest: bytes

    def allows(self, scope: Scope) -> bool:
        return self.scope >= scope


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


#: What a misspelt scope looks like ("write", "builder"): short, letters only.
_SCOPE_WORD = re.compile(r"^[A-Za-z]{1,10}$")


def _unknown_scope(text: str) -> str:
    """The refusal's words for the scope field ``text``: a misspelt scope is quoted; other
    text is not, since it may be a key written where the scope goes (NAME:KEY:SCOPE),
    and the refusal goes to logs."""
    text = text.strip()
    if _SCOPE_WORD.match(text):
        return f"the unknown scope {text!r}"
    return "an unknown scope (not shown: it may be a key written in the scope's place)"


def parse_entry(entry: str, where: str) -> ApiKey:
    """``NAME:SCOPE:KEY`` (or ``NAME:SCOPE:sha256:HEX``) as an ``ApiKey``."""
    name, _, rest = entry.strip().partition(":")
    scope_name, _, key = rest.partition(":")
    if not name or not key:
        raise ConfigError(f"{where}: an API key entry is not NAME:SCOPE:KEY",
                          suggestions=[FORMAT_HINT])
    try:
        scope = Scope[scope_name.strip().upper()]
    except KeyError:
        raise ConfigError(f"{where}: the API key {name!r} has {_unknown_scope(scope_name)}",
                          suggestions=[FORMAT_HINT]) from None
    key = key.strip()
    if key.startswith("sha256:"):
        try:
            value = bytes.fromhex(key.removeprefix("sha256:"))
        except ValueError:
            value = b""
        if len(value) != hashlib.sha256().digest_size:
            raise ConfigError(f"{where}: the API key {name!r} is not a sha256 digest",
                              suggestions=["Write sha256: and the 64 hex digits of the "
                                           "key's SHA-256."])
        return ApiKey(name.strip(), scope, value)
    return ApiKey(name.strip(), scope, digest(key))


def _check_unique(keys: Iterable[ApiKey], where: str) -> list[ApiKey]:
    seen_names: set[str] = set()
    seen_digests: set[bytes] = set()
    result = []
    for key in keys:
        if key.name in seen_names:
            raise ConfigError(f"{where}: two API keys are named {key.name!r}",
                              suggestions=["Give each key a name of its own."])
        if key.digest in seen_digests:
            raise ConfigError(f"{where}: the API key {key.name!r} is given twice",
                              suggestions=["List each key once, with one scope."])
        seen_names.add(key.name)
        seen_digests.add(key.digest)
        result.append(key)
    return result


def read_keys_file(path: Path) -> list[ApiKey]:
    """The entries of a keys file; ``ConfigError`` naming the line that is wrong."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the API keys file {path}: {exc.strerror}",
                          suggestions=["Check BINDER_API_KEYS_FILE."]) from exc
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            keys.append(parse_entry(line, f"{path} line {number}"))
    return keys


class KeyRing:
    """Every key the API accepts right now (see the module docstring)."""

    def __init__(self, config: Config) -> None:
        fixed = [ApiKey("default", Scope.ADMIN, digest(config.api_key))] if config.api_key \
            else []
        fixed += [parse_entry(entry, "BINDER_API_KEYS") for entry in config.api_keys]
        self._fixed = _check_unique(fixed, "BINDER_API_KEYS")
        self._file = Path(config.api_keys_file) if config.api_keys_file else None
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys = self._fixed
        if self._file is not None:
            self._keys = self._load_file(self._file, self._file_stamp(self._file))

    @staticmethod
    def _file_stamp(path: Path) -> tuple[int, int]:
        try:
            status = path.stat()
        except OSError as exc:
            raise ConfigError(f"cannot read the API keys file {path}: {exc.strerror}",
                              suggestions=["Check BINDER_API_KEYS_FILE."]) from exc
        return status.st_mtime_ns, status.st_size

    def _load_file(self, path: Path, stamp: tuple[int, int]) -> list[ApiKey]:
        keys = _check_unique([*self._fixed, *read_keys_file(path)],
                             f"BINDER_API_KEYS and {path}")
        self._stamp = stamp
        return keys

    def _current(self) -> list[ApiKey]:
        """The keys, with the file read again if it changed since (a broken file keeps
        the keys it last gave, and says why in the log)."""
        if self._file is None:
            return self._keys
        with self._lock:
            try:
                stamp = self._file_stamp(self._file)
                if stamp != self._stamp:
                    self._keys = self._load_file(self._file, stamp)
                    log.info("API keys read from %s: %s", self._file,
                             ", ".join(f"{k.name} ({k.scope.label})" for k in self._keys))
            except ConfigError as exc:
                log.error("API keys file not used, keeping the keys read before: %s", exc)
            return self._keys

    def find(self, presented: str) -> ApiKey | None:
        """The key ``presented`` is, or ``None``; compared in constant time."""
        if not presented:
            return None
        wanted = digest(presented)
        found = None
        for key in self._current():
            if hmac.compare_digest(key.digest, wanted):
                found = key
        return found

    def names(self) -> list[str]:
        return [key.name for key in self._current()]

