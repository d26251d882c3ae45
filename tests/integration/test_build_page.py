"""The build page in a real browser (Debian's Chromium through chromium-driver).

Each state a person meets is checked and saved as a screenshot: the list
of builds, a build started from the form with its log arriving live, a
finished build with its template, a failed build with its error, the page
without a key, and the page on a phone.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from common import build_store, worker_store
from common.clock import utcnow
from common.db import get_db
from tests.integration.conftest import API_KEY, RUN_ID
from tests.support.api_cases import BASE_IMAGE, plain_repo, slow_repo, ticking_repo
from tests.support.farm import ApiClient
from tests.support.git_server import GitServer
from tests.support.screenshots import screenshot_dir
from workers.image_build import step_output

WAIT = 120


def wait_for(driver: WebDriver, condition: Any, timeout: float = WAIT, what: str = "") -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: condition(d), message=what)


def text_of(driver: WebDriver, selector: str) -> str:
    """The shown text of the first match, read in one step: the pages redraw their lists
    every few seconds, so an element found first and read later may be gone."""
    return str(driver.execute_script(
        "const found = document.querySelector(arguments[0]);"
        "return found ? found.innerText : '';", selector))


def attributes(driver: WebDriver, selector: str, name: str) -> list[str]:
    """Attribute ``name`` of every match, read in one step (see ``text_of``)."""
    return list(driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".map(element => element.getAttribute(arguments[1]));", selector, name))


class Page:
    """The farm's pages in one browser tab."""

    def __init__(self, driver: WebDriver, url: str, shots: Path) -> None:
        self.driver = driver
        self.url = url
        self.shots = shots

    def open(self, path: str = "/") -> None:
        self.driver.get(f"{self.url}{path}")

    def use_key(self, key: str) -> None:
        field = self.driver.find_element(By.ID, "key-input")
        field.send_keys(key)
        self.driver.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
        wait_for(self.driver, lambda d: "key set" in text_of(d, ".key-state"), 10)

    def forget_key(self) -> None:
        self.driver.execute_script("sessionStorage.clear()")

    def screenshot(self, name: str) -> Path:
        """The whole page, not only the window: the window grows to the page's height."""
        path = self.shots / f"{name}.png"
        size = self.driver.get_window_size()
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(size["width"], max(size["height"], min(height + 140, 4000)))
        try:
            self.driver.save_screenshot(str(path))
        finally:
            self.driver.set_window_size(size["width"], size["height"])
        return path

    def row(self, name: str) -> dict[str, str] | None:
        """The list's row of build ``name`` (status, text, link), read in one step."""
        found = self.driver.execute_script(
            "const row = document.querySelector(`#builds tr[data-name=\"${arguments[0]}\"]`);"
            "return row && {status: row.dataset.status, text: row.innerText,"
            " href: row.querySelector('a').href};", name)
        return dict(found) if found else None

    def log_lines(self) -> list[str]:
        """The log's lines as shown, a build step's output without BuildKit's prefix."""
        return [step_output(line) or line for line in text_of(self.driver, "#log").splitlines()]


@pytest.fixture(scope="module")
def page(browser: WebDriver, api: ApiClient) -> Iterator[Page]:
    shots = screenshot_dir(RUN_ID)
    browser.set_window_size(1280, 900)
    yield Page(browser, api.url, shots)
    print(f"\nscreenshots in {shots}")


def failing_repo(git_server: GitServer, repo_url: str) -> str:
    repo = f"broken-{uuid.uuid4().hex[:6]}"
    git_server.make_repo(f"github/page/{repo}", {
        "Dockerfile": (f"FROM {BASE_IMAGE}\n"
                       f"RUN printf '\\033[31m{repo} colour check\\033[0m\\n' && exit 3\n")})
    return f"{repo_url}/page/{repo}"


