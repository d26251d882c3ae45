"""Samples, summaries and targets: what every scenario reports.

A ``Result`` is one line of the report: a measured quantity (seconds, a
rate, megabytes), its samples, an optional baseline measured in the same
run, and the target the quantity must meet (a ratio to the baseline, or an
absolute bound). Machines here are shared and noisy: only ratios and bounds
measured in one run mean anything.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class Samples:
    """Repeated measurements of one quantity."""

    unit: str
    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def summary(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if not self.values:
            return "no samples"
        if len(self.values) == 1:
            return f"{self.values[0]:.3g}{unit} (once)"
        return (f"min {min(self.values):.3g} / median {self.median:.3g} / "
                f"max {max(self.values):.3g}{unit} (n={len(self.values)})")


@dataclass
class Target:
    """What a result must meet: ``check(value, baseline)`` and how to say it."""

    text: str
    check: Callable[[float, float | None], bool]


def ratio_at_most(limit: float) -> Target:
    return Target(f"ratio <= {limit:.2f}", lambda value, base: base is not None
                  and value / base <= limit)


def ratio_at_least(limit: float) -> Target:
    return Target(f"ratio >= {limit:.2f}", lambda value, base: base is not None
                  and value / base >= limit)


def at_most(limit: float, unit: str) -> Target:
    return Target(f"<= {limit:g} {unit}".strip(), lambda value, _base: value <= limit)


def below(limit: float, unit: str) -> Target:
    return Target(f"< {limit:g} {unit}".strip(), lambda value, _base: value < limit)


@dataclass
class Result:
    """One line of the report."""

    scenario: str
    quantity: str
    samples: Samples
    target: Target
    baseline: Samples | None = None
    baseline_name: str = ""
    #: the value checked against the target (the median unless a scenario says)
    value: float | None = None
    note: str = ""

    @property
    def checked_value(self) -> float:
        return self.samples.median if self.value is None else self.value

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline.values:
            return None
        return self.checked_value / self.baseline.median

    @property
    def met(self) -> bool:
        if not self.samples.values:
            return False
        base = self.baseline.median if self.baseline and self.baseline.values else None
        return self.target.check(self.checked_value, base)
