"""JSON-IM over direct TLS: a Twisted `ssl:` endpoint string as the listener."""

from __future__ import annotations

import datetime
import ssl

import harness
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jsonim_client import hello_customer


def self_signed(directory):
    """A key and a certificate for "localhost"; returns their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


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
