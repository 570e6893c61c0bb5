"""The desktop's form posts, checked before anything is done with them.

A post is a JSON object; each function returns a typed request or raises
:class:`FormError` naming the field and saying, in Arabic for the agent's
screen and in English for the log, what is wrong. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cases.model import Action
from cases.reference import BadReference, check_reference
from core.configuration import Config

MAX_SUBJECT = 200
MAX_NOTE = 2000
# What an agent may do to a case from the desktop (assign is the supervisors').
UPDATE_ACTIONS = (Action.START.value, Action.WAIT_FOR_CITIZEN.value, Action.RESOLVE.value, Action.CLOSE.value,
                  Action.REOPEN.value, Action.NOTE.value)


class FormError(ValueError):
    def __init__(self, field: str, message: str, arabic: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.arabic = arabic


@dataclass(frozen=True)
class SignIn:
    agent_id: str
    password: str


@dataclass(frozen=True)
class NewCase:
    kind: str
    sector: str
    severity: str
    subject: str
    note: str
    call_id: str | None


@dataclass(frozen=True)
class CaseUpdate:
    action: str
    note: str
    version: int | None


def _object(data: Any) -> dict:
    if not isinstance(data, dict):
        raise FormError("body", "expected a JSON object", "البيانات المرسلة غير صالحة")
    return data


def _text(data: dict, field: str, *, limit: int, required: bool, arabic_name: str) -> str:
    value = data.get(field, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise FormError(field, "expected text", f"{arabic_name}: قيمة غير صالحة")
    value = value.strip()
    if required and not value:
        raise FormError(field, "required", f"{arabic_name}: مطلوب")
    if len(value) > limit:
        raise FormError(field, f"longer than {limit} characters", f"{arabic_name}: أطول من {limit} حرفًا")
    return value


def _choice(data: dict, field: str, choices, arabic_name: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or value not in choices:
        raise FormError(field, f"expected one of {', '.join(choices)}", f"{arabic_name}: اختيار غير صالح")
    return value


def sign_in(data: Any) -> SignIn:
    data = _object(data)
    agent_id = _text(data, "agent", limit=16, required=True, arabic_name="رقم الموظف")
    password = data.get("password")
    if not isinstance(password, str) or not password or len(password) > 200:
        raise FormError("password", "required", "كلمة المرور: مطلوبة")
    return SignIn(agent_id, password)


def new_case(data: Any, config: Config, tenant: str) -> NewCase:
    data = _object(data)
    cases = config.cases
    sectors = [s.id for s in cases.sectors if s.tenant == tenant]
    call_id = data.get("call_id") or None
    if call_id is not None and (not isinstance(call_id, str) or len(call_id) > 64):
        raise FormError("call_id", "expected a call id", "المكالمة: قيمة غير صالحة")
    return NewCase(
        kind=_choice(data, "kind", list(cases.kinds), "نوع الطلب"),
        sector=_choice(data, "sector", sectors, "الجهة"),
        severity=_choice(data, "severity", list(cases.deadlines), "الأهمية"),
        subject=_text(data, "subject", limit=MAX_SUBJECT, required=True, arabic_name="الموضوع"),
        note=_text(data, "note", limit=MAX_NOTE, required=False, arabic_name="ملاحظات"),
        call_id=call_id)


@dataclass(frozen=True)
class QueuePage:
    sector: str
    limit: int
    offset: int


def queue_page(query, config: Config, tenant: str) -> QueuePage:
    """``?sector=<id>&limit=<n>&offset=<n>`` of a work-queue request."""
    sectors = [s.id for s in config.cases.sectors if s.tenant == tenant]
    sector = query.get("sector", "")
    if sector not in sectors:
        raise FormError("sector", f"expected one of {', '.join(sectors)}", "الجهة: اختيار غير صالح")
    numbers = {}
    for field, default, top in (("limit", 50, 200), ("offset", 0, 10 ** 7)):
        text = query.get(field, str(default))
        if not text.isdigit() or int(text) > top:
            raise FormError(field, f"expected a whole number up to {top}", "رقم الصفحة غير صالح")
        numbers[field] = int(text)
    return QueuePage(sector, max(1, numbers["limit"]), numbers["offset"])


def reference(text: str) -> str:
    try:
        return check_reference(text)
    except BadReference as exc:
        raise FormError("reference", str(exc), "رقم البلاغ غير صحيح") from None


def case_update(data: Any) -> CaseUpdate:
    data = _object(data)
    action = _choice(data, "action", UPDATE_ACTIONS, "الإجراء")
    note = _text(data, "note", limit=MAX_NOTE, required=action == Action.NOTE.value, arabic_name="ملاحظات")
    version = data.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        raise FormError("version", "expected a positive whole number", "الإصدار: قيمة غير صالحة")
    return CaseUpdate(action=action, note=note, version=version)
