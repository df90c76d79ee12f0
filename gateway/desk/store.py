"""The service desk's records, through the gateway's own store.

:class:`DeskStore` runs the functions of :mod:`gateway.desk.sql` in the store's writer
thread (``run``: in queue order with the core's writes, in the same transactions), so
a private line lands between the lines around it and a wrap-up after its conversation.
Every call returns a Deferred, fired once committed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from gateway.desk import sql


class Runner(Protocol):
    """What runs a function of the engine in the store's writer thread."""

    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
        """``function(engine, *args, **kwargs)``, fired with its result once committed."""


class DeskStore:
    """The desk's reads and writes; each a Deferred."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    def __getattr__(self, name: str) -> Callable[..., Deferred]:
        # Every public function of gateway.desk.sql, run in the writer thread.
        function = getattr(sql, name, None)
        if name.startswith("_") or not callable(function):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Deferred:
            return self._runner.run(function, *args, **kwargs)

        call.__name__ = name
        return call
