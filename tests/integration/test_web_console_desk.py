"""The agent console's service desk tools in Debian's headless Chromium, against the
installed gateway, with JSON-IM customers over TCP: a canned response with the
customer's name filled in, a private note the customer never gets, the wrap-up form
with the site's dispositions stored as given, a returning customer's earlier
conversations in the offer and the conversation, a consult handed over warm to a
colleague's console, the messages customers left out of hours, given back or
answered from the console, and a supervisor who monitors a conversation from the
console's live list and then barges in.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import harness
import pytest
from browser import chromium
from jsonim_client import JsonImClient, answer_interview, hello_agent, hello_customer, set_presence
from leaks import assert_unseen
from selenium.webdriver.common.by import By
from web_site import Console, screenshots_on_failure, wait_for, web_port, write_config

PASSWORDS = {"anna": "anna-Secret-1", "bob": "bob-Secret-2", "sue": "sue-Secret-3"}
DISPOSITIONS = ["resolved", "callback", "wrong_number"]
NOTE = "NOTE-5e1a wants the money back"
WHISPER = "WHISPER-3c9d can you take a refund?"
EVIL = "<img src=x onerror=\"window.__pwned='past'\">"
DESK = f"""
[desk]
dispositions = {json.dumps(DISPOSITIONS)}
disposition_required = true
wrap_up_timeout_s = 600

[desk.queues.after_hours]
offline = true
"""
# Topic "other" goes to a queue closed today (a dated closure in the site file), which
# takes messages; the other tests' customers ask about billing.
_TODAY = dt.datetime.now(dt.UTC).date()
AFTER_HOURS = f"""
[queues.after_hours]
topics = ["other"]
holidays = ["{_TODAY - dt.timedelta(days=1)}..{_TODAY + dt.timedelta(days=1)}"]
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("web-console-desk")
    config = write_config(root)
    text = config.read_text().replace(
        'topics = ["billing", "tech", "other"]', 'topics = ["billing", "tech"]'
    )
    config.write_text(text.replace("[interview]", AFTER_HOURS + "\n[interview]", 1) + DESK)
    harness.add_agent(config, "anna", PASSWORDS["anna"], "Anna")
    harness.add_agent(config, "bob", PASSWORDS["bob"], "Bob")
    harness.add_agent(config, "sue", PASSWORDS["sue"], "Sue")
    harness.admin(config, "agent", "role", "sue", "supervisor")
    gateway = harness.start_gateway(root / "cwd", config, "web-desk-gateway")
    gateway.web = web_port(gateway)
    gateway.config_path = config
    harness.admin(config, "canned", "add", "greeting", "--text", "Hello {customer}, I am {agent}.")
    harness.admin(config, "canned", "add", "bye", "--text", "Goodbye {customer}!")
    yield gateway
    gateway.stop()


_DESK = """
const pane = document.querySelector(`.pane[data-conversation="${arguments[0]}"]`);
if (!pane) { return null; }
const text = (sel, root) => {
  const n = (root || pane).querySelector(sel);
  return n ? n.textContent : null;
};
const form = pane.querySelector('.wrapup');
return {
  wrapup: pane.dataset.wrapup || null,
  canned: Array.from(pane.querySelectorAll('.canned option'), (o) => o.value).filter(Boolean),
  lines: Array.from(pane.querySelectorAll('.log li'), (li) => ({
    from: li.dataset.from, private: li.dataset.private === 'true',
    state: li.dataset.receipt || null,
    who: text('.who', li), text: text('.text', li),
  })),
  form: form && {
    legend: text('legend', form), due: text('.due', form), state: text('.wrapup-state', form),
    dispositions: Array.from(
      form.querySelectorAll('input[type=radio]'), (r) => [r.value, r.required]),
    labels: Array.from(form.querySelectorAll('fieldset label'), (l) => l.textContent),
  },
  past: Array.from(pane.querySelectorAll('.past-item'), (li) => text('.past-summary', li)),
  transcript: text('.past-transcript'),
  closable: !pane.querySelector('button.close').hidden,
};
"""


_LIVE = """
return Array.from(document.querySelectorAll('#live-list .live-item'), (li) => ({
  conversation: li.dataset.conversation,
  title: li.querySelector('strong').textContent,
  summary: li.querySelector('.live-summary').textContent,
}));
"""

