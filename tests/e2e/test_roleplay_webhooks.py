"""Characters speaking through channel webhooks: the real bot and discord.py against the fake
Discord, driven through `WebhookSender` with the bot's own channel objects."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator, Callable
from typing import cast

import discord
import pytest

from cogs.ai.records import WRITING, Turn
from cogs.ai.streaming import RESTART, RESTART_NOTE, WRITING_MARKER, stream_reply
from cogs.roleplay.scene_cog import Scenes
from cogs.roleplay.webhook_names import TEXT_LIMIT
from cogs.roleplay.webhooks import (
    RETRY_AFTER,
    WEBHOOK_NAME,
    Channel,
    SpokenMessage,
    WebhookSender,
)
from config import Settings
from tests.conftest import ADMIN, BASIC, StartBot, eventually
from tests.fakes.clock import FakeClock
from tests.fakes.discord_server import FakeChannel, FakeDiscord, FakeGuild, FakeMessage, FakeUser
from tests.fakes.gemini_server import FakeGemini

ALICE = ("Alice", "https://example.invalid/alice.png")
BOB = ("Bob", "https://example.invalid/bob.png")
NO_PINGS = {"parse": []}


class Speaking:
    """Where `stream_reply` sends one character's reply (a `streaming.Sink`), as a scene's
    sink sends each speaker's lines."""

    def __init__(
        self, sender: WebhookSender, channel: Channel, name: str, avatar_url: str | None
    ) -> None:
        self.sender, self.channel, self.name, self.avatar_url = sender, channel, name, avatar_url

    async def send(self, content: str) -> SpokenMessage:
        return await self.sender.send(
            self.channel, content, name=self.name, avatar_url=self.avatar_url
        )


def text_channel(bot: discord.Client, channel: FakeChannel) -> discord.TextChannel:
    found = bot.get_channel(channel.id)
    assert isinstance(found, discord.TextChannel)
    return found


def fake_message(fake: FakeDiscord, message_id: int) -> FakeMessage:
    return fake.messages[message_id]


def webhook_creations(fake: FakeDiscord) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.path.endswith("/webhooks"))


def webhook_lookups(fake: FakeDiscord) -> int:
    return sum(1 for r in fake.requests if r.path.endswith("/webhooks"))


def executes(fake: FakeDiscord) -> list:
    return [r for r in fake.requests if r.method == "POST" and r.path.startswith("/webhooks/")]


def sends_and_edits(fake: FakeDiscord) -> list:
    """Every message the bot sent or edited, through a webhook or not."""
    return [
        r
        for r in fake.requests
        if (r.method == "POST" and r.path.startswith("/webhooks/"))
        or (r.method == "PATCH" and "/messages/" in r.path)
        or (r.method == "POST" and r.path.endswith("/messages"))
    ]


