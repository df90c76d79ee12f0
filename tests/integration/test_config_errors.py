"""Startup: a bad configuration or a listener that cannot bind stops twistd at once."""

from __future__ import annotations

import re
import socket

import harness
import pytest

EXIT_TIMEOUT = 30.0


def run_to_exit(workdir, config, name):
    """Start twistd and wait (bounded) for it to exit; return (status, non-empty lines)."""
    gateway = harness.Gateway(workdir, config, name)
    status = gateway.wait_exit(EXIT_TIMEOUT)
    gateway.stop()
    assert status is not None, f"still running {EXIT_TIMEOUT:g}s later\n{gateway.log_tail()}"
    return status, [line for line in gateway.lines if line.strip()], gateway


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[gateway]\nbogus = 1\n", "gateway.bogus", "unknown key"),
        ('[jsonim]\nmax_frame = "big"\n', "jsonim.max_frame", "must be an integer"),
        ('[routing]\ndefault_queue = "nope"\n', "routing.default_queue", "names no queue"),
    ],
    ids=["unknown-key", "wrong-type", "bad-default-queue"],
)
def test_bad_config_exits_with_one_line_naming_file_key_and_problem(tmp_path, text, key, problem):
    config = tmp_path / "site.toml"
    config.write_text(text)
    status, lines, gateway = run_to_exit(tmp_path / "cwd", config, "bad-config")
    assert status != 0, gateway.log_tail()
    assert len(lines) == 1, f"wanted exactly one line, got {len(lines)}:\n" + "\n".join(lines)
    wanted = re.escape(f"{config}: {key}: ") + r".*" + re.escape(problem)
    assert re.search(wanted, lines[0]), f"/{wanted}/ not in {lines[0]!r}"


def test_listener_that_cannot_bind_is_a_startup_failure(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = harness.write_config(tmp_path, listener=f"tcp:{port}:interface=127.0.0.1")
        status, lines, gateway = run_to_exit(tmp_path / "cwd", config, "cannot-bind")
    assert status != 0, gateway.log_tail()
    assert any(str(port) in line for line in lines), gateway.log_tail()


def test_without_config_or_site_file_it_runs_on_packaged_defaults(tmp_path):
    # Listens on the default tcp:7070 if it is free; only the configuration line matters.
    gateway = harness.Gateway(tmp_path, None, "defaults")
    try:
        gateway.wait_for_log(r"configuration: packaged defaults\s*$", harness.START_TIMEOUT)
    finally:
        gateway.stop()


def test_site_file_in_etc_is_merged_over_the_defaults(tmp_path):
    harness.write_config(tmp_path / "etc")  # ./etc/imgateway.toml, listening on port 0
    gateway = harness.Gateway(tmp_path, None, "site-file")
    try:
        gateway.wait_for_log(
            r"configuration: packaged defaults \+ \S*etc/imgateway\.toml", harness.START_TIMEOUT
        )
        gateway.wait_listening()
    finally:
        gateway.stop()
