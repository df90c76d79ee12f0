"""The house's shape, enforced: layer contracts, no import circles, small modules.

The contracts live in setup.cfg ([importlinter]) and ./tests/run runs them with
lint-imports; here they are shown to fail on a violating import, and the rules
import-linter has no contract for (circles, module size) are checked directly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "protocols", "firewall")
MAX_LINES = 700


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run the venv's lint-imports on the tree at ``root`` with its setup.cfg."""
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.exists(), f"import-linter is not installed in {Path(sys.executable).parent}"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(lint), "--config", str(root / "setup.cfg"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "setup.cfg", root / "setup.cfg")
    return root


def test_the_contracts_hold_on_the_tree():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # The core may not know a protocol, a store engine or the admin room.
        ("gateway/core/relay.py", "import protocols.jsonim.codec", "Nothing in gateway/"),
        ("gateway/core/desk.py", "import gateway.store.sqlite", "The core imports no store"),
        # The firewall is the bottom layer.
        ("firewall/engine.py", "import gateway.config", "The firewall imports nothing"),
        # An adapter does not know another.
        ("protocols/irc/render.py", "import protocols.xmpp.jid", "No protocol adapter"),
        # Lower layers do not import upper ones, even for typing only.
        (
            "gateway/store/writer.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import gateway.core.gateway",
            "Layers",
        ),
    ],
)
def test_a_violating_import_breaks_its_contract(tmp_path, module, line, contract):
    root = copy_tree(tmp_path)
    path = root / module
    path.write_text(path.read_text() + "\n" + line + "\n")
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[1]
    assert contract in broken


# Run in a fresh interpreter on ``sys.argv[1]``'s tree: the packages this process has
# imported already (the installed wheel) would otherwise be the ones analysed.
_CYCLES = """
import json, sys
import grimp
sys.setrecursionlimit(10_000)
# Imports under TYPE_CHECKING count: a circle for the type checker is a circle.
graph = grimp.build_graph(*sys.argv[2:], include_external_packages=False, cache_dir=None)
edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
index, low, stack, on_stack, found = {}, {}, [], set(), []

def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        component = []
        while True:
            w = stack.pop()
            on_stack.discard(w)
            component.append(w)
            if w == v:
                break
        if len(component) > 1:
            found.append(sorted(component))

for module in sorted(edges):
    if module not in index:
        visit(module)
print(json.dumps(found))
"""


def cycles_in(root: Path) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan) in ``root``."""
    result = subprocess.run(
        [sys.executable, "-c", _CYCLES, str(root), *PACKAGES],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


def test_no_two_modules_import_each_other_in_a_circle():
    assert cycles_in(REPO) == []


def test_a_circle_is_found(tmp_path):
    root = copy_tree(tmp_path)
    path = root / "gateway" / "core" / "ids.py"
    path.write_text(path.read_text() + "\nimport gateway.core.gateway\n")
    assert any("gateway.core.ids" in c for c in cycles_in(root))


def test_no_source_file_is_over_700_lines():
    over = {
        str(path.relative_to(REPO)): n
        for package in (*PACKAGES, "twisted")
        for path in (REPO / package).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert over == {}


def test_the_service_tree_is_as_the_architecture_page_draws_it(tmp_path):
    from twisted.internet.testing import MemoryReactorClock

    from gateway.app import tap
    from gateway.daemon import Listener

    config = tmp_path / "gw.toml"
    config.write_text(f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n')
    options = tap.Options()
    options.parseOptions(["--config", str(config)])
    service = tap.makeService(options, MemoryReactorClock())
    children = list(service)
    assert children[0].name == "listeners" and children[-1].name == "admin"
    assert all(isinstance(listener, Listener) for listener in children[0])
    assert [listener.key for listener in children[0]] == ["listeners.jsonim"]
    # Between them, the upstreams: none are configured by the defaults.
    assert len(children) == 2
    page = (REPO / "docs" / "architecture.md").read_text()
    drawn = page.split("GatewayService\n", 1)[1].split("```", 1)[0]
    assert [line.split()[0] for line in drawn.splitlines() if line[2:3].isalpha()] == [
        "listeners",
        "upstreams",
        "admin",
    ]
