"""The AGI wire protocol, without I/O.

Asterisk opens a FastAGI session by sending ``agi_<name>: <value>`` lines and
a blank line; after that each command we send gets one reply::

    200 result=49 endpos=12345        success; result is the command's value
    200 result=-1                     the channel hung up during the command
    510 Invalid or unknown command
    511 Command Not Permitted on a dead channel or intercepted channel
    520-Invalid command syntax.  Proper usage follows:
    ...
    520 End of proper usage.          (a multi-line usage error)
    HANGUP                            (an unsolicited notice, FastAGI only)

``parse_env_line`` and ``ReplyParser`` turn lines into typed values; they are
tested from recorded lines, no sockets involved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_LINE = 8192
MAX_ENV = 65536  # the whole AGI environment block
# Lines one reply may take: a 520 usage text is a few dozen, a HANGUP notice
# one more. A peer that keeps a reply open past this is not Asterisk.
MAX_REPLY_LINES = 200
# Longer than any entry a caller types (GET DATA); int() refuses 4,300 digits.
MAX_RESULT_DIGITS = 64
# GET DATA answers with the digits typed, possibly none: "200 result= (timeout)".
# ASCII digits only: \d would take Arabic-Indic ones, which Asterisk never sends.
_REPLY = re.compile(r"^(?P<code>\d{3}) result=(?P<result>-?[0-9*#]*)(?: \((?P<data>.*?)\))?(?P<rest>( .*)?)$",
                    re.ASCII)
_ENDPOS = re.compile(r"endpos=(-?\d{1,%d})(?!\d)" % MAX_RESULT_DIGITS, re.ASCII)
# Nearly every reply is one of these; read at once, to the same AgiReply the
# general rule gives (tests/unit/test_fuzz_agi_protocol.py checks it).
SIMPLE_REPLY = re.compile(r"200 result=(-?[0-9]{1,18})(?: endpos=([0-9]{1,18}))?", re.ASCII)


class AgiProtocolError(Exception):
    """The peer sent something that is not AGI."""


class AgiHangup(Exception):
    """The channel hung up: stop the call's flow, nothing more can be played."""


@dataclass(frozen=True)
class AgiReply:
    code: int
    result: int = 0
    data: str | None = None
    endpos: int | None = None
    text: str = ""
    raw_result: str = ""  # the result as sent: GET DATA's digits keep their leading zeros

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def key(self) -> str | None:
        """The key of a STREAM FILE or WAIT FOR DIGIT reply (its result is the
        key's ASCII code), None when no key was pressed (0) or it failed (-1).
        Any other code is no key a phone sends."""
        if self.result <= 0:
            return None
        if self.result > 126 or not chr(self.result).isprintable():
            raise AgiProtocolError(f"result {self.result} is not a key: {self.text[:80]!r}")
        return chr(self.result)


def parse_env_line(line: str) -> tuple[str, str]:
    """``agi_channel: PJSIP/anonymous-0001`` -> ``("channel", "PJSIP/anonymous-0001")``."""
    if not line.startswith("agi_") or ": " not in line:
        # Some values are legitimately empty ("agi_rdnis: "); keep the split strict.
        if line.startswith("agi_") and line.endswith(":"):
            return line[4:-1], ""
        raise AgiProtocolError(f"not an AGI environment line: {line[:80]!r}")
    key, _, value = line.partition(": ")
    return key[4:], value


@dataclass
class ReplyParser:
    """Feeds reply lines; ``feed`` returns an ``AgiReply`` once one is complete.

    The only multi-line reply is the 520 usage text, which ends with a line
    that starts with ``520 ``.
    """

    _usage: list[str] = field(default_factory=list)
    _lines: int = 0  # lines of the reply being read

    def feed(self, line: str) -> AgiReply | None:
        self._lines += 1
        if self._lines > MAX_REPLY_LINES:
            raise AgiProtocolError(f"a reply of more than {MAX_REPLY_LINES} lines")
        if not self._usage:
            simple = SIMPLE_REPLY.fullmatch(line)
            if simple is not None:
                self._lines = 0
                raw, endpos = simple.groups()
                return AgiReply(code=200, result=int(raw), endpos=None if endpos is None else int(endpos),
                                text=line, raw_result=raw)
        reply = self._feed(line)
        if reply is not None:
            self._lines = 0
        return reply

    def _feed(self, line: str) -> AgiReply | None:
        if self._usage:
            self._usage.append(line)
            if line.startswith("520 "):
                text = "\n".join(self._usage)
                self._usage = []
                return AgiReply(code=520, result=-1, text=text)
            return None
        if line == "HANGUP":
            raise AgiHangup("HANGUP notice from Asterisk")
        if line.startswith("520-"):
            self._usage.append(line)
            return None
        m = _REPLY.match(line)
        if m:
            rest = m.group("rest") or ""
            endpos = _ENDPOS.search(rest)
            raw = m.group("result")
            if len(raw) > MAX_RESULT_DIGITS:
                number = -1  # no command's result: never a success
            else:
                number = int(raw) if raw.lstrip("-").isdigit() else 0
            return AgiReply(
                code=int(m.group("code")),
                result=number,
                raw_result=raw,
                data=m.group("data"),
                endpos=int(endpos.group(1)) if endpos else None,
                text=line,
            )
        if len(line) >= 3 and line[:3].isascii() and line[:3].isdigit() and line[3:4] in (" ", ""):
            return AgiReply(code=int(line[:3]), result=-1, text=line)
        raise AgiProtocolError(f"unexpected reply line: {line[:80]!r}")


def quote(arg: str) -> str:
    """Quote one command argument the way res_agi's parser expects."""
    return '"' + str(arg).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def command(*words: str | int) -> str:
    """Build a command line; the first word is the verb, the rest are quoted."""
    verb, *args = words
    return " ".join([str(verb)] + [quote(str(a)) for a in args])


# What MSet's argument parser (Asterisk's standard application arguments,
# then a split at "=") takes as plain text: a value with a separator, quote,
# backslash, bracket, "=" or "$", or with space at either end, or empty, is
# set with SET VARIABLE instead (never escaped: one parser fewer to trust).
_MSET_NAME = re.compile(r"^_{0,2}[A-Za-z][A-Za-z0-9_]*(\([A-Za-z0-9_]+\))?$", re.ASCII)
_MSET_UNSAFE = re.compile(r'[,"\\()\[\]{}|=$\'\x00-\x1f\x7f]')


def mset_argument(values) -> str | None:
    """``MSet``'s argument setting every ``name=value`` of ``values`` in one
    application run (``EXEC MSet``: one AGI round trip instead of one per
    variable), or None when some name or value is not plain enough for it."""
    pairs = []
    for name, value in values.items():
        value = str(value)
        if (not value or _MSET_UNSAFE.search(value) or value[0].isspace() or value[-1].isspace()
                or not _MSET_NAME.match(name)):
            return None
        pairs.append(f"{name}={value}")
    return ",".join(pairs)
