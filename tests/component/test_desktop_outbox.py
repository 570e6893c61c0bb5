"""The case database stops mid-run: a real PostgreSQL of the test's own,
stopped with `pg_ctl stop` while agents register cases on the desktop. No
case is lost and none is written twice: each is answered with its reference,
kept in Redis, and registered under that reference once the database is back."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa

from app.postgres_server import PostgresServer
from cases.database import make_engine, migrate
from cases.store import CaseStore
from core.privacy import NumberCipher
from desktop.outbox import CaseOutbox
from test_desktop import CALLER, CASES, CIPHER_KEY, Desk


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def own_postgres():
    server = PostgresServer(port=free_port(), data_dir=Path(tempfile.mkdtemp(prefix="ivr-pg-outbox-")))
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(server.data_dir, ignore_errors=True)


async def test_cases_registered_while_postgresql_is_down_are_kept_and_applied_once(config, own_postgres,
                                                                                redis_client, caplog):
    engine = make_engine(own_postgres.url)
    migrate(engine)
    cfg = config.model_copy(update={"cases": CASES})
    store = CaseStore(engine=engine, config=CASES)
    outbox = CaseOutbox(redis_client, prefix="ivr-test-outbox:")
    desk = Desk(cfg, store, outbox=outbox)
    await desk.server.start()
    client = await desk.signed_in("1001")
    try:
        async def register(subject: str, call_id: str | None = None) -> tuple[int, dict]:
            form = {"kind": "complaint", "sector": "forsa", "severity": "high", "subject": subject,
                    "call_id": call_id}
            async with client.post(desk.url + "/api/cases", json=form) as r:
                return r.status, (await r.json())["case"]

        status, before = await register("قبل التوقف")
        assert status == 201
        own_postgres.stop("fast")
        await desk.connect("1001", "1700000000.41", {"program": "forsa", "national_id_hmac": "c" * 64})
        kept = []
        for n in range(3):
            status, row = await register(f"أثناء التوقف {n}", call_id="1700000000.41" if n == 0 else None)
            assert status == 202, row
            assert row["queued"] is True and len(row["reference"]) == 9
            kept.append(row["reference"])
        assert len(set(kept)) == 3 and await outbox.size() == 3
        # What waits in Redis is what the database would hold: no number in clear.
        raw = " ".join(str(v) for entry in await redis_client.xrange(outbox.key) for v in entry[1].values())
        assert CALLER not in raw and "c" * 64 in raw
        # Reads say the database is away (nothing to show).
        async with client.get(f"{desk.url}/api/cases/{before['reference']}") as r:
            assert r.status == 503
        # Updates of the case the page was showing are kept, in order: start,
        # then resolve with the version the first will give it. A third made
        # on the stale version (another agent's page) cannot apply then: it
        # is kept as a note, and nothing is forced or lost.
        updates = [("start", "بدأ العمل", before["version"]), ("resolve", "تم الصرف", before["version"] + 1),
                   ("wait_for_citizen", "نحتاج صورة البطاقة", before["version"])]
        for action, note, version in updates:
            async with client.post(f"{desk.url}/api/cases/{before['reference']}",
                                   json={"action": action, "note": note, "version": version}) as r:
                assert r.status == 202, await r.text()
                kept_update = (await r.json())["case"]
            assert kept_update["queued"] is True and kept_update["version"] == version + 1
        assert await desk.work.drain_outbox() == 0 and await outbox.size() == 6   # still down: kept

        own_postgres.start()
        assert await desk.work.drain_outbox() == 5      # 3 registrations, 2 updates applied
        assert await outbox.size() == 0
        case = store.get("mss", before["reference"])
        assert case.status.value == "resolved" and case.first_response_at is not None
        trail = [(e.action.value, e.actor, e.note) for e in store.history("mss", before["reference"])]
        assert [t[:2] for t in trail] == [("register", "1001"), ("start", "1001"), ("resolve", "1001"),
                                          ("note", "1001")]
        assert trail[3][2].startswith("[في انتظار المواطن: لم يُطبَّق") and trail[3][2].endswith("نحتاج صورة البطاقة")
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select reference, subject, call_id, number_encrypted from cases "
                                        "order by id")).all()
        assert [r[0] for r in rows] == [before["reference"], *kept]
        assert [r[1] for r in rows[1:]] == ["أثناء التوقف 0", "أثناء التوقف 1", "أثناء التوقف 2"]
        assert rows[1][2] == "1700000000.41"
        assert NumberCipher(CIPHER_KEY).decrypt(rows[1][3]) == CALLER
        assert [e.action.value for e in store.history("mss", kept[0])] == ["register"]

        # An entry applied whose removal from Redis failed is applied again: nothing is written twice.
        own_postgres.stop("fast")
        status, row = await register("مرة واحدة")
        assert status == 202
        own_postgres.start()
        entry_id, entry = (await outbox.pending())[0]
        store.register_as(entry.pop("reference"), **entry)     # applied, not yet removed
        assert await desk.work.drain_outbox() == 0              # recognised: "already"
        assert await outbox.size() == 0
        with engine.connect() as conn:
            assert conn.execute(sa.text("select count(*) from cases where reference = :r"),
                                {"r": row["reference"]}).scalar_one() == 1
        # The same for an update: applied, its removal failed, not applied twice.
        own_postgres.stop("fast")
        async with client.post(f"{desk.url}/api/cases/{row['reference']}",
                               json={"action": "start", "note": "", "version": 1}) as r:
            assert r.status == 202
        own_postgres.start()
        _, entry = (await outbox.pending())[0]
        assert desk.work._apply_kept_update(entry) == 1          # applied, not yet removed
        assert await desk.work.drain_outbox() == 0 and await outbox.size() == 0
        assert [e.action.value for e in store.history("mss", row["reference"])] == ["register", "start"]
    finally:
        await client.close()
        await desk.server.stop()
        engine.dispose()
