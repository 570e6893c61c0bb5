"""The wallboard's HTTP server on a real loopback socket: the page, the JSON
snapshot, a failing or slow snapshot (503), unknown paths (404), and the
configuration refusing a non-loopback address."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import socket

import aiohttp
import pytest
from pydantic import ValidationError

from core.configuration.model import Config, ServiceSettings
from metrics.wallboard import WallboardServer

# The engine's snapshot contract (the lead's Engine provides the real one).
SNAPSHOT = {
    "generated_at": 1764000000.0,
    "live": True,
    "totals": {"received": 120, "offered": 100, "answered": 84, "abandoned": 10, "short_abandoned": 6,
               "answer_ratio": 0.894, "service_level_ratio": 0.71, "waiting": 7, "longest_wait_seconds": 95.0},
    "programs": [
        {"id": "takaful_karama", "name": "تكافل وكرامة", "offered": 60, "answered": 55, "abandoned": 3,
         "short_abandoned": 2, "answer_ratio": 0.948, "service_level_ratio": 0.8, "target_answer_ratio": 0.9,
         "waiting": 4, "longest_wait_seconds": 95.0,
         "agents": {"available": 2, "ringing": 0, "on_call": 3, "wrapup": 1, "paused": 1, "offline": 0}},
        {"id": "forsa", "name": "فرصة", "offered": 0, "answered": 0, "abandoned": 0, "short_abandoned": 0,
         "answer_ratio": None, "service_level_ratio": None, "target_answer_ratio": 0.8,
         "waiting": 0, "longest_wait_seconds": 0.0,
         "agents": {"available": 0, "ringing": 0, "on_call": 0, "wrapup": 0, "paused": 0, "offline": 2}},
    ],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def serve(config):
    """Start a WallboardServer with the given snapshot coroutine; stopped after the test."""
    servers: list[WallboardServer] = []

    async def start(snapshot, **kwargs) -> str:
        server = WallboardServer(snapshot, host="127.0.0.1", port=free_port(), config=config, **kwargs)
        await server.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await server.stop()


async def fixed_snapshot(tenant=None) -> dict:
    # A copy each time: the server must not depend on holding the caller's object.
    return copy.deepcopy(SNAPSHOT)


async def test_page_is_arabic_right_to_left_and_self_contained(serve):
    base = await serve(fixed_snapshot)
    async with aiohttp.ClientSession() as http, http.get(base + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
        policy = response.headers["Content-Security-Policy"]
    assert re.search(r'<html lang="ar" dir="rtl">', page)
    for label in ("نسبة الرد", "المتصلون في الانتظار", "أطول انتظار", "الموظفون حسب الحالة"):
        assert label in page
    # No external resource: nothing loads from another origin, and the
    # browser is told to refuse it anyway.
    # (The one kind of link: to another ministry's board, on this same page.)
    assert not re.search(r'(src|href)\s*=\s*"(?!data:|\?tenant=\w+")', page), "page references a resource"
    assert "http://" not in page and "https://" not in page and "@import" not in page
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    # The figures are not in the page itself: they only come from /wallboard.json
    # (every figure starts as a dash; the browser test sees them filled in).
    for element in ("t-received", "t-answer-ratio", "t-waiting", "t-longest", "updated"):
        assert re.search(rf'id="{element}"[^>]*>—<', page), element
    assert '<tbody id="programs"></tbody>' in page


async def test_json_is_the_snapshot(serve):
    base = await serve(fixed_snapshot)
    async with aiohttp.ClientSession() as http, http.get(base + "/wallboard.json") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert response.headers["Cache-Control"] == "no-store"
        raw = await response.read()
    assert json.loads(raw) == SNAPSHOT
    assert "تكافل وكرامة".encode() in raw  # UTF-8 Arabic, not \u escapes
    assert json.loads(raw)["programs"][1]["answer_ratio"] is None


async def test_each_ministry_has_its_own_board_and_an_unknown_one_is_404(serve, config):
    asked = []

    async def snapshot(tenant=None) -> dict:
        asked.append(tenant)
        return {**copy.deepcopy(SNAPSHOT), "tenant": tenant}

    base = await serve(snapshot)
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/") as response:
            default = await response.text()
        async with http.get(base + "/?tenant=moh") as response:
            assert response.status == 200
            health = await response.text()
        async with http.get(base + "/wallboard.json") as response:
            assert (await response.json())["tenant"] == "mss"
        async with http.get(base + "/wallboard.json?tenant=moh") as response:
            assert (await response.json())["tenant"] == "moh"
        for path in ("/?tenant=mosh", "/wallboard.json?tenant=mosh", "/wallboard.json?tenant="):
            async with http.get(base + path) as response:
                assert response.status == 404, path
                assert "no wallboard for tenant" in await response.text()
    # The first line's ministry is the default board; each names its own line
    # and links to the other's.
    assert asked == ["mss", "moh"]
    assert "1442" in default.split("</h1>")[0] and "105" not in default.split("</h1>")[0]
    assert "105" in health.split("</h1>")[0] and "1442" not in health.split("</h1>")[0]
    assert 'href="?tenant=moh"' in default and 'href="?tenant=mss"' in health
    assert 'href="?tenant=moh"' not in health


async def test_json_follows_the_snapshot_between_polls(serve):
    figures = {"waiting": 7}

    async def moving_snapshot(tenant=None) -> dict:
        snap = copy.deepcopy(SNAPSHOT)
        snap["totals"]["waiting"] = figures["waiting"]
        return snap

    base = await serve(moving_snapshot)
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/wallboard.json") as response:
            assert (await response.json())["totals"]["waiting"] == 7
        figures["waiting"] = 12
        async with http.get(base + "/wallboard.json") as response:
            assert (await response.json())["totals"]["waiting"] == 12


async def test_failing_snapshot_is_503_with_a_json_error(serve):
    async def broken_snapshot(tenant=None) -> dict:
        raise ConnectionError("redis down")

    base = await serve(broken_snapshot)
    async with aiohttp.ClientSession() as http, http.get(base + "/wallboard.json") as response:
        assert response.status == 503
        assert response.content_type == "application/json"
        body = await response.json()
    assert body["error"] == "البيانات غير متاحة"
    assert "ConnectionError" in body["reason"]
    assert "totals" not in body


async def test_slow_snapshot_is_503_not_a_hung_request(serve):
    async def slow_snapshot(tenant=None) -> dict:
        await asyncio.sleep(30)
        return SNAPSHOT

    base = await serve(slow_snapshot, snapshot_timeout=0.2)
    async with aiohttp.ClientSession() as http, asyncio.timeout(5), http.get(base + "/wallboard.json") as response:
        assert response.status == 503


async def test_snapshot_that_is_not_json_is_503(serve):
    async def nan_snapshot(tenant=None) -> dict:
        snap = copy.deepcopy(SNAPSHOT)
        snap["totals"]["answer_ratio"] = float("nan")
        return snap

    base = await serve(nan_snapshot)
    async with aiohttp.ClientSession() as http, http.get(base + "/wallboard.json") as response:
        assert response.status == 503


@pytest.mark.parametrize("path", ["/metrics", "/wallboard.json/x", "/index.html", "/static/app.js", "/../etc/passwd"])
async def test_unknown_paths_are_404(serve, path):
    base = await serve(fixed_snapshot)
    async with aiohttp.ClientSession() as http, http.get(base + path) as response:
        assert response.status == 404


def test_default_address_is_loopback_9110(config):
    assert (config.service.wallboard.host, config.service.wallboard.port) == ("127.0.0.1", 9110)


def test_config_refuses_a_non_loopback_address():
    with pytest.raises(ValidationError, match="not a loopback address"):
        ServiceSettings(wallboard={"host": "0.0.0.0", "port": 9110})
    with pytest.raises(ValidationError, match="not a loopback address"):
        ServiceSettings(wallboard={"host": "192.168.1.10", "port": 9110})
    # Exposing it is possible, but only when asked for.
    assert ServiceSettings(wallboard={"host": "0.0.0.0", "port": 9110, "allow_public": True}).wallboard.host == "0.0.0.0"
    assert ServiceSettings(wallboard={"host": "::1", "port": 9110}).wallboard.port == 9110


def test_server_refuses_a_non_loopback_host_the_config_did_not_allow(config: Config):
    with pytest.raises(ValueError, match="allow_public"):
        WallboardServer(fixed_snapshot, host="0.0.0.0", port=9110, config=config)


async def test_stop_frees_the_port(config):
    port = free_port()
    server = WallboardServer(fixed_snapshot, host="127.0.0.1", port=port, config=config)
    await server.start()
    assert server.port == port
    await server.stop()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # would raise EADDRINUSE if still listening


def test_a_ministry_without_a_line_of_its_own_is_named_not_given_anothers_line(config):
    """Line 105 moved to the social-solidarity ministry: the health board
    (still a tenant, with its queues) names its ministry in the header, not
    line 1442 or 105."""
    from metrics.wallboard.server import render_page

    hotlines = tuple(h.model_copy(update={"tenant": "mss"}) if h.number == "105" else h for h in config.hotlines)
    moved = config.model_copy(update={"hotlines": hotlines})
    assert not [h for h in moved.hotlines if moved.tenant_of(h) == "moh"]
    page, _ = render_page(moved, "moh")
    header = page.decode().split("</h1>")[0]
    assert "وزارة الصحة والسكان" in header
    assert "1442" not in header and "105" not in header
    assert "1442" in render_page(moved, "mss")[0].decode().split("</h1>")[0]
