"""The scene script splitter and the scene state, alone (no Discord, no I/O)."""

from __future__ import annotations

import unicodedata

from cogs.roleplay.scene_state import (
    MAX_ENTITIES,
    MAX_FACT,
    dumps,
    loads,
    merge,
    render,
    set_fact,
    updates_in,
)
from cogs.roleplay.script import NARRATOR, SceneSplitter, speaker_of

MARKER = " ⌛"


def shown(contents: list[str]) -> list[tuple[str, str]]:
    return [speaker_of(c) for c in contents]


def splitter(limit: int = 2000) -> SceneSplitter:
    return SceneSplitter(["Aria", "Bren"], limit, MARKER)


def test_speakers_change_mid_stream_and_a_message_keeps_its_speaker() -> None:
    script = "Aria: Hello there.\nBren: Hi!\n**Narrator:** The wind howls."
    split = splitter()
    seen: dict[int, str] = {}  # message index -> its speaker, whenever it was shown
    for end in range(1, len(script) + 1):
        plan = split.feed(script[:end])
        contents = [*plan.frozen, plan.tail] if plan.tail else plan.frozen
        for index, (speaker, _) in enumerate(shown(contents)):
            assert seen.setdefault(index, speaker) == speaker, script[:end]
    assert shown(split.finish(script)) == [
        ("Aria", "Hello there."),
        ("Bren", "Hi!"),
        (NARRATOR, "The wind howls."),
    ]


def test_a_line_that_may_still_become_a_name_is_held_back() -> None:
    plan = splitter().feed("Aria: Hi.\nBre")
    assert plan.frozen == [] and speaker_of(plan.tail) == ("Aria", "Hi." + MARKER)
    assert splitter().feed("Bre") == ([], "")  # nothing to show yet
    assert shown([splitter().feed("Bren: Hi")[1]]) == [("Bren", "Hi" + MARKER)]


def test_unknown_names_continue_the_current_speaker_and_untagged_text_is_narration() -> None:
    script = "The door opens.\nAria: Who's there?\nGuard: Halt!\nAria: Me again.\nbren: Hm."
    assert shown(splitter().finish(script)) == [
        (NARRATOR, "The door opens."),
        ("Aria", "Who's there?\nGuard: Halt!\nMe again."),
        ("Bren", "Hm."),
    ]


def test_names_with_markdown_characters_speak_as_themselves() -> None:
    script = (
        "Red_Fox: hello there\n*Star*: Hi.\n**Red_Fox:** Again.\n***Star***: Bold.\n"
        "Red: Me, not the fox.\nred_fox: Lower case."
    )
    split = SceneSplitter(["Red", "Red_Fox", "*Star*"], 2000, MARKER)
    seen: dict[int, str] = {}  # message index -> its speaker, whenever it was shown
    for end in range(1, len(script) + 1):
        plan = split.feed(script[:end])
        contents = [*plan.frozen, plan.tail] if plan.tail else plan.frozen
        for index, (speaker, _) in enumerate(shown(contents)):
            assert seen.setdefault(index, speaker) == speaker, script[:end]
    assert shown(split.finish(script)) == [
        ("Red_Fox", "hello there"),
        ("*Star*", "Hi."),
        ("Red_Fox", "Again."),
        ("*Star*", "Bold."),
        ("Red", "Me, not the fox."),
        ("Red_Fox", "Lower case."),
    ]


def test_a_speaker_past_the_limit_continues_in_a_new_message_as_itself() -> None:
    words = " ".join(f"word{i}" for i in range(60))
    finished = shown(splitter(limit=100).finish(f"Bren: {words}\nAria: Short."))
    assert len(finished) > 3
    assert {speaker for speaker, _ in finished[:-1]} == {"Bren"}
    assert finished[-1] == ("Aria", "Short.")
    assert " ".join(text for _, text in finished[:-1]).split() == words.split()
    assert all(len(text) <= 100 for _, text in finished)
    plan = splitter(limit=100).feed(f"Bren: {words}")
    assert {speaker_of(c)[0] for c in [*plan.frozen, plan.tail]} == {"Bren"}


def test_tags_name_speakers_whatever_their_encoding_and_invisible_characters() -> None:
    zoe = unicodedata.normalize("NFD", "Zoë")  # a name stored by an older version
    split = SceneSplitter([zoe, "Aria\u200b"], 2000, MARKER)
    script = "Zoë: Hello.\n**ARIA:** Hi.\nＺＯË: Full width."  # as the model writes them
    assert shown(split.finish(script)) == [
        (zoe, "Hello."),
        ("Aria\u200b", "Hi."),
        (zoe, "Full width."),
    ]


def test_state_merges_updates_and_keeps_what_was_not_changed() -> None:
    state = merge({}, [{"name": "Bren", "kind": "character", "possessions": "the key"}])
    state = merge(state, [{"name": "bren", "kind": "character", "condition": "a cut hand"}])
    state = merge(state, [{"name": "The Inn", "kind": "place", "condition": "on fire"}])
    assert state["bren"] == {
        "name": "Bren",
        "kind": "character",
        "possessions": "the key",
        "condition": "a cut hand",
    }
    assert render(state) == (
        "- Bren (character): condition: a cut hand; possessions: the key\n"
        "- The Inn (place): condition: on fire"
    )
    corrected = set_fact(state, "Bren", "possessions", "-")
    assert "possessions" not in corrected["bren"] and "possessions" in state["bren"]
    assert loads(dumps(state)) == state


def test_state_is_bounded() -> None:
    many = [{"name": f"Extra {i}", "kind": "character", "goals": "x" * 500} for i in range(50)]
    state = merge({}, [{"name": "Bren", "kind": "item"}, *many, {"name": "", "goals": "none"}])
    assert len(state) == MAX_ENTITIES
    assert "bren" not in state and "extra 49" in state  # the least recently changed went
    assert all(len(entity["goals"]) == MAX_FACT for entity in state.values())


def test_only_replies_of_the_schemas_shape_give_updates() -> None:
    assert updates_in('{"entities": [{"name": "Bren"}, 3]}') == [{"name": "Bren"}]
    assert updates_in("not json") == updates_in('{"entities": "x"}') == updates_in("[1]") == []


def test_removing_a_fact_of_an_entity_never_noted_adds_and_evicts_nothing() -> None:
    full = merge({}, [{"name": f"Extra {i}", "location": "here"} for i in range(MAX_ENTITIES)])
    assert set_fact(full, "Ghost", "location", "-") == full  # a typo'd name, say
    model = [{"name": "Ghost", "kind": "character", "goals": "-", "condition": ""}]
    assert merge(full, model) == full
    assert "ghost" in set_fact(full, "Ghost", "location", "the attic")
