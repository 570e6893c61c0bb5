"""Arabic numbers said correctly: a count and its noun as prompt fragments.

The IVR never runs TTS during a call. Every phrase this module can produce is
a concatenation of a small, finite set of fragments (``FRAGMENT_TEXTS``,
about 250 entries for the nouns in ``NOUNS``), each synthesized once like any
other prompt. ``count_fragments(n, noun)`` gives the fragment ids that, played
in order, say exactly ``count_phrase(n, noun)``: joining the fragment texts
with single spaces gives the phrase, character for character.

    >>> count_phrase(3, NOUNS["minute"])
    'ثلاث دقائق'
    >>> count_fragments(3, NOUNS["minute"])
    ['num-3-f', 'noun-minute-plural']
    >>> number_text(3)                      # "أنت رقم ٣"
    'ثلاثة'

Range: 0..999,999 (0 only as a bare number: ``number_words(0)`` is "صفر";
counting zero things is not a number phrase in Arabic, so ``count_phrase(0)``
raises ValueError and the caller plays its own prompt, e.g. "لا يوجد متصلون
قبلك"). Negative numbers and numbers above 999,999 raise ValueError.

Spelling conventions
--------------------
* No diacritics, except the tanween of the accusative where it is written with
  an alif or on the counted noun: دقيقةً، يوماً، متصلاً، ألفاً، واحداً،
  ثلاثاً. The alif is part of the spelling (it is pronounced), and the
  fathatan is written on the alif (``اً``), as in يوماً.
* مئة (never مائة); hundreds written as one word: ثلاثمئة، ثمانمئة.
* Feminine eight is ثماني everywhere (ثماني دقائق، ثماني عشرة دقيقةً، ثماني
  وعشرون دقيقةً). Strict grammar writes the free-standing indefinite form
  ثمانٍ (ثمانٍ وعشرون); ثماني is the form of modern writing and broadcasting,
  and the one a TTS voice reads correctly without diacritics.
* Plural of ثانية after 3..10 is ثوان (ثوانٍ without its tanween), not ثواني.
* ``gender`` is always the gender of the thing counted (the noun), never the morphological gender of the numeral:
  ``number_words(3, "f")`` is ثلاث (as in ثلاث دقائق).

Cases
-----
``case`` is the grammatical case of the whole number phrase in the sentence:

* ``"nom"`` (default): اثنان، اثنا عشر، عشرون، مئتان، ألفان.
* ``"acc_gen"``: the oblique forms shared by accusative and genitive:
  اثنين، اثني عشر، عشرين، مئتين، ألفين، دقيقتين. Identical to ``"gen"``.
* ``"gen"``: as ``"acc_gen"``.
* ``"acc"``: as ``"acc_gen"``, plus the tanween alif the accusative adds to
  free-standing indefinite words: واحداً وعشرين، ثلاثاً وعشرين، ألفاً وخمسمئة،
  and the noun of 1 (دقيقةً، يوماً).

Whatever the case of the phrase, the noun after 3..10 is genitive plural
(ثلاث دقائق), after 11..99 accusative singular (عشرين دقيقةً), after
hundreds and thousands genitive singular (مئة دقيقة), as the grammar requires.

Grammar rules (Modern Standard Arabic)
--------------------------------------
* 1, 2: the noun alone, singular or dual: دقيقة، دقيقتان، يوم، يومان.
* 3..10: numeral of the gender opposite to the noun's singular, then the
  genitive plural: ثلاث دقائق، ثلاثة أيام، عشر دقائق، عشرة أيام.
* 11, 12: both parts agree: أحد عشر يوماً، إحدى عشرة دقيقةً، اثنا عشر يوماً،
  اثنتا عشرة دقيقةً. 13..19: units polar, ten agrees: ثلاث عشرة دقيقةً،
  ثلاثة عشر يوماً. Accusative singular noun.
* 20..90: invariant in gender. 21..99: units + و + tens; units 1 and 2 agree
  (واحد وعشرون يوماً، إحدى وعشرون دقيقةً، اثنتان وعشرون دقيقةً), 3..9 polar
  (ثلاث وعشرون دقيقةً، خمسة وعشرون يوماً). Accusative singular noun.
* Hundreds: مئة، مئتان، ثلاثمئة .. تسعمئة, the same for both genders.
  Thousands: ألف، ألفان، ثلاثة آلاف .. عشرة آلاف، أحد عشر ألفاً .. تسعة
  وتسعون ألفاً، مئة ألف .. تسعمئة وتسعة وتسعون ألفاً (ألف is masculine, so its
  own count follows the rules above with a masculine noun).
* A round hundred or thousand is in construct with the genitive singular noun:
  مئة دقيقة، ألف يوم. The dual then loses its nun: مئتا دقيقة، ألفا يوم
  (مئتي/ألفي in the oblique cases), and likewise مئتا ألف. The tamyiz
  ألفاً of 11..99 thousands becomes ألف in construct: أحد عشر ألف دقيقة (but
  أحد عشر ألفاً وخمسمئة دقيقة).
* Compound numbers are read from the largest part down, joined by و, and the
  noun takes the form required by the LAST part (the one next to it):
  مئة وثلاث دقائق، مئة وإحدى عشرة دقيقةً، ألف وخمسمئة دقيقة.

Numbers ending in 01 or 02 (101, 102, 1001, 201, 101000 ...)
------------------------------------------------------------
Rule chosen: 1 and 2 take no counted noun (no tamyiz); the noun itself, in
the singular or the dual, says "one" or "two". So a count n >= 100 whose last
two digits are 01 or 02 is said as the round part with its genitive noun,
then و and the singular or dual noun in the case of the phrase:

    101 دقيقة  -> مئة دقيقة ودقيقة      102 يوم  -> مئة يوم ويومان
    1001 دقيقة -> ألف دقيقة ودقيقة      1002 يوم -> ألف يوم ويومان
    201 يوم   -> مئتا يوم ويوم         101000 دقيقة -> مئة ألف وألف دقيقة

This is the classical construction of "ألف ليلة وليلة" (1001 Nights). It
follows from two rules of the standard grammars: the noun of a compound
number is governed by the last number mentioned, and "الواحد والاثنان لا
يحتاجان إلى تمييز" -- one does not say *واحد درهم or *اثنا درهم (Abbas Hassan,
al-Nahw al-Wafi, vol. 4, chapter 163 "العدد"; Ibn Malik's Alfiyya, chapter
on numbers, with Burhan al-Din Ibn Qayyim al-Jawziyya's commentary Irshad
al-Salik). The frequent journalistic alternatives "مئة وواحد دقيقة" (wrong:
واحد given a tamyiz) and "مئة وواحد" with the noun dropped are not used.
Without a noun (``number_words``) the number is read as usual: مئة وواحد،
ألف واثنان، مئة ألف وألف.

Pronunciation: ``FRAGMENT_SPEECH``
----------------------------------
``FRAGMENT_SPEECH`` maps every fragment id to the same words fully vowelled
(tashkeel). It is what ``ivr setup`` gives espeak-ng, which misreads
unvowelled Arabic (مئة -> "m?t", يوماً -> "jwma:", ثوان -> "Tu:a:n") but
reads tashkeel faithfully (مِئَةُ -> "mi?atu", يَوْمًا -> "jauman").
``FRAGMENT_TEXTS`` stays the written form (phrases, tests, logs).

Endings. A fragment is one file, played between short pauses and reused in
several positions, so its last vowel cannot be right everywhere. Rule: full
case vowels (i'rab), as in careful MSA reading, chosen for the fragment's
most frequent use in the IVR. The pausal form (waqf) is not used: espeak-ng
cannot say a pausal ة (it says "-at", not "-a"), and mixing pausal and full
words would sound uneven.

* Endings that are right in every position are simply written: the teens,
  built on fatha (أَحَدَ عَشَرَ، ثَلَاثَ عَشْرَةَ); duals and sound plurals
  with the vowel of their nun (اِثْنَانِ، عِشْرُونَ، مِئَتَانِ، دَقِيقَتَانِ،
  مُتَّصِلِينَ); construct duals (مِئَتَا، أَلْفَيْ); إِحْدَى، ثَمَانِي; the
  accusative tanween the spelling shows, said "-an" (يَوْمًا، دَقِيقَةً،
  ثَلَاثًا، أَلْفًا); the genitive plurals said after 3..10 (دَقَائِقَ، أَيَّامٍ،
  ثَوَانٍ).
* ``num-N-f`` (3..10 said with a feminine noun) is in construct with the
  plural that follows, no tanween: ثَلَاثُ دَقَائِقَ. (Compromise: before
  وعشرون, and as a bare feminine number, the strict form is ثَلَاثٌ.)
* ``num-0``, ``num-1-m``, ``num-1-f`` and ``num-N-m`` (3..10 with a masculine
  noun) are first of all the digits of read-back and the bare number ("أنت
  رقم ثلاثة"), so they are free nominatives with tanween, as numbers are
  counted in careful Arabic: صِفْرٌ، وَاحِدٌ، اِثْنَانِ، ثَلَاثَةٌ. That is also
  right before وعشرون (ثَلَاثَةٌ وَعِشْرُونَ). (Compromise: in construct,
  ثلاثة أيام، ثلاثة آلاف, the strict form is ثَلَاثَةُ without tanween.)
* مئة، ثلاثمئة..تسعمئة، ألف and آلاف mostly govern the word that follows, so
  they take the construct ending, no tanween: مِئَةُ، أَلْفُ (nominative, the
  case of a phrase said alone), ثَلَاثُمِئَةِ (its مئة is always genitive),
  آلَافِ (always genitive, after 3..10). (Compromise: before و the strict form
  has tanween, مِئَةٌ وَثَلَاثُ; after مئة and in 11..99 thousand, ألف is
  strictly genitive or accusative: مِئَةُ أَلْفٍ، أَحَدَ عَشَرَ أَلْفَ.)
* A singular noun is said as the count "one", nominative with tanween:
  دَقِيقَةٌ، يَوْمٌ. (Compromise: after a round hundred or thousand it is
  strictly genitive, مِئَةُ دَقِيقَةٍ.)
* Hamzat al-wasl: a fragment starting with it is said after a pause, so its
  alif carries kasra: اِثْنَانِ ("?iTna:ni"). After و the alif is silent and
  written as alef wasla: وَٱثْنَانِ ("waTna:ni"; with a plain alif espeak-ng
  says "wa:Tna:ni").

Tashkeel conventions, checked by the tests:

* Speech and writing never drift apart: removing the tashkeel (U+064B..U+0652
  and U+0670) from a ``FRAGMENT_SPEECH`` text gives the ``FRAGMENT_TEXTS``
  text, after two normalisations: alef wasla ٱ -> ا, and the fathatan of a
  tanween alif moves after the alif. Vowelled text puts the fathatan on the
  letter before the alif (يَوْمًا, said "-an"; espeak-ng says يَوْماً as
  "-a:", the pausal form), the spelling puts it on the alif (يوماً). That
  fathatan is kept in the comparison, so the accusatives agree too.
* Every letter carries its vowel or sukun, except the alif, alif maqsura and
  alif madda, and و/ي as long vowels (after damma/kasra).
* Shadda comes before the vowel of its letter (ت + shadda + fatha):
  espeak-ng drops the vowel or the gemination otherwise (سِتَّةٌ read
  "sit:tun"). Unicode canonical order (NFC) puts the vowel first, so the table
  goes through ``_shadda_first`` and ``FRAGMENT_SPEECH`` must never be
  NFC-normalised.

Fragment ids
------------
ASCII, valid prompt ids (``^[a-z0-9][a-z0-9_-]{0,62}$``). A ``wa-`` prefix
means the same word with و attached (وعشرون، ودقيقة): و is never a fragment of
its own, so it is synthesized as part of the word it belongs to.

* ``num-0`` صفر (digits and the bare number 0)
* ``num-1-m`` واحد, ``num-1-m-acc`` واحداً, ``num-1-f`` واحدة, ``num-1-f-cpd``
  إحدى (in 21, 31 ...)
* ``num-2-{m,f}-{nom,accgen}`` اثنان اثنين اثنتان اثنتين
* ``num-{3..10}-m`` ثلاثة.. (said with masculine nouns), ``num-{3..10}-f``
  ثلاث.. (with feminine nouns), ``num-{3..10}-f-acc`` ثلاثاً.. (no 8)
* ``num-11-{m,f}``, ``num-12-{m,f}-{nom,accgen}``, ``num-{13..19}-{m,f}``:
  one fragment per teen (أحد عشر is said as one unit)
* ``num-{20..90}-{nom,accgen}``
* ``num-100``, ``num-200-{nom,accgen}`` مئتان مئتين, ``num-200-cs-{nom,accgen}``
  مئتا مئتي (construct), ``num-{300..900}``
* ``thousand`` ألف, ``thousand-acc`` ألفاً, ``thousand-dual-{nom,accgen}``,
  ``thousand-dual-cs-{nom,accgen}`` ألفا ألفي, ``thousand-plural`` آلاف
* ``noun-<id>``, ``noun-<id>-acc``, ``noun-<id>-dual-{nom,accgen}``,
  ``noun-<id>-plural``
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CASES",
    "FRAGMENT_SPEECH",
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

MAX_NUMBER = 999_999
CASES = ("nom", "acc", "gen", "acc_gen")

_TANWEEN_FATH = "\u064b"
_FRAGMENT_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,62}$")
_NOUN_ID = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


# --------------------------------------------------------------------- nouns

@dataclass(frozen=True)
class Noun:
    """A countable noun and the forms counting needs.

    ``plural`` is the form said after 3..10, i.e. the genitive plural (for a
    sound masculine plural: متصلين). ``accusative`` is the indefinite
    accusative singular with its tanween (دقيقةً، يوماً), said after 11..99.
    """

    id: str                     # ascii, part of fragment ids: "minute"
    singular: str               # دقيقة
    dual: str                   # دقيقتان (nominative)
    plural: str                 # دقائق (genitive, after 3..10)
    accusative: str             # دقيقةً
    gender: Literal["m", "f"]
    dual_acc_gen: str           # دقيقتين

    def __post_init__(self):
        if not _NOUN_ID.match(self.id):
            raise ValueError(f"noun id {self.id!r} must match {_NOUN_ID.pattern}")
        if self.gender not in ("m", "f"):
            raise ValueError(f"noun gender must be 'm' or 'f', not {self.gender!r}")


def _acc(word: str) -> str:
    """Indefinite accusative of a word not ending in ة or ى: يوم -> يوماً."""
    return word + "ا" + _TANWEEN_FATH


NOUNS: dict[str, Noun] = {noun.id: noun for noun in (
    Noun("minute", "دقيقة", "دقيقتان", "دقائق", "دقيقة" + _TANWEEN_FATH, "f", "دقيقتين"),
    Noun("hour", "ساعة", "ساعتان", "ساعات", "ساعة" + _TANWEEN_FATH, "f", "ساعتين"),
    Noun("second", "ثانية", "ثانيتان", "ثوان", "ثانية" + _TANWEEN_FATH, "f", "ثانيتين"),
    Noun("day", "يوم", "يومان", "أيام", _acc("يوم"), "m", "يومين"),
    Noun("week", "أسبوع", "أسبوعان", "أسابيع", _acc("أسبوع"), "m", "أسبوعين"),
    Noun("month", "شهر", "شهران", "أشهر", _acc("شهر"), "m", "شهرين"),
    Noun("caller", "متصل", "متصلان", "متصلين", _acc("متصل"), "m", "متصلين"),
    Noun("call", "مكالمة", "مكالمتان", "مكالمات", "مكالمة" + _TANWEEN_FATH, "f", "مكالمتين"),
)}


# ------------------------------------------------------------- number words

# 3..10 as said with a masculine noun (with ة) and with a feminine noun.
_UNITS_WITH_M = {3: "ثلاثة", 4: "أربعة", 5: "خمسة", 6: "ستة", 7: "سبعة",
                 8: "ثمانية", 9: "تسعة", 10: "عشرة"}
_UNITS_WITH_F = {3: "ثلاث", 4: "أربع", 5: "خمس", 6: "ست", 7: "سبع",
                 8: "ثماني", 9: "تسع", 10: "عشر"}
_TENS_NOM = {20: "عشرون", 30: "ثلاثون", 40: "أربعون", 50: "خمسون",
             60: "ستون", 70: "سبعون", 80: "ثمانون", 90: "تسعون"}
_HUNDREDS = {3: "ثلاثمئة", 4: "أربعمئة", 5: "خمسمئة", 6: "ستمئة", 7: "سبعمئة",
             8: "ثمانمئة", 9: "تسعمئة"}


def _number_texts() -> dict[str, str]:
    t = {
        "num-0": "صفر",
        "num-1-m": "واحد",
        "num-1-m-acc": _acc("واحد"),
        "num-1-f": "واحدة",
        "num-1-f-cpd": "إحدى",
        "num-2-m-nom": "اثنان",
        "num-2-m-accgen": "اثنين",
        "num-2-f-nom": "اثنتان",
        "num-2-f-accgen": "اثنتين",
        "num-11-m": "أحد عشر",
        "num-11-f": "إحدى عشرة",
        "num-12-m-nom": "اثنا عشر",
        "num-12-m-accgen": "اثني عشر",
        "num-12-f-nom": "اثنتا عشرة",
        "num-12-f-accgen": "اثنتي عشرة",
        "num-100": "مئة",
        "num-200-nom": "مئتان",
        "num-200-accgen": "مئتين",
        "num-200-cs-nom": "مئتا",
        "num-200-cs-accgen": "مئتي",
        "thousand": "ألف",
        "thousand-acc": _acc("ألف"),
        "thousand-dual-nom": "ألفان",
        "thousand-dual-accgen": "ألفين",
        "thousand-dual-cs-nom": "ألفا",
        "thousand-dual-cs-accgen": "ألفي",
        "thousand-plural": "آلاف",
    }
    for u in range(3, 11):
        t[f"num-{u}-m"] = _UNITS_WITH_M[u]
        t[f"num-{u}-f"] = _UNITS_WITH_F[u]
        if u != 8:  # ثماني takes no tanween alif (see module docstring)
            t[f"num-{u}-f-acc"] = _acc(_UNITS_WITH_F[u])
    for u in range(3, 10):
        t[f"num-{10 + u}-m"] = f"{_UNITS_WITH_M[u]} عشر"
        t[f"num-{10 + u}-f"] = f"{_UNITS_WITH_F[u]} عشرة"
    for tens, word in _TENS_NOM.items():
        t[f"num-{tens}-nom"] = word
        t[f"num-{tens}-accgen"] = word[:-2] + "ين"
    for h, word in _HUNDREDS.items():
        t[f"num-{h}00"] = word
    return t


_NUMBER_TEXTS = _number_texts()
# Fragments that never follow و: zero, and آلاف (always after 3..10).
_NO_WA = {"num-0", "thousand-plural"}


def _noun_texts(noun: Noun) -> dict[str, str]:
    p = f"noun-{noun.id}"
    return {
        p: noun.singular,
        f"{p}-acc": noun.accusative,
        f"{p}-dual-nom": noun.dual,
        f"{p}-dual-accgen": noun.dual_acc_gen,
        f"{p}-plural": noun.plural,
    }


def _with_wa(texts: dict[str, str], exclude: Iterable[str] = ()) -> dict[str, str]:
    out = dict(texts)
    skip = set(exclude)
    for fid, text in texts.items():
        if fid not in skip:
            out[f"wa-{fid}"] = "و" + text
    return out


def fragment_texts(nouns: Iterable[Noun] | None = None) -> dict[str, str]:
    """Every fragment id the functions here can return -> its Arabic text.

    ``nouns`` defaults to ``NOUNS``; pass your own to cover custom nouns.
    """
    texts = _with_wa(_NUMBER_TEXTS, _NO_WA)
    for noun in (NOUNS.values() if nouns is None else nouns):
        nt = _noun_texts(noun)
        texts.update(_with_wa(nt, [f"noun-{noun.id}-plural"]))
    return texts


FRAGMENT_TEXTS: dict[str, str] = fragment_texts()


def all_fragment_ids() -> list[str]:
    """Sorted ids of ``FRAGMENT_TEXTS``: what ``ivr setup`` must synthesize."""
    return sorted(FRAGMENT_TEXTS)


# ------------------------------------------------------- speech (tashkeel)

# Every fragment without its و, fully vowelled (see "Pronunciation" in the
# module docstring for the choice of endings). wa- fragments are derived.
_BASE_SPEECH: dict[str, str] = {
    # digits and bare numbers: free nominative, tanween
    "num-0": "صِفْرٌ",
    "num-1-m": "وَاحِدٌ",
    "num-1-m-acc": "وَاحِدًا",
    "num-1-f": "وَاحِدَةٌ",
    "num-1-f-cpd": "إِحْدَى",
    "num-2-m-nom": "اِثْنَانِ",
    "num-2-m-accgen": "اِثْنَيْنِ",
    "num-2-f-nom": "اِثْنَتَانِ",
    "num-2-f-accgen": "اِثْنَتَيْنِ",
    # 3..10: -m free nominative (digits), -f construct, -f-acc tanween
    "num-3-m": "ثَلَاثَةٌ",
    "num-3-f": "ثَلَاثُ",
    "num-3-f-acc": "ثَلَاثًا",
    "num-4-m": "أَرْبَعَةٌ",
    "num-4-f": "أَرْبَعُ",
    "num-4-f-acc": "أَرْبَعًا",
    "num-5-m": "خَمْسَةٌ",
    "num-5-f": "خَمْسُ",
    "num-5-f-acc": "خَمْسًا",
    "num-6-m": "سِتَّةٌ",
    "num-6-f": "سِتُّ",
    "num-6-f-acc": "سِتًّا",
    "num-7-m": "سَبْعَةٌ",
    "num-7-f": "سَبْعُ",
    "num-7-f-acc": "سَبْعًا",
    "num-8-m": "ثَمَانِيَةٌ",
    "num-8-f": "ثَمَانِي",
    "num-9-m": "تِسْعَةٌ",
    "num-9-f": "تِسْعُ",
    "num-9-f-acc": "تِسْعًا",
    "num-10-m": "عَشَرَةٌ",
    "num-10-f": "عَشْرُ",
    "num-10-f-acc": "عَشْرًا",
    # 11..19: built on fatha
    "num-11-m": "أَحَدَ عَشَرَ",
    "num-11-f": "إِحْدَى عَشْرَةَ",
    "num-12-m-nom": "اِثْنَا عَشَرَ",
    "num-12-m-accgen": "اِثْنَيْ عَشَرَ",
    "num-12-f-nom": "اِثْنَتَا عَشْرَةَ",
    "num-12-f-accgen": "اِثْنَتَيْ عَشْرَةَ",
    "num-13-m": "ثَلَاثَةَ عَشَرَ",
    "num-13-f": "ثَلَاثَ عَشْرَةَ",
    "num-14-m": "أَرْبَعَةَ عَشَرَ",
    "num-14-f": "أَرْبَعَ عَشْرَةَ",
    "num-15-m": "خَمْسَةَ عَشَرَ",
    "num-15-f": "خَمْسَ عَشْرَةَ",
    "num-16-m": "سِتَّةَ عَشَرَ",
    "num-16-f": "سِتَّ عَشْرَةَ",
    "num-17-m": "سَبْعَةَ عَشَرَ",
    "num-17-f": "سَبْعَ عَشْرَةَ",
    "num-18-m": "ثَمَانِيَةَ عَشَرَ",
    "num-18-f": "ثَمَانِيَ عَشْرَةَ",
    "num-19-m": "تِسْعَةَ عَشَرَ",
    "num-19-f": "تِسْعَ عَشْرَةَ",
    # tens
    "num-20-nom": "عِشْرُونَ",
    "num-20-accgen": "عِشْرِينَ",
    "num-30-nom": "ثَلَاثُونَ",
    "num-30-accgen": "ثَلَاثِينَ",
    "num-40-nom": "أَرْبَعُونَ",
    "num-40-accgen": "أَرْبَعِينَ",
    "num-50-nom": "خَمْسُونَ",
    "num-50-accgen": "خَمْسِينَ",
    "num-60-nom": "سِتُّونَ",
    "num-60-accgen": "سِتِّينَ",
    "num-70-nom": "سَبْعُونَ",
    "num-70-accgen": "سَبْعِينَ",
    "num-80-nom": "ثَمَانُونَ",
    "num-80-accgen": "ثَمَانِينَ",
    "num-90-nom": "تِسْعُونَ",
    "num-90-accgen": "تِسْعِينَ",
    # hundreds and thousands: construct endings
    "num-100": "مِئَةُ",
    "num-200-nom": "مِئَتَانِ",
    "num-200-accgen": "مِئَتَيْنِ",
    "num-200-cs-nom": "مِئَتَا",
    "num-200-cs-accgen": "مِئَتَيْ",
    "num-300": "ثَلَاثُمِئَةِ",
    "num-400": "أَرْبَعُمِئَةِ",
    "num-500": "خَمْسُمِئَةِ",
    "num-600": "سِتُّمِئَةِ",
    "num-700": "سَبْعُمِئَةِ",
    "num-800": "ثَمَانِمِئَةِ",
    "num-900": "تِسْعُمِئَةِ",
    "thousand": "أَلْفُ",
    "thousand-acc": "أَلْفًا",
    "thousand-dual-nom": "أَلْفَانِ",
    "thousand-dual-accgen": "أَلْفَيْنِ",
    "thousand-dual-cs-nom": "أَلْفَا",
    "thousand-dual-cs-accgen": "أَلْفَيْ",
    "thousand-plural": "آلَافِ",
    # nouns: singular (nominative, "one"), accusative, duals, genitive plural
    "noun-minute": "دَقِيقَةٌ",
    "noun-minute-acc": "دَقِيقَةً",
    "noun-minute-dual-nom": "دَقِيقَتَانِ",
    "noun-minute-dual-accgen": "دَقِيقَتَيْنِ",
    "noun-minute-plural": "دَقَائِقَ",
    "noun-hour": "سَاعَةٌ",
    "noun-hour-acc": "سَاعَةً",
    "noun-hour-dual-nom": "سَاعَتَانِ",
    "noun-hour-dual-accgen": "سَاعَتَيْنِ",
    "noun-hour-plural": "سَاعَاتٍ",
    "noun-second": "ثَانِيَةٌ",
    "noun-second-acc": "ثَانِيَةً",
    "noun-second-dual-nom": "ثَانِيَتَانِ",
    "noun-second-dual-accgen": "ثَانِيَتَيْنِ",
    "noun-second-plural": "ثَوَانٍ",
    "noun-day": "يَوْمٌ",
    "noun-day-acc": "يَوْمًا",
    "noun-day-dual-nom": "يَوْمَانِ",
    "noun-day-dual-accgen": "يَوْمَيْنِ",
    "noun-day-plural": "أَيَّامٍ",
    "noun-week": "أُسْبُوعٌ",
    "noun-week-acc": "أُسْبُوعًا",
    "noun-week-dual-nom": "أُسْبُوعَانِ",
    "noun-week-dual-accgen": "أُسْبُوعَيْنِ",
    "noun-week-plural": "أَسَابِيعَ",
    "noun-month": "شَهْرٌ",
    "noun-month-acc": "شَهْرًا",
    "noun-month-dual-nom": "شَهْرَانِ",
    "noun-month-dual-accgen": "شَهْرَيْنِ",
    "noun-month-plural": "أَشْهُرٍ",
    "noun-caller": "مُتَّصِلٌ",
    "noun-caller-acc": "مُتَّصِلًا",
    "noun-caller-dual-nom": "مُتَّصِلَانِ",
    "noun-caller-dual-accgen": "مُتَّصِلَيْنِ",
    "noun-caller-plural": "مُتَّصِلِينَ",
    "noun-call": "مُكَالَمَةٌ",
    "noun-call-acc": "مُكَالَمَةً",
    "noun-call-dual-nom": "مُكَالَمَتَانِ",
    "noun-call-dual-accgen": "مُكَالَمَتَيْنِ",
    "noun-call-plural": "مُكَالَمَاتٍ",
}

_VOWEL_THEN_SHADDA = re.compile("([\u064b-\u0650\u0652])\u0651")
_WASL_KASRA = "\u0627\u0650"   # اِ: hamzat al-wasl said after a pause
_ALEF_WASLA = "\u0671"         # ٱ: hamzat al-wasl, silent


def _shadda_first(text: str) -> str:
    """Put shadda before the vowel of its letter, the order espeak-ng reads."""
    return _VOWEL_THEN_SHADDA.sub("\u0651\\1", text)


def _speech_with_wa(text: str) -> str:
    """وَ + word; a wasl alif after و is silent: اِثْنَانِ -> وَٱثْنَانِ."""
    if text.startswith(_WASL_KASRA):
        text = _ALEF_WASLA + text[len(_WASL_KASRA):]
    return "و\u064e" + text


def _fragment_speech() -> dict[str, str]:
    out = {}
    for fid in FRAGMENT_TEXTS:
        if fid.startswith("wa-"):
            out[fid] = _speech_with_wa(_BASE_SPEECH[fid[3:]])
        else:
            out[fid] = _BASE_SPEECH[fid]
    return {fid: _shadda_first(text) for fid, text in out.items()}


FRAGMENT_SPEECH: dict[str, str] = _fragment_speech()
"""Fragment id -> its words fully vowelled, what the prompts are synthesized
from. Same keys as ``FRAGMENT_TEXTS`` and the same words (see "Pronunciation"
in the module docstring)."""


# ------------------------------------------------------------------ grammar

@dataclass(frozen=True)
class _Counted:
    """Fragment ids of a counted noun's forms (a Noun, or ألف itself)."""

    gender: str
    singular: str
    accusative: str
    dual_nom: str
    dual_obl: str
    plural: str
    # construct forms, used when another noun follows (ألف دقيقة، ألفا يوم)
    singular_cs: str
    dual_cs_nom: str
    dual_cs_obl: str

    @classmethod
    def of(cls, noun: Noun) -> _Counted:
        p = f"noun-{noun.id}"
        return cls(noun.gender, p, f"{p}-acc", f"{p}-dual-nom", f"{p}-dual-accgen",
                   f"{p}-plural", p, f"{p}-dual-nom", f"{p}-dual-accgen")


