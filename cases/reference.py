"""Reference numbers: 8 random digits and a Damm check digit, 9 in all.

Said back to the caller digit by digit and typed on a phone keypad, so only
digits. The check digit is the Damm algorithm's (python-stdnum, a kept
library): it catches every single wrong digit and every swap of two
neighbouring digits, the two mistakes people make when they type a number
they heard (Luhn, the other common choice, misses 09 <-> 90).

Random rather than sequential: a reference must not tell how many cases
there are, nor let someone step from their own case to the next one. The
store retries on the (rare) collision; with 10^8 numbers, a million cases
fill 1 % of the space.
"""

from __future__ import annotations

import secrets

from stdnum import damm

BODY_DIGITS = 8
LENGTH = BODY_DIGITS + 1


class BadReference(ValueError):
    """What was typed is not a reference number; ``reason`` says why."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def new_reference(randbelow=secrets.randbelow) -> str:
    """A fresh reference; the first digit is never 0 (said and typed as is)."""
    body = str(10 ** (BODY_DIGITS - 1) + randbelow(9 * 10 ** (BODY_DIGITS - 1)))
    return body + damm.calc_check_digit(body)


def check_reference(typed: str) -> str:
    """The reference in ``typed`` (spaces, dashes and a final ``#`` dropped),
    or :class:`BadReference`: ``length`` or ``check_digit``."""
    digits = "".join(c for c in typed.strip().rstrip("#") if c not in " -")
    if len(digits) != LENGTH or not digits.isdigit():
        raise BadReference("length")
    if not damm.is_valid(digits):
        raise BadReference("check_digit")
    return digits


def spoken_groups(reference: str) -> tuple[str, ...]:
    """Shown to agents as ``123 456 789``: three groups of three."""
    return tuple(reference[i:i + 3] for i in range(0, len(reference), 3))
