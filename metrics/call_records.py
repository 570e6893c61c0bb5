"""Call records: one entry per finished call, in the Redis stream ``<prefix>call_records``.

The record is the contract of docs/metrics.md ("Call records"): every field
is a string on the wire; times are Unix epoch seconds with millisecond
precision, empty when the event did not happen. :class:`CallRecord` is the
typed, validated form; :meth:`CallRecord.from_fields` refuses an entry that
does not follow the contract and names the field, so a report never adds up
garbage silently.

Two stores share one interface (``append``, ``read``): :class:`MemoryCallRecords`
for tests and :class:`RedisCallRecords` for the engine and ``ivr report``.

Reading a period. The stream id Redis gives an entry is the Redis clock (ms)
when the call record was written, i.e. when the call *ended*; a record's
period is decided by its ``received`` time (``ended`` if it has none), which
is earlier. So :meth:`RedisCallRecords.read` pages with ``XRANGE`` from a
little before ``start`` (clock skew between Asterisk and Redis) to
``late_seconds`` after ``end``: long calls that straddle the end of the period,
and callbacks answered days later (after a Friday or a holiday), write their
record after the period has ended. A tool that imports historical records
must give them stream ids at their ``ended`` time (``XADD key <ms>-* ...``
in ascending order), or read with ``late_seconds=None`` (to the stream's end).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Protocol

log = logging.getLogger(__name__)

OUTCOMES = ("answered", "abandoned", "short_abandoned", "callback", "overflow_callback", "closed",
            "ivr_hangup", "self_service", "no_queue")
# Fields holding an epoch time or a duration (seconds, ms precision; empty: did not happen).
TIME_FIELDS = ("received", "queued", "answered", "ended")
DURATION_FIELDS = ("wait_seconds", "talk_seconds")
# The wire order of docs/metrics.md.
FIELD_NAMES = ("uid", "hotline", "program", "queues", "request_type", "governorate", "received", "queued",
               "answered", "ended", "wait_seconds", "talk_seconds", "outcome", "tenant")
# Fields a record written before they existed may lack: read as "".
OPTIONAL_FIELDS = ("tenant",)


class MalformedCallRecord(ValueError):
    """A stream entry that does not follow the call-record contract."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"call record field {field!r}: {problem}")
        self.field = field


@dataclass(frozen=True, slots=True)
class CallRecord:
    uid: str
    hotline: str
    program: str                 # the last queue the call was in; "" if it never reached one
    queues: tuple[str, ...]      # every queue entered, in order
    request_type: str
    governorate: str
    received: float | None
    queued: float | None
    answered: float | None
    ended: float | None
    wait_seconds: float | None
    talk_seconds: float | None
    outcome: str
    tenant: str = ""             # the line's ministry; "" in records written before tenants

    def __post_init__(self) -> None:
        if not self.uid:
            raise MalformedCallRecord("uid", "empty")
        if not self.hotline:
            raise MalformedCallRecord("hotline", "empty")
        if self.outcome not in OUTCOMES:
            raise MalformedCallRecord("outcome", f"{self.outcome!r} is not one of {', '.join(OUTCOMES)}")
        if not isinstance(self.queues, tuple):
            raise MalformedCallRecord("queues", "must be a tuple of queue ids")
        if self.program and self.queues and self.program != self.queues[-1]:
            raise MalformedCallRecord("program", f"{self.program!r} is not the last of queues {self.queues}")
        for name in TIME_FIELDS + DURATION_FIELDS:
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise MalformedCallRecord(name, f"{value!r} is not a time (finite, >= 0)")
        if self.received is None and self.ended is None:
            raise MalformedCallRecord("ended", "neither received nor ended is set: the call has no time")

    @property
    def time(self) -> float:
        """The time that decides which period the call belongs to."""
        return self.received if self.received is not None else self.ended  # type: ignore[return-value]

    def to_fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in FIELD_NAMES:
            value = getattr(self, name)
            if name == "queues":
                out[name] = ",".join(value)
            elif name in TIME_FIELDS or name in DURATION_FIELDS:
                out[name] = "" if value is None else f"{value:.3f}"
            else:
                out[name] = value
        return out

    @classmethod
    def from_fields(cls, entry: Mapping[str | bytes, str | bytes]) -> CallRecord:
        """Parse a stream entry (str or bytes keys and values); unknown extra fields are ignored
        (a newer writer may add some), a missing or malformed field raises MalformedCallRecord."""
        data: dict[str, str] = {}
        for key, value in entry.items():
            try:
                k = key.decode() if isinstance(key, bytes) else key
                data[k] = value.decode() if isinstance(value, bytes) else value
            except UnicodeDecodeError:
                raise MalformedCallRecord(str(key), "not UTF-8") from None
        values: dict[str, object] = {}
        for name in FIELD_NAMES:
            if name not in data:
                if name in OPTIONAL_FIELDS:
                    values[name] = ""
                    continue
                raise MalformedCallRecord(name, "missing")
            raw = data[name]
            if name in TIME_FIELDS or name in DURATION_FIELDS:
                if raw == "":
                    values[name] = None
                    continue
                try:
                    values[name] = float(raw)
                except ValueError:
                    raise MalformedCallRecord(name, f"{raw!r} is not a number of seconds") from None
            elif name == "queues":
                values[name] = tuple(q for q in raw.split(",") if q)
            else:
                values[name] = raw
        return cls(**values)  # type: ignore[arg-type]


