"""The generated dialplan's guards against a failing engine, and the files
that hold secrets: read back from the rendered configuration."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from core.configuration import load_config
from core.contract import AGI_FIRST_COMMAND_SECONDS, MIN_QUEUE_TIMEOUT_SECONDS, Context
from core.secrets import SecretStore
from dialplans.generate import PRIVATE_FILES, render_all, write_all

from test_dialplan import blocks_of, dialplan, section

DEMO = Path(__file__).resolve().parents[2] / "config"
ARM = f"Set(TIMEOUT(absolute)={AGI_FIRST_COMMAND_SECONDS})"
DISARM = "Set(TIMEOUT(absolute)=0)"


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


@pytest.fixture
def secrets(config, tmp_path) -> SecretStore:
    store = SecretStore(tmp_path / "s.json")
    store.ensure(config)
    return store


@pytest.fixture
def contexts(config, secrets) -> dict[str, list[str]]:
    return dialplan(render_all(config, secrets)["extensions.conf"])


def app_of(line: str) -> str:
    """'same => n(x),Set(A=1)' -> 'Set(A=1)'."""
    return re.sub(r"^(exten => [^,]+,\d+|same => n(\([\w-]+\))?),", "", line)


def test_every_agi_runs_under_a_deadline_and_every_context_with_one_has_a_T_extension(contexts):
    """Asterisk waits for an AGI peer's next command for ever; a hung engine
    must not hold the caller. Each AGI() is preceded by the deadline, and its
    context handles the deadline firing (T), so the caller is moved on."""
    with_agi = [name for name, lines in contexts.items() if any("AGI(" in line for line in lines)]
    assert set(with_agi) >= {Context.ANSWER, Context.OVERFLOW, Context.QUEUE_KEYS, Context.SURVEY,
                             Context.AGENTS, Context.SERVICE_CHECK}
    for name in with_agi:
        lines = contexts[name]
        blocks = blocks_of(lines)
        assert "T" in blocks, f"[{name}] runs AGI() but has no T extension"
        for exten, block in blocks.items():
            for i, line in enumerate(block):
                if "AGI(" not in line:
                    continue
                # The deadline is armed on the line before, or (the survey: both
                # AGI modes) before the branch that leads here.
                armed_before = [app_of(b) for b in block[:i]]
                assert ARM in armed_before, f"[{name}] {exten}: AGI() without a deadline: {line}"


def test_the_channel_leaves_agi_as_soon_as_it_is_hung_up(contexts):
    """AGIEXITONHANGUP: when the deadline fires (a soft hang-up) AGI() returns
    without waiting for the engine, which may never answer."""
    answer = [app_of(line) for line in blocks_of(contexts[Context.ANSWER])["s"]]
    assert answer.index("Set(AGIEXITONHANGUP=yes)") < next(i for i, a in enumerate(answer) if "AGI(" in a)
    for name in (Context.AGENTS, Context.SERVICE_CHECK):
        for exten, block in blocks_of(contexts[name]).items():
            apps = [app_of(b) for b in block]
            if any("AGI(" in a for a in apps):
                assert apps.index("Set(AGIEXITONHANGUP=yes)") < next(i for i, a in enumerate(apps) if "AGI(" in a)


def test_no_caller_reaches_a_queue_with_the_deadline_still_armed(contexts):
    """Queue() under an armed deadline would hang the waiting caller up: every
    AGI() in a caller's path is followed by the disarm before anything else."""
    for name in (Context.ANSWER, Context.OVERFLOW, Context.QUEUE_KEYS):
        for exten, block in blocks_of(contexts[name]).items():
            apps = [app_of(b) for b in block]
            for i, a in enumerate(apps):
                if "AGI(" in a:
                    following = apps[i + 1:]
                    # The FastAGI line of [ivr-answer] jumps to the disarm (routed).
                    assert following[0] == DISARM or following[0] == "Goto(routed)", (name, exten, following[:2])
    answer = blocks_of(contexts[Context.ANSWER])["s"]
    routed = next(line for line in answer if "n(routed)," in line)
    assert app_of(routed) == DISARM


def test_t_sends_the_caller_on_as_without_the_engine(contexts, config):
    answer = blocks_of(contexts[Context.ANSWER])
    assert [app_of(line) for line in answer["T"]][-1] == "Goto(s,routed)"
    key = config.distribution.callbacks.queue_key
    keys = blocks_of(contexts[Context.QUEUE_KEYS])
    assert [app_of(line) for line in keys["T"]] == [f"Goto({key},after)"]
    assert any("n(after)," in line for line in keys[key])
    overflow = blocks_of(contexts[Context.OVERFLOW])
    assert [app_of(line) for line in overflow["T"]] == ["Goto(${IVR_OVERFLOW_FROM},after)"]
    for q in config.queues:
        assert f"Set(IVR_OVERFLOW_FROM={q.id})" in [app_of(line) for line in overflow[q.id]]
    assert [app_of(line) for line in blocks_of(contexts[Context.AGENTS])["T"]] == [
        f"Goto({Context.AGENTS_DONE},TIMEOUT,1)"]
    assert "TIMEOUT" not in blocks_of(contexts[Context.AGENTS_DONE])  # caught by _[A-Z]., the "unavailable" prompt


