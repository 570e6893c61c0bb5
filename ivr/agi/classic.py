"""Classic AGI: the same flows, one process per call, through pyst2 (the channel).

For small sites that do not run ``ivr serve``: the dialplan calls
``AGI(/path/to/.venv/bin/ivr-agi,hotline,<number>)`` (or ``survey,<program>``)
and Asterisk talks to this process over stdin/stdout. pyst2's blocking
``asterisk.agi.AGI`` does the protocol; :class:`PystChannel` adapts it to the
flows' :class:`core.channel.Channel`, so the menu, national ID, opening
hours and survey code is the very same as in the FastAGI service.

Costs: about 43 ms of CPU per call against about 4 ms with FastAGI (measured
on this project's machines; ``docs/benchmarks.md``), because every call starts
a Python interpreter. Call facts still go to Redis when it is reachable, so
AMI accounting labels the calls as usual.
"""

from __future__ import annotations

import logging
from typing import Mapping

from asterisk.agi import AGI, AGIAppError, AGIError, AGIHangup

from core.channel import CallerHungUp, PromptUnavailable
from core.contract import DEADLINE_VARIABLE
from core.privacy import mask_number

from .deadline import StepDeadline
from .protocol import mset_argument

log = logging.getLogger(__name__)


class PystChannel:
    """:class:`core.channel.Channel` on pyst2's blocking AGI object.

    Blocking calls inside ``async def`` are fine here: the process serves one
    call and nothing else runs in its event loop.
    """

    def __init__(self, agi: AGI, *, route_args: list[str], deadline: StepDeadline | None = None):
        """``deadline``: keep Asterisk's deadline ahead of each step, as the
        FastAGI session does (ivr.agi.deadline)."""
        self._agi = agi
        self._deadline = deadline
        # pyst2 keeps the "agi_" prefix; the flows use the FastAGI names.
        env = {k[4:] if k.startswith("agi_") else k: v for k, v in agi.env.items()}
        # AGI(script,<route>,<arg>): the route is argv[1], its argument argv[2].
        for n, value in enumerate(route_args, start=1):
            env[f"arg_{n}"] = value
        self._env = env

    @property
    def env(self) -> Mapping[str, str]:
        return self._env

    def describe(self) -> str:
        return f"classic AGI uid={self._env.get('uniqueid', '?')} from={mask_number(self._env.get('callerid'))}"

    def _call(self, method, *args):
        try:
            return method(*args)
        except AGIHangup as exc:
            raise CallerHungUp(self.describe()) from exc
        except AGIAppError as exc:
            # result=-1: the caller left, or the file could not be played.
            if self._channel_gone():
                raise CallerHungUp(self.describe()) from exc
            raise PromptUnavailable(str(exc)) from exc
        except (AGIError, ValueError, OSError) as exc:
            # Asterisk closed the pipe or sent something pyst2 cannot read: this
            # call's flow ends here and the dialplan goes on (fallback queue).
            raise CallerHungUp(f"{self.describe()}: {exc!r}") from exc

    def _channel_gone(self) -> bool:
        try:
            return int(self._agi.execute("CHANNEL STATUS")["result"][0]) < 0
        except (AGIHangup, AGIAppError, ValueError):
            return True

    def _step(self, bound: float, method, *args):
        if self._deadline is not None:
            self._set_deadline(self._deadline.arm_for(bound))
        return self._call(method, *args)

    def _set_deadline(self, seconds: int | None) -> None:
        if seconds is not None:
            self._call(self._agi.set_variable, DEADLINE_VARIABLE, seconds)

    async def play(self, prompt: str, escape_digits: str = "") -> str | None:
        bound = self._deadline.play_bound(prompt) if self._deadline else 0
        return self._step(bound, self._agi.stream_file, prompt, escape_digits) or None

    async def wait_digit(self, timeout_seconds: float) -> str | None:
        return self._step(timeout_seconds, self._agi.wait_for_digit, int(timeout_seconds * 1000)) or None

    async def read_digits(self, prompt: str, timeout_seconds: float, max_digits: int) -> str | None:
        bound = self._deadline.read_bound(prompt, timeout_seconds, max_digits) if self._deadline else 0
        return self._step(bound, self._agi.get_data, prompt, int(timeout_seconds * 1000), max_digits) or None

    async def extend_deadline(self, seconds: float) -> None:
        if self._deadline is not None:
            self._set_deadline(self._deadline.extend(seconds))

    async def set_variable(self, name: str, value: str) -> None:
        self._call(self._agi.set_variable, name, value)

    async def set_variables(self, values: Mapping[str, str]) -> None:
        """In one command (``EXEC MSet``) when the values allow it, as the
        FastAGI session does."""
        argument = mset_argument(values) if len(values) > 1 else None
        if argument is not None:
            try:
                if self._call(self._agi.appexec, "MSet", argument) in (0, "0"):
                    return
            except PromptUnavailable:
                pass   # MSet failed on a live channel: one by one below
        for name, value in values.items():
            await self.set_variable(name, value)