_TASKS = """
return Array.from(document.querySelectorAll('#tasks .task'), (li) => ({
  task: li.dataset.task, state: li.dataset.state,
  title: li.querySelector('strong').textContent,
  details: Array.from(
    li.querySelectorAll('dt'), (dt) => [dt.textContent, dt.nextElementSibling.textContent]),
  text: li.querySelector('.task-text').textContent,
  status: li.querySelector('.task-state').textContent,
}));
"""


class DeskConsole(Console):
    """The console with its desk tools read and used."""

    def live(self) -> list[dict]:
        """The live conversations a supervisor's console lists (see _LIVE)."""
        self.focus()
        return self.driver.execute_script(_LIVE)

    def tasks(self) -> list[dict]:
        """The messages left shown in the console (see _TASKS)."""
        self.focus()
        return self.driver.execute_script(_TASKS)

    def wait_tasks(self, what: str, predicate) -> list[dict]:
        """Wait until ``predicate(tasks)`` holds; those tasks."""
        return wait_for(self.driver, what, lambda: predicate(t := self.tasks()) and t)

    def on_task(self, task: str, css: str):
        """An element of the task's card."""
        self.focus()
        return self.driver.find_element(By.CSS_SELECTOR, f'#tasks .task[data-task="{task}"] {css}')

    def desk(self, conversation: str) -> dict | None:
        """What the conversation's pane shows of the desk (see _DESK)."""
        self.focus()
        return self.driver.execute_script(_DESK, conversation)

    def wait_desk(self, conversation: str, what: str, predicate) -> dict:
        """Wait until ``predicate(desk state)`` holds; that state."""
        return wait_for(
            self.driver,
            what,
            lambda: (s := self.desk(conversation)) is not None and predicate(s) and s,
        )

    def state_text(self, conversation: str) -> str:
        """The conversation's state as its pane's head shows it."""
        return self.find(conversation, ".state").get_attribute("textContent")

    def find(self, conversation: str, css: str):
        """An element of the conversation's pane."""
        return self._pane(conversation, css)


def customer(site, name: str, **hello) -> tuple[JsonImClient, dict]:
    """A JSON-IM customer through the interview (topic billing); with its welcome."""
    client = site.connect(f"customer-{name}")
    welcome = hello_customer(client, **hello)
    answer_interview(client, {"name": name, "topic": "billing"})
    return client, welcome


def line(state: dict, text: str) -> dict | None:
    """The pane's line whose text contains ``text``."""
    return next((x for x in state["lines"] if text in (x["text"] or "")), None)


def test_canned_note_and_wrap_up_from_the_console(site, tmp_path):
    dana, _ = customer(site, "Dana")
    with chromium(tmp_path / "profile") as driver, screenshots_on_failure(driver, tmp_path):
        driver.set_window_size(1200, 1000)
        anna = DeskConsole(driver, site.web)
        anna.login("anna", PASSWORDS["anna"])
        offer = anna.offer()
        conversation = offer["conversation"]
        anna.accept(offer)
        dana.expect("connected", conversation=conversation)

        # A canned response by name: the gateway fills in the customer's name.
        state = anna.wait_desk(conversation, "the canned list", lambda s: s["canned"])
        assert state["canned"] == ["bye", "greeting"]
        anna.find(conversation, ".canned select option[value='greeting']").click()
        anna.find(conversation, ".canned button[type=submit]").click()
        got = dana.expect("message", text="Hello Dana, I am Anna.")
        assert got["from"] == "agent"
        shown = anna.wait_desk(
            conversation,
            "the canned line sent",
            lambda s: (x := line(s, "Hello Dana")) and x["state"] == "sent" and x,
        )
        shown = line(shown, "Hello Dana")
        assert (shown["from"], shown["who"], shown["text"]) == (
            "agent",
            "You",
            "Hello Dana, I am Anna.",
        )
        # "/bye" typed alone sends that canned response.
        anna.type(conversation, "/bye")
        assert dana.expect("message", text="Goodbye Dana!")["from"] == "agent"

        # A private note: shown as private, stored, never sent to the customer.
        anna.find(conversation, ".note input").send_keys(NOTE)
        anna.find(conversation, ".note button").click()
        note = anna.wait_desk(
            conversation,
            "the note saved",
            lambda s: (x := line(s, NOTE)) and x["state"] == "saved" and x,
        )
        note = line(note, NOTE)
        assert (note["from"], note["private"], note["who"]) == (
            "note",
            True,
            "Private note (agents only)",
        )

        # The end: the wrap-up form with the site's dispositions, required.
        anna.end(conversation)
        dana.expect("ended", conversation=conversation)
        form = anna.wait_desk(conversation, "the wrap-up form", lambda s: s["wrapup"] == "due")
        form = form["form"]
        assert form["legend"] == "Disposition (required)"
        assert form["dispositions"] == [[code, True] for code in DISPOSITIONS]
        assert form["labels"] == DISPOSITIONS
        assert form["due"].startswith("A disposition is required within ")
        assert int(form["due"].split()[-2]) in range(590, 601), form["due"]
        assert not anna.desk(conversation)["closable"]

        anna.find(conversation, f"label[for='disp-{conversation}-1']").click()
        anna.find(conversation, ".wrapup input.tags").send_keys("refund, VIP")
        anna.find(conversation, ".wrapup textarea").send_keys("call back Monday")
        anna.find(conversation, ".wrapup button[type=submit]").click()
        done = anna.wait_desk(conversation, "the wrap-up saved", lambda s: s["wrapup"] == "done")
        assert done["form"]["state"] == "Saved: callback; tags refund, vip; note kept."
        assert done["closable"]
        # Not a supervisor: the live conversations are not shown (the gateway refused).
        assert driver.execute_script("return document.getElementById('live').hidden") is True

    dana.hang_up()
    received = b"\n".join(dana.raw_lines)
    assert_unseen(received, "NOTE-5e1a", "call back Monday", '"private"', "anna")
    case = json.loads(harness.admin(site.config_path, "case", conversation, "--json").stdout)
    assert [n["text"] for n in case["notes"]] == [NOTE, "call back Monday"]
    assert [(w["agent"], w["disposition"], w["tags"]) for w in case["wrap_ups"]] == [
        ("anna", "callback", ["refund", "vip"])
    ]


