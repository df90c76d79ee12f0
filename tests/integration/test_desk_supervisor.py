"""The supervisor page's Monitor, Whisper and Say in Debian's headless Chromium: a JSON-IM
conversation is followed live, the agent gets the whisper, the customer never does, and
the customer gets what the supervisor says to it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import desk_site
from browser import chromium
from desk_site import agent, customer, say, take
from leaks import assert_unseen
from ops_helpers import admin_token
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 15
WHISPER = "WHISPER-page-5d1 she is a long-time customer"

_LINES = """
return Array.from(document.querySelectorAll('#lines li'),
                  (li) => [li.dataset.audience, li.textContent]);
"""
_CLICK_MONITOR = """
const button = document.querySelector('button[data-conversation="' + arguments[0] + '"]');
if (button) { button.click(); }
return button !== null;
"""


def post(url: str, headers: dict[str, str]) -> int:
    """A POST with these headers only (no bearer token); its status."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"text": "forged"}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def lines(driver) -> list[list[str]]:
    """The monitored conversation's lines on the page: [audience, text]."""
    return driver.execute_script(_LINES)


def shows(driver, describe: str, predicate) -> None:
    """Wait (bounded) until ``predicate(driver)`` holds on the live page."""
    WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(
        lambda d: predicate(d), message=f"the page never showed {describe}"
    )


def test_monitor_whisper_and_say_from_the_supervisor_page(tmp_path):
    gateway, _ = desk_site.start(tmp_path / "site")
    try:
        port = gateway.listener_port("admin")
        token = admin_token(gateway)
        anna = agent(gateway, "anna")
        dana = customer(gateway, "Dana", "billing")
        conv = take(anna, dana)
        say(dana, None, "My parcel never came")
        with chromium(tmp_path / "profile") as driver:
            driver.get(f"http://127.0.0.1:{port}/?token={token}")
            shows(driver, "the Monitor button", lambda d: d.execute_script(_CLICK_MONITOR, conv))
            shows(
                driver,
                "the customer's line",
                lambda d: ["all", "customer: My parcel never came"] in lines(d),
            )
            say(anna, conv, "Let me look")
            shows(driver, "the agent's line", lambda d: ["all", "anna: Let me look"] in lines(d))

            text = driver.find_element(By.ID, "line-text")
            text.send_keys(WHISPER)
            driver.find_element(By.ID, "whisper").click()
            got = anna.expect("message", conversation=conv, text=WHISPER)
            assert (got["alias"], got["private"]) == ("Supervisor", True)
            shows(
                driver,
                "the whisper, marked agents only",
                lambda d: ["agents", f"agent [agents only]: {WHISPER}"] in lines(d),
            )

            text.send_keys("We will send a new one today.")
            driver.find_element(By.ID, "say").click()
            said = dana.expect("message", text="We will send a new one today.")
            assert (said["from"], said["alias"]) == ("agent", "Supervisor")
            anna.expect("message", text="We will send a new one today.")
            shows(
                driver,
                "the supervisor's line, seen by all",
                lambda d: ["all", "agent: We will send a new one today."] in lines(d),
            )

        dana.send({"type": "end"})
        dana.expect("ended", conversation=conv)
        # The cookie acts only with the page's header, from the page's own origin: a
        # form or a script on another site cannot whisper with it.
        url = f"http://127.0.0.1:{port}/v1/desk/conversations/{conv}/whisper"
        cookie = {"Cookie": f"imgateway_admin={token}"}
        page = {**cookie, "X-Imgateway-Page": "1"}
        assert post(url, cookie) == 401
        assert post(url, {**page, "Origin": "http://evil.example"}) == 401
        assert post(url, {**page, "Origin": f"http://127.0.0.1:{port}"}) == 409
        dana.hang_up()
        received = b"\n".join(dana.raw_lines)
        assert_unseen(received, WHISPER, "WHISPER")
        anna.hang_up()
    finally:
        gateway.stop()
