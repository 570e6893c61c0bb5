"""The wallboard page in a real browser: Debian's headless Chromium loads it
from the server, its script fetches /wallboard.json and draws the figures.

``--dump-dom`` gives the DOM after the script ran (so the fetch and the
rendering are checked, not just the HTML we sent), ``--screenshot`` gives a
PNG whose pixels must show the right-to-left layout: programme names on the
right edge, the under-target answer ratio in red just left of them.
"""

from __future__ import annotations

import asyncio
import copy
import shutil
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from metrics.wallboard import WallboardServer

WIDTH, HEIGHT = 1280, 800
# The page's under-target colour (--under in page.html).
UNDER_TARGET_RGB = (0xC6, 0x28, 0x28)

# Figures chosen so none of them can come from the page's own text.
SNAPSHOT = {
    "generated_at": 1764003723.0,
    "live": True,
    "totals": {"received": 1417, "offered": 1302, "answered": 1189, "abandoned": 77, "short_abandoned": 36,
               "answer_ratio": 0.9391, "service_level_ratio": 0.7325, "waiting": 23,
               "longest_wait_seconds": 437.6},
    "programs": [
        # Under its 90 % target: drawn in red.
        {"id": "takaful_karama", "name": "تكافل وكرامة", "offered": 861, "answered": 742, "abandoned": 58,
         "short_abandoned": 21, "answer_ratio": 0.8833, "service_level_ratio": 0.6612,
         "target_answer_ratio": 0.9, "waiting": 17, "longest_wait_seconds": 437.6,
         "agents": {"available": 3, "ringing": 1, "on_call": 14, "wrapup": 2, "paused": 5, "offline": 6}},
        # Above its target.
        {"id": "services_card", "name": "بطاقة الخدمات المتكاملة", "offered": 441, "answered": 407,
         "abandoned": 19, "short_abandoned": 15, "answer_ratio": 0.9671, "service_level_ratio": 0.8811,
         "target_answer_ratio": 0.9, "waiting": 6, "longest_wait_seconds": 62.0,
         "agents": {"available": 4, "ringing": 0, "on_call": 9, "wrapup": 1, "paused": 2, "offline": 8}},
    ],
}


