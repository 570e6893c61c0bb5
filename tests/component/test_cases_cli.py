"""``ivr cases`` against a real SQLite database made by ``ivr setup``'s migration step."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from app.cli import migrate_case_database
from app.tools import cases_tool, case_store
from cases.cli import add_arguments
from core.paths import Paths
from core.privacy import NumberCipher
from core.secrets import SecretStore

T0 = datetime(2026, 3, 8, 7, 30, tzinfo=timezone.utc)   # 09:30 in Cairo


@pytest.fixture
def installed(config, tmp_path):
    paths = Paths(cache=tmp_path / "cache", state=tmp_path / "state")
    secrets = SecretStore(paths.secrets_file)
    secrets.ensure(config)
    said = []
    migrate_case_database(config, paths, secrets, say=said.append)
    assert said == [f"Case database sqlite+pysqlite:///{paths.state / 'cases.sqlite3'}: schema empty -> 0003"]
    migrate_case_database(config, paths, secrets, say=said.append)
    assert said[-1].endswith("schema current (0003)")
    store = case_store(config, paths, secrets)
    cipher = NumberCipher(secrets.cases_key())
    return paths, store, cipher


def run(config, paths, *argv):
    """``ivr cases <argv>``; the demo has two tenants, so ``--tenant mss`` is
    given unless the test names one (or tests its absence with ``--tenant ''``)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    argv = list(argv)
    if "--tenant" not in argv:
        argv += ["--tenant", "mss"]
    code = cases_tool(parser.parse_args(argv), config, paths, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_list_show_update_export(config, installed):
    paths, store, cipher = installed
    case = store.register(tenant="mss", sector="takaful_karama", kind="grievance", severity="high",
                          actor="agent01", at=T0, subject="تظلم من إيقاف الدعم",
                          number_encrypted=cipher.encrypt("01001234567"), national_id_hash="h" * 64)
    store.register(tenant="mss", sector="forsa", kind="inquiry", severity="low", actor="agent02",
                   at=T0 + timedelta(hours=1))
    code, out, err = run(config, paths, "list")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and lines[1].startswith(case.reference) and "2026-03-08 09:30" in lines[1]
    code, out, _ = run(config, paths, "list", "--sector", "forsa", "--format", "json")
    assert [c["sector"] for c in json.loads(out)["cases"]] == ["forsa"]

    code, out, _ = run(config, paths, "update", case.reference, "start", "--as", "agent01", "--note", "اتصلت")
    assert (code, out.strip()) == (0, f"case {case.reference}: in_progress (version 2)")
    # A post made on version 1 (what the supervisor read before) is refused: nothing saved.
    code, _, err = run(config, paths, "update", case.reference, "note", "--note", "late", "--version", "1")
    assert code == 2 and "changed by somebody else" in err
    code, _, err = run(config, paths, "update", case.reference, "close")
    assert code == 2 and "cannot close a case that is in_progress" in err

    code, out, _ = run(config, paths, "show", case.reference, "--format", "json")
    shown = json.loads(out)
    assert shown["case"]["status"] == "in_progress" and shown["case"]["version"] == 2
    assert shown["case"]["number"] == "*********67" and shown["case"]["national_id"] == "checked"
    assert [(h["action"], h["from"], h["to"], h["actor"], h["note"]) for h in shown["history"]] == [
        ("register", "", "new", "agent01", ""), ("start", "new", "in_progress", "agent01", "اتصلت")]
    code, out, _ = run(config, paths, "show", case.reference)
    assert "*********67" in out and "01001234567" not in out

    code, out, _ = run(config, paths, "export", "--from", "2026-03-08", "--to", "2026-03-08")
    assert code == 0 and out.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(out[1:])))
    assert [r["reference"] for r in rows][-1] == case.reference and len(rows) == 2
    assert all("01001234567" not in v for r in rows for v in r.values())
    assert rows[-1]["subject"] == "تظلم من إيقاف الدعم"
    code, out, _ = run(config, paths, "export", "--from", "2026-03-09")
    assert len(list(csv.DictReader(io.StringIO(out[1:])))) == 0


@pytest.mark.parametrize("argv,message", [
    (("show",), "needs a reference number"),
    (("show", "12345"), "not a reference number (length)"),
    (("show", "123456789"), "not a reference number (check_digit)"),
    (("show", "123456786"), "no case 123456786 (for tenant mss)"),
    (("list", "--tenant", "mosh"), "unknown tenant 'mosh'"),
    (("update", "123456786"), "needs an action"),
])
def test_usage_errors_exit_2_and_say_why(config, installed, argv, message):
    paths, _, _ = installed
    code, _, err = run(config, paths, *argv)
    assert code == 2 and message in err, err


def test_an_unmigrated_database_is_said_and_exits_1(config, tmp_path):
    paths = Paths(cache=tmp_path / "cache", state=tmp_path / "state")
    SecretStore(paths.secrets_file).ensure(config)
    code, _, err = run(config, paths, "list")
    assert code == 1 and "schema at revision none" in err and "run `ivr setup`" in err
