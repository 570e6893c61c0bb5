"""The AGI wire protocol from recorded lines: no sockets."""

from __future__ import annotations

import pytest

from ivr.agi.protocol import (AgiHangup, AgiProtocolError, AgiReply, ReplyParser, command, mset_argument, parse_env_line,
                              quote)

# --- environment lines -----------------------------------------------------------


@pytest.mark.parametrize("line, expected", [
    ("agi_channel: PJSIP/anonymous-00000001", ("channel", "PJSIP/anonymous-00000001")),
    ("agi_network_script: hotline", ("network_script", "hotline")),
    ("agi_request: agi://127.0.0.1:4573/hotline", ("request", "agi://127.0.0.1:4573/hotline")),
    ("agi_arg_1: 1442", ("arg_1", "1442")),
    ("agi_calleridname: Amina: Hassan", ("calleridname", "Amina: Hassan")),
    ("agi_language: ar", ("language", "ar")),
    # Empty values, with and without the space Asterisk writes after the colon.
    ("agi_rdnis: ", ("rdnis", "")),
    ("agi_rdnis:", ("rdnis", "")),
    ("agi_accountcode: ", ("accountcode", "")),
])
def test_parse_env_line(line, expected):
    assert parse_env_line(line) == expected


@pytest.mark.parametrize("line", [
    "hello",
    "GET / HTTP/1.1",
    "channel: PJSIP/x",
    "agi_channel PJSIP/x",
    "200 result=0",
])
def test_parse_env_line_rejects_non_env_lines(line):
    with pytest.raises(AgiProtocolError):
        parse_env_line(line)


# --- replies ---------------------------------------------------------------------


def feed_one(line: str) -> AgiReply:
    reply = ReplyParser().feed(line)
    assert reply is not None
    return reply


def test_reply_key_pressed_with_endpos():
    reply = feed_one("200 result=49 endpos=12345")
    assert (reply.code, reply.result, reply.endpos, reply.data) == (200, 49, 12345, None)
    assert reply.ok
    assert chr(reply.result) == "1"


def test_reply_prompt_finished():
    reply = feed_one("200 result=0 endpos=0")
    assert (reply.code, reply.result, reply.endpos) == (200, 0, 0)
    assert reply.ok


def test_reply_failure_or_hangup():
    reply = feed_one("200 result=-1 endpos=0")
    assert (reply.code, reply.result, reply.endpos) == (200, -1, 0)


def test_reply_without_endpos():
    reply = feed_one("200 result=1")
    assert (reply.code, reply.result, reply.endpos, reply.data) == (200, 1, None, None)


def test_reply_with_data():
    reply = feed_one("200 result=1 (takaful_karama)")
    assert (reply.code, reply.result, reply.data) == (200, 1, "takaful_karama")
    assert reply.endpos is None


def test_reply_with_data_and_endpos():
    reply = feed_one("200 result=0 (timeout) endpos=8000")
    assert (reply.result, reply.data, reply.endpos) == (0, "timeout", 8000)


# GET DATA answers with the digits typed, as typed: none at all when the caller
# pressed only # or nothing, "(timeout)" when the entry ended on silence.


def test_reply_get_data_digits_then_timeout():
    reply = feed_one("200 result=29001012500015 (timeout)")
    assert (reply.code, reply.raw_result, reply.data) == (200, "29001012500015", "timeout")
    assert reply.ok
    assert reply.result == 29001012500015


def test_reply_get_data_nothing_typed():
    reply = feed_one("200 result= (timeout)")
    assert (reply.code, reply.raw_result, reply.data) == (200, "", "timeout")
    assert reply.result == 0
    assert reply.ok


def test_reply_get_data_hash_alone():
    reply = feed_one("200 result=")
    assert (reply.code, reply.raw_result, reply.data, reply.result) == (200, "", None, 0)


def test_reply_get_data_keeps_leading_zeros():
    reply = feed_one("200 result=0123")
    assert reply.raw_result == "0123"
    assert reply.result == 123
    assert reply.data is None


def test_reply_get_data_hangup():
    reply = feed_one("200 result=-1")
    assert (reply.code, reply.raw_result, reply.result) == (200, "-1", -1)


@pytest.mark.parametrize("line, raw", [
    ("200 result=49 endpos=12345", "49"),
    ("200 result=0 endpos=0", "0"),
    ("200 result=-1 endpos=0", "-1"),
    ("200 result=1 (takaful_karama)", "1"),
])
def test_reply_raw_result_of_other_commands(line, raw):
    assert feed_one(line).raw_result == raw


def test_reply_510():
    reply = feed_one("510 Invalid or unknown command")
    assert reply.code == 510
    assert not reply.ok
    assert reply.result == -1
    assert reply.text == "510 Invalid or unknown command"


def test_reply_511():
    reply = feed_one("511 Command Not Permitted on a dead channel or intercepted channel")
    assert reply.code == 511
    assert not reply.ok
    assert "dead channel" in reply.text


