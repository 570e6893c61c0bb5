"""The generated Asterisk configuration, read back and checked section by section."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from dialplans.generate import render_all, render_extensions, write_all
from core.configuration import load_config
from core.privacy import NumberCipher
from core.secrets import SecretStore

DEMO = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


@pytest.fixture
def secrets(config, tmp_path: Path) -> SecretStore:
    store = SecretStore(tmp_path / "s.json")
    store.ensure(config)
    return store


@pytest.fixture
def rendered(config, secrets) -> dict[str, str]:
    return render_all(config, secrets)


# --- a small reader for Asterisk's .conf format -------------------------------------


def sections(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(section name, [(key, value), ...]), ...] in file order; names may repeat."""
    out: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"\[([^\]]+)\](\(.*\))?", line)
        if m:
            out.append((m.group(1), []))
            continue
        assert out, f"a setting before any section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {raw!r}"
        value = value.strip()
        if value.startswith(">"):  # "key => value"
            value = value[1:].strip()
        out[-1][1].append((key.strip(), value))
    return out


def section(text: str, name: str, type_: str | None = None) -> dict[str, str]:
    matches = [dict(items) for n, items in sections(text) if n == name
               and (type_ is None or dict(items).get("type") == type_)]
    assert len(matches) == 1, f"expected one [{name}] (type={type_}), found {len(matches)}"
    return matches[0]


