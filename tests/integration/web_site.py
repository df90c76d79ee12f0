"""Web chat in the integration tests: a gateway with a web listener, a company page on
another origin that embeds the widget, and the widget and the agent console driven in
Debian's headless Chromium. Every wait is bounded; screenshots are kept on failure."""

from __future__ import annotations

import contextlib
import html
import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import harness
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

WEB_LISTENING = r"web listener \S+ listening on 127\.0\.0\.1:(\d+)"
WAIT_S = 15.0


def write_config(root: Path, *, web: str = "", **options: Any) -> Path:
    """harness.write_config with a web listener on port 0 and ``web`` in its ``[web]``."""
    path = harness.write_config(root, **options)
    text = re.sub(
        r"(?m)^(jsonim = \[.*\])$",
        r'\1\nweb = ["tcp:0:interface=127.0.0.1"]',
        path.read_text(),
        count=1,
    )
    path.write_text(text + "\n[web]\n" + web)
    return path


def web_port(gateway: harness.Gateway) -> int:
    """The web listener's port, from its log line."""
    return int(gateway.wait_for_log(WEB_LISTENING, harness.START_TIMEOUT).group(1))


class CompanySite:
    """The company's web site: pages on their own origin that embed the widget."""

    def __init__(self) -> None:
        pages: dict[str, bytes] = {}
        self.pages = pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(body or b"not here")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def embed(self, path: str, gateway_port: int, title: str = "Acme support", **data: str) -> str:
        """A page at ``path`` with the one script tag (and ``data``'s ``data-*``
        attributes, ``_`` read as ``-``); its URL."""
        extra = "".join(
            f" data-{k.replace('_', '-')}='{html.escape(v, quote=True)}'" for k, v in data.items()
        )
        self.pages[path] = (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Acme</title>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "</head><body><h1>Acme Corp</h1><p>Welcome to our shop.</p>"
            f"<script src='http://127.0.0.1:{gateway_port}/widget.js' "
            f"data-title='{title}'{extra} defer></script></body></html>"
        ).encode()
        return self.origin + path

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def wait_for(driver, what: str, predicate: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    """Poll ``predicate`` on the live page until it returns something true (bounded)."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda _: predicate(), message=f"the page never showed {what}"
    )


@contextlib.contextmanager
def screenshots_on_failure(driver, directory: Path) -> Iterator[None]:
    """On failure, a screenshot of every window and its browser log, kept in ``directory``."""
    try:
        yield
    except BaseException:
        directory.mkdir(parents=True, exist_ok=True)
        for i, handle in enumerate(driver.window_handles):
            try:
                driver.switch_to.window(handle)
                driver.save_screenshot(str(directory / f"failure-window-{i}.png"))
                (directory / f"failure-window-{i}.html").write_text(driver.page_source)
            except Exception:  # a window that cannot be shot must not hide the failure
                pass
        print(f"screenshots of the failure kept in {directory}")
        raise


_WIDGET = """
const host = document.querySelector('[data-imgateway-chat]');
if (!host) { return null; }
const root = host.shadowRoot;
const text = (sel) => { const n = root.querySelector(sel); return n ? n.textContent : null; };
return {
  phase: host.dataset.phase || null,
  conversation: host.dataset.conversation || null,
  closeCode: host.dataset.closeCode || null,
  status: text('.status'),
  typing: text('.typing'),
  open: !root.querySelector('.panel').hidden,
  ended: !root.querySelector('.ended').hidden,
  choices: Array.from(root.querySelectorAll('.choice'), (b) => b.textContent),
  lines: Array.from(root.querySelectorAll('.log li'), (li) => ({
    from: li.dataset.from, msg: li.dataset.msg || null, receipt: li.dataset.receipt || null,
    text: li.querySelector('.text').textContent, html: li.querySelector('.text').innerHTML,
    links: Array.from(li.querySelectorAll('.text a'), (a) => a.getAttribute('href')),
  })),
};
"""


class Widget:
    """The chat widget on a page in one browser window (its own sessionStorage)."""

    def __init__(self, driver, url: str) -> None:
        self.driver = driver
        driver.switch_to.new_window("window")
        self.window = driver.current_window_handle
        driver.get(url)
        wait_for(driver, "the widget", lambda: self.state() is not None)

    def focus(self) -> None:
        """Make this window the one the driver acts in."""
        if self.driver.current_window_handle != self.window:
            self.driver.switch_to.window(self.window)

    def state(self) -> dict | None:
        """What the widget shows, read in one go (see _WIDGET)."""
        self.focus()
        return self.driver.execute_script(_WIDGET)

    def wait(self, what: str, predicate: Callable[[dict], Any], timeout: float = WAIT_S) -> Any:
        """Wait until ``predicate(state)`` holds."""
        return wait_for(self.driver, what, lambda: predicate(self.state()), timeout)

    def _root(self):
        self.focus()
        return self.driver.find_element(By.CSS_SELECTOR, "[data-imgateway-chat]").shadow_root

    def open(self) -> None:
        """Press the launcher."""
        self._root().find_element(By.CSS_SELECTOR, ".launcher").click()
        self.wait("the panel open", lambda s: s["open"])

    def type(self, text: str, *, send: bool = True) -> None:
        """Type into the message box (and press Enter)."""
        box = self._root().find_element(By.CSS_SELECTOR, "textarea")
        box.send_keys(text)
        if send:
            box.send_keys(Keys.ENTER)

    def choose(self, label: str) -> None:
        """Press the choice button with this label."""
        for button in self._root().find_elements(By.CSS_SELECTOR, ".choice"):
            if button.text == label:
                button.click()
                return
        raise AssertionError(f"no choice {label!r} in {self.state()['choices']}")

    def end(self) -> None:
        """Press End chat."""
        self._root().find_element(By.CSS_SELECTOR, ".end").click()

    def conversation(self) -> str:
        """The conversation the widget is in, once welcomed."""
        return self.wait("the conversation's id", lambda s: s["conversation"])

    def said(self, text: str) -> dict:
        """Wait for the line this customer wrote with ``text``; that line."""
        return self.wait(
            f"own line {text!r}",
            lambda s: next(
                (x for x in s["lines"] if x["from"] == "customer" and x["text"] == text), None
            ),
        )


_CONSOLE = """
const q = (sel, root) => (root || document).querySelector(sel);
const panes = Array.from(document.querySelectorAll('.pane'), (pane) => ({
  conversation: pane.dataset.conversation, ended: pane.dataset.ended || null,
  hidden: pane.hidden, typing: q('.typing', pane).textContent,
  lines: Array.from(pane.querySelectorAll('.log li'), (li) => ({
    from: li.dataset.from, msg: li.dataset.msg || null, receipt: li.dataset.receipt || null,
    text: li.querySelector('.text').textContent, html: li.querySelector('.text').innerHTML,
    history: li.classList.contains('history'),
  })),
}));
const offers = Array.from(document.querySelectorAll('.offer'), (li) => ({
  offer: li.dataset.offer, conversation: li.dataset.conversation, text: li.textContent,
  details: Object.fromEntries(Array.from(
    li.querySelectorAll('dt'), (dt) => [dt.textContent, dt.nextElementSibling.textContent])),
}));
return {phase: document.body.dataset.phase || null, status: q('#status').textContent,
        closeCode: document.body.dataset.closeCode || null,
        notices: Array.from(document.querySelectorAll('.notice'), (n) => n.textContent),
        offers: offers, panes: panes};
"""


class Console:
    """The agent console in one browser window."""

    def __init__(self, driver, port: int) -> None:
        self.driver = driver
        driver.switch_to.new_window("window")
        self.window = driver.current_window_handle
        driver.get(f"http://127.0.0.1:{port}/console")
        wait_for(driver, "the login form", lambda: self.state()["phase"] == "login")

    def focus(self) -> None:
        """Make this window the one the driver acts in."""
        if self.driver.current_window_handle != self.window:
            self.driver.switch_to.window(self.window)

    def state(self) -> dict:
        """What the console shows, read in one go (see _CONSOLE)."""
        self.focus()
        return self.driver.execute_script(_CONSOLE)

    def wait(self, what: str, predicate: Callable[[dict], Any], timeout: float = WAIT_S) -> Any:
        """Wait until ``predicate(state)`` holds."""
        return wait_for(self.driver, what, lambda: predicate(self.state()), timeout)

    def login(self, user: str, password: str, status: str = "Available") -> None:
        """Log in and set a presence (the option's label)."""
        self.focus()
        self.driver.find_element(By.ID, "user").send_keys(user)
        self.driver.find_element(By.ID, "password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "#login button").click()
        self.wait("the desk", lambda s: s["phase"] == "desk")
        self.presence(status)

    def presence(self, label: str) -> None:
        """Choose a presence by its label ("Available", "Away: Lunch")."""
        self.focus()
        wait_for(
            self.driver,
            "presence options",
            lambda: self.driver.find_elements(By.CSS_SELECTOR, "#presence option"),
        )
        Select(self.driver.find_element(By.ID, "presence")).select_by_visible_text(label)

    def offer(self, conversation: str | None = None) -> dict:
        """Wait for an offer (of ``conversation``); the first shown."""
        return self.wait(
            f"an offer of {conversation or 'any conversation'}",
            lambda s: next(
                (o for o in s["offers"] if conversation in (None, o["conversation"])), None
            ),
        )

    def accept(self, offer: dict) -> dict:
        """Accept ``offer``; its conversation's pane once open."""
        self.focus()
        self.driver.find_element(
            By.CSS_SELECTOR, f'.offer[data-offer="{offer["offer"]}"] .accept'
        ).click()
        return self.pane(offer["conversation"])

    def pane(self, conversation: str, what: str = "its pane") -> dict:
        """Wait for the conversation's pane; its state."""
        return self.wait(
            f"{conversation}: {what}",
            lambda s: next((p for p in s["panes"] if p["conversation"] == conversation), None),
        )

    def _pane(self, conversation: str, css: str):
        self.focus()
        return self.driver.find_element(
            By.CSS_SELECTOR, f'.pane[data-conversation="{conversation}"] {css}'
        )

    def select(self, conversation: str) -> None:
        """Show the conversation's tab."""
        self.focus()
        self.driver.find_element(
            By.CSS_SELECTOR, f'[role="tab"][data-conversation="{conversation}"]'
        ).click()

    def type(self, conversation: str, text: str, *, send: bool = True) -> None:
        """Type into the conversation's message box (and press Enter)."""
        box = self._pane(conversation, "textarea")
        box.send_keys(text)
        if send:
            box.send_keys(Keys.ENTER)

    def transfer(self, conversation: str, kind: str, name: str) -> None:
        """Transfer to a queue or an agent (kind: "Queue" or "Agent")."""
        Select(self._pane(conversation, ".transfer select")).select_by_visible_text(kind)
        self._pane(conversation, ".transfer input").send_keys(name)
        self._pane(conversation, ".transfer button").click()

    def end(self, conversation: str) -> None:
        """Press End conversation."""
        self._pane(conversation, "button.end").click()

    def lines(self, conversation: str) -> list[dict]:
        """The conversation's lines as shown."""
        return self.pane(conversation)["lines"]


def websocket_frames(driver) -> list[dict]:
    """JSON-IM frames the page's WebSockets received since the last call (DevTools log)."""
    frames = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.webSocketFrameReceived":
            payload = message["params"]["response"]["payloadData"]
            frames.append(payload)
    return frames
