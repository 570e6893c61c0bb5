"""Recorded AMI sessions: what a real Asterisk sent, kept as test data.

A :class:`SessionRecorder` writes every AMI event the engine receives, and
every action it sends with the messages that answered it, as JSON lines
(``{"kind": "event", "headers": {...}}`` and ``{"kind": "reply", "action":
{...}, "messages": [{...}, ...]}``). The end-to-end tests record one file
per test when ``IVR_AMI_RECORD=<folder>`` is set (``tests/e2e/conftest.py``);
``tests/data/ami/`` holds sessions recorded that way, which
``read_session`` gives back to the parser and consumer tests.

Recording is for tests only: a session holds caller numbers (the tests'
made-up ones), so nothing in the engine records unless told to.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any


def _plain(message: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(message).items()}


class SessionRecorder:
    """Appends to ``<folder>/<name>.jsonl``; ``name_of()`` names the file of
    the moment (the tests: the test that is running)."""

    def __init__(self, folder: Path, *, name_of: Callable[[], str] = lambda: "session"):
        self._folder = Path(folder)
        self._folder.mkdir(parents=True, exist_ok=True)
        self._name_of = name_of
        self._lock = threading.Lock()

    def _write(self, record: dict) -> None:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", self._name_of() or "session")[:150]
        line = json.dumps(record, ensure_ascii=False, sort_keys=True)
        with self._lock, (self._folder / f"{name}.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def event(self, message: Mapping[str, Any]) -> None:
        self._write({"kind": "event", "headers": _plain(message)})

    def reply(self, action: Mapping[str, Any], reply: Any) -> None:
        messages = reply if isinstance(reply, (list, tuple)) else [reply] if reply is not None else []
        fields = {str(k): (v if isinstance(v, list) else str(v)) for k, v in action.items()}
        self._write({"kind": "reply", "action": fields, "messages": [_plain(m) for m in messages]})


def pytest_test_name() -> str:
    """The running test's file and name, from pytest's own environment variable."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    if not current:
        return "between-tests"
    path, _, rest = current.partition("::")
    return Path(path).stem + "__" + rest.split(" ")[0]


def read_session(path: Path) -> Iterator[dict]:
    """The records of a recorded session, in the order they were received."""
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)
