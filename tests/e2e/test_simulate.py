"""`ivr simulate` against the engine: the machinery a newcomer uses to see it work."""

from __future__ import annotations

import pytest

from core.paths import Paths
from app.simulate import run_simulation

pytestmark = pytest.mark.e2e


def test_simulated_calls_move_the_figures(hotline):
    result = run_simulation(hotline.config, Paths.from_environment(), calls=6, rate=1.0, abandon_share=0.34,
                            seed=7, sipp=hotline.sipp)
    assert result.failed == 0
    offered, answered, abandoned, short = (result.total(i) for i in range(4))
    # Each caller enters exactly one queue and ends answered, abandoned, or
    # abandoned within short_abandon_seconds of joining (a short abandon).
    assert offered == 6
    assert answered + abandoned + short == 6
    assert answered >= 1
