"""Settings: every option the bot reads from the environment and `.env`, validated.

`.env.example` documents each option; keep the two in step.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, DotEnvSettingsSource, NoDecode, SettingsConfigDict

from utils.ytdlp_args import ExtractorArgsSetting

MAX_SHARDS = 100_000
_SHARD_RANGE = re.compile(r"(\d+)(?:-(\d+))?")  # a shard id, or a range of them: 0-3
_MODEL_NAME = re.compile(r"[\w.\-/:@]+")  # gemini-2.5-flash, models/gemini-2.5-pro, ...
_MAX_MODEL_NAME = 100
"""Characters of a model name: Discord's limit for a choice of a slash command option."""
_SEARCH_PREFIX = re.compile(r"[a-z][a-z0-9_]*")  # yt-dlp's ytsearch, scsearch, ...
_PERSONA_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")  # a persona file's name (cogs/ai/personas)


def prefix_problem(prefix: str) -> str | None:
    """What is wrong with ``prefix`` as a command prefix ("A prefix ..."), or None.

    Invisible characters (zero-width, controls, NUL) make a prefix nobody can see or type
    (NUL is also stored differently by SQLite and PostgreSQL); @ < > read as mentions and
    ` \\ break the code spans that show the prefix in help and replies.
    """
    if not 1 <= len(prefix) <= 5:
        return "must be 1 to 5 characters"
    if not prefix.isprintable() or any(ch.isspace() or ch in "@<>`\\" for ch in prefix):
        return "can't contain spaces, invisible characters, mentions or the characters @ < > ` \\"
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _split_csv(value: object) -> object:
    """Accept `a,b,c` for list-valued settings, as people write them in `.env`."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, int):
        return [value]
    return value


class Settings(BaseSettings):
    """The bot's configuration. Field names are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=False,
        allow_inf_nan=False,  # `inf` as a timeout or interval breaks what it reaches
        # A key pasted with a newline (a secret file, `docker --env-file`) is the key; in an
        # HTTP header the newline failed every request.
        str_strip_whitespace=True,
    )

    # Discord
    discord_token: SecretStr = Field(min_length=1)
    command_prefix: str = "!"
    owner_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    dev_guild_id: int | None = Field(default=None, gt=0, lt=2**64)  # a Discord id

    # Storage and logs
    data_dir: Path = Path("data")
    # Empty: SQLite in DATA_DIR. postgresql://user:password@host:port/db for several
    # processes or machines (see README, "Running on more than one machine").
    database_url: SecretStr | None = None
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_timeout: float = Field(default=10.0, gt=0, le=300)

    # Sharding: SHARD_COUNT shards in all, SHARD_IDS the ones this process runs
    # ("0-3", "4,5"); unset: Discord's recommended count, all in this process.
    shard_count: int | None = Field(default=None, ge=1, le=MAX_SHARDS)
    shard_ids: Annotated[tuple[int, ...] | None, NoDecode] = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    # Backups and data retention
    backup_interval_hours: float = Field(default=24.0, ge=0)
    backup_keep: int = Field(default=7, ge=1, le=1000)
    data_retention_grace_days: float = Field(default=7.0, ge=0)

    # Gemini
    gemini_api_key: SecretStr | None = Field(default=None, min_length=1)
    gemini_model: str = Field(default="gemini-2.5-flash", min_length=1)
    gemini_fallback_models: Annotated[tuple[str, ...], NoDecode] = ()
    # What `/ai model` may choose besides GEMINI_MODEL and the fallbacks: the owner pays.
    gemini_allowed_models: Annotated[tuple[str, ...], NoDecode] = ()
    gemini_base_url: str | None = None
    gemini_timeout: float = Field(default=60.0, gt=0)
    gemini_max_retries: int = Field(default=3, ge=0, le=10)

    # AI chat behaviour
    ai_dm_enabled: bool = True
    ai_max_concurrency: int = Field(default=8, ge=1)
    ai_channel_queue_size: int = Field(default=5, ge=1)
    ai_user_messages_per_minute: int = Field(default=6, ge=1)
    ai_channel_messages_per_minute: int = Field(default=20, ge=1)
    ai_context_tokens: int = Field(default=6000, ge=500)
    ai_history_limit: int = Field(default=500, ge=10, le=1_000_000)  # a query parameter
    ai_max_input_chars: int = Field(default=4000, ge=100)
    ai_max_attachment_bytes: int = Field(default=8_000_000, ge=1)
    ai_edit_interval: float = Field(default=1.0, gt=0)
    ai_reply_deadline: float = Field(default=45.0, gt=0)
    ai_breaker_threshold: int = Field(default=5, ge=1)
    ai_breaker_reset: float = Field(default=30.0, gt=0)
    ai_default_persona: str = "default"
    ai_tools_enabled: bool = True
    ai_max_tool_rounds: int = Field(default=5, ge=1, le=20)
    ai_tool_timeout: float = Field(default=60.0, gt=0)

    # Long-term memory
    memory_enabled: bool = True
    embedding_model: str = Field(default="all-MiniLM-L6-v2", min_length=1)
    memory_top_k: int = Field(default=40, ge=1, le=100)
    memory_context_tokens: int = Field(default=1200, ge=50)
    memory_chunk_turns: int = Field(default=6, ge=2, le=50)
    memory_consolidation_minutes: float = Field(default=30.0, ge=0)
    memory_model_wait: float = Field(default=1.5, ge=0, le=10)

    # Spotify
    spotipy_client_id: str | None = None
    spotipy_client_secret: SecretStr | None = None

    # Music
    music_queue_limit: int = Field(default=500, ge=1, le=10_000)
    music_playlist_limit: int = Field(default=100, ge=1, le=1000)
    music_max_queued_per_member: int = Field(default=100, ge=0, le=10_000)
    music_search_prefix: str = "ytsearch"
    music_allow_private_urls: bool = False
    music_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    music_resolve_timeout: float = Field(default=30.0, gt=0)
    music_idle_timeout: float = Field(default=300.0, gt=0)
    music_alone_timeout: float = Field(default=60.0, gt=0)
    music_resume_on_start: bool = True
    music_default_volume: int = Field(default=100, ge=0, le=200)
    music_ffmpeg: str = "ffmpeg"
    # Music: seek, filters, moving progress bar
    music_progress_interval: float = Field(default=15.0, ge=1.0, le=3600.0)
    # Music: YouTube's bot check, voice recovery
    music_ytdlp_cookies: Path | None = None
    music_ytdlp_extractor_args: ExtractorArgsSetting = None
    music_voice_reconnects: int = Field(default=3, ge=0, le=10)
    music_voice_reconnect_wait: float = Field(default=5.0, gt=0, le=120)

    # Roleplay
    rp_max_characters: int = Field(default=50, ge=1, le=1000)
    rp_max_scene_turns: int = Field(default=500, ge=1, le=100_000)

    # Health and metrics endpoint (off without a port; 0 picks a free port)
    health_host: str = Field(default="127.0.0.1", min_length=1)
    health_port: int | None = Field(default=None, ge=0, le=65535)
    health_max_lag: float = Field(default=5.0, gt=0)

    @field_validator("gemini_fallback_models", "gemini_allowed_models", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("owner_ids", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        """``123,456``: ids written otherwise (``123 456``) are not read as one bad number."""
        ids = _split_csv(value)
        if isinstance(ids, list) and not all(str(i).isdecimal() for i in ids):
            raise ValueError("Discord user ids (numbers) separated by commas, like 123,456")
        return ids

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _shard_ranges(cls, value: object) -> object:
        """``0-3`` or ``0,2,4`` (or both: ``0-1,4``) as a sorted tuple of ids."""
        if not isinstance(value, str):
            return value
        ids: set[int] = set()
        for part in value.split(","):
            if not (part := part.strip()):
                continue
            if not (match := _SHARD_RANGE.fullmatch(part)):
                raise ValueError(f"{part!r} is not a shard id or range (like 0-3 or 0,2,4)")
            start, end = int(match[1]), int(match[2] or match[1])
            if end < start:
                raise ValueError(f"range {part} runs backwards")
            if end >= MAX_SHARDS:  # checked before the ids are made: `0-300000000` is a typo
                raise ValueError(f"shard {end} is past the most shards a bot has ({MAX_SHARDS})")
            ids.update(range(start, end + 1))
        return tuple(sorted(ids))

    @model_validator(mode="after")
    def _shards_fit(self) -> Settings:
        if self.shard_ids is not None:
            if self.shard_count is None:
                raise ValueError("SHARD_IDS needs SHARD_COUNT")
            if not self.shard_ids or max(self.shard_ids) >= self.shard_count:
                raise ValueError(f"SHARD_IDS must lie in 0-{self.shard_count - 1}")
        url = self.database_url.get_secret_value() if self.database_url else ""
        if url and not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("DATABASE_URL must start with postgresql://")
        return self

    @field_validator("gemini_model", "gemini_fallback_models", "gemini_allowed_models")
    @classmethod
    def _model_names(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        """Names as Google spells them. A space inside is two names without the comma
        between them: that model would be asked for, and not found, only when needed."""
        for name in (value,) if isinstance(value, str) else value:
            if not _MODEL_NAME.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not a model name (like gemini-2.5-flash; separate several"
                    " with commas)"
                )
            if len(name) > _MAX_MODEL_NAME:  # each one is a choice of /ai model
                raise ValueError(
                    f"{name[:40]!r}... is longer than {_MAX_MODEL_NAME} characters, the most"
                    " Discord takes for a choice of /ai model"
                )
        return value

    @field_validator("ai_default_persona")
    @classmethod
    def _persona_name(cls, value: str) -> str:
        """As `/ai persona set` takes it: in any letter case (`Pirate`), as a file's name.
        Read as typed, a name in capitals matched no persona and was ignored without a word."""
        value = value.lower()
        if not _PERSONA_NAME.fullmatch(value):
            raise ValueError(
                "must be a persona's name as /ai persona list shows it (its file's name"
                " without .md: a-z, 0-9, - and _)"
            )
        return value

    @field_validator("music_search_prefix")
    @classmethod
    def _search_prefix(cls, value: str) -> str:
        """yt-dlp writes a search `ytsearch:words`; the name alone is the setting."""
        if not _SEARCH_PREFIX.fullmatch(value):
            raise ValueError(
                "must be a yt-dlp search name such as ytsearch or scsearch (lower-case"
                " letters, digits and _, without the colon)"
            )
        return value

    @field_validator("discord_token", "gemini_api_key")
    @classmethod
    def _one_word(cls, value: SecretStr | None) -> SecretStr | None:
        """Keys travel in HTTP headers, where a space or a control character inside (a
        paste gone wrong) fails every request: the token's with a traceback at start."""
        key = value.get_secret_value() if value is not None else ""
        if not key.isprintable() or any(ch.isspace() for ch in key):
            raise ValueError("must be the key alone, with no spaces or invisible characters")
        return value

    @field_validator("data_dir", "music_ytdlp_cookies")
    @classmethod
    def _home(cls, value: Path | None) -> Path | None:
        """``~/gembot`` as a shell reads it: `.env` and systemd's Environment= are not read
        by one, and a directory named ``~`` in the working directory is a trap."""
        try:
            return value.expanduser() if value is not None else None
        except RuntimeError:  # ~name of no user, or no home directory to be found
            raise ValueError("its ~ names no home directory known here") from None

    @field_validator("gemini_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """Every AI request goes there: without a scheme (a host name alone, say) each
        reply would fail as "not answering" while the start said nothing."""
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname)
            usable = usable and (parts.port is None or parts.port > 0)
        except ValueError:  # a port out of range, a broken IPv6 address
            usable = False
        if not usable:
            raise ValueError("must be an http:// or https:// URL, like https://host/path")
        return value

    @field_validator("music_allowed_hosts", mode="before")
    @classmethod
    def _host_names(cls, value: object) -> object:
        """Host names as URLs spell them: lower case, without a trailing dot (an IPv6
        address without its brackets). A port, scheme or path with one (`nas.lan:8096`)
        matched no link's host, and every link to it was refused as private."""
        value = _split_csv(value)
        if not isinstance(value, list | tuple):
            return value
        hosts = [
            str(host).lower().rstrip(".").removeprefix("[").removesuffix("]") for host in value
        ]
        for number, host in enumerate(hosts, 1):  # not shown: a pasted URL may hold a login
            if any(ch in "/@?#[] " for ch in host) or (":" in host and not _is_ip(host)):
                raise ValueError(
                    f"entry {number} is not a host name; write the name alone, like nas.lan"
                    " (no scheme, port, login or path)"
                )
        return hosts

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _normalise_case(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        return value.upper() if info.field_name == "log_level" else value.lower()

    @field_validator("command_prefix")
    @classmethod
    def _usable_prefix(cls, value: str) -> str:
        if problem := prefix_problem(value):
            raise ValueError(problem)
        return value

    @property
    def secrets(self) -> list[str]:
        """The value of every secret setting (each a SecretStr), for the log to redact."""
        values = (getattr(self, name) for name in type(self).model_fields)
        return [value.get_secret_value() for value in values if isinstance(value, SecretStr)]

    @property
    def database_path(self) -> Path:
        return self.data_dir / "bot.db"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


class ConfigError(Exception):
    """The settings cannot be read: one line naming the variable (or `.env`), no value."""


def load_settings(**values: Any) -> Settings:
    """Settings from the environment and `.env`, with `values` over them."""
    try:
        return Settings(**values)
    except ValidationError as error:
        # A name misspelt in `.env` (DISCORD_TOKN) reads as a setting not set: name it here,
        # as the start that would warn of it does not come.
        stray = stray_dotenv_names()
        also = f"; .env also sets {', '.join(stray)}, which no setting is named" if stray else ""
        raise ConfigError(describe_error(error) + also) from None
    except UnicodeDecodeError as error:  # .env saved by an editor in Windows-1252, say
        line = error.object[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"Configuration error: .env is not UTF-8 text (line {line}); save it as UTF-8"
        ) from None
    except OSError as error:  # .env unreadable, e.g. owned by root with mode 600
        raise ConfigError(f"Configuration error: cannot read .env: {error.strerror}") from None


def stray_dotenv_names() -> list[str]:
    """Names `.env` sets that are no setting, in upper case. Nothing reads them (`.env`
    is not the process's environment): a typo (COMAND_PREFIX), or HTTPS_PROXY meant for
    the process, would otherwise be ignored without a word."""
    names = DotEnvSettingsSource(Settings).env_vars  # lower case: names ignore letter case
    return sorted(name.upper() for name in names if name not in Settings.model_fields)


def describe_error(error: ValidationError) -> str:
    """One line naming each bad variable and what is wrong, never its value."""
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        name = str(item["loc"][0]).upper() if item["loc"] else ""
        if item["type"] == "missing":
            problems.append(f"{name} is required but not set")
            continue
        # Our validators' own words, without pydantic's "Value error, " before them; those
        # that check several variables together (no name here) name them themselves.
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{name}: {message}" if name else message)
    return "Configuration error: " + "; ".join(problems) + " (see .env.example)"
