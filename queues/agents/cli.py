"""``ivr agents``: the agents' actions from the command line.

    ivr agents login  <agent>                  add the agent to its queues
    ivr agents logout <agent>                  remove it from all of them
    ivr agents pause  <agent> --reason <id|code>
    ivr agents resume <agent>
    ivr agents list                            id, name, state, reason, since, queues
    ivr agents credentials                     SIP accounts for the softphones

``<agent>`` is the agent id (``1001``) or its SIP user (``agent1001``). The
actions go through the same :class:`queues.agents.AgentDesk` as the
softphones' feature codes (counted with ``source="cli"``), over a short AMI
connection of their own; ``list`` reads the shared state in Redis only.

Wired in ``app/cli.py`` (the arguments) and ``app/tools.py`` (``agents_tool``:
the Redis and AMI factories and the tool's metrics).

:func:`run_agents_command` reads ``args.action``, ``args.agent`` (may be
absent or None) and ``args.reason`` (may be absent or None). Exit status: 0
done (also: already logged in, already logged out, not paused), 1 Asterisk
or Redis unreachable, or the agent is not logged in (pause, resume), 2 a
usage error (no or unknown agent, unknown pause reason: the valid ones are
printed).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from redis.exceptions import RedisError

from core.configuration import Config
from core.configuration.model import Agent
from core.errors import Unreachable
from core.paths import Paths
from core.secrets import SecretStore
from metrics.registry import EngineMetrics
from queues.ami.actions import NoAmi

from .desk import AgentDesk, AgentView
from .errors import AgentError, AlreadyLoggedIn, AsteriskError, NotLoggedIn
from .store import RedisAgentStateStore

AGENT_ACTIONS = ("login", "logout", "pause", "resume", "list", "credentials")
async def run_agents_command(args, config: Config, paths: Paths, *,
                             ami_factory: Callable[[Config, str], Awaitable[Any]],
                             redis_factory: Callable[[Config], Awaitable[Any]], metrics: EngineMetrics,
                             out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``ivr agents <action>``; returns the exit status. ``app.tools`` gives the factories
    (a logged-in AMI connection, a pinged Redis client) and the tool's metrics."""
    out = out or sys.stdout
    err = err or sys.stderr
    action = args.action
    if action == "credentials":
        return print_credentials(config, paths, out=out)
    if action == "list":
        return await _list(config, out=out, err=err, redis_factory=redis_factory, metrics=metrics)
    if action not in AGENT_ACTIONS:
        print(f"unknown action {action!r}; one of: {', '.join(AGENT_ACTIONS)}", file=err)
        return 2

    agent_arg = getattr(args, "agent", None) or ""
    agent = config.agent(agent_arg) or config.agent_by_endpoint(agent_arg)
    if agent is None:
        known = ", ".join(f"{a.id} ({a.name})" for a in config.agents) or "none configured"
        what = f"unknown agent {agent_arg!r}" if agent_arg else f"`ivr agents {action}` needs an agent id"
        print(f"{what}; agents: {known}", file=err)
        return 2
    reason = getattr(args, "reason", None) or ""
    if action == "pause" and config.agent_policy.pause_reason(reason) is None:
        print(f"unknown pause reason {reason!r}" if reason else "`ivr agents pause` needs --reason", file=err)
        print("valid reasons (id or code):", file=err)
        for r in config.agent_policy.pause_reasons:
            print(f"  {r.code}  {r.id:<20} {r.name}", file=err)
        return 2

    try:
        secret = SecretStore(paths.secrets_file).ami_secret(config)
    except KeyError as exc:
        print(f"ivr agents {action}: {exc.args[0]}", file=err)
        return 1
    ami = client = None
    try:
        client = await redis_factory(config)
        ami = await ami_factory(config, secret)
        store = RedisAgentStateStore(client, prefix=config.service.redis.key_prefix)
        # The engine's tracker sees the resulting AMI events.
        desk = AgentDesk(ami=ami, store=store, config=config, metrics=metrics)
        return await _act(desk, agent, action, reason, out=out, err=err)
    except Unreachable as exc:
        print(f"ivr agents {action}: {exc}", file=err)
        return 1
    except RedisError as exc:
        print(f"ivr agents {action}: Redis failed ({exc})", file=err)
        return 1
    finally:
        if ami is not None:
            await ami.close()
        if client is not None:
            await client.aclose()


