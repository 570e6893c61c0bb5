"""The ``ivr`` command.

    ivr check-config         validate config/*.yaml and print the verdict
    ivr setup                Asterisk root, secrets, Asterisk config, prompts
    ivr serve                the engine: FastAGI + AMI accounting + /metrics
    ivr run                  setup, then Redis + Asterisk + the engine until Ctrl-C
    ivr simulate --calls N   SIPp callers and agents against the running engine
    ivr report --month YYYY-MM   the ministry's monthly figures from the call records
    ivr staffing [--last 1h]     agents needed per programme (Erlang C)
    ivr agents login|logout|pause|resume|list|credentials
                             agents' state, and SIP accounts for their softphones
    ivr callbacks list|show <id>|cancel <id>
                             callbacks waiting or done, one's history, cancel one
    ivr cases list|show|update|export|report
                             cases for supervisors (cases/cli.py)
    ivr secrets status|rotate|rekey|retire [<key>]
                             the keys, their rotation, re-keying the case database (app/key_rotation.py)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

from core.configuration import Config, ConfigError, load_config
from core.hours import HOLIDAY_DATA_HORIZON_DAYS, coming_holidays, local_timezone, missing_holiday_data
from core.paths import REPO_ROOT, Paths
from core.privacy import install_log_privacy

log = logging.getLogger("ivr")


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "config",
                        help="configuration folder (default: %(default)s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ivr", description="Arabic IVR and call distribution engine")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate the configuration")
    _config_arg(p)
    p.add_argument("--today", type=date.fromisoformat, metavar="YYYY-MM-DD",
                   help=f"check the holidays of the {HOLIDAY_DATA_HORIZON_DAYS} days from this day "
                   "(default: today, Cairo time)")

    p = sub.add_parser("setup", help="prepare Asterisk, secrets, generated config and prompts")
    _config_arg(p)

    p = sub.add_parser("serve", help="run the engine (FastAGI, AMI accounting, metrics)")
    _config_arg(p)
    p.add_argument("--no-agi", action="store_true", help="do not serve FastAGI (accounting only)")
    p.add_argument("--no-ami", action="store_true", help="do not connect to AMI (IVR only)")

    p = sub.add_parser("run", help="setup, start Redis and Asterisk, serve until Ctrl-C")
    _config_arg(p)

    from queues.agents.cli import AGENT_ACTIONS

    p = sub.add_parser("agents", help="agents: log in/out, pause, resume, list, credentials")
    _config_arg(p)
    p.add_argument("action", choices=AGENT_ACTIONS,
                   help="login|logout|pause|resume an agent, list them, or print their SIP credentials")
    p.add_argument("agent", nargs="?", help="agent id, e.g. 1001 (login, logout, pause, resume)")
    p.add_argument("--reason", help="pause reason id or code, e.g. break or 1 (pause)")

    from queues.callbacks.cli import (
        CALLBACK_ACTIONS,
        DEFAULT_LIMIT,
        LIST_STATES,
        positive_int,
    )

    p = sub.add_parser("callbacks", help="callbacks: list, show one with its history, cancel one")
    _config_arg(p)
    p.add_argument("action", choices=CALLBACK_ACTIONS, help="list them, show one, or cancel one")
    p.add_argument("callback_id", nargs="?", metavar="id", help="callback id, e.g. 17 (show, cancel)")
    p.add_argument("--state", choices=LIST_STATES, default="recent",
                   help="(list) recent = not ended, or requested in the last 24 h (default: %(default)s)")
    p.add_argument("--program", help="(list) a programme or queue id")
    p.add_argument("--limit", type=positive_int, default=DEFAULT_LIMIT,
                   help="(list) at most this many, newest first (default: %(default)s)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="(default: %(default)s)")

    p = sub.add_parser("cases", help="cases: list, show one with its history, update, export")
    from cases.cli import add_arguments as add_case_arguments

    add_case_arguments(p)
    _config_arg(p)

    p = sub.add_parser("secrets", help="keys: status, rotate, rekey the case database, retire old keys")
    from app.key_rotation import add_arguments as add_secrets_arguments

    add_secrets_arguments(p)
    _config_arg(p)

    p = sub.add_parser("simulate", help="place SIPp calls against the running engine")
    _config_arg(p)
    p.add_argument("--calls", type=int, default=10, help="number of callers (default: %(default)s)")
    p.add_argument("--rate", type=float, default=1.0, help="new callers per second (default: %(default)s)")
    p.add_argument("--abandon", type=float, default=0.2,
                   help="share of callers who give up while waiting (default: %(default)s)")
    p.add_argument("--seed", type=int, default=None, help="random seed for a repeatable run")

    from metrics.report import add_period_arguments

    p = sub.add_parser("report", help="monthly report from the call records (Arabic table, csv or json)")
    _config_arg(p)
    add_period_arguments(p, month_help="calendar month, Cairo time, e.g. 2025-03")
    p.add_argument("--format", choices=("text", "csv", "json"), default="text", help="(default: %(default)s)")
    p.add_argument("--replay", action="store_true",
                   help="report on a replayed month shaped like the ministry's March (no Redis needed)")
    p.add_argument("--tenant", metavar="T", help="the ministry (config/cases.yaml tenants); needed when there are "
                   "several: a report never mixes two ministries' calls")

    p = sub.add_parser("staffing", help="agents needed per programme (Erlang C) from the call records")
    _config_arg(p)
    add_period_arguments(p, month_help="planning view: each programme's busiest hour of the month")
    p.add_argument("--last", metavar="DURATION", help="window ending now, e.g. 30m, 1h (default: 1h)")
    p.add_argument("--target", type=float, default=None,
                   help="service-level target ratio (default: config supervision, else 0.80)")
    p.add_argument("--threshold", type=float, default=None,
                   help="service-level threshold in seconds (default: config supervision, else 20)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="(default: %(default)s)")
    p.add_argument("--replay", action="store_true",
                   help="advise on a replayed month shaped like the ministry's March (with --month)")
    p.add_argument("--tenant", metavar="T", help="only this ministry's queues (default: every queue; the advice "
                   "is per programme, so two ministries are never mixed)")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # No caller number or national ID reaches a log line unmasked, whoever
    # wrote it (panoramisk's debug lines carry the AMI messages it handles).
    install_log_privacy()
    # Alembic narrates every migration context at INFO; `ivr setup` says what it did.
    logging.getLogger("alembic").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"configuration is not valid ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a setup step that failed: say which, without a traceback
        from cases.database import DatabaseUnavailable
        from core.errors import Unreachable
        from dialplans.asterisk import AsteriskError
        from ivr.prompts import PromptError

        if isinstance(exc, (AsteriskError, PromptError, DatabaseUnavailable, Unreachable)):
            print(f"ivr {args.command}: {exc}", file=sys.stderr)
            return 1
        raise


def cmd_check_config(args) -> int:
    config = load_config(args.config)
    print(f"configuration OK: {args.config}")
    print(f"  {len(config.hotlines)} hotline(s): " + ", ".join(h.number for h in config.hotlines))
    print(f"  {len(config.programs)} program(s): " + ", ".join(p.id for p in config.programs))
    print(f"  {len(config.queues)} queue(s), {len(config.agents)} agent(s), {len(config.prompts)} prompt(s)")
    if config.cases is not None:
        print(f"  cases: {len(config.cases.tenants)} tenant(s), {len(config.cases.sectors)} sector(s), "
              f"database {config.service.database.backend}")
    today = args.today or local_today(config)
    for name, schedule in config.schedules.items():
        coming = coming_holidays(schedule, today)
        print(f"  schedule {name}: {len(coming)} holiday(s) in the {HOLIDAY_DATA_HORIZON_DAYS} days from {today}"
              + "".join(f"{'; ' if n else ': '}{day} {' + '.join(h.name_en for h in names)}"
                        for n, (day, names) in enumerate(coming)))
    # A warning, not an error: the lines still open on their weekly hours.
    for warning in missing_holiday_data(config, today):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def local_today(config: Config) -> date:
    """Today in the hotlines' time zone (Cairo): the day the holiday checks start from."""
    return datetime.now(local_timezone(config)).date()


