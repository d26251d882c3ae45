"""Build counters and histograms from records, and the API's request latencies."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

import api.metrics
from api.build_totals import SHAPE, BuildTotals, Totals, config_label
from api.request_metrics import REQUEST_SECONDS
from common.clock import CLOCK_SLACK
from common.config import load_config
from tests.unit.test_api_scopes import make_app

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def record(status: str, config: str | None = None, cached: bool = False,
           phases: dict[str, tuple[float, float]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"build_id": extra.pop("build_id", status), "status": status, "config": config,
            "cached": cached, "start_time": T0, "end_time": at(40),
            "phases": {phase: {"start": at(start), "end": at(end)}
                       for phase, (start, end) in (phases or {}).items()}, **extra}


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parsed(text: str) -> Samples:
    """Every sample of an exposition, parsed as Prometheus would."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def exposed(collector: Any) -> Samples:
    """Every sample ``collector`` exposes, parsed back as Prometheus would."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return parsed(generate_latest(registry).decode())


def samples_of(totals: Totals) -> Samples:
    """Every sample of the exposition of ``totals``."""

    class Source:
        def collect(self) -> Any:
            return totals.metrics()
    return exposed(Source())


def samples(records: list[dict[str, Any]]) -> Samples:
    return samples_of(Totals.of(records))


def test_counters_by_status_config_and_cache_hit() -> None:
    records = [
        record("completed", "binder/requirements.txt", build_id="a",
               phases={"detecting": (1, 2)}, pushed_bytes=1000),
        record("completed", "requirements.txt", cached=True, build_id="b"),
        record("failed", None, build_id="c", phases={"fetching": (0, 3), "detecting": (3, 4)},
               cause="repository"),
        record("cancelled", None, build_id="d"),
        record("running", "Dockerfile", build_id="e", pushed_bytes=24,
               lease={"worker": "host-a", "attempt": 1, "since": T0}),
    ]
    got = samples(records)
    pip = (("cached", "false"), ("config", "requirements.txt"))
    hit = (("cached", "true"), ("config", "requirements.txt"))
    assert got[("binder_builds_started_total", pip)] == 1
    assert got[("binder_builds_started_total", hit)] == 1
    assert got[("binder_builds_completed_total", pip)] == 1
    assert got[("binder_builds_completed_total", hit)] == 1
    # No config file found ("none") differs from ending before detection ("unknown").
    assert got[("binder_builds_failed_total", (("cached", "false"), ("cause", "repository"),
                                               ("config", "none")))] == 1
    assert got[("binder_builds_cancelled_total",
                (("cached", "false"), ("config", "unknown")))] == 1
    assert sum(v for (name, _), v in got.items() if name == "binder_builds_started_total") == 5
    assert got[("binder_running_builds_by_host", (("host", "host-a"),))] == 1
    # The running build's bytes count once it ends (a restart may push them again).
    assert got[("binder_pushed_bytes_total", ())] == 1000


def test_failed_builds_are_counted_by_cause() -> None:
    """Whose fault a failure was is its record's cause; a failure recorded before causes
    were kept is ``unknown``, as is a cause this version does not know."""
    causes = ["repository", "repository", "farm", "timeout", "resources", "verification",
              None, "meteor"]
    got = samples([record("failed", "requirements.txt", build_id=str(n), cause=cause,
                          phases={"detecting": (1, 2)})
                   for n, cause in enumerate(causes)])
    failed = {dict(labels)["cause"]: value for (name, labels), value in got.items()
              if name == "binder_builds_failed_total"}
    assert failed == {"repository": 2, "farm": 1, "timeout": 1, "resources": 1,
                      "verification": 1, "unknown": 2}
    # The other counters keep their labels: a started build has no cause yet.
    assert got[("binder_builds_started_total",
                (("cached", "false"), ("config", "requirements.txt")))] == 8


def test_phase_and_build_duration_histograms() -> None:
    records = [record("completed", "environment.yml", build_id=str(n),
                      phases={"building": (0, seconds)})
               for n, seconds in enumerate((3, 20, 200))]
    got = samples(records)
    building = (("phase", "building"),)
    assert got[("binder_phase_duration_seconds_count", building)] == 3
    assert got[("binder_phase_duration_seconds_sum", building)] == 223
    buckets = {le: got[("binder_phase_duration_seconds_bucket", (("le", le),) + building)]
               for le in ("5.0", "30.0", "+Inf")}
    assert buckets == {"5.0": 1, "30.0": 2, "+Inf": 3}
    env = (("cached", "false"), ("config", "environment.yml"))
    assert got[("binder_build_duration_seconds_count", env)] == 3
    assert got[("binder_build_duration_seconds_sum", env)] == 120


@pytest.mark.parametrize(("config", "phases", "cached", "label"), [
    ("binder/environment.yml", {}, False, "environment.yml"),
    (None, {"detecting": {"start": T0, "end": T0}}, False, "none"),
    (None, {}, True, "none"),
    (None, {"detecting": {"start": T0}}, False, "unknown"),
])
def test_config_label(config: str | None, phases: dict[str, Any], cached: bool,
                      label: str) -> None:
    assert config_label({"config": config, "phases": phases, "cached": cached}) == label


def test_requests_are_timed_by_route_method_and_status(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_app(tmp_path, monkeypatch).test_client()

    def count(endpoint: str, status: str) -> float:
        registry = CollectorRegistry()
        registry.register(REQUEST_SECONDS)
        return registry.get_sample_value("binder_api_request_duration_seconds_count",
                                         {"endpoint": endpoint, "method": "GET",
                                          "status": status}) or 0.0

    route = "/builds/<name:name>"  # the rule, with its converter
    before = count(route, "404"), count("unmatched", "404")
    for name in ("one", "two", "three"):
        assert client.get(f"/builds/{name}").status_code == 404
    assert client.get("/no/such/route").status_code == 404
    assert count(route, "404") == before[0] + 3
    assert count("unmatched", "404") == before[1] + 1
    assert api.metrics.REQUEST_SECONDS is REQUEST_SECONDS


def test_methods_a_client_makes_up_share_one_series(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_app(tmp_path, monkeypatch).test_client()

    def methods() -> set[str]:
        registry = CollectorRegistry()
        registry.register(REQUEST_SECONDS)
        return {sample.labels["method"] for family in registry.collect()
                for sample in family.samples if "method" in sample.labels}

    # gunicorn passes on any upper-case token of 3 to 20 characters as a method
    for n in range(5):
        assert client.open("/builds/", method=f"MADEUP{n}").status_code in (404, 405)
    assert client.open("/no/such/route", method="BREW").status_code in (404, 405)
    assert client.get("/builds/o-r").status_code == 404
    seen = methods()
    assert not any(method.startswith("MADEUP") or method == "BREW" for method in seen), seen
    assert {"GET", "other"} <= seen


def test_the_api_command_starts_gunicorn_in_multiprocess_mode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import workers.cli.server as server

    calls: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(server.os, "execvpe",
                        lambda file, argv, environ: calls.append((argv, environ)))
    left = tmp_path / "api-metrics" / "18123" / "histogram_4242.db"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"from the previous run")
    result = CliRunner().invoke(server.api, [], env={
        "BINDER_DATA_DIR": str(tmp_path), "BINDER_PORT": "18123",
        "BINDER_API_KEY": "admin-key-0123456789",
        "BINDER_CREDENTIALS_FILE": str(tmp_path / "none.json"), "BINDER_CONFIG": None})
    assert result.exit_code == 0, result.output
    [(argv, environ)] = calls
    assert environ["PROMETHEUS_MULTIPROC_DIR"] == str(left.parent)
    assert not left.exists() and left.parent.is_dir()  # emptied, so nothing counts twice
    assert argv[argv.index("--config") + 1] == "python:api.gunicorn_config"


class FakeCollection:
    """The two queries ``BuildTotals`` asks: running builds, and ended ones since a time."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.asked: list[dict[str, Any]] = []

    def find(self, query: dict[str, Any], fields: dict[str, Any],
             batch_size: int = 0) -> list[dict[str, Any]]:
        self.asked.append(query)
        since = query.get("end_time", {}).get("$gte")
        return [dict(r) for r in self.records if r["status"] == query["status"]
                and (since is None or r["end_time"] >= since)]


