"""What a waiting caller is told: position and estimated wait, as prompt ids.

    >>> announcement_fragments(3, 420)
    ['queue-position-is', 'num-3-m', 'queue-wait-about', 'num-7-f', 'noun-minute-plural']

"ترتيبك في قائمة الانتظار رقم ثلاثة، والوقت المتوقع للانتظار حوالي سبع دقائق"

Grammar of the two numbers:

* After "رقم" the position is a bare cardinal, masculine nominative, as
  numbers are read out: رقم ثلاثة، رقم أحد عشر، رقم خمسة وعشرون
  (``number_fragments(n)``, gender "m", case "nom").
* "حوالَيْ" is an adverb in construct with what follows, so the count of
  minutes is genitive: حوالي دقيقتين (not دقيقتان)، حوالي عشرين دقيقةً،
  حوالي ثلاث دقائق (``count_fragments(m, minute, case="gen")``; the noun
  after 11..99 stays an accusative tamyiz, as the grammar requires).

Minutes are rounded *up* (a caller told "about 5 minutes" who waits 4 is
pleased; the other way round is not): to the minute up to 10 minutes, then
to 5 minutes. Under a minute is its own prompt; an unknown wait (nobody
serving the queue) is said as "the first agent to become free will answer".
"""

from __future__ import annotations

import math
from typing import Protocol

from core.arabic.numbers import NOUNS, count_fragments, number_fragments

from core.contract import prompt_path

__all__ = ["announcement_files", "announcement_fragments", "round_minutes", "say_announcement"]


def round_minutes(wait_seconds: float) -> int:
    """Minutes to say for a wait of at least a minute: 1..10 by 1, then by 5."""
    minutes = max(1, math.ceil(wait_seconds / 60))
    return minutes if minutes <= 10 else 5 * math.ceil(minutes / 5)


def announcement_fragments(position: int, wait_seconds: float | None) -> list[str]:
    """Prompt ids saying the caller's position and estimated wait."""
    if position < 1:
        raise ValueError(f"position starts at 1, not {position}")
    out = ["queue-you-are-next"] if position == 1 else ["queue-position-is", *number_fragments(position)]
    if wait_seconds is None:
        out.append("queue-wait-unknown")
    elif wait_seconds < 60:
        out.append("queue-wait-under-minute")
    else:
        out += ["queue-wait-about", *count_fragments(round_minutes(wait_seconds), NOUNS["minute"], "gen")]
    return out


def announcement_files(fragments: list[str]) -> str:
    """One Playback() argument: the sound files joined with ``&``."""
    return "&".join(prompt_path(f) for f in fragments)


class _Player(Protocol):
    async def play(self, prompt: str, escape_digits: str = "") -> str | None: ...


async def say_announcement(session: _Player, fragments: list[str], escape_digits: str = "") -> str | None:
    """Play the fragments in order; the key that cut them short, if any."""
    for fragment in fragments:
        key = await session.play(prompt_path(fragment), escape_digits)
        if key:
            return key
    return None
