"""Erlang C, the per-caller wait estimate, and a simulated queue to check both."""

from __future__ import annotations

import collections
import heapq
import math
import random
import statistics
from fractions import Fraction

import pytest

from core.erlang import (
    HandleTimes,
    agents_needed,
    erlang_b,
    erlang_c,
    erlang_c_wait,
    estimated_wait,
    service_level,
)


def erlang_c_direct(agents: int, traffic: Fraction) -> Fraction:
    """The textbook formula, exactly, with factorials (independent of the recursion):

    C = (A^N / N!) (N / (N - A)) / (sum_{k<N} A^k / k! + (A^N / N!) (N / (N - A)))
    """
    top = traffic ** agents / math.factorial(agents) * Fraction(agents) / (agents - traffic)
    return top / (sum(traffic ** k / math.factorial(k) for k in range(agents)) + top)


# --------------------------------------------------------------- Erlang C

def test_classic_ten_agents_eight_erlangs():
    # The textbook example: 10 agents, 8 Erlangs -> 40.9% of callers wait.
    assert erlang_c(10, 8.0) == pytest.approx(0.4092, abs=5e-5)


def test_call_centre_helper_worked_example():
    # 100 calls in 30 minutes, 3-minute handle time (10 Erlangs), target 80%
    # answered in 20 s: the published worked example gives 14 agents with
    # P(wait) 17.41%, service level 88.83% and an average speed of answer of 7.8 s.
    rate, handle = 100 / 1800, 180.0
    assert erlang_c(14, 10.0) == pytest.approx(0.1741, abs=5e-5)
    assert service_level(rate, handle, 14, 20) == pytest.approx(0.8883, abs=1e-4)
    assert erlang_c_wait(rate, handle, 14) == pytest.approx(7.8, abs=0.05)
    assert agents_needed(rate, handle, 0.80, 20) == 14
    assert service_level(rate, handle, 13, 20) < 0.80


@pytest.mark.parametrize("agents", [1, 2, 3, 5, 10, 25, 60])
@pytest.mark.parametrize("load", [Fraction(1, 10), Fraction(1, 2), Fraction(9, 10), Fraction(99, 100)])
def test_recursion_agrees_with_the_direct_formula(agents, load):
    traffic = load * agents
    assert erlang_c(agents, float(traffic)) == pytest.approx(float(erlang_c_direct(agents, traffic)), rel=1e-9)


def test_mm1_closed_form():
    # One agent: C = rho and the mean wait is rho / (mu - lambda).
    assert erlang_c(1, 0.8) == pytest.approx(0.8)
    assert erlang_c_wait(0.8 / 180, 180, 1) == pytest.approx(0.8 * 180 / 0.2)


def test_large_centres_stay_finite():
    # The factorial formula overflows a float long before this.
    c = erlang_c(2000, 1950.0)
    assert 0 < c < 1
    assert erlang_b(2000, 1950.0) < c


def test_overload_and_no_traffic():
    assert erlang_c(5, 5.0) == 1.0
    assert erlang_c(5, 7.5) == 1.0
    assert erlang_c(0, 1.0) == 1.0
    assert erlang_c(5, 0.0) == 0.0
    assert erlang_c_wait(5 / 180, 180, 5) == math.inf
    assert service_level(5 / 180, 180, 4, 20) == 0.0
    assert agents_needed(0.0, 180, 0.8, 20) == 0
    with pytest.raises(ValueError):
        agents_needed(1 / 60, 180, 1.0, 20)


# --------------------------------------------------------- estimated wait

def test_estimated_wait():
    assert estimated_wait(1, 4, 0, 180) == 45.0          # next: one of 4 agents frees up
    assert estimated_wait(5, 4, 0, 180) == 225.0
    assert estimated_wait(3, 4, 2, 180) == 45.0          # 2 idle agents take the two ahead
    assert estimated_wait(2, 4, 3, 180) == 0.0
    assert estimated_wait(1, 1, 0, 300) == 300.0
    assert estimated_wait(3, 0, 0, 180) is None           # nobody serves the queue
    with pytest.raises(ValueError):
        estimated_wait(0, 4, 0, 180)


