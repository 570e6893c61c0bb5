"""The deadline Asterisk holds over the engine, kept step by step (no I/O).

Asterisk waits for an AGI peer's next command with no time limit. The
dialplan therefore runs every ``AGI()`` under the channel's absolute timeout
(``core.contract.DEADLINE_VARIABLE``), armed for the engine's first command;
when it fires, ``AGI()`` returns and the context's ``T`` extension moves the
caller on (to the queue chosen so far, or the fallback). The engine keeps
that deadline ahead of each step it asks Asterisk for:

* before a step that may last ``bound`` seconds (a prompt, a wait for a key,
  a prompt and a number typed key by key), the deadline must reach past
  ``bound`` plus the slack (the engine's own work before its next command);
  when the one set earlier does not, a new one is set;
* after a step that ended early (a key cut the prompt short), a deadline far
  ahead would let a hung engine hold the caller for the rest of it: it is
  brought back to the slack.

So a hung engine holds a caller at most the slack after the step Asterisk
is doing, and a working engine pays one short ``SET VARIABLE`` for most
steps, two when a caller barges in.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from core.contract import AGI_FIRST_COMMAND_SECONDS, AGI_STEP_SLACK_SECONDS

# A prompt whose length is not known (no file at hand) is given this long.
UNKNOWN_PROMPT_SECONDS = 30.0
# A deadline is shortened after a step only when that saves more than this.
SHORTEN_MARGIN_SECONDS = 2.0


class StepDeadline:
    """When Asterisk gives up on the engine, as the engine last set it.

    ``arm_for`` and ``shorten_after`` return the seconds to set (then
    ``TIMEOUT(absolute)=<seconds>``), or None when the deadline in force is
    right as it is. ``prompt_seconds(prompt)`` is a prompt's length (None:
    unknown)."""

    def __init__(self, *, prompt_seconds: Callable[[str], float | None] | None = None,
                 slack: float = AGI_STEP_SLACK_SECONDS, first: float = AGI_FIRST_COMMAND_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self._prompt_seconds = prompt_seconds or (lambda prompt: None)
        self._slack = slack
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
        return self.prompt(prompt) + timeout_seconds * (max_digits + 1)

    def arm_for(self, bound: float) -> int | None:
        now = self._clock()
        if now + bound + self._slack <= self._until:
            return None
        seconds = math.ceil(bound + self._slack)
        self._until = now + seconds
        return seconds

    def shorten_after(self) -> int | None:
        now = self._clock()
        if self._until - now <= self._slack + SHORTEN_MARGIN_SECONDS:
            return None
        seconds = math.ceil(self._slack)
        self._until = now + seconds
        return seconds

    def extend(self, seconds: float) -> int | None:
        """Before engine-side work that may take ``seconds`` (a database
        lookup between two steps): the deadline covers it, plus the slack."""
        return self.arm_for(seconds)
