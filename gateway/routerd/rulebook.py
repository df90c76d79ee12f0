"""Every media type's rules, loaded together and swapped together."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from types import MappingProxyType

import attrs
from twisted.logger import Logger

from gateway import logs
from gateway.routing.rules import RuleSet

# RuleSet.load's shape: a rules file (None: the packaged rules) and the known queues.
Loader = Callable[..., RuleSet]


@attrs.define
class RuleBook:
    """The rules of each media type; :meth:`load` replaces all of them or none.

    A reload reads every rules file again with the queues named at startup; a bad file
    raises :class:`gateway.config.ConfigError` and the rules in use stay as they were.
    """

    _log = Logger(observer=logs.observer)

    media: Mapping[str, Path | None]
    queues: Collection[str]
    _loader: Loader = RuleSet.load
    # Features the agent protocols can grant (gateway.routing.features); the chat
    # rules may require no other. None: not checked.
    grantable: Mapping[str, Collection[str]] | None = None
    rules: Mapping[str, RuleSet] = attrs.field(init=False, factory=dict)
    # Successful loads so far: 1 after startup, one more per reload.
    generation: int = attrs.field(init=False, default=0)

    def load(self) -> Mapping[str, RuleSet]:
        """Read every rules file; install them only if all of them are valid."""
        fresh = {}
        for name, path in self.media.items():
            checks = {"grantable": self.grantable} if name == "chat" and self.grantable else {}
            fresh[name] = self._loader(path, queues=self.queues, **checks)
        self.rules = MappingProxyType(fresh)
        self.generation += 1
        self._log.info(
            "imrouter rules loaded (generation {generation}): {sources}",
            generation=self.generation,
            sources=", ".join(f"{m}={s}" for m, s in self.sources().items()),
        )
        return self.rules

    def sources(self) -> dict[str, str]:
        """Media type -> where its rules came from."""
        return {name: rules.source for name, rules in self.rules.items()}
