"""Sampling profiles of the gateway with py-spy, summarised as text.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;... count``);
:func:`summarise` turns them into the functions with the most samples, on their own
(self) and with what they call (inclusive), and the share of each top-level area.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path


def py_spy() -> str | None:
    """The py-spy executable, if installed (``pip install py-spy``)."""
    beside = Path(sys.prefix) / "bin" / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, output: Path) -> subprocess.Popen | None:
    """Record ``pid`` for ``seconds`` at 250 Hz into ``output`` (collapsed stacks)."""
    binary = py_spy()
    if binary is None:
        print("  (py-spy not installed: no profile)")
        return None
    return subprocess.Popen(
        [binary, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "250",
         "-f", "raw", "-o", str(output), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _name(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    if " (" in frame:
        function, where = frame.split(" (", 1)
        path = where.rstrip(")").rsplit(":", 1)[0]
        parts = Path(path).parts
        short = "/".join(parts[-2:]) if len(parts) >= 2 else path
        return f"{function} ({short})"
    return frame


def _line_name(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py:123)"
    if " (" in frame:
        function, where = frame.split(" (", 1)
        return f"{function} ({Path(where.rstrip(')')).name})"
    return frame


def summarise(collapsed: Path, top: int = 25) -> str:
    """Where the reactor thread's samples go (self and inclusive), and the store thread's."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    store_lines: collections.Counter[str] = collections.Counter()
    reactor = store = other = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        raw = stack.split(";")
        if any("GroupCommitStore._run" in f for f in raw):
            store += count
            store_lines[_line_name(raw[-1])] += count
            continue
        if not any("mainLoop" in f for f in raw):
            other += count
            continue
        reactor += count
        frames = [_name(f) for f in raw]
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if not reactor:
        return "(no samples of the reactor thread)"
    lines = [
        f"reactor thread: {reactor} samples (250/s); store writer thread: {store}; "
        f"other threads: {other}",
        "reactor thread, by function: self%  incl%",
    ]
    for name, count in own.most_common(top):
        lines.append(
            f"  {100 * count / reactor:5.1f}  {100 * inclusive[name] / reactor:5.1f}  {name}"
        )
    lines.append("reactor thread, inclusive:")
    for name, count in inclusive.most_common(top + 15):
        lines.append(f"         {100 * count / reactor:5.1f}  {name}")
    lines.append("store writer thread, by line (COMMIT waits on fsync with the GIL released):")
    for name, count in store_lines.most_common(8):
        lines.append(f"  {100 * count / max(store, 1):5.1f}  {name}")
    return "\n".join(lines)
