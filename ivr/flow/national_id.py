"""National ID entry: 14 digits ended by #, read back, confirmed with 1.

``IdEntry`` is the state machine (no I/O): what the caller typed or pressed
goes in, the next state comes out. Three failures (an invalid ID, a request
to re-enter, silence at the confirmation) lead on *without* an ID, never to
a hang-up. ``collect_national_id`` does the talking.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Callable

from core.citizens.national_id import NationalIdResult, mask_national_id, validate_national_id

from core.channel import Channel, read_entry
from core.contract import prompt_path

log = logging.getLogger(__name__)

CONFIRM, REENTER = "1", "2"
MAX_DIGITS = 20  # more than 14, so that a too-long entry is seen as such
ENTRY_TIMEOUT_SECONDS = 6.0
CONFIRM_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ConfirmedId:
    """A valid ID the caller confirmed. ``digits`` must never reach a log unmasked."""

    digits: str
    result: NationalIdResult

    @property
    def governorate(self):
        return self.result.governorate

    def __repr__(self) -> str:
        return f"ConfirmedId({mask_national_id(self.digits)})"


@dataclass(frozen=True)
class IdEntry:
    max_failures: int = 3
    failures: int = 0
    candidate: NationalIdResult | None = None  # valid, waiting for the caller's confirmation
    typed: str | None = field(default=None, repr=False)
    confirmed: ConfirmedId | None = None
    gave_up: bool = False
    apology: str | None = None

    @property
    def done(self) -> bool:
        return self.confirmed is not None or self.gave_up

    def on_digits(self, digits: str | None, today: date) -> "IdEntry":
        result = validate_national_id(digits or "", today)
        if result.valid:
            return replace(self, candidate=result, typed=(digits or "").rstrip("#"), apology=None)
        log.info("national ID rejected (%s): %s", result.reason, mask_national_id(digits))
        return self._fail("national-id-invalid")

    def on_confirm(self, key: str | None) -> "IdEntry":
        if key == CONFIRM and self.candidate is not None:
            return replace(self, confirmed=ConfirmedId(self.typed or "", self.candidate), apology=None)
        # Re-entry, another key or silence: the caller types it again.
        return replace(self._fail(None if key == REENTER else "invalid-option"), candidate=None, typed=None)

    def _fail(self, apology: str | None) -> "IdEntry":
        failures = self.failures + 1
        if failures >= self.max_failures:
            return replace(self, failures=failures, gave_up=True, apology=None)
        return replace(self, failures=failures, apology=apology)


OUTCOMES = ("invalid", "reentered", "confirmed", "gave_up")


async def collect_national_id(channel: Channel, *, today: date, read_back: Callable[[str], list[str]],
                              on_outcome: Callable[[str], None] = lambda outcome: None) -> ConfirmedId | None:
    """Ask for the ID; return it validated and confirmed, or None after three failures.

    ``on_outcome`` hears each step's outcome (one of OUTCOMES), for metrics."""
    state = IdEntry()
    while not state.done:
        if state.candidate is None:
            digits = await read_entry(channel, prompt_path("national-id-enter"), ENTRY_TIMEOUT_SECONDS, MAX_DIGITS,
                                      apology=state.apology and prompt_path(state.apology))
            state = state.on_digits(digits, today)
            if state.candidate is None:
                on_outcome("invalid")
            continue
        # "You entered 2 9 0 ...": a key (1 or 2) may answer before the end.
        key = await channel.play(prompt_path("national-id-you-entered"), CONFIRM + REENTER)
        for fragment in read_back(state.typed or ""):
            if key is not None:
                break
            key = await channel.play(prompt_path(fragment), CONFIRM + REENTER)
        if key is None:
            key = await channel.play(prompt_path("national-id-confirm"), CONFIRM + REENTER)
        if key is None:
            key = await channel.wait_digit(CONFIRM_TIMEOUT_SECONDS)
        state = state.on_confirm(key)
        if state.confirmed is None:
            on_outcome("reentered")
    on_outcome("confirmed" if state.confirmed is not None else "gave_up")
    if state.confirmed is None:
        log.info("national ID: no valid ID after %d attempt(s); going on without", state.failures)
    return state.confirmed
