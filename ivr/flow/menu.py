"""The hotline's main menu: a small state machine and the loop that drives it.

``MenuState.on_key`` is the only place that decides what a key means; it does
no I/O and returns the next state, so every rule (wrong key, silence, last
retry) is tested by feeding keys. ``run_hotline`` does the talking.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Literal

from ivr.configuration import Config, Hotline

from .channel import Channel

log = logging.getLogger(__name__)

Outcome = Literal["choice", "retries_exhausted"]


@dataclass(frozen=True)
class Route:
    """Where the caller goes: an Asterisk queue, and why."""

    queue: str
    program: str | None
    outcome: Outcome
    attempts: int


@dataclass(frozen=True)
class MenuState:
    hotline: Hotline
    failures: int = 0
    # What to say before the menu prompt on the next round.
    apology: str | None = None
    route: Route | None = None

    @property
    def escape_digits(self) -> str:
        # Every key cuts a prompt short, so a wrong key is answered at once
        # (with the invalid-option prompt) instead of being silently ignored.
        return "0123456789*#"

    def on_key(self, key: str | None) -> "MenuState":
        """One answer from the caller (None = silence) -> the next state."""
        menu = self.hotline.menu
        if key is not None and key in menu.options:
            program = menu.options[key]
            return replace(self, route=Route(program, program, "choice", self.failures + 1))
        failures = self.failures + 1
        if failures >= menu.retries:
            # Never a hang-up: after the last retry the caller still reaches people.
            route = Route(self.hotline.fallback_queue, None, "retries_exhausted", failures)
            return replace(self, failures=failures, route=route)
        apology = menu.no_input_prompt if key is None else menu.invalid_prompt
        return replace(self, failures=failures, apology=apology)


def prompt_path(prompt_id: str) -> str:
    """Prompts live under sounds/<language>/ivr/; Asterisk adds the language."""
    return f"ivr/{prompt_id}"


async def run_hotline(channel: Channel, hotline: Hotline, config: Config) -> Route:
    state = MenuState(hotline)
    escape = state.escape_digits
    key: str | None = None
    if hotline.welcome_prompt:
        key = await channel.play(prompt_path(hotline.welcome_prompt), escape)
    while state.route is None:
        if key is None:
            if state.apology:
                key = await channel.play(prompt_path(state.apology), escape)
            if key is None:
                key = await channel.play(prompt_path(hotline.menu.prompt), escape)
            if key is None:
                key = await channel.wait_digit(hotline.menu.timeout_seconds)
        state = state.on_key(key)
        if state.route is None:
            log.info("hotline %s: %s (attempt %d)", hotline.number,
                     "no input" if key is None else "invalid key", state.failures)
        key = None
    return state.route