_THOUSAND = _Counted("m", "thousand", "thousand-acc", "thousand-dual-nom",
                     "thousand-dual-accgen", "thousand-plural", "thousand",
                     "thousand-dual-cs-nom", "thousand-dual-cs-accgen")


def _wa(ids: list[str]) -> list[str]:
    return [f"wa-{ids[0]}", *ids[1:]]


def _obl(case: str) -> str:
    return "nom" if case == "nom" else "accgen"


def _one(noun: _Counted, case: str, cs: bool) -> str:
    """The noun alone, meaning "one": يوم / يوماً."""
    if cs:
        return noun.singular_cs
    return noun.accusative if case == "acc" else noun.singular


def _two(noun: _Counted, case: str, cs: bool) -> str:
    """The dual alone, meaning "two": يومان / يومين / ألفا."""
    if cs:
        return noun.dual_cs_nom if case == "nom" else noun.dual_cs_obl
    return noun.dual_nom if case == "nom" else noun.dual_obl


def _unit(u: int, gender: str, case: str, *, compound: bool) -> str:
    """1..10 as a free-standing numeral or as the units of 21..99."""
    if u == 1:
        if gender == "f":
            return "num-1-f-cpd" if compound else "num-1-f"
        return "num-1-m-acc" if case == "acc" else "num-1-m"
    if u == 2:
        return f"num-2-{gender}-{_obl(case)}"
    if gender == "m":  # polarity: masculine noun -> numeral with ة
        return f"num-{u}-m"
    return f"num-{u}-f-acc" if case == "acc" and u != 8 else f"num-{u}-f"


