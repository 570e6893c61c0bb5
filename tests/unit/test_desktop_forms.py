"""The desktop's pure parts: sessions and the sign-in throttle, the form checks."""

from __future__ import annotations

import pytest

from cases.reference import new_reference
from core.configuration import load_config
from core.paths import REPO_ROOT
from desktop import forms
from desktop.forms import FormError
from desktop.sessions import FAILURE_WINDOW_SECONDS, IDLE_SECONDS, LOCK_SECONDS, MAX_FAILURES, SessionBook, \
    SignInRefused


@pytest.fixture(scope="module")
def config():
    return load_config(REPO_ROOT / "config")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def book():
    clock = Clock()
    b = SessionBook(password_of={"1001": "right-password"}.get, tenant_of=lambda a: "mss", clock=clock)
    b.clock = clock
    return b


def test_a_session_is_a_fresh_random_token_that_expires_when_idle(book):
    one = book.sign_in("1001", "right-password")
    two = book.sign_in("1001", "right-password")
    assert one.token != two.token and len(one.token) >= 40
    assert book.session(one.token).agent_id == "1001" and one.tenant == "mss"
    book.clock.now += IDLE_SECONDS - 1
    assert book.session(one.token) is not None   # seen: the idle time starts again
    book.clock.now += IDLE_SECONDS + 1
    assert book.session(one.token) is None
    book.sign_out(two.token)
    assert book.session(two.token) is None
    assert book.session("") is None and book.session("made-up") is None


def test_wrong_passwords_lock_the_agent_then_the_lock_ends(book):
    for n in range(MAX_FAILURES):
        with pytest.raises(SignInRefused) as refused:
            book.sign_in("1001", f"guess-{n}")
        assert refused.value.reason == "bad_password"
    with pytest.raises(SignInRefused) as refused:
        book.sign_in("1001", "right-password")
    assert refused.value.reason == "locked" and refused.value.retry_after == pytest.approx(LOCK_SECONDS)
    book.clock.now += LOCK_SECONDS + 1
    assert book.sign_in("1001", "right-password").agent_id == "1001"


def test_failures_spread_out_do_not_lock(book):
    for n in range(MAX_FAILURES * 2):
        with pytest.raises(SignInRefused):
            book.sign_in("1001", "guess")
        book.clock.now += FAILURE_WINDOW_SECONDS / (MAX_FAILURES - 1) + 1
    assert book.sign_in("1001", "right-password")


def test_an_unknown_agent_is_refused_without_locking_anyone(book):
    for _ in range(MAX_FAILURES + 1):
        with pytest.raises(SignInRefused) as refused:
            book.sign_in("9999", "x")
        assert refused.value.reason == "unknown_agent"


def test_new_case_form_checks_every_field(config):
    good = {"kind": "report", "sector": "forsa", "severity": "critical", "subject": " تسريب  ", "note": "",
            "call_id": "1700000000.1"}
    form = forms.new_case(good, config, "mss")
    assert (form.kind, form.sector, form.severity, form.subject, form.call_id) == (
        "report", "forsa", "critical", "تسريب", "1700000000.1")
    for field, value in (("kind", "rumour"), ("sector", "nowhere"), ("severity", 3), ("subject", ""),
                         ("subject", 7), ("note", "x" * (forms.MAX_NOTE + 1)), ("call_id", ["x"])):
        with pytest.raises(FormError) as error:
            forms.new_case({**good, field: value}, config, "mss")
        assert error.value.field == field and error.value.arabic
    with pytest.raises(FormError):
        forms.new_case("kind=report", config, "mss")


def test_update_form_and_references():
    assert forms.case_update({"action": "resolve", "note": "تم", "version": 3}).version == 3
    with pytest.raises(FormError) as error:
        forms.case_update({"action": "note", "note": " "})
    assert error.value.field == "note"   # a note needs text
    for bad in ({"action": "assign"}, {"action": "start", "version": 0}, {"action": "start", "version": True},
                {"action": "start", "version": "2"}):
        with pytest.raises(FormError):
            forms.case_update(bad)
    reference = new_reference()
    assert forms.reference(reference[:3] + " " + reference[3:]) == reference
    with pytest.raises(FormError) as error:
        forms.reference(reference[:-1] + str((int(reference[-1]) + 1) % 10))
    assert error.value.field == "reference"


def test_sign_in_form():
    assert forms.sign_in({"agent": " 1001 ", "password": "p"}).agent_id == "1001"
    for bad in ({"agent": "", "password": "p"}, {"agent": "1001"}, {"agent": "1001", "password": 5}, None):
        with pytest.raises(FormError):
            forms.sign_in(bad)