class FakeSnapshots:
    """The ``metrics`` collection: documents by ``_id``, as the store would give them back."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}

    def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        kept = self.documents.get(query["_id"])
        return copy.deepcopy(kept) if kept else None

    def replace_one(self, query: dict[str, Any], document: dict[str, Any],
                    upsert: bool = False) -> None:
        self.documents[query["_id"]] = copy.deepcopy(document)


class FakeStore:
    def __init__(self) -> None:
        self.builds, self.attempts = FakeCollection(), FakeCollection()
        self.metrics = FakeSnapshots()


def started(totals: Totals) -> int:
    return sum(totals.started.values())


def test_a_build_moving_through_its_phases_never_takes_a_counter_back() -> None:
    """Scraped while queued, detected, then ended: every counter only grows."""
    queued = record("running", None, phase="queued", end_time=None)
    detected = record("running", "requirements.txt", phase="building", end_time=None,
                      phases={"detecting": (1, 2)})
    ended = record("completed", "requirements.txt", phases={"detecting": (1, 2)})
    seen = [samples([step]) for step in (queued, detected, ended)]
    for before, after in zip(seen, seen[1:], strict=False):
        for key, value in before.items():
            if key[0].endswith(("_total", "_count", "_bucket")):
                assert after.get(key, 0.0) >= value, (key, before, after)


def test_a_restarted_build_never_takes_a_histogram_or_pushed_bytes_back() -> None:
    """Scraped while its first attempt runs, after the reaper restarted it (its first
    phases run again, shorter, and its push sends nothing the registry has), and ended:
    no counter, bucket or sum goes down. What a running build did is observed at its end,
    since a later attempt may do it again differently."""
    first = record("running", "requirements.txt", phase="building", end_time=None,
                   phases={"fetching": (0, 20), "detecting": (20, 22), "pushing": (22, 30)},
                   pushed_bytes=5000)
    again = record("running", "requirements.txt", phase="detecting", end_time=None, attempt=2,
                   phases={"fetching": (100, 103), "detecting": (103, 103),
                           "pushing": (22, 30)}, pushed_bytes=5000)
    ended = record("completed", "requirements.txt", attempt=2, pushed_bytes=0,
                   phases={"fetching": (100, 103), "detecting": (103, 104),
                           "pushing": (110, 111)})
    seen = [samples([step]) for step in (first, again, ended)]
    for before, after in zip(seen, seen[1:], strict=False):
        for key, value in before.items():
            if key[0].endswith(("_total", "_count", "_bucket", "_sum")):
                assert after.get(key, 0.0) >= value, (key, before, after)
    fetching = (("phase", "fetching"),)
    assert seen[-1][("binder_phase_duration_seconds_count", fetching)] == 1
    assert seen[-1][("binder_phase_duration_seconds_sum", fetching)] == 3


def test_the_build_waiting_longest_for_a_worker_shows_how_long() -> None:
    now = dt.datetime.now(dt.UTC)
    waiting = record("running", phase="queued", end_time=None, build_id="waiting",
                     start_time=now - dt.timedelta(seconds=300))
    # Started long ago, restarted by the reaper 60 s ago: it waits since the restart.
    again = record("running", "Dockerfile", phase="queued", end_time=None, build_id="again",
                   start_time=now - dt.timedelta(hours=2), attempt=2,
                   lost={"1": {"reason": "its worker stopped",
                               "at": now - dt.timedelta(seconds=60)}})
    running = record("running", "Dockerfile", phase="building", end_time=None,
                     build_id="running", start_time=now - dt.timedelta(hours=3))
    oldest = ("binder_oldest_queued_build_seconds", ())
    assert 300 <= samples([waiting, again, running])[oldest] < 310
    assert 60 <= samples([again, running])[oldest] < 70
    assert samples([running])[oldest] == 0
    # Totals of several reads (ended builds plus running ones) keep the earliest.
    both = Totals.of([again]).plus(Totals.of([waiting]))
    assert 300 <= samples_of(both)[oldest] < 310


def test_ended_builds_are_read_once_then_only_those_that_ended_since() -> None:
    store, now = FakeStore(), dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(days=9)
    store.attempts.records = [record("completed", build_id="old", end_time=old)]
    store.builds.records = [record("failed", build_id="recent", end_time=now),
                            record("running", "Dockerfile", build_id="live", end_time=None,
                                   lease={"worker": "host-a@vm:42", "host": "host-a"})]
    builds = BuildTotals()
    first = builds.refresh(store)  # type: ignore[arg-type]
    assert started(first) == 3 and first.running_by_host == {"host-a": 1}
    assert "end_time" not in store.builds.asked[-1]  # the first scrape reads every ended build
    # The running build ends; a new one is archived as cancelled; nothing is counted twice.
    store.builds.records[1] = record("completed", "Dockerfile", build_id="live", end_time=now,
                                     pushed_bytes=7)
    store.attempts.records.append(record("cancelled", build_id="replaced", end_time=now))
    second = builds.refresh(store)  # type: ignore[arg-type]
    cutoff = store.builds.asked[-1]["end_time"]["$gte"]
    assert now - CLOCK_SLACK - dt.timedelta(seconds=5) < cutoff < now  # only what ended since
    assert started(second) == 4 and not second.running_by_host
    assert {status.value: sum(c.values()) for status, c in second.ended.items()} == \
        {"completed": 2, "failed": 1, "cancelled": 1}
    assert second.pushed == 7
    # Retention deletes the old build: counters do not go back.
    store.attempts.records = store.attempts.records[1:]
    assert samples_of(builds.refresh(store)) == samples_of(second)  # type: ignore[arg-type]


def test_a_failed_read_counts_nothing() -> None:
    store, now = FakeStore(), dt.datetime.now(dt.UTC)
    store.builds.records = [record("completed", build_id="a", end_time=now)]
    builds = BuildTotals()
    assert started(builds.refresh(store)) == 1  # type: ignore[arg-type]
    store.builds.records.append(record("completed", build_id="b", end_time=now))

    def broken(query: dict[str, Any], fields: dict[str, Any],
               batch_size: int = 0) -> list[dict[str, Any]]:
        raise RuntimeError("store away")
    store.attempts.find = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        builds.refresh(store)  # type: ignore[arg-type]
    store.attempts = FakeCollection()
    assert started(builds.refresh(store)) == 2  # type: ignore[arg-type]


class CountingCollection(FakeCollection):
    """``FakeCollection`` that counts the records it hands out; it has no
    ``aggregate``, so a scrape that groups every record fails here."""

    def __init__(self) -> None:
        super().__init__()
        self.handed = 0

    def find(self, query: dict[str, Any], fields: dict[str, Any],
             batch_size: int = 0) -> list[dict[str, Any]]:
        found = super().find(query, fields, batch_size)
        self.handed += len(found)
        return found


class ScrapedStore:
    def __init__(self) -> None:
        self.builds, self.attempts = CountingCollection(), CountingCollection()
        self.metrics = FakeSnapshots()


def fake_farm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store: Any,
              templates: int = 0) -> api.metrics.FarmCollector:
    """The farm's collector on ``store`` (for ``get_db``), a store that answers its ping
    at once, no live workers, ``templates`` templates and an empty broker."""
    monkeypatch.setattr(api.metrics, "get_db", lambda config: store)
    monkeypatch.setattr(api.metrics, "ping", lambda config: None)
    monkeypatch.setattr(api.metrics.worker_store, "all_workers", lambda: {})
    monkeypatch.setattr(api.metrics.template_store, "count_templates", lambda: templates)
    broker = fakeredis.FakeRedis(decode_responses=True)
    monkeypatch.setattr(api.metrics, "redis_client", lambda config: broker)
    return api.metrics.FarmCollector(load_config(environ={"BINDER_DATA_DIR": str(tmp_path)}))


def test_a_scrape_after_the_first_reads_only_running_and_recent_builds(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store, now = ScrapedStore(), dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(days=30)
    store.builds.records = [record("completed", "requirements.txt", build_id=f"old-{i}",
                                   end_time=old)
                            for i in range(50)]
    store.builds.records += [record("running", build_id="live", phase="building",
                                    end_time=None),
                             record("running", build_id="waiting", phase="queued",
                                    end_time=None)]
    collector = fake_farm(monkeypatch, tmp_path, store, templates=2)

    first = exposed(collector)
    assert store.builds.handed >= 52
    store.builds.handed = 0
    second = exposed(collector)
    assert store.builds.handed == 2  # the running builds, not the 50 ended ones again
    for metrics in (first, second):
        assert metrics[("binder_running_builds", (("phase", "building"),))] == 1
        assert metrics[("binder_running_builds", (("phase", "queued"),))] == 1
        assert metrics[("binder_running_builds", (("phase", "pushing"),))] == 0
        assert metrics[("binder_builds_completed_total", (("cached", "false"),
                                                          ("config", "requirements.txt")))] == 50
        assert metrics[("binder_store_up", ())] == 1
        assert metrics[("binder_templates", ())] == 2


def test_the_last_hour_counts_builds_a_later_start_archived(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store, now = ScrapedStore(), dt.datetime.now(dt.UTC)
    # A repository built, then started again (a cache hit) within the hour: the first
    # build is in the archive now, the second is the name's current record.
    store.attempts.records = [record("completed", "requirements.txt", build_id="first",
                                     start_time=now - dt.timedelta(minutes=10),
                                     end_time=now - dt.timedelta(minutes=9))]
    store.builds.records = [record("completed", "requirements.txt", cached=True,
                                   build_id="again", start_time=now, end_time=now),
                            record("completed", build_id="yesterday",
                                   end_time=now - dt.timedelta(days=1))]
    metrics = exposed(fake_farm(monkeypatch, tmp_path, store))
    assert metrics[("binder_completed_last_hour", ())] == 2
    assert metrics[("binder_cache_hits_last_hour", ())] == 1
    assert metrics[("binder_build_seconds_median_last_hour", ())] == 60


def test_the_median_build_time_of_the_last_hour_leaves_cache_hits_out(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A burst of cache hits, each served in milliseconds, outnumbers the builds that
    built: the median is still that of the builds, so a slow build shows."""
    store, now = ScrapedStore(), dt.datetime.now(dt.UTC)

    def completed(build_id: str, seconds: float, cached: bool = False) -> dict[str, Any]:
        end = now - dt.timedelta(minutes=5)
        return record("completed", "requirements.txt", cached=cached, build_id=build_id,
                      start_time=end - dt.timedelta(seconds=seconds), end_time=end)
    store.builds.records = [completed("slow", 900), completed("usual", 120),
                            completed("quick", 60)]
    store.builds.records += [completed(f"hit-{n}", 0.02, cached=True) for n in range(20)]
    metrics = exposed(fake_farm(monkeypatch, tmp_path, store))
    assert metrics[("binder_build_seconds_median_last_hour", ())] == 120
    assert metrics[("binder_completed_last_hour", ())] == 23
    assert metrics[("binder_cache_hits_last_hour", ())] == 20
    # Only cache hits: no build built, and the median says 0, not a hit's milliseconds.
    store.builds.records = store.builds.records[3:]
    assert exposed(fake_farm(monkeypatch, tmp_path, store))[
        ("binder_build_seconds_median_last_hour", ())] == 0


