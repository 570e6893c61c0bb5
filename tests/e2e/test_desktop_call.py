"""The agents' desktop in a real browser against the real engine, with a real
call through Asterisk: Debian's headless Chromium (driven by selenium
through Debian's chromedriver, the same version) signs the agent in with
their softphone's password, the page pops when the agent's SIPp softphone
answers a citizen who typed their national ID, the agent opens a case from
the form, and the case is in the database with the citizen's identifiers
in the forms the engine keeps them.
"""

from __future__ import annotations

import shutil
import time

import pytest

from app.simulate import random_phone_number
from app.simulate.sipp import CallerScript, typed_keys as typed
from core.privacy import NumberCipher
from queues.agents import AgentState

pytestmark = pytest.mark.e2e

# Born 1990-01-01, registered in Assiut (25): see test_national_id_calls.py.
VALID_ASSIUT = "29001012500015"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("chromium and chromedriver are needed: run `make test`, which installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--lang=ar"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield browser
    finally:
        browser.quit()


def _wait(browser, predicate, timeout: float, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(lambda b: predicate(b), message=what)


def _text(browser, element_id: str) -> str:
    return browser.find_element("id", element_id).text


def _data(browser, element_id: str, name: str) -> str:
    return browser.find_element("id", element_id).get_attribute(f"data-{name}") or ""


def test_the_call_pops_on_the_desktop_and_a_case_opened_there_is_in_the_database(hotline, phones, desk, browser):
    from selenium.webdriver.support.ui import Select

    engine = hotline.engine.engine
    agent = "1001"   # primary on Takaful & Karama; its other primary (1003) has no softphone registered
    phones(agent, talk_ms=40_000)
    browser.get(f"http://127.0.0.1:{engine.desktop.port}/")

    # A wrong password is refused on the page; the softphone's own signs in.
    browser.find_element("id", "signin-agent").send_keys(agent)
    browser.find_element("id", "signin-password").send_keys("not-the-password")
    browser.find_element("id", "signin-button").click()
    _wait(browser, lambda b: _text(b, "signin-message"), 10, "the refusal is shown")
    assert "غير صحيحة" in _text(browser, "signin-message")
    browser.find_element("id", "signin-password").send_keys(hotline.password(agent))
    browser.find_element("id", "signin-button").click()
    _wait(browser, lambda b: _data(b, "stream-state", "stream") == "open", 15, "the event stream is open")
    assert _data(browser, "agent-state", "state") == "available"
    assert hotline.config.agent(agent).name in _text(browser, "agent-name")

    number = random_phone_number(mobile=True)
    answered = hotline.metric("ivr_queue_answered_total", program="takaful_karama")
    keys = ((1200, "1"), (2000, "1")) + typed(VALID_ASSIUT, 2500) + ((2500, "1"),)
    caller = hotline.sipp.call(CallerScript(number="1442", keys=keys, hold_ms=60_000, caller_id=number),
                               target=hotline.carrier)
    try:
        hotline.wait_metric("ivr_queue_answered_total", answered + 1, timeout=120, program="takaful_karama")
        # The pop follows the answer at once (the metric is polled, so this bounds it loosely).
        popped_within = time.monotonic()
        _wait(browser, lambda b: _data(b, "call-status", "call") != "", 3, "the call pops within 3 s")
        popped_within = time.monotonic() - popped_within
        call_id = _data(browser, "call-status", "call")
        assert _text(browser, "call-status") == "مكالمة جارية"
        assert _text(browser, "call-program") == hotline.config.program("takaful_karama").name
        assert _text(browser, "call-request-type") == hotline.config.request_type("inquiry").name
        assert _text(browser, "call-governorate") == "أسيوط"
        assert _text(browser, "call-national-id") == "تم التحقق منه"
        assert _text(browser, "call-repeat") == "لا"
        assert _text(browser, "call-caller") == "*" * (len(number) - 2) + number[-2:]
        _wait(browser, lambda b: "لا توجد بلاغات مفتوحة" in _text(b, "open-cases-note"), 10,
              "the citizen's open cases were looked up")
        page = browser.page_source
        assert number not in page and VALID_ASSIUT not in page

        # The form: the sector follows the call's programme.
        assert Select(browser.find_element("id", "case-sector")).first_selected_option.get_attribute(
            "value") == "takaful_karama"
        Select(browser.find_element("id", "case-kind")).select_by_value("grievance")
        Select(browser.find_element("id", "case-severity")).select_by_value("high")
        browser.find_element("id", "case-subject").send_keys("تظلم من إيقاف صرف الدعم")
        browser.find_element("id", "case-note").send_keys("يطلب المواطن مراجعة القرار")
        browser.find_element("id", "case-submit").click()
        _wait(browser, lambda b: _data(b, "case-message", "reference"), 15, "the case is registered")
        reference = _data(browser, "case-message", "reference")
        assert "تم تسجيل البلاغ رقم" in _text(browser, "case-message")
    finally:
        hotline.hang_up(number)
        caller.wait(timeout=30)

    stored = hotline.cases.get("mss", reference)
    assert stored.call_id == call_id and stored.created_by == agent
    assert (stored.sector, stored.kind, stored.severity, stored.status.value) == (
        "takaful_karama", "grievance", "high", "new")
    assert stored.subject == "تظلم من إيقاف صرف الدعم"
    assert stored.governorate == "assiut" and stored.program == "takaful_karama"
    assert stored.national_id_hash and VALID_ASSIUT not in stored.national_id_hash
    assert number not in stored.number_encrypted
    assert NumberCipher(hotline.secrets.cases_key()).decrypt(stored.number_encrypted) == number
    assert [e.note for e in hotline.cases.history("mss", reference)] == ["يطلب المواطن مراجعة القرار"]

    # Pause and resume from the page, as with *23 and *24.
    Select(browser.find_element("id", "pause-reason")).select_by_value("training")
    browser.find_element("id", "pause-button").click()
    _wait(browser, lambda b: _data(b, "agent-state", "state") == "paused", 15, "the agent is paused")
    view = desk.view(agent)
    assert view.state is AgentState.PAUSED and view.reason == "training"
    browser.find_element("id", "resume-button").click()
    _wait(browser, lambda b: _data(b, "agent-state", "state") != "paused", 15, "the agent is back")
    assert desk.view(agent).state is not AgentState.PAUSED
    print(f"pop shown {popped_within:.2f} s after the answered metric was seen")