def test_a_key_the_engine_cannot_serve_leaves_the_caller_in_their_place(contexts, config):
    """Without the engine, the callback key used to send the caller to the
    tail of the queue (position 3 -> 5). The place Queue() reported when they
    left (QUEUEPOSITION) and the rest of their wait go back with them."""
    key = config.distribution.callbacks.queue_key
    block = [app_of(line) for line in blocks_of(contexts[Context.QUEUE_KEYS])[key]]
    assert block.index("Set(IVR_LEFT_POSITION=${QUEUEPOSITION})") < next(i for i, a in enumerate(block) if "AGI(" in a)
    # The engine's place wins; Asterisk's is the fallback.
    assert ("Set(IVR_QUEUE_POSITION=${IF($[\"${IVR_QUEUE_POSITION}\" = \"\"]?${IVR_LEFT_POSITION}:"
            "${IVR_QUEUE_POSITION})})") in block
    assert "Set(IVR_LEFT_WAIT=$[${IVR_Q_DEADLINE} - ${EPOCH}])" in block
    m = MIN_QUEUE_TIMEOUT_SECONDS
    assert (f"Set(IVR_QUEUE_TIMEOUT=${{IF($[\"${{IVR_QUEUE_TIMEOUT}}\" = \"\"]?${{IF($[${{IVR_LEFT_WAIT}} > {m}]?"
            f"${{IVR_LEFT_WAIT}}:{m})}}:${{IVR_QUEUE_TIMEOUT}})}})") in block
    back = block.index("Goto(ivr-queue,${IVR_LEFT_QUEUE},1)")
    assert block.index("Set(IVR_LEFT_WAIT=$[${IVR_Q_DEADLINE} - ${EPOCH}])") < back
    # [ivr-queue] records when the wait ends, and takes the place and wait given.
    for q in config.queues:
        queue = [app_of(line) for line in blocks_of(contexts[Context.QUEUE])[q.id]]
        deadline_at = queue.index("Set(IVR_Q_DEADLINE=$[${EPOCH} + ${IVR_Q_TIMEOUT}])")
        assert deadline_at < next(i for i, a in enumerate(queue) if a.startswith("Queue("))
        assert any(a.startswith("Set(IVR_Q_POSITION=${IVR_QUEUE_POSITION})") for a in queue)


def test_queue_log_never_holds_the_callers_number(config, secrets):
    rendered = render_all(config, secrets)
    for q in config.queues:
        assert section(rendered["queues.conf"], q.id)["log-restricted-caller-id"] == "no"
    answer = [app_of(line) for line in blocks_of(dialplan(rendered["extensions.conf"])[Context.ANSWER])["s"]]
    # Restricted before the caller can reach any queue, the carrier's
    # presentation kept (inherited by the agent's channel)...
    restricted = answer.index("Set(CALLERID(num-pres)=prohib_passed_screen)")
    assert restricted < answer.index("Answer()")
    assert answer.index("Set(__IVR_CALLER_PRES=${CALLERID(num-pres)})") < restricted
    # ...and given back on the agent's leg before it rings: the agent's phone
    # shows the number as the carrier presented it.
    predial = [app_of(line) for line in blocks_of(dialplan(rendered["extensions.conf"])[Context.AGENT_PREDIAL])["s"]]
    assert predial[0] == ('ExecIf($["${IVR_CALLER_PRES}" != ""]?'
                          'Set(CONNECTEDLINE(num-pres,i)=${IVR_CALLER_PRES}))')


def test_files_with_secrets_are_written_0600_and_owned_by_us_even_over_a_shipped_file(config, secrets, tmp_path):
    etc = tmp_path / "etc" / "asterisk"
    etc.mkdir(parents=True)
    # As Debian ships them: readable by the packaged user's group.
    for name in PRIVATE_FILES:
        (etc / name).write_text("; shipped\n")
        os.chmod(etc / name, 0o640)
    write_all(config, secrets, tmp_path)
    for name in PRIVATE_FILES:
        st = os.stat(etc / name)
        assert stat.S_IMODE(st.st_mode) == 0o600, name
        assert st.st_uid == os.getuid()
    assert PRIVATE_FILES == {"pjsip.conf", "manager.conf", "extensions.conf"}
    assert stat.S_IMODE(os.stat(etc / "queues.conf").st_mode) == 0o644
    # A second run with nothing changed leaves them as they are.
    before = {n: os.stat(etc / n).st_mtime_ns for n in PRIVATE_FILES}
    write_all(config, secrets, tmp_path)
    assert {n: os.stat(etc / n).st_mtime_ns for n in PRIVATE_FILES} == before
    # A mode loosened by hand is tightened again at the next setup.
    os.chmod(etc / "manager.conf", 0o644)
    write_all(config, secrets, tmp_path)
    assert stat.S_IMODE(os.stat(etc / "manager.conf").st_mode) == 0o600
    assert not list(etc.glob(".*.tmp"))


def test_every_secret_in_the_rendered_files_is_in_a_private_file(config, secrets):
    rendered = render_all(config, secrets)
    secret_values = [secrets.get(name) for name in secrets.names()]
    for name, text in rendered.items():
        if name in PRIVATE_FILES:
            continue
        leaked = [v for v in secret_values if v in text]
        assert not leaked, f"{name} holds a secret but is not written 0600"
