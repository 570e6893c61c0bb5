"""Read back the call journal the dialplan keeps in AstDB.

AMI does not replay events missed while a client was away. So the dialplan's
hang-up handler writes, for every call that reached a queue, one AstDB entry
``/<family>/<call uid> = <queue>|<member interface>|<hotline>|<epoch>`` in a
family per UTC hour (``core.contract.journal_family``), and drops the
buckets three and four hours old itself. After each AMI login the engine
reads the last three hours back and feeds each entry to accounting as the
``IvrCallEnd`` event it stands for; accounting counts each fact once, so
entries already seen live change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.contract import JOURNAL_FAMILY, JOURNAL_SEPARATOR, UserEvent, journal_families
from queues.ami.events import AmiEvent, CallEnded, DBGetTreeResponse

__all__ = ["entries_to_events", "journal_families"]


def entries_to_events(replies: Iterable[AmiEvent]) -> list[CallEnded]:
    """The ``DBGetTreeResponse`` events of a DBGetTree reply -> ``IvrCallEnd`` events."""
    events = []
    for msg in replies:
        if not isinstance(msg, DBGetTreeResponse):
            continue
        parts = msg.key.strip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith(JOURNAL_FAMILY):
            continue
        uid = parts[1]
        # queue|member|hotline|epoch of the hang-up (entries written before
        # the epoch was added have three fields: their end time is unknown).
        queue, member, hotline, ended = (msg.value.split(JOURNAL_SEPARATOR) + ["", "", "", ""])[:4]
        if not uid or not queue:
            continue
        timestamp = float(ended) if ended.isdigit() and int(ended) > 0 else None
        events.append(CallEnded(name="UserEvent:" + UserEvent.CALL_END, timestamp=timestamp,
                                timestamp_raw=ended if ended.isdigit() else "", ref=f"{msg.ref}:journal" if msg.ref else "",
                                uniqueid=uid, call_uid=uid, queue=queue, member=member, hotline=hotline,
                                source="journal"))
    return events
