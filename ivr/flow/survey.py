"""The post-call survey: after the agent hangs up, the caller rates 1 to 5.

A wrong key or silence gets the question once more; then the call ends
without a rating (recorded as such), never with an error.
"""

from __future__ import annotations

from core.channel import Channel
from core.contract import prompt_path

SCORES = "12345"
ATTEMPTS = 2
ANSWER_TIMEOUT_SECONDS = 5.0


async def run_survey(channel: Channel) -> int | None:
    """Ask for a rating; return 1..5, or None when the caller gave none."""
    for attempt in range(ATTEMPTS):
        key = None
        if attempt:
            # A rating pressed during the apology counts.
            key = await channel.play(prompt_path("invalid-option"), SCORES)
        if key is None:
            key = await channel.play(prompt_path("survey-question"), SCORES)
        if key is None:
            key = await channel.wait_digit(ANSWER_TIMEOUT_SECONDS)
        if key is not None and key in SCORES:
            await channel.play(prompt_path("survey-thanks"), "")
            return int(key)
    return None