async def test_two_characters_speak_as_themselves_and_ping_nobody(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    bot = await start_bot(extensions=[])
    sender = WebhookSender(bot)
    channel = text_channel(bot, guild.text)
    role = guild.add_role("players", mentionable=True)
    pings = f"@everyone @here <@&{role.id}> <@{member.id}>"

    alice = await sender.send(channel, f"Hi {pings}", name=ALICE[0], avatar_url=ALICE[1])
    bob = await sender.send(channel, "Hello Alice", name=BOB[0], avatar_url=BOB[1])
    await alice.edit(content=f"Hi again {pings}")
    odd = await sender.send(channel, "Beep", name="  Discord   Clyde  " + "x" * 90, avatar_url=None)

    first, second, third = (fake_message(discord_fake, s.id) for s in (alice, bob, odd))
    assert (first.author.name, first.avatar_url) == ALICE
    assert (second.author.name, second.avatar_url) == BOB
    assert first.content == f"Hi again {pings}" and first.history[0] == f"Hi {pings}"
    assert first.webhook_id == second.webhook_id == third.webhook_id
    # Discord refuses these names; the sender makes them acceptable and look the same.
    assert third.author.name.lower().startswith("dis\u0441ord \u0441lyde x")
    assert len(third.author.name) == 80
    (webhook,) = discord_fake.webhooks.values()
    assert (webhook.channel_id, webhook.name) == (guild.text.id, WEBHOOK_NAME)

    requests = sends_and_edits(discord_fake)
    assert len(requests) == 4
    assert all(r.json["allowed_mentions"] == NO_PINGS for r in requests)
    assert not (first.mention_everyone or first.mentions or first.mention_roles)


async def test_characters_named_with_overlapping_forbidden_words_still_speak(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    bot = await start_bot(extensions=[])
    sender = WebhookSender(bot)
    channel = text_channel(bot, guild.text)

    # One pass of the disguise would leave "Dis\u0441ordiscord": still refused (50035).
    for name in ("Discordiscord", "Clydeclyde", "xDISCORDISCORDx"):
        spoken = await sender.send(channel, f"I am {name}", name=name, avatar_url=None)
        message = fake_message(discord_fake, spoken.id)
        assert (message.content, message.webhook_id is not None) == (f"I am {name}", True)
        assert message.author.name.lower().replace("\u0441", "c") == name.lower()
        assert not re.search("clyde|discord", message.author.name, re.IGNORECASE)


async def test_characters_named_everyone_or_here_still_speak(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    bot = await start_bot(extensions=[])
    sender = WebhookSender(bot)
    channel = text_channel(bot, guild.text)

    # Discord refuses these names as a whole (400 50035), not inside longer ones.
    for name in ("Everyone", "here", " System  Message ", "Here We Go"):
        spoken = await sender.send(channel, f"I am {name}", name=name, avatar_url=None)
        message = fake_message(discord_fake, spoken.id)
        assert (message.content, message.webhook_id is not None) == (f"I am {name}", True)
        assert message.author.name.replace("\u0435", "e").replace("\u0415", "E") == " ".join(
            name.split()
        )
    assert fake_message(discord_fake, spoken.id).author.name == "Here We Go"


async def test_a_slow_webhook_lookup_in_one_channel_keeps_no_other_channel_waiting(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    bot = await start_bot(extensions=[])
    sender = WebhookSender(bot)
    other = guild.add_text_channel("other")
    await discord_fake.wait_for(lambda: bot.get_channel(other.id))
    release = discord_fake.webhook_routes.stall(guild.text)
    slow = asyncio.create_task(
        sender.send(text_channel(bot, guild.text), "Hi", name=ALICE[0], avatar_url=ALICE[1])
    )
    await discord_fake.wait_for(lambda: webhook_lookups(discord_fake) == 1)
    quick = await sender.send(text_channel(bot, other), "Hello", name=BOB[0], avatar_url=None)
    assert fake_message(discord_fake, quick.id).channel_id == other.id
    assert not slow.done(), "the first channel's lookup is still held"
    release.set()
    assert fake_message(discord_fake, (await slow).id).author.name == ALICE[0]


async def test_a_streamed_reply_keeps_its_speaker_across_edits_and_splits(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    bot = await start_bot(extensions=[])
    sender = WebhookSender(bot)
    text = " ".join(f"word{i}" for i in range(300))  # past one message
    assert len(text) > TEXT_LIMIT

    async def pieces() -> AsyncIterator[str]:
        for start in range(0, len(text), 300):
            yield text[start : start + 300]

    recorded: list[str | None] = []

    async def record(shown: str, incomplete: str | None, message_ids: list[int]) -> None:
        recorded.append(incomplete)

    sink = Speaking(sender, text_channel(bot, guild.text), *ALICE)
    sent = await stream_reply(pieces(), sink, record, interval=0, limit=TEXT_LIMIT)

    messages = [fake_message(discord_fake, s.id) for s in sent]
    assert len(messages) == 2
    assert all((m.author.name, m.avatar_url) == ALICE for m in messages)
    assert len({m.webhook_id for m in messages}) == 1
    assert len(messages[0].history) > 2  # edited in place while streaming
    assert " ".join(m.content for m in messages).split() == text.split()
    assert recorded[-1] is None
    assert all(r.json["allowed_mentions"] == NO_PINGS for r in sends_and_edits(discord_fake))


async def test_a_thread_speaks_through_its_parents_webhook(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    bot = await start_bot(extensions=[])
    sender = WebhookSender(bot)
    await sender.send(
        text_channel(bot, guild.text), "in the channel", name="Alice", avatar_url=None
    )
    scene = guild.add_thread(guild.text, "scene", discord_fake.owner)
    thread = await eventually(lambda: bot.get_channel(scene.id))
    assert isinstance(thread, discord.Thread)

    spoken = await sender.send(thread, "in the thread", name="Bob", avatar_url=None)
    await spoken.edit(content="still in the thread")

    message = fake_message(discord_fake, spoken.id)
    assert (message.channel_id, message.content) == (scene.id, "still in the thread")
    assert len(discord_fake.webhooks) == 1 and webhook_creations(discord_fake) == 1
    assert message.author.name == "Bob"
    assert message.webhook_id is not None and message.webhook_id in discord_fake.webhooks
    assert executes(discord_fake)[-1].query["thread_id"] == str(scene.id)


async def test_a_deleted_webhook_is_made_again_and_the_message_resent(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    bot = await start_bot(extensions=[])
    sender = WebhookSender(bot)
    channel = text_channel(bot, guild.text)
    streaming = await sender.send(channel, "part one", name="Alice", avatar_url=ALICE[1])
    (old,) = discord_fake.webhooks.values()
    discord_fake.webhook_routes.delete(old)

    # A new message: the webhook is made again, once, and the message sent through it.
    later = await sender.send(channel, "a new line", name="Bob", avatar_url=None)
    (new,) = discord_fake.webhooks.values()
    assert new.id != old.id and webhook_creations(discord_fake) == 2
    assert fake_message(discord_fake, later.id).webhook_id == new.id

    # An edit of a message of the deleted webhook continues in a new message.
    first_id = streaming.id
    await streaming.edit(content="part one and two")
    assert streaming.id != first_id
    assert fake_message(discord_fake, first_id).deleted
    await streaming.edit(content="part one, two and three")
    resent = fake_message(discord_fake, streaming.id)
    assert (resent.content, resent.author.name, resent.avatar_url) == (
        "part one, two and three",
        "Alice",
        ALICE[1],
    )
    assert resent.webhook_id == new.id and webhook_creations(discord_fake) == 2

    # A file goes whole with a message resent, though the first try read it.
    discord_fake.webhook_routes.delete(new)
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    attached = discord.File(io.BytesIO(data), filename="avatar.png")
    sent = await sender.send(channel, "Avatar", name="Bot", avatar_url=None, file=attached)
    assert [a.data for a in fake_message(discord_fake, sent.id).attachments] == [data]


async def test_the_webhook_limit_falls_back_to_bold_names_with_one_notice(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    others = [discord_fake.webhook_routes.add(guild.text, f"hook {i}", member) for i in range(15)]
    bot = await start_bot(extensions=[])
    clock = FakeClock()
    sender = WebhookSender(bot, clock=clock)
    channel = text_channel(bot, guild.text)

    alice = await sender.send(channel, "Hi <@&1> @everyone", name="Alice", avatar_url=None)
    await alice.edit(content="Hi there @everyone")
    await sender.send(channel, "Hello", name="B*o*b", avatar_url=None)

    shown = [m.content for m in discord_fake.messages_in(guild.text)]
    assert len(shown) == 3 and "limit of webhooks" in shown[0]
    assert shown[1:] == ["**Alice**: Hi there @everyone", "**B\\*o\\*b**: Hello"]
    assert webhook_lookups(discord_fake) == 2  # one list, one refused creation: then no more
    requests = sends_and_edits(discord_fake)
    assert len(requests) == 4 and all(r.json["allowed_mentions"] == NO_PINGS for r in requests)

    # A while later, with room made, characters have their own names again; no new notice.
    discord_fake.webhook_routes.delete(others[0])
    clock.advance(RETRY_AFTER)
    spoken = await sender.send(channel, "Back", name="Alice", avatar_url=None)
    message = fake_message(discord_fake, spoken.id)
    assert (message.author.name, message.webhook_id is not None) == ("Alice", True)
    assert len(discord_fake.messages_in(guild.text)) == 4


async def test_the_servers_webhook_limit_falls_back_to_bold_names_with_one_notice(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    other = guild.add_text_channel("other")
    discord_fake.webhook_routes.guild_limit = 1  # Discord's 1000, all used
    discord_fake.webhook_routes.add(other, "hook", member)
    bot = await start_bot(extensions=[])
    sender = WebhookSender(bot)
    channel = text_channel(bot, guild.text)

    await sender.send(channel, "One", name="Alice", avatar_url=None)
    await sender.send(channel, "Two", name="Alice", avatar_url=None)

    shown = [m.content for m in discord_fake.messages_in(guild.text)]
    assert len(shown) == 3 and "This server has reached Discord's limit" in shown[0]
    assert shown[1:] == ["**Alice**: One", "**Alice**: Two"]
    assert webhook_lookups(discord_fake) == 2  # one list, one refused creation: then no more


async def test_characters_speak_in_their_channel_after_a_moderator_moves_the_webhook(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    bot = await start_bot(extensions=["cogs.roleplay"])
    sender = cast(Scenes, bot.get_cog("Scenes")).sender
    other = guild.add_text_channel("other")
    await discord_fake.wait_for(lambda: bot.get_channel(other.id))
    channel = text_channel(bot, guild.text)
    await sender.send(channel, "before", name="Alice", avatar_url=None)
    (webhook,) = discord_fake.webhooks.values()

    # WEBHOOKS_UPDATE comes for the channel it left, then for the one it went to.
    moved = asyncio.create_task(
        bot.wait_for("webhooks_update", check=lambda changed: changed.id == other.id)
    )
    discord_fake.webhook_routes.move(webhook, other)
    await moved
    spoken = await sender.send(channel, "after", name="Alice", avatar_url=None)

    message = fake_message(discord_fake, spoken.id)
    assert (message.channel_id, message.author.name) == (guild.text.id, "Alice")
    assert message.webhook_id not in (None, webhook.id)
    assert discord_fake.messages_in(other, from_bot=False) == [], "not even for a moment"


async def test_a_webhook_moved_unseen_is_replaced_and_its_stray_message_deleted(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    bot = await start_bot(extensions=[])
    sender = WebhookSender(bot)  # hears no WEBHOOKS_UPDATE, as after a missed one
    other = guild.add_text_channel("other")
    await discord_fake.wait_for(lambda: bot.get_channel(other.id))
    channel = text_channel(bot, guild.text)
    await sender.send(channel, "before", name="Alice", avatar_url=None)
    (webhook,) = discord_fake.webhooks.values()
    discord_fake.webhook_routes.move(webhook, other)

    spoken = await sender.send(channel, "after", name="Alice", avatar_url=None)

    message = fake_message(discord_fake, spoken.id)
    assert (message.channel_id, message.content) == (guild.text.id, "after")
    assert message.webhook_id not in (None, webhook.id)
    (stray,) = discord_fake.messages_in(other, from_bot=False)
    assert (stray.content, stray.deleted) == ("after", True)
    assert webhook_creations(discord_fake) == 2


@pytest.mark.parametrize("change", ["moved", "deleted"])
async def test_a_character_in_a_thread_speaks_once_after_its_webhook_went_unseen(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot, change: str
) -> None:
    """Sent to a thread of the channel it left, a moved webhook gets 404 10003 Unknown
    Channel (no stray message to take back, as in a channel): that raised, and the
    character's message was lost."""
    bot = await start_bot(extensions=[])
    sender = WebhookSender(bot)  # hears no WEBHOOKS_UPDATE, as after a missed one
    other = guild.add_text_channel("other")
    scene = guild.add_thread(guild.text, "scene", discord_fake.owner)
    await discord_fake.wait_for(lambda: bot.get_channel(other.id))
    thread = await eventually(lambda: bot.get_channel(scene.id))
    assert isinstance(thread, discord.Thread)
    await sender.send(thread, "before", name="Alice", avatar_url=None)
    (webhook,) = discord_fake.webhooks.values()
    if change == "moved":
        discord_fake.webhook_routes.move(webhook, other)
    else:
        discord_fake.webhook_routes.delete(webhook)

    spoken = await sender.send(thread, "after", name="Alice", avatar_url=None)
    await spoken.edit(content="after, and more")

    message = fake_message(discord_fake, spoken.id)
    assert (message.channel_id, message.author.name) == (scene.id, "Alice")
    assert message.webhook_id not in (None, webhook.id)
    shown = [m.content for m in discord_fake.messages_in(scene, from_bot=False)]
    assert shown == ["before", "after, and more"], "delivered once"
    assert discord_fake.messages_in(other, from_bot=False) == []
    assert webhook_creations(discord_fake) == 2


@pytest.mark.parametrize("where", ["channel", "thread"])
async def test_a_streamed_reply_continues_whole_in_its_channel_after_its_webhook_is_moved(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot, where: str
) -> None:
    """Once its webhook is moved to another channel, Discord finds the reply's message no
    more (10008 in a channel, 10003 in a thread): the reply was cut off, its message left
    showing the writing marker."""
    bot = await start_bot(extensions=[])
    sender = WebhookSender(bot)  # hears no WEBHOOKS_UPDATE, as after a missed one
    other = guild.add_text_channel("other")
    await discord_fake.wait_for(lambda: bot.get_channel(other.id))
    target = guild.text
    channel: discord.abc.Messageable = text_channel(bot, guild.text)
    if where == "thread":
        target = guild.add_thread(guild.text, "scene", discord_fake.owner)
        channel = await eventually(lambda: bot.get_channel(target.id))
    assert isinstance(channel, discord.TextChannel | discord.Thread)
    words = [f"word{i}" for i in range(6)]

    async def pieces() -> AsyncIterator[str]:
        for index, word in enumerate(words):
            if index == 2:  # a moderator moves the webhook while the reply is written
                (webhook,) = discord_fake.webhooks.values()
                discord_fake.webhook_routes.move(webhook, other)
            yield word + " "

    recorded: list[str | None] = []

    async def record(shown: str, incomplete: str | None, message_ids: list[int]) -> None:
        recorded.append(incomplete)

    sink = Speaking(sender, channel, *ALICE)
    (sent,) = await stream_reply(pieces(), sink, record, interval=0, limit=TEXT_LIMIT)

    message = fake_message(discord_fake, sent.id)
    assert (message.channel_id, message.content) == (target.id, " ".join(words))
    assert (message.author.name, message.avatar_url) == ALICE
    assert recorded[-1] is None, "stored whole, not cut off"
    first, *_ = discord_fake.messages_in(target, from_bot=False)
    assert first.id != message.id and first.deleted, "the part its old webhook left goes"
    assert discord_fake.messages_in(other, from_bot=False) == []
    assert webhook_creations(discord_fake) == 2


async def test_a_characters_message_deleted_while_streamed_is_not_sent_again(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    """Discord answers its edit 10008 as for a webhook moved away; but the webhook is still
    the channel's: a moderator deleted the message, and the reply stays cut off."""
    bot = await start_bot(extensions=[])
    sender = WebhookSender(bot)
    spoken = await sender.send(
        text_channel(bot, guild.text), "part one", name="Alice", avatar_url=None
    )
    discord_fake._delete_message(fake_message(discord_fake, spoken.id))

    with pytest.raises(discord.NotFound):
        await spoken.edit(content="part one and two")
    assert len(discord_fake.messages_in(guild.text, from_bot=False)) == 1
    assert webhook_creations(discord_fake) == 1


async def test_without_manage_webhooks_characters_speak_as_the_bot_with_one_notice(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    guild.add_member(discord_fake.bot_user, permissions=BASIC)
    bot = await start_bot(extensions=[])
    clock = FakeClock()
    sender = WebhookSender(bot, clock=clock)
    channel = text_channel(bot, guild.text)

    await sender.send(channel, "One", name="Alice", avatar_url=None)
    clock.advance(RETRY_AFTER)  # tried again: still refused, and not announced again
    await sender.send(channel, "Two", name="Alice", avatar_url=None)

    shown = [m.content for m in discord_fake.messages_in(guild.text)]
    assert len(shown) == 3 and "Manage Webhooks" in shown[0]
    assert shown[1:] == ["**Alice**: One", "**Alice**: Two"]
    assert webhook_lookups(discord_fake) == 2 and not discord_fake.webhooks

    guild.add_member(discord_fake.bot_user, permissions=ADMIN)
    await eventually(lambda: channel.permissions_for(channel.guild.me).manage_webhooks)
    clock.advance(RETRY_AFTER)
    spoken = await sender.send(channel, "Three", name="Alice", avatar_url=None)
    assert fake_message(discord_fake, spoken.id).author.name == "Alice"
    assert len(discord_fake.webhooks) == 1


async def test_the_webhook_made_before_a_restart_is_used_again(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    # Someone else's webhook with our name is not ours.
    discord_fake.webhook_routes.add(guild.text, WEBHOOK_NAME, member)
    settings = make_settings()
    bot = await start_bot(settings, extensions=[])
    before = await WebhookSender(bot).send(
        text_channel(bot, guild.text), "before", name="Alice", avatar_url=None
    )
    webhook_id = fake_message(discord_fake, before.id).webhook_id
    await bot.close()

    bot = await start_bot(settings, extensions=[])
    after = await WebhookSender(bot).send(
        text_channel(bot, guild.text), "after", name="Alice", avatar_url=None
    )
    assert fake_message(discord_fake, after.id).webhook_id == webhook_id
    assert webhook_creations(discord_fake) == 1 and len(discord_fake.webhooks) == 2


async def test_a_rate_limited_send_is_retried_by_discord_py(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    bot = await start_bot(extensions=[])
    sender = WebhookSender(bot)
    channel = text_channel(bot, guild.text)
    discord_fake.webhook_routes.rate_limit(times=2)

    spoken = await sender.send(channel, "patience", name="Alice", avatar_url=None)

    assert fake_message(discord_fake, spoken.id).content == "patience"
    assert len(executes(discord_fake)) == 3  # two 429s, then the message
    assert len(discord_fake.messages_in(guild.text)) == 1


async def test_characters_replies_left_writing_by_a_crash_are_finalised_at_the_next_start(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    settings = ai_settings()
    bot = await start_bot(settings, extensions=[])
    sender = WebhookSender(bot)
    scene = guild.add_thread(guild.text, "scene", discord_fake.owner)
    thread = await eventually(lambda: bot.get_channel(scene.id))
    assert isinstance(thread, discord.Thread)
    other = guild.add_text_channel("other")
    elsewhere = await eventually(lambda: bot.get_channel(other.id))
    assert isinstance(elsewhere, discord.TextChannel)
    # Replies a crash left being written: in a channel, in a thread (through its parent's
    # webhook), and where someone deleted the webhook while the bot was down.
    left = []
    for channel, name in (
        (text_channel(bot, guild.text), "Alice"),
        (thread, "Bob"),
        (elsewhere, "Cy"),
    ):
        spoken = await sender.send(
            channel, f"{name} was saying" + WRITING_MARKER, name=name, avatar_url=None
        )
        turn = Turn(
            "model", discord_fake.bot_user.id, name, f"{name} was saying", spoken.id, WRITING
        )
        await bot.chats.add_turns(guild.id, channel.id, [turn])
        left.append(fake_message(discord_fake, spoken.id))
    await bot.close()
    discord_fake.webhook_routes.delete(discord_fake.webhooks[left[2].webhook_id])

    bot = await start_bot(settings, extensions=["cogs.ai"])
    alice, bob, cy = left
    await eventually(lambda: alice.content, equals="Alice was saying" + RESTART_NOTE)
    await eventually(lambda: bob.content, equals="Bob was saying" + RESTART_NOTE)
    assert alice.allowed_mentions == bob.allowed_mentions == NO_PINGS
    edits = [r for r in discord_fake.requests if r.method == "PATCH" and "/messages/" in r.path]
    assert [r.path.startswith("/webhooks/") for r in edits] == [True, True]
    assert edits[1].query["thread_id"] == str(scene.id)
    assert cy.content == "Cy was saying" + WRITING_MARKER, "a deleted webhook edits nothing"
    assert webhook_creations(discord_fake) == 2  # nor is made again: a new one could not
    # The history marks all three cut off by the restart.
    await eventually(lambda: bot.chats.unfinished(10, lambda _: True), equals=[])
    for channel_id, name in ((guild.text.id, "Alice"), (scene.id, "Bob"), (other.id, "Cy")):
        turns = await bot.chats.turns(channel_id)
        assert [(t.content, t.incomplete) for t in turns] == [(f"{name} was saying", RESTART)]


async def test_a_character_mentioning_the_bot_is_not_answered(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.default = lambda request: "ok " + request.last_user_text.rsplit(": ", 1)[-1]
    bot = await start_bot(ai_settings())
    interaction = await discord_fake.invoke_slash(
        guild.text, discord_fake.owner, "ai", {"mode": "on"}, subcommand="autorespond"
    )
    await discord_fake.answer(interaction)  # the bot now answers everything said here
    before = len(discord_fake.messages_in(guild.text))
    sender = WebhookSender(bot)

    spoken = await sender.send(
        text_channel(bot, guild.text),
        f"<@{discord_fake.bot_user.id}> what do you think?",
        name="Alice",
        avatar_url=None,
    )
    await discord_fake.send_message(guild.text, member, "hello")
    reply = await discord_fake.wait_for_message(
        guild.text,
        after=before,
        predicate=lambda m: m.webhook_id is None and not m.content.endswith("⌛"),
    )

    assert reply.content == "ok hello"
    assert len(gemini_fake.requests) == 1
    assert [m.id for m in discord_fake.messages_in(guild.text)[before:]] == [spoken.id, reply.id]
