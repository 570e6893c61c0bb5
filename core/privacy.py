"""Masking of personal data before it reaches a log line.

A caller number or a national ID never appears in a log unmasked, and never
in a metric label at all (labels are bounded: programme, hotline, ...).
"""

from __future__ import annotations


def mask_number(value: str | None) -> str:
    """Keep the last two digits only: ``01001234567`` -> ``*********67``."""
    if not value:
        return "-"
    value = str(value)
    if len(value) <= 2:
        return "*" * len(value)
    return "*" * (len(value) - 2) + value[-2:]
