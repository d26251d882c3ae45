"""``/metrics`` under gunicorn: build counters match the builds this test ran, phase
histograms count their phases, bytes pushed add up, restarts count once by reason, the
last hour's median leaves cache hits out, the store's and broker's round trips are
timed, request latencies are summed over the API's processes, and the whole
exposition parses as Prometheus reads it."""

from __future__ import annotations

import datetime as dt
import time
import uuid

from api.build_totals import BuildTotals, Totals
from common.build_store import create_build, end_phase, get_build, start_phase
from common.clock import utcnow
from common.config import get_config
from common.db import get_db
from common.leases import RESTART_LABELS, end_unheld, restart
from common.models import Phase, Status
from tests.support.api_cases import plain_repo
from tests.support.farm import ApiClient, Farm
from tests.support.git_server import GitServer
from tests.unit.test_metrics import Samples, parsed, samples_of


def scrape(api: ApiClient) -> Samples:
    response = api.request("GET", "/metrics", auth=False)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return parsed(response.text)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(value for (sample, _), value in samples.items() if sample == name)


def test_metrics_count_the_builds_this_test_ran(api: ApiClient, git_server: GitServer,
                                                 repo_url: str) -> None:
    before = scrape(api)
    url = plain_repo(git_server, repo_url, owner="metrics")
    built = api.wait(api.start(url).json()["name"])
    assert built["status"] == "completed" and not built["cached"], built
    hit = api.wait(api.start(url).json()["name"])  # same content: served from the cache
    assert hit["status"] == "completed" and hit["cached"], hit
    missing = api.start(f"{repo_url}/nobody/gone-{uuid.uuid4().hex[:6]}")
    assert missing.status_code == 200, missing.text
    failed = api.wait(missing.json()["name"])
    assert failed["status"] == "failed", failed
    for _ in range(3):
        assert api.request("GET", "/templates/no-such-template").status_code == 404
    after = scrape(api)

    assert total(after, "binder_builds_started_total") - \
        total(before, "binder_builds_started_total") == 3
    counted = "binder_builds_completed_total"
    assert delta(before, after, counted, config="none", cached="false") == 1
    assert delta(before, after, counted, config="none", cached="true") == 1
    assert total(after, counted) - total(before, counted) == 2
    assert delta(before, after, "binder_builds_failed_total", config="unknown",
                 cached="false", cause="repository") == 1
    assert total(after, "binder_builds_cancelled_total") == \
        total(before, "binder_builds_cancelled_total")
    # The cache hit was answered by the API at once, without a phase; the failed build
    # ended in fetch; only the first build went through every phase.
    histogram = "binder_phase_duration_seconds_count"
    assert delta(before, after, histogram, phase="fetching") == 2
    for phase in ("detecting", "building", "pushing", "registering"):
        assert delta(before, after, histogram, phase=phase) == 1, phase
    assert delta(before, after, "binder_build_duration_seconds_count", config="none",
                 cached="false") == 1
    stored = get_db().builds.find_one({"build_id": built["build-id"]}) or \
        get_db().attempts.find_one({"build_id": built["build-id"]})
    assert stored is not None and stored["pushed_bytes"] > 0
    assert delta(before, after, "binder_pushed_bytes_total") == stored["pushed_bytes"]
    # Three 404s, answered by whichever gunicorn process took them, counted once each.
    assert delta(before, after, "binder_api_request_duration_seconds_count",
                 endpoint="/templates/<name:name>", method="GET", status="404") == 3
    # The shared queue and the live worker host's own queue are measured (and empty now).
    assert after[("binder_queue_messages", (("queue", "builds"),))] == 0
    assert after[("binder_queue_messages", (("queue", "host.test-a"),))] == 0
    # Both services answered, and how long each took is there, a real round trip.
    for service in ("store", "broker"):
        assert after[(f"binder_{service}_up", ())] == 1
        assert 0 < after[(f"binder_{service}_ping_seconds", ())] < 5, service

    # Cache hits, served in milliseconds, outnumber the builds that built: the median of
    # the last hour is still that of the builds. (The hour moves on while a scrape runs.)
    for _ in range(2):
        assert api.wait(api.start(url).json()["name"])["cached"]
    asked = utcnow()
    hits = scrape(api)
    answered = utcnow()
    assert hits[("binder_build_seconds_median_last_hour", ())] in \
        {median_built_since(asked), median_built_since(answered)}, hits


