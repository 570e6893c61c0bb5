"""Classic AGI: the same flows, one process per call, through pyst2.

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

import asyncio
import logging
import os
import sys
from typing import Mapping

from asterisk.agi import AGI, AGIAppError, AGIError, AGIHangup

from core.channel import CallerHungUp, PromptUnavailable

log = logging.getLogger(__name__)


class PystChannel:
    """:class:`core.channel.Channel` on pyst2's blocking AGI object.

    Blocking calls inside ``async def`` are fine here: the process serves one
    call and nothing else runs in its event loop.
    """

    def __init__(self, agi: AGI, *, route_args: list[str]):
        self._agi = agi
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
        from core.privacy import mask_number

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

    async def play(self, prompt: str, escape_digits: str = "") -> str | None:
        return self._call(self._agi.stream_file, prompt, escape_digits) or None

    async def wait_digit(self, timeout_seconds: float) -> str | None:
        return self._call(self._agi.wait_for_digit, int(timeout_seconds * 1000)) or None

    async def read_digits(self, prompt: str, timeout_seconds: float, max_digits: int) -> str | None:
        return self._call(self._agi.get_data, prompt, int(timeout_seconds * 1000), max_digits) or None

    async def set_variable(self, name: str, value: str) -> None:
        self._call(self._agi.set_variable, name, value)


def main(argv: list[str] | None = None) -> int:
    """Entry point ``ivr-agi <route> [arg]``, run by Asterisk for each call."""
    from core.configuration import load_config
    from core.paths import REPO_ROOT, Paths

    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s ivr-agi: %(message)s")
    # Leading --config=DIR / --state=DIR: where the engine's files are as
    # Asterisk sees them (inside its root, they are not where the repo is).
    options = {}
    while argv and argv[0].startswith("--") and "=" in argv[0]:
        key, _, value = argv.pop(0)[2:].partition("=")
        options[key] = value
    if not argv:
        print("usage: ivr-agi [--config=DIR] [--state=DIR] hotline <number> | survey <program>", file=sys.stderr)
        return 2
    route, args = argv[0], argv[1:]
    config = load_config(options.get("config") or os.environ.get("IVR_CONFIG_DIR") or REPO_ROOT / "config")
    if "state" in options:
        os.environ["IVR_STATE_DIR"] = options["state"]
    # pyst2 echoes the whole AGI environment (caller number included) on its
    # stderr; that must not reach a log, so it gets /dev/null.
    with open(os.devnull, "w") as quiet:
        agi = AGI(stdin=sys.stdin, stdout=sys.stdout, stderr=quiet)
        channel = PystChannel(agi, route_args=args)
        return asyncio.run(_run(route, channel, config, Paths.from_environment()))


async def _run(route: str, channel: PystChannel, config, paths) -> int:
    from app.engine import handlers_for
    from core.secrets import SecretStore

    handlers, close = await handlers_for(config, national_id_key=SecretStore(paths.secrets_file).national_id_key())
    try:
        handler = handlers.get(route)
        if handler is None:
            log.warning("unknown route %r; the dialplan falls back", route)
            return 0
        try:
            await handler(channel)
        except CallerHungUp:
            log.info("caller hung up (%s)", channel.describe())
        return 0
    finally:
        await close()
