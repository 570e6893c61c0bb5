"""RFC 4733 DTMF as pcap files SIPp can play (``play_pcap_audio``).

Debian's sip-tester ships one capture per key, but they all carry the same
RTP timestamp and sequence numbers: Asterisk takes a second key press from
the same capture set as a repeat of the first event and drops it. Here each
press of a call gets its own capture with a later timestamp and sequence
numbers that continue, exactly as a phone would send them.
"""

from __future__ import annotations

import struct
from pathlib import Path

EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
PAYLOAD_TYPE = 101
SSRC = 0x1D7F00D5


def _udp_packet(payload: bytes) -> bytes:
    # Ethernet + IPv4 + UDP headers around the RTP payload. SIPp only reads
    # the payload; the addresses are placeholders on loopback.
    udp_len = 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    udp = struct.pack("!HHHH", 4000, 4000, udp_len, 0)
    eth = b"\x00" * 12 + b"\x08\x00"
    return eth + ip + udp + payload


def dtmf_pcap(key: str, press_index: int, *, duration_ms: int = 160) -> bytes:
    """One key press: ``duration_ms`` of event packets every 20 ms, then three end packets."""
    event = EVENTS[key]
    timestamp = 8000 * 10 * (press_index + 1)  # 10 s apart in RTP time per press
    seq = 1000 + 100 * press_index
    packets = []
    steps = max(1, duration_ms // 20)
    for i in range(steps):
        packets.append((i * 20, False, 160 * (i + 1)))
    for j in range(3):
        packets.append(((steps + j) * 20, True, 160 * steps))
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for n, (offset_ms, end, duration) in enumerate(packets):
        marker = 0x80 if n == 0 else 0
        rtp = struct.pack("!BBHII", 0x80, marker | PAYLOAD_TYPE, (seq + n) & 0xFFFF, timestamp, SSRC)
        body = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
        frame = _udp_packet(rtp + body)
        out.append(struct.pack("<IIII", 1 + offset_ms // 1000, (offset_ms % 1000) * 1000, len(frame), len(frame)))
        out.append(frame)
    return b"".join(out)


def write_presses(folder: Path, name: str, keys: str) -> list[Path]:
    paths = []
    for i, key in enumerate(keys):
        path = folder / f"{name}-dtmf{i}-{'star' if key == '*' else 'pound' if key == '#' else key}.pcap"
        path.write_bytes(dtmf_pcap(key, i))
        paths.append(path)
    return paths
