"""Arabic numbers and counted nouns: what a native speaker expects to hear.

Expected strings are written out by hand. Spelling: no diacritics except the
accusative tanween where it is written with an alif or on the counted noun
(دقيقةً، يوماً، ألفاً، ثلاثاً), مئة not مائة, ثماني for feminine eight.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from core.arabic.numbers import (
    FRAGMENT_SPEECH,
    FRAGMENT_TEXTS,
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

# (n, noun id, case, expected phrase)
COUNT_CASES = [
    # 1 and 2: the noun alone, singular or dual
    (1, "minute", "nom", "دقيقة"),
    (1, "day", "nom", "يوم"),
    (1, "caller", "nom", "متصل"),
    (2, "minute", "nom", "دقيقتان"),
    (2, "day", "nom", "يومان"),
    (2, "call", "nom", "مكالمتان"),
    # 3..10: polar numeral + genitive plural
    (3, "minute", "nom", "ثلاث دقائق"),
    (3, "day", "nom", "ثلاثة أيام"),
    (4, "hour", "nom", "أربع ساعات"),
    (4, "month", "nom", "أربعة أشهر"),
    (5, "call", "nom", "خمس مكالمات"),
    (5, "caller", "nom", "خمسة متصلين"),
    (6, "minute", "nom", "ست دقائق"),
    (6, "day", "nom", "ستة أيام"),
    (7, "second", "nom", "سبع ثوان"),
    (7, "week", "nom", "سبعة أسابيع"),
    (8, "minute", "nom", "ثماني دقائق"),
    (8, "day", "nom", "ثمانية أيام"),
    (9, "hour", "nom", "تسع ساعات"),
    (9, "caller", "nom", "تسعة متصلين"),
    (10, "minute", "nom", "عشر دقائق"),
    (10, "day", "nom", "عشرة أيام"),
    # 11, 12: both parts agree; accusative singular noun
    (11, "minute", "nom", "إحدى عشرة دقيقةً"),
    (11, "day", "nom", "أحد عشر يوماً"),
    (12, "minute", "nom", "اثنتا عشرة دقيقةً"),
    (12, "day", "nom", "اثنا عشر يوماً"),
    # 13..19: units polar, ten agrees
    (13, "minute", "nom", "ثلاث عشرة دقيقةً"),
    (13, "day", "nom", "ثلاثة عشر يوماً"),
    (15, "call", "nom", "خمس عشرة مكالمةً"),
    (15, "caller", "nom", "خمسة عشر متصلاً"),
    (18, "minute", "nom", "ثماني عشرة دقيقةً"),
    (18, "day", "nom", "ثمانية عشر يوماً"),
    (19, "second", "nom", "تسع عشرة ثانيةً"),
    (19, "month", "nom", "تسعة عشر شهراً"),
    # tens, and units + و + tens
    (20, "minute", "nom", "عشرون دقيقةً"),
    (20, "day", "nom", "عشرون يوماً"),
    (21, "minute", "nom", "إحدى وعشرون دقيقةً"),
    (21, "day", "nom", "واحد وعشرون يوماً"),
    (22, "minute", "nom", "اثنتان وعشرون دقيقةً"),
    (22, "day", "nom", "اثنان وعشرون يوماً"),
    (23, "minute", "nom", "ثلاث وعشرون دقيقةً"),
    (23, "day", "nom", "ثلاثة وعشرون يوماً"),
    (25, "minute", "nom", "خمس وعشرون دقيقةً"),
    (25, "day", "nom", "خمسة وعشرون يوماً"),
    (28, "minute", "nom", "ثماني وعشرون دقيقةً"),
    (30, "minute", "nom", "ثلاثون دقيقةً"),
    (45, "caller", "nom", "خمسة وأربعون متصلاً"),
    (59, "second", "nom", "تسع وخمسون ثانيةً"),
    (80, "hour", "nom", "ثمانون ساعةً"),
    (99, "minute", "nom", "تسع وتسعون دقيقةً"),
    (99, "day", "nom", "تسعة وتسعون يوماً"),
    # hundreds: round -> genitive singular; last part decides the noun
    (100, "minute", "nom", "مئة دقيقة"),
    (100, "day", "nom", "مئة يوم"),
    (101, "minute", "nom", "مئة دقيقة ودقيقة"),
    (101, "day", "nom", "مئة يوم ويوم"),
    (102, "minute", "nom", "مئة دقيقة ودقيقتان"),
    (102, "day", "nom", "مئة يوم ويومان"),
    (103, "minute", "nom", "مئة وثلاث دقائق"),
    (103, "day", "nom", "مئة وثلاثة أيام"),
    (110, "minute", "nom", "مئة وعشر دقائق"),
    (110, "day", "nom", "مئة وعشرة أيام"),
    (111, "minute", "nom", "مئة وإحدى عشرة دقيقةً"),
    (111, "day", "nom", "مئة وأحد عشر يوماً"),
    (112, "minute", "nom", "مئة واثنتا عشرة دقيقةً"),
    (120, "minute", "nom", "مئة وعشرون دقيقةً"),
    (121, "minute", "nom", "مئة وإحدى وعشرون دقيقةً"),
    (150, "caller", "nom", "مئة وخمسون متصلاً"),
    (200, "minute", "nom", "مئتا دقيقة"),
    (200, "day", "nom", "مئتا يوم"),
    (201, "day", "nom", "مئتا يوم ويوم"),
    (250, "minute", "nom", "مئتان وخمسون دقيقةً"),
    (300, "minute", "nom", "ثلاثمئة دقيقة"),
    (800, "day", "nom", "ثمانمئة يوم"),
    (999, "minute", "nom", "تسعمئة وتسع وتسعون دقيقةً"),
    (999, "day", "nom", "تسعمئة وتسعة وتسعون يوماً"),
    # thousands
    (1000, "minute", "nom", "ألف دقيقة"),
    (1000, "day", "nom", "ألف يوم"),
    (1001, "minute", "nom", "ألف دقيقة ودقيقة"),
    (1001, "day", "nom", "ألف يوم ويوم"),
    (1002, "day", "nom", "ألف يوم ويومان"),
    (1003, "minute", "nom", "ألف وثلاث دقائق"),
    (1100, "minute", "nom", "ألف ومئة دقيقة"),
    (1101, "minute", "nom", "ألف ومئة دقيقة ودقيقة"),
    (1200, "minute", "nom", "ألف ومئتا دقيقة"),
    (1500, "day", "nom", "ألف وخمسمئة يوم"),
    (1999, "minute", "nom", "ألف وتسعمئة وتسع وتسعون دقيقةً"),
    (2000, "minute", "nom", "ألفا دقيقة"),
    (2001, "minute", "nom", "ألفا دقيقة ودقيقة"),
    (2500, "minute", "nom", "ألفان وخمسمئة دقيقة"),
    (3000, "minute", "nom", "ثلاثة آلاف دقيقة"),
    (3000, "day", "nom", "ثلاثة آلاف يوم"),
    (8000, "minute", "nom", "ثمانية آلاف دقيقة"),
    (10000, "minute", "nom", "عشرة آلاف دقيقة"),
    (11000, "minute", "nom", "أحد عشر ألف دقيقة"),
    (11500, "minute", "nom", "أحد عشر ألفاً وخمسمئة دقيقة"),
    (12000, "day", "nom", "اثنا عشر ألف يوم"),
    (21000, "minute", "nom", "واحد وعشرون ألف دقيقة"),
    (25003, "minute", "nom", "خمسة وعشرون ألفاً وثلاث دقائق"),
    (100000, "minute", "nom", "مئة ألف دقيقة"),
    (101000, "minute", "nom", "مئة ألف وألف دقيقة"),
    (102000, "day", "nom", "مئة ألف وألفا يوم"),
    (200000, "minute", "nom", "مئتا ألف دقيقة"),
    (250000, "minute", "nom", "مئتان وخمسون ألف دقيقة"),
    (300000, "day", "nom", "ثلاثمئة ألف يوم"),
    (999999, "minute", "nom", "تسعمئة وتسعة وتسعون ألفاً وتسعمئة وتسع وتسعون دقيقةً"),
    (999999, "day", "nom", "تسعمئة وتسعة وتسعون ألفاً وتسعمئة وتسعة وتسعون يوماً"),
    # accusative / genitive
    (1, "day", "acc", "يوماً"),
    (1, "minute", "acc", "دقيقةً"),
    (1, "day", "acc_gen", "يوم"),
    (2, "minute", "acc_gen", "دقيقتين"),
    (2, "day", "acc_gen", "يومين"),
    (2, "day", "gen", "يومين"),
    (3, "minute", "acc", "ثلاث دقائق"),
    (12, "day", "acc_gen", "اثني عشر يوماً"),
    (12, "minute", "acc_gen", "اثنتي عشرة دقيقةً"),
    (13, "minute", "acc_gen", "ثلاث عشرة دقيقةً"),
    (20, "minute", "acc_gen", "عشرين دقيقةً"),
    (21, "day", "acc", "واحداً وعشرين يوماً"),
    (21, "day", "gen", "واحد وعشرين يوماً"),
    (21, "minute", "acc", "إحدى وعشرين دقيقةً"),
    (22, "day", "acc_gen", "اثنين وعشرين يوماً"),
    (22, "minute", "acc_gen", "اثنتين وعشرين دقيقةً"),
    (23, "minute", "acc", "ثلاثاً وعشرين دقيقةً"),
    (23, "minute", "gen", "ثلاث وعشرين دقيقةً"),
    (23, "day", "acc", "ثلاثة وعشرين يوماً"),
    (101, "day", "acc", "مئة يوم ويوماً"),
    (102, "day", "acc_gen", "مئة يوم ويومين"),
    (200, "minute", "acc_gen", "مئتي دقيقة"),
    (250, "minute", "acc_gen", "مئتين وخمسين دقيقةً"),
    (1500, "minute", "acc", "ألفاً وخمسمئة دقيقة"),
    (2000, "day", "acc_gen", "ألفي يوم"),
    (12000, "day", "acc_gen", "اثني عشر ألف يوم"),
    (200000, "minute", "gen", "مئتي ألف دقيقة"),
]


@pytest.mark.parametrize("n, noun_id, case, expected", COUNT_CASES)
def test_count_phrase(n, noun_id, case, expected):
    assert count_phrase(n, NOUNS[noun_id], case) == expected


def test_the_table_is_large_enough():
    assert len(COUNT_CASES) >= 60
    assert len({(n, noun, case) for n, noun, case, _ in COUNT_CASES}) == len(COUNT_CASES)


@pytest.mark.parametrize("n, expected", [
    (2, "دقيقتان"),
    (3, "ثلاث دقائق"),
    (11, "إحدى عشرة دقيقة"),
    (20, "عشرون دقيقة"),
])
def test_issue_examples_once_diacritics_are_removed(n, expected):
    """"الوقت المتوقع للانتظار دقيقتان / ثلاث دقائق / إحدى عشرة دقيقة / عشرون دقيقة"."""
    assert strip_diacritics(count_phrase(n, NOUNS["minute"])) == expected


# (n, gender, case, expected): the number alone
NUMBER_CASES = [
    (0, "m", "nom", "صفر"),
    (3, "m", "nom", "ثلاثة"),             # أنت رقم ٣
    (1, "m", "nom", "واحد"),
    (1, "f", "nom", "واحدة"),
    (1, "m", "acc", "واحداً"),
    (2, "m", "nom", "اثنان"),
    (2, "m", "acc_gen", "اثنين"),
    (2, "f", "nom", "اثنتان"),
    (2, "f", "acc_gen", "اثنتين"),
    (3, "f", "nom", "ثلاث"),
    (3, "f", "acc", "ثلاثاً"),
    (8, "f", "nom", "ثماني"),
    (10, "f", "acc", "عشراً"),
    (11, "m", "nom", "أحد عشر"),
    (12, "m", "acc_gen", "اثني عشر"),
    (20, "m", "acc_gen", "عشرين"),
    (21, "f", "nom", "إحدى وعشرون"),
    (101, "m", "nom", "مئة وواحد"),
    (101, "f", "nom", "مئة وواحدة"),
    (102, "m", "acc_gen", "مئة واثنين"),
    (200, "m", "nom", "مئتان"),
    (200, "m", "acc_gen", "مئتين"),
    (1000, "m", "nom", "ألف"),
    (1000, "m", "acc", "ألفاً"),
    (1001, "m", "nom", "ألف وواحد"),
    (2000, "m", "nom", "ألفان"),
    (2000, "m", "acc_gen", "ألفين"),
    (3000, "m", "nom", "ثلاثة آلاف"),
    (11000, "m", "nom", "أحد عشر ألفاً"),
    (200000, "m", "nom", "مئتا ألف"),
    (101000, "m", "nom", "مئة ألف وألف"),
    (102000, "m", "nom", "مئة ألف وألفان"),
    (999999, "m", "nom", "تسعمئة وتسعة وتسعون ألفاً وتسعمئة وتسعة وتسعون"),
]


@pytest.mark.parametrize("n, gender, case, expected", NUMBER_CASES)
def test_number_alone(n, gender, case, expected):
    assert number_text(n, gender, case) == expected
    assert " ".join(number_words(n, gender, case)) == expected


def test_queue_position_prompt():
    """"أنت رقم ٣ في قائمة الانتظار": the bare number, counting form."""
    assert number_fragments(3) == ["num-3-m"]
    assert number_words(3) == ["ثلاثة"]
    assert number_words(23) == ["ثلاثة", "وعشرون"]


@pytest.mark.parametrize("digits, expected", [
    ("2980", ["اثنان", "تسعة", "ثمانية", "صفر"]),
    ("٢٩٨٠", ["اثنان", "تسعة", "ثمانية", "صفر"]),
    ("۲۹۸۰", ["اثنان", "تسعة", "ثمانية", "صفر"]),
    ("0101", ["صفر", "واحد", "صفر", "واحد"]),
    ("34567", ["ثلاثة", "أربعة", "خمسة", "ستة", "سبعة"]),
])
def test_digit_by_digit(digits, expected):
    assert digit_words(digits) == expected
    assert [FRAGMENT_TEXTS[f] for f in digit_fragments(digits)] == expected


def test_digit_fragments_ids():
    assert digit_fragments("2980") == ["num-2-m-nom", "num-9-m", "num-8-m", "num-0"]


@pytest.mark.parametrize("digits", ["", "12-3", "12 3", "12a", "+20", "²", "১২"])
def test_digit_errors(digits):
    with pytest.raises(ValueError):
        digit_fragments(digits)


def test_digits_must_be_a_string():
    with pytest.raises(TypeError):
        digit_fragments(2980)


@pytest.mark.parametrize("n", [-1, -1000, 1_000_000, 10**9])
def test_out_of_range(n):
    with pytest.raises(ValueError):
        count_phrase(n, NOUNS["minute"])
    with pytest.raises(ValueError):
        count_fragments(n, NOUNS["day"])
    with pytest.raises(ValueError):
        number_words(n)


def test_zero_cannot_be_counted():
    with pytest.raises(ValueError):
        count_phrase(0, NOUNS["minute"])
    assert number_words(0) == ["صفر"]


@pytest.mark.parametrize("bad", ["3", 3.0, True, None])
def test_non_int(bad):
    with pytest.raises(TypeError):
        count_phrase(bad, NOUNS["minute"])
    with pytest.raises(TypeError):
        number_words(bad)


def test_bad_gender_and_case():
    with pytest.raises(ValueError):
        number_words(3, gender="x")
    with pytest.raises(ValueError):
        number_words(3, case="dat")
    with pytest.raises(ValueError):
        count_phrase(3, NOUNS["minute"], case="accusative")
    with pytest.raises(ValueError):
        Noun("x", "س", "س", "س", "س", "n", "س")
    with pytest.raises(ValueError):
        Noun("Bad Id", "س", "س", "س", "س", "m", "س")


# ------------------------------------------------ fragments say the phrase

SAMPLE = sorted(set(range(1, 2101)) | {
    t * 1000 + h
    for t in (1, 2, 3, 8, 10, 11, 12, 13, 20, 21, 22, 23, 28, 99, 100, 101, 102, 103,
              110, 111, 112, 121, 200, 201, 202, 250, 300, 999)
    for h in (0, 1, 2, 3, 8, 10, 11, 12, 21, 23, 100, 101, 102, 200, 201, 500, 999)
} | set(range(1, 1_000_000, 997)) | {999_999})
CASES_TO_CHECK = ("nom", "acc", "gen", "acc_gen")


def test_every_fragment_exists_and_fragments_say_exactly_the_phrase():
    for n in SAMPLE:
        for noun in NOUNS.values():
            for case in CASES_TO_CHECK:
                frags = count_fragments(n, noun, case)
                missing = [f for f in frags if f not in FRAGMENT_TEXTS]
                assert not missing, (n, noun.id, case, missing)
                assert " ".join(FRAGMENT_TEXTS[f] for f in frags) == count_phrase(n, noun, case)
    for n in [0, *SAMPLE]:
        for gender in ("m", "f"):
            for case in CASES_TO_CHECK:
                frags = number_fragments(n, gender, case)
                assert all(f in FRAGMENT_TEXTS for f in frags), (n, gender, case, frags)


def test_inventory_is_small_complete_and_has_no_dead_fragments():
    used = set(digit_fragments("0123456789"))
    for n in SAMPLE:
        for case in CASES_TO_CHECK:
            for noun in NOUNS.values():
                used.update(count_fragments(n, noun, case))
            for gender in ("m", "f"):
                used.update(number_fragments(n, gender, case))
    assert used == set(FRAGMENT_TEXTS)
    assert len(FRAGMENT_TEXTS) <= 300
    assert all_fragment_ids() == sorted(FRAGMENT_TEXTS)


def test_fragment_ids_are_valid_prompt_ids_and_texts_are_arabic():
    prompt_id = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,62}$")  # PromptId in the config model
    for fid, text in FRAGMENT_TEXTS.items():
        assert prompt_id.match(fid), fid
        assert text and text == text.strip() and "  " not in text, fid
        assert re.fullmatch(r"[\u0621-\u064b ]+", text), (fid, text)
        if fid.startswith("wa-"):
            assert text == "و" + FRAGMENT_TEXTS[fid[3:]]


def test_spelling_conventions():
    texts = set(FRAGMENT_TEXTS.values())
    assert not any("مائة" in t or "مائت" in t for t in texts)
    # the only diacritic is the fathatan of the accusative, after alif or ة
    for t in texts:
        for i, ch in enumerate(t):
            if ch == "\u064b":
                assert t[i - 1] in "اة" and (i + 1 == len(t)), t


def test_custom_noun():
    request = Noun("request", "طلب", "طلبان", "طلبات", "طلباً", "m", "طلبين")
    assert count_phrase(3, request) == "ثلاثة طلبات"
    assert count_phrase(14, request) == "أربعة عشر طلباً"
    assert count_phrase(101, request) == "مئة طلب وطلب"
    texts = fragment_texts([request])
    for n in (1, 2, 3, 14, 101, 102, 1000, 250000):
        for case in CASES_TO_CHECK:
            assert " ".join(texts[f] for f in count_fragments(n, request, case)) == \
                count_phrase(n, request, case)


# ------------------------------------------------ vowelled text for the TTS

TASHKEEL = re.compile("[\u064b-\u0652\u0670]")
FATHATAN, SHADDA, ALEF, ALEF_WASLA = "\u064b", "\u0651", "\u0627", "\u0671"


def written_form(speech: str) -> str:
    """The spelling of FRAGMENT_TEXTS from a vowelled text: alef wasla is an
    alif; the fathatan of a tanween alif goes after the alif (يَوْمًا -> يوماً)
    and is kept, every other mark is removed."""
    text = speech.replace(ALEF_WASLA, ALEF).replace(FATHATAN + ALEF, ALEF + FATHATAN)
    return re.sub("[\u064c-\u0652\u0670]", "", text)


def test_speech_covers_exactly_the_fragments():
    assert list(FRAGMENT_SPEECH) == list(FRAGMENT_TEXTS)


@pytest.mark.parametrize("fid", sorted(FRAGMENT_TEXTS))
def test_speech_says_the_written_words(fid):
    speech, text = FRAGMENT_SPEECH[fid], FRAGMENT_TEXTS[fid]
    assert speech and speech == speech.strip() and "  " not in speech
    assert written_form(speech) == text
    plain = TASHKEEL.sub("", speech.replace(ALEF_WASLA, ALEF))
    assert plain == strip_diacritics(text)
    assert TASHKEEL.search(speech), "not vowelled"
    if fid.startswith("wa-"):
        assert speech.startswith("و\u064e")


def test_speech_is_fully_vowelled():
    """Every letter has its vowel or sukun, except the alifs and و/ي said as
    long vowels (after damma/kasra)."""
    for fid, speech in FRAGMENT_SPEECH.items():
        for word in speech.split():
            prev_vowel = ""
            for i, ch in enumerate(word):
                if TASHKEEL.match(ch):
                    continue
                marks = ""
                for nxt in word[i + 1:]:
                    if not TASHKEEL.match(nxt):
                        break
                    marks += nxt
                long_vowel = (ch == "و" and prev_vowel == "\u064f") or (ch == "ي" and prev_vowel == "\u0650")
                if ch not in "اآىٱ" and not long_vowel:
                    assert marks, (fid, speech, i, ch)
                prev_vowel = marks[-1:] if marks else ""


def test_shadda_comes_before_its_vowel():
    """espeak-ng loses the gemination or the vowel otherwise; NFC order would break it."""
    for fid, speech in FRAGMENT_SPEECH.items():
        assert not re.search(f"[\u064b-\u0650\u0652]{SHADDA}", speech), fid
    assert SHADDA + "\u064e" in FRAGMENT_SPEECH["num-6-m"]  # سِتَّةٌ


def test_hamzat_al_wasl():
    assert FRAGMENT_SPEECH["num-2-m-nom"] == "اِثْنَانِ"      # after a pause: "ithnaani"
    assert FRAGMENT_SPEECH["wa-num-2-m-nom"] == "وَٱثْنَانِ"  # after و: silent
    assert FRAGMENT_SPEECH["wa-num-1-f-cpd"] == "وَإِحْدَى"   # hamzat qat' stays


@pytest.mark.parametrize("fid, speech", [
    ("num-100", "مِئَةُ"),
    ("num-3-f", "ثَلَاثُ"),              # construct: ثَلَاثُ دَقَائِقَ
    ("num-3-m", "ثَلَاثَةٌ"),            # digit / bare number
    ("num-8-f", "ثَمَانِي"),
    ("num-11-f", "إِحْدَى عَشْرَةَ"),
    ("num-800", "ثَمَانِمِئَةِ"),
    ("noun-day-acc", "يَوْمًا"),
    ("noun-minute-dual-nom", "دَقِيقَتَانِ"),
    ("noun-second-plural", "ثَوَانٍ"),
    ("wa-num-20-nom", "وَعِشْرُونَ"),
])
def test_speech_examples(fid, speech):
    assert FRAGMENT_SPEECH[fid] == speech


def test_phrases_in_speech():
    def say(frags):
        return " ".join(FRAGMENT_SPEECH[f] for f in frags)
    assert say(count_fragments(3, NOUNS["minute"])) == "ثَلَاثُ دَقَائِقَ"
    assert say(count_fragments(11, NOUNS["minute"])) == "إِحْدَى عَشْرَةَ دَقِيقَةً"
    assert say(count_fragments(21, NOUNS["day"])) == "وَاحِدٌ وَعِشْرُونَ يَوْمًا"
    assert say(count_fragments(2, NOUNS["minute"])) == "دَقِيقَتَانِ"
    assert say(digit_fragments("2980")) == "اِثْنَانِ تِسْعَةٌ ثَمَانِيَةٌ صِفْرٌ"


def test_prompts_are_synthesized_from_the_vowelled_text():
    from types import SimpleNamespace

    from ivr.prompts import all_prompt_texts

    texts = all_prompt_texts(SimpleNamespace(prompts={"num-0": "صفر مسجل", "welcome": "أهلاً"}))
    for fid in FRAGMENT_TEXTS:
        if fid != "num-0":
            assert texts[fid] == FRAGMENT_SPEECH[fid], fid
    assert texts["num-0"] == "صفر مسجل"   # the configuration still wins
    assert texts["welcome"] == "أهلاً"


ESPEAK = shutil.which("espeak-ng")


def phonemes(text: str) -> str:
    """espeak-ng's phonemes for text, without stress marks: مِئَةُ -> "mi?atu"."""
    result = subprocess.run([ESPEAK, "-v", "ar", "-q", "-x", text],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    return re.sub(r"[',_!%=\s]", "", result.stdout)


@pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")
@pytest.mark.parametrize("fid, expected", [
    ("num-100", r"^mi\?at"),            # مِئَةُ, not "m?t"
    ("noun-day-acc", r"^jaum.*an$"),     # يَوْمًا, not "jwma:"
    ("num-3-f", r"^Tala:T"),             # ثَلَاثُ
    ("noun-minute-dual-nom", r"^daqi:qata:n"),  # دَقِيقَتَانِ
    ("noun-second-plural", r"^Taua:n"),  # ثَوَانٍ, not "Tu:a:n"
    ("num-6-m", r"^sit:a"),              # سِتَّةٌ: gemination and its vowel
    ("wa-num-2-m-nom", r"^waTna:n"),     # وَٱثْنَانِ: the wasl alif is silent
])
def test_espeak_reads_the_vowels(fid, expected):
    said = phonemes(FRAGMENT_SPEECH[fid])
    assert re.search(expected, said), (fid, FRAGMENT_SPEECH[fid], said)
