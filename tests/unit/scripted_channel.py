"""A Channel whose caller follows a script: the flows' unit tests drive it, no I/O."""

from __future__ import annotations

from typing import Mapping


class ScriptedChannel:
    """A Channel whose caller presses keys from a script.

    Each play(), wait_digit() or read_digits() call consumes the next script
    entry: a key (for read_digits: the digits typed), None (the prompt ended /
    silence), or an exception instance to raise. Running out of script is a
    test failure, not a silent None.
    """

    def __init__(self, script, env: Mapping[str, str] | None = None):
        self._script = list(script)
        self._env = dict(env or {})
        self.calls: list[tuple] = []
        self.variables: dict[str, str] = {}

    @property
    def env(self) -> Mapping[str, str]:
        return self._env

    def _next(self):
        assert self._script, f"the flow asked for more input than scripted; calls so far: {self.calls}"
        item = self._script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    async def play(self, prompt: str, escape_digits: str = "") -> str | None:
        self.calls.append(("play", prompt, escape_digits))
        return self._next()

    async def wait_digit(self, timeout_seconds: float) -> str | None:
        self.calls.append(("wait", timeout_seconds))
        return self._next()

    async def read_digits(self, prompt: str, timeout_seconds: float, max_digits: int) -> str | None:
        self.calls.append(("read", prompt, timeout_seconds, max_digits))
        return self._next()

    async def set_variable(self, name: str, value: str) -> None:
        self.calls.append(("set", name, value))
        self.variables[name] = value

    async def set_variables(self, values: Mapping[str, str]) -> None:
        # Recorded as the variables one by one, in order: the flows' tests
        # check what is set and in which order, not in how many commands.
        for name, value in values.items():
            await self.set_variable(name, value)

    # AgiSession.describe() is used by the handler's log lines.
    def describe(self) -> str:
        return "scripted session"

    @property
    def prompts(self) -> list[str]:
        """Every prompt played, in order (GET DATA plays its prompt too)."""
        return [c[1] for c in self.calls if c[0] in ("play", "read")]

    @property
    def remaining(self) -> int:
        return len(self._script)
