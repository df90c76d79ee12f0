"""The store's two seams: IStore, which the core uses, and IEngine, one database.

The core holds an :class:`IStore` and gets Deferreds back (as klein's
``ISessionStore``), so the group-commit writer (gateway.store.writer) and the
in-memory store (gateway.store.memory) swap freely. The writer drives one
:class:`IEngine` (gateway.store.sqlite, gateway.store.postgres), each speaking
its own driver; the admin CLI drives the same engines directly. Errors are the
store's own, engine-neutral (gateway.store.errors).
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IStore(Interface):
    """Durable records: agents, conversations and their transcripts.

    Writes are applied in the order they are made; each Deferred fires only
    once its write is committed to disk. Failures are
    :mod:`gateway.store.errors` (``StoreClosed`` once closed).
    """

    def start():
        """Open the database; raises :class:`gateway.store.errors.StoreError` if it cannot."""

    def open_conversation(record):
        """Record a new :class:`gateway.store.records.ConversationRecord`."""

    def update_conversation(conversation, **changes):
        """Change columns of a conversation (``state``, ``agent``, ``queue``,
        ``topic``, ``identity``, ``ended``, ``end_reason``, ``client_name``,
        ``client_version``); ValueError for any other."""

    def append(message):
        """Append a :class:`gateway.store.records.StoredMessage`; the Deferred fires
        when it is committed, or fails with StoreBusy when too much waits already."""

    def append_then(message, done):
        """As :meth:`append` without a Deferred (the path of every chat line): calls
        ``done(None)`` once committed, or ``done(failure)`` with the
        :class:`twisted.python.failure.Failure` the Deferred would have failed with
        (at once, within the call, when the message is refused)."""

    def get_agent(name):
        """Deferred firing with the :class:`gateway.store.records.AgentRecord` or None."""

    def scram_credentials(name):
        """Deferred firing with an agent's SCRAM keys as stored (JSON text), or None."""

    def find_agent(address):
        """Deferred firing with the AgentRecord known by an IM address
        (``xmpp:anna@corp.example``), or None."""

    def get_conversation(conversation):
        """Deferred firing with the ConversationRecord of that id, or None."""

    def transcript(conversation):
        """Deferred firing with the list of StoredMessage of a conversation."""

    def recent_conversations(limit):
        """Deferred firing with the newest ConversationRecords, newest first."""

    def set_resume(conversation, token_hash, key):
        """Record how a conversation's customer may resume it (see gateway.core.resume)."""

    def open_conversations():
        """Deferred firing with (ConversationRecord, token hash, key) for every
        conversation not ended, oldest first: what a restart finds."""

    def purge_ended_before(ts):
        """Delete conversations that ended before ``ts`` with their messages; Deferred
        firing with how many conversations went (transcript retention)."""

    def teams():
        """Deferred firing with every :class:`gateway.store.records.TeamRecord`, by name."""

    def close():
        """Finish pending writes and release the database; returns a Deferred."""


class IEngine(Interface):
    """One database: its driver, its SQL, its migrations, its errors.

    Synchronous; one thread uses it at a time (the store's writer thread, or the
    admin CLI). Outside :meth:`begin` ... :meth:`commit` every operation commits
    on its own. Raises only :mod:`gateway.store.errors`: the named ones where
    the method says so, ``ConstraintError`` for another rule of the schema
    broken, ``DatabaseError`` for anything else the database refuses.
    """

    def describe():
        """Where the data is, for logs (never a password); callable from any thread."""

    def open():
        """Connect (creating what is missing) and bring the schema up to date.

        Raises ``SchemaTooNew`` for a database of a newer imgateway and
        ``StoreError`` when the database cannot be reached or used.
        """

    def close():
        """Release the connection."""

    def schema_version():
        """The schema version the database records (0 for an empty one)."""

    # Transactions, as the group commit runs them.

    def begin():
        """Start a transaction, taking the write lock at once where the database has one."""

    def commit():
        """Commit the transaction; fails (and undoes it) if the database refuses."""

    def rollback():
        """Undo the transaction in progress; nothing when there is none."""

    def savepoint():
        """Mark a point to undo one operation to (within a transaction)."""

    def rollback_to_savepoint():
        """Undo what was done since :meth:`savepoint`."""

    def release_savepoint():
        """Forget the point :meth:`savepoint` marked."""

    # Agents.

    def add_agent(agent):
        """Provision an AgentRecord with its addresses; ``AgentExists`` if the name is
        taken, ``AddressTaken`` if an address names another agent."""

    def remove_agent(name):
        """Remove an agent account; False if there was none of that name."""

    def get_agent(name):
        """The AgentRecord named ``name``, or None."""

    def find_agent(address):
        """The AgentRecord known by an IM address, or None."""

    def list_agents():
        """Every AgentRecord, by name."""

    def set_password(name, password_hash):
        """Replace an agent's password hash; False if there is no agent of that name."""

    def set_scram(name, credentials):
        """Replace an agent's SCRAM keys (JSON text)."""

    def get_scram(name):
        """An agent's SCRAM keys as stored (JSON text), or None."""

    # Conversations and messages.

    def insert_conversation(record):
        """Record a new ConversationRecord; ``ConversationExists`` for a known id."""

    def update_conversation(conversation, **changes):
        """Change columns of a conversation; ValueError for a column that may not
        change, ``UnknownConversation`` for an unknown id."""

    def get_conversation(conversation):
        """The ConversationRecord of that id, or None."""

    def recent_conversations(limit):
        """The ``limit`` most recently started conversations, newest first."""

    def open_conversations():
        """(ConversationRecord, token hash, key) of every conversation not ended,
        oldest first."""

    def insert_message(message):
        """Append a StoredMessage; ``MessageExists`` for a known id,
        ``UnknownConversation`` when its conversation is not recorded."""

    def insert_messages(messages):
        """Append several StoredMessages in order, in as few statements as the
        database allows; raises if any is refused, without saying which."""

    def transcript(conversation):
        """The StoredMessages of a conversation, in the order they were stored."""

    def set_resume(conversation, token_hash, key):
        """Record how a conversation's customer may resume it; ``UnknownConversation``
        for an unknown conversation."""

    def purge_ended_before(ts):
        """Delete conversations that ended before ``ts`` and their messages; the count."""

    # Teams and the queues they serve (gateway.directory.teams says what they mean).

    def add_team(team):
        """Create a TeamRecord with its members and queues; ``TeamExists`` if the name
        is taken, ``UnknownAgent`` for a member that is not provisioned."""

    def remove_team(name):
        """Remove a team and its memberships; False if there was none of that name."""

    def describe_team(name, description):
        """Change a team's description; ``UnknownTeam``."""

    def get_team(name):
        """The TeamRecord named ``name``, or None."""

    def list_teams():
        """Every TeamRecord, by name."""

    def add_team_members(team, agents):
        """Put provisioned agents in a team (members already: nothing);
        ``UnknownTeam``, ``UnknownAgent``."""

    def remove_team_members(team, agents):
        """Take agents out of a team; how many were in it. ``UnknownTeam``."""

    def add_team_queues(team, queues):
        """The team serves these queues too; ``UnknownTeam``."""

    def remove_team_queues(team, queues):
        """The team no longer serves these queues; how many it served. ``UnknownTeam``."""

    # Any other statement: what other rooms keep (the service desk, gateway.desk.sql).

    placeholder = Attribute("The parameter mark this engine's statements use: '?' or '%s'.")

    def execute(statement, params=()):
        """Run a statement that returns no rows; the number of rows it changed."""

    def fetch(statement, params=()):
        """Run a query; its rows as tuples."""
