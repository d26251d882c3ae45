"""``binder-build``: the program's entry (``[project.scripts]``)."""

from __future__ import annotations

import click

from workers.cli import client, hosts, server


@click.group()
@click.version_option(package_name="binder-build", prog_name="binder-build",
                      message="%(prog)s %(version)s")
def main() -> None:
    """Binder build farm: turns Git repositories into Binder images.

    \b
    Run a farm on this machine:   binder-build up
    Build a repository on it:     binder-build build start URL --follow
    Every setting and default:    binder-build settings
    """


for _command in (*server.COMMANDS, *client.COMMANDS):
    main.add_command(_command)
for _command in hosts.COMMANDS:
    server.worker.add_command(_command)

if __name__ == "__main__":
    main()
