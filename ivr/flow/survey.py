"""The post-call survey: after the agent hangs up, the caller rates 1 to 5.

A wrong key or silence gets the question once more; then the call ends
without a rating (recorded as such), never with an error.
"""

from __future__ import annotations

import logging

from core.channel import Channel
from core.configuration import Config
from core.contract import prompt_path
from metrics.registry import EngineMetrics
from queues.calls.store import CallStateStore

log = logging.getLogger(__name__)

SCORES = "12345"
ATTEMPTS = 2
ANSWER_TIMEOUT_SECONDS = 5.0


async def run_survey(channel: Channel) -> int | None:
    """Ask for a rating; return 1..5, or None when the caller gave none."""
    for attempt in range(ATTEMPTS):
        key = None
        if attempt:
            # A rating pressed during the apology counts.
            key = await channel.play(prompt_path("invalid-option"), SCORES)
        if key is None:
            key = await channel.play(prompt_path("survey-question"), SCORES)
        if key is None:
            key = await channel.wait_digit(ANSWER_TIMEOUT_SECONDS)
        if key is not None and key in SCORES:
            await channel.play(prompt_path("survey-thanks"), "")
            return int(key)
    return None


class SurveyHandler:
    """FastAGI route ``survey``: runs after the agent hung up (Queue's c option)."""

    def __init__(self, *, config: Config, metrics: EngineMetrics, store: CallStateStore):
        self._config = config
        self._metrics = metrics
        self._store = store

    async def __call__(self, session: Channel) -> None:
        program = session.env.get("arg_1", "")
        if program not in {p.id for p in self._config.programs} or not self._config.program(program).survey:
            return
        score = await run_survey(session)
        label = str(score) if score is not None else "none"
        self._metrics.survey_ratings.labels(program=program, score=label).inc()
        uid = session.env.get("uniqueid", "")
        if uid:
            await self._store.set_fact(uid, "survey_score", label)
        log.info("survey %s: %s rated %s", program, session.describe(), label)