def test_a_new_process_resumes_from_the_totals_another_kept() -> None:
    store, now = FakeStore(), dt.datetime.now(dt.UTC)
    store.attempts.records = [record("completed", "requirements.txt", build_id=f"old-{i}",
                                     end_time=now - dt.timedelta(days=3),
                                     phases={"building": (1, 30)}, pushed_bytes=10)
                              for i in range(20)]
    store.builds.records = [record("failed", build_id="lately", end_time=now),
                            record("running", build_id="live", phase="building", end_time=None)]
    first = BuildTotals()
    whole = samples_of(first.refresh(store))  # type: ignore[arg-type]

    restarted = BuildTotals()
    store.builds.asked, store.attempts.asked = [], []
    assert samples_of(restarted.refresh(store)) == whole  # type: ignore[arg-type]
    # It read only what ended since the kept totals (and the running builds), not history.
    assert all("end_time" in asked for asked in store.attempts.asked)
    # A build that ended within the clock slack of the kept totals is read again but
    # counted once; one that ends now is counted.
    store.builds.records.append(record("cancelled", build_id="now", end_time=now))
    after = samples_of(BuildTotals().refresh(store))  # type: ignore[arg-type]
    assert after[("binder_builds_failed_total", (("cached", "false"), ("cause", "unknown"),
                                                 ("config", "unknown")))] == 1
    assert after[("binder_builds_cancelled_total",
                  (("cached", "false"), ("config", "unknown")))] == 1
    assert after[("binder_builds_started_total",
                  (("cached", "false"), ("config", "requirements.txt")))] == 20
    assert after[("binder_pushed_bytes_total", ())] == 200

    # Totals kept in another shape (other buckets) are not trusted: history is read again.
    store.metrics.documents["ended-builds"]["shape"] = {"version": 0}
    store.attempts.asked = []
    assert samples_of(BuildTotals().refresh(store)) == after  # type: ignore[arg-type]
    assert any("end_time" not in asked for asked in store.attempts.asked)


