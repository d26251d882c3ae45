"""``bench/report.py``: RESULTS.md names the machine and run and says of every row if it met."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.report as report
from bench.stats import Result, Samples, at_most, ratio_at_most


@pytest.fixture(autouse=True)
def machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "versions", lambda: {"python": "3.11.7", "docker": "7.2.0"})
    monkeypatch.setattr(report, "commit", lambda: "abc1234")


def results() -> list[Result]:
    cold = Samples("s", [100.0, 120.0, 90.0])
    return [
        Result("cold build", "POST to completed", cold, ratio_at_most(0.80),
               Samples("s", [150.0, 160.0, 140.0]), "by hand"),
        Result("burst", "repositories not built exactly once", Samples("", [0.0, 1.0, 0.0]),
               at_most(0, ""), value=1.0),
    ]


def test_results_name_the_run_and_every_target(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    report.write_results(path, results(), 41.5, complete=True,
                         durations={"lab start": 4.0, "scientific": 20.0})
    text = path.read_text()
    assert "- commit: abc1234" in text
    assert "- cores: " in text and "python 3.11.7, docker 7.2.0" in text
    assert "- run time: 41.5 min\n" in text
    assert "lab start 4.0 min; scientific 20.0 min" in text
    assert "- result: 1 of 2 targets NOT met" in text
    rows = [line for line in text.splitlines() if line.startswith("| cold build")
            or line.startswith("| burst")]
    cold, burst = rows
    # median 100 against a median of 150: 0.667, met
    assert "min 90 / median 100 / max 120 s (n=3)" in cold
    assert "by hand: min 140 / median 150 / max 160 s (n=3)" in cold
    assert "| 0.667 |" in cold and cold.endswith("| ratio <= 0.80 | met |")
    # the worst round is what the target checks
    assert "| 1 | min 0 / median 0 / max 1 (n=3) |" in burst
    assert burst.endswith("| NOT MET |")


def test_a_partial_run_says_so(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    report.write_results(path, results()[:1], 3.0, complete=False)
    text = path.read_text()
    assert "- run time: 3.0 min (some scenarios only)" in text
    assert "- result: every target met (1 of 1)" in text
