"""Customer satisfaction: after the end, a 1-5 choice and a comment, over the customer's
own protocol.

When ``[desk.csat]`` is on for the queue and the conversation ends for a reason in
``after`` (the agent ended it, or the customer did) with the customer still there, the
agent's part ends at once (``ended``, and its wrap-up) while the customer is asked the
two questions as interview prompts (XMPP clients with forms get a form). The answer is
stored and observed in ``imgateway_csat_score`` by queue and agent; then the customer's
conversation ends with the reason it had.
"""

from __future__ import annotations

import attrs
from twisted.logger import Logger

from gateway import logs
from gateway.core import events as ev
from gateway.core.conversation import CONNECTED, Conversation
from gateway.desk.context import SURVEY, DeskContext
from gateway.store.records import StoredMessage

SCORE_FIELD = "csat_score"
COMMENT_FIELD = "csat_comment"
SCORES = tuple(str(n) for n in range(1, 6))
LABELS = ("Very dissatisfied", "Dissatisfied", "Neutral", "Satisfied", "Very satisfied")
SKIP = frozenset({"skip", "no", "-", "none"})


@attrs.define(eq=False)
class Asked:
    """A survey in progress."""

    reason: str
    queue: str | None
    agent: str | None
    score: int | None = None


class Surveys:
    """The post-conversation survey."""

    _log = Logger(observer=logs.observer)

    def __init__(self, ctx: DeskContext) -> None:
        self._ctx = ctx
        self._settings = ctx.settings.csat
        self._asked: dict[str, Asked] = {}

    def applies(self, conv: Conversation, reason: str) -> bool:
        """Whether this end should ask the survey first."""
        customer = conv.customer
        return (
            conv.state == CONNECTED
            and conv.agent is not None
            and reason in self._settings.after
            and customer is not None
            and not customer.gone
            and self._ctx.settings.csat_for(conv.queue)
        )

    def start(self, conv: Conversation, reason: str, agent: str) -> None:
        """The agent's part is over: ask the customer."""
        self._asked[conv.id] = Asked(reason, conv.queue, agent)
        conv.state = SURVEY
        ctx = self._ctx
        ctx.write(ctx.core.store.update_conversation(conv.id, state=SURVEY))
        self._log.info("conversation {conversation}: survey asked", conversation=conv.id)
        ctx.relay.start_timer(conv, self._settings.timeout_s, self._silent)
        self._ask(conv, retry=False)

    def _ask(self, conv: Conversation, retry: bool) -> None:
        text = self._settings.question
        if retry:
            text = f"Please answer with a number from 1 to 5. {text}"
        prompt = ev.Prompt(
            SCORE_FIELD,
            "\n".join([text, *(f"{n}. {label}" for n, label in zip(SCORES, LABELS, strict=True))]),
            tuple(ev.Choice(n, label) for n, label in zip(SCORES, LABELS, strict=True)),
        )
        self._ctx.relay.store_system(conv, prompt.text)
        self._ctx.relay.deliver(conv.customer, prompt)

    def _silent(self, conv: Conversation) -> None:
        asked = self._asked.get(conv.id)
        if asked is not None and conv.state == SURVEY:
            if asked.score is not None:
                self._store(conv, asked, None)
            self._ctx.relay.end(conv, asked.reason)

    def line(self, conv: Conversation, entry: StoredMessage) -> None:
        """An answer: the score first, then the comment."""
        asked = self._asked.get(conv.id)
        if asked is None:
            return
        text = entry.text.strip()
        if asked.score is None:
            score = _score(text)
            if score is None:
                self._ask(conv, retry=True)
                return
            asked.score = score
            prompt = ev.Prompt(COMMENT_FIELD, self._settings.comment)
            self._ctx.relay.store_system(conv, prompt.text)
            self._ctx.relay.deliver(conv.customer, prompt)
            return
        comment = None if text.lower() in SKIP or not text else text[: self._settings.max_comment]
        self._store(conv, asked, comment)
        self._ctx.relay.system_line(conv, self._settings.thanks)
        self._ctx.relay.end(conv, asked.reason)

    def _store(self, conv: Conversation, asked: Asked, comment: str | None) -> None:
        ctx = self._ctx
        ctx.write(
            ctx.store.survey(conv.id, asked.queue, asked.agent, asked.score, comment, ctx.now())
        )
        ctx.metrics.csat.labels(asked.queue or "-", asked.agent or "-").observe(asked.score)
        self._log.info(
            "conversation {conversation}: survey answered {score}",
            conversation=conv.id,
            score=asked.score,
        )
        asked.score = None

    def forget(self, conv: Conversation) -> None:
        """The conversation ended (a score given before the customer left is kept)."""
        asked = self._asked.pop(conv.id, None)
        if asked is not None and asked.score is not None:
            self._store(conv, asked, None)


def _score(text: str) -> int | None:
    """A score from an answer: its number (``4``, ``4.``) or its label."""
    folded = text.strip().rstrip(".").casefold()
    for number, label in zip(SCORES, LABELS, strict=True):
        if folded in (number, label.casefold()):
            return int(number)
    return None
