"""FastAGI route ``agent``: the agents' feature codes, answered in Arabic.

The dialplan (context ``[agents]``) runs

    AGI(agi://.../agent,<action>,<endpoint>,<reason code>,<remote address>)

``arg_1`` login|logout|pause|resume, ``arg_2`` the softphone's PJSIP endpoint
(``agent1001``), ``arg_3`` the pause reason code (empty for ``*23`` alone:
the agent is asked for it), ``arg_4`` the softphone's address (``ip:port``;
logging in from another address moves the agent's login there).

This is the handler of the handler -> manager -> action chain: it reads the
channel, asks :class:`queues.agents.desk.AgentDesk` and turns the answer, or the
domain error, into a spoken confirmation. Whatever happens the agent hears
something: when Asterisk's AMI or Redis is unreachable it is
``agent-service-unavailable``.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from core.channel import ALL_KEYS, CallerHungUp, Channel
from core.configuration import Config
from core.configuration.model import Agent
from core.contract import prompt_path
from core.privacy import mask_number

from .desk import AgentDesk
from .errors import AlreadyLoggedIn, AsteriskError, NotLoggedIn, UnknownAgent, UnknownPauseReason

log = logging.getLogger(__name__)

ACTIONS = ("login", "logout", "pause", "resume")

# What the agent hears for each outcome of the desk and each refusal.
CONFIRMATIONS = {
    "logged_in": "agent-logged-in",
    "moved": "agent-moved-phone",
    "logged_out": "agent-logged-out",
    "paused": "agent-paused",
    "resumed": "agent-resumed",
    "not_paused": "agent-resumed",  # nothing to resume: the agent is taking calls, which is what was asked
}
REFUSALS = (
    (AlreadyLoggedIn, "agent-already-logged-in"),
    (NotLoggedIn, "agent-not-logged-in"),
    (UnknownPauseReason, "agent-unknown-reason"),
    (UnknownAgent, "agent-unknown"),
    (AsteriskError, "agent-service-unavailable"),
)
UNAVAILABLE = "agent-service-unavailable"


class AgentCodeHandler:
    """``*21`` log in, ``*22`` log out, ``*23[reason]`` pause, ``*24`` resume."""

    def __init__(self, *, config: Config, desk: AgentDesk, reason_timeout: float = 5.0):
        self._config = config
        self._desk = desk
        self._reason_timeout = reason_timeout

    async def __call__(self, session: Channel) -> None:
        env = session.env
        action = env.get("arg_1", "")
        endpoint = env.get("arg_2", "")
        code = env.get("arg_3", "").strip()
        remote = env.get("arg_4", "")
        who = _describe(session)
        agent = self._config.agent_by_endpoint(endpoint)
        if agent is None:
            log.warning("agent code %s from endpoint %r which is no agent (%s)", action or "?", endpoint, who)
            await self._say(session, "agent-unknown")
            return
        if action not in ACTIONS:
            log.error("agent code: unknown action %r from agent %s (%s); dialplan and engine disagree",
                      action, agent.id, who)
            await self._say(session, UNAVAILABLE)
            return
        try:
            prompt = await self._act(session, agent, action, code, remote)
        except CallerHungUp:
            raise
        except RedisError as exc:
            log.error("agent %s %s: Redis unavailable (%s)", agent.id, action, exc)
            prompt = UNAVAILABLE
        except Exception as exc:
            prompt = next((p for kind, p in REFUSALS if isinstance(exc, kind)), None)
            if prompt is None:
                # A bug: still tell the agent it did not work, then let the
                # server log the traceback.
                await self._say(session, UNAVAILABLE)
                raise
            log.info("agent %s %s refused: %s (%s)", agent.id, action, exc, who)
        await self._say(session, prompt)

    async def _act(self, session: Channel, agent: Agent, action: str, code: str, remote: str) -> str:
        if action == "login":
            result = await self._desk.login(agent.id, source="phone", device=remote)
        elif action == "logout":
            result = await self._desk.logout(agent.id, source="phone")
        elif action == "resume":
            result = await self._desk.resume(agent.id, source="phone")
        else:
            if not code:
                # Ask only someone who can pause: a logged-out agent hears so at once.
                await self._desk.ensure_logged_in(agent.id, action="pause", source="phone")
                code = await self._ask_reason(session) or ""
            result = await self._desk.pause(agent.id, code, source="phone")
        log.info("agent %s %s from %s: %s%s (%s)", agent.id, action, remote or "?", result.outcome,
                 f" ({result.reason})" if result.reason else "", _describe(session))
        return CONFIRMATIONS[result.outcome]

    async def _ask_reason(self, session: Channel) -> str | None:
        # Any key cuts the question short; a wrong one is answered with
        # agent-unknown-reason by the desk's refusal.
        key = await session.play(prompt_path("agent-pause-reason"), ALL_KEYS)
        if key is None:
            key = await session.wait_digit(self._reason_timeout)
        return key

    async def _say(self, session: Channel, prompt: str) -> None:
        await session.play(prompt_path(prompt), "")


def _describe(session: Channel) -> str:
    describe = getattr(session, "describe", None)
    if describe is not None:
        return describe()  # AgiSession.describe() masks the caller number itself
    return f"from={mask_number(session.env.get('callerid'))}"
