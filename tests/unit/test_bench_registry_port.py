"""The bench lab's registry keeps its address between runs while it can."""

from __future__ import annotations

import socket
from pathlib import Path

from bench.services import _kept_port


def test_a_saved_free_port_is_used_again(tmp_path: Path) -> None:
    saved = tmp_path / "registry.port"
    first = _kept_port(saved)
    assert saved.read_text() == str(first)
    assert _kept_port(saved) == first


def test_a_saved_port_in_use_gives_way_to_a_new_one_which_is_saved(tmp_path: Path) -> None:
    saved = tmp_path / "registry.port"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        saved.write_text(str(taken))
        chosen = _kept_port(saved)
    assert chosen != taken
    assert saved.read_text() == str(chosen)


def test_an_unreadable_saved_port_is_replaced(tmp_path: Path) -> None:
    saved = tmp_path / "registry.port"
    saved.write_text("not a port")
    assert _kept_port(saved) > 0
    assert saved.read_text().isdigit()