USAGE_520 = [
    "520-Invalid command syntax.  Proper usage follows:",
    " Usage: STREAM FILE <filename> <escape digits> [sample offset]",
    "        Send the given file, allowing playback to be interrupted by the given",
    "        digits, if any.",
    "520 End of proper usage.",
]


def test_reply_520_multiline_usage():
    parser = ReplyParser()
    for line in USAGE_520[:-1]:
        assert parser.feed(line) is None
    reply = parser.feed(USAGE_520[-1])
    assert reply is not None
    assert reply.code == 520
    assert not reply.ok
    assert reply.text.splitlines() == USAGE_520
    # The parser is ready for the next, ordinary reply.
    nxt = parser.feed("200 result=1")
    assert (nxt.code, nxt.result) == (200, 1)


def test_reply_520_usage_line_that_looks_like_a_reply_is_kept_in_the_text():
    parser = ReplyParser()
    assert parser.feed("520-Invalid command syntax.  Proper usage follows:") is None
    assert parser.feed("200 result=1") is None
    reply = parser.feed("520 End of proper usage.")
    assert reply.code == 520
    assert "200 result=1" in reply.text


def test_hangup_notice_raises():
    with pytest.raises(AgiHangup):
        ReplyParser().feed("HANGUP")


def test_parser_usable_after_hangup_notice():
    parser = ReplyParser()
    with pytest.raises(AgiHangup):
        parser.feed("HANGUP")
    reply = parser.feed("200 result=-1 endpos=0")
    assert (reply.code, reply.result) == (200, -1)


@pytest.mark.parametrize("line", [
    "garbage",
    "",
    "hello world",
    "agi_channel: PJSIP/x",
    "20 result=1",
    "2000 result=1",
    "abc result=1",
])
def test_garbage_raises_protocol_error(line):
    with pytest.raises(AgiProtocolError):
        ReplyParser().feed(line)


# --- commands --------------------------------------------------------------------


def test_command_quotes_every_argument():
    assert command("STREAM FILE", "ivr/welcome-1442", "0123456789*#") == \
        'STREAM FILE "ivr/welcome-1442" "0123456789*#"'
    assert command("STREAM FILE", "ivr/transfer", "") == 'STREAM FILE "ivr/transfer" ""'
    assert command("WAIT FOR DIGIT", 5000) == 'WAIT FOR DIGIT "5000"'
    assert command("CHANNEL STATUS") == "CHANNEL STATUS"


def test_command_get_data():
    assert command("GET DATA", "ivr/national-id-enter", 6000, 20) == 'GET DATA "ivr/national-id-enter" "6000" "20"'


def test_command_escapes_quotes_and_backslashes():
    assert command("SET VARIABLE", "X", 'say "hi"') == r'SET VARIABLE "X" "say \"hi\""'
    assert command("SET VARIABLE", "X", "a\\b") == r'SET VARIABLE "X" "a\\b"'
    # The backslash is escaped before the quote, so \" becomes \\\" and not \\".
    assert quote('\\"') == r'"\\\""'


def test_command_cannot_be_split_by_a_newline():
    line = command("SET VARIABLE", "X", "a\nGET VARIABLE Y")
    assert "\n" not in line
    assert line == 'SET VARIABLE "X" "a GET VARIABLE Y"'


def test_command_arabic_text_is_kept():
    assert command("SET VARIABLE", "NAME", "تكافل وكرامة") == 'SET VARIABLE "NAME" "تكافل وكرامة"'


def test_mset_sets_the_routes_variables_in_order_in_one_argument():
    values = {"IVR_QUEUE": "nasser_bank", "IVR_PRIORITY": "5", "__IVR_PROGRAM": "nasser_bank",
              "CALLERID(name)": "بنك ناصر الاجتماعي - استفسار"}
    assert mset_argument(values) == ("IVR_QUEUE=nasser_bank,IVR_PRIORITY=5,__IVR_PROGRAM=nasser_bank,"
                                     "CALLERID(name)=بنك ناصر الاجتماعي - استفسار")
    # ...and on the wire, quoted for AGI like any argument.
    assert command("EXEC", "MSet", mset_argument({"A": "x", "B": "y z"})) == 'EXEC "MSet" "A=x,B=y z"'


@pytest.mark.parametrize("value", ["a,b", "", 'say "x"', "a\\b", " lead", "trail ", "a\nb", "a\rb", "a(b", "a)b",
                                   "a[b", "a{b", "a|b", "a=b", "${CALLERID(num)}", "it's", "\x7f"])
def test_a_value_mset_could_misread_is_set_one_by_one(value):
    # Separators, quotes, escapes, brackets, "=", "$", control characters,
    # space at either end and empty values: never handed to MSet's parser.
    assert mset_argument({"IVR_QUEUE": "forsa", "__IVR_PROGRAM": value}) is None


@pytest.mark.parametrize("name", ["IVR QUEUE", "9LIVES", "___X", "A=B", "CALLERID(name", "A,B", ""])
def test_a_name_mset_could_misread_is_set_one_by_one(name):
    assert mset_argument({name: "x"}) is None
