"""Prompts and music on hold are played without transcoding.

Each prompt and the music on hold is written, beside its .wav, in every
codec the endpoints allow (ivr/prompts.py, core.contract.ENDPOINT_CODECS).
Asterisk opens the file in the channel's own format, so a G.711 call hears
them with no translation path: its channel shows ``WriteTranscode: No``
while the caller waits with music on hold (with the .wav alone it was
``WriteFormat: slin`` and ``WriteTranscode: Yes``, a slin -> u-law
translation per waiting caller).
"""

from __future__ import annotations

import re
import time

import pytest

from app.simulate import random_phone_number
from app.simulate.sipp import CallerScript
from core.contract import ENDPOINT_CODECS

pytestmark = pytest.mark.e2e


def caller_channel(hotline, caller_id: str) -> str | None:
    for line in hotline.asterisk.cli("core show channels concise").splitlines():
        fields = line.split("!")
        if len(fields) > 7 and fields[7] == caller_id and fields[0].startswith("PJSIP/"):
            return fields[0]
    return None


def test_the_files_asterisk_plays_exist_in_every_endpoint_codec(hotline):
    moh = hotline.asterisk.moh
    for codec in ENDPOINT_CODECS:
        assert (moh / f"ivr-hold.{codec}").exists(), codec
    wavs = {p.stem for p in (hotline.asterisk.sounds / "ar" / "ivr").glob("*.wav")}
    assert len(wavs) > 100
    for codec in ENDPOINT_CODECS:
        assert {p.stem for p in (hotline.asterisk.sounds / "ar" / "ivr").glob(f"*.{codec}")} == wavs, codec


def test_music_on_hold_reaches_a_waiting_caller_without_transcoding(hotline):
    number = random_phone_number()
    offered = hotline.metric("ivr_queue_offered_total", program="nasser_bank")
    # Nasser Social Bank's agents have no softphone registered: the caller waits.
    caller = hotline.sipp.call(CallerScript(number="14403", keys=((1200, "1"),), hold_ms=60_000,
                                            caller_id=number), target=hotline.carrier)
    try:
        assert hotline.wait_metric("ivr_queue_offered_total", offered + 1, timeout=60,
                                   program="nasser_bank") == offered + 1
        shown = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            name = caller_channel(hotline, number)
            shown = hotline.asterisk.cli(f"core show channel {name}") if name else ""
            if "MusicOnHold" in shown or re.search(r"Application:\s*Queue", shown):
                break
            time.sleep(0.5)
        assert re.search(r"Application:\s*Queue", shown), shown[-2000:]
        # SIPp offers PCMU only: the channel writes u-law, straight from ivr-hold.ulaw.
        assert re.search(r"WriteFormat:\s*ulaw", shown), shown[-2000:]
        assert re.search(r"WriteTranscode:\s*No", shown), shown[-2000:]
    finally:
        hotline.hang_up(number)
        caller.stop()
