"""The FAQ bot: its matcher, its knowledge file, its settings, and the bot on a live core."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import attrs
import pytest
from core_helpers import FaultyStore, make_harness, result_of
from twisted.internet.task import Clock
from twisted.logger import Logger
from zope.interface.verify import verifyObject

from gateway import config as gwconfig
from gateway.bots import knowledge
from gateway.bots.faq import FaqBot
from gateway.bots.knowledge import Entry, KnowledgeBase
from gateway.bots.service import FaqBotService, faq_upstream
from gateway.bots.settings import FaqSettings, parse
from gateway.config import ConfigError, FieldConfig, QueueConfig, Reader
from gateway.core import events as ev
from gateway.core.desk import AGENT_DROPPED, TRANSFERRED
from gateway.core.interfaces import IParty

EXAMPLE = Path(__file__).resolve().parents[3] / "etc" / "faq.toml"
BASE = knowledge.load(EXAMPLE)
HOURS, PASSWORD, INVOICE, REFUND, SHIPPING = (e.answer for e in BASE.entries)
SETTINGS = FaqSettings(enabled=True, base=BASE)


# -- helpers -------------------------------------------------------------------


def bot_harness(settings=SETTINGS, start=True, **changes):
    """A core with no human logged in, and the bot (started unless told otherwise)."""
    h = make_harness(**changes)
    bot = FaqBot(h.gateway, settings, h.clock)
    if start:
        bot.start()
    return h, bot


def bot_lines(party) -> list[str]:
    """What the customer was told by an agent (the bot), in order."""
    return [e.text for e in party.of(ev.Message) if e.sender == ev.AGENT]


def connected_customer(h, answers=None):
    """A customer past the interview, connected to the bot, greeting said."""
    party, session = h.customer(answers or {"name": "Dana", "topic": "billing"})
    h.clock.advance(0)
    assert party.last(ev.Connected).peer_alias == "Help Bot"
    assert bot_lines(party) == [SETTINGS.greeting]
    party.take()
    return party, session


def ask(h, session, text: str) -> None:
    result_of(session.say(text))
    h.clock.advance(0)


def capture(bot) -> list[dict]:
    logged: list[dict] = []
    bot._log = Logger(observer=logged.append)
    return logged


# -- the matcher ---------------------------------------------------------------


def test_words_are_casefolded_runs_of_letters_and_digits():
    assert knowledge.words("Où est ma COMMANDE n°42?") == ("où", "est", "ma", "commande", "n", "42")


def test_each_keyword_found_adds_one():
    entry = Entry.of("zzz", "a", keywords=["refund", "money back", "return"])
    assert entry.score("I want a REFUND") == 1.0
    assert entry.score("refund, or my money back") == 2.0
    # A phrase counts only with its words in a row; there is no stemming.
    assert entry.score("back my money") == 0.0
    assert entry.score("refunds returned") == 0.0


def test_a_pattern_adds_two_once():
    entry = Entry.of("zzz", "a", patterns=[r"where\s+is\s+my\s+order", r"order"])
    assert entry.score("WHERE is my order?") == 2.0
    assert entry.score("nothing here") == 0.0


def test_the_question_adds_the_share_of_its_content_words():
    entry = Entry.of("What are your opening hours?", "a")
    assert entry.question_words == {"opening", "hours"}
    assert entry.score("opening hours") == 1.0
    assert entry.score("what hours") == 0.5
    assert entry.score("what are your") == 0.0


def test_best_takes_the_highest_score_and_ties_go_to_the_first_entry():
    base = KnowledgeBase(
        (
            Entry.of("zzz", "first", keywords=["card"]),
            Entry.of("zzz", "second", keywords=["card", "expired"]),
            Entry.of("zzz", "third", keywords=["card"]),
        )
    )
    assert base.best("my card expired").entry.answer == "second"
    match = base.best("my card")
    assert (match.entry.answer, match.index, match.score) == ("first", 0, 1.0)
    assert base.best("nothing at all") is None


def test_only_the_start_of_a_huge_line_is_matched():
    entry = Entry.of("zzz", "a", keywords=["refund"], patterns=["refund"])
    assert entry.score("x " * knowledge.MAX_TEXT + "refund") == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("When do you open on Saturday?", HOURS),
        ("I forgot my password", PASSWORD),
        ("can I get a copy of my invoice", INVOICE),
        ("I want my money back", REFUND),
        ("Where is my order??", SHIPPING),
        ("my parcel never arrived", SHIPPING),
    ],
)
def test_the_example_knowledge_file_answers_realistic_questions(text, expected):
    match = BASE.best(text)
    assert match is not None and match.score >= SETTINGS.min_score
    assert match.entry.answer == expected


@pytest.mark.parametrize("text", ["what is the meaning of life", "billing", "hello", "Tech"])
def test_the_example_knowledge_file_leaves_others_alone(text):
    match = BASE.best(text)
    assert match is None or match.score < SETTINGS.min_score


# -- the knowledge file --------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "faq.toml"
    path.write_text(text)
    return path


GOOD = '[[faq]]\nquestion = "Q?"\nanswer = "A."\nkeywords = ["k"]\n'


def test_a_knowledge_file_loads_in_order(tmp_path):
    path = write(tmp_path, GOOD + GOOD.replace('"A."', '"B."'))
    base = knowledge.load(path)
    assert [e.answer for e in base.entries] == ["A.", "B."]


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("", "faq", "is required"),
        ("faq = []", "faq", "at least one"),
        ("faq = 3", "faq", "must be a list"),
        (GOOD + "[extra]\n", "extra", "unknown key"),
        (GOOD + '[[faq]]\nanswer = "A."\n', "faq[1].question", "is required"),
        (GOOD + '[[faq]]\nquestion = "Q"\nanswer = " "\n', "faq[1].answer", "must not be empty"),
        (GOOD + '[[faq]]\nquestion = "Q"\nanswer = "A"\ncolour = 1\n', "faq[1].colour", "unknown"),
        (
            GOOD + '[[faq]]\nquestion = "Q"\nanswer = "A"\nkeywords = "k"\n',
            "faq[1].keywords",
            "must be a list",
        ),
        (
            GOOD + '[[faq]]\nquestion = "Q"\nanswer = "A"\nkeywords = ["ok", 3]\n',
            "faq[1].keywords[1]",
            "must be a string",
        ),
        (
            GOOD + '[[faq]]\nquestion = "Q"\nanswer = "A"\nkeywords = ["ok", "?!"]\n',
            "faq[1].keywords[1]",
            "no words",
        ),
        (
            GOOD + '[[faq]]\nquestion = "Q"\nanswer = "A"\npatterns = ["ok", "(unclosed"]\n',
            "faq[1].patterns[1]",
            "not a valid regular expression",
        ),
        (
            GOOD + '[[faq]]\nquestion = "Q"\nanswer = "A"\npatterns = [""]\n',
            "faq[1].patterns[0]",
            "must not be empty",
        ),
        (
            GOOD + '[[faq]]\nquestion = "Is it?"\nanswer = "A"\n',
            "faq[1].keywords",
            "can never match",
        ),
        (GOOD + "[[faq]\n", "-", "not valid TOML"),
    ],
)
def test_knowledge_file_errors_name_file_key_and_problem(tmp_path, text, key, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        knowledge.load(path)
    assert caught.value.source == str(path)
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{path}: {key}: ")


def test_a_missing_knowledge_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        knowledge.load(tmp_path / "nope.toml")


# -- the [bots] section --------------------------------------------------------


def bots(table: dict) -> Reader:
    return Reader("site.toml", table, "bots")


def test_a_disabled_bot_is_none_and_its_file_is_not_read():
    assert parse(bots({})) is None
    assert parse(bots({"faq": {"knowledge": "/nonexistent/faq.toml", "capacity": 5}})) is None


def test_an_enabled_bot_reads_its_settings_and_knowledge(tmp_path):
    path = write(tmp_path, GOOD)
    settings = parse(
        bots(
            {
                "faq": {
                    "enabled": True,
                    "name": "helpbot",
                    "alias": "Helper",
                    "capacity": 7,
                    "knowledge": str(path),
                    "handover_words": ["agent", "real person"],
                    "handover_queue": "tech",
                    "max_misses": 3,
                    "min_score": 1.5,
                    "greeting": "",
                }
            }
        )
    )
    assert settings == attrs.evolve(
        SETTINGS,
        name="helpbot",
        alias="Helper",
        capacity=7,
        knowledge=path,
        handover_words=("agent", "real person"),
        handover_queue="tech",
        max_misses=3,
        min_score=1.5,
        greeting="",
        base=knowledge.load(path),
    )


def test_defaults():
    settings = FaqSettings()
    assert (settings.name, settings.alias, settings.capacity) == ("faq-bot", "Help Bot", 50)
    assert settings.knowledge == Path("etc/faq.toml")
    assert settings.handover_words == ("agent", "human", "person", "operator")
    assert (settings.handover_queue, settings.max_misses, settings.min_score) == ("general", 2, 1)
    assert settings.follow_up == "Did that answer your question? Say 'agent' to talk to a person."


def test_the_packaged_defaults_agree_with_the_code():
    # gateway/defaults.toml documents [bots.faq]; its values must be the code's defaults.
    text = resources.files("gateway").joinpath("defaults.toml").read_text("utf-8")
    block = tomllib.loads(text).get("bots", {}).get("faq")
    assert block, "gateway/defaults.toml documents no [bots.faq] block"
    defaults = attrs.asdict(FaqSettings(), recurse=False)
    for key, value in block.items():
        expected = defaults[key]
        assert type(expected)(value) == expected, key


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [
        ({"faq": {"enabled": "yes"}}, "bots.faq.enabled", "must be a boolean"),
        ({"faq": {"name": "Help Bot"}}, "bots.faq.name", "not a valid name"),
        ({"faq": {"capacity": 0}}, "bots.faq.capacity", "between 1"),
        ({"faq": {"max_misses": 0}}, "bots.faq.max_misses", "between 1"),
        ({"faq": {"min_score": 0}}, "bots.faq.min_score", "between"),
        ({"faq": {"handover_words": ["agent", ""]}}, "bots.faq.handover_words[1]", "non-empty"),
        ({"faq": {"handover_queue": "Human Queue"}}, "bots.faq.handover_queue", "not a valid"),
        ({"faq": {"colour": "blue"}}, "bots.faq.colour", "unknown key"),
        ({"faq": 3}, "bots.faq", "must be a table"),
        ({"helpdesk": {}}, "bots.helpdesk", "unknown key"),
        (
            {"faq": {"enabled": True, "knowledge": "/nonexistent/faq.toml"}},
            "bots.faq.knowledge",
            "no such file",
        ),
    ],
)
def test_section_errors(table, key, problem):
    with pytest.raises(ConfigError) as caught:
        parse(bots(table))
    assert (caught.value.source, caught.value.key) == ("site.toml", key)
    assert problem in caught.value.problem


def test_the_section_through_the_configuration_loader(tmp_path):
    path = write(tmp_path, GOOD)
    site = tmp_path / "site.toml"
    site.write_text(f'[bots.faq]\nenabled = true\nknowledge = "{path}"\n')
    cfg = gwconfig.load(site)
    assert cfg.sections["bots"] == FaqSettings(
        enabled=True, knowledge=path, base=knowledge.load(path)
    )
    site.write_text(f'[bots.faq]\nenabled = true\nknowledge = "{path}"\nmin_score = "high"\n')
    with pytest.raises(ConfigError, match=r"site\.toml: bots\.faq\.min_score: must be"):
        gwconfig.load(site)


# -- the bot on a live core ----------------------------------------------------


def test_the_bot_is_a_party():
    _h, bot = bot_harness(start=False)
    assert verifyObject(IParty, bot)


def test_start_logs_in_an_available_bot_agent():
    h, bot = bot_harness()
    state = h.directory.get("faq-bot")
    assert state.session is bot.session
    assert (state.alias, state.capacity, state.bot, state.status) == (
        "Help Bot",
        50,
        True,
        "available",
    )
    assert state.protocol == "internal"
    bot.start()  # twice is harmless
    assert h.directory.get("faq-bot") is state


def test_greeting_then_the_question_asked_while_waiting():
    h, bot = bot_harness(start=False)
    party, session = h.customer()  # the whole interview: name, then topic
    result_of(session.say("Dana"))
    result_of(session.say("billing"))
    result_of(session.say("Hi, I forgot my password and cannot log in"))
    bot.start()
    h.clock.advance(0)
    assert party.last(ev.Connected).peer_alias == "Help Bot"
    assert bot_lines(party) == [SETTINGS.greeting, PASSWORD, SETTINGS.follow_up]
    assert bot.conversations == {session.conversation.id}


def test_interview_answers_are_not_taken_for_questions():
    h, _bot = bot_harness()
    party, session = h.customer()
    result_of(session.say("Shipping Dana"))  # a name that happens to be a keyword
    result_of(session.say("billing"))
    h.clock.advance(0)
    assert bot_lines(party) == [SETTINGS.greeting]
    # Nor do they count as a miss.
    ask(h, session, "what is the meaning of life")
    assert bot_lines(party)[-1] == SETTINGS.no_answer


def test_a_free_text_interview_answer_that_matches_strongly_is_answered():
    fields = (FieldConfig(name="topic", prompt="What is your question?"),)
    h, _bot = bot_harness(fields=fields)
    party, session = h.customer()
    result_of(session.say("How do I reset my password? I forgot it"))
    h.clock.advance(0)
    assert bot_lines(party) == [SETTINGS.greeting, PASSWORD, SETTINGS.follow_up]

    # A weak match in an interview answer is left alone.
    party, session = h.customer()
    result_of(session.say("hours"))
    h.clock.advance(0)
    assert bot_lines(party) == [SETTINGS.greeting]


def test_a_question_gets_its_answer_and_the_follow_up():
    h, _bot = bot_harness()
    party, session = connected_customer(h)
    ask(h, session, "Where is my order? It has not arrived")
    assert bot_lines(party) == [SHIPPING, SETTINGS.follow_up]


def test_two_unanswered_questions_hand_over_to_a_human_with_the_history():
    h, bot = bot_harness()
    party, session = connected_customer(h)
    ask(h, session, "Can I pay with seashells?")
    assert bot_lines(party) == [SETTINGS.no_answer]
    ask(h, session, "Do you sell unicorns?")
    assert bot_lines(party) == [SETTINGS.no_answer, SETTINGS.handover_text]
    conv = session.conversation
    assert conv.state == "queued" and conv.queue == "general"
    assert party.of(ev.Message)[-1].text == TRANSFERRED
    assert bot.conversations == frozenset()
    assert h.directory.get("faq-bot").load == 0

    anna, anna_session = h.agent("anna")
    offer = anna.last(ev.Offer)
    assert offer.conversation == conv.id
    anna_session.accept(offer.offer)
    history = [(e.sender, e.text) for e in anna.last(ev.Connected).history]
    assert history == [
        (ev.AGENT, SETTINGS.greeting),
        (ev.CUSTOMER, "Can I pay with seashells?"),
        (ev.AGENT, SETTINGS.no_answer),
        (ev.CUSTOMER, "Do you sell unicorns?"),
        (ev.AGENT, SETTINGS.handover_text),
        (ev.SYSTEM, TRANSFERRED),
    ]
    assert party.last(ev.Connected).peer_alias == "Anna A."


@pytest.mark.parametrize("text", ["agent", "Can I talk to a HUMAN please?", "operator!"])
def test_asking_for_a_person_hands_over_at_once(text):
    h, bot = bot_harness()
    party, session = connected_customer(h)
    ask(h, session, text)
    assert bot_lines(party) == [SETTINGS.handover_text]
    assert session.conversation.state == "queued"
    assert bot.conversations == frozenset()


def test_asking_for_a_person_while_waiting_hands_over_on_joining():
    h, bot = bot_harness(start=False)
    party, session = h.customer({"name": "Dana", "topic": "billing"})
    result_of(session.say("my invoice is wrong, I want a person"))
    bot.start()
    h.clock.advance(0)
    assert bot_lines(party) == [SETTINGS.greeting, SETTINGS.handover_text]
    assert session.conversation.state == "queued"


def test_handover_words_and_queue_are_configurable():
    settings = attrs.evolve(SETTINGS, handover_words=("real person",), handover_queue="tech")
    queues = {name: QueueConfig(name=name) for name in ("general", "tech")}
    h, _bot = bot_harness(settings, queues=queues)
    party, session = connected_customer(h)
    ask(h, session, "a person?")
    assert bot_lines(party) == [SETTINGS.no_answer]
    ask(h, session, "a real person!")
    assert session.conversation.queue == "tech"


def test_courtesy_is_not_a_miss_and_an_answer_resets_the_count():
    h, bot = bot_harness()
    party, session = connected_customer(h)
    ask(h, session, "What are your opening hours?")
    ask(h, session, "thanks!")
    ask(h, session, "OK")
    ask(h, session, "can I pay with seashells")
    ask(h, session, "how do I get a refund?")
    ask(h, session, "do you sell unicorns")
    assert bot_lines(party) == [
        HOURS,
        SETTINGS.follow_up,
        SETTINGS.no_answer,
        REFUND,
        SETTINGS.follow_up,
        SETTINGS.no_answer,
    ]
    assert bot.conversations == {session.conversation.id}


def test_the_bot_holds_several_conversations_at_once():
    h, bot = bot_harness()
    customers = [connected_customer(h, {"name": n, "topic": "billing"}) for n in "ABC"]
    assert len(bot.conversations) == 3 and h.directory.get("faq-bot").load == 3
    questions = ["where is my parcel", "I need a copy of my invoice", "when do you open"]
    for (_party, session), question in zip(customers, questions, strict=True):
        result_of(session.say(question))
    h.clock.advance(0)
    answers = [bot_lines(party) for party, _ in customers]
    assert answers == [[a, SETTINGS.follow_up] for a in (SHIPPING, INVOICE, HOURS)]


def test_the_bot_takes_no_more_than_its_capacity():
    h, _bot = bot_harness(attrs.evolve(SETTINGS, capacity=2))
    parties = [h.customer({"name": n, "topic": "billing"})[0] for n in "ABC"]
    h.clock.advance(0)
    assert [bool(p.of(ev.Connected)) for p in parties] == [True, True, False]


def test_an_offer_revoked_before_the_bot_accepts_is_dropped():
    h, bot = bot_harness()
    logged = capture(bot)
    _party, session = h.customer({"name": "Dana", "topic": "billing"})
    session.end()
    h.clock.advance(0)
    assert bot.conversations == frozenset() and not logged


def test_an_ended_conversation_is_forgotten_before_its_replies():
    h, bot = bot_harness()
    party, session = connected_customer(h)
    result_of(session.say("when do you open"))
    session.end()
    h.clock.advance(0)
    assert bot.conversations == frozenset()
    assert bot_lines(party) == []


def test_a_failed_say_is_logged_and_the_bot_goes_on():
    base = KnowledgeBase((Entry.of("toxins?", "poison is bad", keywords=["toxins"]),))
    h, bot = bot_harness(attrs.evolve(SETTINGS, base=base), store=FaultyStore())
    logged = capture(bot)
    party, session = connected_customer(h)
    ask(h, session, "what about toxins")
    assert bot_lines(party) == [SETTINGS.follow_up]
    (failure,) = [e for e in logged if "log_failure" in e]
    assert failure["log_format"] == "FAQ bot could not say a line in {conversation}"


def test_a_failed_handover_keeps_the_customer_with_the_bot():
    h, bot = bot_harness(attrs.evolve(SETTINGS, handover_queue="nowhere"))
    logged = capture(bot)
    party, session = connected_customer(h)
    ask(h, session, "agent")
    assert bot_lines(party) == [SETTINGS.handover_text]
    assert session.conversation.state == "connected"
    assert [e["log_level"].name for e in logged].count("error") == 1
    ask(h, session, "when do you open?")
    assert bot_lines(party)[-2:] == [HOURS, SETTINGS.follow_up]


def test_stop_logs_out_and_the_core_requeues_its_conversations():
    h, bot = bot_harness()
    party, session = connected_customer(h)
    bot.stop()
    assert h.directory.get("faq-bot") is None and bot.session is None
    assert session.conversation.state == "queued"
    assert party.of(ev.Message)[-1].text == AGENT_DROPPED
    bot.stop()  # twice is harmless


def test_a_second_login_by_the_same_name_closes_the_bot():
    h, bot = bot_harness()
    _party, session = connected_customer(h)
    other = FaqBot(h.gateway, SETTINGS, h.clock)
    other.start()
    assert bot.session is None and bot.conversations == frozenset()
    assert h.directory.get("faq-bot").session is other.session
    # The conversation the first bot held goes back to the queue, and to the new bot.
    h.clock.advance(0)
    assert other.conversations == {session.conversation.id}


def test_shutdown_closes_the_bot():
    h, bot = bot_harness()
    connected_customer(h)
    h.gateway.shutdown()
    assert bot.session is None and bot.conversations == frozenset()
    bot.stop()


# -- running with the gateway service ------------------------------------------


def test_no_service_unless_enabled():
    h = make_harness()
    assert faq_upstream(h.gateway, h.gateway.config, Clock()) is None


def test_the_service_starts_and_stops_the_bot():
    h = make_harness()
    config = attrs.evolve(h.gateway.config, sections={"bots": SETTINGS})
    service = faq_upstream(h.gateway, config, h.clock)
    assert isinstance(service, FaqBotService)
    service.startService()
    assert h.directory.get("faq-bot").status == "available"
    service.stopService()
    assert h.directory.get("faq-bot") is None


def test_the_handover_queue_must_exist():
    h = make_harness()
    settings = attrs.evolve(SETTINGS, handover_queue="humans")
    config = attrs.evolve(h.gateway.config, sections={"bots": settings})
    with pytest.raises(ConfigError, match=r"bots\.faq\.handover_queue: names no queue: 'humans'"):
        faq_upstream(h.gateway, config, h.clock)
