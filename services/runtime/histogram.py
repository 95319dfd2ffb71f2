"""Latency histograms that travel with the heartbeat: fixed buckets, counts only.

A service records with observe_us()/observe_ns() (one bisect and two additions: no lock, no
allocation) and the heartbeat carries wire() for each histogram: the count in each bucket
(not cumulative) followed by the sum in microseconds, len(BOUNDS_US) + 2 ints in all. Every
process shares the same bounds, so the bounds themselves never travel; the supervisor turns
the counts into a Prometheus histogram (services/supervisor/metrics.py).
"""

from __future__ import annotations

from bisect import bisect_left

# upper bounds (inclusive, as Prometheus' `le`) in microseconds: 10 µs .. 10 s, then +Inf
BOUNDS_US: tuple[int, ...] = (
    10,
    25,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
)
WIRE_LEN = len(BOUNDS_US) + 2  # one count per bound, the +Inf count, the sum


class HistogramWireError(ValueError):
    """A heartbeat's histogram does not have the shared layout."""


class LatencyHistogram:
    __slots__ = ("counts", "sum_us")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS_US) + 1)
        self.sum_us = 0

    def observe_us(self, us: int) -> None:
        if us < 0:
            us = 0  # a clock step backwards: counted in the first bucket, not lost
        self.counts[bisect_left(BOUNDS_US, us)] += 1
        self.sum_us += us

    def observe_ns(self, ns: int) -> None:
        self.observe_us(ns // 1_000)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def wire(self) -> list[int]:
        return [*self.counts, self.sum_us]


def from_wire(values: list[int]) -> tuple[list[int], int]:
    """(cumulative counts per bound and +Inf, sum_us) from a heartbeat's list."""
    if len(values) != WIRE_LEN:
        raise HistogramWireError(f"histogram has {len(values)} values, expected {WIRE_LEN}")
    if any(v < 0 for v in values):
        raise HistogramWireError("histogram has a negative count or sum")
    cumulative: list[int] = []
    total = 0
    for c in values[:-1]:
        total += c
        cumulative.append(total)
    return cumulative, values[-1]