async def _act(desk: AgentDesk, agent: Agent, action: str, reason: str, *, out: TextIO, err: TextIO) -> int:
    label = f"agent {agent.id} ({agent.name})"
    try:
        if action == "login":
            result = await desk.login(agent.id, source="cli")
        elif action == "logout":
            result = await desk.logout(agent.id, source="cli")
        elif action == "pause":
            result = await desk.pause(agent.id, reason, source="cli")
        else:
            result = await desk.resume(agent.id, source="cli")
    except AlreadyLoggedIn as exc:
        print(f"{label}: {exc}", file=out)
        return 0
    except NotLoggedIn:
        if action == "logout":
            print(f"{label} was not logged in", file=out)
            return 0
        print(f"{label} is not logged in: `ivr agents login {agent.id}` first", file=err)
        return 1
    except AsteriskError as exc:
        print(f"{label}: Asterisk did not do it: {exc}", file=err)
        return 1
    except AgentError as exc:
        print(f"{label}: {exc}", file=err)
        return 2
    view = await desk.view(agent.id)
    text = {
        "logged_in": f"logged in to {', '.join(view.queues)}",
        "moved": "moved",
        "logged_out": "logged out",
        "paused": f"paused ({result.reason})",
        "resumed": "resumed",
        "not_paused": "was not paused; taking calls",
    }[result.outcome]
    print(f"{label} {text}", file=out)
    return 0


async def _list(config: Config, *, out: TextIO, err: TextIO, redis_factory, metrics: EngineMetrics) -> int:
    try:
        client = await redis_factory(config)
    except Unreachable as exc:
        print(f"ivr agents list: {exc}", file=err)
        return 1
    try:
        store = RedisAgentStateStore(client, prefix=config.service.redis.key_prefix)
        desk = AgentDesk(ami=NoAmi(), store=store, config=config, metrics=metrics)
        views = await desk.list()
    except RedisError as exc:
        print(f"ivr agents list: Redis failed ({exc})", file=err)
        return 1
    finally:
        await client.aclose()
    print(format_table(views, now=time.time()), file=out)
    return 0


def format_table(views: list[AgentView], *, now: float) -> str:
    rows = [("id", "name", "state", "reason", "since", "queues")]
    for v in views:
        rows.append((v.id, v.name, v.state.value, v.reason or "-", _since(v.since, now),
                     ", ".join(v.queues) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1] for r in rows)


def _since(since: float | None, now: float) -> str:
    """``09:14 (12m)``: the local time and how long ago."""
    if since is None:
        return "-"
    seconds = max(0, int(now - since))
    if seconds < 60:
        ago = f"{seconds}s"
    elif seconds < 3600:
        ago = f"{seconds // 60}m"
    elif seconds < 86400:
        ago = f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    else:
        ago = f"{seconds // 86400}d"
    clock = time.strftime("%H:%M" if seconds < 86400 else "%Y-%m-%d", time.localtime(since))
    return f"{clock} ({ago})"


def print_credentials(config: Config, paths: Paths, *, out: TextIO | None = None) -> int:
    """The SIP accounts for the agents' softphones (secrets from ``ivr setup``)."""
    out = out or sys.stdout
    secrets = SecretStore(paths.secrets_file)
    sip = config.service.agent_sip
    print(f"SIP server (registrar and proxy): {sip.host}:{sip.port} over UDP", file=out)
    print(f"{'agent':<10}{'name':<22}{'username':<14}password", file=out)
    for agent in config.agents:
        try:
            password = secrets.agent_password(agent.sip_username)
        except KeyError:
            password = "(not generated yet: run `ivr setup`)"
        print(f"{agent.id:<10}{agent.name:<22}{agent.sip_username:<14}{password}", file=out)
    return 0
