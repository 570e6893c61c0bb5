"""The generated dialplan around the closed path and the post-call survey."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dialplans.generate import render_extensions
from core.configuration import load_config

DEMO = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


@pytest.fixture(scope="module")
def extensions(config) -> str:
    return render_extensions(config)


def context(text: str, name: str) -> list[str]:
    """The non-comment, non-blank lines of one [context]."""
    lines: list[str] = []
    inside = False
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip() if not raw.lstrip().startswith(";") else ""
        m = re.fullmatch(r"\[([^\]]+)\]", raw.strip())
        if m:
            inside = m.group(1) == name
            continue
        if inside and line:
            lines.append(line)
    assert lines, f"no [{name}] context"
    return lines


def extension(lines: list[str], exten: str) -> list[str]:
    """The priorities of one extension: its `exten =>` line and the `same =>` lines after it."""
    out: list[str] = []
    for line in lines:
        if line.startswith("exten =>"):
            if out:
                break
            if line.startswith(f"exten => {exten},"):
                out.append(line)
        elif out:
            out.append(line)
    assert out, f"no extension {exten}"
    return out


def index_of(lines: list[str], needle: str) -> int:
    hits = [i for i, line in enumerate(lines) if needle in line]
    assert hits, f"{needle!r} not in {lines}"
    return hits[0]


def test_answer_routes_closed_to_a_hangup_before_any_queue(extensions):
    answer = context(extensions, "ivr-answer")
    s = extension(answer, "s")
    agi = index_of(s, "AGI(agi://127.0.0.1:4573/hotline,${IVR_HOTLINE})")
    closed = index_of(s, '$["${IVR_ACTION}" = "closed"]?closed,1')
    assert "GotoIf" in s[closed]
    assert agi < closed
    # Before any queue target is computed or jumped to.
    assert closed < index_of(s, "IVR_TARGET")
    assert closed < index_of(s, "Goto(ivr-queue,")
    assert all("Queue(" not in line for line in s[:closed])
    # The closed extension hangs up at once, and never reaches a queue.
    closed_ext = extension(answer, "closed")
    assert len(closed_ext) == 1
    assert re.fullmatch(r"exten => closed,1,Hangup\(\d*\)", closed_ext[0])
    assert "ivr-queue" not in " ".join(closed_ext)


def test_the_hotline_agi_runs_inside_tryexec(extensions):
    s = extension(context(extensions, "ivr-answer"), "s")
    line = s[index_of(s, "/hotline,")]
    assert "TryExec(AGI(agi://127.0.0.1:4573/hotline,${IVR_HOTLINE}))" in line


def test_survey_context(extensions):
    survey = context(extensions, "ivr-survey")
    s = extension(survey, "s")
    # The deadline on the engine is armed first (both AGI modes run under it).
    assert s[0] == "exten => s,1,Set(TIMEOUT(absolute)=6)"
    assert s[1] == 'same => n,GotoIf($["${IVR_AGI_MODE}" = "classic"]?classic)'
    assert s[2] == "same => n,TryExec(AGI(agi://127.0.0.1:4573/survey,${IVR_PROGRAM}))"
    assert re.fullmatch(r"same => n,Hangup\(\d*\)", s[3])
    assert s[4] == "same => n(classic),TryExec(AGI(ivr-agi,--config=config,--state=state,survey,${IVR_PROGRAM}))"
    assert re.fullmatch(r"same => n,Hangup\(\d*\)", s[5])
    assert len(s) == 6
    # Besides s, only T: the engine missed its deadline, the call ends (the survey is optional).
    t = extension(survey, "T")
    assert len(t) == 1 and re.fullmatch(r"exten => T,1,Hangup\(\d*\)", t[0])
    assert all(line.startswith(("exten => s,", "exten => T,", "same =>")) for line in survey)


def test_survey_context_follows_the_fastagi_address(config):
    fastagi = config.service.fastagi.model_copy(update={"port": 4999})
    other = config.model_copy(update={"service": config.service.model_copy(update={"fastagi": fastagi})})
    s = extension(context(render_extensions(other), "ivr-survey"), "s")
    assert "TryExec(AGI(agi://127.0.0.1:4999/survey,${IVR_PROGRAM}))" in s[2]


def test_every_queue_goes_to_the_survey_after_a_conversation(config, extensions):
    queue_ctx = context(extensions, "ivr-queue")
    assert len(config.queues) >= 2
    for q in config.queues:
        lines = extension(queue_ctx, q.id)
        queue = index_of(lines, f"Queue({q.id},")
        survey = index_of(lines, "ivr-survey,s,1")
        exit_ = index_of(lines, "IvrQueueExit")
        assert queue < survey < exit_, (q.id, lines)
        assert '$["${MEMBERINTERFACE}" != ""]?ivr-survey,s,1' in lines[survey]
        assert lines[survey].startswith("same => n,GotoIf(")
        # The fallback hop also comes after the survey branch.
        assert survey < index_of(lines, f'$["{q.id}" != "${{IVR_FALLBACK}}"]')
        # Queue's c option keeps the caller on the line when the agent hangs up.
        options = lines[queue].split(f"Queue({q.id},", 1)[1].split(",", 1)[0]
        assert "c" in options.split("(")[0]


def test_survey_context_is_reachable_only_from_the_queues(extensions):
    gotos = [line for line in extensions.splitlines() if "ivr-survey,s,1" in line and not line.lstrip().startswith(";")]
    assert gotos
    assert all("MEMBERINTERFACE" in line for line in gotos)
