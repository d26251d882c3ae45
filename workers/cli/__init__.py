"""``binder-build``: the program's entry (``[project.scripts]``)."""

from __future__ import annotations

import click

from workers.cli import client, hosts, server


@click.group()
def main() -> None:
    """Binder build farm."""


for _command in (*server.COMMANDS, *client.COMMANDS):
    main.add_command(_command)
for _command in hosts.COMMANDS:
    server.worker.add_command(_command)

if __name__ == "__main__":
    main()
