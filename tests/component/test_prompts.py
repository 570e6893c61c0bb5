"""Prompt synthesis with the real espeak-ng and sox (no Asterisk needed)."""

from __future__ import annotations

import shutil
import wave

import pytest

from ivr.prompts import PromptLibrary

pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                reason="espeak-ng and sox are installed by `make test`")

PROMPTS = {"welcome": "أَهْلًا بِكُمْ", "invalid-option": "عَفْوًا، هَذَا الِاخْتِيَارُ غَيْرُ صَحِيح."}


def library(tmp_path, overrides=None):
    return PromptLibrary(sounds_dir=tmp_path / "sounds", cache_dir=tmp_path / "cache", overrides_dir=overrides)


def test_prompts_are_8khz_mono_wav_with_ulaw_beside_them(tmp_path):
    lib = library(tmp_path)
    built = lib.build(PROMPTS)
    assert {b.prompt_id for b in built} == set(PROMPTS)
    for b in built:
        assert b.path.parent == tmp_path / "sounds" / "ar" / "ivr"
        with wave.open(str(b.path)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            assert w.getnframes() > 8000 * 0.3  # real speech, not an empty file
        ulaw = b.path.with_suffix(".ulaw")
        # u-law is one byte per sample at the same rate.
        with wave.open(str(b.path)) as w:
            assert abs(ulaw.stat().st_size - w.getnframes()) <= 1
        # So is A-law, the other codec the endpoints allow (pjsip.conf allow=ulaw,alaw).
        alaw = b.path.with_suffix(".alaw")
        with wave.open(str(b.path)) as w:
            assert abs(alaw.stat().st_size - w.getnframes()) <= 1
        assert alaw.read_bytes() != ulaw.read_bytes()
    assert lib.missing(PROMPTS) == []
    assert lib.missing(["nope"]) == ["nope"]


def test_second_build_reuses_the_cache_and_a_changed_text_is_synthesized_again(tmp_path):
    lib = library(tmp_path)
    assert {b.source for b in lib.build(PROMPTS)} == {"synthesized"}
    assert {b.source for b in lib.build(PROMPTS)} == {"cached"}
    changed = dict(PROMPTS, welcome="مَرْحَبًا")
    sources = {b.prompt_id: b.source for b in lib.build(changed)}
    assert sources == {"welcome": "synthesized", "invalid-option": "cached"}


def test_a_recorded_file_overrides_the_synthesized_one(tmp_path):
    recordings = tmp_path / "recorded"
    recordings.mkdir()
    # A 44.1 kHz stereo "recording": the library converts it for Asterisk.
    import subprocess
    subprocess.run(["sox", "-n", "-r", "44100", "-c", "2", str(recordings / "welcome.wav"),
                    "synth", "1.5", "sine", "300"], check=True)
    built = {b.prompt_id: b for b in library(tmp_path, recordings).build(PROMPTS)}
    assert built["welcome"].source == "recorded"
    assert built["invalid-option"].source == "synthesized"
    with wave.open(str(built["welcome"].path)) as w:
        assert (w.getframerate(), w.getnchannels()) == (8000, 1)
        assert abs(w.getnframes() - 12000) < 200


def test_every_endpoint_codec_has_its_file_beside_each_prompt_and_the_music(tmp_path):
    """Asterisk streams a file without transcoding only if one exists in the
    call's codec: one per codec the generated pjsip.conf allows."""
    from core.contract import ENDPOINT_CODECS
    from dialplans.generate import _codecs
    from ivr.prompts import build_music_on_hold

    assert f"allow={','.join(ENDPOINT_CODECS)}" in _codecs()
    built = library(tmp_path).build(PROMPTS)
    for b in built:
        assert {p.suffix for p in b.path.parent.glob(f"{b.prompt_id}.*")} == {".wav"} | {
            f".{c}" for c in ENDPOINT_CODECS}
    moh = build_music_on_hold(tmp_path / "moh")
    with wave.open(str(moh)) as w:
        frames = w.getnframes()
    for codec in ENDPOINT_CODECS:
        assert abs((tmp_path / "moh" / f"ivr-hold.{codec}").stat().st_size - frames) <= 1
    # An install from before the encodings (the .wav alone) gets them at the next setup.
    for codec in ENDPOINT_CODECS:
        (tmp_path / "moh" / f"ivr-hold.{codec}").unlink()
    build_music_on_hold(tmp_path / "moh")
    assert all((tmp_path / "moh" / f"ivr-hold.{codec}").exists() for codec in ENDPOINT_CODECS)
