"""Self-service answers: a recorded answer to a frequent question (the
vaccination questions on 105), then "was this answer useful? 1 yes, 2 no".

``ask_useful`` does the talking and returns ``yes``, ``no`` or ``none`` (no
valid key after two tries); the hotline's flow counts it per answer
(``ivr_self_service_answers_total``) and, on *no*, takes the caller to an
agent of the answer's programme: an answer that did not help never ends
the call. A key pressed during the answer itself cuts it short and counts
as the reply to the question.
"""

from __future__ import annotations

from core.channel import Channel
from core.contract import prompt_path

YES, NO = "1", "2"
USEFUL_RESULTS = ("yes", "no", "none")
ATTEMPTS = 2
ANSWER_TIMEOUT_SECONDS = 6.0


async def ask_useful(channel: Channel, *, answer_prompt: str) -> str:
    key = await channel.play(prompt_path(answer_prompt), YES + NO)
    for attempt in range(ATTEMPTS):
        if key is None and attempt:
            key = await channel.play(prompt_path("invalid-option"), YES + NO)
        if key is None:
            key = await channel.play(prompt_path("answer-useful-question"), YES + NO)
        if key is None:
            key = await channel.wait_digit(ANSWER_TIMEOUT_SECONDS)
        if key in (YES, NO):
            return "yes" if key == YES else "no"
        key = None
    return "none"
