"""What the commands suggest when the farm refuses a request, in the commands' own terms.

The farm's error bodies suggest what an HTTP client should do ("send
force: true", "GET /builds/NAME"): they are the API's contract with its
other clients (BinderHub, launchers) and stay as they are. A command reads
the error's ``type`` (the Binder protocol's code) instead, and suggests the
command or option that does the same: ``in_command_terms`` replaces the
farm's suggestions for the types listed here. The other types keep the
farm's suggestions, which speak of the repository, the key's scope or the
farm's settings rather than of HTTP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from workers.cli.client_settings import LOCAL_FARM_KEY, NO_KEY, NO_LOCAL_KEY, OPTION_KEY
from workers.cli.farm_client import ApiError

#: A command's suggestions for an error, given the command's arguments and options,
#: and under ``KEY_SOURCE`` where its key came from (``ClientSettings.key_source``).
Hint = Callable[[ApiError, Mapping[str, Any]], list[str]]
KEY_SOURCE = "key_source"


def _name(error: ApiError, args: Mapping[str, Any]) -> str:
    """The build the error is about: the one the answer names, else the command's NAME."""
    return error.name or args.get("name") or "NAME"


def _already_building(error: ApiError, args: Mapping[str, Any]) -> list[str]:
    return [f"Follow it with: binder-build build logs {_name(error, args)} --follow "
            "(or start it with --follow).",
            "Or restart it: start it again with --force."]


def _no_build(error: ApiError, args: Mapping[str, Any]) -> list[str]:
    if args.get("build_id"):
        return [f"List its attempts with: binder-build build history {_name(error, args)}"]
    return ["Is the name spelled correctly? List builds with: binder-build build list",
            "Or start one with: binder-build build start REPOSITORY"]


def _log_pruned(error: ApiError, args: Mapping[str, Any]) -> list[str]:
    name = _name(error, args)
    return [f"The build record is kept: binder-build build status {name}, "
            f"binder-build build history {name}.",
            "Start the build again with --force to make a new log."]


def _too_many_followers(error: ApiError, args: Mapping[str, Any]) -> list[str]:
    return ["Run the command again in a few seconds, or read the log so far without --follow.",
            "If it persists, tell the farm's operators: its API follows all the logs it may."]


def _unauthorized(error: ApiError, args: Mapping[str, Any]) -> list[str]:
    where = "with --api-key, BINDER_API_KEY or api_key in the client config (--client-config)."
    source = args.get(KEY_SOURCE)
    if source not in (NO_KEY, NO_LOCAL_KEY):
        # A key was sent and refused: name the one to replace.
        sent = {OPTION_KEY: "given with --api-key or BINDER_API_KEY",
                LOCAL_FARM_KEY: "saved in .binder-data/api-key by a farm on this machine",
                None: "sent"}.get(source, f"in {source}")
        return [f"The farm does not know the key {sent}: give one of its keys {where}"]
    hints = [f"No API key was sent: give a key of the farm {where}"]
    if source == NO_LOCAL_KEY:  # looked for where `binder-build up` saves it, in vain
        hints.append("A farm on this machine (binder-build up) keeps its key in "
                     ".binder-data/api-key of the folder it runs in (BINDER_DATA_DIR): run "
                     "the command there, or give that key.")
    return hints


def _not_valid(error: ApiError, args: Mapping[str, Any]) -> list[str]:
    return ["Each field named is the command's argument or option of that name (ref is "
            "--ref); fix it and run the command again."]


def _rate_limited(error: ApiError, args: Mapping[str, Any]) -> list[str]:
    return ["Run the command again once that time has passed."]


def _no_such_route(error: ApiError, args: Mapping[str, Any]) -> list[str]:
    return ["Check that --url (BINDER_URL) is the farm's API address, with no path."]


def _no_template(error: ApiError, args: Mapping[str, Any]) -> list[str]:
    return ["Is the name spelled correctly? List the templates with: binder-build templates "
            "list (a template appears when its build completes)."]


def _no_host(error: ApiError, args: Mapping[str, Any]) -> list[str]:
    return ["Is HOST-ID spelled correctly? List the hosts with: binder-build worker hosts"]


#: The suggestions of every command, by the error's ``type``.
EVERY_COMMAND: dict[str, Hint] = {
    "alreadyBuilding": _already_building,
    "noBuildInfo": _no_build,
    "logPruned": _log_pruned,
    "tooManyFollowers": _too_many_followers,
    "unauthorized": _unauthorized,
    "malformedRequest": _not_valid,
    "badQuery": _not_valid,
    "rateLimited": _rate_limited,
    # Only templates and hosts are looked up as resources of their own; for any
    # other command this is a path the API does not have.
    "doesNotExist": _no_such_route,
}

#: Where a type means something of its own to one command (``command path`` without
#: the program's name, ``type``).
ONE_COMMAND: dict[tuple[str, str], Hint] = {
    ("templates show", "doesNotExist"): _no_template,
    ("worker drain", "doesNotExist"): _no_host,
    ("worker undrain", "doesNotExist"): _no_host,
}


def in_command_terms(error: ApiError, command: str, args: Mapping[str, Any]) -> ApiError:
    """``error`` with the suggestions ``command`` (``"build start"``) makes for its type,
    given the command's ``args``; as it is for a type with none of its own."""
    hint = ONE_COMMAND.get((command, error.type)) or EVERY_COMMAND.get(error.type)
    if hint is None:
        return error
    return dataclasses.replace(error, suggestions=hint(error, args))
