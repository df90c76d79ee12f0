"""Web chat in Debian's headless Chromium: the widget on a company page of another origin
and the agent console in other windows, against the installed gateway.

A whole conversation both ways (the interview with choice buttons, the queue, typing,
delivery and read receipts, formatting, a page reload mid-chat that resumes it, a
transfer to a colleague, the end); script tags in every field shown as text; a page of
an origin not allowed; the browser's markup renderer agreeing with the gateway's.
Screenshots of every window are kept in the test's directory when one fails.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import harness
import pytest
from browser import chromium
from jsonim_client import JsonImClient, hello_agent, set_presence
from leaks import assert_unseen
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from web_site import (
    CompanySite,
    Console,
    Widget,
    screenshots_on_failure,
    wait_for,
    web_port,
    websocket_frames,
    write_config,
)

from protocols.jsonim.markup import parse

PASSWORDS = {"anna": "anna-Secret-1", "bob": "bob-Secret-2", "eve": "eve-Secret-3"}
IDENTITY_SECRET = "site-signing-Secret-9"
EVIL = "<img src=x onerror=\"window.__pwned='alias'\">"
TYPING = "\u2026"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("web-chat")
    company = CompanySite()
    config = write_config(
        root,
        resume_grace_s=60,
        web=f'allowed_origins = ["{company.origin}"]\ndemo = true\n',
    )
    config.write_text(
        config.read_text().replace(
            "[jsonim]\n", f'[jsonim]\nidentity_secret = "{IDENTITY_SECRET}"\n', 1
        )
    )
    harness.add_agent(config, "anna", PASSWORDS["anna"], "Anna")
    harness.add_agent(config, "bob", PASSWORDS["bob"], "Bob")
    harness.admin(
        config,
        "agent",
        "add",
        "eve",
        "--password-stdin",
        "--display-name",
        EVIL,
        stdin=PASSWORDS["eve"] + "\n",
    )
    gateway = harness.start_gateway(root / "cwd", config, "web-gateway")
    gateway.web = web_port(gateway)
    gateway.company = company
    gateway.config_path = config
    yield gateway
    gateway.stop()
    company.close()


def line_with(lines: list[dict], text: str, sender: str | None = None) -> dict | None:
    """The first line containing ``text`` (from ``sender``)."""
    return next(
        (x for x in lines if text in x["text"] and (sender is None or x["from"] == sender)), None
    )


def test_a_whole_conversation_both_ways(site, tmp_path):
    with chromium(tmp_path / "profile") as driver, screenshots_on_failure(driver, tmp_path):
        driver.set_window_size(1200, 900)
        anna = Console(driver, site.web)
        anna.login("anna", PASSWORDS["anna"])
        site.wait_for_log(r"agent anna is available", 10)
        widget = Widget(driver, site.company.embed("/shop.html", site.web))
        assert widget.state()["phase"] == "idle" and not widget.state()["open"]

        # The interview: a question, then choice buttons.
        widget.open()
        widget.wait("the name question", lambda s: line_with(s["lines"], "What is your name?"))
        widget.type("Dana")
        widget.wait(
            "the topic as buttons",
            lambda s: s["choices"] == ["Billing", "Technical support", "Something else"],
        )
        widget.choose("Billing")
        queued = widget.wait("the queue position", lambda s: s["phase"] == "queued" and s)
        assert queued["status"] == "You are number 1 in the queue (about 1 min).", queued
        assert queued["choices"] == []

        # The offer with the customer's card.
        offer = anna.offer(widget.conversation())
        conversation = offer["conversation"]
        assert offer["details"] == {
            "Channel": "web",
            "Client": "webchat 1.0",
            "Topic": "billing",
            "name": "Dana",
        }
        pane = anna.accept(offer)
        history = [(x["from"], x["text"]) for x in pane["lines"] if x["history"]]
        assert ("customer", "Dana") in history and ("customer", "billing") in history
        widget.wait(
            "connected to Anna",
            lambda s: s["phase"] == "connected" and s["status"] == "You are chatting with Anna.",
        )

        # Typing both ways, then formatted lines both ways.
        anna.type(conversation, "Hello", send=False)
        widget.wait("Anna typing", lambda s: s["typing"] == f"Anna is typing{TYPING}")
        anna.type(conversation, " **Dana**, see [the FAQ](https://example.com/faq)")
        line = widget.wait("Anna's line", lambda s: line_with(s["lines"], "Hello Dana", "agent"))
        assert line["text"] == "Hello Dana, see the FAQ"
        assert "<strong>Dana</strong>" in line["html"]
        assert line["links"] == ["https://example.com/faq"]
        widget.wait("no typing once Anna's line came", lambda s: s["typing"] == "")
        widget.type("My invoice is _wrong_", send=False)
        alias = anna.wait("the customer typing", lambda s: s["panes"][0]["typing"])
        assert alias.startswith("c-") and alias.endswith(f" is typing{TYPING}"), alias
        widget.type(" twice")
        said = anna.wait(
            "the customer's line",
            lambda s: line_with(s["panes"][0]["lines"], "My invoice is wrong twice", "customer"),
        )
        assert "<em>wrong</em>" in said["html"]

        # Receipts: each side sees its line delivered, then read.
        widget.wait(
            "the customer's line read",
            lambda s: line_with(s["lines"], "My invoice is", "customer")["receipt"] == "read",
        )
        anna.wait(
            "Anna's line read",
            lambda s: line_with(s["panes"][0]["lines"], "Hello Dana", "agent")["receipt"] == "read",
        )

        # A reload mid-chat: the conversation carries on, nothing shown is lost.
        widget.focus()
        before = [x["text"] for x in widget.state()["lines"]]
        driver.refresh()
        resumed = widget.wait(
            "the chat resumed",
            lambda s: (
                s
                and s["phase"] == "connected"
                and s["status"] == "You are chatting with Anna."
                and line_with(s["lines"], "Welcome back")
                and s
            ),
        )
        assert [x["text"] for x in resumed["lines"]][: len(before)] == before
        assert resumed["open"]
        anna.wait("the customer back", lambda s: any("is back" in n for n in s["notices"]))
        anna.type(conversation, "Still there?")
        widget.wait("Anna's line after the reload", lambda s: line_with(s["lines"], "Still there?"))
        widget.type("Yes")
        anna.wait(
            "the line after the reload, same conversation",
            lambda s: line_with(s["panes"][0]["lines"], "Yes", "customer"),
        )

        # A transfer to a colleague, who gets the history.
        bob = Console(driver, site.web)
        bob.login("bob", PASSWORDS["bob"])
        anna.transfer(conversation, "Agent", "bob")
        anna.wait("Anna's side ended", lambda s: s["panes"][0]["ended"] == "agent")
        offer = bob.offer(conversation)
        pane = bob.accept(offer)
        texts = [x["text"] for x in pane["lines"] if x["history"]]
        assert "My invoice is wrong twice" in texts
        assert "Hello Dana, see the FAQ (https://example.com/faq)" in texts
        widget.wait("connected to Bob", lambda s: s["status"] == "You are chatting with Bob.")
        bob.type(conversation, "Bob here, I have it.")
        line = widget.wait("Bob's line", lambda s: line_with(s["lines"], "Bob here", "agent"))
        assert line["html"].startswith("Bob here")

        # The customer ends it.
        widget.end()
        widget.wait("the end", lambda s: s["ended"] and s["phase"] == "ended")
        bob.wait("Bob's side ended", lambda s: s["panes"][0]["ended"] == "customer")

    transcript = harness.admin(site.config_path, "transcript", conversation).stdout
    # The transcript keeps the plain rendering of formatted lines.
    assert "Hello Dana, see the FAQ (https://example.com/faq)" in transcript
    assert "My invoice is wrong twice" in transcript


def test_a_network_drop_mid_chat_is_resumed(site, tmp_path, monkeypatch):
    admin = site.listener_port("admin")
    monkeypatch.setenv("IMGATEWAY_ADMIN_URL", f"http://127.0.0.1:{admin}")
    with chromium(tmp_path / "profile") as driver, screenshots_on_failure(driver, tmp_path):
        anna = Console(driver, site.web)
        anna.login("anna", PASSWORDS["anna"])
        mark = len(site.lines)
        widget = Widget(driver, site.company.embed("/drop.html", site.web))
        widget.open()
        widget.wait("the name question", lambda s: line_with(s["lines"], "What is your name?"))
        port = site.wait_for_log(r"JSON-IM web 127\.0\.0\.1:(\d+): customer session", 10, mark)
        widget.type("Lee")
        widget.wait("the choices", lambda s: s["choices"])
        widget.choose("Billing")
        offer = anna.offer(widget.conversation())
        conversation = offer["conversation"]
        anna.accept(offer)
        widget.wait("connected", lambda s: s["status"] == "You are chatting with Anna.")
        # The gateway's side cuts the connection (the firewall's conntrack kill).
        listing = harness.admin(site.config_path, "fw", "conntrack", "list", "--json").stdout
        [entry] = [
            e
            for e in json.loads(listing)
            if e["listener"] == "web" and e["original"]["src"] == f"127.0.0.1:{port.group(1)}"
        ]
        harness.admin(site.config_path, "fw", "conntrack", "kill", str(entry["id"]))
        site.wait_for_log(rf"conversation {conversation} held for", 10, mark)
        anna.type(conversation, "Are you back?")
        site.wait_for_log(rf"conversation {conversation} resumed by session", 15, mark)
        line = widget.wait(
            "Anna's line after the drop", lambda s: line_with(s["lines"], "Are you back?")
        )
        assert line["from"] == "agent"
        widget.wait("connected again", lambda s: s["status"] == "You are chatting with Anna.")
        widget.type("Yes, here")
        anna.wait(
            "the customer again, same conversation",
            lambda s: line_with(s["panes"][0]["lines"], "Yes, here", "customer"),
        )
        widget.end()
        widget.wait("the end", lambda s: s["ended"])


def test_script_tags_in_every_field_are_shown_as_text(site, tmp_path):
    # Under the name field's 80 characters.
    payload = "<script>window.__pwned='{}'</script><img src=x onerror=\"window.__pwned='{}'\">"
    with chromium(tmp_path / "profile") as driver, screenshots_on_failure(driver, tmp_path):
        eve = Console(driver, site.web)
        eve.login("eve", PASSWORDS["eve"])
        widget = Widget(driver, site.company.embed("/evil.html", site.web))
        widget.open()
        widget.wait("the name question", lambda s: line_with(s["lines"], "What is your name?"))
        name = payload.format("n", "n")
        widget.type(name)
        widget.wait("the choices", lambda s: s["choices"])
        widget.choose("Billing")
        offer = eve.offer(widget.conversation())
        assert offer["details"]["name"] == name
        eve.accept(offer)
        conversation = offer["conversation"]
        widget.wait("connected", lambda s: s["phase"] == "connected")
        assert widget.state()["status"] == f"You are chatting with {EVIL}."
        message = payload.format("m", "m") + " [x](javascript:alert(1)) **b**"
        widget.type(message)
        eve.type(conversation, payload.format("a", "a") + " _i_")
        got = eve.wait(
            "the customer's line",
            lambda s: line_with(s["panes"][0]["lines"], "window.__pwned='m'", "customer"),
        )
        assert got["text"] == payload.format("m", "m") + " [x](javascript:alert(1)) b"
        assert "<script" not in got["html"] and "<img" not in got["html"]
        line = widget.wait(
            "the agent's line", lambda s: line_with(s["lines"], "window.__pwned='a'", "agent")
        )
        assert "<script" not in line["html"] and "<img" not in line["html"]
        assert "<em>i</em>" in line["html"]
        for view in (widget, eve):
            view.focus()
            assert driver.execute_script("return window.__pwned === undefined")
            assert driver.execute_script("return document.querySelectorAll('img').length") == 0
        widget.end()
        widget.wait("the end", lambda s: s["ended"])


def test_a_page_of_an_origin_not_allowed_is_told_why(site, tmp_path):
    other = CompanySite()  # another port: another origin, not in allowed_origins
    try:
        with chromium(tmp_path / "profile") as driver, screenshots_on_failure(driver, tmp_path):
            widget = Widget(driver, other.embed("/page.html", site.web))
            widget.open()
            refused = widget.wait("the refusal", lambda s: s["phase"] == "refused" and s)
            assert refused["closeCode"] == "1008"
            assert refused["status"] == (
                f"The chat is not available here (origin not allowed: {other.origin})."
            )
        site.wait_for_log(
            rf"web 127\.0\.0\.1:\d+: refused origin {other.origin}: 1008 origin not allowed", 10
        )
    finally:
        other.close()


MARKUP_VECTORS = [
    "**bold** and *italic* and _also_ snake_case 2*3*4",
    "[the docs](https://example.com/a_b) see https://x.example/p. ok",
    "\\*no\\* \\[x\\](y) <b>html</b> &amp;",
    "**a *b* c** *a **b** c* ** no *unclosed\nline two*",
    "[x](javascript:alert(1)) [m](mailto:a@b.example) http://. ***x*** _a_b_",
    "\u00e9t\u00e9 *caf\u00e9* _na\u00efve_ **\u65e5\u672c**",
]


def test_the_browser_reads_markup_as_the_gateway_does(site, tmp_path):
    with chromium(tmp_path / "profile") as driver:
        driver.get(f"http://127.0.0.1:{site.web}/console")
        wait_for(
            driver, "markup.js", lambda: driver.execute_script("return !!window.ImgatewayMarkup")
        )
        for vector in MARKUP_VECTORS:
            ours = driver.execute_script("return ImgatewayMarkup.parse(arguments[0])", vector)
            assert json.loads(json.dumps(ours)) == json.loads(json.dumps(parse(vector))), vector


def test_the_demo_page_embeds_the_widget_and_no_byte_names_the_agent(site, tmp_path):
    agent = JsonImClient(site.port, name="anna over JSON-IM")
    hello_agent(agent, "anna", PASSWORDS["anna"])
    set_presence(agent, "available")
    with chromium(tmp_path / "profile", network_log=True) as driver:
        with screenshots_on_failure(driver, tmp_path):
            widget = Widget(driver, f"http://127.0.0.1:{site.web}/demo")
            assert driver.execute_script(
                "return document.querySelector('a[href=\"/console\"]') !== null"
            )
            widget.open()
            widget.wait("the name question", lambda s: line_with(s["lines"], "What is your name?"))
            widget.type("Dana")
            widget.wait("the choices", lambda s: s["choices"])
            widget.choose("Billing")
            offer = agent.expect("offer", conversation=widget.conversation())
            agent.send({"type": "accept", "offer": offer["offer"]})
            conversation = offer["conversation"]
            widget.wait("connected", lambda s: s["phase"] == "connected")
            agent.send({"type": "message", "conversation": conversation, "text": "Hi from Anna"})
            widget.wait("the agent's line", lambda s: line_with(s["lines"], "Hi from Anna"))
            widget.end()
            widget.wait("the end", lambda s: s["ended"])
            received = "\n".join(websocket_frames(driver))
    agent.close()
    assert "Hi from Anna" in received and '"type":"welcome"' in received
    # The account name (the alias is "Anna") and the agent's address never reach the page.
    assert_unseen(received, "anna", "127.0.0.1")


_FOCUS = """
const host = document.querySelector('[data-imgateway-chat]');
const inner = document.activeElement === host ? host.shadowRoot.activeElement : null;
return inner ? inner.className || inner.tagName.toLowerCase() : null;
"""
_PANEL = """
const panel = document.querySelector('[data-imgateway-chat]').shadowRoot.querySelector('.panel');
const box = panel.getBoundingClientRect();
return [box.width, box.height, window.innerWidth, window.innerHeight];
"""


def test_the_widget_by_keyboard_and_on_a_small_screen(site, tmp_path):
    with chromium(tmp_path / "profile") as driver, screenshots_on_failure(driver, tmp_path):
        widget = Widget(driver, site.company.embed("/small.html", site.web))
        # A phone's screen (headless windows are at least 500 px wide).
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 800, "deviceScaleFactor": 2, "mobile": True},
        )
        keys = ActionChains(driver)
        for _ in range(5):  # the page has no other control
            if driver.execute_script(_FOCUS) == "launcher":
                break
            keys.send_keys(Keys.TAB).perform()
        assert driver.execute_script(_FOCUS) == "launcher"
        keys.send_keys(Keys.ENTER).perform()
        widget.wait("the panel open", lambda s: s["open"])
        assert driver.execute_script(_FOCUS) == "textarea"
        width, height, inner_width, inner_height = driver.execute_script(_PANEL)
        assert (width, height) == (inner_width, inner_height), (width, height)
        widget.wait("the name question", lambda s: line_with(s["lines"], "What is your name?"))
        keys.send_keys("Kim", Keys.ENTER).perform()
        widget.wait("the choices", lambda s: s["choices"])
        keys.send_keys(Keys.ESCAPE).perform()
        widget.wait("the panel closed", lambda s: not s["open"])
        assert driver.execute_script(_FOCUS) == "launcher"


def widget_chat(driver, url: str, agent: JsonImClient, name: str | None) -> dict:
    """A chat from the widget on ``url`` in a new window (its own sessionStorage, the
    profile's localStorage), offered to ``agent``, accepted and ended; the offer."""
    widget = Widget(driver, url)
    widget.open()
    if name is not None:
        widget.wait("the name question", lambda s: line_with(s["lines"], "What is your name?"))
        widget.type(name)
    widget.wait("the topic as buttons", lambda s: s["choices"])
    widget.choose("Billing")
    offer = agent.expect("offer", conversation=widget.conversation())
    agent.send({"type": "accept", "offer": offer["offer"]})
    agent.expect("connected", conversation=offer["conversation"])
    widget.wait("connected", lambda s: s["phase"] == "connected")
    agent.send({"type": "end", "conversation": offer["conversation"]})
    widget.wait("the end", lambda s: s["ended"])
    return offer


def test_a_returning_widget_customer_is_recognised(site, tmp_path):
    agent = JsonImClient(site.port, name="bob over JSON-IM")
    hello_agent(agent, "bob", PASSWORDS["bob"])
    set_presence(agent, "available")
    vera = json.dumps({"id": "u-77", "name": "Vera"})
    signature = hmac.new(
        IDENTITY_SECRET.encode(),
        json.dumps(json.loads(vera), sort_keys=True, separators=(",", ":")).encode(),
        hashlib.sha256,
    ).hexdigest()
    company = site.company
    with chromium(tmp_path / "profile") as driver, screenshots_on_failure(driver, tmp_path):
        driver.set_window_size(1200, 900)
        # The customer token, kept in the page origin's localStorage, names the customer
        # again in another window (a later visit): its offer has the earlier chat.
        remembered = company.embed("/account.html", site.web)
        first = widget_chat(driver, remembered, agent, "Rita")
        assert "history" not in first["customer"] or first["customer"]["history"] == []
        second = widget_chat(driver, remembered, agent, "Rita")
        [past] = second["customer"]["history"]
        assert (past["conversation"], past["topic"], past["agent"]) == (
            first["conversation"],
            "billing",
            "Bob",
        )
        stored = driver.execute_script(
            "return Object.keys(localStorage).filter((k) => k.startsWith('imgateway-customer:'))"
        )
        assert len(stored) == 1, stored

        # data-remember="off": nothing read or kept, a stranger each time.
        forgetful = company.embed("/kiosk.html", site.web, remember="off")
        third = widget_chat(driver, forgetful, agent, "Rita")
        assert third["customer"].get("history", []) == []

        # A signed-in user the site vouches for: no name question, the identity verified,
        # and recognised by it on the next visit, token or not.
        signed = company.embed(
            "/signed.html", site.web, remember="off", identity=vera, identity_signature=signature
        )
        fourth = widget_chat(driver, signed, agent, None)
        assert fourth["customer"]["identity"]["name"] == "Vera"
        fifth = widget_chat(driver, signed, agent, None)
        assert [p["conversation"] for p in fifth["customer"]["history"]] == [fourth["conversation"]]
    agent.close()
