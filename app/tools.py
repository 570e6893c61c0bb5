"""The composition root of the command-line tools (``ivr agents``, ``ivr callbacks``).

A tool process builds here, once, what its command needs: a Redis client
(pinged, so that an unreachable Redis is said at once), a logged-in AMI
connection with the secret from the state folder, and a private metrics
registry (nothing scrapes a tool; the running engine counts what the
tool's actions cause, from the AMI events it sees). The commands
themselves (``queues.agents.cli``, ``queues.callbacks.cli``) receive these
as keyword arguments.
"""

from __future__ import annotations

import asyncio
from typing import TextIO

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from core.configuration import Config
from core.errors import Unreachable
from core.paths import Paths
from core.secrets import SecretStore
from metrics.registry import EngineMetrics

AMI_LOGIN_TIMEOUT = 5.0


async def connect_ami(config: Config, secret: str, *, timeout: float = AMI_LOGIN_TIMEOUT):
    """A logged-in :class:`queues.ami.connection.AmiConnection`, or :class:`Unreachable`."""
    from queues.ami.connection import AmiConnection

    a = config.service.ami
    ami = AmiConnection(host=a.host, port=a.port, username=a.username, secret=secret,
                        action_timeout=a.action_timeout_seconds, ping_interval=a.ping_interval_seconds)
    await ami.start()
    try:
        await asyncio.wait_for(ami.logged_in.wait(), timeout)
    except TimeoutError:
        await ami.close()
        raise Unreachable(
            f"no AMI login to Asterisk at {a.host}:{a.port} within {timeout:g}s: is Asterisk running "
            "(`ivr run`)? Is its configuration current (`ivr setup`)?") from None
    return ami


async def connect_redis(config: Config) -> aioredis.Redis:
    r = config.service.redis
    client = aioredis.Redis(host=r.host, port=r.port, db=r.db, socket_timeout=5, socket_connect_timeout=5)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise Unreachable(f"Redis is not reachable at {r.host}:{r.port} ({exc}): start it with `ivr run`") from None
    return client


async def read_call_records(config: Config, start: float, end: float):
    """The call records of [start, end) from the configured Redis (service.redis),
    for ``ivr report`` and ``ivr staffing``."""
    from metrics.call_records import RedisCallRecords
    from metrics.report import RecordsUnavailable

    r = config.service.redis
    client = aioredis.Redis(host=r.host, port=r.port, db=r.db, socket_connect_timeout=3, socket_timeout=30)
    store = RedisCallRecords(client, prefix=r.key_prefix)
    try:
        return await store.read(start, end)
    except (RedisError, OSError) as exc:
        raise RecordsUnavailable(f"Redis at {r.host}:{r.port} is not reachable ({exc}); "
                                 "is the engine's Redis running (`make run`)?") from None
    finally:
        await client.aclose()


def ami_with_secret(paths: Paths):
    """An AMI factory that reads the engine's AMI secret from the state folder."""
    async def connect(config: Config):
        try:
            secret = SecretStore(paths.secrets_file).ami_secret(config)
        except KeyError as exc:  # `ivr setup` has not generated it
            raise Unreachable(exc.args[0]) from None
        return await connect_ami(config, secret)

    return connect


async def reseal_callbacks(config: Config, secrets: SecretStore, *, dry_run: bool) -> tuple[int, int]:
    """Every callback's number in Redis under the callbacks key's newest key
    (``ivr secrets rekey callbacks``); ``dry_run``: count those that need it."""
    from core.privacy import NumberCipher
    from queues.callbacks.store import RedisCallbackStore

    client = await connect_redis(config)
    try:
        store = RedisCallbackStore(client, cipher=NumberCipher(secrets.callbacks_keys()),
                                   prefix=config.service.redis.key_prefix)
        return await store.reseal(dry_run=dry_run)
    finally:
        await client.aclose()


def callbacks_cipher(paths: Paths):
    """A factory of the callbacks' key ring from the state folder: numbers are
    kept encrypted in Redis, and a tool decrypts them only to show them masked."""
    def cipher(config: Config):
        from core.privacy import NumberCipher

        try:
            return NumberCipher(SecretStore(paths.secrets_file).callbacks_keys())
        except KeyError as exc:  # `ivr setup` has not generated it
            raise Unreachable(exc.args[0]) from None

    return cipher


def tool_metrics(config: Config) -> EngineMetrics:
    """A private registry: nothing scrapes a tool's process."""
    return EngineMetrics(config, CollectorRegistry(auto_describe=True))


