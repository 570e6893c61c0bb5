"""Arabic prompts: synthesized from the YAML texts, overridable by recordings.

Each prompt id becomes ``<sounds>/ar/ivr/<id>.wav`` (8 kHz, mono, 16-bit, what
Asterisk plays without resampling) plus the same audio pre-encoded in every
codec the SIP endpoints allow (``core.contract.ENDPOINT_CODECS``: ``.ulaw``
and ``.alaw``, raw G.711) beside it. Asterisk opens the format that costs
least to translate into the channel's: a u-law or an A-law call (Egypt's
carriers use A-law) streams the file with no transcoding at all. The music
on hold (``build_music_on_hold``) gets the same.

Synthesis runs espeak-ng's Arabic voice and sox, once per distinct
(text, voice): the result is cached under a hash of both, so a rebuild after
an unrelated config change costs nothing. A recorded file
``config/sounds/ar/<id>.wav`` (any rate; sox converts it) replaces the
synthesized one. No TTS ever runs during a call.

The Arabic number fragments are synthesized from fully vowelled text
(``core.arabic.numbers.FRAGMENT_SPEECH``; tashkeel makes espeak-ng say مئة as
"mi'atu", not "m't"); their written form stays ``FRAGMENT_TEXTS``.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from core.configuration import Config
from core.contract import ENDPOINT_CODECS, PROMPT_DIR

log = logging.getLogger(__name__)

SYNTH_VERSION = "1"  # bump to invalidate every cached synthesis


# sox's name of each codec's raw format (`sox in.wav -t ul -r 8000 -c 1 out.ulaw`).
SOX_TYPES = {"ulaw": "ul", "alaw": "al"}
# Files Asterisk picks by channel format, written beside every .wav.
ENCODINGS = tuple(codec for codec in ENDPOINT_CODECS if codec in SOX_TYPES)


class PromptError(RuntimeError):
    pass


def encode_beside(wav: Path) -> list[Path]:
    """The .wav's audio in each endpoint codec, beside it (``<stem>.ulaw``...)."""
    out = []
    for codec in ENCODINGS:
        target = wav.with_suffix(f".{codec}")
        _sox(wav, target, "-t", SOX_TYPES[codec])
        out.append(target)
    return out


@dataclass(frozen=True)
class BuiltPrompt:
    prompt_id: str
    source: str  # "recorded" | "synthesized" | "cached"
    path: Path


class PromptLibrary:
    def __init__(self, *, sounds_dir: Path, cache_dir: Path, overrides_dir: Path | None,
                 language: str = "ar", voice: str = "ar"):
        self.target = sounds_dir / language / "ivr"
        self.cache_dir = cache_dir
        self.overrides_dir = overrides_dir
        self.voice = voice

    def build(self, prompts: dict[str, str], progress=None) -> list[BuiltPrompt]:
        for tool in ("espeak-ng", "sox"):
            if not shutil.which(tool):
                raise PromptError(f"{tool} is missing: apt-get install espeak-ng sox")
        self.target.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        built = []
        for n, (prompt_id, text) in enumerate(sorted(prompts.items()), 1):
            built.append(self._build_one(prompt_id, text))
            if progress:
                progress(n, len(prompts), prompt_id)
        return built

    def _build_one(self, prompt_id: str, text: str) -> BuiltPrompt:
        wav = self.target / f"{prompt_id}.wav"
        recorded = self.overrides_dir / f"{prompt_id}.wav" if self.overrides_dir else None
        if recorded is not None and recorded.exists():
            _sox(recorded, wav)
            encode_beside(wav)
            return BuiltPrompt(prompt_id, "recorded", wav)
        digest = hashlib.sha256(f"{SYNTH_VERSION}\0{self.voice}\0{text}".encode()).hexdigest()[:20]
        cached = self.cache_dir / f"{digest}.wav"
        source = "cached"
        if not cached.exists():
            raw = self.cache_dir / f"{digest}.raw.wav"
            result = subprocess.run(["espeak-ng", "-v", self.voice, "-s", "140", "-w", str(raw), text],
                                    capture_output=True, text=True)
            if result.returncode != 0 or not raw.exists():
                raise PromptError(f"espeak-ng failed for prompt {prompt_id!r}: {result.stderr.strip()}")
            _sox(raw, cached)
            raw.unlink()
            source = "synthesized"
        shutil.copyfile(cached, wav)
        encode_beside(wav)
        return BuiltPrompt(prompt_id, source, wav)

    def durations(self) -> dict[str, float]:
        """Each prompt's length in seconds, by the name Asterisk plays it under
        (``ivr/<id>``): its G.711 file holds 8,000 bytes a second. The engine
        keeps Asterisk's deadline on it just past a prompt (ivr.agi.deadline)."""
        return {f"{PROMPT_DIR}/{path.stem}": path.stat().st_size / 8000
                for path in self.target.glob(f"*.{ENCODINGS[0]}")}

    def missing(self, prompt_ids) -> list[str]:
        """Prompt ids with no playable file: checked at start-up, not mid-call."""
        return sorted(p for p in prompt_ids if not (self.target / f"{p}.wav").exists())


def _sox(src: Path, dst: Path, *out_type: str) -> None:
    """Convert to 8 kHz mono: 16-bit WAV (Asterisk's native slin) or raw G.711 (``-t ul``, ``-t al``)."""
    tmp = dst.with_name(dst.stem + ".tmp" + dst.suffix)
    width = () if out_type else ("-b", "16")
    # -G guards against clipping while resampling.
    cmd = ["sox", "-G", str(src), "-r", "8000", "-c", "1", *width, *out_type, str(tmp)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise PromptError(f"sox failed on {src}: {result.stderr.strip()}")
    tmp.replace(dst)


def build_music_on_hold(moh_dir: Path) -> Path:
    """A calm two-tone loop for waiting callers (Debian ships no Arabic MOH),
    with its G.711 encodings beside it. Music on hold is streamed to every
    waiting caller for as long as they wait: in ``files`` mode each caller's
    channel reads the file itself, so with the .wav alone every waiting
    caller cost Asterisk a slin -> G.711 translation, 50 frames a second."""
    moh_dir.mkdir(parents=True, exist_ok=True)
    target = moh_dir / "ivr-hold.wav"
    if target.exists():
        if any(not (moh_dir / f"ivr-hold.{codec}").exists() for codec in ENCODINGS):
            encode_beside(target)   # an install from before the encodings
        return target
    tmp = moh_dir / "ivr-hold.tmp.wav"
    result = subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(tmp),
         "synth", "0.6", "sine", "440", "synth", "0.6", "sine", "mix", "554",
         "fade", "0.05", "0.6", "0.1", "pad", "0", "1.4", "repeat", "9", "vol", "0.3"],
        capture_output=True, text=True)
    if result.returncode != 0:
        raise PromptError(f"sox could not make music on hold: {result.stderr.strip()}")
    tmp.replace(target)
    encode_beside(target)
    return target


def all_prompt_texts(config: Config) -> dict[str, str]:
    """The configuration's prompts and the Arabic number fragments (said by
    concatenation at run time: positions, waits, read-back of IDs).

    Number fragments are synthesized from their vowelled text
    (``FRAGMENT_SPEECH``), not the written one: espeak-ng misreads Arabic
    without tashkeel. A configured prompt with the same id still wins."""
    from core.arabic import clock, dates
    from core.arabic.numbers import FRAGMENT_SPEECH

    return {**FRAGMENT_SPEECH, **clock.FRAGMENT_TEXTS, **dates.FRAGMENT_TEXTS, **config.prompts}
