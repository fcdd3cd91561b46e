"""Talk to a person (menu 7), with the pure flows: who answers, when, and what goes to the desk.

The citizen writes from Abidjan (+225) on Tuesday 1 December 2026 at 08:00 UTC (the post is
open: 8 h–12 h and 13 h–15 h, Africa/Abidjan = UTC) unless a test says otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flows.engine import Kind
from flows.messages import msg
from tests.support.dialog import at_menu, book_for
from tests.support.memory_world import MemoryWorld


@pytest.fixture
def world() -> MemoryWorld:
    return MemoryWorld()


def test_menu_7_asks_the_post_when_the_country_has_several(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("7")
    assert dialog.keys == ["desk.post.question"]
    assert dialog.values == ["ABJ", "BKE"]  # +225: the posts of Côte d'Ivoire
    dialog.pick("ABJ")
    assert dialog.keys == ["desk.topic.question"]
    dialog.say("J'ai perdu mon passeport à Abidjan")
    assert dialog.keys == ["desk.opened", "desk.when.now", "desk.chat.relayed"]
    assert dialog.step == "desk.chat"
    assert world.desk[1].post.code == "ABJ"
    assert world.desk_messages[1] == [("text", "J'ai perdu mon passeport à Abidjan", "")]


def test_the_post_of_an_appointment_answers_without_asking(world: MemoryWorld) -> None:
    book_for(world)  # ABJ
    dialog = at_menu(world)
    dialog.say("je veux parler à un conseiller")
    assert dialog.keys == ["desk.topic.question"]
    assert dialog.data == {"post": "ABJ"}


def test_a_phone_of_a_country_with_one_post_goes_straight_to_it(world: MemoryWorld) -> None:
    dialog = at_menu(world, phone="+33612345678")
    dialog.say("7")
    assert dialog.step == "desk.topic"
    assert dialog.data == {"post": "PAR"}


def test_out_of_hours_the_next_opening_is_said_in_the_posts_time(world: MemoryWorld) -> None:
    friday_evening = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
    dialog = at_menu(world, now=friday_evening)
    dialog.say("7")
    dialog.pick("ABJ")
    dialog.say("une naissance à déclarer")
    when = dialog.line("desk.when.at")
    assert when.params["day"] == msg("weekday.monday")
    assert when.params["time"] == msg("contacts.hours.clock", hour=8)
    text = "\n".join(dialog.rendered())
    assert "lundi à partir de 8 h" in text, text


def test_in_the_conversation_everything_goes_to_the_desk(world: MemoryWorld) -> None:
    dialog = at_menu(world, phone="+33612345678")
    dialog.say("7")
    dialog.say("mon acte de naissance")
    for text in ("aide", "1", "bonjour", "passeport"):
        dialog.say(text)
        assert dialog.keys == ["desk.chat.relayed"]
        assert dialog.step == "desk.chat"
    dialog.send(Kind.photo)  # a photo of a document: kept for the agent, not refused
    assert dialog.keys == ["desk.chat.relayed"]
    kinds = [kind for kind, _text, _media in world.desk_messages[1]]
    assert kinds == ["text", "text", "text", "text", "text", "photo"]


def test_a_voice_note_can_say_what_it_is_about(world: MemoryWorld) -> None:
    dialog = at_menu(world, phone="+33612345678")
    dialog.say("7")
    dialog.send(Kind.voice)
    assert dialog.keys[0] == "desk.opened"
    assert world.desk_messages[1] == [("voice", "", "")]


def test_menu_goes_back_to_the_bot_and_7_back_to_the_same_conversation(
    world: MemoryWorld,
) -> None:
    dialog = at_menu(world, phone="+33612345678")
    dialog.say("7")
    dialog.say("mon acte de naissance")
    dialog.say("menu")
    assert dialog.keys == ["desk.left", "menu.main.question"]
    assert world.desk_conversation(1) is not None  # still open for the agent
    dialog.say("7")
    assert dialog.keys == ["desk.resumed", "desk.chat.relayed"]
    assert dialog.step == "desk.chat"


def test_stop_and_start_keep_their_meaning_at_the_desk(world: MemoryWorld) -> None:
    dialog = at_menu(world, phone="+33612345678")
    dialog.say("7")
    dialog.say("mon acte de naissance")
    dialog.say("STOP")
    assert dialog.keys[0] == "common.stopped"
    assert world.opted_out[1] is True
    assert dialog.step == "desk.chat"
    assert len(world.desk_messages[1]) == 1


def test_the_conversation_with_the_desk_does_not_expire(world: MemoryWorld) -> None:
    dialog = at_menu(world, phone="+33612345678")
    dialog.say("7")
    dialog.say("mon acte de naissance")
    dialog.wait(hours=20)
    dialog.say("vous êtes là ?")
    assert dialog.keys == ["desk.chat.relayed"]


def test_closed_by_the_agent_the_citizen_is_back_with_the_bot(world: MemoryWorld) -> None:
    dialog = at_menu(world, phone="+33612345678")
    dialog.say("7")
    dialog.say("mon acte de naissance")
    world.close_desk(1)
    dialog.say("merci")
    assert dialog.keys == ["desk.closed", "menu.main.question"]


def test_three_answers_not_understood_in_a_row_offer_a_person(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("1")  # booking: which post?
    dialog.say("blabla")
    dialog.say("🙂🙂")
    assert "desk.offer" not in dialog.keys
    dialog.say("xyzzy")
    assert dialog.keys[-2] == "desk.offer"
    assert dialog.step == "booking.post"
    dialog.say("agent")
    assert dialog.step == "desk.start"


def test_an_understood_answer_starts_the_count_again(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("blabla")
    dialog.say("blibli")
    dialog.say("aide")
    dialog.say("bloblo")
    assert "desk.offer" not in dialog.keys


def test_what_the_citizen_tried_with_the_bot_goes_to_the_agent(world: MemoryWorld) -> None:
    dialog = at_menu(world, phone="+33612345678")
    dialog.say("1")
    dialog.say("je comprends pas")
    dialog.say("0")
    dialog.say("7")
    dialog.say("mon acte de naissance")
    tried = world.desk_tried[1]
    assert ("booking.post", "je comprends pas") in tried
    assert tried[-1] == ("menu.main", "7")
    assert len(tried) <= 5
    dialog.say("encore")  # what goes to the desk is not kept a second time in the state
    conversation = dialog.conversation
    assert conversation is not None
    assert conversation.recent == tried
