"""Hostile SIP at the carrier port (issue 12, item 11): malformed and
oversize INVITEs, and a flood of calls to numbers that are not hotlines at
50 a second for 20 s, while legitimate callers dial 1442. Asterisk answers
the garbage as configured (404 for a number that is not a hotline, an error
or silence for what is not SIP), the legitimate calls reach the IVR and a
queue, and the engine counts none of the garbage."""

from __future__ import annotations

import socket
import time
import uuid

from app.simulate.sipp import CallerScript, caller_scenario

from fault_stack import FORSA_INQUIRY, clear_members, report, wait_until

FLOOD_RATE = 50
FLOOD_SECONDS = 20


def invite(number: str, *, extra_headers: str = "", call_id: str | None = None, cseq: str = "1 INVITE",
           port: int = 5080) -> bytes:
    call_id = call_id if call_id is not None else uuid.uuid4().hex
    lines = [f"INVITE sip:{number}@127.0.0.1:{port} SIP/2.0",
             f"Via: SIP/2.0/UDP 127.0.0.1:40999;branch=z9hG4bK{uuid.uuid4().hex[:12]}",
             'From: "x" <sip:0227000000@127.0.0.1:40999>;tag=1', f"To: <sip:{number}@127.0.0.1:{port}>"]
    if call_id:
        lines.append(f"Call-ID: {call_id}")
    lines += [f"CSeq: {cseq}", "Contact: <sip:x@127.0.0.1:40999>", "Max-Forwards: 70"]
    if extra_headers:
        lines.append(extra_headers)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# Scanners dial numbers that are not hotlines. (A lenient but well-formed
# INVITE to a hotline number is a call: pjsip answers an 8 KB header, a CSeq
# it cannot parse or a Content-Length longer than the body, and such a call is
# counted like any other; docs/reliability.md.)
HOSTILE = {
    "unknown number": invite("5551234", call_id="h-unknown"),
    "oversize header (8 KB)": invite("5551235", extra_headers="X-Junk: " + "A" * 8192, call_id="h-oversize"),
    "no Call-ID": invite("5551236", call_id=""),
    "broken CSeq": invite("5551237", cseq="abc INVITE", call_id="h-cseq"),
    "not SIP at all": b"\x00\xff" * 200 + b"GET / HTTP/1.0\r\n\r\n",
    "lying Content-Length": invite("5551238", call_id="h-length").replace(b"Content-Length: 0",
                                                                          b"Content-Length: 99999"),
    "a number as long as a header": invite("9" * 2000, call_id="h-long"),
}


def send_hostile(carrier_port: int) -> dict[str, str]:
    """Each hostile message once over UDP; Asterisk's final answer to it
    (matched by its Call-ID), or "no answer"."""
    answers = {name: "no answer" for name in HOSTILE}
    call_ids = {f"h-{key}": name for name, key in (("unknown number", "unknown"), ("oversize header (8 KB)",
                "oversize"), ("broken CSeq", "cseq"), ("lying Content-Length", "length"),
                ("a number as long as a header", "long"))}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 40999))
        sock.settimeout(0.5)
        for data in HOSTILE.values():
            sock.sendto(data, ("127.0.0.1", carrier_port))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                reply, _ = sock.recvfrom(65535)
            except socket.timeout:
                continue
            head = reply.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
            status = head.split("\r\n", 1)[0]
            call_id = next((line.split(":", 1)[1].strip() for line in head.split("\r\n")
                            if line.lower().startswith(("call-id:", "i:"))), "")
            name = call_ids.get(call_id)
            if name and not status.startswith("SIP/2.0 1"):
                answers[name] = status
    return answers


def test_hostile_invites_and_a_flood_count_nothing_and_stop_no_caller(stack):
    clear_members(stack)
    s = stack.config.service
    received = {h.number: stack.engine.metric("ivr_calls_received_total", hotline=h.number) or 0
                for h in stack.config.hotlines}
    since = time.time()
    answers = send_hostile(s.carrier_sip.port)
    # A number that is not a hotline is refused as configured (SIP 404),
    # however odd the rest of the INVITE; what is not SIP is dropped.
    assert answers["unknown number"].startswith("SIP/2.0 404"), answers
    for name in ("oversize header (8 KB)", "a number as long as a header"):
        assert answers[name].startswith("SIP/2.0 4"), answers
    assert not answers["not SIP at all"].startswith("SIP/2.0 2"), answers
    flood = stack.sipp.start("flood", caller_scenario(CallerScript(number="55[call_number]", expect="404",
                                                                   caller_id="0227[call_number]")),
                             target=stack.carrier, calls=FLOOD_RATE * FLOOD_SECONDS,
                             timeout_s=FLOOD_SECONDS + 60,
                             extra=("-r", str(FLOOD_RATE), "-rp", "1000", "-l", "500"))
    # Legitimate callers during the flood.
    legit = stack.callers(calls=10, rate=0.5, keys=FORSA_INQUIRY, hold_ms=25_000, name="during-flood")
    flood.wait(timeout=FLOOD_SECONDS + 90)
    assert legit.wait(timeout=120) is not None
    assert wait_until(lambda: len(stack.records_since(since)) >= 10, 60)
    flood_log = flood.output()
    figures = stack.figures(f"hostile INVITEs and a flood of {FLOOD_RATE}/s for {FLOOD_SECONDS} s to "
                            f"non-hotline numbers, with 10 legitimate calls", placed=10, since=since, traffic=legit)
    refused = [line for line in flood_log.splitlines() if "Successful call" in line]
    figures.notes = f"hostile messages answered: {answers}; flood: {refused[-1].strip() if refused else flood_log[-300:]}"
    report(figures)
    # The legitimate callers reached the IVR and a queue, each counted once.
    assert figures.dropped == 0 and figures.reached_queue == 10
    assert figures.records == 10 and figures.distinct_calls == 10
    # The garbage counted nowhere: only 1442's 10 calls were received.
    after = {h.number: stack.engine.metric("ivr_calls_received_total", hotline=h.number) or 0
             for h in stack.config.hotlines}
    assert {n: after[n] - received[n] for n in after} == {n: (10 if n == "1442" else 0) for n in after}
    assert flood.proc.returncode == 0, flood_log[-2000:]   # every flood INVITE got its 404
    assert stack.asterisk.is_running()
