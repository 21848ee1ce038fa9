"""Reading a link the person wrote as people write links, through the real bot, discord.py
and google-genai against the fakes."""

from __future__ import annotations

from collections.abc import Callable

from config import Settings
from tests.conftest import StartBot
from tests.e2e.test_ai_tools import answer, chats, subrequests
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini


async def test_a_link_written_without_its_scheme_is_read_as_https(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """ "what is blog.example/post about?": the model passes the link as it was written."""
    gemini_fake.reply_function_calls([("read_link", {"url": "blog.example/post"})])
    gemini_fake.reply("A post about kites.", url_context=["https://blog.example/post"])
    gemini_fake.reply("It is about kites.")
    await start_bot(ai_settings())
    reply = await answer(discord_fake, guild.text, member, "what is blog.example/post about?")

    (read,) = subrequests(gemini_fake)
    assert read.last_user_text.startswith("https://blog.example/post\n\n")
    assert chats(gemini_fake)[1].function_responses[-1] == (
        "read_link",
        {"page_says": "A post about kites."},
    )
    assert reply.content.startswith("It is about kites.")
