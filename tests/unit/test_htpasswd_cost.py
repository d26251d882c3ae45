"""The registry's htpasswd: bcrypt's least cost only for a password the farm generated."""

from __future__ import annotations

import bcrypt

from workers.service_auth import htpasswd_line


def cost(line: str) -> int:
    """The bcrypt cost of an htpasswd line (``user:$2b$COST$...``)."""
    return int(line.split(":", 1)[1].split("$")[2])


def test_a_generated_password_gets_the_least_cost_and_a_chosen_one_a_slow_hash() -> None:
    generated = htpasswd_line("farm", "g" * 43, generated=True)
    chosen = htpasswd_line("farm", "hunter2")
    assert (cost(generated), cost(chosen)) == (4, 10)
    for line, password in ((generated, "g" * 43), (chosen, "hunter2")):
        user, hashed = line.strip().split(":", 1)
        assert user == "farm"
        assert bcrypt.checkpw(password.encode(), hashed.encode())
        assert not bcrypt.checkpw(b"wrong", hashed.encode())
