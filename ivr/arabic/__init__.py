"""Arabic language support for prompts: numbers and counted nouns."""

from ivr.arabic.numbers import (
    CASES,
    FRAGMENT_TEXTS,
    MAX_NUMBER,
    NOUNS,
    Noun,
    all_fragment_ids,
    count_fragments,
    count_phrase,
    digit_fragments,
    digit_words,
    fragment_texts,
    number_fragments,
    number_text,
    number_words,
    strip_diacritics,
)

__all__ = [
    "CASES",
    "FRAGMENT_TEXTS",
    "MAX_NUMBER",
    "NOUNS",
    "Noun",
    "all_fragment_ids",
    "count_fragments",
    "count_phrase",
    "digit_fragments",
    "digit_words",
    "fragment_texts",
    "number_fragments",
    "number_text",
    "number_words",
    "strip_diacritics",
]
