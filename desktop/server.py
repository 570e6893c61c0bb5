"""The agents' desktop: one Arabic page, its JSON API and its event stream.

    GET  /                          the page (self-contained, right to left, no external resources)
    POST /api/signin                {"agent", "password"}: the softphone's credentials -> session cookie
    POST /api/signout
    GET  /api/me                    the agent, their state, the current call, the form's choices
    GET  /api/events                server-sent events: {"type": "pop"|"hello"|"bye", "call": ...}
    POST /api/pause                 {"reason"}   (as the feature code *23)
    POST /api/resume                             (as *24)
    GET  /api/queue?sector=<id>     a sector's work queue: its open cases, the most urgent first
                                    (&limit=, &offset= for paging)
    POST /api/cases                 {"kind", "sector", "severity", "subject", "note", "call_id"}
    GET  /api/cases/<reference>     the case and its audit trail
    POST /api/cases/<reference>     {"action", "note", "version"}

Every ``/api`` request but the sign-in needs the session cookie (401
otherwise). Posts must be JSON (415 otherwise) from the page's own origin
(403 otherwise): with the SameSite=Strict, HttpOnly cookie that keeps other
sites from acting in an agent's name. Errors are JSON ``{"error": <Arabic
for the screen>, "detail": <English for the log>}``: 400 a malformed post
(with its ``field``), 404 an unknown case (another tenant's too), 409 a
conflict (somebody changed the case since it was read) or a refused action,
503 the case database down ("cases cannot be saved right now"), and the
call goes on: calls never depend on the desktop. A registration made while
the database is down is kept (``desktop.outbox``) and answered 202 with the
reference it will have; so is an update of a case the page was showing
(answered 202 with the version the case will have once it is applied).

aiohttp serves it on the engine's own loop, like the wallboard; case
store calls run in threads (``desktop.casework``).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from cases.model import InvalidCase, TransitionRefused
from cases.store import CaseConflict, CaseNotFound
from cases.views import SEVERITY_NAMES
from core.configuration.model import Config, is_loopback
from metrics.web import content_policy, start_site
from queues.agents.desk import AgentDesk
from queues.agents.errors import AgentError

from . import forms
from .casework import CasesUnavailable, CaseWork
from .forms import FormError
from .pops import PopHub
from .sessions import Session, SessionBook, SignInRefused

log = logging.getLogger(__name__)

PAGE_TEMPLATE = Path(__file__).with_name("page.html")
COOKIE = "ivr_desk"
HEARTBEAT_SECONDS = 15.0
BYE = {"type": "bye"}
SESSION = web.RequestKey("session", Session)

ERRORS_AR = {
    "signin": "رقم الموظف أو كلمة المرور غير صحيحة",
    "locked": "محاولات كثيرة خاطئة؛ حاول مرة أخرى بعد قليل",
    "session": "انتهت الجلسة؛ سجّل الدخول من جديد",
    "json": "البيانات المرسلة غير صالحة",
    "origin": "طلب من مصدر غير مسموح",
    "not_found": "لا يوجد بلاغ بهذا الرقم",
    "conflict": "عدّل شخص آخر هذا البلاغ بعد أن فتحته؛ أعد فتحه ثم حاول مرة أخرى",
    "refused": "هذا الإجراء غير مسموح في حالة البلاغ الحالية",
    "unavailable": "لا يمكن حفظ البلاغات الآن؛ المكالمات مستمرة، حاول بعد قليل",
    "no_cases": "البلاغات غير مفعلة في هذا النظام",
    "agent": "تعذر تنفيذ الطلب",
    "screens": "الصفحة مفتوحة في نوافذ كثيرة",
}


def render_page(config: Config) -> tuple[bytes, str]:
    main = config.hotlines[0]
    text = Template(PAGE_TEMPLATE.read_text(encoding="utf-8")).substitute(
        hotline_name=html.escape(main.name), heartbeat_ms=str(int(HEARTBEAT_SECONDS * 1000)))
    return text.encode("utf-8"), content_policy(text)


class Refused(Exception):
    """A request answered with ``response`` (raised from a helper, returned by the guard)."""

    def __init__(self, response: web.Response):
        super().__init__(response.status)
        self.response = response


def _error(status: int, key: str, detail: str = "", **extra: Any) -> web.Response:
    body = {"error": ERRORS_AR[key], "detail": detail or key, **extra}
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False), content_type="application/json",
                        charset="utf-8", headers={"Cache-Control": "no-store"})


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data, ensure_ascii=False), content_type="application/json",
                        charset="utf-8", headers={"Cache-Control": "no-store"})


class DesktopServer:
    def __init__(self, *, config: Config, host: str, port: int, sessions: SessionBook, hub: PopHub,
                 desk: AgentDesk, cases: CaseWork | None, heartbeat: float = HEARTBEAT_SECONDS):
        if not is_loopback(host) and not config.service.desktop.allow_public:
            raise ValueError(f"desktop host {host!r} is not a loopback address; set "
                             "service.desktop.allow_public: true to expose it on purpose")
        self._config = config
        self._host, self._port = host, port
        self._sessions = sessions
        self._hub = hub
        self._desk = desk
        self._cases = cases
        self._heartbeat = heartbeat
        self._page, self._policy = render_page(config)
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._streams: set[tuple[str, asyncio.Queue]] = set()
        self.port: int | None = None

    # --- life ------------------------------------------------------------------------------
    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.router.add_get("/", self._index)
        app.router.add_post("/api/signin", self._signin)
        app.router.add_post("/api/signout", self._signout)
        app.router.add_get("/api/me", self._me)
        app.router.add_get("/api/events", self._events)
        app.router.add_post("/api/pause", self._pause)
        app.router.add_post("/api/resume", self._resume)
        app.router.add_get("/api/queue", self._work_queue)
        app.router.add_post("/api/cases", self._create_case)
        app.router.add_get("/api/cases/{reference}", self._read_case)
        app.router.add_post("/api/cases/{reference}", self._update_case)
        return app

    async def start(self) -> None:
        self._closing = False
        # Open event streams end on stop (BYE), so a short shutdown suffices.
        self._runner, self.port = await start_site(self._app(), self._host, self._port, shutdown_timeout=2.0)
        log.info("agents' desktop on http://%s:%d/", self._host, self.port)

    async def stop(self) -> None:
        self._closing = True
        for _, queue in list(self._streams):
            queue.put_nowait(BYE)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- guard: session, JSON, origin ---------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler):
        if not request.path.startswith("/api/"):
            return await handler(request)
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc != request.host:
                log.warning("desktop: %s %s refused from origin %s", request.method, request.path, origin)
                return _error(403, "origin")
            if request.content_type != "application/json":
                return _error(415, "json", "posts must be application/json")
        if request.path != "/api/signin":
            session = self._sessions.session(request.cookies.get(COOKIE))
            if session is None:
                return _error(401, "session")
            request[SESSION] = session
        try:
            return await handler(request)
        except Refused as exc:
            return exc.response
        except FormError as exc:
            return _error(400, "json", str(exc), field=exc.field, message=exc.arabic)
        except InvalidCase as exc:
            return _error(400, "json", str(exc))
        except CaseNotFound as exc:
            return _error(404, "not_found", f"no case {exc.reference} in this tenant")
        except CaseConflict as exc:
            return _error(409, "conflict", str(exc), current_version=exc.current_version)
        except TransitionRefused as exc:
            return _error(409, "refused", str(exc))
        except CasesUnavailable as exc:
            log.warning("desktop: case database unavailable (%s)", exc)
            return _error(503, "unavailable", str(exc))

    async def _body(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise FormError("body", "not JSON", ERRORS_AR["json"]) from None

    # --- the page ----------------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(body=self._page, content_type="text/html", charset="utf-8", headers={
            "Content-Security-Policy": self._policy, "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"})

    # --- signing in ------------------------------------------------------------------------
    async def _signin(self, request: web.Request) -> web.Response:
        form = forms.sign_in(await self._body(request))
        try:
            session = self._sessions.sign_in(form.agent_id, form.password)
        except SignInRefused as exc:
            log.warning("desktop: sign-in refused for agent %r (%s)", form.agent_id[:16], exc.reason)
            if exc.reason == "locked":
                return _error(429, "locked", f"retry after {exc.retry_after:.0f}s",
                              retry_after=round(exc.retry_after))
            return _error(401, "signin", exc.reason)
        log.info("desktop: agent %s signed in", session.agent_id)
        response = _json({"agent": session.agent_id})
        response.set_cookie(COOKIE, session.token, httponly=True, samesite="Strict", path="/")
        return response

    async def _signout(self, request: web.Request) -> web.Response:
        self._sessions.sign_out(request.cookies.get(COOKIE))
        response = _json({"signed_out": True})
        response.del_cookie(COOKIE, path="/")
        return response

    # --- the agent -------------------------------------------------------------------------
    async def _me(self, request: web.Request) -> web.Response:
        session = request[SESSION]
        agent = self._config.agent(session.agent_id)
        view = await self._desk.view(agent.id)
        pop = self._hub.current(agent.id)
        choices: dict[str, Any] = {}
        cases = self._config.cases
        if cases is not None and session.tenant is not None:
            choices = {
                "kinds": [{"id": k, "name": v.name} for k, v in cases.kinds.items()],
                "sectors": [{"id": s.id, "name": s.name, "program": s.program} for s in cases.sectors
                            if s.tenant == session.tenant],
                "severities": [{"id": s, "name": SEVERITY_NAMES.get(s, s)} for s in cases.deadlines],
            }
        return _json({
            "agent": {"id": agent.id, "name": agent.name},
            "tenant": session.tenant,
            "state": view.state.value, "reason": view.reason,
            "pause_reasons": [{"id": r.id, "name": r.name} for r in self._config.agent_policy.pause_reasons],
            "call": pop.public() if pop else None,
            "cases_enabled": self._cases is not None and session.tenant is not None,
            "choices": choices,
        })

    async def _pause(self, request: web.Request) -> web.Response:
        data = await self._body(request)
        reason = data.get("reason") if isinstance(data, dict) else None
        if not isinstance(reason, str) or self._config.agent_policy.pause_reason(reason) is None:
            raise FormError("reason", "unknown pause reason", "سبب الإيقاف غير صالح")
        return await self._agent_action(request, "pause", reason)

    async def _resume(self, request: web.Request) -> web.Response:
        return await self._agent_action(request, "resume")

    async def _agent_action(self, request: web.Request, action: str, *args: str) -> web.Response:
        agent_id = request[SESSION].agent_id
        try:
            result = await getattr(self._desk, action)(agent_id, *args, source="desktop")
        except AgentError as exc:
            return _error(409, "agent", str(exc), result=exc.result)
        return _json({"outcome": result.outcome, "reason": result.reason})

    # --- the call pop ------------------------------------------------------------------------
    async def _events(self, request: web.Request) -> web.StreamResponse:
        session = request[SESSION]
        try:
            queue = self._hub.listen(session.agent_id)
        except OverflowError as exc:
            return _error(429, "screens", str(exc))
        stream = (session.agent_id, queue)
        self._streams.add(stream)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        try:
            await response.prepare(request)
            current = self._hub.current(session.agent_id)
            await self._send(response, {"type": "hello", "call": current.public() if current else None})
            while not self._closing:
                try:
                    message = await asyncio.wait_for(queue.get(), self._heartbeat)
                except TimeoutError:
                    if self._sessions.session(request.cookies.get(COOKIE)) is None:
                        break  # signed out (or expired) elsewhere
                    await response.write(b": keep-alive\n\n")
                    continue
                await self._send(response, message)
                if message is BYE:
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._streams.discard(stream)
            self._hub.unlisten(session.agent_id, queue)
        return response

    @staticmethod
    async def _send(response: web.StreamResponse, message: dict) -> None:
        data = json.dumps(message, ensure_ascii=False)
        await response.write(f"event: {message['type']}\ndata: {data}\n\n".encode("utf-8"))

    # --- cases -------------------------------------------------------------------------------
    def _casework(self, request: web.Request) -> tuple[CaseWork, str]:
        """The case work and the agent's tenant; 404 when cases are not enabled."""
        session = request[SESSION]
        if self._cases is None or session.tenant is None:
            raise Refused(_error(404, "no_cases"))
        return self._cases, session.tenant

    async def _work_queue(self, request: web.Request) -> web.Response:
        work, tenant = self._casework(request)
        page = forms.queue_page(request.query, self._config, tenant)
        rows = await work.work_queue(tenant=tenant, sector=page.sector, limit=page.limit, offset=page.offset)
        return _json({"sector": page.sector, "offset": page.offset, "cases": rows})

    async def _create_case(self, request: web.Request) -> web.Response:
        work, tenant = self._casework(request)
        form = forms.new_case(await self._body(request), self._config, tenant)
        agent_id = request[SESSION].agent_id
        row = await work.create(agent_id=agent_id, tenant=tenant, form=form, pop=self._hub.current(agent_id))
        # 202: the database is away; the case is kept and will be registered with this reference.
        return _json({"case": row}, status=202 if row.get("queued") else 201)

    async def _read_case(self, request: web.Request) -> web.Response:
        work, tenant = self._casework(request)
        reference = forms.reference(request.match_info["reference"])
        return _json(await work.read(agent_id=request[SESSION].agent_id, tenant=tenant, reference=reference))

    async def _update_case(self, request: web.Request) -> web.Response:
        work, tenant = self._casework(request)
        reference = forms.reference(request.match_info["reference"])
        form = forms.case_update(await self._body(request))
        row = await work.update(agent_id=request[SESSION].agent_id, tenant=tenant, reference=reference, form=form)
        # 202: the database is away; the update is kept and applied when it returns.
        return _json({"case": row}, status=202 if row.get("queued") else 200)

