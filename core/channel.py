"""The narrow interface the IVR flows use to talk to a call.

The FastAGI session implements it today; a classic AGI (pyst2) channel and
the tests' scripted channel implement the same methods, so one flow engine
serves every path and is tested without any I/O.
"""

from __future__ import annotations

from typing import Mapping, Protocol

# Every key cuts a prompt short, so a wrong key is answered at once (with the
# invalid-option prompt) instead of being silently ignored.
ALL_KEYS = "0123456789*#"


class CallerHungUp(Exception):
    """The caller is gone; the flow ends and the dialplan's hang-up handler accounts for it."""


class PromptUnavailable(Exception):
    """A prompt could not be played although the caller is still there."""


class Channel(Protocol):
    @property
    def env(self) -> Mapping[str, str]: ...

    async def play(self, prompt: str, escape_digits: str = "") -> str | None:
        """Play ``prompt``; return the key that cut it short, or None when it ended."""

    async def wait_digit(self, timeout_seconds: float) -> str | None:
        """Return the next key, or None after ``timeout_seconds`` of silence."""

    async def read_digits(self, prompt: str, timeout_seconds: float, max_digits: int) -> str | None:
        """Play ``prompt`` and collect keys until '#' (not returned), ``max_digits`` or silence."""

    async def set_variable(self, name: str, value: str) -> None: ...

    async def set_variables(self, values: Mapping[str, str]) -> None:
        """Set each of ``values``, in order; in one step where the channel can
        (a round trip per variable is most of a short call's AGI traffic)."""

    def describe(self) -> str:
        """Who is calling, for a log line: the caller's number masked."""


async def read_entry(channel: Channel, prompt: str, timeout_seconds: float, max_digits: int, *,
                     apology: str | None = None) -> str | None:
    """Say ``apology`` (if any), then ``prompt``, and collect keys as ``read_digits`` does.

    A caller who starts typing again during the apology loses nothing: the
    key that cut it short is the entry's first, and the rest are read one by
    one with the same silence timeout, up to '#' (not returned) or
    ``max_digits``."""
    if apology:
        key = await channel.play(apology, ALL_KEYS)
        if key is not None:
            typed = ""
            while key is not None and key != "#":
                typed += key
                if len(typed) >= max_digits:
                    break
                key = await channel.wait_digit(timeout_seconds)
            return typed or None
    return await channel.read_digits(prompt, timeout_seconds, max_digits)
