"""Classic AGI (pyst2, one process per call) runs the same flows as FastAGI.

The real ``ivr-agi`` script runs as a subprocess; the test plays Asterisk on
its stdin/stdout, exactly as res_agi does for AGI(script,...).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("ivr-agi")
FERNET_KEY = base64.urlsafe_b64encode(b"c" * 32).decode()   # the shape of a Fernet key
ENV_LINES = [
    "agi_request: ivr-agi", "agi_channel: PJSIP/anonymous-00000001", "agi_language: ar",
    "agi_type: PJSIP", "agi_uniqueid: 1732467000.77", "agi_callerid: 0862345678",
    "agi_calleridname: unknown", "agi_context: ivr-answer", "agi_extension: s", "agi_priority: 6",
]


class FakeAsterisk:
    def __init__(self, tmp_path: Path, *args: str):
        state = tmp_path / "state"
        state.mkdir()
        # What `ivr setup` gives the script inside Asterisk's root: its three keys.
        (state / "secrets.json").write_text(json.dumps({"hmac:national_id": "k" * 32,
                                                        "hmac:caller_number": "n" * 32,
                                                        "fernet:callbacks": FERNET_KEY}))
        env = dict(os.environ, IVR_STATE_DIR=str(state))
        # A Redis port nobody listens on: the script must cope (facts in memory).
        env["IVR_CONFIG_DIR"] = str(Path(__file__).resolve().parents[2] / "config")
        self.proc = subprocess.Popen([str(SCRIPT), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.commands: list[str] = []
        # The deadlines the script keeps on itself (TIMEOUT(absolute)), answered
        # as Asterisk does and kept apart from the flow's commands.
        self.deadlines: list[int] = []
        for line in ENV_LINES + [f"agi_arg_{n}: {a}" for n, a in enumerate(args, 1)] + [""]:
            self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def command(self) -> str:
        while True:
            line = self.proc.stdout.readline()
            assert line, f"the script ended early: {self.proc.stderr.read()[-2000:]}"
            if line.startswith('SET VARIABLE "TIMEOUT(absolute)" '):
                self.deadlines.append(int(line.split()[-1].strip('"')))
                self.reply("200 result=1")
                continue
            self.commands.append(line.strip())
            return line.strip()

    def reply(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self) -> tuple[int, str]:
        self.proc.stdin.close()
        code = self.proc.wait(timeout=30)
        return code, self.proc.stderr.read()


@pytest.fixture
def script_exists():
    if not SCRIPT.exists():
        pytest.skip("ivr-agi is installed by `pip install -e .`")


def test_a_direct_line_call_routes_to_its_queue(tmp_path, script_exists):
    ast = FakeAsterisk(tmp_path, "hotline", "14403")
    assert ast.command() == 'STREAM FILE ivr/request-types "0123456789*#" 0'
    ast.reply("200 result=50 endpos=1200")  # key 2: complaint
    variables = {}
    while True:
        cmd = ast.command()
        if cmd.startswith("SET VARIABLE"):
            _, _, name, value = cmd.split(" ", 3)
            variables[name.strip('"')] = value.strip('"')
            ast.reply("200 result=1")
        elif cmd.startswith("EXEC MSet "):                # several variables in one command
            for pair in cmd[len("EXEC MSet "):].strip('"').split(","):
                name, _, value = pair.partition("=")
                variables[name] = value
            ast.reply("200 result=0")
        elif cmd.startswith("STREAM FILE ivr/transfer"):
            ast.reply("200 result=0 endpos=8000")
            break
        else:
            pytest.fail(f"unexpected command {cmd}")
    code, stderr = ast.finish()
    assert code == 0, stderr
    # A deadline before the first step: the request-types prompt's (no file
    # here: an unknown length, 30 s, plus the slack and the headroom); it
    # still covers the transfer prompt that follows at once.
    assert ast.deadlines == [38]
    assert variables["IVR_QUEUE"] == "nasser_bank"
    assert variables["__IVR_REQUEST_TYPE"] == "complaint"
    assert variables["__IVR_GOVERNORATE"] == "minya"  # 086 landline
    # The caller number never reaches the script's log unmasked.
    assert "0862345678" not in stderr


def test_a_caller_who_hangs_up_ends_the_script_cleanly(tmp_path, script_exists):
    ast = FakeAsterisk(tmp_path, "hotline", "14403")
    assert ast.command().startswith("STREAM FILE ivr/request-types")
    ast.reply("200 result=-1 endpos=0")
    assert ast.command() == "CHANNEL STATUS"
    ast.reply("200 result=-1")
    code, stderr = ast.finish()
    assert code == 0, stderr
    assert "hung up" in stderr
    assert not any(c.startswith(("SET VARIABLE", "EXEC")) for c in ast.commands)


def test_an_unknown_route_leaves_the_call_to_the_dialplan(tmp_path, script_exists):
    ast = FakeAsterisk(tmp_path, "nosuch")
    code, stderr = ast.finish()
    assert code == 0 and "unknown route" in stderr
    assert ast.commands == []
