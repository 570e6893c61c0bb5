"""Menu trees: a small state machine and the loop that drives it.

``MenuWalk.on_key`` is the only place that decides what a key means; it does
no I/O and returns the next state, so every rule (wrong key, silence, last
retry, ``*`` back, ``0`` repeat, entering a sub-menu) is tested by feeding
keys. ``run_hotline`` does the talking. Menus come from the configuration:
adding a programme or a node is a config change only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Literal

from core.configuration import Config, Hotline, Menu
from core.configuration.model import FOLLOW_UP_REQUEST_TYPE

from core.channel import ALL_KEYS, Channel
from core.contract import prompt_path

log = logging.getLogger(__name__)

Outcome = Literal["choice", "retries_exhausted", "follow_up", "answer"]
BACK, REPEAT = "*", "0"


@dataclass(frozen=True)
class Route:
    """Where the caller goes: an Asterisk queue, and why."""

    queue: str
    program: str | None
    request_type: str | None
    outcome: Outcome
    menu: str  # the menu the caller left from
    answer: str | None = None  # outcome "answer": the self-service answer to say


@dataclass(frozen=True)
class MenuWalk:
    config: Config
    hotline: Hotline
    path: tuple[str, ...]  # menu ids from the hotline's first menu to the current one
    failures: int = 0
    # What to say before the current menu's prompt on the next round.
    apology: str | None = None
    route: Route | None = None

    @classmethod
    def start(cls, config: Config, hotline: Hotline) -> "MenuWalk":
        return cls(config, hotline, (hotline.menu,))

    @property
    def menu_id(self) -> str:
        return self.path[-1]

    @property
    def menu(self) -> Menu:
        return self.config.menus[self.menu_id]

    def on_key(self, key: str | None) -> "MenuWalk":
        """One answer from the caller (None = silence) -> the next state."""
        menu = self.menu
        if key == BACK:
            # Back one menu (on the first menu: hear it again). Not a failure.
            return replace(self, path=self.path[:-1] or self.path, failures=0, apology=None)
        if key == REPEAT:
            return replace(self, apology=None)
        option = menu.options.get(key) if key is not None else None
        if option is not None and option.menu is not None:
            return replace(self, path=self.path + (option.menu,), failures=0, apology=None)
        if option is not None and option.action == "follow_up":
            # Self-service: the hotline's flow asks for the reference; the
            # queue is the fallback until the case says which sector it is.
            return replace(self, route=Route(self.hotline.fallback_queue, None, FOLLOW_UP_REQUEST_TYPE, "follow_up",
                                             self.menu_id))
        if option is not None and option.answer is not None:
            # Self-service: the hotline's flow says the answer; the queue is
            # where a caller it did not help goes.
            program = self.config.answers[option.answer].program
            return replace(self, route=Route(self.config.program_queue(program).id, program, None, "answer",
                                             self.menu_id, answer=option.answer))
        if option is not None:
            queue = self.config.program_queue(option.program).id
            return replace(self, route=Route(queue, option.program, option.request_type, "choice", self.menu_id))
        failures = self.failures + 1
        if failures >= menu.retries:
            return replace(self, failures=failures, route=self._exhausted())
        return replace(self, failures=failures, apology=menu.no_input_prompt if key is None else menu.invalid_prompt)

    def _exhausted(self) -> Route:
        # Never a hang-up: after the last retry the caller still reaches
        # people, in the programme the caller was in, else the hotline's fallback.
        program = next((self.config.menus[m].program for m in reversed(self.path)
                        if self.config.menus[m].program), None)
        if program is not None:
            return Route(self.config.program_queue(program).id, program, None, "retries_exhausted", self.menu_id)
        return Route(self.hotline.fallback_queue, None, None, "retries_exhausted", self.menu_id)


async def run_hotline(channel: Channel, hotline: Hotline, config: Config) -> Route:
    walk = MenuWalk.start(config, hotline)
    try:
        return await _walk(channel, hotline, walk)
    except Exception as exc:
        # Where the caller left the IVR (a hang-up, usually): the caller of
        # this function counts it per menu node.
        exc.ivr_menu = getattr(exc, "ivr_menu", None) or _current_menu.get(id(channel), hotline.menu)
        raise
    finally:
        _current_menu.pop(id(channel), None)


# The menu each running walk is in, by channel (for the hang-up node).
_current_menu: dict[int, str] = {}


async def _walk(channel: Channel, hotline: Hotline, walk: MenuWalk) -> Route:
    key: str | None = None
    _current_menu[id(channel)] = walk.menu_id
    if hotline.welcome_prompt:
        key = await channel.play(prompt_path(hotline.welcome_prompt), ALL_KEYS)
    while walk.route is None:
        if key is None:
            if walk.apology:
                key = await channel.play(prompt_path(walk.apology), ALL_KEYS)
            if key is None:
                key = await channel.play(prompt_path(walk.menu.prompt), ALL_KEYS)
            if key is None:
                key = await channel.wait_digit(walk.menu.timeout_seconds)
        before = walk
        walk = walk.on_key(key)
        _current_menu[id(channel)] = walk.menu_id
        if walk.failures > before.failures and walk.route is None:
            log.info("hotline %s menu %s: %s (attempt %d)", hotline.number, before.menu_id,
                     "no input" if key is None else "invalid key", walk.failures)
        key = None
    return walk.route
