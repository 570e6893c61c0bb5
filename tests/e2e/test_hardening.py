"""Who may talk to the running stack (issue 12, items 12, 14 and 17): every
listener on loopback, AMI users with only the rights they need, and a
FastAGI service that serves only its own Asterisk."""

from __future__ import annotations

import os
import re
import socket
import subprocess

import pytest

from queues.agents import AgentState

LOOPBACK = ("127.0.0.1", "[::1]", "::1")


def sockets() -> list[tuple[str, str, str, set[int]]]:
    """(protocol, local address, port, pids) of every listening TCP socket and
    every bound UDP socket on the machine, from ``ss``."""
    out = subprocess.run(["ss", "-H", "-n", "-p", "-l", "-t", "-u"], capture_output=True, text=True,
                         check=True).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()   # Netid State Recv-Q Send-Q Local Peer Process
        if len(fields) < 5:
            continue
        address, _, port = fields[4].rpartition(":")
        pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        found.append((fields[0], address, port, pids))
    return found


def pids_of(name: str) -> set[int]:
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def test_every_listening_socket_of_the_stack_is_on_loopback(hotline):
    """Asterisk (SIP, RTP, AMI), Redis and the engine (FastAGI, /metrics, the
    wallboard, the desktop): no TCP listener and no SIP or RTP port outside
    loopback. The only sockets on any address are UDP client sockets
    Asterisk opens for itself (pjproject's DNS resolver), on ephemeral ports,
    listed in docs/reliability.md."""
    ours = pids_of("asterisk") | pids_of("redis-server") | {os.getpid()}
    assert pids_of("asterisk"), "Asterisk is not running"
    s = hotline.config.service
    service_ports = {str(p) for p in (s.fastagi.port, s.metrics.port, s.wallboard.port, s.desktop.port, s.ami.port,
                                      s.carrier_sip.port, s.agent_sip.port)}
    found = sockets()
    tcp = [sock for sock in found if sock[0] == "tcp" and sock[3] & ours]
    assert {port for _, _, port, _ in tcp} >= service_ports - {str(s.carrier_sip.port), str(s.agent_sip.port)}
    assert [sock for sock in tcp if sock[1] not in LOOPBACK] == []
    udp = [sock for sock in found if sock[0] == "udp" and sock[3] & ours]
    assert {str(s.carrier_sip.port), str(s.agent_sip.port)} <= {port for _, _, port, _ in udp}
    public = [sock for sock in udp if sock[1] not in LOOPBACK]
    for protocol, address, port, pids in public:
        # Not a service: an ephemeral client port of Asterisk's, never one of ours or RTP's.
        assert pids <= pids_of("asterisk"), (address, port, pids)
        assert int(port) >= 32768 and port not in service_ports, (address, port)
        assert not s.rtp_port_start <= int(port) <= s.rtp_port_end


