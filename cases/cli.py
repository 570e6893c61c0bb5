"""``ivr cases``: supervisors list, read, update and export cases.

    ivr cases list   [--tenant T] [--status S ...] [--sector S] [--severity S] [--assignee A]
                     [--escalated] [--limit N] [--offset N] [--format text|json|csv]
    ivr cases show   <reference> [--tenant T] [--format text|json]   the case and its audit trail
    ivr cases update <reference> <action> [--assignee A] [--severity S] [--kind K] [--sector S]
                     [--note TEXT] [--as WHO] [--version N]
    ivr cases export [--tenant T] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--format csv|json]
    ivr cases report --month YYYY-MM [--tenant T] [--format text|csv|json] [--bidi auto|visual|logical]
                     the month's per-sector performance (cases/report.py)

``action`` is one of the state machine's (``assign``, ``start``,
``wait_for_citizen``, ``resolve``, ``close``, ``reopen``) or ``note`` and
``reclassify``. ``--version`` is the version the supervisor read (``show``
prints it): if the case has changed since, nothing is saved. ``--as`` names
who makes the change in the audit trail (default ``supervisor``).

``--tenant`` may be left out when the configuration has one tenant. Times
are the hotlines' local time (Cairo). The caller's number is never printed
in clear: masked (``*********67``) in every format. ``export`` writes every
matching case (paged through the database, newest first) as CSV with a
UTF-8 byte-order mark, so that a spreadsheet opens the Arabic right.

Exit status: 0 done (an empty list too); 1 the database is unreachable or not
migrated (``ivr setup``); 2 a usage error: unknown tenant or reference, a
transition the state machine refuses, a conflict with a newer version.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from datetime import date, datetime, time as dtime, timedelta, timezone
from typing import Callable, TextIO

from core.configuration import Config
from core.errors import Unreachable
from core.hours import local_timezone
from core.privacy import NumberCipher
from metrics.report import choose_bidi

from . import model
from .model import Case, TransitionRefused
from .reference import BadReference, check_reference
from .store import MAX_PAGE, CaseConflict, CaseNotFound, CaseStore
from .report import month_bounds, monthly_report, write_report
from .views import COLUMNS, event_row, local_time, row_of

CASE_ACTIONS = ("list", "show", "update", "export", "report")
UPDATE_ACTIONS = ("assign", "start", "wait_for_citizen", "resolve", "close", "reopen", "note", "reclassify")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=CASE_ACTIONS)
    p.add_argument("reference", nargs="?", help="(show, update) the case's reference number")
    p.add_argument("update", nargs="?", metavar="update_action", choices=UPDATE_ACTIONS,
                   help="(update) " + ", ".join(UPDATE_ACTIONS))
    p.add_argument("--tenant")
    p.add_argument("--status", action="append", default=[], choices=[s.value for s in model.Status])
    p.add_argument("--sector")
    p.add_argument("--severity")
    p.add_argument("--kind")
    p.add_argument("--assignee")
    p.add_argument("--escalated", action="store_true", help="(list) only cases past a deadline")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--from", dest="date_from", type=date.fromisoformat)
    p.add_argument("--to", dest="date_to", type=date.fromisoformat, help="(export) last day included")
    p.add_argument("--note", default="")
    p.add_argument("--as", dest="actor", default="supervisor")
    p.add_argument("--version", type=int)
    p.add_argument("--format", choices=("text", "json", "csv"), default=None)
    p.add_argument("--month", help="(report) YYYY-MM, Cairo time")
    p.add_argument("--bidi", choices=("auto", "visual", "logical"), default="auto",
                   help="(report, text) how to lay out the Arabic for this terminal (as `ivr report`)")


class UsageError(Exception):
    pass


def run_cases_command(args, config: Config, *, store_factory: Callable[[], CaseStore],
                      cipher: NumberCipher | None = None, out: TextIO | None = None, err: TextIO | None = None,
                      now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if config.cases is None:
        print("ivr cases: no `cases:` section in the configuration (config/cases.yaml)", file=err)
        return 2
    tenant = ""
    try:
        tenant = _tenant(args, config)
        reference = _reference(args)
        store = store_factory()
        if args.action == "list":
            cases = store.list(tenant, status=args.status, sector=args.sector, severity=args.severity,
                               assignee=args.assignee, escalated=True if args.escalated else None,
                               limit=args.limit, offset=args.offset)
            _write(cases, config, cipher, args.format or "text", out)
        elif args.action == "export":
            _write(list(_export(store, tenant, args, config)), config, cipher, args.format or "csv", out)
        elif args.action == "report":
            if not args.month:
                raise UsageError("`ivr cases report` needs --month YYYY-MM")
            try:
                month_bounds(args.month, config)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            report = monthly_report(store.engine, config, tenant=tenant, month=args.month)
            write_report(report, config, args.format or "text", out, bidi=choose_bidi(args.bidi, out))
        elif args.action == "show":
            _show(store.get(tenant, reference), store.history(tenant, reference), config, cipher,
                  args.format or "text", out)
        else:
            case = store.transition(tenant, reference, _step(args, config, now()), expected_version=args.version)
            print(f"case {case.reference}: {case.status.value} (version {case.version})", file=out)
        return 0
    except Unreachable as exc:
        print(f"ivr cases {args.action}: {exc}", file=err)
        return 1
    except CaseNotFound as exc:
        print(f"ivr cases {args.action}: {exc} (for tenant {tenant})", file=err)
        return 2
    except (UsageError, BadReference, TransitionRefused, CaseConflict, model.InvalidCase) as exc:
        text = f"not a reference number ({exc.reason})" if isinstance(exc, BadReference) else str(exc)
        print(f"ivr cases {args.action}: {text}", file=err)
        return 2


def _tenant(args, config: Config) -> str:
    tenants = [t.id for t in config.cases.tenants]
    if args.tenant is None:
        if len(tenants) > 1:
            raise UsageError(f"--tenant is needed: one of {', '.join(tenants)}")
        return tenants[0]
    if args.tenant not in tenants:
        raise UsageError(f"unknown tenant {args.tenant!r}: one of {', '.join(tenants)}")
    return args.tenant


def _reference(args) -> str | None:
    if args.action in ("show", "update"):
        if not args.reference:
            raise UsageError(f"`ivr cases {args.action}` needs a reference number (`ivr cases list` shows them)")
        return check_reference(args.reference)
    if args.reference:
        raise UsageError(f"`ivr cases {args.action}` takes no reference")
    return None


def _step(args, config: Config, at: datetime):
    what = args.update
    if what is None:
        raise UsageError("`ivr cases update <reference>` needs an action: " + ", ".join(UPDATE_ACTIONS))
    who, note = args.actor, args.note
    if what == "assign":
        return lambda c: model.assign(c, assignee=args.assignee or "", actor=who, at=at, note=note)
    if what == "note":
        return lambda c: model.add_note(c, actor=who, at=at, note=note)
    if what == "reclassify":
        return lambda c: model.reclassify(config.cases, c, actor=who, at=at, severity=args.severity,
                                          kind=args.kind, sector=args.sector, note=note)
    step = getattr(model, what)
    return lambda c: step(c, actor=who, at=at, note=note)


def _export(store: CaseStore, tenant: str, args, config: Config):
    tz = local_timezone(config)
    start = datetime.combine(args.date_from, dtime(0), tz) if args.date_from else None
    end = None
    if args.date_to:
        end = datetime.combine(args.date_to + timedelta(days=1), dtime(0), tz)
    offset = 0
    while True:
        page = store.list(tenant, status=args.status, sector=args.sector, severity=args.severity,
                          created_from=start, created_to=end, limit=MAX_PAGE, offset=offset)
        yield from page
        if len(page) < MAX_PAGE:
            return
        offset += MAX_PAGE


def _write(cases: list[Case], config: Config, cipher, fmt: str, out: TextIO) -> None:
    rows = [row_of(c, config, cipher) for c in cases]
    if fmt == "json":
        json.dump({"cases": rows}, out, ensure_ascii=False, indent=1)
        out.write("\n")
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        out.write("\ufeff" + buffer.getvalue())
    elif not rows:
        print("no cases", file=out)
    else:
        for r in rows:
            flag = " !" + r["escalated"] if r["escalated"] else ""
            print(f"{r['reference']}  {r['created_at']}  {r['status']:<19} {r['severity']:<8} {r['kind']:<9} "
                  f"{r['sector']:<16} {r['assignee'] or '-':<10}{flag}  {r['subject'][:40]}", file=out)


def _show(case: Case, history: list[model.CaseEvent], config: Config, cipher, fmt: str, out: TextIO) -> None:
    row = row_of(case, config, cipher)
    trail = [event_row(e, config) for e in history]
    if fmt == "json":
        json.dump({"case": row, "history": trail}, out, ensure_ascii=False, indent=1)
        out.write("\n")
        return
    for column in COLUMNS:
        print(f"{column:>19}: {row[column]}", file=out)
    print("history:", file=out)
    for e in trail:
        moved = f"{e['from'] or '-'} -> {e['to']}" if e["from"] != e["to"] else e["to"]
        extra = "; ".join(x for x in (e["note"], e["details"].replace("\n", "; ")) if x)
        print(f"  {e['at']}  {e['actor']:<12} {e['action']:<17} {moved}{'  ' + extra if extra else ''}", file=out)