assert tuple(f.name for f in fields(CallRecord)) == FIELD_NAMES


class ReadResult(list):
    """The records of a period (a plain list of :class:`CallRecord`), plus what was skipped.

    ``malformed`` counts stream entries that were not valid call records: the
    caller shows it (``ivr report`` prints it) rather than hiding it.
    """

    def __init__(self, records: Iterable[CallRecord] = (), *, malformed: int = 0, scanned: int = 0):
        super().__init__(records)
        self.malformed = malformed
        self.scanned = scanned


class CallRecordStore(Protocol):
    async def append(self, record: CallRecord) -> None: ...

    async def read(self, start: float, end: float) -> ReadResult: ...


def _latest_in_period(records: Iterable[CallRecord], start: float, end: float) -> list[CallRecord]:
    """The last record per uid (a callback answered later writes a second record),
    kept when its time lies in [start, end)."""
    latest: dict[str, CallRecord] = {}
    for record in records:
        latest.pop(record.uid, None)   # re-insert: the order follows the last record
        latest[record.uid] = record
    return [r for r in latest.values() if start <= r.time < end]


class MemoryCallRecords:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    async def append(self, record: CallRecord) -> None:
        self.records.append(record)

    async def read(self, start: float, end: float) -> ReadResult:
        kept = _latest_in_period(self.records, start, end)
        return ReadResult(kept, scanned=len(self.records))


_CONFIGURED = object()  # read(): use the store's late_seconds


class RedisCallRecords:
    """The ``<prefix>call_records`` stream.

    ``batch`` entries per ``XRANGE`` round trip: a month (~165,000 records) is
    read in about 80 pages, never in one reply that would block Redis.
    """

    # Asterisk's clock (record times) and Redis's clock (stream ids) may differ a little.
    CLOCK_SKEW_SECONDS = 300.0

    def __init__(self, client, *, prefix: str = "ivr:", max_length: int = 5_000_000, batch: int = 2000,
                 late_seconds: float | None = 7 * 86400.0):
        if batch < 1:
            raise ValueError("batch must be >= 1")
        self._redis = client
        self.key = f"{prefix}call_records"
        self._max_length = max_length
        self._batch = batch
        self._late_seconds = late_seconds

    async def append(self, record: CallRecord) -> None:
        await self._redis.xadd(self.key, record.to_fields(), maxlen=self._max_length, approximate=True)

    def stream_on(self, client) -> tuple[str, int] | None:
        """(key, max length) when ``client`` is this stream's own: the call
        state store then appends a call's record in the same script as the
        step that claims it (``queues.calls.store``), one round trip."""
        return (self.key, self._max_length) if client is self._redis else None

    async def read(self, start: float, end: float, *, late_seconds: float | None | object = _CONFIGURED) -> ReadResult:
        if end <= start:
            raise ValueError(f"empty period: end ({end}) is not after start ({start})")
        late = self._late_seconds if late_seconds is _CONFIGURED else late_seconds
        low = f"{max(0, int((start - self.CLOCK_SKEW_SECONDS) * 1000))}-0"
        high = "+" if late is None else f"{int((end + late + self.CLOCK_SKEW_SECONDS) * 1000)}"
        parsed: list[CallRecord] = []
        malformed = scanned = 0
        cursor = low
        while True:
            page = await self._redis.xrange(self.key, min=cursor, max=high, count=self._batch)
            if not page:
                break
            for entry_id, entry in page:
                scanned += 1
                try:
                    parsed.append(CallRecord.from_fields(entry))
                except MalformedCallRecord as exc:
                    malformed += 1
                    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    log.warning("skipping malformed call record %s in %s: %s", eid, self.key, exc)
            if len(page) < self._batch:
                break
            cursor = _next_id(page[-1][0])
        if malformed:
            log.warning("%d of %d call records in %s were malformed and skipped", malformed, scanned, self.key)
        return ReadResult(_latest_in_period(parsed, start, end), malformed=malformed, scanned=scanned)


def _next_id(entry_id: bytes | str) -> str:
    """The smallest stream id after ``entry_id`` (XRANGE's exclusive '(' needs Redis 6.2)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, seq = text.split("-")
    return f"{ms}-{int(seq) + 1}"
