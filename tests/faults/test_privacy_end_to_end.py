"""Privacy end to end (issue 12, item 16): calls with known numbers and
national IDs, then everything the system wrote is searched for them.

Callers with known numbers dial 1442, one gives a national ID and asks for a
callback from the queue, another waits and hangs up. The engine runs at
DEBUG. Searched afterwards: the engine's log, every file in Asterisk's log
folder (messages, queue_log; no CDRs are kept) and its AstDB, every Redis key
and value, /metrics, the wallboard (page and JSON), and the tools' outputs
(`ivr report`, `ivr callbacks list`, `ivr staffing`). Not one unmasked
number or ID may appear.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone

from app.simulate.sipp import CallerScript, typed_keys
from core.paths import REPO_ROOT

from fault_stack import PREFIX, clear_members, wait_until

# Two callers: their numbers as the carrier sends them, and one national ID.
NUMBERS = ("01001234567", "01119876543")
NATIONAL_ID = "29001012500015"   # valid: born 1990-01-01, registered in Assiut


def needles() -> list[str]:
    """What must never appear: each number's national significant part (it
    is in every written form: 010..., 2010..., +2010..., 002010...) and the ID."""
    return [n[1:] for n in NUMBERS] + [NATIONAL_ID]


def redis_dump(client) -> str:
    out = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        out.append(key.decode(errors="replace"))
        if kind == "string":
            out.append(repr(client.get(key)))
        elif kind == "hash":
            out.append(repr(client.hgetall(key)))
        elif kind == "list":
            out.append(repr(client.lrange(key, 0, -1)))
        elif kind == "set":
            out.append(repr(client.smembers(key)))
        elif kind == "zset":
            out.append(repr(client.zrange(key, 0, -1, withscores=True)))
        elif kind == "stream":
            out.append(repr(client.xrange(key)))
    return "\n".join(out)


def http(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode(errors="replace")


def tool(stack, *args: str) -> str:
    command, *rest = args
    result = subprocess.run([sys.executable, "-m", "app.cli", command, "--config", str(stack.config_dir), *rest],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    return result.stdout + result.stderr


def test_no_number_or_national_id_is_written_anywhere_unmasked(stack):
    clear_members(stack)
    # The first caller: Takaful & Karama (1), an inquiry (1), the national ID
    # typed and confirmed, then, waiting in the queue, the callback key (1)
    # and their own number confirmed (1).
    keys = ((1500, "1"), (2500, "1")) + typed_keys(NATIONAL_ID, 3000) + ((2500, "1"),) + ((12_000, "1"),
                                                                                          (4000, "1"))
    with_id = stack.sipp.call(CallerScript(number="1442", keys=keys, hold_ms=25_000, caller_id=NUMBERS[0]),
                              target=stack.carrier)
    # The second: Forsa (6), an inquiry (1), waits, hangs up.
    waits = stack.sipp.call(CallerScript(number="1442", keys=((1500, "6"), (2500, "1")), hold_ms=20_000,
                                         caller_id=NUMBERS[1]), target=stack.carrier)
    with_id.wait(timeout=120)
    waits.wait(timeout=120)
    assert wait_until(lambda: stack.redis.scard(f"{PREFIX}callbacks:active") >= 1, 30), \
        "the first caller's callback was not registered"
    since = time.time() - 120
    assert wait_until(lambda: len(stack.records_since(since)) >= 2, 60)
    s = stack.config.service
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    written = {
        "engine log (DEBUG)": stack.engine.log.read_text(errors="replace"),
        "Redis": redis_dump(stack.redis),
        "/metrics": http(f"http://{s.metrics.host}:{s.metrics.port}/metrics"),
        "wallboard": http(f"http://{s.wallboard.host}:{s.wallboard.port}/")
        + http(f"http://{s.wallboard.host}:{s.wallboard.port}/wallboard.json"),
        "ivr report": tool(stack, "report", "--tenant", "mss", "--month", month, "--format", "csv"),
        "ivr callbacks list": tool(stack, "callbacks", "list", "--format", "json"),
        "ivr staffing": tool(stack, "staffing", "--tenant", "mss", "--format", "json"),
    }
    for path in sorted(stack.asterisk.log_dir.rglob("*")):
        if path.is_file():
            written[f"Asterisk {path.name}"] = path.read_text(errors="replace")
    astdb = stack.asterisk.root / "var" / "lib" / "asterisk" / "astdb.sqlite3"
    if astdb.exists():
        written["Asterisk AstDB"] = astdb.read_bytes().decode("latin-1")
    found = {(where, needle) for where, text in written.items() for needle in needles() if needle in text}
    assert found == set(), sorted(found)
    # Nor the engine's AMI secret (panoramisk logged a failed Login whole; the
    # AMI cut earlier in this session makes such failures).
    from core.paths import Paths
    from core.secrets import SecretStore

    ami_secret = SecretStore(Paths.from_environment().secrets_file).ami_secret(stack.config)
    assert len(ami_secret) >= 16
    assert [where for where, text in written.items() if ami_secret in text] == []
    # The tools said something (a report of this month's calls, the callback listed, masked).
    assert "1442" in written["ivr report"], written["ivr report"][-500:]
    listed = written["ivr callbacks list"]
    callbacks = json.loads(listed[listed.index("{"):])["callbacks"]
    assert any(cb["number"].endswith("67") for cb in callbacks), callbacks
