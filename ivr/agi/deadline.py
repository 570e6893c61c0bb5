"""The deadline Asterisk holds over the engine, kept step by step (no I/O).

Asterisk waits for an AGI peer's next command with no time limit. The
dialplan therefore runs every ``AGI()`` under the channel's absolute timeout
(``core.contract.DEADLINE_VARIABLE``), armed for the engine's first command;
when it fires, ``AGI()`` returns and the context's ``T`` extension moves the
caller on (to the queue chosen so far, or the fallback). The engine keeps
that deadline ahead of each step it asks Asterisk for: before a step that may
last ``bound`` seconds (a prompt, a wait for a key, a prompt and a number
typed key by key), the deadline must reach past ``bound`` plus the slack
(the engine's own work before its next command); when the one set earlier
does not, a new one is set, with some headroom so that a run of short steps
(a caller typing digits one by one) needs one ``SET VARIABLE`` every few
seconds rather than one per key.

A hung engine therefore holds a caller at most the step Asterisk is doing,
the slack and the headroom. The deadline is never shortened after a step
that ended early (a key cut a prompt short): shortening needs a command from
the engine, and an engine that can still send one is not hung; its cost was a
round trip between two steps, during which Asterisk drops the keys a caller
presses (res_agi reads and discards a channel's frames between commands).
For the same reason a step's bound is capped: a number typed key by key may
in principle last ``timeout x (digits + 1)``, but a deadline that far ahead
would let a hung engine hold a caller who typed fast for over a minute; a
caller slower than the cap is moved on to a queue, never hung up on.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from core.contract import AGI_FIRST_COMMAND_SECONDS, AGI_STEP_SLACK_SECONDS

# A prompt whose length is not known (no file at hand) is given this long.
UNKNOWN_PROMPT_SECONDS = 30.0
# Extra seconds on every deadline set, so that short steps in a row share one.
HEADROOM_SECONDS = 4.0
# The longest wait for keys after a prompt that a step's deadline covers.
MAX_KEYS_SECONDS = 30.0


class StepDeadline:
    """When Asterisk gives up on the engine, as the engine last set it.

    ``arm_for`` returns the seconds to set (then
    ``TIMEOUT(absolute)=<seconds>``), or None when the deadline in force
    covers the step. ``prompt_seconds(prompt)`` is a prompt's length (None:
    unknown)."""

    def __init__(self, *, prompt_seconds: Callable[[str], float | None] | None = None,
                 slack: float = AGI_STEP_SLACK_SECONDS, first: float = AGI_FIRST_COMMAND_SECONDS,
                 headroom: float = HEADROOM_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._prompt_seconds = prompt_seconds or (lambda prompt: None)
        self._slack = slack
        self._headroom = headroom
        self._clock = clock
        # The dialplan armed `first` seconds before AGI(); some of it went on
        # connecting and reading the environment.
        self._until = clock() + first - 1

    def prompt(self, prompt: str) -> float:
        seconds = self._prompt_seconds(prompt)
        return UNKNOWN_PROMPT_SECONDS if seconds is None else seconds

    def play_bound(self, prompt: str) -> float:
        return self.prompt(prompt)

    def read_bound(self, prompt: str, timeout_seconds: float, max_digits: int) -> float:
        # GET DATA waits up to the timeout for the first key and for each next one.
        return self.prompt(prompt) + min(timeout_seconds * (max_digits + 1), MAX_KEYS_SECONDS)

    def arm_for(self, bound: float) -> int | None:
        now = self._clock()
        if now + bound + self._slack <= self._until:
            return None
        seconds = math.ceil(bound + self._slack + self._headroom)
        self._until = now + seconds
        return seconds

    def extend(self, seconds: float) -> int | None:
        """Before engine-side work that may take ``seconds`` (a database
        lookup between two steps): the deadline covers it, plus the slack."""
        return self.arm_for(seconds)
