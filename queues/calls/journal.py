"""Read back the call journal the dialplan keeps in AstDB.

AMI does not replay events missed while a client was away. So the dialplan's
hang-up handler writes, for every call that reached a queue, one AstDB entry
``/<family>/<call uid> = <queue>|<member interface>|<hotline>`` in a family
per UTC hour (``dialplans.generate.JOURNAL_FAMILY`` + ``%d%H``), and drops
the buckets three and four hours old itself. After each AMI login the engine
reads the last three hours back and feeds each entry to accounting as the
``IvrCallEnd`` event it stands for; accounting counts each fact once, so
entries already seen live change nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterable, Mapping

from dialplans.generate import JOURNAL_FAMILY

HOURS_READ = 3


def journal_families(now: datetime | None = None) -> list[str]:
    now = now or datetime.now(timezone.utc)
    return [f"{JOURNAL_FAMILY}{(now - timedelta(hours=h)):%d%H}" for h in range(HOURS_READ)]


def entries_to_events(messages: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """``DBGetTreeResponse`` messages -> synthetic ``IvrCallEnd`` events."""
    events = []
    for msg in messages:
        if msg.get("Event") != "DBGetTreeResponse":
            continue
        parts = msg.get("Key", "").strip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith(JOURNAL_FAMILY):
            continue
        uid = parts[1]
        # queue|member|hotline|epoch of the hang-up (entries written before
        # the epoch was added have three fields: their end time is unknown).
        queue, member, hotline, ended = (msg.get("Val", "").split("|") + ["", "", "", ""])[:4]
        if not uid or not queue:
            continue
        events.append({"Event": "UserEvent", "UserEvent": "IvrCallEnd", "Uniqueid": uid, "CallUid": uid,
                       "Queue": queue, "Member": member, "Hotline": hotline, "Source": "journal",
                       "Timestamp": ended if ended.isdigit() else ""})
    return events
