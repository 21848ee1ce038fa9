"""The fake Discord's REST answers carry Discord's rate-limit headers."""

from __future__ import annotations

import aiohttp

from tests.fakes.discord_rest import RATE_LIMIT
from tests.fakes.discord_server import API, FakeDiscord


async def test_every_api_answer_names_its_bucket_and_leaves_room(discord_fake: FakeDiscord):
    guild = discord_fake.add_guild("Home")
    headers = {"Authorization": "Bot fake-token"}
    async with aiohttp.ClientSession(discord_fake.url + API + "/", headers=headers) as http:

        async def bucket(method: str, path: str, status: int = 200) -> str:
            async with http.request(method, path, json={"content": "hi"}) as response:
                assert response.status == status
                assert int(response.headers["X-RateLimit-Limit"]) == RATE_LIMIT
                assert 0 < int(response.headers["X-RateLimit-Remaining"]) < RATE_LIMIT
                assert float(response.headers["X-RateLimit-Reset-After"]) > 0
                return response.headers["X-RateLimit-Bucket"]

        me = await bucket("GET", "users/@me")
        assert await bucket("GET", "users/@me") == me
        post = await bucket("POST", f"channels/{guild.text.id}/messages")
        assert post != me
        # Errors carry them too, as on Discord.
        assert await bucket("GET", f"channels/{guild.text.id}/messages/1", 404)