async def agents_tool(args, config: Config, paths: Paths, *, out: TextIO | None = None,
                      err: TextIO | None = None) -> int:
    """``ivr agents <action>``, wired."""
    from queues.agents.cli import run_agents_command

    return await run_agents_command(args, config, paths, out=out, err=err, ami_factory=connect_ami,
                                    redis_factory=connect_redis, metrics=tool_metrics(config))


async def callbacks_tool(args, config: Config, paths: Paths, *, out: TextIO | None = None,
                         err: TextIO | None = None) -> int:
    """``ivr callbacks <action>``, wired."""
    from queues.callbacks.cli import run_callbacks_command

    return await run_callbacks_command(args, config, out=out, err=err, redis_factory=connect_redis,
                                       ami_factory=ami_with_secret(paths), metrics=tool_metrics(config),
                                       cipher_factory=callbacks_cipher(paths))


def case_engine(config: Config, paths: Paths, secrets: SecretStore):
    """The SQLAlchemy engine of the case database (``service.database``).
    A PostgreSQL password, when the server wants one, is the ``db:<user>``
    secret of the secret store (absent: peer or trust authentication)."""
    from cases.database import database_url, make_engine

    settings = config.service.database
    password = None
    if settings.backend == "postgresql":
        try:
            password = secrets.get("db:" + settings.user)
        except KeyError:
            password = None
    return make_engine(database_url(settings, state_dir=paths.state, password=password))


def case_store(config: Config, paths: Paths, secrets: SecretStore, *, engine=None):
    """The case store on a migrated database, or :class:`Unreachable` saying why."""
    from cases.database import DatabaseUnavailable, check_schema
    from cases.store import CaseStore

    if config.cases is None:
        raise Unreachable("no `cases:` section in the configuration (config/cases.yaml)")
    engine = engine or case_engine(config, paths, secrets)
    try:
        check_schema(engine)
    except DatabaseUnavailable as exc:
        raise Unreachable(str(exc)) from None
    except Exception as exc:  # the driver's own errors: connection refused, authentication
        raise Unreachable(f"the case database is not reachable ({type(exc).__name__}: {exc})") from None
    return CaseStore(engine=engine, config=config.cases)


def cases_tool(args, config: Config, paths: Paths, *, out: TextIO | None = None,
               err: TextIO | None = None) -> int:
    """``ivr cases <action>``, wired: the store on the configured database and
    the cipher that lets the tool print callers' numbers masked."""
    from cases.cli import run_cases_command
    from core.privacy import NumberCipher

    secrets = SecretStore(paths.secrets_file)
    try:
        cipher = NumberCipher(secrets.cases_keys())   # numbers stored before a rotation still decrypt
    except KeyError:
        cipher = None
    engine = None

    def store():
        nonlocal engine
        engine = case_engine(config, paths, secrets)
        return case_store(config, paths, secrets, engine=engine)

    try:
        return run_cases_command(args, config, store_factory=store, cipher=cipher, out=out, err=err)
    finally:
        if engine is not None:
            engine.dispose()


def write_asterisk_config(config: Config, paths: Paths, secrets: SecretStore, *, say=print):
    """Asterisk's configuration, as ``ivr setup`` writes it, from the
    configuration and the secrets (the FastAGI key in every URL); returns
    the :class:`dialplans.asterisk.AsteriskInstall` it was written for."""
    from dialplans.asterisk import AsteriskInstall
    from dialplans.generate import write_all

    asterisk = AsteriskInstall.locate(paths.asterisk_root)
    write_all(config, secrets, asterisk.root, classic_agi=asterisk.classic_agi_paths())
    say(f"Asterisk configuration written to {asterisk.etc}")
    return asterisk


def secrets_tool(args, config: Config, paths: Paths, *, out: TextIO | None = None,
                 err: TextIO | None = None) -> int:
    """``ivr secrets <action>``, wired: the secret store of the state folder,
    the case database when a re-keying needs it, Asterisk's configuration
    when the FastAGI key changes."""
    from app.key_rotation import run_secrets_command

    engine = None

    def store(secrets: SecretStore):
        nonlocal engine
        engine = case_engine(config, paths, secrets)
        return case_store(config, paths, secrets, engine=engine)

    try:
        return run_secrets_command(args, config, paths, store_factory=store,
                                   write_asterisk=lambda secrets, say: write_asterisk_config(config, paths, secrets,
                                                                                             say=say),
                                   callback_reseal=lambda secrets, dry_run: asyncio.run(
                                       reseal_callbacks(config, secrets, dry_run=dry_run)),
                                   out=out, err=err)
    finally:
        if engine is not None:
            engine.dispose()
