"""Operators' host commands over the API: ``binder-build worker hosts`` lists the
Docker hosts; ``binder-build worker drain|undrain HOST-ID`` take one out of service
and back.

``hosts`` needs a key that may read; ``drain`` and ``undrain`` a key of scope
``admin``. ``drain`` stops the host taking new builds at once and, unless
``--no-wait``, waits until the builds running there have ended (Ctrl-C stops
waiting; the host stays drained).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from workers.cli.client import EXIT_INTERRUPTED, Session, farm_command
from workers.cli.farm_client import ApiError
from workers.cli.names import host_id_argument
from workers.cli.output import Output, ago

#: Seconds between two looks at a draining host.
POLL_SECONDS = 2.0


def _host(session: Session, host_id: str) -> dict[str, Any]:
    return next((host for host in session.client.hosts() if host.get("host") == host_id), {})


def _show(session: Session, record: dict[str, Any]) -> None:
    if session.as_json:
        session.output.json(record)
        return
    running = record.get("running") or []
    session.output.fields([("host", record.get("host")),
                           ("state", record.get("state")),
                           ("running", ", ".join(running) if running else "none")])


@click.command("hosts")
@farm_command
def list_hosts(session: Session) -> None:
    """List the Docker hosts: state, builds running, free disk, when last seen."""
    session.show(session.client.hosts(), show_hosts)


def show_hosts(output: Output, records: list[dict[str, Any]]) -> None:
    if not records:
        output.note("no Docker host has run a worker of this farm yet "
                    "(binder-build worker starts one)")
        return
    output.table(["host", "state", "builds", "running", "free disk", "engine", "last seen"],
                 [[record.get("host"), record.get("state"),
                   f"{len(record.get('running') or [])}/{record.get('concurrency') or '?'}",
                   ", ".join(record.get("running") or []),
                   _free_disk(record), record.get("engine-version") or "",
                   ago(record.get("last-seen"))] for record in records])


def _free_disk(record: dict[str, Any]) -> str:
    free, least = record.get("free-disk-mb"), record.get("min-free-disk-mb")
    if free is None:
        return ""
    shown = f"{free / 1024:.1f} GiB"
    return f"{shown} (low: under {least} MiB)" if least is not None and free < least else shown


@click.command()
@host_id_argument
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until the builds running on the host have ended.")
@farm_command
def drain(session: Session, host_id: str, wait: bool) -> None:
    """Take HOST-ID out of service: it takes no new builds and finishes its running ones."""
    record = session.client.drain(host_id, True)
    if not wait:
        _show(session, record)
        return
    shown: list[str] | None = None
    told_lost = False
    try:
        while record.get("running"):
            if record["running"] != shown and not session.as_json:
                session.output.note(f"{host_id} is draining; waiting for "
                                    f"{', '.join(record['running'])}")
                shown = record["running"]
            if record.get("state") == "lost" and not told_lost:
                # Its builds do end: the reaper gives them back to the queue, for
                # another host, once they go unheard.
                session.output.note(
                    f"{host_id} is not heard from (its worker stopped or lost its network); "
                    "its builds go back to the queue once they go unheard for "
                    "BINDER_HEARTBEAT_STALE seconds. Still waiting (Ctrl-C stops waiting)")
                told_lost = True
            time.sleep(POLL_SECONDS)
            record = _host(session, host_id)
            if not record:
                raise ApiError(f"{host_id} is no longer among the farm's hosts (its record "
                               "was removed): there is nothing left to wait for.",
                               ["binder-build worker hosts lists the hosts there are."])
    except KeyboardInterrupt:
        session.output.note(f"stopped waiting; {host_id} stays drained "
                            f"(binder-build worker undrain {host_id} takes it back)")
        sys.exit(EXIT_INTERRUPTED)
    _show(session, record)


@click.command()
@host_id_argument
@farm_command
def undrain(session: Session, host_id: str) -> None:
    """Put HOST-ID back into service: it takes new builds again."""
    _show(session, session.client.drain(host_id, False))


COMMANDS = (list_hosts, drain, undrain)
