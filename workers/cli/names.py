"""The NAME argument of the build and template commands, checked before any request.

A name goes into the request's path: a repository URL given instead would
reach the API as a path it does not have, and its answer would blame
``--url``. The form is the farm's own (``common.naming``).
"""

from __future__ import annotations

import click

from common.naming import possible_name


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


#: The NAME argument of a command.
name_argument = click.argument("name", callback=check_name)
