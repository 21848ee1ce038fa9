"""Channel webhooks of the fake Discord: listing, creating, deleting and executing them.

As on Discord: listing and creating need MANAGE_WEBHOOKS (403 50013), a channel holds
at most 15 webhooks (400 30007) and a guild ``guild_limit`` (400 30058; Discord's is
1000), a deleted webhook answers 10015, an execute names a thread of the webhook's
channel with ``thread_id`` (another channel's thread, or a deleted one: 404 10003 Unknown
Channel, as for a webhook moved away from a thread's parent; editing a message in a
thread needs it too, else 10008; a message in the channel a webhook was moved away
from is not found, 10008),
and webhook usernames must be 1-80 characters without "clyde" or "discord", and not
"everyone", "here" or "system message" (400 50035).
Tests act as other people: :meth:`add` (a webhook someone else made), :meth:`delete`
(someone deletes ours), :meth:`move` (a moderator moves one to another channel),
:meth:`rate_limit` (the next executes are answered 429, with the ``Via`` header
Discord's edge sends) and :meth:`stall` (a channel's listing answers only once the
test says so).
The gateway hears WEBHOOKS_UPDATE after each change (for both channels of a move).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING

import discord
from aiohttp import web

from tests.fakes.discord_models import FakeChannel, FakeMessage, FakeUser, FakeWebhook
from tests.fakes.discord_rest import (
    ApiError,
    Handler,
    invalid_form_body,
    json_response,
    missing_permissions,
    path_id,
    request_body,
)

if TYPE_CHECKING:
    from tests.fakes.discord_server import FakeDiscord

MANAGE_WEBHOOKS = discord.Permissions(manage_webhooks=True).value
WEBHOOKS_INTENT = discord.Intents(webhooks=True).value
MAX_WEBHOOKS = 15
MAX_GUILD_WEBHOOKS = 1000
_FORBIDDEN_NAME = re.compile("clyde|discord", re.IGNORECASE)
_RESERVED_NAMES = {"everyone", "here", "system message"}


class WebhookRoutes:
    """The channel webhook routes of a :class:`FakeDiscord` (see the module docstring)."""

    def __init__(self, fake: FakeDiscord) -> None:
        self._fake = fake
        self._rate_limited: list[float] = []
        """``retry_after`` of each coming execute to answer 429."""
        self._stalled: dict[int, asyncio.Event] = {}
        self.guild_limit = MAX_GUILD_WEBHOOKS
        """Webhooks a guild may hold; a test lowers it rather than make a thousand."""

    def routes(self) -> list[tuple[str, str, Handler]]:
        channel = r"/channels/{channel_id:\d+}"
        return [
            ("GET", channel + "/webhooks", self._list),
            ("POST", channel + "/webhooks", self._create),
        ]

    # Acting as other people -------------------------------------------------

    def add(self, channel: FakeChannel, name: str, creator: FakeUser) -> FakeWebhook:
        """A webhook ``creator`` made in ``channel`` (no limit or permission applies)."""
        assert channel.guild_id is not None
        webhook_id = self._fake._new_id()
        webhook = FakeWebhook(
            webhook_id, f"webhook-token-{webhook_id}", channel.id, channel.guild_id, name, creator
        )
        self._fake.webhooks[webhook.id] = webhook
        self._changed(webhook)
        return webhook

    def delete(self, webhook: FakeWebhook) -> None:
        """Someone deletes ``webhook``; its messages stay, as on Discord."""
        del self._fake.webhooks[webhook.id]
        self._changed(webhook)

    def move(self, webhook: FakeWebhook, channel: FakeChannel) -> None:
        """A moderator moves ``webhook`` to ``channel`` (PATCH /webhooks/{id} with
        ``channel_id``); both channels' WEBHOOKS_UPDATE follow, as on Discord."""
        old = self._fake._channel(webhook.channel_id)
        webhook.channel_id = channel.id
        self._changed(webhook, old)
        self._changed(webhook)

    def rate_limit(self, times: int = 1, retry_after: float = 0.05) -> None:
        """Answer the next ``times`` webhook executes 429 (retry after ``retry_after`` s)."""
        self._rate_limited.extend([retry_after] * times)

    def stall(self, channel: FakeChannel) -> asyncio.Event:
        """Hold listings of ``channel``'s webhooks until the event returned is set."""
        release = self._stalled[channel.id] = asyncio.Event()
        return release

    # Used by the execute and message routes ---------------------------------

    def throttled(self) -> web.Response | None:
        """A 429 for this execute, if the test asked for one."""
        if not self._rate_limited:
            return None
        retry_after = self._rate_limited.pop(0)
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": False,
        }
        headers = {
            "Content-Type": "application/json",
            "Via": "1.1 google",
            "Retry-After": str(retry_after),
            "X-RateLimit-Scope": "shared",
        }
        return web.Response(body=json.dumps(body).encode(), status=429, headers=headers)

    def execute_target(self, webhook: FakeWebhook, request: web.Request) -> FakeChannel:
        """Where an execute posts (the webhook's channel or ``thread_id``), once its
        username passed Discord's rules."""
        username = request_body(request).payload.get("username")
        if username is not None and (
            not 1 <= len(username.strip()) <= 80
            or _FORBIDDEN_NAME.search(username)
            or username.strip().lower() in _RESERVED_NAMES
        ):
            raise invalid_form_body()
        channel = self._fake._channel(webhook.channel_id)
        thread_id = request.query.get("thread_id")
        if thread_id is None:
            return channel
        thread = self._fake._channel(int(thread_id))
        if not thread.is_thread or thread.parent_id != channel.id:
            raise ApiError(404, "Unknown Channel", 10003)
        return thread

    def check_thread(
        self, webhook: FakeWebhook, message: FakeMessage, request: web.Request
    ) -> None:
        """A message a webhook sent in a thread is found only with that ``thread_id``,
        which must name a thread of the webhook's channel, as for an execute (10003)."""
        in_thread = message.channel_id != webhook.channel_id
        wanted = request.query.get("thread_id")
        if wanted is not None:
            thread = self._fake._channel(int(wanted))
            if not thread.is_thread or thread.parent_id != webhook.channel_id:
                raise ApiError(404, "Unknown Channel", 10003)
        if (str(message.channel_id) if in_thread else None) != wanted:
            raise ApiError(404, "Unknown Message", 10008)

    # Routes -----------------------------------------------------------------

    def _channel(self, request: web.Request) -> FakeChannel:
        """The channel addressed, if the bot may manage its webhooks."""
        channel = self._fake._channel(path_id(request, "channel_id"))
        if channel.guild_id is None:
            raise ApiError(400, "Cannot execute action on a DM channel", 50003)
        if channel.is_thread:
            raise ApiError(400, "Cannot execute action on this channel type", 50024)
        guild = self._fake._guild(channel.guild_id)
        if not guild.permissions_for(self._fake.bot_user.id) & MANAGE_WEBHOOKS:
            raise missing_permissions()
        return channel

    async def _list(self, request: web.Request) -> web.StreamResponse:
        channel = self._channel(request)
        if (release := self._stalled.get(channel.id)) is not None:
            await release.wait()
        return json_response([w.to_payload() for w in self._in(channel)])

    async def _create(self, request: web.Request) -> web.StreamResponse:
        channel = self._channel(request)
        if len(self._in(channel)) >= MAX_WEBHOOKS:
            raise ApiError(400, f"Maximum number of webhooks reached ({MAX_WEBHOOKS})", 30007)
        in_guild = [w for w in self._fake.webhooks.values() if w.guild_id == channel.guild_id]
        if len(in_guild) >= self.guild_limit:
            message = f"Maximum number of webhooks per guild reached ({self.guild_limit})"
            raise ApiError(400, message, 30058)
        name = request_body(request).payload.get("name") or "Webhook"
        if _FORBIDDEN_NAME.search(name) or len(name) > 80:
            raise invalid_form_body()
        return json_response(self.add(channel, name, self._fake.bot_user).to_payload())

    def _in(self, channel: FakeChannel) -> list[FakeWebhook]:
        return [w for w in self._fake.webhooks.values() if w.channel_id == channel.id]

    def _changed(self, webhook: FakeWebhook, channel: FakeChannel | None = None) -> None:
        """WEBHOOKS_UPDATE for ``channel``, else for the webhook's channel."""
        channel_id = webhook.channel_id if channel is None else channel.id
        data = {"guild_id": str(webhook.guild_id), "channel_id": str(channel_id)}
        self._fake._gateway.emit("WEBHOOKS_UPDATE", data, intent=WEBHOOKS_INTENT)