def test_totals_kept_before_failures_had_causes_are_resumed_under_unknown() -> None:
    """An API upgraded on a farm whose totals were kept without causes resumes from them,
    its failures as ``unknown``: reading every build again instead would lose those that
    retention deleted, and a counter would go down across the upgrade."""
    store, now = FakeStore(), dt.datetime.now(dt.UTC)
    store.metrics.documents["ended-builds"] = {
        "_id": "ended-builds", "shape": {**SHAPE, "version": 1}, "since": now,
        "counted": [], "totals": {
            "started": [["none", "false", 7]],
            "ended": [["completed", [["none", "false", 2]]],
                      ["failed", [["none", "false", 5]]], ["cancelled", []]],
            "pushed": 0, "phase_seconds": [], "build_seconds": []}}
    # Failed since, with a cause: counted beside the old ones.
    store.builds.records = [record("failed", build_id="new", end_time=now, cause="farm")]
    builds = BuildTotals()
    got = samples_of(builds.refresh(store))  # type: ignore[arg-type]
    failed = (("cached", "false"), ("config", "unknown"))
    assert got[("binder_builds_failed_total",
                (("cached", "false"), ("cause", "unknown"), ("config", "none")))] == 5
    assert got[("binder_builds_failed_total", (failed[0], ("cause", "farm"), failed[1]))] == 1
    assert got[("binder_builds_completed_total", (("cached", "false"), ("config", "none")))] == 2
    # Kept again in this version's shape, and read back the same by the next process.
    assert store.metrics.documents["ended-builds"]["shape"] == SHAPE
    assert samples_of(BuildTotals().refresh(store)) == got  # type: ignore[arg-type]


def test_the_scrape_says_its_format_and_charset_once(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    response = make_app(tmp_path, monkeypatch).test_client().get("/metrics")
    assert response.status_code == 200
    # A parameter given twice makes a strict scraper (or proxy) refuse the answer.
    parameters = [part.strip().split("=")[0]
                  for part in response.headers["Content-Type"].split(";")[1:]]
    assert sorted(parameters) == ["charset", "version"], response.headers["Content-Type"]
    assert response.mimetype == "text/plain"
