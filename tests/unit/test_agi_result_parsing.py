"""Strict parsing of AGI ``result=``: a result that is not a number is never a success."""

from __future__ import annotations

import pytest

from ivr.agi.protocol import AgiReply, ReplyParser


def feed(line: str) -> AgiReply:
    reply = ReplyParser().feed(line)
    assert reply is not None
    return reply


@pytest.mark.parametrize("line", ["200 result=abc", "200 result=12abc", "200 result=0abc", "200 result=x1",
                                  "200 result=1.5", "200 result=0x31"])
def test_non_numeric_result_is_a_failure_not_a_zero(line):
    reply = feed(line)
    assert reply.code == 200
    # -1: the callers (play, wait_digit) check the channel instead of taking "prompt ended" (0).
    assert reply.result == -1
    assert reply.result != 0
    assert not (reply.ok and reply.result == 0)
    assert not (reply.ok and reply.result == 1)  # SET VARIABLE needs result=1
    assert reply.raw_result == ""                # GET DATA sees no digits
    assert reply.endpos is None
    assert reply.text == line


def test_endpos_still_parses():
    reply = feed("200 result=49 endpos=100")
    assert (reply.code, reply.result, reply.endpos, reply.data, reply.raw_result) == (200, 49, 100, None, "49")
    assert reply.ok
    assert chr(reply.result) == "1"


def test_zero_with_endpos():
    reply = feed("200 result=0 endpos=0")
    assert (reply.code, reply.result, reply.endpos) == (200, 0, 0)


def test_data_in_parentheses_still_parses():
    reply = feed("200 result=1 (x)")
    assert (reply.code, reply.result, reply.data, reply.raw_result) == (200, 1, "x", "1")
    assert reply.ok


def test_data_with_spaces_and_endpos():
    reply = feed("200 result=1 (PJSIP/anonymous-00000001) endpos=5")
    assert reply.result == 1
    assert reply.data == "PJSIP/anonymous-00000001"
    assert reply.endpos == 5


@pytest.mark.parametrize("line, raw, result", [
    ("200 result=0123", "0123", 123),
    ("200 result=", "", 0),
    ("200 result= (timeout)", "", 0),
    ("200 result=-1", "-1", -1),
    ("200 result=-1 endpos=0", "-1", -1),
    ("200 result=*", "*", 0),
    ("200 result=12#", "12#", 0),
])
def test_digits_and_empty_results(line, raw, result):
    reply = feed(line)
    assert reply.raw_result == raw
    assert reply.result == result