def _teen(n: int, gender: str, case: str) -> str:
    if n == 12:
        return f"num-12-{gender}-{_obl(case)}"
    return f"num-{n}-{gender}"


def _tens(n: int, case: str) -> str:
    return f"num-{n}-{_obl(case)}"


def _hundreds(h: int, case: str, cs: bool) -> str:
    if h == 1:
        return "num-100"
    if h == 2:
        return f"num-200-cs-{_obl(case)}" if cs else f"num-200-{_obl(case)}"
    return f"num-{h}00"


def _phrase(n: int, gender: str, case: str, noun: _Counted | None, cs: bool) -> list[str]:
    """Fragments for 1 <= n <= 999,999, with the counted noun if any.

    ``cs``: the phrase is in construct with a following noun (only for ألف
    counted inside a larger number: ألف دقيقة، ألفا يوم، أحد عشر ألف دقيقة).
    """
    r = n % 100
    if noun is not None and n > 100 and r in (1, 2):
        # مئة دقيقة ودقيقة، ألف يوم ويومان (see the module docstring)
        last = _one(noun, case, cs) if r == 1 else _two(noun, case, cs)
        return _phrase(n - r, gender, case, noun, cs=False) + [f"wa-{last}"]

    if n >= 1000:
        thousands, rest = divmod(n, 1000)
        if rest == 0:
            if noun is None:
                return _phrase(thousands, "m", case, _THOUSAND, cs=False)
            return _phrase(thousands, "m", case, _THOUSAND, cs=True) + [noun.singular]
        return (_phrase(thousands, "m", case, _THOUSAND, cs=False)
                + _wa(_phrase(rest, gender, case, noun, cs)))

    if n >= 100:
        h, rest = divmod(n, 100)
        if rest == 0:
            if noun is None:
                return [_hundreds(h, case, cs=False)]
            return [_hundreds(h, case, cs=True), noun.singular]
        return [_hundreds(h, case, cs=False)] + _wa(_phrase(rest, gender, case, noun, cs))

    if noun is not None:
        gender = noun.gender
        if n == 1:
            return [_one(noun, case, cs)]
        if n == 2:
            return [_two(noun, case, cs)]
        if n <= 10:  # numeral in construct with the genitive plural
            return [f"num-{n}-{gender}", noun.plural]
        tamyiz = [noun.singular_cs if cs else noun.accusative]
    else:
        if n <= 10:
            return [_unit(n, gender, case, compound=False)]
        tamyiz = []

    if n < 20:
        return [_teen(n, gender, case)] + tamyiz
    u, tens = n % 10, n - n % 10
    if u == 0:
        return [_tens(tens, case)] + tamyiz
    return [_unit(u, gender, case, compound=True), f"wa-{_tens(tens, case)}"] + tamyiz


