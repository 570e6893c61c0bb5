"""The composition root of ``ivr-agi``: classic AGI, one process per call.

Asterisk runs ``ivr-agi [--config=DIR] [--state=DIR] <route> [arg]`` for
each call of a hotline in classic mode (``dialplans/generate.py``); this
process builds what the call needs (the configuration, a Redis client
without retries, the stores, a private metrics registry, the handlers),
serves the one call on pyst2's channel (``ivr.agi.classic.PystChannel``)
and exits. With Redis unreachable the call still works; only its facts are
not shared (accounting then labels its queue events without them).

It imports only what a call needs: a Python process per call pays for
every import.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("ivr-agi")


def main(argv: list[str] | None = None) -> int:
    """Entry point ``ivr-agi <route> [arg]``, run by Asterisk for each call."""
    from core.configuration import load_config
    from core.paths import REPO_ROOT, Paths

    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s ivr-agi: %(message)s")
    from core.privacy import install_log_privacy

    install_log_privacy()
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
    from asterisk.agi import AGI

    from ivr.agi.classic import PystChannel
    from ivr.agi.deadline import StepDeadline

    # pyst2 echoes the whole AGI environment (caller number included) on its
    # stderr; that must not reach a log, so it gets /dev/null.
    with open(os.devnull, "w") as quiet:
        agi = AGI(stdin=sys.stdin, stdout=sys.stdout, stderr=quiet)
        language = config.service.language
        channel = PystChannel(agi, route_args=args, deadline=StepDeadline(
            prompt_seconds=lambda prompt: _prompt_seconds(SOUNDS_DIR / language / f"{prompt}.ulaw")))
        return asyncio.run(_serve(route, channel, config, Paths.from_environment()))


# Where Debian's Asterisk keeps its sounds (inside the root the script runs in).
SOUNDS_DIR = Path("/usr/share/asterisk/sounds")


def _prompt_seconds(ulaw: Path) -> float | None:
    """A prompt's length: its u-law file holds 8,000 bytes a second."""
    try:
        return ulaw.stat().st_size / 8000
    except OSError:
        return None


async def build_routes(config, *, national_id_key: bytes | tuple[bytes, ...], callback_keys: list[str],
                       caller_key: bytes = b""):
    """The call's routes on Redis when reachable, else in memory; and how to close them.
    ``callback_keys``: the Fernet keys a callback's number is kept with (newest first)."""
    import redis.asyncio as aioredis
    from prometheus_client import CollectorRegistry
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError

    from ivr.routes import call_routes
    from metrics.registry import EngineMetrics
    from core.privacy import NumberCipher
    from queues.callbacks.limits import CallbackLimits
    from queues.callbacks.store import MemoryCallbackStore, RedisCallbackStore
    from queues.calls.store import MemoryCallStateStore, RedisCallStateStore
    from queues.priority import DEFAULT_CALLER_KEY

    r = config.service.redis
    caller_key = caller_key or DEFAULT_CALLER_KEY
    cipher = NumberCipher(callback_keys)
    # No retries: a caller is waiting, and the call works without Redis.
    client = aioredis.Redis(host=r.host, port=r.port, db=r.db, socket_timeout=1, socket_connect_timeout=1,
                            retry=Retry(NoBackoff(), 0))
    try:
        await client.ping()
        store = RedisCallStateStore(client, prefix=r.key_prefix, ttl_seconds=r.call_state_ttl_seconds)
        callbacks = RedisCallbackStore.for_config(client, config, cipher=cipher, number_key=caller_key)
    except RedisError as exc:
        log.warning("Redis unreachable (%s): this call's facts stay in memory", exc)
        store, callbacks = MemoryCallStateStore(), MemoryCallbackStore(
            limits=CallbackLimits.from_config(config, number_key=caller_key))
    # Private, and nothing scrapes a per-call process: no zeros for every label set.
    metrics = EngineMetrics(config, CollectorRegistry(), zero_fill=False)
    routes = call_routes(config=config, metrics=metrics, store=store, callbacks=callbacks,
                         national_id_key=national_id_key, caller_key=caller_key)
    return routes, client.aclose


async def _serve(route: str, channel, config, paths) -> int:
    from core.channel import CallerHungUp
    from core.secrets import SecretStore

    # Inside Asterisk's root the secrets file holds these three keys (and the
    # national-ID key's retired keys) and nothing else
    # (dialplans.asterisk.AsteriskInstall.install_classic_agi).
    secrets = SecretStore(paths.secrets_file)
    routes, close = await build_routes(config, national_id_key=secrets.national_id_keys().all,
                                       callback_keys=secrets.callbacks_keys(),
                                       caller_key=secrets.caller_number_keys().current)
    try:
        handler = routes.get(route)
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
