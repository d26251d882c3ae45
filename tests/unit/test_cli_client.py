"""The user commands' logic without a farm: settings, SSE parsing, phases, the follow loop."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from api.schemas.templates import docker_run_command
from common.models import shown_status
from common.terminal_text import shown_line
from workers.cli import build_watch, main
from workers.cli.build_view import LiveBuildView, PlainBuildView, phase_state, summarise
from workers.cli.build_watch import watch_build
from workers.cli.client import show_build
from workers.cli.client_settings import DEFAULT_URL, read_client_config, resolve
from workers.cli.farm_client import ApiError, LogEvent, parse_sse
from workers.cli.output import Output, ago, duration, strip_ansi

T0 = "2026-01-01T10:00:00"


def at(seconds: float) -> str:
    return (dt.datetime.fromisoformat(T0) + dt.timedelta(seconds=seconds)).isoformat()


def record(status: str = "running", phase: str = "building", **phases: Any) -> dict[str, Any]:
    return {"name": "o-r", "build-id": "b1", "repository": "https://h/o/r", "status": status,
            "phase": phase, "start-time": T0, "end-time": None, "phases": phases}


class FakeResponse:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def iter_lines(self, chunk_size: int | None = None) -> Iterator[bytes]:
        yield from self.body.split(b"\n")


def test_sse_lines_end_and_unicode_separators() -> None:
    body = ("retry: 1000\n\nid: 1\ndata: first \u2028 still first\n\n: keep-alive\n\n"
            "id: 2\ndata: two\ndata: parts\n\nevent: end\ndata: completed\n\n").encode()
    events = list(parse_sse(FakeResponse(body)))  # type: ignore[arg-type]
    assert events == [LogEvent("line", "first \u2028 still first", 1),
                      LogEvent("line", "two\nparts", 2), LogEvent("end", "completed", None)]


@pytest.mark.parametrize(("status", "phase", "phases", "expected"), [
    ("running", "building", {"fetching": {"start": T0, "end": T0},
                             "building": {"start": T0}}, ["done", "pending", "running"]),
    ("failed", "building", {"fetching": {"start": T0, "end": T0},
                            "building": {"start": T0, "end": T0}}, ["done", "pending", "failed"]),
    ("completed", "finished", {"fetching": {"start": T0, "end": T0},
                               "building": {"start": T0}}, ["done", "skipped", "done"]),
    ("cancelled", "queued", {}, ["pending", "pending", "pending"]),
])
def test_phase_states(status: str, phase: str, phases: dict[str, Any],
                      expected: list[str]) -> None:
    shown = record(status, phase, **phases)
    assert [phase_state(shown, p) for p in ("fetching", "detecting", "building")] == expected


def test_durations_and_ages() -> None:
    assert duration(None) == "" and duration(4.25) == "4.2s"
    assert duration(125) == "2m 05s" and duration(3720) == "1h 02m"
    now = dt.datetime.fromisoformat(T0).replace(tzinfo=dt.UTC)
    assert ago(at(-42), now) == "42s ago" and ago(at(-7200), now) == "2h ago"
    assert ago(None) == "" and ago("not a time") == ""


def test_terminal_text_helpers() -> None:
    assert strip_ansi("\x1b[31mred\x1b[0m plain") == "red plain"
    assert shown_line("10%\r50%\r100%\r") == "100%"
    assert shown_line("#7 1.23 10%\r100%") == "#7 1.23 100%"  # the step prefix stays
    assert shown_line("#7 1.23 \r") == "#7 1.23 " and shown_line("a\x1b[0m") == "a\x1b[0m"


def test_settings_come_from_options_then_file_then_defaults(tmp_path: Path) -> None:
    config = tmp_path / "client.toml"
    config.write_text('url = "https://farm.example"\napi_key = "from-file"\n')
    assert resolve(None, None, str(config)).api_key == "from-file"
    assert resolve("http://other:1", "given", str(config)).url == "http://other:1"
    assert resolve(None, "given", str(config)).api_key == "given"
    missing = tmp_path / "nothing.toml"
    with pytest.raises(ApiError, match="does not exist"):
        resolve(None, None, str(missing))
    assert read_client_config(missing, required=False) == {}
    config.write_text('url = "x"\ntoken = "y"\n')
    with pytest.raises(ApiError, match="unknown keys: token"):
        read_client_config(config, required=True)
    config.write_text("url = \n")
    with pytest.raises(ApiError, match="not valid TOML"):
        read_client_config(config, required=True)


def test_default_farm_is_the_local_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("BINDER_DATA_DIR", str(tmp_path / "data"))
    assert resolve(None, None, None).url == DEFAULT_URL
    assert resolve(None, None, None).api_key is None
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "api-key").write_text("saved-key\n")
    assert resolve(None, None, None).api_key == "saved-key"
    # never sent anywhere but to a farm on this machine
    assert resolve("https://farm.example", None, None).api_key is None


@pytest.mark.parametrize(("host", "url"), [
    ("127.0.0.1", "http://127.0.0.1:9000"),
    ("0.0.0.0", "http://127.0.0.1:9000"),  # bound to every address: reached on loopback
    ("::", "http://127.0.0.1:9000"),
    ("::1", "http://[::1]:9000"),
])
def test_default_farm_is_where_the_local_one_listens(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, host: str, url: str) -> None:
    """``BINDER_PORT=9000 binder-build up``, then a command in the same shell."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("BINDER_HOST", host)
    monkeypatch.setenv("BINDER_PORT", "9000")
    assert resolve(None, None, None).url == url


