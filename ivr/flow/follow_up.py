"""Following up a case by phone: the reference, then its status and date.

The caller chose "follow up a request" (a menu option ``{action: follow_up}``).
They type the reference number and ``#``; a number of the wrong length or
with a wrong check digit is said to be wrong and asked again, and so is a
reference that is nobody's (three tries in all). A case found is said back:
"your request number 1 2 3 ... is in progress, and is expected to be done on
Sunday the fifteenth of March" (the number module reads the digits, the
date module the date; a case past its deadline adds an apology, a resolved
one says when). The caller may then press 1 to reach an agent of the
case's sector, or 2 to end the call; either key also cuts the status short.

:class:`FollowUpEntry` is the state machine (no I/O); ``run_follow_up``
does the talking, with the case lookup given by the composition root (the
case store, in a thread). The lookup never fails the call: when the
database is away the caller hears so and is offered an agent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime

from cases.reference import BadReference, check_reference
from core.arabic.dates import date_fragments
from core.arabic.numbers import digit_fragments
from core.channel import Channel, read_entry
from core.contract import prompt_path

log = logging.getLogger(__name__)

MAX_DIGITS = 12         # more than 9, so that a too-long entry is seen as such
ENTRY_TIMEOUT_SECONDS = 6.0
OFFER_TIMEOUT_SECONDS = 5.0
AGENT, END = "1", "2"


@dataclass(frozen=True)
class CaseStatus:
    """What the caller is told of a case (read by the composition root's lookup)."""

    reference: str
    status: str
    program: str | None          # the sector's programme: where "talk to an agent" goes
    resolution_due: datetime
    resolved_at: datetime | None
    overdue: bool
    is_open: bool


class LookupUnavailable(Exception):
    """The case database cannot answer now."""


Lookup = Callable[[str], Awaitable[CaseStatus | None]]


def store_lookup(store, *, clock: Callable[[], datetime]) -> Callable[[str, str], Awaitable[CaseStatus | None]]:
    """``(tenant, reference) -> CaseStatus | None`` on a ``cases.store.CaseStore``,
    in a worker thread; ``LookupUnavailable`` when the database is away.
    (Imported here: a classic-AGI process that never looks up a case does not
    pay for SQLAlchemy's import.)"""
    import asyncio

    import sqlalchemy as sa

    from cases import model
    from cases.store import CaseNotFound

    async def lookup(tenant: str, reference: str) -> CaseStatus | None:
        try:
            case = await asyncio.to_thread(store.get, tenant, reference)
        except CaseNotFound:
            return None
        except sa.exc.SQLAlchemyError as exc:
            raise LookupUnavailable(type(exc).__name__) from exc
        sector = store.config.sector(case.sector)
        return CaseStatus(reference=case.reference, status=case.status.value,
                          program=sector.program if sector else None, resolution_due=case.resolution_due,
                          resolved_at=case.resolved_at, is_open=case.is_open,
                          overdue="resolution" in (model.overdue(case, clock()) | case.escalated))

    return lookup


@dataclass(frozen=True)
class FollowUpEntry:
    max_failures: int = 3
    failures: int = 0
    apology: str | None = None
    reference: str | None = None     # well-formed, to be looked up
    found: CaseStatus | None = None
    gave_up: bool = False
    unavailable: bool = False

    @property
    def done(self) -> bool:
        return self.found is not None or self.gave_up or self.unavailable

    def on_digits(self, typed: str | None) -> tuple["FollowUpEntry", str]:
        """What the caller typed -> the next state and the result to count."""
        try:
            reference = check_reference(typed or "")
        except BadReference as exc:
            result = "wrong_check_digit" if exc.reason == "check_digit" else "incomplete"
            return self._fail("follow-up-wrong" if result == "wrong_check_digit" else "follow-up-incomplete"), result
        return replace(self, reference=reference, apology=None), "looked_up"

    def on_lookup(self, found: CaseStatus | None) -> tuple["FollowUpEntry", str]:
        if found is None:
            return replace(self._fail("follow-up-not-found"), reference=None), "not_found"
        return replace(self, found=found, apology=None), "found"

    def on_unavailable(self) -> "FollowUpEntry":
        return replace(self, unavailable=True, reference=None)

    def _fail(self, apology: str) -> "FollowUpEntry":
        failures = self.failures + 1
        if failures >= self.max_failures:
            return replace(self, failures=failures, gave_up=True, apology=apology)
        return replace(self, failures=failures, apology=apology)


@dataclass(frozen=True)
class FollowUpResult:
    case: CaseStatus | None
    wants_agent: bool


def status_fragments(case: CaseStatus, *, today: date, local: Callable[[datetime], date]) -> list[str]:
    """The prompts that say the case's status and its date, in order."""
    out = ["follow-up-request", *digit_fragments(case.reference), f"follow-up-status-{case.status}"]
    if case.is_open:
        out += ["follow-up-expected-by", *date_fragments(local(case.resolution_due), today=today)]
        if case.overdue:
            out.append("follow-up-overdue")
    elif case.resolved_at is not None:
        out += ["follow-up-resolved-on", *date_fragments(local(case.resolved_at), today=today)]
    return out


async def run_follow_up(channel: Channel, *, lookup: Lookup, today: date, local: Callable[[datetime], date],
                        on_result: Callable[[str], None] = lambda result: None) -> FollowUpResult:
    state = FollowUpEntry()
    while not state.done:
        typed = await read_entry(channel, prompt_path("follow-up-enter"), ENTRY_TIMEOUT_SECONDS, MAX_DIGITS,
                                 apology=state.apology and prompt_path(state.apology))
        state, result = state.on_digits(typed)
        if state.reference is None:
            on_result(result)
            continue
        try:
            found = await lookup(state.reference)
        except LookupUnavailable:
            state = state.on_unavailable()
            on_result("unavailable")
            break
        state, result = state.on_lookup(found)
        on_result(result)
    # What is said next may be cut short by the answer to the offer (1 an
    # agent, 2 the end): a caller who knows the menu need not hear it all.
    key = None
    if state.gave_up:
        on_result("gave_up")
        said = [state.apology or "follow-up-not-found"]
    elif state.unavailable:
        said = ["follow-up-unavailable"]
    else:
        said = status_fragments(state.found, today=today, local=local)
    for prompt in [*said, "follow-up-agent-offer"]:
        key = await channel.play(prompt_path(prompt), AGENT + END)
        if key is not None:
            break
    if key is None:
        key = await channel.wait_digit(OFFER_TIMEOUT_SECONDS)
    if key != AGENT:
        await channel.play(prompt_path("follow-up-goodbye"), "")
    return FollowUpResult(case=state.found, wants_agent=key == AGENT)
