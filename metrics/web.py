"""What the engine's own pages share (the wallboard, the agents' desktop):
the Content-Security-Policy of a self-contained page, and an aiohttp site
started on the engine's loop."""

from __future__ import annotations

import base64
import hashlib
import re

from aiohttp import web


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def content_policy(text: str) -> str:
    """A Content-Security-Policy allowing exactly the page's own inline
    scripts and styles, requests to its own origin, and nothing else."""
    scripts = re.findall(r"<script>(.*?)</script>", text, flags=re.DOTALL)
    styles = re.findall(r"<style>(.*?)</style>", text, flags=re.DOTALL)
    return "; ".join((
        "default-src 'none'",
        "script-src " + " ".join(_csp_hash(s) for s in scripts),
        "style-src " + " ".join(_csp_hash(s) for s in styles),
        "connect-src 'self'",
        "img-src data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ))


async def start_site(app: web.Application, host: str, port: int,
                     shutdown_timeout: float = 60.0) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (0: any free port); the runner and the bound port.
    No access log: pages poll, and a line per poll would drown the engine's log."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]
