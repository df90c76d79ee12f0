"""twistd finds the imgateway plugin in the installed package (daphne PR #562's lesson)."""

from __future__ import annotations

from harness import VENV, run_command

FIND_PLUGINS = """
from twisted.plugin import IPlugin, getPlugins
from twisted.application.service import IServiceMaker
for maker in getPlugins(IServiceMaker):
    print(maker.tapname)
"""


def test_getplugins_yields_imgateway(tmp_path):
    out = run_command([str(VENV / "bin" / "python"), "-c", FIND_PLUGINS], cwd=tmp_path).stdout
    assert "imgateway" in out.split(), out


def test_twistd_knows_the_subcommand_and_its_config_option(tmp_path):
    proc = run_command(
        [str(VENV / "bin" / "twistd"), "imgateway", "--help"], cwd=tmp_path, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--config" in proc.stdout, proc.stdout
