"""A missing prompt file is a clear error at start-up, not silence in a call."""

from __future__ import annotations

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
