"""The NAME and HOST-ID arguments of the commands, checked before any request.

Each goes into the request's path: a repository URL given as a name would
reach the API as a path it does not have, and its answer would blame
``--url``. The forms are the farm's own (``common.naming``, ``workers.queues``).
"""

from __future__ import annotations

import click

from common.naming import possible_name
from workers.queues import HOST_ID_RE


def check_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``value`` if it can be a build's name; a usage error saying what it is if not."""
    if possible_name(value):
        return value
    if "/" in value:
        raise click.BadParameter(
            f"{value} is a repository, not a build's name (such as owner-repo): binder-build "
            f"build list --repository {value} lists its builds with their names.")
    raise click.BadParameter(
        f"{value!r} is not a build's name: names are lower-case letters, digits, '.', '_' "
        "and '-' (binder-build build list shows them).")


def check_host_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``value`` if it can be a Docker host's id; a usage error if not."""
    if HOST_ID_RE.match(value):
        return value
    raise click.BadParameter(
        f"{value!r} is not a host id: host ids are letters, digits, '.', '-' and '_' "
        "(binder-build worker hosts lists them).")


#: The NAME argument of a command.
name_argument = click.argument("name", callback=check_name)
#: The HOST-ID argument of a command.
host_id_argument = click.argument("host_id", metavar="HOST-ID", callback=check_host_id)