def test_handle_times():
    h = HandleTimes(default_seconds=180, wrapup_seconds=5)
    assert h.average([]) == 180.0                         # no history: the configured default
    assert h.average([100, 200]) == 155.0                 # mean talk + wrap-up
    assert h.average([0, -3, 100]) == 105.0               # nonsense samples are ignored
    # A call left open for an hour among 2-minute calls is not a handle time ...
    assert h.average([120] * 19 + [3600]) == 125.0
    # ... but long calls in a skewed mix are kept: the mean must not be biased low.
    assert h.average([60, 60, 60, 60, 600]) == 173.0
    assert h.average([5 * 3600]) == 180.0                 # above max_talk_seconds: ignored


# ------------------------------------------------------------- simulation

def simulate(*, agents: int, handle_s: float, load: float, callers: int, seed: int,
             handle_of=None) -> tuple[list[tuple[float, float, int]], float]:
    """A FIFO queue served by ``agents`` agents, Poisson arrivals, exponential
    handle times. Returns, per caller, (measured wait, estimate on arrival,
    calls ahead of them still to finish), and the arrival rate.

    FIFO with several agents: each caller takes the agent that frees up first
    (start times are then in arrival order, so the callers still waiting at
    time t are exactly those whose start is after t).
    """
    rng = random.Random(seed)
    rate = load * agents / handle_s
    free_at = [0.0] * agents
    starts: collections.deque[float] = collections.deque()
    talks: collections.deque[float] = collections.deque(maxlen=50)
    ending: list[tuple[float, float]] = []  # (end, talk time): known once the call ends
    t, rows = 0.0, []
    for _ in range(callers):
        t += rng.expovariate(rate)
        while ending and ending[0][0] <= t:
            talks.append(heapq.heappop(ending)[1])
        while starts and starts[0] <= t:
            starts.popleft()
        idle = sum(1 for f in free_at if f <= t)
        position = len(starts) + 1
        h = handle_s if handle_of is None else handle_of(talks)
        estimate = estimated_wait(position, agents, idle, h)
        start = max(t, heapq.heappop(free_at))
        talk = rng.expovariate(1 / handle_s)
        heapq.heappush(free_at, start + talk)
        heapq.heappush(ending, (start + talk, talk))
        starts.append(start)
        rows.append((start - t, estimate, max(0, position - idle)))
    return rows, rate


def test_estimate_is_unbiased_in_a_simulated_queue():
    agents, handle = 5, 180.0
    rows, rate = simulate(agents=agents, handle_s=handle, load=0.8, callers=60_000, seed=20240611)
    waits = [w for w, _, _ in rows]
    errors = [w - e for w, e, _ in rows]
    mean_wait = statistics.fmean(waits)
    # The queue behaves as Erlang C says (a check of the simulation itself).
    assert mean_wait == pytest.approx(erlang_c_wait(rate, handle, agents), rel=0.08)
    assert sum(1 for w in waits if w > 0) / len(waits) == pytest.approx(erlang_c(agents, rate * handle), abs=0.02)
    # No bias: over-estimates and under-estimates cancel out.
    assert abs(statistics.fmean(errors)) < 0.02 * mean_wait
    # Spread: the wait of a caller with m calls to finish ahead is a sum of m
    # exponential gaps of mean h/N, standard deviation sqrt(m) h/N; the mean
    # absolute error cannot exceed the mean of that (Jensen).
    mae = statistics.fmean(abs(e) for e in errors)
    bound = statistics.fmean(math.sqrt(m) for _, _, m in rows) * handle / agents
    assert mae <= bound
    # And knowing the position beats telling everyone the average wait.
    assert mae < 0.6 * statistics.fmean(abs(w - mean_wait) for w in waits)


def test_estimate_with_learned_handle_times_stays_close():
    """What the engine does: h from the last 50 calls that ended.

    This estimate is slightly pessimistic (about 6% in this set-up): a long
    queue builds up when the recent calls were long, so h is high exactly
    when many calls are ahead, while the next calls' lengths owe nothing to
    the last ones. Saying a little too much is the better side to err on."""
    learned = HandleTimes(default_seconds=180)
    rows, _ = simulate(agents=8, handle_s=240.0, load=0.85, callers=40_000, seed=7,
                       handle_of=lambda talks: learned.average(talks))
    waits = [w for w, _, _ in rows]
    errors = [w - e for w, e, _ in rows]
    mean_wait = statistics.fmean(waits)
    assert -0.10 * mean_wait < statistics.fmean(errors) < 0.02 * mean_wait
    assert statistics.fmean(abs(e) for e in errors) < 0.45 * mean_wait