def test_the_page_lists_builds(page: Page, api: ApiClient, git_server: GitServer,
                               repo_url: str) -> None:
    names = [api.start(plain_repo(git_server, repo_url, owner="page")).json()["name"]
             for _ in range(2)]
    for name in names:
        api.wait(name, timeout=300)
    page.open("/")
    page.use_key(API_KEY)
    for name in names:
        wait_for(page.driver, lambda d, name=name: page.row(name) is not None, 15, name)
        row = page.row(name)
        assert row is not None and row["status"] == "completed"
        assert "finished" in row["text"] and "plain-" in row["text"]
    row = page.row(names[0])
    assert row is not None and row["href"].endswith(f"/build/{names[0]}")
    wait_for(page.driver, lambda d: "mongo" in text_of(d, "#health"), 15, "health shown")
    wait_for(page.driver, lambda d: "test-a" in text_of(d, "#workers"), 15, "workers shown")
    # A worker process of that host that died an hour ago: counted apart, not listed.
    dead = f"test-a@gone:{uuid.uuid4().int % 100000}"
    worker_store.write({"worker": dead, "node": "test-a@gone", "host": "test-a",
                        "hostname": "gone", "pid": 1, "state": "up",
                        "started": utcnow() - dt.timedelta(hours=2),
                        "last_seen": utcnow() - dt.timedelta(hours=1), "builds": []})
    try:
        wait_for(page.driver, lambda d: "(1 lost)" in text_of(d, '[data-host="test-a"]'), 30,
                 "the lost process counted")
        assert dead not in text_of(page.driver, "#workers")
    finally:
        get_db().workers.delete_one({"worker": dead})
    assert "queue builds" in text_of(page.driver, "#queue")
    page.screenshot("list")


def test_a_build_started_from_the_form_streams_its_log(page: Page, api: ApiClient,
                                                       git_server: GitServer,
                                                       repo_url: str) -> None:
    url = ticking_repo(git_server, repo_url, ticks=12, owner="page")
    page.open("/")
    page.use_key(API_KEY)
    page.driver.find_element(By.NAME, "repository").send_keys(url)
    page.driver.find_element(By.NAME, "ref").send_keys("main")
    page.driver.find_element(By.CSS_SELECTOR, "#start-form button[type=submit]").click()
    wait_for(page.driver, lambda d: "/build/" in d.current_url, 30, "went to the build page")
    name = page.driver.current_url.rsplit("/build/", 1)[1]
    assert api.build(name)["ref"] == "main"

    wait_for(page.driver, lambda d: "tick-2" in page.log_lines(), WAIT, "first ticks")
    assert "tick-12" not in page.log_lines(), "lines arrive as the build prints them"
    assert api.build(name)["status"] == "running", "lines arrive while it runs"
    building = '#phases li[data-phase="building"][data-state="running"]'
    wait_for(page.driver, lambda d: d.find_elements(By.CSS_SELECTOR, building), 15, "building")
    done = attributes(page.driver, '#phases li[data-state="done"]', "data-phase")
    assert done == ["fetching", "detecting"]
    page.screenshot("build-running")
    wait_for(page.driver, lambda d: "tick-12" in page.log_lines(), WAIT, "the last tick")
    wait_for(page.driver, lambda d: "ended completed" in text_of(d, "#log-state"), 300, "end")

    page.open("/")
    wait_for(page.driver, lambda d: page.row(name) is not None, 15, "the new build is listed")


def test_a_finished_build_shows_its_image_and_template(page: Page, api: ApiClient,
                                                      git_server: GitServer,
                                                      repo_url: str) -> None:
    name = api.start(plain_repo(git_server, repo_url, owner="page")).json()["name"]
    record = api.wait(name, timeout=300)
    template = api.request("GET", f"/templates/{name}").json()
    page.open(f"/build/{name}")
    page.use_key(API_KEY)
    # (not "docker run" in #template: the sentence asking for the key says it too)
    wait_for(page.driver, lambda d: text_of(d, '[data-fact="run"]'), 30, "template")
    assert record["image-name"] in text_of(page.driver, '[data-fact="image"]')
    run = text_of(page.driver, '[data-fact="run"]')
    assert template["run-command"] in run
    assert str(template["port"]) == text_of(page.driver, '[data-fact="port"]')
    assert attributes(page.driver, "#phases li", "data-state") == ["done"] * 5
    wait_for(page.driver, lambda d: "ended completed" in text_of(d, "#log-state"), 30, "log")
    assert "build completed" in " ".join(page.log_lines())
    page.screenshot("build-completed")


#: Holds back the page's reads of a template sent without a key until the test lets
#: them go: what a slow answer to the read before the key was typed looks like.
HOLD_KEYLESS_TEMPLATE_READS = """
window.heldReads = [];
const realFetch = window.fetch;
window.fetch = (path, options) => {
  const keyless = !(options && options.headers && options.headers.Authorization);
  if (!String(path).startsWith('/templates/') || !keyless) return realFetch(path, options);
  return new Promise(resolve => window.heldReads.push(() => resolve(realFetch(path, options))));
};
"""


