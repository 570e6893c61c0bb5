"""The AGI wire protocol fuzzed (issue 12, item 7, the parser's half): random
lines and mutations of real Asterisk replies through ``parse_env_line`` and
``ReplyParser``, no sockets (tests/component/test_fuzz_fastagi.py drives the
server itself).

What must hold for any input: the only exceptions are the protocol's own
(``AgiProtocolError``, and ``AgiHangup`` for the HANGUP notice); a reply that
comes out is typed (a three-digit code, an int result, a key that is a key);
no line takes long (Hypothesis' deadline); a usage text that never ends is
refused after ``MAX_REPLY_LINES`` lines rather than kept for ever; and after
any of that the parser still reads the next real reply right.

Replay: the examples are derandomised (the same on every run, so a failure
fails again), and a failure prints its ``@reproduce_failure(...)`` blob:
paste it above the test to replay just that example.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ivr.agi.protocol import (MAX_LINE, MAX_REPLY_LINES, SIMPLE_REPLY, AgiHangup, AgiProtocolError, AgiReply,
                              ReplyParser, parse_env_line)

# A line parses in microseconds: the deadline catches a regular expression
# that backtracks, with room for a loaded machine.
fuzzed = settings(max_examples=400, derandomize=True, print_blob=True, database=None, deadline=2000,
                  suppress_health_check=[HealthCheck.too_slow])


# Replies as Asterisk 22's res_agi writes them (tests/unit/test_agi_protocol.py has each one's meaning).
REAL_REPLIES = [
    "200 result=49 endpos=12345",
    "200 result=0 endpos=0",
    "200 result=-1 endpos=0",
    "200 result=-1",
    "200 result=1",
    "200 result=1 (takaful_karama)",
    "200 result=0 (timeout)",
    "200 result=29001012500015 (timeout)",
    "200 result=",
    "200 result= (timeout)",
    "200 result=6",
    "510 Invalid or unknown command",
    "511 Command Not Permitted on a dead channel or intercepted channel",
    "520 End of proper usage.",
    "HANGUP",
]
USAGE_520 = [
    "520-Invalid command syntax.  Proper usage follows:",
    " Usage: STREAM FILE <filename> <escape digits> [sample offset]",
    "        Send the given file, allowing playback to be interrupted by the given",
    "520 End of proper usage.",
]
REAL_ENV = ["agi_network: yes", "agi_network_script: hotline", "agi_channel: PJSIP/anonymous-00000001",
            "agi_calleridname: Amina: Hassan", "agi_rdnis: ", "agi_rdnis:", "agi_arg_1: 1442"]

# Digits of other scripts and look-alikes: str.isdigit() says yes to some
# that int() refuses (superscripts), \d matches Arabic-Indic ones.
ODD_DIGITS = "٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹²³¹⁰０１２"
ALPHABET = st.sampled_from("0123456789 -=()#*:_\r\t\x00" + ODD_DIGITS
                           + "resultHANGUPendposagi_ صفرx\u200f\ud7ff\ufeff")


@st.composite
def mutated(draw, lines: list[str]) -> str:
    """One real line, mutated: characters replaced, inserted or dropped, cut
    short, a number made huge or written in other digits, text appended."""
    line = draw(st.sampled_from(lines))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "huge", "odd_digits", "append",
                                   "double"]))
        at = draw(st.integers(0, max(0, len(line))))
        if op == "replace" and line:
            at = min(at, len(line) - 1)
            line = line[:at] + draw(ALPHABET) + line[at + 1:]
        elif op == "insert":
            line = line[:at] + draw(st.text(ALPHABET, max_size=5)) + line[at:]
        elif op == "delete":
            line = line[:at] + line[at + draw(st.integers(1, 5)):]
        elif op == "truncate":
            line = line[:at]
        elif op == "huge":
            # A number of thousands of digits: past int()'s 4,300-digit limit, still within MAX_LINE.
            line = line[:at] + draw(st.sampled_from("19")) * draw(st.sampled_from([20, 64, 65, 4301, MAX_LINE - 20])) \
                + line[at:]
        elif op == "odd_digits":
            line = "".join(draw(st.sampled_from(ODD_DIGITS)) if c.isdigit() else c for c in line)
        elif op == "append":
            line += draw(st.text(ALPHABET, max_size=10))
        elif op == "double":
            line += " " + line
    return line


LINES = st.one_of(st.text(max_size=40), st.text(ALPHABET, max_size=40), mutated(REAL_REPLIES), mutated(USAGE_520),
                  st.sampled_from(REAL_REPLIES + USAGE_520))


def feed(parser: ReplyParser, line: str) -> AgiReply | None:
    """One line in; only the protocol's own exceptions may come out, and a reply is typed."""
    try:
        reply = parser.feed(line)
    except (AgiProtocolError, AgiHangup):
        return None
    if reply is not None:
        assert isinstance(reply.code, int) and 0 <= reply.code <= 999, reply
        assert isinstance(reply.result, int), reply
        assert reply.endpos is None or isinstance(reply.endpos, int), reply
        assert isinstance(reply.raw_result, str) and isinstance(reply.text, str)
        try:
            key = reply.key
        except AgiProtocolError:
            pass
        else:
            assert key is None or (len(key) == 1 and key.isascii() and key.isprintable()), reply
    return reply