def median_built_since(now: dt.datetime) -> float:
    """The median start-to-completion time of the builds that completed in the hour
    before ``now`` without a cache hit, as the store has them (current and archived,
    each once)."""
    query = {"status": "completed",
             "end_time": {"$gte": now - dt.timedelta(hours=1)}, "cached": {"$ne": True}}
    records = {record["build_id"]: record for collection in (get_db().attempts, get_db().builds)
               for record in collection.find(query)}
    seconds = sorted((r["end_time"] - r["start_time"]).total_seconds() for r in records.values())
    assert seconds, "a build completed in the last hour"
    return seconds[len(seconds) // 2]


def test_a_repositorys_failure_and_the_farms_are_told_apart(api: ApiClient,
                                                            repo_url: str) -> None:
    """A repository that does not exist fails in a worker's fetch as the repository's
    fault; a build the reaper finds lost on its last attempt fails as the farm's. Each
    record says so, and each counts under its own cause."""
    config = get_config()
    before = scrape(api)
    missing = api.start(f"{repo_url}/nobody/gone-{uuid.uuid4().hex[:6]}")
    assert missing.status_code == 200, missing.text
    # A build whose worker vanished on its last attempt, as the reaper finds it.
    name = f"metrics-lost-{uuid.uuid4().hex[:6]}"
    record = create_build(name, {"display_name": name, "repository": f"https://example.org/{name}"})
    get_db().builds.update_one({"build_id": record["build_id"]},
                               {"$set": {"attempt": config.max_attempts}})
    held = start_phase(record["build_id"], config.max_attempts, Phase.FETCHING, Phase.QUEUED,
                       "gone@host", "host-r")
    restart(held, "its worker gone@host went silent", config)

    repository, farm = api.wait(missing.json()["name"]), api.build(name)
    assert (repository["status"], repository["cause"]) == ("failed", "repository"), repository
    assert (farm["status"], farm["cause"]) == ("failed", "farm"), farm
    assert farm["error"].startswith(f"The build was lost {config.max_attempts} times"), farm
    after = scrape(api)
    failed = "binder_builds_failed_total"
    assert delta(before, after, failed, config="unknown", cached="false",
                 cause="repository") == 1
    assert delta(before, after, failed, config="unknown", cached="false", cause="farm") == 1
    assert total(after, failed) - total(before, failed) == 2
    # Counters never go down: the next scrape finds both where they were.
    again = scrape(api)
    assert {key: value for key, value in again.items() if key[0] == failed} == \
        {key: value for key, value in after.items() if key[0] == failed}


def test_a_restart_counts_once_by_its_reason_while_running_and_once_ended(
        api: ApiClient) -> None:
    """The reaper's restart of a build whose worker went silent counts under
    ``worker_silent`` from the next scrape; when the build ends it still counts once,
    and a new API process reading the kept totals finds the same."""
    config = get_config()
    before = scrape(api)
    assert {dict(labels)["reason"] for name, labels in before
            if name == "binder_builds_restarted_total"} == set(RESTART_LABELS)
    name = f"metrics-silent-{uuid.uuid4().hex[:6]}"
    record = create_build(name, {"display_name": name, "repository": f"https://example.org/{name}"})
    held = start_phase(record["build_id"], 1, Phase.FETCHING, Phase.QUEUED, "gone@host", "host-r")
    restarted = restart(held, "its worker gone@host went silent", config)
    assert restarted is not None and restarted["lost"]["1"]["host"] == "host-r", restarted
    running = scrape(api)
    counter = "binder_builds_restarted_total"
    assert delta(before, running, counter, reason="worker_silent") == 1
    assert total(running, counter) - total(before, counter) == 1
    assert end_unheld(restarted, Status.CANCELLED, "Cancelled by request.", config) is not None
    for _ in range(2):  # ended, then read again within the clock slack: still once
        ended = scrape(api)
        assert total(ended, counter) - total(before, counter) == 1
        assert delta(before, ended, counter, reason="worker_silent") == 1
    fresh = samples_of(BuildTotals().refresh(get_db()))  # a new API process's first scrape
    assert {key: value for key, value in fresh.items() if key[0] == counter} == \
        {key: value for key, value in ended.items() if key[0] == counter}


def test_a_new_api_process_starts_from_the_totals_a_scrape_kept(api: ApiClient) -> None:
    asked = utcnow()
    scraped = scrape(api)
    kept = get_db().metrics.find_one({"_id": "ended-builds"})
    assert kept is not None and kept["since"] >= asked - dt.timedelta(seconds=1)
    # A record that ended long before the kept totals reach: a process that read the
    # whole history would count it, one that starts from the kept totals does not.
    probe = {"build_id": uuid.uuid4().hex, "name": f"metrics-probe-{uuid.uuid4().hex[:6]}",
             "status": "completed", "config": "resume-probe.txt", "cached": False,
             "start_time": utcnow() - dt.timedelta(days=30),
             "end_time": utcnow() - dt.timedelta(days=30), "attempt": 1}
    get_db().attempts.insert_one(probe)
    try:
        fresh = samples_of(BuildTotals().refresh(get_db()))  # as a new API process's first scrape
    finally:
        get_db().attempts.delete_one({"build_id": probe["build_id"]})
    assert not [key for key in fresh if ("config", "resume-probe.txt") in key[1]]
    for name in ("binder_builds_completed_total", "binder_builds_failed_total",
                 "binder_pushed_bytes_total", "binder_builds_restarted_total"):
        assert total(fresh, name) == total(scraped, name), name


def test_a_phase_run_again_after_a_restart_is_timed_from_its_new_start(farm: Farm) -> None:
    """The reaper restarts a build whose fetch had ended; the next attempt's fetch is
    cancelled while it runs: the record shows that fetch running, then ending at the
    cancel, and the histogram times it from its new start to the cancel."""
    config = get_config()
    name = f"metrics-restarted-{uuid.uuid4().hex[:6]}"
    record = create_build(name, {"display_name": name, "repository": f"https://example.org/{name}"})
    build_id = record["build_id"]
    start_phase(build_id, 1, Phase.FETCHING, Phase.QUEUED, "gone@host", "host-r")
    end_phase(build_id, 1, Phase.FETCHING, "gone@host", {})
    restarted = restart(get_build(name), "its worker stopped", config)
    assert restarted is not None and restarted["attempt"] == 2
    time.sleep(0.3)
    again = start_phase(build_id, 2, Phase.FETCHING, Phase.QUEUED, "next@host", "host-r")
    assert "end" not in again["phases"]["fetching"], again["phases"]
    time.sleep(0.2)
    cancelled = end_unheld(again, Status.CANCELLED, "Cancelled by request.", config)
    assert cancelled is not None
    times = cancelled["phases"]["fetching"]
    assert times["end"] - times["start"] >= dt.timedelta(seconds=0.2), times
    fetching = (("phase", "fetching"),)
    observed = samples_of(Totals.of([cancelled]))
    assert observed[("binder_phase_duration_seconds_count", fetching)] == 1
    assert observed[("binder_phase_duration_seconds_sum", fetching)] >= 0.2