# -------------------------------------------------------------- public API

def _check_int(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"expected an int, not {type(n).__name__}")
    if n < 0:
        raise ValueError(f"negative number {n}: only 0..{MAX_NUMBER:,} can be said")
    if n > MAX_NUMBER:
        raise ValueError(f"{n:,} is above {MAX_NUMBER:,}, the largest number supported")


def _check_case(case: str) -> str:
    if case not in CASES:
        raise ValueError(f"case must be one of {', '.join(CASES)}, not {case!r}")
    return "gen" if case == "acc_gen" else case


def _check_gender(gender: str) -> None:
    if gender not in ("m", "f"):
        raise ValueError(f"gender must be 'm' or 'f', not {gender!r}")


def number_fragments(n: int, gender: str = "m", case: str = "nom") -> list[str]:
    """Fragment ids saying the number alone (no noun): "أنت رقم" + ثلاثة.

    ``gender`` is the gender of what is counted (implied); "m" gives the
    ordinary counting form ثلاثة، واحد، اثنان.
    """
    _check_int(n)
    _check_gender(gender)
    case = _check_case(case)
    if n == 0:
        return ["num-0"]
    return _phrase(n, gender, case, None, cs=False)


def number_words(n: int, gender: str = "m", case: str = "nom") -> list[str]:
    """The number alone as word tokens, one per fragment: ["ثلاث", "وعشرون"].

    A token can hold two words when they are said as one unit (أحد عشر).
    """
    return [FRAGMENT_TEXTS[f] for f in number_fragments(n, gender, case)]


