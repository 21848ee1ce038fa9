"""What the music end-to-end tests share: `World`, the fakes of one test with shortcuts to
act in them (the `world` fixture, tests/e2e/conftest.py), and helpers to read what played
and what was saved."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot import Bot
from cogs.music.store import MusicStore
from config import Settings
from tests.conftest import StartBot
from tests.fakes.discord_server import (
    FakeDiscord,
    FakeGuild,
    FakeInteraction,
    FakeMessage,
    FakeUser,
)
from tests.fakes.media_server import FakeMediaServer
from tests.fakes.voice_server import FakeVoiceServer, VoiceFrame, runs, tone_frequency

FRAMES_PER_SECOND = 50


@dataclass
class World:
    """The fakes of one test and shortcuts to act in them."""

    discord: FakeDiscord
    guild: FakeGuild
    member: FakeUser
    voice: FakeVoiceServer
    media: FakeMediaServer
    start_bot: StartBot
    settings: Callable[..., Settings]

    async def start(self, settings: Settings | None = None, **overrides: Any) -> Bot:
        bot = await self.start_bot(settings or self.settings(**overrides))
        if self.discord.voice_channel_of(self.member, self.guild) is None:
            await self.discord.join_voice(self.member, self.guild.voice)
        return bot

    async def slash(self, name: str, user: FakeUser | None = None, **options: Any) -> str:
        """Run a slash command and return the bot's reply (ephemeral ones included)."""
        interaction = await self.discord.invoke_slash(
            self.guild.text, user or self.member, name, options
        )
        return await self.reply(interaction)

    async def reply(self, interaction: FakeInteraction, within: float = 10) -> str:
        await interaction.wait_response(within)

        def answered() -> FakeMessage | None:
            message = interaction.original
            return message if message is not None and not message.loading else None

        message = await self.discord.wait_for(answered, within)
        return message.content

    def frames(self, *, audio_only: bool = True) -> list[VoiceFrame]:
        return self.discord.voice_frames(self.guild, audio_only=audio_only)

    def played(self) -> list[list[VoiceFrame]]:
        """Runs of audio between the silences the bot sends at each track end or pause."""
        return runs(self.frames(audio_only=False))

    async def wait_frames(self, count: int, within: float = 10) -> None:
        await self.discord.wait_for(lambda: len(self.frames()) >= count, within)

    async def wait_paused(self) -> int:
        """Wait for the silence a pausing player sends before it blocks; the audio frames
        played so far (no more can come until it is resumed)."""
        await self.discord.wait_for(lambda: (f := self.frames(audio_only=False)) and f[-1].silence)
        return len(self.frames())

    async def wait_message(self, text: str, within: float = 10) -> FakeMessage:
        return await self.discord.wait_for_message(
            self.guild.text, predicate=lambda m: text in m.content, timeout=within
        )

    async def now_playing(self, within: float = 10) -> FakeMessage:
        def find() -> FakeMessage | None:
            for message in reversed(self.discord.messages_in(self.guild.text)):
                if not message.deleted and message.embeds and message.components:
                    return message
            return None

        return await self.discord.wait_for(find, within)

    async def press(
        self, message: FakeMessage, action: str, user: FakeUser | None = None
    ) -> FakeInteraction:
        """Press a now-playing button (``toggle``, ``skip``, ``stop``, ``loop``, ``shuffle``)."""
        return await self.discord.click_button(
            message, button(message, action), user or self.member
        )


def button(message: FakeMessage, action: str) -> str:
    """The custom id of a now-playing button: ``music:<action>:<play id>``."""
    for row in message.components:
        for component in row.get("components", []):
            if component.get("custom_id", "").startswith(f"music:{action}:"):
                return component["custom_id"]
    raise AssertionError(f"message {message.id} has no {action} button: {message.components}")


def pitch(frames: list[VoiceFrame]) -> float:
    return tone_frequency(frames[2:-2] if len(frames) > 10 else frames)


async def saved_queue(bot: Bot) -> list[str] | None:
    """The titles of the saved session (current first), or None if none is saved."""
    sessions = await MusicStore(bot.db).load_all()
    if not sessions:
        return None
    (session,) = sessions
    tracks = [session.current] if session.current else []
    return [track.title for track in tracks + session.upcoming]
