"""The agents' desktop over real HTTP (aiohttp on a free port) and a real case
database (SQLite and PostgreSQL): sign-in, the call pop on the event stream,
cases opened and updated from the form, and every kind of bad input.

The browser itself is in tests/e2e/test_desktop_call.py (headless Chromium, a
real SIPp call through Asterisk).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone

import aiohttp
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from cases import model
from cases.database import migrate
from cases.reference import new_reference
from cases.store import CaseStore
from core.configuration.model import Cases
from core.privacy import NumberCipher
from desktop.casework import CaseWork
from desktop.pops import CallPops, PopHub
from desktop.server import COOKIE, DesktopServer
from desktop.sessions import MAX_FAILURES, SessionBook
from metrics.registry import EngineMetrics
from queues.agents.desk import AgentDesk
from queues.agents.store import MemoryAgentStateStore
from queues.ami.actions import NoAmi
from queues.ami.events import AgentComplete, AgentConnect
from queues.calls.store import MemoryCallStateStore
from queues.priority import hash_caller

KEY = b"k" * 32
CIPHER_KEY = NumberCipher.generate_key()
CALLER = "01001234567"
PASSWORDS = {"1001": "pw-1001-correct-horse", "1002": "pw-1002-battery-staple"}

CASES = Cases.model_validate({
    "tenants": [{"id": "mss", "name": "التضامن", "name_en": "Social Solidarity"},
                {"id": "moh", "name": "الصحة", "name_en": "Health"}],
    "sectors": [{"id": "takaful_karama", "tenant": "mss", "program": "takaful_karama", "name": "تكافل وكرامة",
                 "name_en": "T&K"},
                {"id": "forsa", "tenant": "mss", "name": "فرصة", "name_en": "Forsa"},
                {"id": "hospitals", "tenant": "moh", "name": "المستشفيات", "name_en": "Hospitals"}],
    "kinds": {k: {"name": k + "-ar", "name_en": k} for k in ("report", "inquiry", "complaint", "grievance")},
    "deadlines": {"critical": {"first_response_hours": 1, "resolution_hours": 24},
                  "high": {"first_response_hours": 4, "resolution_hours": 72},
                  "normal": {"first_response_hours": 24, "resolution_hours": 240},
                  "low": {"first_response_hours": 72, "resolution_hours": 720}},
})


class Desk:
    """A running desktop on a free port, with its hub, call facts and store."""

    def __init__(self, config, store: CaseStore, outbox=None):
        self.config = config
        self.store = store
        self.hub = PopHub()
        self.calls = MemoryCallStateStore()
        self.metrics = EngineMetrics(config, CollectorRegistry())
        desk = AgentDesk(ami=NoAmi(), store=MemoryAgentStateStore(), config=config, metrics=self.metrics)
        self.work = CaseWork(store=store, config=config, cipher=NumberCipher(CIPHER_KEY), outbox=outbox)
        self.pops = CallPops(config=config, hub=self.hub, call_state=self.calls, open_cases=self.work.open_cases,
                             number_hash=lambda n: hash_caller(n, KEY))
        self.sessions = SessionBook(password_of=PASSWORDS.get,
                                    tenant_of=lambda a: config.agent_tenant(config.agent(a)))
        self.server = DesktopServer(config=config, host="127.0.0.1", port=0, sessions=self.sessions, hub=self.hub,
                                    desk=desk, cases=self.work, heartbeat=0.5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def signed_in(self, agent_id: str) -> aiohttp.ClientSession:
        client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with client.post(self.url + "/api/signin",
                               json={"agent": agent_id, "password": PASSWORDS[agent_id]}) as r:
            assert r.status == 200, await r.text()
            client.set_cookie_header = r.headers["Set-Cookie"]
        return client

    async def connect(self, agent_id: str, uid: str, facts: dict[str, str], caller: str = CALLER) -> None:
        for fact, value in facts.items():
            await self.calls.set_fact(uid, fact, value)
        result = await self.pops.handle(AgentConnect(name="AgentConnect", uniqueid=uid, caller_id=caller,
                                                     queue="takaful_karama", interface=f"PJSIP/agent{agent_id}",
                                                     member_name=agent_id, hold_time=3))
        assert result == "popped"


@pytest.fixture
async def desktop(config, case_engine):
    migrate(case_engine)
    cfg = config.model_copy(update={"cases": CASES})
    store = CaseStore(engine=case_engine, config=CASES)
    d = Desk(cfg, store)
    await d.server.start()
    yield d
    await d.server.stop()


async def _next_event(response, kinds=("pop",), timeout=5.0) -> dict:
    async def read():
        event = None
        while True:
            line = (await response.content.readline()).decode()
            if line.startswith("event: "):
                event = line[7:].strip()
            elif line.startswith("data: ") and event in kinds:
                return json.loads(line[6:])
    return await asyncio.wait_for(read(), timeout)


# --- signing in -------------------------------------------------------------------------------

async def test_sign_in_needs_the_agents_own_password_and_locks_after_repeated_failures(desktop, caplog):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.get(desktop.url + "/api/me") as r:
            assert r.status == 401
            assert (await r.json())["error"]
        # Another agent's password is as wrong as a made-up one.
        for password in ("nope", PASSWORDS["1002"]):
            async with client.post(desktop.url + "/api/signin", json={"agent": "1001", "password": password}) as r:
                assert r.status == 401
        async with client.post(desktop.url + "/api/signin", json={"agent": "9999", "password": "x"}) as r:
            assert r.status == 401
        for _ in range(MAX_FAILURES - 2):
            async with client.post(desktop.url + "/api/signin", json={"agent": "1001", "password": "bad"}) as r:
                assert r.status == 401
        # Locked now, even with the right password.
        async with client.post(desktop.url + "/api/signin",
                               json={"agent": "1001", "password": PASSWORDS["1001"]}) as r:
            assert r.status == 429
            assert (await r.json())["retry_after"] > 0
        async with client.get(desktop.url + "/api/me") as r:
            assert r.status == 401
    assert "sign-in refused for agent '1001' (locked)" in caplog.text
    # A wrong password never reaches the log.
    assert "nope" not in caplog.text and PASSWORDS["1002"] not in caplog.text

    client = await desktop.signed_in("1002")
    try:
        cookie = client.set_cookie_header
        assert cookie.startswith(COOKIE + "=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        async with client.get(desktop.url + "/api/me") as r:
            me = await r.json()
        assert me["agent"]["id"] == "1002" and me["tenant"] == "mss" and me["cases_enabled"]
        # Only the agent's tenant's sectors are offered.
        assert [s["id"] for s in me["choices"]["sectors"]] == ["takaful_karama", "forsa"]
        async with client.post(desktop.url + "/api/signout", json={}) as r:
            assert r.status == 200
        async with client.get(desktop.url + "/api/me") as r:
            assert r.status == 401
    finally:
        await client.close()


async def test_the_page_is_arabic_right_to_left_and_self_contained(desktop):
    async with aiohttp.ClientSession() as client:
        async with client.get(desktop.url + "/") as r:
            page = await r.text()
            policy = r.headers["Content-Security-Policy"]
    assert '<html lang="ar" dir="rtl">' in page
    assert "http://" not in page and "https://" not in page  # no external resources
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "'unsafe-inline'" not in policy


# --- the pop -----------------------------------------------------------------------------------

async def test_a_connected_call_pops_on_the_agents_screen_only(desktop):
    key_hash = "a" * 64
    one, two = await desktop.signed_in("1001"), await desktop.signed_in("1002")
    try:
        stream1 = await one.get(desktop.url + "/api/events")
        stream2 = await two.get(desktop.url + "/api/events")
        assert stream1.headers["Content-Type"].startswith("text/event-stream")
        assert (await _next_event(stream1, kinds=("hello",)))["call"] is None
        await _next_event(stream2, kinds=("hello",))
        await desktop.connect("1001", "1700000000.11", {
            "program": "takaful_karama", "request_type": "complaint", "governorate": "giza",
            "priority_rule": "repeat_caller", "national_id_hmac": key_hash})
        pop = await _next_event(stream1)
        call = pop["call"]
        assert call["call_id"] == "1700000000.11"
        assert call["program"] == "takaful_karama" and call["program_name"]
        assert call["request_type"] == "complaint"
        assert call["governorate"] == "giza" and call["governorate_name"] == "الجيزة"
        assert call["repeat_caller"] is True and call["national_id_checked"] is True
        assert call["caller"] == "*********67"
        # Nothing that identifies the citizen reaches the browser.
        assert CALLER not in json.dumps(pop) and key_hash not in json.dumps(pop)
        # The second pop carries the open cases (none yet).
        second = await _next_event(stream1)
        assert second["call"]["cases"] == [] and second["call"]["cases_available"] is True
        # Agent 1002 saw nothing of it.
        with pytest.raises(TimeoutError):
            await _next_event(stream2, timeout=1.0)
        stream1.close()
        stream2.close()
    finally:
        await one.close()
        await two.close()


async def test_a_case_opened_from_the_pop_is_stored_with_the_citizen_and_shown_on_the_next_call(desktop):
    client = await desktop.signed_in("1001")
    try:
        await desktop.connect("1001", "1700000000.21", {"program": "takaful_karama", "governorate": "giza",
                                                        "national_id_hmac": "b" * 64})
        form = {"kind": "grievance", "sector": "takaful_karama", "severity": "high",
                "subject": "تظلم من إيقاف الدعم", "note": "المواطن يطلب المراجعة", "call_id": "1700000000.21"}
        async with client.post(desktop.url + "/api/cases", json=form) as r:
            assert r.status == 201, await r.text()
            row = (await r.json())["case"]
        reference = row["reference"]
        assert row["status"] == "new" and row["status_name"] == "جديد"
        assert row["number"] == "*********67" and row["national_id"] == "checked"
        stored = desktop.store.get("mss", reference)
        assert stored.created_by == "1001" and stored.call_id == "1700000000.21"
        assert stored.sector == "takaful_karama" and stored.kind == "grievance" and stored.severity == "high"
        assert stored.national_id_hash == "b" * 64 and stored.number_hash == hash_caller(CALLER, KEY)
        # The number is kept encrypted, never in clear.
        assert CALLER not in stored.number_encrypted
        assert NumberCipher(CIPHER_KEY).decrypt(stored.number_encrypted) == CALLER
        with desktop.store.engine.connect() as conn:
            dump = " ".join(str(v) for row in conn.execute(sa.text("select * from cases")) for v in row)
        assert CALLER not in dump
        # The next call of the same citizen (same number, no ID this time) shows it.
        await desktop.pops.handle(AgentComplete(name="AgentComplete", uniqueid="1700000000.21",
                                                interface="PJSIP/agent1001"))
        assert desktop.hub.current("1001").ended_at is not None
        await desktop.connect("1001", "1700000999.1", {"program": "forsa"})
        pop = desktop.hub.current("1001").public()
        assert [c["reference"] for c in pop["cases"]] == [reference]
        assert pop["cases"][0]["kind_name"] == "grievance-ar"
    finally:
        await client.close()


async def test_case_updates_keep_the_trail_and_refuse_conflicts_and_wrong_moves(desktop):
    client = await desktop.signed_in("1001")
    try:
        form = {"kind": "complaint", "sector": "forsa", "severity": "normal", "subject": "تأخر الصرف"}
        async with client.post(desktop.url + "/api/cases", json=form) as r:
            row = (await r.json())["case"]
        ref, version = row["reference"], row["version"]
        async with client.post(f"{desktop.url}/api/cases/{ref}",
                               json={"action": "start", "note": "بدأت", "version": version}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["case"]["status"] == "in_progress"
        # The same form again, made on the old version: a conflict, nothing saved.
        async with client.post(f"{desktop.url}/api/cases/{ref}",
                               json={"action": "resolve", "note": "x", "version": version}) as r:
            assert r.status == 409
            body = await r.json()
            assert body["current_version"] == version + 1 and "عدّل شخص آخر" in body["error"]
        # A move the state machine refuses.
        async with client.post(f"{desktop.url}/api/cases/{ref}", json={"action": "close"}) as r:
            assert r.status == 409
            assert "cannot close a case that is in_progress" in (await r.json())["detail"]
        async with client.get(f"{desktop.url}/api/cases/{ref}") as r:
            shown = await r.json()
        assert shown["case"]["status"] == "in_progress" and shown["case"]["version"] == version + 1
        assert [(e["action"], e["actor"], e["to"], e["note"]) for e in shown["history"]] == [
            ("register", "1001", "new", ""), ("start", "1001", "in_progress", "بدأت")]
    finally:
        await client.close()


async def test_bad_posts_get_clear_errors_and_change_nothing(desktop):
    client = await desktop.signed_in("1001")
    try:
        def count():
            with desktop.store.engine.connect() as conn:
                return conn.execute(sa.text("select count(*) from cases")).scalar_one()

        before = count()
        for body, field in (({"kind": "nonsense", "sector": "forsa", "severity": "normal", "subject": "x"}, "kind"),
                            ({"kind": "report", "sector": "hospitals", "severity": "normal", "subject": "x"},
                             "sector"),  # another tenant's sector
                            ({"kind": "report", "sector": "forsa", "severity": "urgent", "subject": "x"},
                             "severity"),
                            ({"kind": "report", "sector": "forsa", "severity": "normal", "subject": "  "}, "subject"),
                            ({"kind": "report", "sector": "forsa", "severity": "normal", "subject": "x" * 201},
                             "subject"),
                            (["not", "an", "object"], "body")):
            async with client.post(desktop.url + "/api/cases", json=body) as r:
                assert r.status == 400, (body, await r.text())
                answer = await r.json()
                assert answer["field"] == field and answer["message"], answer
        async with client.post(desktop.url + "/api/cases", data="{not json",
                               headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400
        async with client.post(desktop.url + "/api/cases", data="kind=report",
                               headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
            assert r.status == 415
        # A post from another site's page is refused, whatever it carries.
        async with client.post(desktop.url + "/api/cases", headers={"Origin": "http://evil.example"},
                               json={"kind": "report", "sector": "forsa", "severity": "normal", "subject": "x"}) as r:
            assert r.status == 403
        async with client.post(desktop.url + "/api/pause", json={"reason": "nap"}) as r:
            assert r.status == 400 and (await r.json())["field"] == "reason"
        # A typo in the check digit, and a well-formed number that is nobody's.
        nobodys = new_reference()
        typo = nobodys[:-1] + str((int(nobodys[-1]) + 1) % 10)
        async with client.get(f"{desktop.url}/api/cases/{typo}") as r:
            assert r.status == 400 and (await r.json())["message"] == "رقم البلاغ غير صحيح"
        async with client.get(f"{desktop.url}/api/cases/{nobodys}") as r:
            assert r.status == 404
        async with client.get(desktop.url + "/api/cases/12345") as r:
            assert r.status == 400 and (await r.json())["field"] == "reference"
        assert count() == before
    finally:
        await client.close()


async def test_another_tenants_case_is_refused_and_logged(desktop, caplog):
    theirs = desktop.store.register(tenant="moh", sector="hospitals", kind="complaint", severity="high",
                                    actor="supervisor", at=datetime.now(timezone.utc), subject="x")
    client = await desktop.signed_in("1001")
    try:
        with caplog.at_level(logging.WARNING, logger="desktop.casework"):
            async with client.get(f"{desktop.url}/api/cases/{theirs.reference}") as r:
                assert r.status == 404
                assert (await r.json())["error"] == "لا يوجد بلاغ بهذا الرقم"
            async with client.post(f"{desktop.url}/api/cases/{theirs.reference}",
                                   json={"action": "start"}) as r:
                assert r.status == 404
        assert desktop.store.get("moh", theirs.reference).status.value == "new"
        assert f"agent 1001 (tenant mss) refused case {theirs.reference} of tenant moh" in caplog.text
    finally:
        await client.close()


async def test_with_the_database_down_the_screen_says_cases_cannot_be_saved(config, tmp_path):
    # A database file in a folder that does not exist: every query fails.
    engine = sa.create_engine(f"sqlite:///{tmp_path}/missing/cases.sqlite3")
    cfg = config.model_copy(update={"cases": CASES})
    d = Desk(cfg, CaseStore(engine=engine, config=CASES))
    await d.server.start()
    try:
        client = await d.signed_in("1001")
        stream = await client.get(d.url + "/api/events")
        await _next_event(stream, kinds=("hello",))
        await d.connect("1001", "1700000000.31", {"program": "takaful_karama"})
        assert (await _next_event(stream))["call"]["cases_available"] is True   # the details at once
        assert (await _next_event(stream))["call"]["cases_available"] is False  # no case list
        async with client.post(d.url + "/api/cases", json={"kind": "report", "sector": "forsa",
                                                            "severity": "normal", "subject": "x"}) as r:
            assert r.status == 503
            assert (await r.json())["error"].startswith("لا يمكن حفظ البلاغات الآن")
        stream.close()
        await client.close()
    finally:
        await d.server.stop()


async def test_a_sectors_work_queue_lists_its_open_cases_most_urgent_first(desktop):
    now = datetime.now(timezone.utc)
    store = desktop.store
    normal = store.register(tenant="mss", sector="forsa", kind="inquiry", severity="normal", actor="x", at=now)
    critical = store.register(tenant="mss", sector="forsa", kind="report", severity="critical", actor="x", at=now)
    low = store.register(tenant="mss", sector="forsa", kind="complaint", severity="low", actor="x", at=now)
    done = store.register(tenant="mss", sector="forsa", kind="report", severity="critical", actor="x", at=now)
    for step in ("start", "resolve"):
        store.transition("mss", done.reference, lambda c, s=step: getattr(model, s)(c, actor="x", at=now))
    store.register(tenant="mss", sector="takaful_karama", kind="report", severity="critical", actor="x", at=now)
    client = await desktop.signed_in("1001")
    try:
        async with client.get(desktop.url + "/api/queue?sector=forsa") as r:
            assert r.status == 200, await r.text()
            rows = (await r.json())["cases"]
        assert [c["reference"] for c in rows] == [critical.reference, normal.reference, low.reference]
        assert rows[0]["severity_name"] == "حرج" and rows[0]["overdue"] == []
        async with client.get(desktop.url + "/api/queue?sector=forsa&limit=1&offset=1") as r:
            assert [c["reference"] for c in (await r.json())["cases"]] == [normal.reference]
        for query, field in (("sector=hospitals", "sector"), ("sector=forsa&limit=x", "limit"),
                             ("sector=forsa&offset=-1", "offset"), ("", "sector")):
            async with client.get(desktop.url + "/api/queue?" + query) as r:
                assert r.status == 400 and (await r.json())["field"] == field, query
    finally:
        await client.close()
