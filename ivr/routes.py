"""The FastAGI route table: which handler serves each route the dialplan calls.

The same table serves the FastAGI server (``ivr serve``) and classic AGI
(``ivr-agi``, one process per call: hotline and survey only). Everything a
handler needs is given here as keyword arguments by the process's
composition root (``app/engine.py``, ``app/classic_agi.py``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Awaitable, Callable, Sequence

from core.channel import Channel
from core.contract import Route

if TYPE_CHECKING:  # names for the signatures only: a classic-AGI process pays for every import
    from core.configuration import Config
    from metrics.registry import EngineMetrics
    from queues.agents.desk import AgentDesk
    from queues.callbacks.menu import PlaceOf
    from queues.callbacks.store import CallbackStore
    from queues.calls.store import CallStateStore
    from queues.priority import RecentCallers

    from .flow.hotline import CaseStatusLookup
    from .service_check.flow import Answer

Handler = Callable[[Channel], Awaitable[None]]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def call_routes(*, config: Config, metrics: EngineMetrics, store: CallStateStore, callbacks: CallbackStore,
                national_id_key: bytes | Sequence[bytes], caller_key: bytes = b"",
                recent: RecentCallers | None = None,
                case_status: CaseStatusLookup | None = None,
                clock: Callable[[], datetime] = _utcnow) -> dict[str, Handler]:
    """The routes a citizen's call takes: the hotline's menus and the survey."""
    from .flow.hotline import HotlineHandler
    from .flow.survey import SurveyHandler

    return {
        Route.HOTLINE: HotlineHandler(config=config, metrics=metrics, store=store, callbacks=callbacks,
                                      national_id_key=national_id_key, caller_key=caller_key, recent=recent,
                                      case_status=case_status, clock=clock),
        Route.SURVEY: SurveyHandler(config=config, metrics=metrics, store=store),
    }


def engine_routes(*, config: Config, metrics: EngineMetrics, store: CallStateStore, callbacks: CallbackStore,
                  national_id_key: bytes | Sequence[bytes], recent: RecentCallers, desk: AgentDesk,
                  place_of: PlaceOf,
                  caller_key: bytes = b"",
                  case_status: CaseStatusLookup | None = None, service_check_answer: Answer | None = None,
                  clock: Callable[[], datetime] = _utcnow) -> dict[str, Handler]:
    """Every route of ``ivr serve``: the call's, the agents' feature codes,
    the queue's callback and overflow menus, and the service check's call."""
    # Imported here: ivr-agi (classic AGI, call_routes only) never needs them.
    from queues.agents.feature_codes import AgentCodeHandler
    from queues.callbacks.menu import OverflowHandler, QueueCallbackHandler

    from .service_check.flow import ServiceCheckHandler

    routes = call_routes(config=config, metrics=metrics, store=store, callbacks=callbacks,
                         national_id_key=national_id_key, caller_key=caller_key, recent=recent,
                         case_status=case_status, clock=clock)
    routes[Route.AGENT] = AgentCodeHandler(config=config, desk=desk)
    callback_args = dict(config=config, metrics=metrics, callbacks=callbacks, place_of=place_of, call_state=store,
                         clock=clock)
    routes[Route.CALLBACK] = QueueCallbackHandler(**callback_args)
    routes[Route.OVERFLOW] = OverflowHandler(**callback_args)
    routes[Route.SERVICE_CHECK] = ServiceCheckHandler(config=config, answer=service_check_answer)
    return routes
