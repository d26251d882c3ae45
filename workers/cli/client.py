"""The user commands: ``binder-build build ...`` and ``binder-build templates ...`` over HTTP.

Every command takes ``--url`` and ``--api-key`` (see ``client_settings``)
and prints for people on a terminal, plain text in a pipe, or JSON with
``--json``. A request that fails prints the farm's sentence and
suggestions (in the commands' terms, see ``hints``) and exits 1; there
is never a traceback.

Exit codes of ``build start --follow``: 0 when the build completed, 1 when
it failed or was cancelled (and on any API error), 130 on Ctrl-C.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from common.models import SHOWN_AS_RUNNING, Status, shown_status
from common.terminal_text import shown_line
from workers.cli.build_view import (
    LiveBuildView,
    PlainBuildView,
    phase_times,
    summarise,
    template_pairs,
)
from workers.cli.build_watch import is_final, seconds_between, watch_build
from workers.cli.client_settings import resolve
from workers.cli.farm_client import ApiError, FarmClient
from workers.cli.hints import KEY_SOURCE, in_command_terms
from workers.cli.names import name_argument
from workers.cli.output import Output, ago, duration

F = TypeVar("F", bound=Callable[..., Any])
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


class Session:
    """What a command needs: the client for the chosen farm and where to print."""

    def __init__(self, url: str | None, api_key: str | None, config_file: str | None,
                 as_json: bool) -> None:
        self.settings = resolve(url, api_key, config_file)
        self.client = FarmClient(self.settings.url, self.settings.api_key)
        self.output = Output()
        self.as_json = as_json

    def show(self, answer: Any, for_people: Callable[[Output, Any], None]) -> None:
        """Print the API's ``answer``: as JSON with ``--json``, else as ``for_people`` does."""
        if self.as_json:
            self.output.json(answer)
        else:
            for_people(self.output, answer)


def command_path() -> str:
    """The running command as a user types it after the program's name (``build start``)."""
    context = click.get_current_context()
    return context.command_path.removeprefix(context.find_root().command_path).strip()


def farm_command_printing(json_help: str) -> Callable[[F], F]:
    """``farm_command`` for a command whose ``--json`` prints what ``json_help`` says."""
    return functools.partial(farm_command, json_help=json_help)


def farm_command(view: F, json_help: str = "Print the API's JSON.") -> F:
    """Add the connection options and ``--json``; turn ``ApiError`` into message + exit 1,
    with the suggestions of ``hints`` where it has its own."""

    @click.option("--json", "as_json", is_flag=True, help=json_help)
    @click.option("--client-config", envvar="BINDER_CLIENT_CONFIG", metavar="FILE",
                  help="Client config file (TOML: url, api_key) [BINDER_CLIENT_CONFIG; "
                       "default ~/.config/binder-build/client.toml].")
    @click.option("--api-key", envvar="BINDER_API_KEY", metavar="KEY",
                  help="The farm's API key [BINDER_API_KEY].")
    @click.option("--url", envvar="BINDER_URL", metavar="URL",
                  help="The farm's API [BINDER_URL; default the local farm, "
                       "http://127.0.0.1:BINDER_PORT].")
    @functools.wraps(view)
    def wrapper(url: str | None, api_key: str | None, client_config: str | None,
                as_json: bool, **kwargs: Any) -> Any:
        output = Output()
        session: Session | None = None
        try:
            session = Session(url, api_key, client_config, as_json)
            return view(session, **kwargs)
        except ApiError as exc:
            key_source = session.settings.key_source if session else None
            output.error(in_command_terms(exc, command_path(),
                                          {**kwargs, KEY_SOURCE: key_source}))
            sys.exit(EXIT_FAILED)

    return wrapper  # type: ignore[return-value]


@click.group()
def build() -> None:
    """Start, watch and cancel builds on a farm."""


@click.group()
def templates() -> None:
    """Read the templates of completed builds."""


# -- build --------------------------------------------------------------------