def test_a_broken_local_setting_leaves_the_default_farm(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("BINDER_PORT", "not-a-port")
    assert resolve(None, None, None).url == DEFAULT_URL


def test_run_command_follows_the_template() -> None:
    template = {"image_name": "reg/img:abc", "port": 9000, "command": "start-it --now",
                "limits": {"memory": "1G", "cpu": "2"}, "hardware": {"gpu": 1}}
    assert docker_run_command(template) == ("docker run --rm -it -p 127.0.0.1:9000:9000 "
                                            "--memory 1G --cpus 2 --gpus 1 reg/img:abc "
                                            "start-it --now")


def plain_output() -> tuple[Output, io.StringIO]:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    return Output(console, console), buffer


def test_plain_table_is_tab_separated(capsys: pytest.CaptureFixture[str]) -> None:
    output, _ = plain_output()
    output.table(["name", "cached"], [["a", True], ["b", None]])
    assert capsys.readouterr().out == "NAME\tCACHED\na\tyes\nb\t\n"


def test_status_shows_a_failures_suggestions_under_its_error() -> None:
    output, buffer = plain_output()
    show_build(output, {"name": "o-r", "status": "failed", "error": "Bad YAML.",
                        "suggestions": ["Fix the YAML syntax.", "Allowed keys: port."]})
    lines = buffer.getvalue().splitlines()
    assert lines[-3:] == ["error       Bad YAML.", "suggestion  Fix the YAML syntax.",
                          "suggestion  Allowed keys: port."]


def test_a_terminal_is_shown_a_records_text_without_its_escapes() -> None:
    # A record's error may quote a repository's output (from a farm, or a time, that
    # stored it as it came): shown raw, a terminal would obey it.
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system="truecolor", width=200)
    output = Output(console, console)
    hostile = "x\x1b]52;c;aGk=\x1b\\\x1b[2Jy"
    show_build(output, {"name": "o-r", "status": "failed", "error": hostile,
                        "suggestions": [hostile]})
    output.error(ApiError(hostile, [hostile]))
    shown = buffer.getvalue()
    assert "\x1b]52" not in shown and "\x1b[2J" not in shown
    assert shown.count("x?]52;c;aGk=?\\?[2Jy") == 4


class FakeClient:
    """Scripted records and log events, as the follow loop reads them."""

    def __init__(self, records: list[dict[str, Any]], events: list[LogEvent]) -> None:
        self.records = records
        self.events = events

    def build(self, name: str) -> dict[str, Any]:
        return self.records.pop(0) if len(self.records) > 1 else self.records[0]

    def history(self, name: str) -> list[dict[str, Any]]:
        return []

    def follow_log(self, name: str, build_id: str | None = None) -> Iterator[LogEvent]:
        yield from self.events


