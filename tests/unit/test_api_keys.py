"""API keys: several at once, scopes, a keys file read again when it changes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from api.keys import KeyRing, Scope, parse_entry
from common.config import load_config
from common.errors import ConfigError


def ring(tmp_path: Path, **environ: str) -> KeyRing:
    return KeyRing(load_config(environ={"BINDER_DATA_DIR": str(tmp_path), **environ}))


def test_scopes_include_the_smaller_ones() -> None:
    admin = parse_entry("ops:admin:k1", "test")
    build = parse_entry("launcher:build:k2", "test")
    read = parse_entry("dashboard:read:k3", "test")
    assert [admin.allows(s) for s in Scope] == [True, True, True]
    assert [build.allows(s) for s in Scope] == [True, True, False]
    assert [read.allows(s) for s in Scope] == [True, False, False]


def test_keys_from_settings_are_all_valid_at_once(tmp_path: Path) -> None:
    keys = ring(tmp_path, BINDER_API_KEY="the-admin-key",
                BINDER_API_KEYS="old:build:old-key, new:build:new-key,reader:read:r-key")
    assert keys.find("the-admin-key").name == "default"  # type: ignore[union-attr]
    assert keys.find("the-admin-key").scope is Scope.ADMIN  # type: ignore[union-attr]
    assert keys.find("old-key").name == "old"  # type: ignore[union-attr]
    assert keys.find("new-key").name == "new"  # type: ignore[union-attr]
    assert keys.find("r-key").scope is Scope.READ  # type: ignore[union-attr]
    assert keys.find("new-key ") is None and keys.find("") is None
    assert keys.find("NEW-KEY") is None


def test_a_key_may_be_given_by_its_digest(tmp_path: Path) -> None:
    hexdigest = hashlib.sha256(b"only-the-client-knows").hexdigest()
    keys = ring(tmp_path, BINDER_API_KEYS=f"ci:read:sha256:{hexdigest}")
    assert keys.find("only-the-client-knows").name == "ci"  # type: ignore[union-attr]
    assert keys.find(f"sha256:{hexdigest}") is None


@pytest.mark.parametrize(("entries", "says"), [
    ("nocolon", "not NAME:SCOPE:KEY"),
    ("a:read:", "not NAME:SCOPE:KEY"),
    ("a:write:k", "unknown scope 'write'"),
    ("a:read:k1,a:build:k2", "two API keys are named 'a'"),
    ("a:read:k1,b:build:k1", "is given twice"),
    ("a:read:sha256:xyz", "not a sha256 digest"),
])
def test_bad_entries_are_refused_with_a_sentence(tmp_path: Path, entries: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ring(tmp_path, BINDER_API_KEYS=entries)
    assert says in caught.value.message
    assert "SECRET" not in caught.value.message


@pytest.mark.parametrize("entry", ["ci:Zk3vQ9sL2mN8pR4tYw:read", "ci:zk3vq9sl2m:read"])
def test_a_key_written_where_the_scope_goes_is_not_told(tmp_path: Path, entry: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    # NAME:KEY:SCOPE, the key in the scope's place: the refusal goes to the logs.
    with pytest.raises(ConfigError) as caught:
        ring(tmp_path, BINDER_API_KEYS=entry)
    assert "unknown scope" in caught.value.message and "ci" in caught.value.message
    assert "zk3v" not in caught.value.message.lower()
    path = tmp_path / "keys"
    path.write_text("launcher:build:first-key\n")
    keys = ring(tmp_path, BINDER_API_KEYS_FILE=str(path))
    path.write_text(entry + "\n")
    os.utime(path, ns=(7, 8))
    assert keys.find("first-key") is not None
    assert "unknown scope" in caplog.text and "zk3v" not in caplog.text.lower()


def test_the_keys_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# launcher keys\nlauncher:build:first-key\n\n")
    keys = ring(tmp_path, BINDER_API_KEYS_FILE=str(path))
    assert keys.find("first-key").name == "launcher"  # type: ignore[union-attr]

    path.write_text("launcher:build:first-key\nlauncher-2:build:second-key  # rotation\n")
    os.utime(path, ns=(1, 2))  # a new stamp even within the same clock tick
    assert keys.find("second-key").name == "launcher-2"  # type: ignore[union-attr]
    assert keys.find("first-key") is not None

    path.write_text("launcher-2:build:second-key\n")
    os.utime(path, ns=(3, 4))
    assert keys.find("first-key") is None
    assert keys.find("second-key") is not None


def test_a_broken_keys_file_keeps_the_keys_it_gave(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "keys"
    path.write_text("launcher:build:first-key\n")
    keys = ring(tmp_path, BINDER_API_KEYS_FILE=str(path))
    path.write_text("launcher:builder:first-key\n")
    os.utime(path, ns=(5, 6))
    assert keys.find("first-key") is not None
    assert "line 1" in caplog.text and "unknown scope" in caplog.text


def test_a_keys_file_that_is_wrong_at_start_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("ok:read:k1\nbroken\n")
    with pytest.raises(ConfigError, match="line 2"):
        ring(tmp_path, BINDER_API_KEYS_FILE=str(path))
    with pytest.raises(ConfigError, match="cannot read"):
        ring(tmp_path, BINDER_API_KEYS_FILE=str(tmp_path / "missing"))
