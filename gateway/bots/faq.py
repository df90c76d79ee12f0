"""The FAQ bot: an in-process agent that answers known questions and hands over the rest.

It logs in through :meth:`gateway.core.interfaces.IGateway.agent_join` as a bot agent and
then acts only through its :class:`gateway.core.interfaces.IAgentSession`, as any adapter's agent
would: the core routes conversations to it, and a handover is an ordinary transfer to a
queue, so the human who takes the chat next gets its history (the customer's questions
and the bot's answers) in ``Connected.history``.

What it answers when it joins a conversation: the customer's lines since the last agent
line, except the answers to the interview (a customer line right after an interview
prompt). If one of them asks for a person, it hands over; otherwise it answers the latest
one that matches the knowledge base. An interview answer is answered only when it
matches strongly (``STRONG`` times the threshold), so that "billing" as a topic is not
taken for a question while a free-text topic such as "how do I reset my password" is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway import logs
from gateway.bots.knowledge import contains_phrase, words
from gateway.bots.settings import FaqSettings
from gateway.core import events as ev
from gateway.core.errors import GatewayError
from gateway.core.interfaces import IAgentSession as AgentSession
from gateway.core.interfaces import IGateway as Gateway
from gateway.core.interfaces import IParty
from gateway.core.interview import prompt_for
from gateway.store.records import AgentRecord

# An interview answer must score this many times min_score to be taken as a question.
STRONG = 2.0
# Lines made only of these words are politeness, not questions: neither answered nor
# counted as a miss (a customer's "thanks!" after an answer must not lead to a handover).
COURTESY = frozenset(
    """
    bye cheers cool fine good goodbye great hello hey hi k nice ok okay perfect thank
    thanks thx ty yeah yep yes you
    """.split()
)


@attrs.define(eq=False)
class _Chat:
    """What the bot keeps about one conversation it is in."""

    conversation: str
    misses: int = 0
    handing_over: bool = False
    # Every reply goes through this chain, so one conversation's lines stay in order
    # even when the store is slow and the customer quick.
    tail: Deferred = attrs.field(factory=lambda: succeed(None))


@implementer(IParty)
class FaqBot:
    """Answers customers from a knowledge base; hands over to a human queue when asked
    for a person or after ``max_misses`` unanswered lines in a row."""

    _log = Logger(observer=logs.observer)

    def __init__(self, gateway: Gateway, settings: FaqSettings, clock: IReactorTime) -> None:
        self._gateway = gateway
        self._settings = settings
        self._clock = clock
        self._session: AgentSession | None = None
        self._chats: dict[str, _Chat] = {}
        # Offers received and not yet accepted: offer id -> conversation id.
        self._offers: dict[str, str] = {}
        self._calls: set[IDelayedCall] = set()
        self._handover_words = tuple(words(w) for w in settings.handover_words)
        self._prompts = frozenset(
            prompt_for(f, retry=retry).text
            for f in gateway.config.fields
            for retry in (False, True)
        )

    @property
    def session(self) -> AgentSession | None:
        """The bot's agent session while it is logged in."""
        return self._session

    @property
    def conversations(self) -> frozenset[str]:
        """The conversations the bot is in now."""
        return frozenset(self._chats)

    # -- life cycle -------------------------------------------------------

    def start(self) -> None:
        """Log in as an agent marked as a bot, and become available."""
        if self._session is not None:
            return
        s = self._settings
        record = AgentRecord(
            name=s.name,
            display_name=s.alias,
            password_hash="-",
            capacity=s.capacity,
            bot=True,
        )
        self._session = self._gateway.agent_join(self, record)
        self._log.info(
            "FAQ bot {agent} started with {entries} entries, capacity {capacity}",
            agent=s.name,
            entries=len(s.base.entries),
            capacity=s.capacity,
        )
        self._session.set_presence("available")

    def stop(self) -> None:
        """Log out; the core requeues the conversations the bot still holds."""
        if self._session is not None:
            self._log.info("FAQ bot {agent} stopped", agent=self._settings.name)
        self._log_out()

    def _log_out(self) -> None:
        session, self._session = self._session, None
        for call in self._calls:
            if call.active():
                call.cancel()
        self._calls.clear()
        self._chats.clear()
        self._offers.clear()
        # What an adapter does when its connection is gone; a no-op when the core
        # already dropped the session.
        if session is not None and not session.gone:
            session.disconnected()

    # -- IParty -----------------------------------------------------------

    def deliver(self, event: Any) -> None:
        """Take one event from the core; replies are made on the next turn of the clock."""
        # The core delivers from inside its dispatch loop: acting at once would re-enter
        # it, so every action is scheduled instead. Bookkeeping is done now, so that a
        # later Revoked or Ended is never overtaken by the action it cancels.
        if isinstance(event, ev.Offer):
            self._offers[event.offer] = event.conversation
            self._later(self._accept, event.offer)
        elif isinstance(event, ev.Revoked):
            self._offers.pop(event.offer, None)
        elif isinstance(event, ev.Connected):
            self._chats[event.conversation] = _Chat(event.conversation)
            self._later(self._joined, event)
        elif isinstance(event, ev.Message) and event.sender == ev.CUSTOMER:
            self._later(self._customer_said, event)
        elif isinstance(event, ev.Ended):
            self._chats.pop(event.conversation, None)

    def close(self, reason: str) -> None:
        """The core closes the bot's session (shutdown, or the same name logged in)."""
        self._log.info("FAQ bot {agent} closed: {reason}", agent=self._settings.name, reason=reason)
        self._log_out()

    # -- actions ----------------------------------------------------------

    def _later(self, action: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            self._calls.discard(call)
            try:
                action(*args)
            except Exception:
                self._log.failure("FAQ bot action {action} failed", action=action.__name__)

        call = self._clock.callLater(0, run)
        self._calls.add(call)

    def _accept(self, offer: str) -> None:
        if self._offers.pop(offer, None) is None or self._session is None:
            return
        try:
            self._session.accept(offer)
        except GatewayError as e:
            # Revoked in the meantime; nothing to do.
            self._log.debug("FAQ bot could not accept {offer}: {error}", offer=offer, error=e)

    def _joined(self, event: ev.Connected) -> None:
        chat = self._chats.get(event.conversation)
        if chat is None:
            return
        greeting = [self._settings.greeting]
        question = self._pending_question(event.history)
        if question is None:
            self._say(chat, greeting)
        else:
            self._answer(chat, question, before=greeting)

    def _customer_said(self, event: ev.Message) -> None:
        chat = self._chats.get(event.conversation)
        # While handing over, the customer's lines wait for the human in the history.
        if chat is not None and not chat.handing_over:
            self._answer(chat, event.text)

    def _answer(self, chat: _Chat, text: str, before: Sequence[str] = ()) -> None:
        """Reply to one customer line, after ``before`` (the greeting, on joining)."""
        s = self._settings
        text_words = words(text)
        if self._asks_for_person(text_words):
            self._hand_over(chat, before, "the customer asked for a person")
            return
        match = s.base.best(text)
        if match is not None and match.score >= s.min_score:
            chat.misses = 0
            self._log.debug(
                "FAQ bot answers {conversation} with entry {entry} (score {score:.2f})",
                conversation=chat.conversation,
                entry=match.index,
                score=match.score,
            )
            self._say(chat, [*before, match.entry.answer, s.follow_up])
            return
        if text_words and all(w in COURTESY for w in text_words):
            self._say(chat, before)
            return
        chat.misses += 1
        if chat.misses >= s.max_misses:
            self._hand_over(chat, before, f"{chat.misses} unanswered in a row")
        else:
            self._say(chat, [*before, s.no_answer])

    def _hand_over(self, chat: _Chat, before: Sequence[str], why: str) -> None:
        chat.handing_over = True
        self._log.info(
            "FAQ bot hands {conversation} over to queue {queue}: {why}",
            conversation=chat.conversation,
            queue=self._settings.handover_queue,
            why=why,
        )
        # Transfer only once the handover text is stored, so that it is in the history
        # the human gets.
        self._say(chat, [*before, self._settings.handover_text])
        self._then(chat, self._transfer, chat)

    def _transfer(self, chat: _Chat) -> None:
        if self._chats.get(chat.conversation) is not chat or self._session is None:
            return
        queue = self._settings.handover_queue
        try:
            self._session.transfer(chat.conversation, queue=queue)
        except GatewayError as e:
            # The bot keeps the customer rather than leave them with nobody listening.
            chat.handing_over = False
            chat.misses = 0
            self._log.error(
                "FAQ bot could not hand {conversation} over to {queue}: {error}",
                conversation=chat.conversation,
                queue=queue,
                error=e,
            )

    def _say(self, chat: _Chat, texts: Iterable[str]) -> None:
        """Say ``texts`` in order, each once the previous is stored; failures are logged."""
        for text in texts:
            if text:
                self._then(chat, self._say_one, chat, text)

    def _then(self, chat: _Chat, step: Callable[..., Any], *args: Any) -> None:
        """Run ``step`` after everything already chained for this conversation."""

        def failed(failure: Failure) -> None:
            # Keep the chain going: one failed step must not silence the bot.
            self._log.failure(
                "FAQ bot step {step} failed in {conversation}",
                failure,
                step=step.__name__,
                conversation=chat.conversation,
            )

        chat.tail.addCallback(lambda _: step(*args)).addErrback(failed)

    def _say_one(self, chat: _Chat, text: str) -> Deferred | None:
        if self._chats.get(chat.conversation) is not chat or self._session is None:
            return None

        def failed(failure: Failure) -> None:
            self._log.failure(
                "FAQ bot could not say a line in {conversation}",
                failure,
                conversation=chat.conversation,
            )

        return self._session.say(chat.conversation, text).addErrback(failed)

    # -- reading the history ----------------------------------------------

    def _asks_for_person(self, text_words: Sequence[str]) -> bool:
        return contains_phrase(text_words, self._handover_words)

    def _pending_question(self, history: Sequence[ev.HistoryEntry]) -> str | None:
        """The customer line to answer on joining, or None; see the module docstring."""
        questions: list[str] = []
        interview_answers: list[str] = []
        previous: ev.HistoryEntry | None = None
        for entry in history:
            if entry.sender == ev.AGENT:
                # An agent was there before: what came earlier has had its answer.
                questions.clear()
                interview_answers.clear()
            elif entry.sender == ev.CUSTOMER:
                after_prompt = (
                    previous is not None
                    and previous.sender == ev.SYSTEM
                    and previous.text in self._prompts
                )
                (interview_answers if after_prompt else questions).append(entry.text)
            previous = entry
        s = self._settings
        for text in reversed(questions):
            if self._asks_for_person(words(text)):
                return text
        for candidates, threshold in (
            (questions, s.min_score),
            (interview_answers, STRONG * s.min_score),
        ):
            for text in reversed(candidates):
                match = s.base.best(text)
                if match is not None and match.score >= threshold:
                    return text
        # Nothing matches: the latest question is answered "no answer" (and counts).
        return questions[-1] if questions else None
