"""SIPp callers and agents, shared by ``ivr simulate`` and the end-to-end tests.

* a **caller** dials a hotline on the carrier port, presses keys (RFC 4733
  DTMF played from the captures Debian's ``sip-tester`` ships), then either
  waits until the other side hangs up or gives up after a while;
* an **agent** is two SIPp processes: one REGISTERs ``agent<id>`` with its
  digest credentials on the agent port, pointing the contact at the other,
  a UAS that answers each call the queue rings, talks, and hangs up.

Scenarios are rendered from templates so each caller can press its own keys.
Either side may hang up first, so every scenario accepts both orders.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .dtmf_pcap import write_presses

DTMF_DIR = Path("/usr/share/sip-tester")
DTMF_FILES = {**{str(d): f"dtmf_2833_{d}.pcap" for d in range(10)}, "#": "dtmf_2833_pound.pcap",
              "*": "dtmf_2833_star.pcap"}

_SDP = """v=0
o=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv"""


# Our answer to the far end's BYE; the scenario then jumps to its end.
_OK_TO_BYE = """  <send next="end"><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>"""


@dataclass(frozen=True)
class CallerScript:
    """What one caller does. ``keys`` are (delay before the key in ms, key)."""

    number: str
    keys: tuple[tuple[int, str], ...] = ()
    # After the last key: hang up after this long unless the far end hangs up first.
    hold_ms: int = 60_000
    caller_id: str = "0225550100"
    expect: str = "answer"  # or a SIP final response code the call must get, e.g. "404"


def typed_keys(number: str, first_delay_ms: int, gap_ms: int = 400, end: str = "#") -> tuple[tuple[int, str], ...]:
    """Keys for typing ``number`` then ``end`` (e.g. a national ID and #)."""
    keys = [(first_delay_ms, number[0])] + [(gap_ms, d) for d in number[1:]]
    return tuple(keys) + (((gap_ms, end),) if end else ())


def caller_scenario(script: CallerScript, dtmf_files: list[Path] | None = None) -> str:
    invite = f"""INVITE sip:{script.number}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:{script.caller_id}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:{script.number}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{script.caller_id}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      {_SDP.replace(chr(10), chr(10) + '      ')}"""
    parts = [f'<?xml version="1.0" encoding="UTF-8" ?>\n<scenario name="caller {script.number}">',
             f"  <send retrans=\"500\"><![CDATA[\n      {invite}\n    ]]></send>",
             '  <recv response="100" optional="true"/>',
             '  <recv response="180" optional="true"/>',
             '  <recv response="183" optional="true"/>']
    if script.expect != "answer":
        parts += [f'  <recv response="{script.expect}"/>',
                  _ack(), "</scenario>"]
        return "\n".join(parts) + "\n"
    parts += ['  <recv response="200" rtd="true"/>', _ack()]
    for n, (delay, key) in enumerate(script.keys):
        pcap = dtmf_files[n] if dtmf_files else DTMF_DIR / DTMF_FILES[key]
        parts.append(f'  <pause milliseconds="{delay}"/>')
        parts.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
    # The DTMF clip plays in the background; let it finish.
    parts.append('  <pause milliseconds="400"/>')
    parts.append(f'  <recv request="BYE" timeout="{script.hold_ms}" ontimeout="hangup"/>')
    parts.append(_OK_TO_BYE)
    parts.append('  <label id="hangup"/>')
    parts.append(f"""  <send retrans="500"><![CDATA[
      BYE sip:{script.number}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:{script.caller_id}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:{script.number}@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>""")
    parts.append('  <recv response="200" crlf="true"/>')
    parts.append('  <label id="end"/>')
    parts.append("</scenario>")
    return "\n".join(parts) + "\n"


def _ack() -> str:
    return """  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>"""


def register_scenario(user: str, password: str, contact_port: int, expires: int = 600) -> str:
    def register(cseq: int, auth: str) -> str:
        return f"""  <send retrans="500"><![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:{user}@[remote_ip]>
      Call-ID: [call_id]
      CSeq: {cseq} REGISTER
      Contact: <sip:{user}@[local_ip]:{contact_port}>
      Expires: {expires}
      Max-Forwards: 70{auth}
      Content-Length: 0
    ]]></send>"""

    return "\n".join([
        f'<?xml version="1.0" encoding="UTF-8" ?>\n<scenario name="register {user}">',
        register(1, ""),
        '  <recv response="401" auth="true"/>',
        register(2, f"\n      [authentication username={user} password={password}]"),
        '  <recv response="200"/>',
        "</scenario>",
    ]) + "\n"


def _pressed(keys: tuple[tuple[int, str], ...]) -> str:
    out = []
    for delay, key in keys:
        out.append(f'  <pause milliseconds="{delay}"/>')
        out.append(f'  <nop><action><exec play_pcap_audio="{DTMF_DIR / DTMF_FILES[key]}"/></action></nop>')
    if keys:
        out.append('  <pause milliseconds="400"/>')   # the clip plays in the background: let it finish
    return "".join("\n" + line for line in out)


def _ringing(user: str) -> str:
    """A softphone's 180 Ringing to the INVITE just received."""
    return f"""  <send><![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:{user}@[local_ip]:[local_port]>
      Content-Length: 0
    ]]></send>"""


def agent_scenario(user: str, ring_ms: int = 500, talk_ms: int = 3000,
                   expect_headers: dict[str, str] | None = None, keys: tuple[tuple[int, str], ...] = ()) -> str:
    """An answering phone. ``keys``: (delay in ms, key) pressed once the call
    is up (RFC 2833, the captures ``caller_scenario`` plays), before it waits
    ``talk_ms`` for the far end's BYE."""
    # A header the call must carry (e.g. X-IVR-Request-Type): the call fails otherwise.
    checks = "".join(
        f'\n      <ereg regexp="{value}" search_in="hdr" header="{name}:" check_it="true" assign_to="h{n}"/>'
        for n, (name, value) in enumerate((expect_headers or {}).items()))
    # SIPp refuses variables that are assigned but never used; Reference them.
    names = ",".join(f"h{n}" for n in range(len(expect_headers or {})))
    reference = f'\n  <Reference variables="{names}"/>' if names else ""
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="agent {user}">
  <recv request="INVITE" crlf="true">
    <action>{checks}
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="peer_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="own_to"/>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="peer_contact"/>
    </action>
  </recv>
{_ringing(user)}
  <pause milliseconds="{ring_ms}"/>
  <send retrans="500"><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:{user}@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      {_SDP.replace(chr(10), chr(10) + '      ')}
    ]]></send>
  <recv request="ACK" rtd="true" crlf="true"/>{_pressed(keys)}
  <recv request="BYE" timeout="{talk_ms}" ontimeout="hangup"/>
{_OK_TO_BYE}
  <label id="hangup"/>
  <send retrans="500"><![CDATA[
      BYE [$peer_contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$own_to];tag=[pid]SIPpTag01[call_number]
      To: [$peer_from]
      Call-ID: [call_id]
      CSeq: 1 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
  <recv response="200" crlf="true"/>
  <label id="end"/>{reference}
</scenario>
"""


class PortPool:
    """Distinct loopback ports for each SIPp process (signalling and media)."""

    def __init__(self, start: int = 16000, step: int = 10):
        self._next = itertools.count(start, step)

    def take(self) -> int:
        return next(self._next)


@dataclass
class SippProcess:
    name: str
    proc: subprocess.Popen
    workdir: Path
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.workdir / f"{self.name}.log"

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def invites(self) -> list[tuple[str, str]]:
        """(called user, calling user) of each INVITE this UAS received, in
        order, read from its message trace (``-trace_msg``)."""
        trace = self.workdir / f"{self.name}.messages"
        return _INVITE.findall(trace.read_text(errors="replace")) if trace.exists() else []


# An INVITE in a SIPp message trace: its request URI's user, then its From's.
_INVITE = re.compile(r"message received \[\d+\] bytes :\s*\n\s*INVITE sip:([^@\s>;]+)@[^\n]*\n"
                     r"(?:[^\n]+\n)*?From:[^<\n]*<sip:([^@>]+)@")


class Sipp:
    """Runs SIPp scenarios against Asterisk on loopback."""

    def __init__(self, *, workdir: Path | None = None, ports: PortPool | None = None):
        if shutil.which("sipp") is None:
            raise RuntimeError("sipp is missing: apt-get install sip-tester")
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="ivr-sipp-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ports = ports or PortPool()
        self._count = itertools.count(1)

    def start(self, name: str, scenario: str, *, target: str | None, port: int | None = None,
              calls: int = 1, timeout_s: int = 120, extra: tuple[str, ...] = ()) -> SippProcess:
        name = f"{name}-{next(self._count)}"
        xml = self.workdir / f"{name}.xml"
        xml.write_text(scenario)
        port = port or self.ports.take()
        media = self.ports.take() + 4000
        cmd = ["sipp", *([target] if target else []), "-sf", str(xml), "-i", "127.0.0.1", "-p", str(port),
               "-mi", "127.0.0.1", "-mp", str(media), "-m", str(calls), "-timeout", f"{timeout_s}s",
               "-nostdin", "-trace_err", "-error_file", str(self.workdir / f"{name}.errors"),
               "-trace_msg", "-message_file", str(self.workdir / f"{name}.messages"), *extra]
        log = (self.workdir / f"{name}.log").open("w")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=self.workdir, start_new_session=True)
        return SippProcess(name, proc, self.workdir)

    def call(self, script: CallerScript, *, target: str) -> SippProcess:
        n = next(self._count)
        dtmf = write_presses(self.workdir, f"call{n}", "".join(k for _, k in script.keys))
        return self.start("caller", caller_scenario(script, dtmf), target=target,
                          timeout_s=int(script.hold_ms / 1000) + 90)


@dataclass
class SippAgent:
    """A softphone: a registration and a UAS answering the queue's calls."""

    user: str
    uas: SippProcess
    port: int

    def callers(self) -> list[str]:
        """Caller numbers of the calls this phone received, in order."""
        return [calling for _, calling in self.uas.invites()]


def start_agent(sipp: Sipp, *, user: str, password: str, target: str, ring_ms: int = 500,
                talk_ms: int = 3000, calls: int = 1000, expect_headers: dict[str, str] | None = None) -> SippAgent:
    port = sipp.ports.take()
    uas = sipp.start(f"agent-{user}", agent_scenario(user, ring_ms, talk_ms, expect_headers), target=None, port=port,
                     calls=calls, timeout_s=3600)
    # Register only once the UAS listens, so the first call finds it.
    time.sleep(0.2)
    reg = sipp.start(f"register-{user}", register_scenario(user, password, port), target=target)
    code = reg.wait(timeout=15)
    if code != 0:
        uas.stop()
        raise RuntimeError(f"agent {user} could not register (sipp exit {code}): {reg.output()[-800:]}")
    return SippAgent(user, uas, port)


def stop_agent(sipp: Sipp, agent: SippAgent, *, password: str, target: str) -> None:
    """Unregister (Expires: 0) so Asterisk stops ringing it, then stop the UAS."""
    reg = sipp.start(f"unregister-{agent.user}", register_scenario(agent.user, password, agent.port, expires=0),
                     target=target)
    reg.wait(timeout=15)
    agent.uas.stop()


def unanswering_agent_scenario(user: str) -> str:
    """A softphone that rings and is never picked up: Asterisk gives up
    (CANCEL) after the queue's ring timeout; we answer 200 to the CANCEL and
    487 to the INVITE, as a real phone does."""
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="agent {user} who does not answer">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="invite_cseq"/>
    </action>
  </recv>
{_ringing(user)}
  <recv request="CANCEL"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>
  <send><![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [$invite_cseq] INVITE
      Content-Length: 0
    ]]></send>
  <recv request="ACK"/>
  <Reference variables="invite_cseq"/>
</scenario>
"""


def feature_code_scenario(user: str, password: str, code: str, hold_ms: int = 20_000) -> str:
    """An agent's softphone dials a feature code (e.g. *21) with its digest
    credentials, listens to the spoken confirmation, and the engine hangs up."""
    def invite(cseq: int, auth: str) -> str:
        return f"""  <send retrans="500"><![CDATA[
      INVITE sip:{code}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:{code}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:{user}@[local_ip]:[local_port]>
      Max-Forwards: 70{auth}
      Content-Type: application/sdp
      Content-Length: [len]

      {_SDP.replace(chr(10), chr(10) + '      ')}
    ]]></send>"""

    def ack(cseq: int) -> str:
        return f"""  <send><![CDATA[
      ACK sip:{code}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>"""

    return "\n".join([
        f'<?xml version="1.0" encoding="UTF-8" ?>\n<scenario name="feature code {code} by {user}">',
        invite(1, ""),
        '  <recv response="100" optional="true"/>',
        '  <recv response="401" auth="true"/>',
        ack(1),
        invite(2, f"\n      [authentication username={user} password={password}]"),
        '  <recv response="100" optional="true"/>',
        '  <recv response="180" optional="true"/>',
        '  <recv response="183" optional="true"/>',
        '  <recv response="200" rtd="true"/>',
        ack(2),
        f'  <recv request="BYE" timeout="{hold_ms}"/>',
        _OK_TO_BYE,
        '  <label id="end"/>',
        "</scenario>",
    ]) + "\n"


def dial_feature_code(sipp: Sipp, *, user: str, password: str, code: str, target: str,
                      timeout: float = 40.0) -> SippProcess:
    """Dial a feature code from an agent's account and wait for the engine to hang up."""
    proc = sipp.start(f"code-{user}", feature_code_scenario(user, password, code), target=target)
    proc.wait(timeout=timeout)
    return proc


def start_unanswering_agent(sipp: Sipp, *, user: str, password: str, target: str, calls: int = 100) -> SippAgent:
    port = sipp.ports.take()
    uas = sipp.start(f"agent-noanswer-{user}", unanswering_agent_scenario(user), target=None, port=port,
                     calls=calls, timeout_s=3600)
    time.sleep(0.2)
    reg = sipp.start(f"register-{user}", register_scenario(user, password, port), target=target)
    if reg.wait(timeout=15) != 0:
        uas.stop()
        raise RuntimeError(f"agent {user} could not register: {reg.output()[-800:]}")
    return SippAgent(user, uas, port)


def start_citizen_phone(sipp: Sipp, *, port: int, answer: bool = True, ring_ms: int = 1000,
                        talk_ms: int = 5000, calls: int = 10, keys: tuple[tuple[int, str], ...] = ()) -> SippProcess:
    """The citizen's phone behind the outbound carrier (callbacks and service
    checks ring here); ``keys`` are pressed once it answered."""
    scenario = (agent_scenario("citizen", ring_ms, talk_ms, keys=keys) if answer
                else unanswering_agent_scenario("citizen"))
    return sipp.start("citizen", scenario, target=None, port=port, calls=calls, timeout_s=3600)