def test_a_returning_customer_s_history_in_the_offer_and_the_conversation(site, tmp_path):
    with chromium(tmp_path / "profile") as driver, screenshots_on_failure(driver, tmp_path):
        anna = DeskConsole(driver, site.web)
        anna.login("anna", PASSWORDS["anna"])
        hana, welcome = customer(site, "Hana")
        first = anna.offer()["conversation"]
        anna.accept(anna.offer())
        hana.expect("connected", conversation=first)
        hana.send({"type": "message", "text": f"Where is parcel 77? {EVIL}", "id": "h1"})
        anna.wait_desk(first, "the customer's line", lambda s: line(s, "parcel 77"))
        anna.end(first)
        anna.wait_desk(first, "the wrap-up form", lambda s: s["wrapup"] == "due")
        anna.find(first, f"label[for='disp-{first}-0']").click()
        anna.find(first, ".wrapup button[type=submit]").click()
        anna.wait_desk(first, "the wrap-up saved", lambda s: s["wrapup"] == "done")
        anna.find(first, "button.close").click()
        hana.hang_up()

        # The same customer token: a returning customer, its summary in the offer.
        again, _ = customer(site, "Hana", customer_token=welcome["customer_token"])
        offer = anna.offer()
        assert "Returning customer: 1 earlier conversation" in offer["text"], offer["text"]
        assert "topic billing \u00b7 disposition resolved \u00b7 with Anna" in offer["text"]
        second = offer["conversation"]
        anna.accept(offer)
        state = anna.wait_desk(second, "the earlier conversations", lambda s: s["past"])
        [summary] = state["past"]
        assert summary.endswith("topic billing \u00b7 disposition resolved \u00b7 with Anna")
        anna.find(second, ".past summary").click()
        anna.find(second, ".past-open").click()
        shown = anna.wait_desk(second, "the earlier transcript", lambda s: s["transcript"])
        assert "Where is parcel 77?" in shown["transcript"]
        assert "Wrap-up: resolved" in shown["transcript"]
        # The customer's markup in the earlier transcript is shown as text.
        assert EVIL in shown["transcript"]
        assert driver.execute_script("return window.__pwned === undefined")
        assert driver.execute_script("return document.querySelectorAll('img').length") == 0
        again.send({"type": "end"})
        again.expect("ended", conversation=second)
        anna.wait_desk(second, "the wrap-up form", lambda s: s["wrapup"] == "due")
        anna.find(second, f"label[for='disp-{second}-0']").click()
        anna.find(second, ".wrapup button[type=submit]").click()
        anna.wait_desk(second, "the wrap-up saved", lambda s: s["wrapup"] == "done")
    again.hang_up()


