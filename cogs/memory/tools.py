"""Long-term memory as AI tools: remember a fact about the asker, recall by topic,
forget the asker's own memories.

They work where the asker is, like `/memory`: in a server its memories, in DMs the
asker's DM memories, and they call the same cog methods as the commands (the same
limits, the same "only your own" rule). Recalled memories are written by people, so
that result counts as outside text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from cogs.memory.targets import parse_target
from utils.memory.recall import MemoryLoading
from utils.memory.records import age_text
from utils.tools import Asker, Done, Family, Tool

if TYPE_CHECKING:
    from cogs.memory.cog import MemoryCog

RECALLED = 5  # memories a recall returns at most


class RememberIn(BaseModel):
    fact: str = Field(
        description="The fact about the person asking, in their own words "
        "(e.g. 'I am allergic to peanuts')"
    )


class RecallIn(BaseModel):
    topic: str = Field(description="What to look for, e.g. 'food allergies' or 'my cat'")


class ForgetIn(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)  # recall gives ids as numbers

    target: str = Field(
        description="The id of one of the asker's memories (from recall), or 'all' to "
        "forget everything remembered about them here"
    )


def tools(cog: MemoryCog) -> list[Tool[Any]]:
    """The memory tools, bound to the cog whose commands they share."""

    async def remember(asker: Asker, args: RememberIn) -> Done:
        # Like recall, not kept waiting for a model still loading after a start (/memory
        # add waits: a command deferred has minutes, a tool call its timeout).
        if not await cog.service.runtime.model_loaded():
            raise MemoryLoading
        # Said in the conversation of the asker's channel: only its readers recall it.
        memory = await cog.remember(asker.guild, asker.user, args.fact, asker.channel.id)
        return Done({"remembered": True, "memory_id": memory.id}, note="🧠 remembered")

    async def recall(asker: Asker, args: RecallIn) -> Done:
        found = await cog.recall(asker.guild, asker.user, asker.channel.id, args.topic, RECALLED)
        memories = [{"memory_id": m.id, "text": m.text, "when": age_text(m.age)} for m in found]
        return Done({"memories": memories}, note="🧠 recalled", outside=True)

    async def forget(asker: Asker, args: ForgetIn) -> Done:
        removed = await cog.forget(asker.guild, asker.user, args.target, "you")
        every = parse_target(args.target) is None  # the exchange that asked goes too
        return Done({"forgotten": removed}, note=f"🧠 forgot {removed}", forgets_exchange=every)

    return [
        Tool(
            "remember",
            "Remember a fact about the person asking, for later conversations here. Only "
            "when they ask you to remember something about themselves.",
            Family.MEMORY,
            remember,
            RememberIn,
            changes=True,
            guild_only=False,
        ),
        Tool(
            "recall",
            "Look up what is remembered here about a topic (the person asking and others "
            "in this conversation place). Returns memory ids.",
            Family.MEMORY,
            recall,
            RecallIn,
            guild_only=False,
        ),
        Tool(
            "forget",
            "Delete one of the asker's own memories by its id, or all of them ('all'). "
            "Only when they ask for it.",
            Family.MEMORY,
            forget,
            ForgetIn,
            changes=True,
            guild_only=False,
        ),
    ]
