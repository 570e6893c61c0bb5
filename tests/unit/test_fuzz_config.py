"""Configuration files fuzzed (issue 12, item 10).

The shipped ``config/*.yaml``, copied to a temporary folder and mutated by
Hypothesis: lines deleted, duplicated (duplicate keys), keys unknown to the
model put in, values of another type, huge values, Arabic and other Unicode,
YAML broken (a tab, an unclosed bracket or quote, a stray colon, nesting
thousands deep, aliases that refer to themselves or multiply), control
characters, bytes that are not UTF-8, a file cut short, emptied or removed.

What must hold: each folder either loads into a ``Config`` or is refused with
``ConfigError``, whose every problem names a file that exists, a line in it
(>= 1) and a field; never another exception. One problem has no line: a
required section that no file has is reported against the folder. ``ivr
check-config`` on such folders exits 0 or 2 with ``file:line: field:
message`` lines, never a traceback; and ``ivr serve`` refuses a broken
folder before it starts anything.

Replay: derandomised (the same folders every run, so a failure fails again);
a failure prints its ``@reproduce_failure(...)`` blob: paste it above the
test to replay that folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import app.cli
from core.configuration import Config, ConfigError, load_config
from core.configuration.model import Config as ConfigModel

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "config"
FILES = sorted(p.name for p in DEMO.glob("*.yaml"))
SECTIONS = set(ConfigModel.model_fields)
YAML_LINE_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")

fuzzed = settings(max_examples=100, derandomize=True, print_blob=True, database=None, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])

# Values a line's value is replaced with: other types, huge, Unicode, YAML's own traps.
VALUES = ["1", "-1", "0", "1e400", ".nan", "true", "null", "~", "[]", "{}", "[1, 2]", "{a: 1}", '""', "''",
          "x" * 100_000, "9" * 5000, "ثلاثة", "١٤٤٢", "\u202eevil", "2024-01-01", "12:30:00", "!!binary aGk=",
          "!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!local x", "*nowhere",
          "&anchor x", "!!set {a, b}", "0x1F", "0o17", "-.inf", "'unterminated", '"unterminated', "[unclosed",
          "{unclosed", "a: b: c", "- - -", "|", ">", "? complex", "@reserved", "`reserved", "%TAG", "\t\ttab"]
# Whole lines put in.
LINES = ["zz_unknown_key: 1", "  zz_unknown_key: 1", "    zz_unknown_key: [1]", "\tindented: with a tab", ":", "- -",
         "---", "...", "[" * 3000 + "]" * 3000, "x: &a [*a]", "a: &a [1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]",
         "bomb: &x0 [a]\n" + "".join(f"x{i + 1}: &x{i + 1} [*x{i}, *x{i}, *x{i}, *x{i}, *x{i}]\n" for i in range(12)),
         "\x00", "\x07bell", "\ufeffbom: 1", "key: \x85next line", "\u2028: x", "# comment only"]


@st.composite
def mutations(draw):
    """A list of (file, operation, argument) to apply to a copy of the demo folder."""
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(FILES))
        op = draw(st.sampled_from(["delete_line", "duplicate_line", "insert_line", "value", "value", "truncate",
                                   "empty", "remove", "bytes", "indent"]))
        ops.append((name, op, draw(st.integers(0, 10**6)), draw(st.sampled_from(VALUES)),
                    draw(st.sampled_from(LINES))))
    return ops


def apply(folder: Path, ops) -> None:
    for name, op, n, value, line in ops:
        path = folder / name
        if not path.exists():
            continue
        if op == "remove":
            path.unlink()
            continue
        if op == "bytes":
            data = path.read_bytes()
            at = n % (len(data) + 1)
            path.write_bytes(data[:at] + bytes([0xC3, 0x28, 0xFF]) + data[at:])
            continue
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        lines = text.split("\n")
        at = n % len(lines)
        if op == "delete_line":
            del lines[at]
        elif op == "duplicate_line":
            lines.insert(at, lines[at])
        elif op == "insert_line":
            lines.insert(at, line)
        elif op == "value":
            key, sep, _ = lines[at].partition(": ")
            lines[at] = f"{key}: {value}" if sep else lines[at] + value
        elif op == "truncate":
            lines = lines[:at]
        elif op == "empty":
            lines = []
        elif op == "indent":
            lines[at] = " " * (n % 7) + lines[at]
        path.write_text("\n".join(lines), encoding="utf-8", errors="surrogateescape")


def copy_of_demo(into: Path) -> Path:
    folder = into / "config"
    folder.mkdir()
    for name in FILES:
        shutil.copy(DEMO / name, folder / name)
    return folder


def check_problems(folder: Path, error: ConfigError) -> None:
    assert error.problems, "a ConfigError must say what is wrong"
    for problem in error.problems:
        path = Path(problem.file)
        assert path.exists(), f"{problem}: no such file"
        assert problem.field, f"{problem}: no field"
        if path.is_dir():
            # Only a section that no file has is reported against the folder.
            assert path.resolve() == folder.resolve() and problem.field in SECTIONS, str(problem)
            assert problem.line == 0 and "missing" in problem.message, str(problem)
            continue
        # Lines as YAML counts them: NEL and the Unicode separators break lines too.
        lines = len(YAML_LINE_BREAKS.split(path.read_bytes().decode("utf-8", errors="replace")))
        assert 1 <= problem.line <= lines, f"{problem}: not a line of {path.name} ({lines} lines)"


@fuzzed
@given(ops=mutations())
@example(ops=[("menus.yaml", "insert_line", 0, "", "\x00")])
@example(ops=[("hotlines.yaml", "bytes", 100, "", "")])
@example(ops=[("menus.yaml", "insert_line", 0, "", "[" * 3000 + "]" * 3000)])
@example(ops=[("menus.yaml", "insert_line", 0, "", "x: &a [*a]")])
@example(ops=[("schedules.yaml", "insert_line", 0, "", LINES[11])])   # aliases of aliases: 5**12 values
def test_a_mutated_folder_loads_or_is_refused_with_file_line_and_field(ops):
    with tempfile.TemporaryDirectory() as tmp:
        folder = copy_of_demo(Path(tmp))
        apply(folder, ops)
        try:
            config = load_config(folder)
        except ConfigError as error:
            check_problems(folder, error)
        else:
            assert isinstance(config, Config)


# --- ivr check-config and ivr serve on broken folders --------------------------------------

BROKEN = {
    "syntax": [("menus.yaml", "insert_line", 5, "", "[unclosed")],
    "not_utf8": [("hotlines.yaml", "bytes", 200, "", "")],
    "control_character": [("programs.yaml", "insert_line", 3, "", "\x07bell")],
    "unknown_key": [("service.yaml", "insert_line", 2, "", "  zz_unknown_key: 1")],
    "wrong_type": [("distribution.yaml", "value", 4, "[1, 2]", "")],
    "self_alias": [("agents.yaml", "insert_line", 0, "", "x: &a [*a]")],
    "section_missing": [("hotlines.yaml", "remove", 0, "", "")],
}
PROBLEM_LINE = re.compile(r"^  (?P<file>[^:]+):(?P<line>\d+): (?P<field>[^:]+): .+$")


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_ivr_check_config_names_file_line_and_field_never_a_traceback(tmp_path, case):
    folder = copy_of_demo(tmp_path)
    apply(folder, BROKEN[case])
    done = subprocess.run([sys.executable, "-m", "app.cli", "check-config", "--config", str(folder)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    first, *problems = done.stderr.strip().splitlines()
    assert first.startswith("configuration is not valid"), done.stderr
    assert problems and all(PROBLEM_LINE.match(p) for p in problems), done.stderr
    assert "configuration OK" not in done.stdout


def test_ivr_check_config_on_the_demo_folder_says_ok():
    done = subprocess.run([sys.executable, "-m", "app.cli", "check-config", "--config", str(DEMO)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0 and "configuration OK" in done.stdout, done.stderr


@pytest.mark.parametrize("case", ["syntax", "not_utf8", "section_missing"])
def test_ivr_serve_refuses_a_broken_folder_before_it_starts_anything(tmp_path, monkeypatch, case):
    folder = copy_of_demo(tmp_path)
    apply(folder, BROKEN[case])
    started = []

    async def serve(*args, **kwargs):
        started.append(args)

    monkeypatch.setattr(app.cli, "serve", serve)
    monkeypatch.setattr(app.cli.Paths, "from_environment", lambda: started.append("paths"))
    assert app.cli.main(["serve", "--config", str(folder)]) == 2
    assert started == [], "the engine was started on a configuration that does not load"
