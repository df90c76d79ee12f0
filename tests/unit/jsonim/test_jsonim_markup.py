"""The markup subset of rich_text and its plain rendering (the translate fallback)."""

from __future__ import annotations

import time

import pytest

from protocols.jsonim.markup import parse, to_plain

CASES = [
    # (markup, plain)
    ("plain words", "plain words"),
    ("**bold** and *italic* and _also_", "bold and italic and also"),
    ("[the docs](https://example.com/docs)", "the docs (https://example.com/docs)"),
    ("see https://example.com/a_b. Then", "see https://example.com/a_b. Then"),
    ("[https://x.example](https://x.example)", "https://x.example"),
    ("[mail us](mailto:help@example.com)", "mail us (mailto:help@example.com)"),
    ("two\nlines", "two\nlines"),
    ("snake_case and 2*3*4 stay", "snake_case and 2*3*4 stay"),
    ("\\*not italic\\* \\[nor\\](a link)", "*not italic* [nor](a link)"),
    ("** not bold **", "** not bold **"),
    ("*unclosed", "*unclosed"),
    ("*across\nlines*", "*across\nlines*"),
    ("**bold *and italic* inside**", "bold and italic inside"),
    ("*****", "*****"),
    ("[x](javascript:alert(1))", "[x](javascript:alert(1))"),
    ("<script>alert(1)</script> &amp;", "<script>alert(1)</script> &amp;"),
    ("[<b>label</b>](https://e.example/?a=1&b=2)", "<b>label</b> (https://e.example/?a=1&b=2)"),
]


@pytest.mark.parametrize(("markup", "plain"), CASES)
def test_plain_rendering(markup, plain):
    assert to_plain(markup) == plain


def test_nodes():
    assert parse("Hi **Dana**, see [docs](https://e.example/d)\n_ok_") == [
        ("text", "Hi "),
        ("b", [("text", "Dana")]),
        ("text", ", see "),
        ("a", "https://e.example/d", "docs"),
        ("br",),
        ("i", [("text", "ok")]),
    ]


def test_links_are_http_https_or_mailto_only():
    for markup in ("[x](javascript:alert(1))", "[x](data:text/html,hi)", "[x](file:///etc)"):
        assert all(node[0] != "a" for node in parse(markup)), markup


@pytest.mark.parametrize("unit", ["*a ", "**a ", "_a_", "[a](http://x", "\\", "h"])
def test_hostile_text_costs_linear_time(unit):
    text = unit * (65536 // len(unit))
    begun = time.perf_counter()
    to_plain(text)
    assert time.perf_counter() - begun < 1.0
