"""Position and wait announcements: which prompt fragments, in which order."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from scripted_channel import ScriptedChannel

from core.arabic.numbers import FRAGMENT_TEXTS
from queues.announcements.fragments import (
    announcement_files,
    announcement_fragments,
    round_minutes,
    say_announcement,
)

PROMPTS = Path(__file__).resolve().parents[2] / "config" / "prompts.yaml"


@pytest.mark.parametrize(("position", "wait", "expected"), [
    (1, None, ["queue-you-are-next", "queue-wait-unknown"]),
    (2, 30, ["queue-position-is", "num-2-m-nom", "queue-wait-under-minute"]),
    # حوالي دقيقتين: genitive after حوالي (dual in -ayn)
    (3, 90, ["queue-position-is", "num-3-m", "queue-wait-about", "noun-minute-dual-accgen"]),
    # رقم أحد عشر ... حوالي عشر دقائق
    (11, 600, ["queue-position-is", "num-11-m", "queue-wait-about", "num-10-f", "noun-minute-plural"]),
    # رقم خمسة وعشرون ... حوالي خمسين دقيقةً (2950 s = 49.2 min -> 50)
    (25, 2950, ["queue-position-is", "num-5-m", "wa-num-20-nom", "queue-wait-about", "num-50-accgen",
                "noun-minute-acc"]),
    (1, 59.9, ["queue-you-are-next", "queue-wait-under-minute"]),
    (1, 60, ["queue-you-are-next", "queue-wait-about", "noun-minute"]),   # حوالي دقيقة
    (2, 0, ["queue-position-is", "num-2-m-nom", "queue-wait-under-minute"]),
])
def test_fragments(position, wait, expected):
    assert announcement_fragments(position, wait) == expected


def test_rounding_is_up_by_one_then_by_five():
    assert [round_minutes(s) for s in (60, 61, 119, 120, 540, 600)] == [1, 2, 2, 2, 9, 10]
    assert [round_minutes(s) for s in (601, 660, 900, 901, 1800, 3601)] == [15, 15, 15, 20, 30, 65]


@pytest.mark.parametrize("position", [1, 2, 3, 11, 25, 99, 100, 101, 250, 1000])
@pytest.mark.parametrize("wait", [None, 30, 90, 600, 3000, 7200])
def test_every_fragment_is_a_known_prompt(position, wait):
    prompts = yaml.safe_load(PROMPTS.read_text(encoding="utf-8"))["prompts"]
    for fragment in announcement_fragments(position, wait):
        assert fragment in FRAGMENT_TEXTS or fragment in prompts, fragment


def test_position_must_be_positive():
    with pytest.raises(ValueError):
        announcement_fragments(0, 30)


def test_files_for_playback():
    assert announcement_files(["queue-position-is", "num-3-m"]) == "ivr/queue-position-is&ivr/num-3-m"


async def test_say_announcement_plays_in_order_and_stops_on_a_key():
    fragments = announcement_fragments(3, 90)
    channel = ScriptedChannel([None, None, None, None])
    assert await say_announcement(channel, fragments, "1") is None
    assert channel.prompts == [f"ivr/{f}" for f in fragments]
    assert all(c[2] == "1" for c in channel.calls)

    channel = ScriptedChannel([None, "1"])
    assert await say_announcement(channel, fragments, "1") == "1"
    assert channel.prompts == ["ivr/queue-position-is", "ivr/num-3-m"]


def test_docstring_example():
    import doctest

    from queues.announcements import fragments as announce

    failures, tried = doctest.testmod(announce)
    assert tried and not failures
