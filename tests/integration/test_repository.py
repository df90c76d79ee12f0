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


def test_readme_configuration_reference_names_every_default_key():
    # The reference is README.md's and, for a part with a page of its own, docs/*.md's.
    readme = "\n".join(p.read_text() for p in [REPO / "README.md", *(REPO / "docs").glob("*.md")])
    keys = set(_documented_keys(_defaults()))
    keys -= {"interview.fields[].choices[].value", "interview.fields[].choices[].label"}
    keys.add("interview.fields[].choices")
    missing = sorted(k for k in keys if f"`{k}`" not in readme)
    assert not missing, f"README.md's configuration reference lacks {missing}"