def test_consult_then_a_warm_hand_over_between_two_consoles(site, tmp_path):
    lu, _ = customer(site, "Lu")
    with chromium(tmp_path / "profile") as driver, screenshots_on_failure(driver, tmp_path):
        anna = DeskConsole(driver, site.web)
        anna.login("anna", PASSWORDS["anna"])
        offer = anna.offer()
        conversation = offer["conversation"]
        anna.accept(offer)
        lu.expect("connected", conversation=conversation)
        bob = DeskConsole(driver, site.web)
        bob.login("bob", PASSWORDS["bob"], status="Away")

        anna.find(conversation, ".colleague input[id^=colleague-]").send_keys("bob")
        anna.find(conversation, ".colleague input:not([id])").send_keys(WHISPER)
        anna.find(conversation, ".colleague button.consult").click()
        consulted = bob.wait_desk(
            conversation, "the consult's private line", lambda s: line(s, WHISPER)
        )
        whisper = line(consulted, WHISPER)
        assert (whisper["who"], whisper["private"]) == ("Anna (agents only)", True)
        assert bob.state_text(conversation) == "consult (agent Anna)"
        bob.type(conversation, "Yes, send it over")
        answer = anna.wait_desk(
            conversation, "Bob's private answer", lambda s: line(s, "Yes, send it over")
        )
        assert line(answer, "Yes, send it over")["who"] == "Bob (agents only)"

        anna.find(conversation, ".colleague input:not([id])").send_keys("Bob takes it from here.")
        anna.find(conversation, ".colleague button.handover").click()
        assert lu.expect("message", text="Bob takes it from here.")["from"] == "agent"
        assert lu.expect("connected", conversation=conversation)["agent"] == {"alias": "Bob"}
        anna.wait(
            "Anna's part ended",
            lambda s: next(p for p in s["panes"] if p["conversation"] == conversation)["ended"],
        )
        bob.wait(
            "Bob the conversation's agent",
            lambda s: bob.state_text(conversation) == "connected",
        )
        bob.type(conversation, "Hi Lu, Bob here.")
        assert lu.expect("message", text="Hi Lu, Bob here.")["from"] == "agent"
        lu.send({"type": "end"})
        lu.expect("ended", conversation=conversation)
    lu.hang_up()
    received = b"\n".join(lu.raw_lines)
    assert_unseen(received, "WHISPER-3c9d", "Yes, send it over", '"private"')


def leave_a_message(site, name: str, text: str) -> dict:
    """A JSON-IM customer asking about "other" (closed today) who leaves ``text``."""
    client = site.connect(f"customer-{name}")
    welcome = hello_customer(client)
    for field, answer in (("name", name), ("topic", "other")):
        assert client.expect("prompt")["field"] == field
        client.send({"type": "message", "text": answer, "id": client.new_id("iv")})
    client.expect(
        "message", text="We are closed right now. Please come back during our opening hours."
    )
    assert client.expect("prompt")["field"] == "offline_message"
    client.send({"type": "message", "text": text, "id": client.new_id("m")})
    client.expect("message", text="Thank you. We have your message and will answer it.")
    assert client.expect("ended")["reason"] == "closed"
    client.hang_up()
    return welcome


def test_messages_left_out_of_hours_given_back_or_answered_from_the_console(site, tmp_path):
    left_by_jo = f"Jo asks for a call back {EVIL}"
    leave_a_message(site, "Jo", left_by_jo)
    kim = leave_a_message(site, "Kim", "Please reset my password")
    with chromium(tmp_path / "profile") as driver, screenshots_on_failure(driver, tmp_path):
        anna = DeskConsole(driver, site.web)
        anna.login("anna", PASSWORDS["anna"])
        # The oldest message first; the customer's text shown as text.
        [jo] = anna.wait_tasks("Jo's message", lambda t: len(t) == 1)
        assert re.fullmatch(r"Message from Jo \(c-[0-9a-f]+\)", jo["title"]), jo["title"]
        assert (jo["text"], jo["state"]) == (left_by_jo, "assigned")
        assert dict(jo["details"])["Queue"] == "after_hours"
        assert dict(jo["details"])["Channel"] == "jsonim"
        assert driver.execute_script("return window.__pwned === undefined")

        # Given back: it leaves this console, and the next message comes.
        anna.on_task(jo["task"], "button.release").click()
        [kims] = anna.wait_tasks(
            "Kim's message instead", lambda t: [x for x in t if x["task"] != jo["task"]]
        )
        assert [t["task"] for t in anna.tasks()] == [kims["task"]]
        assert kims["text"] == "Please reset my password"

        # Answered: the card says so, and the answer waits for Kim.
        anna.on_task(kims["task"], "textarea").send_keys("Done: check your e-mail.")
        anna.on_task(kims["task"], "button[type=submit]").click()
        [answered] = anna.wait_tasks("the answer sent", lambda t: t[0]["state"] == "answered")
        assert answered["status"] == "Answered. The customer gets it when they come back."
        anna.on_task(kims["task"], "button.dismiss").click()
        wait_for(driver, "the card dismissed", lambda: anna.tasks() == [])
        assert driver.find_element(By.ID, "no-tasks").is_displayed()

    back = site.connect("customer-Kim-again")
    hello_customer(back, customer_token=kim["customer_token"])
    got = back.expect(
        "message",
        text="While you were away, Anna answered the message you left: Done: check your e-mail.",
    )
    assert got["from"] == "system"
    back.hang_up()
    listing = json.loads(harness.admin(site.config_path, "offline", "--json").stdout)
    states = {m["text"]: (m["state"], m["agent"]) for m in listing}
    assert states[left_by_jo] == ("open", None)
    assert states["Please reset my password"] == ("delivered", "anna")