def test_plain_follow_prints_the_log_in_its_order_then_returns_the_final_record(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_watch, "POLL_SECONDS", 0.01)
    done = {"start": at(0), "end": at(1)}
    # The record is read ahead of the log: it says building while the log still fetches.
    building = record("running", "building", fetching=done, detecting=done,
                      building={"start": at(1)})
    records = [building, {**record("completed", "finished", fetching=done, detecting=done,
                                   building=done, pushing=done, registering={"start": at(1)}),
                          "end-time": at(3)}]
    log = ["== fetching on h1 (attempt 1)", "Cloning into /work/src", "fetched abc123",
           "== detecting on h1 (attempt 1)", "== building on h1 (attempt 1)",
           "\x1b[1mStep 1/2\x1b[0m", "10%\r100%", "== build completed"]
    events = [LogEvent("line", text, seq) for seq, text in enumerate(log, 1)]
    client = FakeClient(records, [*events, LogEvent("end", "completed")])
    told: list[str] = []
    output, _ = plain_output()
    view = PlainBuildView(output, building, echo=told.append)
    final = watch_build(client, building, view)  # type: ignore[arg-type]
    assert final["status"] == "completed"
    assert told == ["build o-r: https://h/o/r", *log[:5], "Step 1/2", "100%", log[-1]]


def test_plain_summary_tells_each_phases_time() -> None:
    done = {"start": at(0), "end": at(1)}
    final = {**record("completed", "finished", fetching=done, building={"start": at(1)}),
             "end-time": at(3), "image-name": "reg/o-r:abc"}
    output, buffer = plain_output()
    summarise(output, final, None)
    assert "phases  fetching 1.0s  building 2.0s" in buffer.getvalue().splitlines()


@pytest.mark.parametrize("url", ["http://", "https:///", "localhost:8082", "ftp://farm:21"])
def test_a_farm_url_without_a_host_is_named_as_given(url: str) -> None:
    done = CliRunner().invoke(main, ["build", "list", "--url", url, "--api-key", "k"])
    assert done.exit_code != 0
    assert f"{url} is not a URL the client can call" in done.output, done.output


@pytest.mark.parametrize(("flags", "printed"), [
    ([], "#7 1.23 fetch 100%\nnext\n"),  # as a terminal shows the redraws: the last one
    (["--json"], '{"text": "#7 1.23 fetch 100%"}\n{"text": "next"}\n'),
])
def test_a_kept_log_line_that_redraws_itself_is_one_line(
        monkeypatch: pytest.MonkeyPatch, flags: list[str], printed: str) -> None:
    monkeypatch.setattr("workers.cli.farm_client.FarmClient.log_text",
                        lambda self, name, build_id=None: "#7 1.23 fetch 10%\rfetch 100%\nnext\n")
    done = CliRunner().invoke(main, ["build", "logs", "o-r", *flags,
                                     "--url", "http://127.0.0.1:9", "--api-key", "k"])
    assert done.exit_code == 0, done.output
    assert done.stdout == printed


def test_json_log_lines_read_the_same_followed_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """A followed log's events carry each line as a terminal shows it (an event cannot
    carry a carriage return): the kept log's JSON lines carry the same text."""
    kept = "#7 1.23 fetch 10%\rfetch 100%\n\x1b[1mnext\x1b[0m\n"
    monkeypatch.setattr("workers.cli.farm_client.FarmClient.log_text",
                        lambda self, name, build_id=None: kept)
    monkeypatch.setattr("workers.cli.farm_client.FarmClient.follow_log",
                        lambda self, name, build_id=None: iter([
                            LogEvent("line", shown_line(line), seq)
                            for seq, line in enumerate(kept.split("\n")[:-1], 1)]))
    farm = ["--json", "--url", "http://127.0.0.1:9", "--api-key", "k"]
    texts = {}
    for flags in ([], ["--follow"]):
        done = CliRunner().invoke(main, ["build", "logs", "o-r", *flags, *farm])
        assert done.exit_code == 0, done.output
        texts[bool(flags)] = [json.loads(line)["text"] for line in done.stdout.splitlines()]
    assert texts[False] == texts[True] == ["#7 1.23 fetch 100%", "\x1b[1mnext\x1b[0m"], texts


def test_the_live_view_shows_a_cancelled_phase_cancelled_not_failed() -> None:
    done = {"start": at(0), "end": at(1)}
    cancelled = {**record("cancelled", "building", fetching=done, detecting=done,
                          building={"start": at(1), "end": at(4)}), "end-time": at(4)}
    assert phase_state(cancelled, "building") == "cancelled"
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80, color_system=None)
    console.print(LiveBuildView(Output(console, console), cancelled))
    drawn = buffer.getvalue()
    assert "⊘  building" in drawn and "✗" not in drawn, drawn


