"""The supervisor page in Debian's headless Chromium: queues, agents and live
conversations change on screen while a JSON-IM conversation goes on."""

from __future__ import annotations

import harness
from browser import chromium
from jsonim_client import exchange
from ops_helpers import admin_token, agent, queued_customer, take_offer
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

PASSWORD = "anna-Secret-1"
WAIT_S = 15


# Read in one script run: the page replaces its rows every second, so element handles
# kept across two WebDriver calls could go stale in between.
_CELL = """
const row = document.querySelector(arguments[0]);
const cell = row && row.querySelector(arguments[1]);
return cell ? cell.textContent : null;
"""
_IDS = """
return Array.from(document.querySelectorAll('#conversations tbody tr'),
                  (row) => row.dataset.conversation);
"""


def cell(driver, table: str, key: str, value: str, field: str) -> str | None:
    """The text of one cell, by its row's key (e.g. data-queue="general"), or None."""
    return driver.execute_script(
        _CELL, f'#{table} tr[data-{key}="{value}"]', f'td[data-field="{field}"]'
    )


def shows(driver, describe: str, predicate) -> None:
    """Wait (bounded) until ``predicate(driver)`` holds on the live page."""
    WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(
        lambda d: predicate(d), message=f"the page never showed {describe}"
    )


def conversation_ids(driver) -> list[str]:
    """The ids of the conversations the page lists, in order."""
    return driver.execute_script(_IDS)


def test_supervisor_page_follows_queues_agents_and_conversations(tmp_path):
    config = harness.write_config(tmp_path)
    harness.add_agent(config, "anna", PASSWORD, "Anna")
    gateway = harness.start_gateway(tmp_path / "cwd", config)
    try:
        port = gateway.listener_port("admin")
        token = admin_token(gateway)
        with chromium(tmp_path / "profile") as driver:
            # The token in the URL becomes a cookie; the page drops it from the address.
            driver.get(f"http://127.0.0.1:{port}/?token={token}")
            assert token not in driver.current_url, driver.current_url
            shows(
                driver,
                "queue general empty",
                lambda d: cell(d, "queues", "queue", "general", "depth") == "0",
            )
            assert conversation_ids(driver) == []

            customer = queued_customer(gateway, "Dana")
            shows(
                driver,
                "one customer waiting",
                lambda d: cell(d, "queues", "queue", "general", "depth") == "1",
            )
            [conversation] = WebDriverWait(driver, WAIT_S).until(
                lambda d: conversation_ids(d) or None
            )
            shows(
                driver,
                "the conversation queued",
                lambda d: (
                    cell(d, "conversations", "conversation", conversation, "state") == "queued"
                ),
            )

            anna = agent(gateway, "anna", PASSWORD)
            shows(
                driver,
                "anna logged in",
                lambda d: cell(d, "agents", "agent", "anna", "state") is not None,
            )
            assert take_offer(anna, customer) == conversation
            shows(
                driver,
                "the conversation connected to anna",
                lambda d: (
                    cell(d, "conversations", "conversation", conversation, "agent") == "anna"
                    and cell(d, "conversations", "conversation", conversation, "state")
                    == "connected"
                ),
            )
            shows(
                driver,
                "the queue empty again",
                lambda d: cell(d, "queues", "queue", "general", "depth") == "0",
            )
            shows(
                driver,
                "anna holding one conversation",
                lambda d: cell(d, "agents", "agent", "anna", "load") == "1",
            )
            assert cell(driver, "agents", "agent", "anna", "alias") == "Anna"
            # One node, no cluster: the cluster table has this node's one row.
            shows(
                driver,
                "this node's row in the cluster table",
                lambda d: (
                    cell(d, "cluster", "node", "", "conversations") == "1"
                    and cell(d, "cluster", "node", "", "agents") == "1"
                    and cell(d, "cluster", "node", "", "state") == "up"
                ),
            )

            exchange(customer, anna, conversation, "Hello", "Hi, how can I help?")
            anna.send({"type": "presence", "status": "away"})
            shows(
                driver, "anna away", lambda d: cell(d, "agents", "agent", "anna", "state") == "away"
            )

            anna.send({"type": "end", "conversation": conversation})
            customer.expect("ended", conversation=conversation)
            shows(driver, "no live conversation", lambda d: conversation_ids(d) == [])

            anna.hang_up()
            shows(
                driver, "anna gone", lambda d: cell(d, "agents", "agent", "anna", "state") is None
            )
            customer.close()
    finally:
        gateway.stop()


def test_supervisor_page_without_the_token_shows_no_figures(tmp_path):
    config = harness.write_config(tmp_path)
    gateway = harness.start_gateway(tmp_path / "cwd", config)
    try:
        port = gateway.listener_port("admin")
        with chromium(tmp_path / "profile") as driver:
            driver.get(f"http://127.0.0.1:{port}/?token=wrong")
            assert "Open this page as" in driver.find_element(By.TAG_NAME, "body").text
            assert not driver.find_elements(By.ID, "queues")
        gateway.wait_for_log(r"auth failure protocol=admin user=- address=127\.0\.0\.1", 5)
    finally:
        gateway.stop()