def test_a_supervisor_monitors_from_the_live_list_then_barges_in(site, tmp_path):
    whisper = "WHISPER-8e2f offer the express refund"
    mia, _ = customer(site, "Mia")
    anna = site.connect("agent-anna")
    hello_agent(anna, "anna", PASSWORDS["anna"])
    set_presence(anna, "available")
    offer = anna.expect("offer")
    conversation = offer["conversation"]
    alias = offer["customer"]["alias"]
    anna.send({"type": "accept", "offer": offer["offer"]})
    anna.expect("connected", conversation=conversation)
    mia.expect("connected", conversation=conversation)
    mia.send({"type": "message", "text": "My order never came", "id": "m1"})
    anna.expect("message", text="My order never came")
    with chromium(tmp_path / "profile") as driver, screenshots_on_failure(driver, tmp_path):
        driver.set_window_size(1200, 1000)
        sue = DeskConsole(driver, site.web)
        sue.login("sue", PASSWORDS["sue"], status="Away")
        row = wait_for(
            driver,
            "the conversation in the live list",
            lambda: next((r for r in sue.live() if r["conversation"] == conversation), None),
        )
        assert row["title"] == f"Customer {alias}"
        assert re.fullmatch(r"connected, queue general, agent Anna, \d+ s", row["summary"]), row

        # Monitor: the pane opens with what was said; a line is a whisper to the agent.
        sue.focus()
        driver.find_element(
            By.CSS_SELECTOR, f'#live-list li[data-conversation="{conversation}"] button.monitor'
        ).click()
        state = sue.wait_desk(conversation, "the history", lambda s: line(s, "My order never came"))
        assert sue.state_text(conversation) == "monitor (agent Anna)"
        assert not sue.find(conversation, ".private-choice").is_displayed()
        sue.type(conversation, whisper)
        got = anna.expect("message", conversation=conversation, text=whisper)
        assert (got["alias"], got["private"]) == ("Sue", True)
        state = sue.wait_desk(conversation, "the whisper shown", lambda s: line(s, whisper))
        assert line(state, whisper)["private"] is True

        # Barge in from the pane: the customer is told, and reads the supervisor's lines.
        sue.find(conversation, ".desk-tools button.barge").click()
        told = mia.expect("message", text="A supervisor, Sue, joined the conversation.")
        assert told["from"] == "system"
        sue.wait_desk(
            conversation,
            "the barge",
            lambda s: sue.state_text(conversation) == "barge (agent Anna)",
        )
        sue.type(conversation, "Sorry for the delay, Mia")
        shown = mia.expect("message", text="Sorry for the delay, Mia")
        assert (shown["from"], shown["alias"]) == ("agent", "Sue")
        state = sue.wait_desk(conversation, "the visible line", lambda s: line(s, "Sorry for the"))
        assert line(state, "Sorry for the delay")["private"] is False
        assert anna.expect("message", text="Sorry for the delay, Mia")["alias"] == "Sue"

        anna.send({"type": "end", "conversation": conversation})
        mia.expect("ended", conversation=conversation)
        sue.wait(
            "the pane ended",
            lambda s: next(p for p in s["panes"] if p["conversation"] == conversation)["ended"],
        )
    mia.hang_up()
    anna.hang_up()
    assert_unseen(b"\n".join(mia.raw_lines), whisper, "WHISPER", '"private"', "monitor", "sue")