def dialplan(text: str) -> dict[str, list[str]]:
    """context -> its non-comment dialplan lines (exten/same/include)."""
    contexts: dict[str, list[str]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        m = re.fullmatch(r"\[([^\]]+)\]", line)
        if m:
            current = m.group(1)
            assert current not in contexts, f"context [{current}] defined twice"
            contexts[current] = []
            continue
        contexts[current].append(line)
    return contexts


def extensions_of(lines: list[str]) -> list[str]:
    return [re.match(r"exten\s*=>\s*([^,]+),", line).group(1) for line in lines if line.startswith("exten")]


def blocks_of(lines: list[str]) -> dict[str, list[str]]:
    """extension -> its lines (the exten line and the ``same =>`` lines after it)."""
    blocks: dict[str, list[str]] = {}
    current = None
    for line in lines:
        if line.startswith("exten"):
            current = re.match(r"exten\s*=>\s*([^,]+),", line).group(1)
            blocks.setdefault(current, [])
        elif not line.startswith("same"):
            current = None
            continue
        assert current is not None, f"'same' line outside an extension: {line}"
        blocks[current].append(line)
    return blocks


def reachable(contexts: dict[str, list[str]], start: str) -> set[str]:
    """Contexts a call entering ``start`` can reach, over-approximated: any mention of
    another context's name in a dialplan line of a reachable context counts."""
    names = [n for n in contexts if n != "general"]
    seen = {start}
    todo = [start]
    while todo:
        ctx = todo.pop()
        body = "\n".join(contexts[ctx])
        for other in names:
            if other not in seen and re.search(rf"(?<![\w-]){re.escape(other)}(?![\w-])", body):
                seen.add(other)
                todo.append(other)
    return seen


# --- pjsip.conf ----------------------------------------------------------------------


def test_pjsip_transports_bound_to_loopback(rendered):
    pjsip = rendered["pjsip.conf"]
    carrier = section(pjsip, "transport-carrier")
    agent = section(pjsip, "transport-agent")
    assert carrier["type"] == agent["type"] == "transport"
    assert carrier["bind"] == "127.0.0.1:5080"
    assert agent["bind"] == "127.0.0.1:5060"
    transports = [dict(items) for _, items in sections(pjsip) if dict(items).get("type") == "transport"]
    assert len(transports) == 2
    assert all(t["bind"].startswith("127.0.0.1:") for t in transports)


def test_pjsip_anonymous_endpoint_lands_in_from_carrier(rendered):
    anon = section(rendered["pjsip.conf"], "anonymous", "endpoint")
    assert anon["context"] == "from-carrier"
    assert anon["transport"] == "transport-carrier"
    assert "auth" not in anon
    assert anon["allow_transfer"] == "no"


def test_pjsip_agents_authenticate_with_generated_passwords(rendered, config, secrets):
    pjsip = rendered["pjsip.conf"]
    passwords = set()
    for agent in config.agents:
        user = agent.sip_username
        endpoint = section(pjsip, user, "endpoint")
        assert endpoint["context"] == "agents"
        assert endpoint["transport"] == "transport-agent"
        assert endpoint["auth"] == f"{user}-auth"
        assert endpoint["aors"] == user
        auth = section(pjsip, f"{user}-auth", "auth")
        assert auth["auth_type"] == "digest"
        assert auth["username"] == user
        assert auth["password"] == secrets.agent_password(user)
        assert len(auth["password"]) >= 32
        passwords.add(auth["password"])
        aor = section(pjsip, user, "aor")
        assert aor["max_contacts"] == "1"
    assert len(passwords) == len(config.agents), "every agent has a password of its own"


def test_pjsip_every_endpoint_context_exists(rendered):
    contexts = dialplan(rendered["extensions.conf"])
    for name, items in sections(rendered["pjsip.conf"]):
        d = dict(items)
        if d.get("type") == "endpoint":
            assert d["context"] in contexts, name


# --- extensions.conf ------------------------------------------------------------------


def test_from_carrier_holds_only_hotlines_and_a_refusing_catch_all(rendered, config):
    contexts = dialplan(rendered["extensions.conf"])
    carrier = contexts["from-carrier"]
    hotlines = {h.number for h in config.hotlines}
    extens = extensions_of(carrier)
    others = [e for e in extens if e not in hotlines]
    assert hotlines <= set(extens)
    assert set(others) <= {"_[0-9a-zA-Z*#+].", "i"}
    assert "_[0-9a-zA-Z*#+]." in others
    # Whatever is not a hotline ends in Hangup(1), never goes anywhere.
    blocks = blocks_of(carrier)
    assert sum(len(b) for b in blocks.values()) == len(carrier)
    for exten in others:
        body = "\n".join(blocks[exten])
        assert "Goto" not in body and "Gosub" not in body and "Dial" not in body, body
        assert blocks[exten][-1].endswith("Hangup(1)"), body
    assert not any(line.startswith("include") for line in carrier)


def test_hotline_sets_fallback_and_enters_the_ivr(rendered, config):
    carrier = "\n".join(dialplan(rendered["extensions.conf"])["from-carrier"])
    for h in config.hotlines:
        assert f"exten => {h.number},1,Set(__IVR_HOTLINE={h.number})" in carrier
        assert f"Set(__IVR_FALLBACK={h.fallback_queue})" in carrier
    assert "Goto(ivr-answer,s,1)" in carrier


def test_agi_points_to_the_fastagi_service(rendered, secrets):
    answer = dialplan(rendered["extensions.conf"])["ivr-answer"]
    agi = [line for line in answer if "AGI(" in line]
    # One FastAGI call, and one classic-AGI call for hotlines with agi: classic.
    assert len(agi) == 2
    key = secrets.agi_key()
    assert len(key) >= 32
    assert f"TryExec(AGI(agi://127.0.0.1:4573/hotline?key={key},${{IVR_HOTLINE}}))" in agi[0]
    assert "TryExec(AGI(ivr-agi,--config=config,--state=state,hotline,${IVR_HOTLINE}))" in agi[1]
    # The classic branch starts with its deadline, right before its AGI().
    classic = next(i for i, line in enumerate(answer) if "n(classic)," in line)
    assert answer[classic] == "same => n(classic),Set(TIMEOUT(absolute)=6)"
    assert answer[classic + 1] == agi[1]
    assert any('GotoIf($["${IVR_AGI_MODE}" = "classic"]?classic)' in line for line in answer)


def test_fallback_when_the_ivr_gives_no_queue(rendered):
    answer = dialplan(rendered["extensions.conf"])["ivr-answer"]
    body = "\n".join(answer)
    agi_at = next(i for i, line in enumerate(answer) if "AGI(" in line)
    after = "\n".join(answer[agi_at + 1:])
    assert "${IVR_FALLBACK}" in after
    assert "DIALPLAN_EXISTS(ivr-queue,${IVR_QUEUE},1)" in after
    assert "Goto(ivr-queue,${IVR_TARGET},1)" in after
    # The hang-up handler is installed before the caller can hang up in the IVR.
    assert body.index("Set(CHANNEL(hangup_handler_push)=ivr-hangup,s,1)") < body.index("AGI(")
    assert body.index("Answer()") < body.index("AGI(")


def test_fallback_queue_extension_exists_for_every_hotline(rendered, config):
    queue_extens = extensions_of(dialplan(rendered["extensions.conf"])["ivr-queue"])
    assert set(queue_extens) == {q.id for q in config.queues}
    for h in config.hotlines:
        assert h.fallback_queue in queue_extens


def test_nothing_reachable_from_the_carrier_dials_or_reaches_agents(rendered):
    contexts = dialplan(rendered["extensions.conf"])
    # A waiting caller's key press leads to the queues' `context` too.
    queue_contexts = {dict(items)["context"] for _, items in queue_sections(rendered["queues.conf"])}
    assert queue_contexts == {"ivr-queue-keys"}
    contexts["from-carrier"] = contexts["from-carrier"] + [f"; queues.conf context {c}" for c in queue_contexts]
    reach = reachable(contexts, "from-carrier")
    # Sanity: the walk really follows the call.
    assert {"from-carrier", "ivr-answer", "ivr-queue", "ivr-hangup", "ivr-overflow", "ivr-queue-keys",
            "ivr-queue-skills"} <= reach
    # Only the engine's Originate enters these.
    assert not {"ivr-callback-hold", "ivr-callback-dial", "ivr-announce", "ivr-announce-spy", "agents",
                "carrier-out-inbound"} & reach
    assert "agents" not in reach
    for ctx in reach:
        for line in contexts[ctx]:
            assert "Dial(" not in line, f"[{ctx}] {line}"
            assert not line.startswith("include"), f"[{ctx}] {line}"
            assert "Originate" not in line and "ChanSpy" not in line and "System(" not in line


def test_reachability_check_would_catch_an_include(config):
    """The walk above is not vacuous: an include of [agents] is seen."""
    text = render_extensions(config).replace("[ivr-hangup]\n", "[ivr-hangup]\ninclude => agents\n")
    assert "agents" in reachable(dialplan(text), "from-carrier")


def test_hangup_handler_reports_the_call_end(rendered):
    hangup = "\n".join(dialplan(rendered["extensions.conf"])["ivr-hangup"])
    m = re.search(r"UserEvent\(IvrCallEnd,(.*)\)\n", hangup)
    assert m
    fields = dict(part.split(": ", 1) for part in m.group(1).split(","))
    assert fields["Queue"] == "${IVR_IN_QUEUE}"
    assert fields["Member"] == "${MEMBERINTERFACE}"
    assert fields["CallUid"] == "${IVR_CALL_UID}"
    assert "Return()" in hangup


def test_queue_extensions_enter_their_own_queue(rendered, config):
    queue_ctx = dialplan(rendered["extensions.conf"])["ivr-queue"]
    body = "\n".join(queue_ctx)
    for q in config.queues:
        assert f"exten => {q.id},1,Set(IVR_IN_QUEUE={q.id})" in body
        args = queue_args(body, q.id)
        # The queue's max wait, unless the IVR gave the caller's remaining wait.
        assert args["timeout"] == "${IVR_Q_TIMEOUT}"
        assert (f"Set(IVR_Q_TIMEOUT=${{IF($[0${{IVR_QUEUE_TIMEOUT}} > 0]?${{IVR_QUEUE_TIMEOUT}}:"
                f"{q.max_wait_seconds})}})") in body
        assert args["rule"] == "${IVR_Q_RULE}" and args["position"] == "${IVR_Q_POSITION}"
        assert f"Gosub(ivr-queue-skills,{q.id},1)" in body
        assert f"UserEvent(IvrQueueExit,Queue: {q.id}," in body
        # Max wait or a full queue: the overflow offer, never a hang-up.
        assert f'"${{QUEUESTATUS}}" = "FULL"]?ivr-overflow,{q.id},1)' in body


def test_overflow_offers_then_moves_to_the_overflow_queue(rendered, config, secrets):
    body = "\n".join(dialplan(rendered["extensions.conf"])["ivr-overflow"])
    for q in config.queues:
        target = q.overflow_queue or q.id
        assert f"exten => {q.id},1,Set(IVR_ACTION=)" in body
        assert f"/overflow?key={secrets.agi_key()},{q.id},${{QUEUESTATUS}}))" in body
        assert f"same => n,Goto(ivr-queue,{target},1)" in body
    # The demo: every programme overflows into its ministry's general queue.
    assert {q.id: q.overflow_queue for q in config.queues if q.program} == {
        q.id: "moh_shared" if q.id.startswith("moh_") else "shared" for q in config.queues if q.program}


def test_skills_rules_raise_the_penalty_after_the_configured_wait(rendered, config):
    rules = rendered["queuerules.conf"]
    skills = "\n".join(dialplan(rendered["extensions.conf"])["ivr-queue-skills"])
    for q in config.queues:
        if q.secondary_after_seconds:
            assert section(rules, f"skills-{q.id}")["penaltychange"] == f"{q.secondary_after_seconds},1"
            assert f"exten => {q.id},1,Set(QUEUE_MAX_PENALTY=0)" in skills
        else:
            assert f"exten => {q.id},1,Set(IVR_Q_RULE=)" in skills


QUEUE_ARGS = ["queuename", "options", "URL", "announceoverride", "timeout", "AGI", "gosub", "rule", "position"]


def queue_args(body: str, queue_id: str) -> dict[str, str]:
    """The named arguments of the Queue() call for ``queue_id`` (Asterisk 22 order)."""
    line = next(l for l in body.splitlines() if f"Queue({queue_id}," in l)
    inner = line[line.index("Queue(") + len("Queue("):line.rindex(")")]
    parts, depth, current = [], 0, ""
    for ch in inner:  # split on commas outside the option's own parentheses, e.g. b(ctx^s^1)
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    parts.append(current)
    return dict(zip(QUEUE_ARGS, parts))


def test_queue_gosub_is_in_the_gosub_argument(rendered, config):
    body = "\n".join(dialplan(rendered["extensions.conf"])["ivr-queue"])
    for q in config.queues:
        named = queue_args(body, q.id)
        assert named["gosub"] == "ivr-agent-connect", named
        # The predial gosub on each agent channel adds the SIP headers.
        # c: the caller stays when the agent hangs up (survey); b(): headers per agent channel.
        assert named["options"] == "cb(ivr-agent-predial^s^1)", named


# --- manager.conf ---------------------------------------------------------------------


def test_manager_is_loopback_only_and_least_privilege(rendered, config, secrets):
    manager = rendered["manager.conf"]
    general = section(manager, "general")
    assert general["enabled"] == "yes"
    assert general["bindaddr"] == "127.0.0.1"
    assert general["port"] == "5038"
    assert general["webenabled"] == "no"
    users = [name for name, _ in sections(manager) if name != "general"]
    assert users == [config.service.ami.username, config.service.ami.monitor_username]
    monitor = section(manager, config.service.ami.monitor_username)
    # The monitoring user changes nothing: no write class at all.
    assert monitor["write"] == ""
    assert monitor["secret"] == secrets.ami_monitor_secret(config) != secrets.ami_secret(config)
    assert (monitor["deny"], monitor["permit"]) == ("0.0.0.0/0.0.0.0", "127.0.0.1/255.255.255.255")
    user = section(manager, "ivr_engine")
    assert set(user["read"].split(",")) == {"call", "agent", "user"}
    # reporting: DBGetTree of the call journal (read-only); nothing system- or command-class.
    # agent: queue membership; reporting: QueueStatus, DBGetTree; call: Hangup
    # of an announcement. No originate: the engine's calls are call files.
    assert user["write"] == "agent,reporting,call"
    assert "pbx_spool.so" in render_all(config, secrets)["modules.conf"]
    assert user["secret"] == secrets.ami_secret(config)
    assert len(user["secret"]) >= 32
    # deny everything, then permit loopback: order matters in manager.conf.
    keys = [k for k, _ in next(items for name, items in sections(manager) if name == "ivr_engine")]
    assert keys.index("deny") < keys.index("permit")
    assert user["deny"] == "0.0.0.0/0.0.0.0"
    assert user["permit"] == "127.0.0.1/255.255.255.255"


# --- queues.conf -------------------------------------------------------------------------


def queue_sections(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Queue sections: every section that has a strategy (the [general] settings have none)."""
    return [(n, items) for n, items in sections(text) if "strategy" in dict(items)]


def test_queues_one_section_per_queue_with_dynamic_members(rendered, config):
    queues = queue_sections(rendered["queues.conf"])
    assert [n for n, _ in queues] == [q.id for q in config.queues]
    assert section(rendered["queues.conf"], "general")["persistentmembers"] == "yes"
    for (name, items), q in zip(queues, config.queues):
        d = dict(items)
        assert d["strategy"] == q.strategy
        assert d["timeout"] == str(q.ring_timeout_seconds)
        assert d["wrapuptime"] == str(q.wrapup_seconds)
        assert d["setinterfacevar"] == "yes"
        assert d["maxlen"] == str(q.max_callers)
        assert d["context"] == "ivr-queue-keys"
        # The engine pauses after repeated misses, not app_queue after one.
        assert d["autopause"] == "no"
        # Agents log in: no static member.
        assert not [v for k, v in items if k == "member"]


def test_shared_fallback_queue_is_served_by_every_agent(config):
    """Every agent of the ministry; the other ministry's agents never."""
    for queue_id, tenant in (("shared", "mss"), ("moh_shared", "moh")):
        general = config.queue(queue_id)
        for agent in config.agents:
            assert ((general, 0) in config.agent_queues(agent)) == (agent.tenant == tenant), (queue_id, agent.id)


def test_no_queue_uses_the_reserved_general_section(rendered, config):
    names = [n.lower() for n, _ in sections(rendered["queues.conf"])]
    assert names.count("general") == 1
    assert all(q.id.lower() != "general" for q in config.queues)


# --- other files ---------------------------------------------------------------------------


def test_rtp_range_and_disabled_services(rendered):
    rtp = section(rendered["rtp.conf"], "general")
    assert (rtp["rtpstart"], rtp["rtpend"]) == ("10000", "10999")
    assert section(rendered["http.conf"], "general")["enabled"] == "no"
    modules = section(rendered["modules.conf"], "modules")
    assert modules["autoload"] == "no"


def test_write_all_writes_every_file(config, secrets, tmp_path):
    root = tmp_path / "ast"
    written = write_all(config, secrets, root)
    etc = root / "etc" / "asterisk"
    assert {p.name for p in written} == set(render_all(config, secrets))
    assert (etc / "pjsip.conf").read_text() == render_all(config, secrets)["pjsip.conf"]


# --- SecretStore ------------------------------------------------------------------------------


def test_secret_file_is_private(config, tmp_path):
    path = tmp_path / "state" / "s.json"
    store = SecretStore(path)
    assert store.ensure(config) is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = json.loads(path.read_text())
    assert config.cases is not None  # the shipped config has cases: their Fernet key is generated too
    assert set(data) == ({"ami:ivr_engine", "ami:ivr_monitor", "hmac:national_id", "hmac:caller_number",
                          "agi:key", "fernet:cases", "fernet:callbacks"}
                         | {f"sip:{a.sip_username}" for a in config.agents})
    assert all(len(v) >= 32 for v in data.values())
    NumberCipher(data["fernet:cases"])  # a valid Fernet key
    NumberCipher(data["fernet:callbacks"])  # the callbacks' numbers in Redis have one of their own
    assert len(set(data.values())) == len(data)


def test_secret_ensure_is_idempotent(config, tmp_path):
    path = tmp_path / "s.json"
    first = SecretStore(path)
    first.ensure(config)
    before = path.read_text()
    ami = first.ami_secret(config)
    assert first.ensure(config) is False
    assert path.read_text() == before
    again = SecretStore(path)
    assert again.ensure(config) is False
    assert again.ami_secret(config) == ami
    for a in config.agents:
        assert again.agent_password(a.sip_username) == first.agent_password(a.sip_username)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_secret_national_id_key(config, tmp_path):
    path = tmp_path / "s.json"
    store = SecretStore(path)
    store.ensure(config)
    key = store.national_id_key()
    assert isinstance(key, bytes) and len(key) >= 32
    assert SecretStore(path).national_id_key() == key
    assert key.decode() not in (store.ami_secret(config),
                                *(store.agent_password(a.sip_username) for a in config.agents))


def test_secret_ensure_adds_the_national_id_key_to_an_older_file(config, tmp_path):
    # A secret file written before national ID entry existed: ensure adds the
    # HMAC key and keeps every existing secret.
    path = tmp_path / "s.json"
    store = SecretStore(path)
    store.ensure(config)
    data = json.loads(path.read_text())
    del data["hmac:national_id"]
    path.write_text(json.dumps(data))
    older = SecretStore(path)
    with pytest.raises(KeyError, match="ivr setup"):
        older.national_id_key()
    assert older.ensure(config) is True
    after = json.loads(path.read_text())
    assert {k: after[k] for k in data} == data
    assert SecretStore(path).national_id_key() == after["hmac:national_id"].encode()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_secret_missing_is_a_clear_error(config, tmp_path):
    store = SecretStore(tmp_path / "none.json")
    with pytest.raises(KeyError, match="ivr setup"):
        store.ami_secret(config)


def test_no_brace_escape_leaks_into_the_dialplan(rendered):
    """Dialplan text is built with f-strings ({{ escapes): a doubled brace in
    the output is a template bug that Asterisk would not evaluate."""
    for name in ("extensions.conf", "queues.conf", "queuerules.conf", "pjsip.conf"):
        assert "{{" not in rendered[name] and "}}" not in rendered[name], name
    callback = "\n".join(dialplan(rendered["extensions.conf"])["ivr-callback-dial"])
    assert 'REGEX("^0[0-9]{9,10}$" ${IVR_CB_NUMBER})' in callback


def test_stasis_declines_only_messages_nobody_reads():
    """stasis.conf: Asterisk creates no VarSet or RTCP messages (nobody reads
    them; under load they put the manager behind), and keeps every type
    app_queue, the manager and the engine's events need (declining one the
    manager routes stops Asterisk from starting: the e2e tests would fail)."""
    from dialplans.generate import DECLINED_STASIS_TYPES, render_stasis

    text = render_stasis()
    declined = re.findall(r"^decline=(\S+)$", text, re.M)
    assert "[declined_message_types]" in text and declined == list(DECLINED_STASIS_TYPES)
    assert {"ast_channel_varset_type", "ast_rtp_rtcp_sent_type", "ast_rtp_rtcp_received_type"} <= set(declined)
    needed = {"ast_channel_snapshot_type", "ast_channel_dial_type", "ast_bridge_snapshot_type",
              "ast_channel_entered_bridge_type", "ast_channel_left_bridge_type", "ast_blind_transfer_type",
              "ast_attended_transfer_type", "ast_local_bridge_type", "ast_local_optimization_begin_type",
              "ast_local_optimization_end_type", "ast_device_state_message_type", "ast_multi_user_event_type",
              "ast_channel_hangup_request_type", "ast_endpoint_state_type", "ast_endpoint_snapshot_type",
              "ast_channel_agent_login_type", "ast_manager_get_generic_type", "stasis_cache_update_type",
              "ast_channel_dtmf_begin_type", "ast_channel_dtmf_end_type", "ast_channel_moh_start_type",
              "ast_channel_chanspy_start_type", "ast_channel_hangup_handler_type"}
    assert not needed & set(declined)
    assert not [t for t in declined if "queue" in t]
