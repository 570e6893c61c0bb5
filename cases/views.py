"""What people may see of a case: local times, the number masked, the ID as
checked or not, and the Arabic names of kinds, sectors and states. Shared by
``ivr cases`` and the agents' desktop."""

from __future__ import annotations

from datetime import datetime

from core.configuration import Config
from core.hours import local_timezone
from core.privacy import NumberCipher, mask_number

from .model import Case, CaseEvent, Status

COLUMNS = ("reference", "tenant", "sector", "kind", "severity", "status", "subject", "created_at", "created_by",
           "assignee", "first_response_due", "first_response_at", "resolution_due", "resolved_at", "closed_at",
           "reopened_count", "escalated", "program", "governorate", "number", "national_id", "version")

STATUS_NAMES = {
    Status.NEW: "جديد",
    Status.ASSIGNED: "مُسند",
    Status.IN_PROGRESS: "قيد التنفيذ",
    Status.WAITING_FOR_CITIZEN: "في انتظار المواطن",
    Status.RESOLVED: "تم الحل",
    Status.CLOSED: "مغلق",
    Status.REOPENED: "أعيد فتحه",
}
SEVERITY_NAMES = {"critical": "حرج", "high": "عالٍ", "normal": "عادي", "low": "منخفض"}


def local_time(value: datetime | None, config: Config) -> str:
    return value.astimezone(local_timezone(config)).strftime("%Y-%m-%d %H:%M") if value else ""


def row_of(case: Case, config: Config, cipher: NumberCipher | None) -> dict:
    """What a supervisor may see of a case: times local, number masked, ID as checked-or-not."""
    number = "-"
    if case.number_encrypted:
        number = mask_number(cipher.decrypt(case.number_encrypted)) if cipher else "(encrypted)"
    row = {}
    for column in COLUMNS:
        if column == "number":
            row[column] = number
        elif column == "national_id":
            row[column] = "checked" if case.national_id_hash else "-"
        elif column == "escalated":
            row[column] = ",".join(sorted(case.escalated))
        elif column == "status":
            row[column] = case.status.value
        else:
            value = getattr(case, column)
            row[column] = local_time(value, config) if isinstance(value, datetime) else ("" if value is None else value)
    return row




def named_row(case: Case, config: Config, cipher: NumberCipher | None) -> dict:
    """``row_of`` plus the Arabic names (the desktop shows these)."""
    row = row_of(case, config, cipher)
    cases = config.cases
    sector = cases.sector(case.sector) if cases else None
    kind = cases.kinds.get(case.kind) if cases else None
    row.update(status_name=STATUS_NAMES[case.status], severity_name=SEVERITY_NAMES.get(case.severity, case.severity),
               sector_name=sector.name if sector else case.sector, kind_name=kind.name if kind else case.kind,
               is_open=case.is_open)
    return row


def event_row(event: CaseEvent, config: Config) -> dict:
    return {"at": local_time(event.at, config), "actor": event.actor, "action": event.action.value,
            "from": event.from_status.value if event.from_status else "", "to": event.to_status.value,
            "to_name": STATUS_NAMES[event.to_status], "note": event.note, "details": event.details}