def test_a_late_answer_from_before_the_key_does_not_hide_the_template(
        page: Page, api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    name = api.start(plain_repo(git_server, repo_url, owner="page")).json()["name"]
    assert api.wait(name, timeout=300)["status"] == "completed"
    page.forget_key()
    script = page.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                         {"source": HOLD_KEYLESS_TEMPLATE_READS})
    try:
        page.open(f"/build/{name}")
        wait_for(page.driver, lambda d: d.execute_script("return window.heldReads.length"),
                 30, "the keyless read held")
        page.use_key(API_KEY)
        run = '[data-fact="run"]'
        wait_for(page.driver, lambda d: "docker run" in text_of(d, run), 30, "template")
        reads = f"return performance.getEntriesByType('resource').filter(e => " \
                f"e.name.endsWith('/builds/{name}')).length"
        released = page.driver.execute_script(reads)
        page.driver.execute_script("window.heldReads.forEach(release => release())")
        # Two more reads of the record: the page has drawn again since the late answer.
        wait_for(page.driver, lambda d: d.execute_script(reads) >= released + 2, 30, "redrawn")
        shown = text_of(page.driver, "#template")
        assert "docker run" in text_of(page.driver, run) and "needs the API key" not in shown, \
            shown
    finally:
        page.driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument",
                                    {"identifier": script["identifier"]})


def test_rebuild_forces_the_build_shown_at_its_ref(page: Page, api: ApiClient,
                                                   git_server: GitServer,
                                                   repo_url: str) -> None:
    url = plain_repo(git_server, repo_url, owner="page")
    name = api.start(f"{url}/tree/main").json()["name"]
    first = api.wait(name, timeout=300)
    assert first["status"] == "completed" and first["ref"] == "main"
    page.open(f"/build/{name}")
    page.use_key(API_KEY)
    wait_for(page.driver, lambda d: "completed" in text_of(d, "#build-status"), 30, "shown")
    page.driver.find_element(By.ID, "rebuild").click()
    wait_for(page.driver, lambda d: api.build(name)["build-id"] != first["build-id"], 30,
             "a new attempt of this build")
    again = api.wait(name, timeout=300)
    assert again["status"] == "completed" and not again["cached"] and again["ref"] == "main"
    # The repository's default branch is another build, which the button did not start.
    listed = api.request("GET", "/builds/", params={"repository": url}).json()
    assert [build["name"] for build in listed] == [name]


def test_a_failed_build_shows_its_error_and_coloured_log(page: Page, api: ApiClient,
                                                        git_server: GitServer,
                                                        repo_url: str) -> None:
    name = api.start(failing_repo(git_server, repo_url)).json()["name"]
    record = api.wait(name, timeout=300)
    assert record["status"] == "failed"
    page.open(f"/build/{name}")
    wait_for(page.driver, lambda d: record["error"] in text_of(d, "#build-error"), 30, "error")
    assert "failed" in text_of(page.driver, "#build-status")
    assert attributes(page.driver, '#phases li[data-state="failed"]', "data-phase") == [
        "building"]
    red = wait_for(page.driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#log .ansi-red"),
                   30, "coloured line")
    assert "colour check" in red[0].text and "\x1b" not in page.driver.find_element(
        By.ID, "log").text
    assert page.driver.find_element(By.ID, "image-panel").is_displayed() is False
    wait_for(page.driver, lambda d: "ended failed" in text_of(d, "#log-state"), 30, "log end")
    page.screenshot("build-failed")


def test_a_line_that_redraws_itself_shows_its_last_redraw(page: Page, api: ApiClient,
                                                         git_server: GitServer,
                                                         repo_url: str) -> None:
    repo = f"redraw-{uuid.uuid4().hex[:6]}"
    git_server.make_repo(f"github/page/{repo}", {
        "Dockerfile": (f"FROM {BASE_IMAGE}\n"
                       f"RUN printf '{repo} fetch 10%%\\r{repo} fetch 50%%\\r"
                       f"{repo} fetch 100%%\\n'\n")})
    name = api.start(f"{repo_url}/page/{repo}").json()["name"]
    assert api.wait(name, timeout=300)["status"] == "completed"
    page.open(f"/build/{name}")
    page.use_key(API_KEY)
    wait_for(page.driver, lambda d: "ended completed" in text_of(d, "#log-state"), 30, "log")
    shown = [line for line in page.log_lines() if line.startswith(f"{repo} fetch")]
    assert shown == [f"{repo} fetch 100%"], shown
    # The kept log has every byte the step printed.
    raw = api.request("GET", f"/builds/{name}/logs").text
    assert f"{repo} fetch 10%\r{repo} fetch 50%\r{repo} fetch 100%" in raw, raw


