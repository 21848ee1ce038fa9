"""The health endpoint alone, without a bot process: how it names where it listens."""

from __future__ import annotations

import logging
import socket
from types import SimpleNamespace
from typing import Any, cast

import pytest

from utils.health import HealthServer
from utils.metrics import Metrics


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
async def test_an_ipv6_host_is_logged_as_a_url_that_can_be_opened(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """HEALTH_HOST=::1 logged "http://::1:9464/", which no browser or curl can open."""
    caplog.set_level(logging.INFO, logger="utils.health")
    bot = cast(Any, SimpleNamespace(metrics=Metrics()))
    server = HealthServer(bot, host="::1", port=0, max_lag=5.0)
    await server.start()
    try:
        assert f"health and metrics on http://[::1]:{server.port}/" in caplog.text
    finally:
        await server.close()