class Ami:
    """A bare AMI client: one action, its response's headers."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = b""
        self._read_until(b"\r\n")  # the banner

    def _read_until(self, end: bytes) -> bytes:
        while end not in self.buffer:
            data = self.sock.recv(65536)
            assert data, "AMI closed the connection"
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(end)
        return head

    def action(self, **headers: str) -> dict[str, str]:
        headers.setdefault("ActionID", f"t{id(headers)}")
        self.sock.sendall("".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + b"\r\n")
        while True:
            block = self._read_until(b"\r\n\r\n").decode(errors="replace")
            fields = dict(line.split(": ", 1) for line in block.split("\r\n") if ": " in line)
            if fields.get("ActionID") == headers["ActionID"] and "Response" in fields:
                return fields

    def close(self) -> None:
        self.sock.close()


def test_the_monitoring_ami_user_reads_and_changes_nothing(hotline):
    s = hotline.config.service
    ami = Ami(s.ami.port)
    try:
        login = ami.action(Action="Login", Username=s.ami.monitor_username,
                           Secret=hotline.secrets.ami_monitor_secret(hotline.config))
        assert login["Response"] == "Success", login
        assert ami.action(Action="QueueStatus", Queue="forsa")["Response"] == "Success"
        for action in ({"Action": "Originate", "Channel": "Local/1@ivr-announce/n", "Context": "ivr-announce-spy",
                        "Exten": "s", "Priority": "1"},
                       {"Action": "QueueAdd", "Queue": "forsa", "Interface": "PJSIP/agent1001"},
                       {"Action": "QueuePause", "Interface": "PJSIP/agent1001", "Paused": "true"},
                       {"Action": "Hangup", "Channel": "/.*/"},
                       {"Action": "Command", "Command": "core show channels"},
                       {"Action": "ShowDialPlan", "Context": "ivr-answer"},
                       {"Action": "DBGet", "Family": "Queue", "Key": "x"}):
            reply = ami.action(**action)
            assert reply["Response"] == "Error" and "Permission denied" in reply.get("Message", ""), (action, reply)
    finally:
        ami.close()


def test_the_engines_ami_user_cannot_run_commands_or_touch_asterisks_database(hotline):
    """No system, command, config or originate class: the secret cannot call
    the carrier with any number (the engine's own calls are call files). (It keeps reporting, which
    DBGetTree and CoreShowChannels need; that also lets it read the dialplan
    and the FastAGI key in it, which gives it nothing it lacks: it may log
    agents in over AMI itself.)"""
    s = hotline.config.service
    ami = Ami(s.ami.port)
    try:
        login = ami.action(Action="Login", Username=s.ami.username, Secret=hotline.secrets.ami_secret(hotline.config))
        assert login["Response"] == "Success", login
        for action in ({"Action": "Command", "Command": "core stop now"},
                       {"Action": "DBPut", "Family": "ivrjournal0000", "Key": "x", "Val": "y"},
                       {"Action": "GetConfig", "Filename": "manager.conf"},
                       {"Action": "Originate", "Channel": "Local/1@ivr-announce/n", "Application": "System",
                        "Data": "id"},
                       {"Action": "Originate", "Channel": "PJSIP/01001234567@carrier-out", "Context": "ivr-announce",
                        "Exten": "1", "Priority": "1"},
                       {"Action": "Originate", "Channel": "Local/1a1@ivr-callback-hold/n",
                        "Context": "ivr-callback-dial", "Exten": "1a1", "Priority": "1",
                        "Variable": "IVR_CB_NUMBER=01001234567"}):
            reply = ami.action(**action)
            assert reply["Response"] == "Error", (action, reply)
            if action["Action"] == "Originate":
                assert "Permission denied" in reply.get("Message", ""), (action, reply)
    finally:
        ami.close()


def env_block(script: str, *args: str) -> bytes:
    env = {"network": "yes", "network_script": script, "request": f"agi://127.0.0.1/{script}",
           "channel": "PJSIP/agent1001-0000ffff", "uniqueid": "1796600000.999", "callerid": "1001"}
    env.update({f"arg_{n}": a for n, a in enumerate(args, 1)})
    return ("".join(f"agi_{k}: {v}\n" for k, v in env.items()) + "\n").encode()


@pytest.mark.parametrize("script", ["agent", "agent?key=guessed"])
def test_a_local_process_cannot_log_an_agent_in_through_fastagi(hotline, desk, script):
    """The feature-code route logs agents in and out; only the Asterisk that
    holds the engine's key may call it. A local process that speaks AGI to
    the port is refused before the route runs."""
    desk.logout("1001", source="cli")
    refused = hotline.metric("ivr_fastagi_sessions_total", route="agent", outcome="refused")
    s = hotline.config.service
    with socket.create_connection((s.fastagi.host, s.fastagi.port), timeout=5) as sock:
        sock.sendall(env_block(script, "login", "agent1001", "", "127.0.0.1:5062"))
        sock.settimeout(5)
        assert sock.recv(4096) == b""   # closed without a single command
    assert hotline.wait_metric("ivr_fastagi_sessions_total", refused + 1, timeout=10,
                               route="agent", outcome="refused") == refused + 1
    assert desk.view("1001").state is AgentState.OFFLINE
