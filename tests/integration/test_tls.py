"""JSON-IM over direct TLS: a Twisted `ssl:` endpoint string as the listener."""

from __future__ import annotations

import ssl

import harness
from certs import self_signed
from jsonim_client import hello_customer


def test_customer_over_tls(tmp_path):
    key, cert = self_signed(tmp_path)
    listener = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    config = harness.write_config(tmp_path, listener=listener)
    gateway = harness.start_gateway(tmp_path / "cwd", config, "tls")
    try:
        context = ssl.create_default_context(cafile=str(cert))
        customer = gateway.connect("tls customer", tls=context)
        assert customer.sock.version() in ("TLSv1.2", "TLSv1.3"), customer.sock.version()
        hello_customer(customer)
        customer.expect("prompt")
        customer.sync()
        customer.close()
    finally:
        gateway.stop()