def queued_build(repo_url: str) -> dict[str, Any]:
    """A build on record that no worker was sent: it stays queued until ended."""
    name = f"queued-{uuid.uuid4().hex[:8]}"
    return build_store.create_build(name, {"display_name": f"page/{name}",
                                           "repository": f"{repo_url}/page/{name}"})


def test_a_queued_build_is_shown_queued_not_running(page: Page, api: ApiClient,
                                                    repo_url: str) -> None:
    record = queued_build(repo_url)
    name = record["name"]
    try:
        page.open(f"/build/{name}")
        page.use_key(API_KEY)
        wait_for(page.driver, lambda d: text_of(d, "#build-status") == "queued", 15, "queued")
        assert "waiting for" in text_of(page.driver, "#build-facts")
        page.open("/")
        wait_for(page.driver, lambda d: page.row(name) is not None, 15, "listed")
        row = page.row(name)
        assert row is not None and row["status"] == "running"  # the API's status
        assert "queued" in row["text"].split("\t")[1], row
    finally:
        api.request("DELETE", f"/builds/{name}")


def test_the_running_attempt_row_follows_its_phase(page: Page, api: ApiClient,
                                                  repo_url: str) -> None:
    record = queued_build(repo_url)
    name, phase_cell = record["name"], "#attempts tbody td[data-label=phase]"
    try:
        page.open(f"/build/{name}")
        page.use_key(API_KEY)
        wait_for(page.driver, lambda d: text_of(d, phase_cell) == "queued", 15, "attempt")
        # As a worker taking it would write it.
        get_db().builds.update_one({"_id": name}, {"$set": {
            "phase": "fetching", "phases.fetching": {"start": utcnow()}}})
        running = '#phases li[data-phase="fetching"][data-state="running"]'
        wait_for(page.driver, lambda d: d.find_elements(By.CSS_SELECTOR, running), 15, "fetching")
        wait_for(page.driver, lambda d: text_of(d, phase_cell) == "fetching", 15,
                 "the attempt row's phase")
    finally:
        api.request("DELETE", f"/builds/{name}")


def test_a_build_that_does_not_exist_is_explained_in_the_pages_terms(page: Page) -> None:
    page.open("/build/no-such-build-here")
    wait_for(page.driver, lambda d: "no-such-build-here" in text_of(d, "#build-error"), 15,
             "the error")
    shown = text_of(page.driver, "#build-error")
    assert "no build named no-such-build-here" in shown, shown
    assert "GET " not in shown and "POST " not in shown, shown  # the HTTP API's words
    links = attributes(page.driver, "#build-error a", "href")
    assert links == ["/"], links


def test_starting_a_running_build_from_the_form_points_at_it(page: Page, api: ApiClient,
                                                             git_server: GitServer,
                                                             repo_url: str) -> None:
    url = slow_repo(git_server, repo_url, seconds=120, owner="page")
    name = api.start(url).json()["name"]
    try:
        page.open("/")
        page.use_key(API_KEY)
        page.driver.find_element(By.NAME, "repository").send_keys(url)
        page.driver.find_element(By.CSS_SELECTOR, "#start-form button[type=submit]").click()
        wait_for(page.driver, lambda d: "Already building" in text_of(d, ".form-result"), 15,
                 "refused")
        shown = text_of(page.driver, ".form-result")
        assert "force: true" not in shown, shown  # the HTTP API's field
        assert "build again even if an image exists" in shown, shown  # the form's box
        assert attributes(page.driver, ".form-result a", "href") == [f"/build/{name}"]
    finally:
        api.request("DELETE", f"/builds/{name}")


