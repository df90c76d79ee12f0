"""Real XMPP peers for the integration tests: a Prosody server and slixmpp clients.

Prosody (the Debian package) runs in the foreground from a temporary directory on
free loopback ports, its accounts made with ``prosodyctl``; every wait has a
deadline. A :class:`SlixClient` runs one slixmpp client on its own asyncio loop in a
thread, records every byte the server sent it, and hands its messages to the test
through a queue.
"""

from __future__ import annotations

import asyncio
import queue
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import certs
import harness

HOST = "localhost"
WAIT = 15.0

PROSODY_CONFIG = """\
run_as_root = true
daemonize = false
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
log = {{ debug = "{dir}/prosody.log" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s_port} }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{}}
component_ports = {{ {component_port} }}
component_interface = "127.0.0.1"
http_ports = {{}}
https_ports = {{}}
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = false
authentication = "internal_hashed"
storage = "internal"
modules_enabled = {{ "roster", "saslauth", "disco", "ping", "presence", "version" }}
modules_disabled = {{ "s2s", "offline", "tls" }}
limits = {{ c2s = {{ rate = "1mb/s" }} }}

VirtualHost "{host}"

Component "{component}"
    component_secret = "{secret}"
"""


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"prosody exited {proc.returncode}\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"prosody not listening on {port}\n{_tail(log)}") from None
            # Polling a port that is not open yet: a short pause between attempts.
            time.sleep(0.05)


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A key and a certificate for "localhost", named for the XMPP listener."""
    return certs.self_signed(directory, prefix="xmpp-")


class Prosody:
    """A Prosody server with a component ``support.HOST`` on loopback ports."""

    def __init__(self, directory: Path, secret: str) -> None:
        if shutil.which("prosody") is None:
            raise AssertionError("prosody is not installed (tests/run installs it)")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "data").mkdir(exist_ok=True)
        self.host = HOST
        self.component = f"support.{HOST}"
        self.secret = secret
        self.c2s_port = free_port()
        self.component_port = free_port()
        self.config = self.dir / "prosody.cfg.lua"
        self.config.write_text(
            PROSODY_CONFIG.format(
                dir=self.dir,
                c2s_port=self.c2s_port,
                component_port=self.component_port,
                host=self.host,
                component=self.component,
                secret=secret,
            )
        )
        self.log = self.dir / "prosody.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start in the foreground and wait until both ports accept connections."""
        self.proc = subprocess.Popen(
            ["prosody", "-F", "--config", str(self.config)],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            preexec_fn=harness._die_with_parent,
        )
        _wait_port(self.c2s_port, WAIT, self.proc, self.log)
        _wait_port(self.component_port, WAIT, self.proc, self.log)

    def register(self, user: str, password: str) -> None:
        """Create an account with prosodyctl."""
        proc = subprocess.run(
            ["prosodyctl", "--config", str(self.config), "register", user, self.host, password],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise AssertionError(f"prosodyctl register {user}: {proc.stdout}{proc.stderr}")

    def stop(self) -> None:
        """Terminate and wait (kill if it does not stop in time)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def log_tail(self) -> str:
        """The end of Prosody's debug log."""
        return _tail(self.log, 80)


class SlixClient:
    """A slixmpp client in its own thread; messages arrive on :attr:`messages`."""

    def __init__(
        self,
        jid: str,
        password: str,
        port: int,
        *,
        version: tuple[str, str] | None = None,
        starttls: bool = False,
        cafile: str | None = None,
        mechanism: str | None = None,
        caps_name: str | None = None,
        authorize: bool = True,
        available: bool = False,
    ) -> None:
        self.jid, self.password, self.port = jid, password, port
        self.raw = bytearray()  # every byte the server sent, after TLS
        self.messages: queue.Queue = queue.Queue()
        self.presences: queue.Queue = queue.Queue()
        # caps_name: announce XEP-0115 caps for a client identity of that name.
        self._caps_name = caps_name
        # authorize: approve presence subscription requests (most clients ask the user).
        self._authorize = authorize
        # available: send initial presence on login, as desktop clients do.
        self._available = available
        self._ready = threading.Event()
        self._failed: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._version = version
        self._starttls = starttls
        self._cafile = cafile
        self._mechanism = mechanism
        self.client = None
        self.tls_version: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"slix-{jid}", daemon=True)
        self._thread.start()
        if not self._ready.wait(WAIT):
            raise AssertionError(f"{jid}: no session within {WAIT}s: {self._failed}")
        if self._failed:
            raise AssertionError(f"{jid}: {self._failed}")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        import slixmpp

        raw = self.raw

        class Recording(slixmpp.ClientXMPP):
            def data_received(self, data: bytes) -> None:
                raw.extend(data)
                super().data_received(data)

        context = None
        if self._cafile:
            context = ssl.create_default_context(cafile=self._cafile)
        # Plain TCP is only used on loopback; SCRAM does not reveal the password.
        mechanisms = {"unencrypted_scram": not self._starttls}
        if self._mechanism:
            mechanisms["use_mech"] = self._mechanism
        client = Recording(
            self.jid, self.password, plugin_config={"feature_mechanisms": mechanisms}
        )
        if context is not None:
            client.ssl_context = context
        client.enable_direct_tls = False
        client.enable_starttls = self._starttls
        client.enable_plaintext = not self._starttls
        if self._version:
            client.register_plugin(
                "xep_0092", {"software_name": self._version[0], "version": self._version[1]}
            )
        client.register_plugin("xep_0030")
        client.register_plugin("xep_0085")
        # None: requests wait for the user, who never answers (False would decline).
        client.auto_authorize = True if self._authorize else None
        client.auto_subscribe = self._authorize
        if self._caps_name:
            client.register_plugin("xep_0115")
        client.add_event_handler("presence", lambda p: self.presences.put(p))
        client.add_event_handler("session_start", self._session_start)
        client.add_event_handler("message", lambda m: self.messages.put(m))
        client.add_event_handler("message_error", lambda m: self.messages.put(m))
        client.add_event_handler("failed_auth", lambda *a: self._fail("authentication failed"))
        client.add_event_handler("failed_all_auth", lambda *a: self._fail("no usable SASL"))
        self.client = client
        client.connect("127.0.0.1", self.port)
        self._loop.run_forever()
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.run_until_complete(asyncio.sleep(0))

    def _fail(self, why: str) -> None:
        self._failed.append(why)
        self._ready.set()

    async def _session_start(self, _event) -> None:
        if self._caps_name:
            # The identity of the bound JID, which the caps hash (XEP-0115) covers.
            jid = self.client.boundjid
            self.client.plugin["xep_0030"].add_identity(
                category="client", itype="pc", name=self._caps_name, jid=jid
            )
            await self.client.plugin["xep_0115"].update_caps(jid)
        if self._available:
            self.client.send_presence()
        ssl_object = self.client.transport.get_extra_info("ssl_object")
        self.tls_version = ssl_object.version() if ssl_object is not None else None
        self._ready.set()

    def call(self, function, *args, **kwargs) -> None:
        """Run ``function`` on the client's loop."""
        self._loop.call_soon_threadsafe(lambda: function(*args, **kwargs))

    def run(self, coroutine, timeout: float = WAIT):
        """Run a coroutine on the client's loop; its result, waited for up to ``timeout``."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def send(self, to: str, body: str) -> None:
        """Send a chat message."""
        self.call(self.client.send_message, mto=to, mbody=body, mtype="chat")

    def presence(self, to: str, show: str | None = None) -> None:
        """Send directed presence."""
        self.call(self.client.send_presence, pto=to, pshow=show)

    def expect(self, contains: str = "", sender: str | None = None, timeout: float = WAIT):
        """The next message with a body containing ``contains`` (from ``sender``)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.jid}: no message with {contains!r}; got {seen}")
            try:
                msg = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            body = msg["body"]
            seen.append((str(msg["from"]), msg["type"], body))
            if msg["type"] == "error" or not body:
                continue
            if contains in body and (sender is None or str(msg["from"]).startswith(sender)):
                return msg

    def expect_error(self, timeout: float = WAIT):
        """The next message of type error (a bounce or a refusal)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.jid}: no error message")
            try:
                msg = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if msg["type"] == "error":
                return msg

    def expect_presence(self, sender: str, kind: str = "available", timeout: float = WAIT):
        """The next presence from ``sender`` (bare JID) of ``kind``."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.jid}: no {kind} presence from {sender}; got {seen}")
            try:
                presence = self.presences.get(timeout=remaining)
            except queue.Empty:
                continue
            seen.append((str(presence["from"]), presence["type"]))
            if str(presence["from"]).partition("/")[0] == sender and presence["type"] == kind:
                return presence

    def drop(self) -> None:
        """Lose the connection: the socket closes with no unavailable presence sent."""
        self.call(lambda: self.client.transport.abort())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self.client = None

    def stop(self) -> None:
        """Disconnect, stop the loop and end the thread."""
        if self.client is not None and self._thread.is_alive():

            async def bye():
                result = self.client.disconnect()
                if asyncio.isfuture(result) or asyncio.iscoroutine(result):
                    await asyncio.wait_for(result, 5)

            try:
                self.run(bye(), 10)
            except Exception:  # already disconnected, or the server is gone
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
