"""Agents: who is logged in, paused, ringing, talking; and the actions that change it.

One home for the feature, in the handler -> manager -> action order of the
style guide:

* ``state``   -- :func:`derive_state`: the agent's state (offline, available,
  ringing, on_call, wrapup, paused) from the facts of its record; pure.
* ``store``   -- the record, in Redis (one hash per agent) or in memory.
* ``desk``    -- :class:`AgentDesk`, the manager: log in/out, pause, resume,
  with their preconditions, domain errors (``errors``) and AMI actions.
* ``tracker`` -- :class:`AgentTracker`, AMI events in: the record follows
  app_queue, re-synced from ``QueueStatus`` after every login; auto-pause.
* ``feature_codes`` -- the FastAGI route of the softphones' ``*21``..``*24``.
* ``cli``     -- ``ivr agents ...``.
"""

from .desk import AgentDesk, AgentView, DeskResult
from .errors import (AgentError, AlreadyLoggedIn, AsteriskError, AsteriskRefused, AsteriskUnavailable, NotLoggedIn,
                     UnknownAgent, UnknownPauseReason)
from .state import AgentState, derive_state, queues_of, state_since
from .store import AgentStateStore, MemoryAgentStateStore, RedisAgentStateStore
from .tracker import AgentTracker, agent_for_interface

__all__ = [
    "AgentDesk", "AgentError", "AgentState", "AgentStateStore", "AgentTracker", "AgentView", "AlreadyLoggedIn",
    "AsteriskError", "AsteriskRefused", "AsteriskUnavailable", "DeskResult", "MemoryAgentStateStore", "NotLoggedIn",
    "RedisAgentStateStore", "UnknownAgent", "UnknownPauseReason", "agent_for_interface", "derive_state",
    "queues_of", "state_since",
]
