"""Generate the labelled long-conversation memory benchmark, tests/data/memory_bench.json.

    .venv/bin/python scripts/make_memory_bench.py            # writes the file
    .venv/bin/python scripts/make_memory_bench.py --check    # exit 1 if the file is stale

Deterministic (seeded `random`, no network, no model). Each conversation is one channel
over many months: sessions of several people talking with the bot (every message gets a
reply, as the AI chat stores exchanges), with personal facts told once in the speaker's
own words, some of them changing later (moves, new jobs, new cars), mixed with chatter
and near-miss distractors (the same places and things said about nobody). Questions are
worded differently from the facts and label the turns that answer them (for a changed
fact, the newest). Categories: single (one fact), multi (facts from several sessions),
time (when something was said, or what was true before a change) and never (nothing
said answers it: the right result is nothing relevant). The names, facts and phrasings
are in scripts/memory_bench_vocab.py; this file owns the generator and the file format.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.memory_bench_vocab import ATTRIBUTES, CHATTER, NAMES, NEAR, NEVER, REPLIES

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "memory_bench.json"
SEED = 13
CONVERSATIONS = 12
DAY = 86_400
START = 1_704_067_200  # 2024-01-01 UTC


@dataclass
class Told:
    """A fact as it was said: which turn, when, by whom."""

    attr: str
    value: str
    turn: int
    at: int
    session: int


@dataclass
class Conversation:
    rng: random.Random
    people: list[str]
    turns: list[dict] = field(default_factory=list)
    told: dict[str, dict[str, list[Told]]] = field(default_factory=dict)

    def say(self, speaker: str, text: str, at: int) -> int:
        self.turns.append({"id": len(self.turns), "speaker": speaker, "text": text, "at": at})
        reply = self.rng.choice(REPLIES).format(n=speaker)
        self.turns.append(
            {"id": len(self.turns), "speaker": "assistant", "text": reply, "at": at + 20}
        )
        return len(self.turns) - 2


def other(rng: random.Random, people: list[str], not_: str) -> str:
    return rng.choice([p for p in people if p != not_])


def build(index: int, rng: random.Random) -> dict:
    people = rng.sample(NAMES, rng.randint(4, 6))
    conv = Conversation(rng, people, told={p: {} for p in people})
    # Each person gets 5-7 attributes; changing ones get 1-2 later values.
    plan: list[tuple[str, str, str]] = []  # (person, attr, value), in telling order per person
    for person in people:
        for attr in rng.sample(list(ATTRIBUTES), rng.randint(5, 7)):
            spec = ATTRIBUTES[attr]
            values = rng.sample(spec["values"], 3)
            changes = rng.randint(1, 2) if spec.get("changes") else 0
            for value in values[: 1 + changes]:
                plan.append((person, attr, value))
    # Keep each person's changes in order, but spread over the sessions at random.
    sessions = rng.randint(30, 40)
    slots: dict[int, list[tuple[str, str, str]]] = {s: [] for s in range(sessions)}
    last_slot: dict[tuple[str, str], int] = {}
    for person, attr, value in plan:
        low = last_slot.get((person, attr), -1) + 1
        slot = rng.randint(min(low, sessions - 1), sessions - 1)
        if low <= sessions - 1:
            last_slot[(person, attr)] = slot
        slots[slot].append((person, attr, value))
    at = START + index * 7 * DAY + rng.randint(0, DAY)
    for session in range(sessions):
        at += rng.randint(2, 9) * DAY + rng.randint(0, 6 * 3600)
        moment = at
        events: list[tuple[str, str, str] | None] = [*slots[session]]
        events += [None] * rng.randint(5, 10)
        rng.shuffle(events)
        # a changed fact must follow the old one inside a session too
        facts = iter(sorted((e for e in events if e), key=lambda e: plan.index(e)))
        events = [next(facts) if e else None for e in events]
        for event in events:
            moment += rng.randint(60, 1500)
            if event is None:
                speaker = rng.choice(people)
                if rng.random() < 0.3:
                    attr = rng.choice(list(ATTRIBUTES))
                    value = rng.choice(ATTRIBUTES[attr]["values"])
                    text = rng.choice(NEAR).format(v=value, o=other(rng, people, speaker))
                else:
                    text = rng.choice(CHATTER).format(o=other(rng, people, speaker))
                conv.say(speaker, text, moment)
                continue
            person, attr, value = event
            text = rng.choice(ATTRIBUTES[attr]["say"]).format(v=value)
            if rng.random() < 0.3:
                text = f"{other(rng, people, person)}, {text}"
            turn = conv.say(person, text, moment)
            conv.told[person].setdefault(attr, []).append(Told(attr, value, turn, moment, session))
    return {
        "id": f"c{index:02d}",
        "people": people,
        "turns": conv.turns,
        "questions": questions(conv, rng),
    }


def questions(conv: Conversation, rng: random.Random) -> list[dict]:
    out: list[dict] = []

    def add(category: str, asker: str, text: str, evidence: list[Told], answer: str) -> None:
        out.append(
            {
                "category": category,
                "asker": asker,
                "question": text,
                "evidence": sorted(t.turn for t in evidence),
                "answer": answer,
            }
        )

    people = conv.people
    for person in people:
        told = conv.told[person]
        for attr, history in told.items():
            spec = ATTRIBUTES[attr]
            newest = history[-1]
            asker = other(rng, people, person)
            add("single", asker, rng.choice(spec["ask"]).format(n=person), [newest], newest.value)
            if len(history) > 1:
                add(
                    "time",
                    asker,
                    spec["before"].format(n=person),
                    [history[-2]],
                    history[-2].value,
                )
            when = rng.choice(history)
            add("time", asker, spec["when"].format(n=person, v=when.value), [when], str(when.at))
        # multi-hop: two facts told in different sessions
        attrs = list(told)
        rng.shuffle(attrs)
        pairs = [
            (a, b)
            for i, a in enumerate(attrs)
            for b in attrs[i + 1 :]
            if told[a][-1].session != told[b][-1].session
        ]
        for a, b in pairs[:2]:
            first = rng.choice(ATTRIBUTES[a]["ask"]).format(n=person).rstrip("?")
            second = rng.choice(ATTRIBUTES[b]["ask"]).format(n=person).rstrip("?")
            second = second[0].lower() + second[1:]
            add(
                "multi",
                other(rng, people, person),
                f"{first}, and {second}?",
                [told[a][-1], told[b][-1]],
                f"{told[a][-1].value}; {told[b][-1].value}",
            )
        # never said: an attribute nobody told about this person, or a thing nobody says
        missing = [a for a in ATTRIBUTES if a not in told]
        for attr in rng.sample(missing, min(2, len(missing))):
            ask = rng.choice(ATTRIBUTES[attr]["ask"]).format(n=person)
            add("never", other(rng, people, person), ask, [], "")
        for text in rng.sample(NEVER, 2):
            add("never", other(rng, people, person), text.format(n=person), [], "")
    # multi-hop across people: the one who said X, what else did they say
    for person in people:
        told = conv.told[person]
        bridges = [a for a in ("pet", "instrument", "hobby") if a in told]
        targets = [a for a in ("job", "city") if a in told]
        if bridges and targets:
            bridge, target = told[rng.choice(bridges)][-1], told[rng.choice(targets)][-1]
            thing = bridge.value.split(" called ")[-1] if bridge.attr == "pet" else bridge.value
            what = {"job": "work as", "city": "live in"}[target.attr]
            add(
                "multi",
                other(rng, people, person),
                f"The person into {thing}: what do they {what} now?",
                [bridge, target],
                target.value,
            )
    for n, question in enumerate(out):
        question["id"] = f"q{n:03d}"
    return out


def generate() -> dict:
    rng = random.Random(SEED)
    conversations = [build(i, rng) for i in range(CONVERSATIONS)]
    return {
        "description": "Long multi-session conversations (one channel each, several people "
        "and the bot) with questions labelled by the turn ids that answer them; "
        "generated by scripts/make_memory_bench.py.",
        "categories": ["single", "multi", "time", "never"],
        "conversations": conversations,
    }


def render(bench: dict) -> str:
    """Compact JSON, one turn or question per line (diffable, < 3 MB)."""
    lines = ["{"]
    lines.append(f' "description": {json.dumps(bench["description"])},')
    lines.append(f' "categories": {json.dumps(bench["categories"])},')
    lines.append(' "conversations": [')
    for c, conv in enumerate(bench["conversations"]):
        lines.append(f'  {{"id": {json.dumps(conv["id"])}, "people": {json.dumps(conv["people"])},')
        for key in ("turns", "questions"):
            lines.append(f'   "{key}": [')
            rows = [f"    {json.dumps(row)}" for row in conv[key]]
            lines.append(",\n".join(rows))
            lines.append("   ]" + ("," if key == "turns" else ""))
        lines.append("  }" + ("," if c < len(bench["conversations"]) - 1 else ""))
    lines.append(" ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args()
    text = render(generate())
    if args.check:
        sys.exit(0 if OUT.read_text() == text else 1)
    OUT.write_text(text)
    bench = json.loads(text)
    counts: dict[str, int] = {}
    for conv in bench["conversations"]:
        for question in conv["questions"]:
            counts[question["category"]] = counts.get(question["category"], 0) + 1
    print(f"wrote {OUT} ({len(text) / 1e6:.2f} MB), questions: {counts}")


if __name__ == "__main__":
    main()