class DomCells(HTMLParser):
    """Collects the text of every element with an id, and of every table cell
    by (programme id, cell class); also each id's and cell's class."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.attrs_by_id: dict[str, dict[str, str]] = {}
        self.cells: dict[tuple[str, str], str] = {}
        self.cell_classes: dict[tuple[str, str], set[str]] = {}
        self._open: list[tuple[str, str | None, tuple[str, str] | None]] = []
        self._program: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if tag == "tr":
            self._program = attrs.get("data-program")
        cell_key = None
        if tag == "td" and self._program:
            classes = set(attrs.get("class", "").split())
            name = next((c for c in classes if c not in ("under", "met")), "")
            cell_key = (self._program, name)
            self.cells[cell_key] = ""
            self.cell_classes[cell_key] = classes
        element_id = attrs.get("id")
        if element_id:
            self.by_id[element_id] = ""
            self.attrs_by_id[element_id] = attrs
        if tag not in ("br", "meta", "link", "img", "input"):
            self._open.append((tag, element_id, cell_key))

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()[0] == tag:
                break
        if tag == "tr":
            self._program = None

    def handle_data(self, data):
        for _, element_id, cell_key in self._open:
            if element_id:
                self.by_id[element_id] += data
            if cell_key:
                self.cells[cell_key] += data


def chromium_binary() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: run `make test` (scripts/install-deps.sh installs "
                    "Debian's chromium package), or `apt-get install chromium` as root")
    return path


async def run_chromium(url: str, profile: Path, *args: str) -> str:
    """Run headless Chromium on the page; returns its stdout. Asynchronous on
    purpose: the wallboard server answers on this same event loop."""
    proc = await asyncio.create_subprocess_exec(
        chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
        # Enough virtual time for the page's first fetch and drawing; less
        # than one refresh period, so what is seen is the first render.
        "--virtual-time-budget=3000",
        *args, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(90):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail("headless chromium did not finish within 90 s")
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err.decode()[-2000:]}"
    return out.decode("utf-8")


@pytest.fixture
async def board(config, tmp_path):
    """Serves a snapshot coroutine on a free loopback port; yields a starter."""
    servers: list[WallboardServer] = []

    async def start(snapshot) -> str:
        server = WallboardServer(snapshot, host="127.0.0.1", port=0, config=config)
        await server.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}/"

    yield start
    for server in servers:
        await server.stop()


async def fixed_snapshot(tenant=None) -> dict:
    return copy.deepcopy(SNAPSHOT)


async def test_script_fetches_and_draws_the_snapshot(board, tmp_path):
    url = await board(fixed_snapshot)
    dom = DomCells()
    dom.feed(await run_chromium(url, tmp_path / "profile", "--dump-dom"))

    # Totals on top.
    assert dom.by_id["t-received"] == "1417"
    assert dom.by_id["t-offered"] == "1302"
    assert dom.by_id["t-answered"] == "1189"
    assert dom.by_id["t-abandoned"] == "77"
    assert dom.by_id["t-answer-ratio"] == "93%"
    assert dom.by_id["t-service-level"] == "73%"
    assert dom.by_id["t-waiting"] == "23"
    assert dom.by_id["t-longest"] == "7:17"  # 437.6 s as m:ss
    # The time of the update, in Cairo time, from the snapshot's generated_at.
    cairo = datetime.fromtimestamp(SNAPSHOT["generated_at"], ZoneInfo("Africa/Cairo"))
    assert dom.by_id["updated"] == cairo.strftime("%H:%M:%S")
    assert "hidden" in dom.attrs_by_id["banner"], "no banner while the data is live"

    # One row per programme, in the snapshot's order, with its figures.
    assert [p for p, c in dom.cells if c == "name"] == ["takaful_karama", "services_card"]
    takaful = {c: text for (p, c), text in dom.cells.items() if p == "takaful_karama"}
    assert takaful["name"] == "تكافل وكرامة"
    assert takaful["ratio"].startswith("88%") and "90%" in takaful["ratio"]  # ratio, then its target
    assert takaful["service-level"] == "66%"
    assert takaful["waiting"] == "17"
    assert takaful["longest"] == "7:17"
    assert (takaful["offered"], takaful["answered"], takaful["abandoned"]) == ("861", "742", "58")
    assert [takaful[f"agents-{s}"] for s in ("available", "ringing", "on_call", "wrapup", "paused", "offline")] \
        == ["3", "1", "14", "2", "5", "6"]
    assert "under" in dom.cell_classes[("takaful_karama", "ratio")]
    card = {c: text for (p, c), text in dom.cells.items() if p == "services_card"}
    assert card["name"] == "بطاقة الخدمات المتكاملة"
    assert card["longest"] == "1:02"
    assert "met" in dom.cell_classes[("services_card", "ratio")]
    assert "under" not in dom.cell_classes[("services_card", "ratio")]


async def test_the_health_ministrys_board_fetches_and_draws_its_own_figures(board, tmp_path):
    """``/?tenant=moh``: the page's own fetch asks for the health ministry's
    figures (and only those are drawn); the header names line 105."""
    asked = []
    moh = {**copy.deepcopy(SNAPSHOT), "programs": [
        {**SNAPSHOT["programs"][1], "id": "moh_vaccination", "name": "استفسارات التطعيمات"}]}

    async def per_tenant(tenant=None) -> dict:
        asked.append(tenant)
        return copy.deepcopy(moh if tenant == "moh" else SNAPSHOT)

    url = await board(per_tenant)
    dom = DomCells()
    page = await run_chromium(url + "?tenant=moh", tmp_path / "profile", "--dump-dom")
    dom.feed(page)
    assert asked and set(asked) == {"moh"}
    assert [p for p, c in dom.cells if c == "name"] == ["moh_vaccination"]
    assert dom.cells[("moh_vaccination", "name")] == "استفسارات التطعيمات"
    assert "105" in page.split("</h1>")[0] and 'href="?tenant=mss"' in page


async def test_the_case_panel_shows_open_critical_reports_in_red(board, tmp_path):
    created = 1764003000.0

    async def with_cases(tenant=None) -> dict:
        return {**copy.deepcopy(SNAPSHOT), "cases": {
            "live": True, "open": 412, "critical_open": 2, "overdue": 17,
            "critical": [{"reference": "735102648", "sector": "takaful_karama", "sector_name": "تكافل وكرامة",
                          "created_at": created}]}}

    url = await board(with_cases)
    dom = DomCells()
    dom.feed(await run_chromium(url, tmp_path / "profile", "--dump-dom"))
    assert "hidden" not in dom.attrs_by_id["cases"]
    assert (dom.by_id["c-open"], dom.by_id["c-critical"], dom.by_id["c-overdue"]) == ("412", "2", "17")
    assert "alarm" in dom.attrs_by_id["c-critical-card"]["class"].split()
    cairo = datetime.fromtimestamp(created, ZoneInfo("Africa/Cairo")).strftime("%H:%M:%S")
    assert dom.by_id["c-critical-list"] == f"735 102 648 — تكافل وكرامة — منذ {cairo}"

    # Without cases in the snapshot (no case database) the panel is not shown.
    dom = DomCells()
    dom.feed(await run_chromium(await board(fixed_snapshot), tmp_path / "profile2", "--dump-dom"))
    assert "hidden" in dom.attrs_by_id["cases"]


async def test_failing_snapshot_shows_the_unavailable_banner(board, tmp_path):
    async def broken_snapshot(tenant=None) -> dict:
        raise ConnectionError("engine not ready")

    url = await board(broken_snapshot)
    dom = DomCells()
    dom.feed(await run_chromium(url, tmp_path / "profile", "--dump-dom"))
    assert "hidden" not in dom.attrs_by_id["banner"]
    assert "البيانات غير متاحة" in dom.by_id["banner"]
    assert "unavailable" in dom.attrs_by_id["banner"]["class"]
    # Nothing is presented as a current figure.
    assert dom.by_id["t-answer-ratio"] == "—" and dom.by_id["t-waiting"] == "—"
    assert not dom.cells


async def test_live_figures_unknown_shows_a_banner_and_dashes(board, tmp_path):
    async def redis_down_snapshot(tenant=None) -> dict:
        snap = copy.deepcopy(SNAPSHOT)
        snap["live"] = False
        snap["totals"].update(waiting=None, longest_wait_seconds=None)
        for p in snap["programs"]:
            p.update(waiting=None, longest_wait_seconds=None, agents=None)
        return snap

    url = await board(redis_down_snapshot)
    dom = DomCells()
    dom.feed(await run_chromium(url, tmp_path / "profile", "--dump-dom"))
    assert "hidden" not in dom.attrs_by_id["banner"]
    assert "غير متاحة" in dom.by_id["banner"]
    assert dom.by_id["t-waiting"] == "—" and dom.by_id["t-longest"] == "—"
    assert dom.by_id["t-offered"] == "1302"  # the counters are still known
    assert dom.cells[("takaful_karama", "waiting")] == "—"
    assert dom.cells[("takaful_karama", "agents-on_call")] == "—"


def colour_close(pixel, rgb, tolerance=10) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], rgb))


async def test_screenshot_shows_a_right_to_left_board(board, tmp_path):
    url = await board(fixed_snapshot)
    shot = tmp_path / "wallboard.png"
    await run_chromium(url, tmp_path / "profile", f"--screenshot={shot}")
    print(f"wallboard screenshot: {shot}")
    assert shot.exists(), "chromium wrote no screenshot"

    image = Image.open(shot).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    pixels = image.load()
    colours = image.getcolors(maxcolors=WIDTH * HEIGHT)
    # Not blank: many colours, and no single colour covers almost everything.
    assert len(colours) > 50
    assert max(n for n, _ in colours) < 0.9 * WIDTH * HEIGHT

    red = [(x, y) for y in range(HEIGHT) for x in range(WIDTH) if colour_close(pixels[x, y], UNDER_TARGET_RGB)]
    # Programme names are the only pure black text on the board.
    black = [(x, y) for y in range(HEIGHT) for x in range(WIDTH) if max(pixels[x, y]) < 20]
    assert len(red) > 1000, "no red under-target cell"
    assert len(black) > 100, "no programme names drawn"

    red_left, red_right = min(x for x, _ in red), max(x for x, _ in red)
    red_top, red_bottom = min(y for _, y in red), max(y for _, y in red)
    black_left, black_right = min(x for x, _ in black), max(x for x, _ in black)
    # Right to left: the names column is at the right edge of the board...
    assert black_left > WIDTH / 2, f"programme names start at x={black_left}: not on the right half"
    assert black_right > 0.9 * WIDTH, f"programme names end at x={black_right}: not aligned to the right"
    # ...the answer ratio is the next column to its left, red for the one
    # programme under its target only: a single cell, not a whole row.
    assert red_left > WIDTH / 2 and red_right <= black_left
    assert red_right - red_left < 0.15 * WIDTH
    assert red_bottom - red_top < 0.15 * HEIGHT
    # It is on the first programme's row (Takaful & Karama, the one under
    # target), level with the top name.
    first_name_top = min(y for _, y in black)
    assert red_top <= first_name_top <= red_bottom