def setup(config: Config, config_dir: Path, paths: Paths, say=print):
    """Idempotent: everything already in place is kept."""
    from app.tools import write_asterisk_config
    from dialplans.asterisk import AsteriskInstall
    from ivr.prompts import PromptLibrary, all_prompt_texts, build_music_on_hold
    from core.secrets import SecretStore

    asterisk = AsteriskInstall.locate(paths.asterisk_root)
    asterisk.ensure(progress=say)
    secrets = SecretStore(paths.secrets_file)
    if secrets.ensure(config):
        say(f"Generated credentials in {paths.secrets_file} (mode 600)")
    if config.cases is not None:
        migrate_case_database(config, paths, secrets, say=say)
    write_asterisk_config(config, paths, secrets, say=say)
    if any(h.agi == "classic" for h in config.hotlines):
        asterisk.install_classic_agi(REPO_ROOT, secrets, progress=say)
    library = PromptLibrary(sounds_dir=asterisk.sounds, cache_dir=paths.prompt_cache,
                            overrides_dir=config_dir / "sounds" / config.service.language,
                            language=config.service.language, voice=config.service.tts_voice)

    interactive = sys.stdout.isatty()

    def progress(n, total, prompt_id):
        # A live bar on a terminal; in a log (CI), a line every quarter.
        bar = "#" * (20 * n // total)
        if interactive:
            print(f"\r  prompts [{bar:<20}] {n}/{total} {prompt_id:<30}", end="", flush=True)
        elif n == total or n % max(1, total // 4) == 0:
            print(f"  prompts [{bar:<20}] {n}/{total}", flush=True)

    built = library.build(all_prompt_texts(config), progress=progress)
    if interactive:
        print()
    fresh = sum(1 for b in built if b.source == "synthesized")
    say(f"{len(built)} prompt(s) ready in {library.target} ({fresh} synthesized now)")
    build_music_on_hold(asterisk.moh)
    if asterisk.is_running():
        asterisk.reload()
        say("Asterisk was running: configuration reloaded")
    return asterisk, secrets


def migrate_case_database(config: Config, paths: Paths, secrets, say=print) -> None:
    """Create the case database or bring its schema to this release's (Alembic)."""
    from app.tools import case_engine
    from cases.database import migrate

    engine = case_engine(config, paths, secrets)
    try:
        before, after = migrate(engine)
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        say(f"Case database {where}: schema current ({after})")
    else:
        say(f"Case database {where}: schema {before or 'empty'} -> {after}")


def cmd_setup(args) -> int:
    config = load_config(args.config)
    setup(config, args.config, Paths.from_environment())
    return 0


async def serve(config: Config, paths: Paths, *, enable_agi=True, enable_ami=True,
                stop: asyncio.Event | None = None, today: date | None = None) -> None:
    from ivr.prompts import PromptLibrary, all_prompt_texts
    from core.secrets import SecretStore
    from dialplans.asterisk import AsteriskInstall

    # The same warning as `ivr check-config`, in the engine's log.
    for warning in missing_holiday_data(config, today or local_today(config)):
        log.warning(warning)
    secrets = SecretStore(paths.secrets_file)
    asterisk = AsteriskInstall.locate(paths.asterisk_root)
    library = PromptLibrary(sounds_dir=asterisk.sounds, cache_dir=paths.prompt_cache, overrides_dir=None,
                            language=config.service.language)
    missing = library.missing(all_prompt_texts(config))
    if missing and enable_agi:
        # A clear error at start-up rather than silence in a call.
        raise SystemExit(f"missing prompt file(s) in {library.target}: {', '.join(missing)}; run `ivr setup`")
    case_store = None
    if config.cases is not None:
        from app.tools import case_engine
        from cases.store import CaseStore

        # Not checked here: an unreachable or unmigrated database must not stop
        # the calls; the case jobs say so and retry (cases/service.py).
        case_store = CaseStore(engine=case_engine(config, paths, secrets), config=config.cases)
    engine = engine_with_secrets(config, paths, secrets, prompt_seconds=library.durations(), case_store=case_store,
                                 enable_agi=enable_agi, enable_ami=enable_ami)
    await engine.start()
    s = config.service
    log.info("engine running: FastAGI %s:%d, metrics http://%s:%d/metrics, wallboard http://%s:%d/, "
             "agents' desktop http://%s:%d/, AMI %s:%d", s.fastagi.host, s.fastagi.port, s.metrics.host,
             s.metrics.port, s.wallboard.host, s.wallboard.port, s.desktop.host, s.desktop.port, s.ami.host,
             s.ami.port)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("stopping the engine")
        await engine.stop()


def engine_with_secrets(config: Config, paths: Paths, secrets, *, prompt_seconds, case_store=None,
                        enable_agi: bool = True, enable_ami: bool = True, **overrides):
    """The engine as ``ivr serve`` builds it from the state folder's secrets
    (the end-to-end tests build theirs here too, with a pinned clock and the
    like as ``overrides``). Every key as its ring: written with the current
    key, read with all of them (docs/reliability.md, *Secrets and their
    rotation*)."""
    from app.engine import Engine
    from core.secrets import AGI_KEY, KeyFileWatch
    from dialplans.asterisk import AsteriskInstall
    from queues.spool import CallFileSpool

    if enable_ami and "originator" not in overrides:
        # The engine's calls go to the Asterisk it serves as call files (its AMI user cannot originate).
        overrides["originator"] = CallFileSpool(AsteriskInstall.locate(paths.asterisk_root).spool_outgoing)
    return Engine(config=config, ami_secret=secrets.ami_secret(config) if enable_ami else None,
                  callback_keys=secrets.callbacks_keys(),
                  national_id_key=secrets.national_id_keys().all if enable_agi else b"",
                  caller_key=secrets.caller_number_keys().all, agi_key=secrets.agi_keys(),
                  agi_keys_now=KeyFileWatch(paths.secrets_file, AGI_KEY),
                  prompt_seconds=prompt_seconds, enable_agi=enable_agi, enable_ami=enable_ami,
                  case_store=case_store, cases_key=secrets.cases_keys() if case_store is not None else None,
                  agent_password=agent_passwords(config, secrets), **overrides)


def agent_passwords(config: Config, secrets) -> Callable[[str], str | None]:
    """Agent id -> the softphone password the desktop signs them in with (None: no such agent)."""
    def password_of(agent_id: str) -> str | None:
        agent = config.agent(agent_id)
        if agent is None:
            return None
        try:
            return secrets.agent_password(agent.sip_username)
        except KeyError:
            return None
    return password_of


def new_engine_loop() -> asyncio.AbstractEventLoop:
    """The engine's event loop: uvloop's (libuv; the loop's own work, its
    callbacks, sockets and timers, in C), unless ``IVR_EVENT_LOOP=asyncio``
    asks for the standard one (to rule the loop out when chasing a fault).
    bench/fastagi_bench.py measures both (docs/benchmarks.md); the
    end-to-end tests run the engine on it as ``ivr serve`` does."""
    if os.environ.get("IVR_EVENT_LOOP", "uvloop") == "asyncio":
        return asyncio.new_event_loop()
    import uvloop
    return uvloop.new_event_loop()


def run_engine(main) -> None:
    with asyncio.Runner(loop_factory=new_engine_loop) as runner:
        runner.run(main)


def cmd_serve(args) -> int:
    config = load_config(args.config)
    run_engine(serve(config, Paths.from_environment(), enable_agi=not args.no_agi, enable_ami=not args.no_ami))
    return 0


def cmd_run(args) -> int:
    from dialplans.asterisk import AsteriskInstall
    from app.redis_server import RedisServer, port_is_free

    config = load_config(args.config)
    paths = Paths.from_environment()
    asterisk, _ = setup(config, args.config, paths)
    redis = None
    r = config.service.redis
    if port_is_free(r.port, r.host):
        redis = RedisServer(host=r.host, port=r.port, data_dir=paths.redis_dir)
        redis.start()
        print(f"Redis started on {r.host}:{r.port}")
    else:
        print(f"Redis already listening on {r.host}:{r.port}; using it")
    started = asterisk.is_running()
    proc = None
    try:
        if not started:
            proc = asterisk.start()
            print("Asterisk started")
        print("Engine running. Call 1442 on sip:1442@127.0.0.1:5080. Ctrl-C stops everything.")
        run_engine(serve(config, paths))
    except KeyboardInterrupt:
        pass
    finally:
        if not started:
            print("Stopping Asterisk")
            AsteriskInstall.stop(asterisk, proc)
        if redis is not None:
            print("Stopping Redis")
            redis.stop()
    return 0


def cmd_agents(args) -> int:
    from app.tools import agents_tool

    config = load_config(args.config)
    return asyncio.run(agents_tool(args, config, Paths.from_environment()))


def cmd_callbacks(args) -> int:
    from app.tools import callbacks_tool

    config = load_config(args.config)
    return asyncio.run(callbacks_tool(args, config, Paths.from_environment()))


def cmd_cases(args) -> int:
    from app.tools import cases_tool

    config = load_config(args.config)
    return cases_tool(args, config, Paths.from_environment())


def cmd_secrets(args) -> int:
    from app.tools import secrets_tool

    config = load_config(args.config)
    return secrets_tool(args, config, Paths.from_environment())


def cmd_simulate(args) -> int:
    from app.simulate import run_simulation

    config = load_config(args.config)
    try:
        result = run_simulation(config, Paths.from_environment(), calls=args.calls, rate=args.rate,
                                abandon_share=args.abandon, seed=args.seed)
    except OSError as exc:
        print(f"the engine is not reachable ({exc}); start it with `make run` first", file=sys.stderr)
        return 1
    return 0 if result.failed == 0 else 1


def cmd_report(args) -> int:
    from app.tools import read_call_records
    from metrics.report import run_report_command

    reader = read_call_records
    if args.replay:
        from app.simulate.month import replayed_records as reader
    return run_report_command(args, load_config(args.config), reader=reader)


def cmd_staffing(args) -> int:
    from app.tools import read_call_records
    from metrics.staffing import run_staffing_command

    reader = read_call_records
    if args.replay:
        from app.simulate.month import replayed_records as reader
    return run_staffing_command(args, load_config(args.config), reader=reader)


COMMANDS = {
    "check-config": cmd_check_config,
    "setup": cmd_setup,
    "serve": cmd_serve,
    "run": cmd_run,
    "simulate": cmd_simulate,
    "report": cmd_report,
    "staffing": cmd_staffing,
    "agents": cmd_agents,
    "callbacks": cmd_callbacks,
    "cases": cmd_cases,
    "secrets": cmd_secrets,
}

if __name__ == "__main__":
    sys.exit(main())
