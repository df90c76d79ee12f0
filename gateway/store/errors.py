"""The store's errors, the same whichever database holds the data.

Every engine (gateway.store.interfaces.IEngine) turns its driver's errors into
these, so that the core, the admin CLI and the tests never see ``sqlite3`` or
``psycopg`` exceptions.
"""

from __future__ import annotations


class StoreError(Exception):
    """A store operation was refused or the database cannot be used."""


class StoreBusy(StoreError):
    """Too many operations wait for the database already: a message is refused, not queued."""


class StoreClosed(StoreError):
    """The store is not running: not started yet, or closed."""


class SchemaTooNew(StoreError):
    """The database was written by a newer imgateway than this one."""

    @classmethod
    def check(cls, version: int, supported: int, where: str) -> None:
        """Raise unless this imgateway knows schema ``version`` (at most ``supported``)."""
        if version > supported:
            raise cls(
                f"{where}: database schema version {version} is newer than this imgateway "
                f"supports ({supported}); upgrade imgateway"
            )


class DatabaseError(StoreError):
    """The database failed or refused a statement; the message is the database's own."""


class ConstraintError(DatabaseError):
    """A write broke a rule of the schema (a check, a reference) not named below."""


class AddressTaken(StoreError):
    """An IM address given for an agent already names another agent."""


class AgentExists(StoreError):
    """An agent account of that name is already provisioned."""

    def __init__(self, name: str) -> None:
        super().__init__(f"agent {name!r} already exists")
        self.name = name


class ConversationExists(StoreError):
    """A conversation of that id is already recorded."""

    def __init__(self, conversation: str) -> None:
        super().__init__(f"conversation {conversation!r} already exists")
        self.conversation = conversation


class UnknownConversation(StoreError):
    """No conversation of that id is recorded."""

    def __init__(self, conversation: str) -> None:
        super().__init__(f"no such conversation: {conversation!r}")
        self.conversation = conversation


class MessageExists(StoreError):
    """A message of that id is already stored."""

    def __init__(self, message: str) -> None:
        super().__init__(f"message {message!r} already exists")
        self.message = message


class TeamExists(StoreError):
    """A team of that name already exists."""

    def __init__(self, name: str) -> None:
        super().__init__(f"team {name!r} already exists")
        self.name = name


class UnknownTeam(StoreError):
    """No team of that name exists."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no such team: {name!r}")
        self.name = name


class UnknownAgent(StoreError):
    """No agent account of that name is provisioned."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no such agent: {name!r}")
        self.name = name