def test_a_build_whose_cancel_was_asked_shows_cancelling(page: Page, api: ApiClient,
                                                        repo_url: str) -> None:
    """Its worker stops it at its next heartbeat: until then the page says so and offers
    no second cancel."""
    record = queued_build(repo_url)
    name = record["name"]
    get_db().builds.update_one({"_id": name}, {"$set": {  # as a worker holding it sees it
        "phase": "fetching", "phases.fetching": {"start": utcnow()}, "cancel_requested": True}})
    try:
        page.open(f"/build/{name}")
        page.use_key(API_KEY)
        wait_for(page.driver, lambda d: text_of(d, "#build-status") == "cancelling", 15,
                 "cancelling")
        assert page.driver.execute_script("return document.getElementById('cancel').hidden")
    finally:
        api.request("DELETE", f"/builds/{name}")


def test_a_queued_build_whose_cancel_was_asked_is_still_waiting(page: Page, api: ApiClient,
                                                                repo_url: str) -> None:
    """No worker took it: it has been waiting, not running, for the time shown."""
    name = queued_build(repo_url)["name"]
    get_db().builds.update_one({"_id": name}, {"$set": {"cancel_requested": True}})
    try:
        page.open(f"/build/{name}")
        page.use_key(API_KEY)
        wait_for(page.driver, lambda d: text_of(d, "#build-status") == "cancelling", 15,
                 "cancelling")
        facts = text_of(page.driver, "#build-facts")
        assert "waiting for" in facts and "running for" not in facts, facts
    finally:
        api.request("DELETE", f"/builds/{name}")


def test_phases_a_failed_build_never_reached_are_not_pending(page: Page, api: ApiClient,
                                                            repo_url: str) -> None:
    name = api.start(f"{repo_url}/page/missing-{uuid.uuid4().hex[:6]}").json()["name"]
    assert api.wait(name, timeout=120)["status"] == "failed"
    page.open(f"/build/{name}")
    wait_for(page.driver, lambda d: "ended failed" in text_of(d, "#log-state"), 30, "log")
    assert attributes(page.driver, "#phases li", "data-state") == ["failed"] + ["not-run"] * 4
    assert attributes(page.driver, "#phases li", "title")[-1] == "registering: not run"


def test_a_cancelled_build_is_not_shown_as_an_error(page: Page, api: ApiClient,
                                                   repo_url: str) -> None:
    name = queued_build(repo_url)["name"]
    api.request("DELETE", f"/builds/{name}")
    page.open(f"/build/{name}")
    wait_for(page.driver, lambda d: "Cancelled before it started." in text_of(d, "#build-error"),
             15, "the reason")
    assert not page.driver.find_elements(By.CSS_SELECTOR, "#build-error .error")
    assert page.driver.find_elements(By.CSS_SELECTOR, "#build-error .note")


def test_without_a_key_the_page_says_what_needs_one(page: Page) -> None:
    page.open("/")
    page.forget_key()
    page.open("/")
    access = text_of(page.driver, "#access")
    assert "Needs the API key: starting and cancelling builds" in access
    assert "Open to all: the list of builds" in access  # public reads are on
    wait_for(page.driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#builds tbody tr"), 15,
             "builds listed without a key")
    wait_for(page.driver, lambda d: "Needs the API key" in text_of(d, "#workers"), 15,
             "workers explain the key")
    page.driver.find_element(By.NAME, "repository").send_keys("https://github.com/o/r")
    page.driver.find_element(By.CSS_SELECTOR, "#start-form button[type=submit]").click()
    wait_for(page.driver, lambda d: "Unauthorized" in text_of(d, ".form-result"), 15, "refused")
    assert "API key" in text_of(page.driver, ".form-result")
    page.screenshot("no-key")


def test_the_page_is_readable_on_a_phone(page: Page, api: ApiClient) -> None:
    page.driver.set_window_size(390, 844)
    try:
        page.open("/")
        page.use_key(API_KEY)
        wait_for(page.driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#builds tbody tr"),
                 15, "builds listed")
        wait_for(page.driver, lambda d: "test-a" in text_of(d, "#workers"), 15, "farm shown")
        overflow = page.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{overflow}px wider than the phone"
        page.screenshot("phone-list")
        name = attributes(page.driver, "#builds tbody tr", "data-name")[0]
        page.open(f"/build/{name}")
        wait_for(page.driver, lambda d: "ended" in text_of(d, "#log-state"), 30, "log read")
        overflow = page.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{overflow}px wider than the phone"
        page.screenshot("phone-build")
    finally:
        page.driver.set_window_size(1280, 900)