# --- environment lines -----------------------------------------------------------------------


@fuzzed
@given(st.one_of(st.text(), st.text(ALPHABET), mutated(REAL_ENV)))
@example("agi_" + "x" * MAX_LINE + ": y")
def test_an_environment_line_parses_or_is_refused(line):
    try:
        key, value = parse_env_line(line)
    except AgiProtocolError:
        return
    assert line.startswith("agi_")
    assert line == f"agi_{key}: {value}" or (line == f"agi_{key}:" and value == "")


@fuzzed
@given(st.text(st.characters(blacklist_characters="\n"), max_size=30).filter(lambda k: ": " not in k
                                                                             and not k.endswith(":")),
       st.text(st.characters(blacklist_characters="\n")))
def test_an_environment_line_gives_back_its_name_and_value(name, value):
    assert parse_env_line(f"agi_{name}: {value}") == (name, value)


# --- replies ---------------------------------------------------------------------------------


@fuzzed
@given(LINES)
@example("²²² Command Not Permitted")                 # isdigit() but not int(): was a ValueError
@example("200 result=" + "9" * 5000)                  # past int()'s digit limit: was a ValueError
@example("200 result=1 endpos=" + "9" * 5000)
@example("200 result=99999999 endpos=0")              # no key has that code: chr() raised
@example("٢٠٠ result=1")                              # Arabic-Indic digits are not a reply code
def test_any_line_is_a_reply_or_a_protocol_error(line):
    feed(ReplyParser(), line)


@fuzzed
@given(st.lists(LINES, max_size=30))
def test_after_any_lines_the_parser_reads_the_next_real_reply(lines):
    parser = ReplyParser()
    for line in lines:
        feed(parser, line)
    # Whatever came before, the end of a usage text and a real reply read right
    # (if the parser was inside a usage text, the first line closes it).
    closing = parser.feed("520 End of proper usage.")
    assert closing is not None and closing.code == 520
    reply = parser.feed("200 result=49 endpos=12345")
    assert (reply.code, reply.result, reply.endpos, reply.key) == (200, 49, 12345, "1")


@fuzzed
@given(st.integers(0, 20), st.booleans(), st.integers(0, 3))
def test_a_usage_text_or_hangups_that_never_end_are_refused(hangups, usage, extra):
    """A peer that keeps a reply open (HANGUP notices, or a 520 usage text,
    line after line) is refused once one reply has taken MAX_REPLY_LINES
    lines: the server's session ends instead of reading it for ever."""
    parser = ReplyParser()
    filler = USAGE_520[1] if usage else "HANGUP"
    lines = ["HANGUP"] * hangups + ([USAGE_520[0]] if usage else []) + [filler] * (MAX_REPLY_LINES + 1 + extra)
    for n, line in enumerate(lines, 1):
        try:
            assert parser.feed(line) is None
        except AgiHangup:
            pass
        except AgiProtocolError:
            assert n == MAX_REPLY_LINES + 1
            return
    pytest.fail(f"{len(lines)} lines of one reply were accepted")


def test_a_long_real_usage_text_is_still_one_reply():
    parser = ReplyParser()
    lines = [USAGE_520[0], *[USAGE_520[1]] * (MAX_REPLY_LINES - 2), USAGE_520[-1]]
    assert [parser.feed(line) for line in lines[:-1]] == [None] * (len(lines) - 1)
    assert parser.feed(lines[-1]).text.count("\n") == MAX_REPLY_LINES - 1


@pytest.mark.parametrize("line, key", [("200 result=49 endpos=1", "1"), ("200 result=35", "#"),
                                       ("200 result=42", "*"), ("200 result=0 endpos=9", None),
                                       ("200 result=-1", None), ("510 Invalid or unknown command", None)])
def test_the_key_of_a_reply(line, key):
    assert ReplyParser().feed(line).key == key


@pytest.mark.parametrize("line", ["200 result=99999999 endpos=0", "200 result=1114112", "200 result=55296",
                                  "200 result=200", "200 result=" + "9" * 64])
def test_a_result_that_is_no_key_is_a_protocol_error_not_a_crash(line):
    reply = ReplyParser().feed(line)
    with pytest.raises(AgiProtocolError):
        reply.key


@fuzzed
@given(st.from_regex(SIMPLE_REPLY, fullmatch=True))
@example("200 result=-1 endpos=0")
@example("200 result=0123")
@example("200 result=49 endpos=000100")
def test_the_quick_read_of_a_common_reply_is_the_general_rules(line):
    # feed() reads "200 result=N [endpos=M]" at once; _feed() is the general rule.
    assert ReplyParser().feed(line) == ReplyParser()._feed(line)
