"""IRC message parsing and serialising."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocols.irc.message import Message, decode, parse, serialise, split_text


def test_parse_prefix_command_params_trailing():
    m = parse(":nick!u@h PRIVMSG #chan :hello there")
    assert m == Message("PRIVMSG", ("#chan", "hello there"), "nick!u@h", {})


def test_parse_tags_unescaped():
    m = parse(r"@+typing=active;msgid=a\sb\:c;flag TAGMSG Support")
    assert m.tags == {"+typing": "active", "msgid": "a b;c", "flag": ""}
    assert m.command == "TAGMSG" and m.params == ("Support",)


def test_command_is_upper_cased_and_extra_spaces_ignored():
    assert parse("privmsg   Support   :x") == Message("PRIVMSG", ("Support", "x"))


def test_empty_trailing_and_at_most_fifteen_params():
    assert parse("TOPIC #a :").params == ("#a", "")
    m = parse("X " + " ".join(str(i) for i in range(20)))
    assert len(m.params) == 15 and m.params[-1] == "14 15 16 17 18 19"


def test_invalid_utf8_falls_back_to_latin1():
    assert decode(b"caf\xe9") == "café"
    assert decode("café".encode()) == "café"


def test_serialise_uses_trailing_only_when_needed_or_text():
    welcome = serialise(Message("001", ("dana", "Welcome here"), "s"))
    assert welcome == b":s 001 dana :Welcome here\r\n"
    assert serialise(Message("PRIVMSG", ("dana", "hi"), "s")) == b":s PRIVMSG dana :hi\r\n"
    assert serialise(Message("MODE", ("dana", "+i"))) == b"MODE dana +i\r\n"
    assert serialise(Message("TAGMSG", ("d",), "a", {"+typing": "active"})) == (
        b"@+typing=active :a TAGMSG d\r\n"
    )


def test_serialise_never_lets_cr_lf_nul_through():
    line = serialise(Message("PRIVMSG", ("d", "a\r\nQUIT\x00"), "s"))
    assert line.count(b"\r\n") == 1 and b"\x00" not in line


@given(st.text(max_size=2000), st.integers(16, 500))
def test_split_text_respects_the_budget(text, budget):
    for piece in split_text(text, budget):
        assert 0 < len(piece.encode()) <= budget
        assert "\n" not in piece and "\r" not in piece


@given(
    st.text(max_size=600),
    st.sampled_from(["Support!service@gateway.invalid", "c-7f3a!customer@gateway.invalid"]),
    st.booleans(),
)
def test_a_line_said_to_a_client_is_what_serialise_and_split_text_make_of_it(text, prefix, notice):
    # say_from writes a line of chat that fits directly; it must be the very bytes the
    # general path (split_text, then serialise per piece) writes.
    from irc_helpers import server

    srv = server()
    client = srv.register("dana")
    client.protocol.say_from(prefix, text, notice=notice)
    command = "NOTICE" if notice else "PRIVMSG"
    overhead = len(f":{prefix} {command} dana :\r\n".encode())
    expected = b"".join(
        serialise(Message(command, ("dana", piece), prefix))
        for piece in split_text(text, 512 - overhead)
    )
    assert client.raw() == expected
