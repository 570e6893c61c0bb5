"""A missing prompt file is a clear error at start-up, not silence in a call; missing
holiday data is a warning in the log."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from app.cli import serve
from core.configuration import load_config
from core.paths import REPO_ROOT, Paths
from ivr.prompts import all_prompt_texts


async def test_serve_refuses_to_start_when_a_prompt_file_is_missing(tmp_path, monkeypatch):
    root = tmp_path / "asterisk-root"
    sounds = root / "usr" / "share" / "asterisk" / "sounds" / "ar" / "ivr"
    sounds.mkdir(parents=True)
    config = load_config(REPO_ROOT / "config")
    # Every prompt but one is there.
    ids = sorted(all_prompt_texts(config))
    for prompt_id in ids[1:]:
        (sounds / f"{prompt_id}.wav").write_bytes(b"RIFF")
    monkeypatch.setenv("IVR_ASTERISK_ROOT", str(root))
    with pytest.raises(SystemExit) as exc:
        await serve(config, Paths(cache=tmp_path / "cache", state=tmp_path / "state"))
    message = str(exc.value)
    assert "missing prompt file" in message and ids[0] in message and "ivr setup" in message


async def test_serve_warns_at_start_when_the_coming_days_have_no_holiday_data(tmp_path, monkeypatch, caplog):
    # The same warning as `ivr check-config`, logged before anything else is
    # checked (here the engine then stops on its missing prompts).
    monkeypatch.setenv("IVR_ASTERISK_ROOT", str(tmp_path / "asterisk-root"))
    config = load_config(REPO_ROOT / "config")
    paths = Paths(cache=tmp_path / "cache", state=tmp_path / "state")
    with caplog.at_level(logging.WARNING, logger="ivr"), pytest.raises(SystemExit):
        await serve(config, paths, today=date(2077, 9, 1))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in warnings if w.startswith("schedules.ministry: no holiday data for 2077-11-17 to 2077-11-29")]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ivr"), pytest.raises(SystemExit):
        await serve(config, paths, today=date(2026, 12, 1))
    assert not [r for r in caplog.records if "holiday data" in r.getMessage()]
