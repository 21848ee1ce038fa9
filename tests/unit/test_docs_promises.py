"""What README.md and .env.example promise about settings, checked against config.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config import ConfigError, Settings, describe_error, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.mark.parametrize("typed", ["Pirate", "PIRATE", " pirate "])
def test_the_default_persona_is_named_in_any_letter_case_as_persona_set_takes_it(
    typed: str,
) -> None:
    """`AI_DEFAULT_PERSONA=Pirate` (the list shows **Captain Byte** as `pirate`, and
    `/ai persona set Pirate` works) matched no persona and was ignored without a word."""
    settings = Settings(_env_file=None, discord_token="t", ai_default_persona=typed)  # pyright: ignore[reportCallIssue]
    assert settings.ai_default_persona == "pirate"


@pytest.mark.parametrize("typed", ["Captain Byte", "pirate.md", "../pirate"])
def test_a_default_persona_no_file_can_be_named_is_refused_by_name(typed: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, discord_token="t", ai_default_persona=typed)  # pyright: ignore[reportCallIssue]
    line = describe_error(info.value)
    assert line.startswith("Configuration error: AI_DEFAULT_PERSONA: must be a persona's name")


def test_a_setting_misspelt_in_dotenv_is_named_in_the_line_that_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: a name in `.env` that is no setting is named at start. With the token's
    name misspelt, the start stopped first, saying only that DISCORD_TOKEN was not set."""
    (tmp_path / ".env").write_text("DISCORD_TOKN=hush-hush-secret\nlog_levl=debug\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        "Configuration error: DISCORD_TOKEN is required but not set (see .env.example);"
        " .env also sets DISCORD_TOKN, LOG_LEVL, which no setting is named"
    )


@pytest.mark.parametrize(
    "typed", ["nas.lan:8096", "http://nas.lan", "nas.lan/media", "me:hush-hush@nas.lan"]
)
def test_an_allowed_host_written_as_more_than_a_name_is_refused_by_name(typed: str) -> None:
    """`.env.example` asks for host names (nas.lan). With a port or a scheme the entry
    matched no link's host: every link to that server was refused as private, unexplained."""
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, discord_token="t", music_allowed_hosts=f"ok.lan,{typed}")  # pyright: ignore[reportCallIssue]
    assert describe_error(info.value) == (
        "Configuration error: MUSIC_ALLOWED_HOSTS: entry 2 is not a host name; write the"
        " name alone, like nas.lan (no scheme, port, login or path) (see .env.example)"
    )


def test_allowed_hosts_are_read_as_links_spell_their_hosts() -> None:
    hosts = "NAS.lan., 192.168.1.10, [fd00::1], fd00::2"
    settings = Settings(_env_file=None, discord_token="t", music_allowed_hosts=hosts)  # pyright: ignore[reportCallIssue]
    assert settings.music_allowed_hosts == ("nas.lan", "192.168.1.10", "fd00::1", "fd00::2")


@pytest.mark.parametrize("typed", ["ytsearch:", "YouTube", "yt search"])
def test_a_search_prefix_yt_dlp_has_not_is_refused_in_words_not_a_pattern(typed: str) -> None:
    """A bad setting stops the start with one clear line: not pydantic's
    "String should match pattern '^[a-z][a-z0-9_]*$'" for `ytsearch:` as yt-dlp writes it."""
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, discord_token="t", music_search_prefix=typed)  # pyright: ignore[reportCallIssue]
    assert describe_error(info.value) == (
        "Configuration error: MUSIC_SEARCH_PREFIX: must be a yt-dlp search name such as"
        " ytsearch or scsearch (lower-case letters, digits and _, without the colon)"
        " (see .env.example)"
    )
