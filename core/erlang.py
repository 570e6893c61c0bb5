"""Queueing arithmetic: Erlang C and the wait a queued caller is told.

Pure functions, no I/O, no clock: everything they need is an argument.

Two different questions are answered here:

* **What will this caller wait?** ``estimated_wait(position, N, I, h)``. A
  caller at position k, with N agents serving the queue of which I are idle,
  waits until k - I calls in progress have ended. In the M/M/N model (Poisson
  arrivals, exponential handle times: the model behind Erlang C) the N busy
  agents free up one at a time at rate N / h, memorylessly, so each of those
  k - I departures takes h / N on average and the expected wait is
  ``max(0, k - I) * h / N``. This is conditioned on what is known about *this*
  caller (the position), so it is sharper than Erlang C's mean wait, which
  averages over every possible state of the queue.
* **How is the queue doing, and how many agents would it need?**
  ``erlang_c``, ``erlang_c_wait``, ``service_level``, ``agents_needed``:
  the classic call-centre formulas, for dashboards and staffing advice.

Erlang C is computed through the Erlang B recursion
``B(0) = 1, B(n) = A B(n-1) / (n + A B(n-1))`` and
``C = N B / (N - A (1 - B))``: no factorials or powers, so it stays exact to
float precision for thousands of agents where the textbook formula
(A^N / N! ...) overflows.

Why hand-written rather than a library: the ready-made PyPI package for this
(``pyworkforce`` 0.5.1, checked with ``pip download --no-deps``) declares
``numpy``, ``pandas``, ``ortools`` and ``joblib`` as dependencies -- hundreds of
megabytes, an optimisation solver included -- for about twenty lines of
arithmetic. The formulas are checked in ``tests/unit/test_estimate.py``
against published figures, an independent direct (factorial) formula, and a
simulated multi-agent queue.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "HandleTimes",
    "agents_needed",
    "erlang_b",
    "erlang_c",
    "erlang_c_wait",
    "estimated_wait",
    "service_level",
]


def erlang_b(agents: int, traffic_erlangs: float) -> float:
    """Blocking probability of N servers with no queue (Erlang B)."""
    if agents < 0:
        raise ValueError(f"agents must be >= 0, not {agents}")
    if traffic_erlangs < 0:
        raise ValueError(f"traffic must be >= 0, not {traffic_erlangs}")
    b = 1.0
    for n in range(1, agents + 1):
        b = traffic_erlangs * b / (n + traffic_erlangs * b)
    return b


def erlang_c(agents: int, traffic_erlangs: float) -> float:
    """Probability that an arriving caller has to wait (Erlang C).

    ``traffic_erlangs`` = arrival rate x mean handle time. With as many or
    more Erlangs than agents the queue grows without bound: every caller
    waits (1.0).
    """
    if agents <= 0 or traffic_erlangs >= agents:
        return 1.0
    if traffic_erlangs <= 0:
        return 0.0
    b = erlang_b(agents, traffic_erlangs)
    return agents * b / (agents - traffic_erlangs * (1.0 - b))


def _traffic(arrival_rate_per_s: float, handle_s: float) -> float:
    if arrival_rate_per_s < 0 or handle_s <= 0:
        raise ValueError("arrival rate must be >= 0 and handle time > 0")
    return arrival_rate_per_s * handle_s


def erlang_c_wait(arrival_rate_per_s: float, handle_s: float, agents: int) -> float:
    """Mean wait over all callers (average speed of answer), in seconds.

    ``inf`` when the agents cannot keep up (agents <= traffic).
    """
    a = _traffic(arrival_rate_per_s, handle_s)
    if agents <= a:
        return math.inf
    return erlang_c(agents, a) * handle_s / (agents - a)


def service_level(arrival_rate_per_s: float, handle_s: float, agents: int, threshold_s: float) -> float:
    """Share of callers answered within ``threshold_s`` (e.g. 80% in 20 s).

    P(wait <= t) = 1 - C * exp(-(N - A) t / h).
    """
    a = _traffic(arrival_rate_per_s, handle_s)
    if agents <= a:
        return 0.0
    return 1.0 - erlang_c(agents, a) * math.exp(-(agents - a) * threshold_s / handle_s)


def agents_needed(arrival_rate_per_s: float, handle_s: float, target_sl: float, threshold_s: float,
                  *, max_agents: int = 100_000) -> int:
    """The fewest agents giving at least ``target_sl`` (0..1) within ``threshold_s``."""
    if not 0 < target_sl < 1:
        raise ValueError(f"target service level must be between 0 and 1 (exclusive), not {target_sl}")
    a = _traffic(arrival_rate_per_s, handle_s)
    if a == 0:
        return 0
    n = math.floor(a) + 1  # fewer agents than Erlangs never catch up
    while service_level(arrival_rate_per_s, handle_s, n, threshold_s) < target_sl:
        n += 1
        if n > max_agents:
            raise ValueError(f"more than {max_agents} agents would be needed")
    return n


def estimated_wait(position: int, agents_serving: int, agents_idle: int, handle_s: float) -> float | None:
    """Expected wait in seconds of the caller at ``position`` (1 = next).

    ``None`` when nobody serves the queue: there is no rate at which calls
    end, so no honest number can be said.
    """
    if position < 1:
        raise ValueError(f"position starts at 1, not {position}")
    if agents_serving <= 0:
        return None
    if handle_s <= 0:
        raise ValueError(f"handle time must be > 0, not {handle_s}")
    ahead = max(0, position - max(0, agents_idle))
    return ahead * handle_s / agents_serving


@dataclass(frozen=True)
class HandleTimes:
    """The average handle time h of a queue, from its recent calls.

    h = (mean of recent talk times) + wrap-up, where wrap-up is the time an
    agent is kept out of the queue after each call (app_queue's
    ``wrapuptime``), so it belongs to every call's handle time. Until the
    queue has calls of its own, h is ``default_seconds`` (the configured
    assumption, already a whole handle time).

    Robustness without bias: talk times are skewed to the right (many short
    calls, a few long ones), so a symmetric trimmed mean or a median would
    under-estimate h (a 10% trimmed mean of exponential times is 17% low) and
    every announced wait with it. Only true outliers are dropped: samples
    <= 0, above ``max_talk_seconds``, or above ``outlier_factor`` times the
    median (a call left open for an hour among 3-minute calls; for
    exponential times this drops 0.1% of the samples and moves the mean by
    under 1%).
    """

    default_seconds: float
    wrapup_seconds: float = 0.0
    outlier_factor: float = 10.0
    max_talk_seconds: float = 4 * 3600.0

    def average(self, talk_times: Iterable[float]) -> float:
        samples = sorted(t for t in talk_times if 0 < t <= self.max_talk_seconds)
        if not samples:
            return float(self.default_seconds)
        if len(samples) >= 5:
            median = samples[len(samples) // 2]
            samples = [t for t in samples if t <= self.outlier_factor * median]
        return sum(samples) / len(samples) + self.wrapup_seconds
