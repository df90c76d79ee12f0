"""The suite tests the installed wheel, never the checkout."""

from __future__ import annotations

import importlib.metadata
import sysconfig
from pathlib import Path

from harness import REPO, VENV, run_command

import gateway


def _site_packages() -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(VENV)})).resolve()


def test_gateway_is_imported_from_the_venv():
    location = Path(gateway.__file__).resolve()
    assert location.is_relative_to(_site_packages()), (
        f"gateway imported from {location}, not from {_site_packages()}: "
        "run the suite with ./tests/run"
    )
    assert not location.is_relative_to(REPO / "gateway")


def test_venv_python_imports_the_installed_package(tmp_path):
    out = run_command(
        [str(VENV / "bin" / "python"), "-c", "import gateway; print(gateway.__file__)"],
        cwd=tmp_path,
    ).stdout.strip()
    assert Path(out).resolve().is_relative_to(_site_packages()), out


def test_wheel_ships_the_plugin_and_defaults_without_twisted_plugins_init():
    files = {str(f) for f in importlib.metadata.files("imgateway") or ()}
    assert "twisted/plugins/imgateway_plugin.py" in files, sorted(files)
    assert "gateway/defaults.toml" in files, sorted(files)
    # twisted/plugins/__init__.py belongs to Twisted; shipping one would replace it.
    assert "twisted/plugins/__init__.py" not in files
    assert not any(f.startswith("tests/") for f in files), sorted(files)


def test_console_scripts_are_installed():
    assert (VENV / "bin" / "imgateway-admin").is_file()
    assert (VENV / "bin" / "twistd").is_file()