@pytest.mark.parametrize(("status", "told"), [
    ("completed", "o-r had already ended completed: there was nothing to cancel\n"),
    ("failed", "o-r had already ended failed: there was nothing to cancel\n"),
    ("cancelled", "o-r is cancelled\n"),
    ("running", "cancelling o-r (it stops within a few seconds)\n"),
])
def test_cancel_says_when_there_was_nothing_to_cancel(
        monkeypatch: pytest.MonkeyPatch, status: str, told: str) -> None:
    monkeypatch.setattr("workers.cli.farm_client.FarmClient.cancel",
                        lambda self, name: record(status, "building"))
    done = CliRunner().invoke(main, ["build", "cancel", "o-r",
                                     "--url", "http://127.0.0.1:9", "--api-key", "k"])
    assert done.exit_code == 0, done.output
    assert done.stdout == told


@pytest.mark.parametrize(("flags", "told"), [
    ([], "no builds"),
    (["--status", "failed"], "no builds with status failed"),
    (["--repository", "https://h/o/r"], "no builds of https://h/o/r"),
    (["--status", "failed", "--repository", "https://h/o/r"],
     "no builds with status failed of https://h/o/r"),
])
def test_an_empty_list_names_every_filter(monkeypatch: pytest.MonkeyPatch, flags: list[str],
                                          told: str) -> None:
    monkeypatch.setattr("workers.cli.farm_client.FarmClient.builds",
                        lambda self, **query: [])
    done = CliRunner().invoke(main, ["build", "list", *flags,
                                     "--url", "http://127.0.0.1:9", "--api-key", "k"])
    assert done.exit_code == 0, done.output
    assert done.stderr.strip() == told


@pytest.mark.parametrize("phase", ["queued", "building"])
def test_status_says_a_cancel_is_on_its_way(phase: str) -> None:
    """Queued or running, a build whose cancel was asked reads cancelling, as on the page."""
    output, buffer = plain_output()
    show_build(output, {**record("running", phase), "cancel-requested": True})
    assert "status      cancelling\n" in buffer.getvalue(), buffer.getvalue()


@pytest.mark.parametrize(("status", "phase", "cancel_requested", "shown"), [
    ("running", "queued", False, "queued"),
    ("running", "building", False, "running"),
    ("running", "queued", True, "cancelling"),
    ("running", "building", True, "cancelling"),
    ("cancelled", "queued", True, "cancelled"),
    ("completed", "finished", False, "completed"),
])
def test_the_shown_status_is_the_pages(status: str, phase: str, cancel_requested: bool,
                                       shown: str) -> None:
    """One rule for the CLI and the page (``shownStatus`` in api/static/farm.js)."""
    assert shown_status({**record(status, phase), "cancel-requested": cancel_requested}) == shown


def test_a_start_the_farm_answers_from_its_cache_says_so() -> None:
    """Nothing was started: the image was already built; following it would show nothing."""
    hit = {**record("completed", "finished"), "cached": True, "image-name": "reg/o-r:abc"}
    client = type("Client", (), {"start": lambda self, *args: hit})()
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("workers.cli.client.FarmClient", lambda *args: client)
        done = runner.invoke(main, ["build", "start", "https://h/o/r",
                                    "--url", "http://127.0.0.1:9", "--api-key", "k"])
    assert done.exit_code == 0, done.output
    assert done.stdout == ("already built  o-r\nstatus         completed\n"
                           "image          reg/o-r:abc\n"), done.stdout


def test_the_end_of_a_cancelled_build_is_no_error() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    ended = {**record("cancelled", "building"), "end-time": at(3),
             "error": "Cancelled by request."}
    summarise(Output(console, console), ended, None)
    shown = buffer.getvalue()
    assert "Cancelled by request." in shown and "error:" not in shown, shown


