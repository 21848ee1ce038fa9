"""The AI's admission limits: what a person is told when a limit refuses them."""

from __future__ import annotations

from cogs.ai.admission import Admission
from config import Settings
from tests.fakes.clock import FakeClock
from utils.metrics import Metrics
from utils.reliability.rate_limiter import RateLimiter

ALICE, BOB, CHANNEL = 1, 2, 10


def admission(clock: FakeClock, *, per_user: int, per_channel: int) -> Admission:
    settings = Settings.model_construct()  # the defaults, read from no environment
    limits = Admission(settings, Metrics())
    limits.user_limits = RateLimiter(per_user, 60, clock=clock)
    limits.channel_limits = RateLimiter(per_channel, 60, clock=clock)
    return limits


def test_a_wait_under_a_second_says_one_second_not_zero() -> None:
    clock = FakeClock()
    limits = admission(clock, per_user=1, per_channel=100)
    assert limits.check("hi", ALICE, CHANNEL) is None
    clock.advance(59.7)  # 0.3 s before the next message is allowed
    refused = limits.check("again", ALICE, CHANNEL)
    assert refused == (
        ("rate", ALICE),
        "You're sending messages faster than I can answer; try again in 1 s.",
    )


def test_a_full_channel_does_not_blame_the_person_who_wrote_once() -> None:
    clock = FakeClock()
    limits = admission(clock, per_user=5, per_channel=1)
    assert limits.check("hi", ALICE, CHANNEL) is None
    refused = limits.check("hello", BOB, CHANNEL)
    assert refused == (
        ("rate", BOB),
        "Messages here are coming faster than I can answer; try again in 60 s.",
    )


async def test_a_flood_of_too_long_messages_gets_one_notice_a_while() -> None:
    limits = admission(FakeClock(), per_user=100, per_channel=100)
    sent: list[str] = []

    async def send(text: str, **_: object) -> None:
        sent.append(text)

    for _ in range(3):
        refused = limits.check("x" * (limits.max_input_chars + 1), ALICE, CHANNEL)
        assert refused is not None
        key, text = refused
        await limits.notice(key, send, text)
    assert len(sent) == 1 and sent[0].startswith("That message is too long for me")


def test_a_message_refunded_counts_against_no_limit() -> None:
    limits = admission(FakeClock(), per_user=1, per_channel=1)
    assert limits.check("hi", ALICE, CHANNEL) is None
    limits.refund(ALICE, CHANNEL)  # refused after all (a full queue, files that failed)
    assert limits.check("hi again", ALICE, CHANNEL) is None
    assert limits.check("and again", ALICE, CHANNEL) is not None
    limits.refund(BOB, CHANNEL + 1)  # nothing taken: nothing given
    assert limits.check("hello", BOB, CHANNEL + 1) is None
    assert limits.check("hello again", BOB, CHANNEL + 1) is not None