def number_text(n: int, gender: str = "m", case: str = "nom") -> str:
    return " ".join(number_words(n, gender, case))


def _check_count(n: int, noun: Noun) -> None:
    _check_int(n)
    if not isinstance(noun, Noun):
        raise TypeError(f"expected a Noun, not {type(noun).__name__}")
    if n == 0:
        raise ValueError("a count of 0 has no number phrase: play a dedicated prompt "
                         "(e.g. 'لا يوجد متصلون قبلك') instead")


def count_fragments(n: int, noun: Noun, case: str = "nom") -> list[str]:
    """Fragment ids that, played in order, say ``count_phrase(n, noun, case)``."""
    _check_count(n, noun)
    case = _check_case(case)
    return _phrase(n, noun.gender, case, _Counted.of(noun), cs=False)


def count_phrase(n: int, noun: Noun, case: str = "nom") -> str:
    """n things in Arabic: "دقيقتان"، "ثلاث دقائق"، "إحدى عشرة دقيقةً"، "مئة دقيقة"."""
    texts = {**FRAGMENT_TEXTS, **_with_wa(_noun_texts(noun))}
    return " ".join(texts[f] for f in count_fragments(n, noun, case))


_DIGIT_CHARS = frozenset("0123456789" "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"
                         "\u06f0\u06f1\u06f2\u06f3\u06f4\u06f5\u06f6\u06f7\u06f8\u06f9")
