"""The service check's call: "did you get the service? 1 yes, 2 no".

The engine placed the call (``dialler``); the citizen answered. They hear
who calls and about which request (the reference digit by digit), then the
question. *1* closes the case (the citizen's ``confirm``), *2* reopens it for
its sector (``dispute``), each said back to them. A wrong key or silence
gets "this choice is not valid" and the question again, three times in all;
then the call ends and nothing is recorded: the dialler calls again after
``retry_minutes`` until its attempts are used up.

The answer is written by the composition root's ``answer`` (the case store,
in a worker thread). It never fails the call: with the database away the
citizen hears that their answer could not be recorded now, and the check
stays open (the next attempt asks again). A case an agent moved on
meanwhile (reopened, closed) keeps its new state: the citizen is thanked,
nothing is overwritten.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from cases.reference import BadReference, check_reference
from core.arabic.numbers import digit_fragments
from core.channel import Channel
from core.configuration import Config
from core.contract import prompt_path

log = logging.getLogger(__name__)

YES, NO = "1", "2"
TRIES = 3
ANSWER_TIMEOUT_SECONDS = 6.0

# What ``answer`` reports.
RECORDED = "recorded"        # confirmed or disputed as asked
ENDED = "ended"              # nothing to do: no longer resolved, or already answered
NOT_FOUND = "not_found"
UNAVAILABLE = "unavailable"  # the database did not answer: asked again next attempt

Answer = Callable[[str, str, bool], Awaitable[str]]


def store_answer(store, *, clock: Callable[[], datetime], on_change: Callable[[], None] = lambda: None) -> Answer:
    """``(tenant, reference, got_service) -> outcome`` on a ``cases.store.CaseStore``.

    A conflict (an agent saved the case meanwhile) is retried on a fresh
    read: the citizen's answer still applies if the case is still resolved
    and unanswered."""
    import sqlalchemy as sa

    from cases import model
    from cases.store import CaseConflict, CaseNotFound

    def write(tenant: str, reference: str, got_service: bool) -> str:
        step = model.confirm if got_service else model.dispute
        for _ in range(3):
            case = store.get(tenant, reference)
            try:
                change = step(case, at=clock())
            except model.TransitionRefused:
                return ENDED
            try:
                store.save(change)
            except CaseConflict:
                continue
            return RECORDED
        return UNAVAILABLE

    async def answer(tenant: str, reference: str, got_service: bool) -> str:
        try:
            outcome = await asyncio.to_thread(write, tenant, reference, got_service)
        except CaseNotFound:
            return NOT_FOUND
        except sa.exc.SQLAlchemyError as exc:
            log.error("service check %s: the answer could not be saved (%s); it is asked again at the next "
                      "attempt", reference, type(exc).__name__)
            return UNAVAILABLE
        if outcome == RECORDED:
            on_change()
        return outcome

    return answer


async def ask(channel: Channel, *, reference: str, intro_prompt: str) -> bool | None:
    """The question, up to TRIES times: True (1, got it), False (2, did not), None."""
    said = [intro_prompt, *digit_fragments(reference), "service-check-question"]
    for attempt in range(TRIES):
        key = None
        if attempt:
            key = await channel.play(prompt_path("invalid-option"), YES + NO)
        # The first time, the whole intro; then the question alone.
        for prompt in (said if attempt == 0 else said[-1:]):
            if key is not None:
                break
            key = await channel.play(prompt_path(prompt), YES + NO)
        if key is None:
            key = await channel.wait_digit(ANSWER_TIMEOUT_SECONDS)
        if key in (YES, NO):
            return key == YES
    return None


class ServiceCheckHandler:
    """FastAGI route ``service_check``: arg 1 the reference, arg 2 the tenant."""

    def __init__(self, *, config: Config, answer: Answer | None):
        self._config = config
        self._answer = answer

    async def __call__(self, session: Channel) -> None:
        raw, tenant_id = session.env.get("arg_1", ""), session.env.get("arg_2", "")
        tenant = self._config.cases.tenant(tenant_id)
        try:
            reference = check_reference(raw)
        except BadReference:
            reference = None
        if reference is None or tenant is None or tenant.service_check.mode != "call" or self._answer is None:
            log.warning("service check: refused a call for reference %r of tenant %r (unknown, or no checks)",
                        raw[:12], tenant_id[:40])
            return
        got = await ask(session, reference=reference, intro_prompt=tenant.service_check.intro_prompt)
        if got is None:
            log.info("service check %s: no answer given (%s); the next attempt asks again", reference,
                     session.describe())
            return
        outcome = await self._answer(tenant.id, reference, got)
        log.info("service check %s: the citizen answered %s: %s", reference, "yes" if got else "no", outcome)
        if outcome == RECORDED:
            await session.play(prompt_path("service-check-thanks" if got else "service-check-reopened"), "")
        elif outcome == UNAVAILABLE:
            await session.play(prompt_path("service-check-unavailable"), "")
        else:
            await session.play(prompt_path("service-check-goodbye"), "")
