"""SASL mechanisms of the direct listener, with the RFC 5802 and RFC 7677 vectors."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from gateway.passwords import scram_keys
from protocols.xmpp.sasl import SaslFailure, ScramServer, b64decode, b64encode, parse_plain

# (mechanism, hash, client nonce, server nonce part, salt, client-final, server-final)
VECTORS = [
    (
        "SCRAM-SHA-1",
        "sha1",
        "fyko+d2lbbFgONRv9qkxdawL",
        "3rfcNHYJY1ZVvWVs7j",
        "QSXCR+Q6sek8bf92",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    ),
    (
        "SCRAM-SHA-256",
        "sha256",
        "rOprNGfwEbeRWgbNEkqO",
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        "W22ZaJ0SNY7soEsUEjb6gQ==",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    ),
]


def keys_for(hash_name, salt_b64, password="pencil"):
    return scram_keys(password, hash_name, base64.b64decode(salt_b64), 4096)


@pytest.mark.parametrize("vector", VECTORS, ids=[v[0] for v in VECTORS])
def test_rfc_vectors(vector):
    mechanism, hash_name, cnonce, snonce, salt, client_final, server_final = vector
    server = ScramServer(mechanism, nonce=lambda: snonce)
    assert server.client_first(f"n,,n=user,r={cnonce}".encode()) == "user"
    first = server.server_first(keys_for(hash_name, salt))
    assert first == f"r={cnonce}{snonce},s={salt},i=4096".encode()
    assert server.client_final(client_final.encode()) == server_final.encode()
    assert server.username == "user"


@pytest.mark.parametrize("vector", VECTORS, ids=[v[0] for v in VECTORS])
def test_wrong_password_is_not_authorized(vector):
    mechanism, hash_name, cnonce, snonce, salt, client_final, _ = vector
    server = ScramServer(mechanism, nonce=lambda: snonce)
    server.client_first(f"n,,n=user,r={cnonce}".encode())
    server.server_first(keys_for(hash_name, salt, password="crayon"))
    with pytest.raises(SaslFailure) as info:
        server.client_final(client_final.encode())
    assert info.value.condition == "not-authorized"
    assert server.username is None


def test_unknown_user_fails_like_a_wrong_password():
    mechanism, _hash_name, cnonce, snonce, _salt, client_final, _ = VECTORS[1]
    server = ScramServer(mechanism, nonce=lambda: snonce)
    server.client_first(f"n,,n=user,r={cnonce}".encode())
    challenge = server.server_first(None)
    assert b",s=" in challenge and b",i=4096" in challenge
    with pytest.raises(SaslFailure, match="not-authorized"):
        server.client_final(client_final.encode())


def client_proof(hash_name, password, salt, iterations, auth_message):
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    stored = hashlib.new(hash_name, client_key).digest()
    signature = hmac.new(stored, auth_message.encode(), hash_name).digest()
    return base64.b64encode(
        bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    ).decode()


def test_a_full_exchange_with_escaped_name_and_authzid():
    server = ScramServer("SCRAM-SHA-256")
    bare = "n=a=2Cb=3Dc,r=abc"
    assert server.client_first(f"n,a=a=2Cb=3Dc,{bare}".encode()) == "a,b=c"
    keys = scram_keys("s3cret", "sha256", b"0123456789abcdef", 4096)
    first = server.server_first(keys).decode()
    nonce = first.split(",")[0][2:]
    gs2 = base64.b64encode(b"n,a=a=2Cb=3Dc,").decode()
    without_proof = f"c={gs2},r={nonce}"
    proof = client_proof(
        "sha256", "s3cret", b"0123456789abcdef", 4096, f"{bare},{first},{without_proof}"
    )
    assert server.client_final(f"{without_proof},p={proof}".encode()).startswith(b"v=")
    assert server.username == "a,b=c"


@pytest.mark.parametrize(
    "first",
    [
        b"p=tls-unique,,n=user,r=x",
        b"n,,r=x",
        b"n,,n=user",
        b"garbage",
        b"n,,m=ext,n=u,r=x",
        b"n,a=other,n=user,r=x",
        b"n,,n=bad=name,r=x",
        b"\xff",
    ],
)
def test_bad_client_first(first):
    with pytest.raises(SaslFailure):
        ScramServer("SCRAM-SHA-1").client_first(first)


def test_nonce_and_binding_are_checked():
    server = ScramServer("SCRAM-SHA-1", nonce=lambda: "S")
    server.client_first(b"n,,n=user,r=C")
    server.server_first(keys_for("sha1", "QSXCR+Q6sek8bf92"))
    with pytest.raises(SaslFailure, match="malformed"):
        server.client_final(b"c=biws,r=CX,p=AAAA")
    with pytest.raises(SaslFailure, match="malformed"):
        server.client_final(b"c=eSws,r=CS,p=AAAA")


def test_plain_and_base64():
    assert parse_plain(b"\0anna\0pw") == ("anna", "pw")
    assert parse_plain(b"anna\0anna\0pw") == ("anna", "pw")
    for bad in (b"anna\0pw", b"x\0anna\0pw", b"\0\0pw", b"\0anna\0"):
        with pytest.raises(SaslFailure):
            parse_plain(bad)
    assert b64decode("=") == b"" and b64encode(b"") == "="
    with pytest.raises(SaslFailure, match="incorrect-encoding"):
        b64decode("not base64!")


def test_admin_stores_scram_keys_at_add_and_passwd(tmp_path, monkeypatch, capsys):
    import io
    import json

    from gateway.admin import cli as admin
    from gateway.store.sqlite import DB_FILE, SqliteEngine

    data = tmp_path / "data"
    config = tmp_path / "imgateway.toml"
    config.write_text(f'[gateway]\ndata_dir = "{data}"\n')

    def run(*argv, stdin):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        assert admin.main([*argv, "--config", str(config)]) == 0, capsys.readouterr()

    run("agent", "add", "anna", "--password-stdin", stdin="first-pw\n")
    engine = SqliteEngine(data / DB_FILE)
    engine.open()
    try:
        first = json.loads(engine.get_scram("anna"))
        assert set(first) == {"SCRAM-SHA-1", "SCRAM-SHA-256"}
        run("agent", "passwd", "anna", "--password-stdin", stdin="second-pw\n")
        second = json.loads(engine.get_scram("anna"))
        keys = second["SCRAM-SHA-256"]
        expected = scram_keys(
            "second-pw", "sha256", base64.b64decode(keys["salt"]), int(keys["iterations"])
        )
        assert keys == expected != first["SCRAM-SHA-256"]
    finally:
        engine.close()
