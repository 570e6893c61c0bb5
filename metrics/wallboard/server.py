"""The supervisors' wallboard: one Arabic page and the JSON it polls.

``GET /`` is a self-contained right-to-left page (no CDN, no web fonts: call
centre screens may have no internet access); it fetches ``GET
/wallboard.json`` every few seconds and redraws itself without reloading.
Everything else is 404.

One board per ministry: ``/?tenant=moh`` and ``/wallboard.json?tenant=moh``
show that tenant's calls, queues and cases only (``/`` is the first line's
tenant); the header links to the other ministries' boards. An unknown tenant
is 404. Without tenants (no config/cases.yaml) the one board shows every queue.

The figures come from a ``snapshot(tenant)`` coroutine the engine provides (its shape
is in ``docs/metrics.md``, section "The wallboard's JSON", and in
``tests/component/test_wallboard.py``). If it raises, times out or returns
something that is not JSON, ``/wallboard.json`` answers 503 and the page
shows "البيانات غير متاحة" with the old figures greyed out: a supervisor never
reads stale figures as current ones.

aiohttp serves it on the engine's own asyncio loop (no thread, no second
loop), so the snapshot coroutine can read the engine's Redis client and
counters directly.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from string import Template
from typing import Any

from aiohttp import web

from core.configuration.model import Config, is_loopback
from metrics.web import content_policy, start_site

log = logging.getLogger(__name__)

PAGE_TEMPLATE = Path(__file__).with_name("page.html")
# How often the page polls. Five seconds: a waiting caller's figure moves
# visibly, and even twenty screens add only four requests a second.
REFRESH_SECONDS = 5
# A snapshot slower than this is a failure: the page aborts its own fetch a
# little before the next refresh, so the server must answer before that.
SNAPSHOT_TIMEOUT_SECONDS = 3.0

Snapshot = Callable[[str | None], Awaitable[dict[str, Any]]]


def wallboard_tenants(config: Config) -> tuple[str | None, ...]:
    """The boards there are: one per tenant, the first line's first; (None,)
    without tenants."""
    if config.cases is None:
        return (None,)
    first = config.tenant_of(config.hotlines[0])
    return (first, *(t.id for t in config.cases.tenants if t.id != first))


def render_page(config: Config, tenant: str | None = None) -> tuple[bytes, str]:
    """The page for ``tenant``'s board (its first hotline names it, else the
    ministry's name), and the
    Content-Security-Policy that allows exactly its own inline script and
    style and nothing from elsewhere."""
    lines = [h for h in config.hotlines if tenant is None or config.tenant_of(h) == tenant]
    # A ministry without a line of its own yet is named, not given another's line.
    title = f"{lines[0].name} {lines[0].number}" if lines else config.cases.tenant(tenant).name
    boards = wallboard_tenants(config)
    others = [t for t in boards if t is not None and t != tenant]
    nav = " ".join(f'<a href="?tenant={html.escape(t)}">{html.escape(config.cases.tenant(t).name)}</a>'
                   for t in others)
    text = Template(PAGE_TEMPLATE.read_text(encoding="utf-8")).substitute(
        hotline_name=html.escape(title),
        tenant_nav=f'<nav class="boards" aria-label="لوحات أخرى">{nav}</nav>' if nav else "",
        refresh_ms=str(REFRESH_SECONDS * 1000),
        sl_threshold=str(config.supervision.service_level.threshold_seconds),
    )
    return text.encode("utf-8"), content_policy(text)


class WallboardServer:
    """Serves the wallboard page and its JSON on ``host:port`` (loopback unless
    the configuration's ``service.wallboard.allow_public`` says otherwise)."""

    def __init__(self, snapshot: Snapshot, *, host: str, port: int, config: Config,
                 snapshot_timeout: float = SNAPSHOT_TIMEOUT_SECONDS):
        if not is_loopback(host) and not config.service.wallboard.allow_public:
            raise ValueError(f"wallboard host {host!r} is not a loopback address; set "
                             "service.wallboard.allow_public: true to expose it on purpose")
        self._snapshot = snapshot
        self._host = host
        self._port = port
        self._snapshot_timeout = snapshot_timeout
        self._boards = wallboard_tenants(config)
        self._pages = {t: render_page(config, t) for t in self._boards}
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound port once started (useful with port 0)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/wallboard.json", self._json)
        return app

    async def start(self) -> None:
        self._runner, self.port = await start_site(self._app(), self._host, self._port)
        log.info("wallboard on http://%s:%d/", self._host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _tenant(self, request: web.Request) -> str | None:
        """The board asked for (``?tenant=``); 404 for one there is not."""
        wanted = request.query.get("tenant")
        if wanted is None:
            return self._boards[0]
        if wanted not in self._boards:
            raise web.HTTPNotFound(text=f"no wallboard for tenant {wanted!r} (boards: "
                                        f"{', '.join(t for t in self._boards if t) or 'one, without tenants'})")
        return wanted

    async def _index(self, request: web.Request) -> web.Response:
        page, policy = self._pages[self._tenant(request)]
        return web.Response(body=page, content_type="text/html", charset="utf-8", headers={
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
        })

    async def _json(self, request: web.Request) -> web.Response:
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        tenant = self._tenant(request)
        try:
            async with asyncio.timeout(self._snapshot_timeout):
                data = await self._snapshot(tenant)
            # allow_nan=False: NaN is not JSON; a ratio with no calls is null.
            body = json.dumps(data, ensure_ascii=False, allow_nan=False)
        except Exception as exc:  # any failure means: no current figures
            log.warning("wallboard snapshot failed: %s", type(exc).__name__)
            log.debug("wallboard snapshot failure", exc_info=True)
            return web.json_response(
                {"error": "البيانات غير متاحة", "reason": f"snapshot failed ({type(exc).__name__})"},
                status=503, headers=headers, dumps=lambda d: json.dumps(d, ensure_ascii=False))
        return web.Response(text=body, content_type="application/json", charset="utf-8", headers=headers)