def test_a_build_no_worker_has_taken_reads_queued_in_list_and_status(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The API says running for it; the CLI, like the web page, says queued."""
    waiting = {**record("running", "queued"), "name": "o-waiting"}
    monkeypatch.setattr("workers.cli.farm_client.FarmClient.builds",
                        lambda self, **query: [waiting, record("running", "building")])
    monkeypatch.setattr("workers.cli.farm_client.FarmClient.build",
                        lambda self, name: waiting)
    farm = ["--url", "http://127.0.0.1:9", "--api-key", "k"]
    listed = CliRunner().invoke(main, ["build", "list", *farm])
    assert listed.exit_code == 0, listed.output
    statuses = [line.split("\t")[1] for line in listed.stdout.splitlines()[1:]]
    assert statuses == ["queued", "running"], listed.stdout
    shown = CliRunner().invoke(main, ["build", "status", "o-waiting", *farm])
    assert shown.exit_code == 0, shown.output
    assert "status      queued\n" in shown.stdout, shown.stdout


def test_the_status_filter_says_where_queued_and_cancelling_builds_are(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The list shows builds queued and cancelling, which the farm counts as running: a
    user who wants them is told which --status finds them."""
    asked: dict[str, Any] = {}
    monkeypatch.setattr("workers.cli.farm_client.FarmClient.builds",
                        lambda self, **query: asked.update(query) or [])
    helped = CliRunner().invoke(main, ["build", "list", "--help"], terminal_width=200)
    assert "(running includes the builds shown queued and cancelling)" in helped.stdout, \
        helped.stdout
    done = CliRunner().invoke(main, ["build", "list", "--status", "queued",
                                     "--url", "http://127.0.0.1:9", "--api-key", "k"])
    assert done.exit_code == 2 and not asked
    assert "queued and cancelling builds are listed with --status running" in done.stderr, \
        done.stderr


def test_the_logs_json_option_says_what_it_prints() -> None:
    """The log is text from the API, not JSON: the option's help says what is printed."""
    helped = CliRunner().invoke(main, ["build", "logs", "--help"], terminal_width=200)
    option = next(line for line in helped.stdout.splitlines() if line.strip().startswith("--json"))
    assert "API's JSON" not in option and "one JSON object per line" in option, option


def test_logs_follow_says_its_exit_code_is_no_build_outcome(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A followed log of a failed build exits 0 (the log was printed): the help says so,
    and which command's exit code tells the outcome."""
    monkeypatch.setattr("workers.cli.farm_client.FarmClient.follow_log",
                        lambda self, name, build_id=None: iter([
                            LogEvent("line", "boom", 1), LogEvent("end", "failed")]))
    done = CliRunner().invoke(main, ["build", "logs", "o-r", "--follow",
                                     "--url", "http://127.0.0.1:9", "--api-key", "k"])
    assert done.exit_code == 0 and done.stderr == "build o-r failed\n", done.output
    helped = CliRunner().invoke(main, ["build", "logs", "--help"], terminal_width=200)
    assert "exits 0 whatever the build's outcome" in helped.stdout, helped.stdout
    assert "binder-build build start --follow exits 1" in helped.stdout, helped.stdout


def test_the_templates_help_says_only_completed_builds_have_one() -> None:
    """A failed build is finished too, and has no template."""
    helped = CliRunner().invoke(main, ["--help"], terminal_width=200)
    line = next(line for line in helped.stdout.splitlines() if line.strip().startswith("templates"))
    assert "completed builds" in line and "finished" not in line, line


def test_status_of_a_cancelled_build_gives_its_reason_not_an_error() -> None:
    """As on the build page and at the end of a followed build: a cancel someone asked
    for is no error."""
    output, buffer = plain_output()
    show_build(output, {**record("cancelled", "building"), "error": "Cancelled by request."})
    shown = buffer.getvalue()
    assert "reason      Cancelled by request.\n" in shown and "error" not in shown, shown
    output, buffer = plain_output()
    show_build(output, {**record("failed", "building"), "error": "It broke."})
    assert "error       It broke.\n" in buffer.getvalue(), buffer.getvalue()


def test_a_log_the_farm_could_not_read_says_what_to_do(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workers.cli.farm_client.FarmClient.follow_log",
                        lambda self, name, build_id=None: iter([
                            LogEvent("line", "one", 1),
                            LogEvent("error", "The build store did not answer.")]))
    done = CliRunner().invoke(main, ["build", "logs", "o-r", "--follow",
                                     "--url", "http://127.0.0.1:9", "--api-key", "k"])
    assert done.exit_code == 1, done.output
    assert done.stderr == ("error: The log could not be read: The build store did not "
                           "answer.\n  - Follow it again with: binder-build build logs o-r "
                           "--follow\n"), done.stderr
