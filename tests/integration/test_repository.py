"""What the repository gives an admin agrees with what the package does."""

from __future__ import annotations

import tomllib
from importlib import resources

import attrs
from harness import REPO

from gateway import config


def _defaults() -> dict:
    return tomllib.loads(resources.files("gateway").joinpath("defaults.toml").read_text())


def test_example_site_config_has_the_defaults_keys_and_values(tmp_path):
    example = REPO / "etc" / "imgateway.toml"
    assert tomllib.loads(example.read_text()) == _defaults()
    site = attrs.evolve(config.load(example), sources=())
    assert site == attrs.evolve(config.load(cwd=tmp_path), sources=())  # no site file there


def _documented_keys(table: dict, prefix: str = ""):
    for key, value in table.items():
        if prefix == "queues.":
            key = "NAME"  # [queues.general] documents every [queues.NAME]
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _documented_keys(value, f"{name}.")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                yield from _documented_keys(item, f"{name}[].")
        else:
            yield name


# The docs page that documents each section's keys, by the longest matching key prefix;
# docs/configuration.md shows the same table to readers.
PAGE_OF = {
    "gateway": "configuration.md",
    "agents": "configuration.md",
    "queues": "configuration.md",
    "interview": "configuration.md",
    "routing": "routing.md",
    "bots": "routing.md",
    "store": "operations.md",
    "logging": "operations.md",
    "admin": "operations.md",
    "listeners.jsonim": "jsonim.md",
    "jsonim": "jsonim.md",
    "listeners.xmpp": "xmpp.md",
    "listeners.xmpps": "xmpp.md",
    "xmpp": "xmpp.md",
    "listeners.irc": "irc.md",
    "irc": "irc.md",
    "firewall": "firewall.md",
    "listeners.web": "web.md",
    "web": "web.md",
    "cluster": "cluster.md",
    "desk": "desk.md",
}


def _page_of(key: str) -> str | None:
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        page = PAGE_OF.get(".".join(parts[:n]))
        if page is not None:
            return page
    return None


def test_every_default_key_has_a_row_in_its_docs_page():
    keys = set(_documented_keys(_defaults()))
    keys -= {"interview.fields[].choices[].value", "interview.fields[].choices[].label"}
    keys.add("interview.fields[].choices")
    unmapped = sorted(k for k in keys if _page_of(k) is None)
    assert not unmapped, f"no docs page for {unmapped}: add the section to PAGE_OF and a page"
    pages = {name: (REPO / "docs" / name).read_text() for name in set(PAGE_OF.values())}
    missing = sorted(
        f"{key} (docs/{_page_of(key)})"
        for key in keys
        if f"\n| `{key}` |" not in pages[_page_of(key)]
    )
    assert not missing, f"keys without a row in their page's settings table: {missing}"


def test_the_configuration_page_names_the_page_of_every_section():
    page = (REPO / "docs" / "configuration.md").read_text()
    table = page.split("## Where each section is documented", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `[")]
    for section, name in PAGE_OF.items():
        if "." in section:
            continue  # [listeners] keys: on their protocol's page, checked above
        row = next((r for r in rows if f"`[{section}]" in r or f"`[{section}." in r), None)
        assert row is not None, f"docs/configuration.md names no page for [{section}]"
        where = "this page" if name == "configuration.md" else f"({name}"
        assert where in row, f"[{section}] is documented in {name}, not as in: {row}"