_DIGIT_FRAGMENTS = ["num-0", "num-1-m", "num-2-m-nom", *(f"num-{d}-m" for d in range(3, 10))]


def digit_fragments(digits: str) -> list[str]:
    """One fragment per digit, for IDs and reference numbers: "2980" -> اثنان
    تسعة ثمانية صفر. Accepts ASCII and Arabic-Indic digits (٠١٢..٩ and ۰۱۲..۹);
    anything else (spaces, dashes, signs) raises ValueError.
    """
    if not isinstance(digits, str):
        raise TypeError(f"digits must be a str, not {type(digits).__name__}")
    if not digits:
        raise ValueError("no digits to read")
    out = []
    for ch in digits:
        if ch not in _DIGIT_CHARS:
            raise ValueError(f"not a digit: {ch!r} in {digits!r}")
        out.append(_DIGIT_FRAGMENTS[unicodedata.decimal(ch)])
    return out


def digit_words(digits: str) -> list[str]:
    return [FRAGMENT_TEXTS[f] for f in digit_fragments(digits)]


_DIACRITICS = re.compile("[\u064b-\u0652\u0670]")


def strip_diacritics(text: str) -> str:
    """Remove tashkeel: "إحدى عشرة دقيقةً" -> "إحدى عشرة دقيقة"."""
    return _DIACRITICS.sub("", text)


assert all(_FRAGMENT_ID.match(f) for f in FRAGMENT_TEXTS), "fragment ids must be prompt ids"