def check_ref(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``value`` unless it is empty: an empty ref (``--ref "$UNSET"``) names nothing, and
    building the default branch for it would hide the mistake."""
    if value is not None and not value.strip():
        raise click.BadParameter("an empty ref names nothing: name a branch, tag or commit, "
                                 "or leave --ref out to build the default branch.")
    return value


@build.command("start")
@click.argument("repository")
@click.option("--ref", callback=check_ref,
              help="Branch, tag or commit to build (default: the default branch).")
@click.option("--force", is_flag=True, help="Build again even if an image exists, or restart "
                                            "a running build.")
@click.option("--follow", "-f", is_flag=True, help="Watch the build until it ends; exit 0 when "
                                                   "it completed, 1 when not.")
@farm_command
def start(session: Session, repository: str, ref: str | None, force: bool, follow: bool) -> None:
    """Start a build of REPOSITORY (https://github.com/OWNER/REPO or any Git URL); with
    --follow, a build of it that is already running is followed instead."""
    try:
        record = session.client.start(repository, force, ref)
    except ApiError as exc:
        if not (follow and exc.type == "alreadyBuilding" and exc.name):
            raise
        session.output.note(f"{exc.name} is already building: following it")
        record = session.client.build(exc.name)
    if not follow:
        if session.as_json:
            session.output.json(record)
        elif record.get("cached") and is_final(record):
            # Nothing was started: the farm answered with the image it had built.
            session.output.fields([("already built", record.get("name")),
                                   ("status", session.output.status(shown_status(record))),
                                   ("image", record.get("image-name"))])
        else:
            session.output.fields([("started", record.get("name")),
                                   ("status", session.output.status(shown_status(record))),
                                   ("follow", f"binder-build build logs {record.get('name')} "
                                              "--follow")])
        return
    sys.exit(follow_build(session, record))


def follow_build(session: Session, record: dict[str, Any]) -> int:
    """Watch ``record``'s attempt to its end; the exit code its status deserves."""
    output = session.output
    if session.as_json:
        view: LiveBuildView | PlainBuildView = PlainBuildView(output, record, echo=output.note)
    elif output.terminal:
        view = LiveBuildView(output, record)
    else:
        view = PlainBuildView(output, record)
    try:
        with view:
            final = watch_build(session.client, record, view)
    except KeyboardInterrupt:
        offer_cancel(session, record["name"])
        return EXIT_INTERRUPTED
    finally:
        session.client.close()
    template: dict[str, Any] | ApiError | None = None
    if final.get("status") == Status.COMPLETED.value:
        try:
            template = FarmClient(session.settings.url, session.settings.api_key).template(
                final["name"])
        except ApiError as exc:
            template = exc
    if session.as_json:
        output.json({**final, "template": template if isinstance(template, dict) else None})
    else:
        summarise(output, final, template)
    return 0 if final.get("status") == Status.COMPLETED.value else EXIT_FAILED


def offer_cancel(session: Session, name: str) -> None:
    """After Ctrl-C: ask whether to cancel (on a terminal), else say how to."""
    output = session.output
    hint = f"The build goes on; cancel it with: binder-build build cancel {name}"
    if not (sys.stdin.isatty() and output.err.is_terminal):
        output.note(hint)
        return
    try:
        cancel_it = click.confirm(f"\nCancel the build {name}?", default=False, err=True)
    except click.Abort:
        cancel_it = False
    if not cancel_it:
        output.note(hint)
        return
    try:
        FarmClient(session.settings.url, session.settings.api_key).cancel(name)
        output.note(f"cancelling {name}")
    except ApiError as exc:
        output.error(exc)


@build.command("status")
@name_argument
@farm_command
def status(session: Session, name: str) -> None:
    """Show one build: status, phase, image, times, error."""
    session.show(session.client.build(name), show_build)


def show_build(output: Output, record: dict[str, Any]) -> None:
    output.fields([
        ("name", record.get("name")),
        ("status", output.status(shown_status(record))),
        ("phase", record.get("phase")),
        ("repository", record.get("repository")),
        ("ref", record.get("ref")),
        ("commit", record.get("commit")),
        ("image", record.get("image-name")),
        ("planned image", record.get("planned-image")),
        ("rejected image", record.get("rejected-image")),
        ("config", record.get("config")),
        ("worker", record.get("worker")),
        ("started", f"{record.get('start-time')} ({ago(record.get('start-time'))})"),
        ("duration", duration(seconds_between(record.get("start-time"),
                                              record.get("end-time")))),
        ("cached", "yes" if record.get("cached") else None),
        ("attempt", record.get("attempt") if (record.get("attempt") or 1) > 1 else None),
        ("phases", phase_times(record)),
        # A cancel someone asked for is no error (as on the build page).
        ("reason" if record.get("status") == Status.CANCELLED.value else "error",
         record.get("error")),
        ("cause", record.get("cause")),
        *[("suggestion", suggestion) for suggestion in record.get("suggestions") or []],
    ])


def build_rows(output: Output, records: list[dict[str, Any]],
               first: str = "name") -> list[list[Any]]:
    return [[record.get(first) or "", output.status(shown_status(record)), record.get("phase"),
             record.get("repository"), ago(record.get("start-time")),
             duration(seconds_between(record.get("start-time"), record.get("end-time"))),
             "yes" if record.get("cached") else ""] for record in records]


class StatusFilter(click.Choice):
    """A status the farm keeps; the statuses only shown (``shown_status``) are told where
    their builds are, rather than refused as unknown words."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if value in SHOWN_AS_RUNNING:
            self.fail(f"{value} is how a running build is shown, not a status the farm "
                      "keeps: queued and cancelling builds are listed with --status running.",
                      param, ctx)
        return super().convert(value, param, ctx)


@build.command("list")
@click.option("--status", "status_", type=StatusFilter([s.value for s in Status]),
              help="Only builds with this status (running includes the builds shown queued "
                   "and cancelling).")
@click.option("--repository", help="Only builds of this repository URL.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="How many builds, newest first.")
@farm_command
def list_builds(session: Session, status_: str | None, repository: str | None,
                limit: int) -> None:
    """List builds, newest first."""

    def show(output: Output, records: list[dict[str, Any]]) -> None:
        if not records:
            output.note("no builds" + (f" with status {status_}" if status_ else "")
                        + (f" of {repository}" if repository else ""))
            return
        output.table(["name", "status", "phase", "repository", "started", "duration",
                      "cached"], build_rows(output, records))

    session.show(session.client.builds(status=status_, repository=repository, limit=limit),
                 show)


@build.command("history")
@name_argument
@farm_command
def history(session: Session, name: str) -> None:
    """List every attempt of a build, newest first."""
    session.show(session.client.history(name), show_history)


def show_history(output: Output, records: list[dict[str, Any]]) -> None:
    output.table(["build-id", "status", "phase", "repository", "started", "duration",
                  "cached"], build_rows(output, records, first="build-id"))


@build.command("logs")
@name_argument
@click.option("--follow", "-f", is_flag=True, help="Keep printing lines until the build ends.")
@click.option("--build-id", help="An earlier attempt's log (see build history).")
@farm_command_printing("Print one JSON object per line (see above).")
def logs(session: Session, name: str, follow: bool, build_id: str | None) -> None:
    """Print a build's log, each line as a terminal leaves it (a line redrawn with
    carriage returns, its last redraw).

    With --json, one JSON object per line: {"text": ...} for each log line, its
    colour codes kept, the same text followed or not; with --follow each also has
    its line number as "id", and the end of the build is {"event": "end",
    "data": STATUS}. The log with every byte kept is GET /builds/NAME/logs.

    With --follow it exits 0 whatever the build's outcome, once the log is printed
    to its end (binder-build build start --follow exits 1 when the build did not
    complete; build status tells a build's outcome).
    """
    output = session.output
    if not follow:
        text = session.client.log_text(name, build_id)
        # Lines end at newlines only: a carriage return redraws a line, it does not end one.
        for line in text.removesuffix("\n").split("\n") if text else []:
            if session.as_json:
                # as the followed log's events carry it, which cannot hold a carriage return
                output.json_line({"text": shown_line(line)})
            else:
                output.log_line(line)
        return
    try:
        for event in session.client.follow_log(name, build_id):
            if event.kind == "line":
                if session.as_json:
                    output.json_line({"id": event.id, "text": event.text})
                else:
                    output.log_line(event.text)
            elif session.as_json:
                output.json_line({"event": event.kind, "data": event.text})
            elif event.kind == "error":
                again = f"binder-build build logs {name} --follow" + \
                    (f" --build-id {build_id}" if build_id else "")
                raise ApiError(f"The log could not be read: {event.text}",
                               [f"Follow it again with: {again}"])
            else:
                output.note(f"build {name} {event.text}")
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


@build.command("cancel")
@name_argument
@farm_command
def cancel(session: Session, name: str) -> None:
    """Cancel a queued or running build (it ends cancelled)."""

    def show(output: Output, record: dict[str, Any]) -> None:
        ended = record.get("status")
        if ended == Status.CANCELLED.value:
            output.line(f"{name} is cancelled")
        elif is_final(record):
            # Cancelling is idempotent, so this is no error; but nothing was stopped.
            output.line(f"{name} had already ended {ended}: there was nothing to cancel")
        else:
            output.line(f"cancelling {name} (it stops within a few seconds)")

    session.show(session.client.cancel(name), show)


# -- templates ----------------------------------------------------------------


@templates.command("list")
@farm_command
def list_templates(session: Session) -> None:
    """List templates: one per completed build."""
    session.show(session.client.templates(), show_templates)


def show_templates(output: Output, records: list[dict[str, Any]]) -> None:
    if not records:
        output.note("no templates")
        return
    output.table(
        ["name", "image", "port", "repository", "modified"],
        [[t.get("name"), t.get("image-name"), t.get("port"), t.get("repository"),
          ago(t.get("time-modified"))] for t in records])


@templates.command("show")
@name_argument
@farm_command
def show_template(session: Session, name: str) -> None:
    """Show a template: image, port, command, limits and how to run it."""
    session.show(session.client.template(name), show_template_fields)


def show_template_fields(output: Output, template: dict[str, Any]) -> None:
    output.fields([("image", template.get("image-name")),
                   ("repository", template.get("repository")),
                   ("commit", template.get("commit")),
                   ("config", template.get("config")),
                   *template_pairs(template),
                   ("modified", template.get("time-modified"))])


COMMANDS = (build, templates)
