"""Settings parsing, the one-line error, and `.env.example` covering every option."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from config import Settings, describe_error

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def error_line(**env: str) -> str:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
    return describe_error(info.value)


def test_reads_environment_and_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    monkeypatch.setenv("OWNER_IDS", "1, 2,3")
    monkeypatch.setenv("GEMINI_FALLBACK_MODELS", "a,b")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("DEV_GUILD_ID", "")
    settings = Settings(_env_file=None)
    assert settings.owner_ids == {1, 2, 3}
    assert settings.gemini_fallback_models == ("a", "b")
    assert settings.log_level == "DEBUG"
    assert settings.dev_guild_id is None
    assert settings.command_prefix == "!"


def test_allowed_models_are_read_as_a_list_like_the_fallbacks() -> None:
    settings = Settings(
        _env_file=None, discord_token="tok", gemini_allowed_models=" gemini-pro, ,gemini-x "
    )
    assert settings.gemini_allowed_models == ("gemini-pro", "gemini-x")
    assert Settings(_env_file=None, discord_token="tok").gemini_allowed_models == ()


def test_reads_dotenv_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DISCORD_TOKEN=from-file\nCOMMAND_PREFIX=?\n")
    settings = Settings(_env_file=env_file)
    assert settings.discord_token.get_secret_value() == "from-file"
    assert settings.command_prefix == "?"


def test_missing_token_names_the_variable() -> None:
    assert "DISCORD_TOKEN is required" in error_line()


def test_invalid_value_names_variable_and_hides_secrets() -> None:
    line = error_line(DISCORD_TOKEN="very-secret-token", OWNER_IDS="abc")
    assert "OWNER_IDS" in line
    assert "very-secret-token" not in line
    assert "\n" not in line


@pytest.mark.parametrize("typed", ["123 456", "123;456", "abc"])
def test_owner_ids_that_are_not_numbers_between_commas_say_how_to_write_them(typed: str) -> None:
    """Not pydantic's "Input should be a valid integer" for ids separated by spaces."""
    line = error_line(DISCORD_TOKEN="t", OWNER_IDS=typed)
    assert "OWNER_IDS: Discord user ids (numbers) separated by commas, like 123,456" in line
    assert "valid integer" not in line


@pytest.mark.parametrize(
    ("name", "value"),
    [("LOG_FORMAT", "xml"), ("COMMAND_PREFIX", "a b"), ("DEV_GUILD_ID", "x")],
)
def test_other_invalid_values(name: str, value: str) -> None:
    assert name in error_line(DISCORD_TOKEN="t", **{name: value})


@pytest.mark.parametrize("prefix", ["`", "@", "<>", "\\", "!\u200b", "toolong"])
def test_a_command_prefix_servers_could_not_set_is_refused_at_start(prefix: str) -> None:
    """COMMAND_PREFIX follows the rules of `/settings prefix`: a backtick broke the code
    spans of `/help`, an invisible character made a prefix nobody can type."""
    line = error_line(DISCORD_TOKEN="t", COMMAND_PREFIX=prefix)
    assert line.startswith("Configuration error: COMMAND_PREFIX: "), line


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("GEMINI_TIMEOUT", "inf", "GEMINI_TIMEOUT: Input should be a finite number"),
        ("BACKUP_INTERVAL_HOURS", "infinity", "BACKUP_INTERVAL_HOURS: Input should be a finite"),
        ("DATA_RETENTION_GRACE_DAYS", "inf", "DATA_RETENTION_GRACE_DAYS: Input should be a finite"),
        ("AI_HISTORY_LIMIT", "1" + "0" * 20, "AI_HISTORY_LIMIT: Input should be less than or"),
    ],
)
def test_an_endless_or_huge_number_is_refused_by_name(name: str, value: str, says: str) -> None:
    """`GEMINI_TIMEOUT=inf` stopped the start with a traceback (OverflowError), and a
    history limit past 64 bits failed every AI reply (a query parameter)."""
    assert says in error_line(DISCORD_TOKEN="t", **{name: value})


def test_values_pasted_with_spaces_or_a_newline_are_read_without_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", " tok\n")
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-key\n")
    monkeypatch.setenv("GEMINI_MODEL", " gemini-2.5-pro ")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db/gembot\n")
    settings = Settings(_env_file=None)
    assert settings.discord_token.get_secret_value() == "tok"
    assert settings.gemini_api_key is not None
    assert settings.gemini_api_key.get_secret_value() == "AIza-key"
    assert settings.gemini_model == "gemini-2.5-pro"
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql://u:p@db/gembot"


@pytest.mark.parametrize("name", ["DISCORD_TOKEN", "GEMINI_API_KEY", "GEMINI_MODEL"])
def test_a_key_or_model_of_only_spaces_is_refused_by_name(name: str) -> None:
    line = error_line(**{"DISCORD_TOKEN": "t", name: "   "})
    assert line.startswith(f"Configuration error: {name}: "), line


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z_]+)=", text, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}


@pytest.mark.parametrize("unit", ["gembot.service", "gembot@.service"])
def test_the_systemd_units_give_the_embedding_model_a_writable_cache(unit: str) -> None:
    """ProtectSystem=strict leaves only ReadWritePaths (and systemd's own directories)
    writable: the default cache in the home directory was not, so the model's export
    failed at every start and memory ran on PyTorch instead."""
    lines = (ROOT / "scripts" / unit).read_text().splitlines()
    options = [line.split("=", 1) for line in lines if "=" in line and not line.startswith("#")]
    assert ["ProtectSystem", "strict"] in options
    assert ["CacheDirectory", "gembot"] in options
    assert ["Environment", "XDG_CACHE_HOME=%C/gembot"] in options


@pytest.mark.parametrize("unit", ["gembot.service", "gembot@.service"])
def test_the_systemd_units_stop_restarting_after_a_bad_setting(unit: str, tmp_path: Path) -> None:
    """Restart=on-failure alone started the bot every 5 s forever after a bad setting;
    a failed start that may pass later (an outage: exit status 1) is still retried."""
    lines = (ROOT / "scripts" / unit).read_text().splitlines()
    options = [line.split("=", 1) for line in lines if "=" in line and not line.startswith("#")]
    prevented = [value.split() for key, value in options if key == "RestartPreventExitStatus"]
    bad_setting = run_bot({}, tmp_path).returncode  # DISCORD_TOKEN missing
    assert ["Restart", "on-failure"] in options
    assert prevented == [[str(bad_setting)]] and bad_setting not in (0, 1)


def run_bot(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py")],
        env={**clean, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "DISCORD_TOKEN"),
        ({"DISCORD_TOKEN": "hush-hush-secret", "OWNER_IDS": "abc"}, "OWNER_IDS"),
    ],
)
def test_bot_exits_with_one_line(env: dict[str, str], expected: str, tmp_path: Path) -> None:
    result = run_bot(env, tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert "hush-hush-secret" not in result.stderr + result.stdout


def test_a_dotenv_saved_in_another_encoding_than_utf8_is_named_in_one_line(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_bytes(
        "DISCORD_TOKEN=hush-hush-secret\nCOMMAND_PREFIX=§\n".encode("cp1252")
    )
    result = run_bot({}, tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "Configuration error: .env is not UTF-8 text (line 2); save it as UTF-8\n"
    )
    assert "hush-hush-secret" not in result.stdout


def test_every_secret_setting_is_one_the_log_redacts() -> None:
    secret = {
        "discord_token": "t0ken",
        "database_url": "postgresql://u:pw@host/db",
        "gemini_api_key": "g-key",
        "spotipy_client_secret": "s-secret",
        "music_ytdlp_extractor_args": "youtube:po_token=p0",
    }
    settings = Settings(_env_file=None, spotipy_client_id="not-a-secret", **secret)  # pyright: ignore[reportCallIssue]
    assert sorted(settings.secrets) == sorted(secret.values())


def test_a_data_dir_that_is_a_file_is_named_as_such_in_one_line(tmp_path: Path) -> None:
    """Not "Cannot use DATA_DIR=data: File exists", which did not say what was wrong."""
    (tmp_path / "data").write_text("DATA_DIR names this file\n")
    result = run_bot({"DISCORD_TOKEN": "hush-hush-secret"}, tmp_path)
    assert result.returncode == 1
    assert result.stderr == "Cannot use DATA_DIR=data: it is a file, not a directory\n"


@pytest.mark.parametrize(
    ("shard_ids", "says"),
    [
        ("-1", "'-1' is not a shard id or range (like 0-3 or 0,2,4)"),
        ("1-", "'1-' is not a shard id or range"),
        ("0-3-5", "'0-3-5' is not a shard id or range"),
        ("0..3", "'0..3' is not a shard id or range"),
        ("3-0", "range 3-0 runs backwards"),
        ("0-300000000", "shard 300000000 is past the most shards a bot has (100000)"),
    ],
)
def test_shard_ids_name_the_form_they_take(shard_ids: str, says: str) -> None:
    """A typo in SHARD_IDS gets one line saying what is expected, at once: a huge range
    is refused before its ids are made."""
    assert says in error_line(DISCORD_TOKEN="t", SHARD_COUNT="4", SHARD_IDS=shard_ids)


def test_shard_ids_take_ids_ranges_and_spaces() -> None:
    settings = Settings(_env_file=None, discord_token="t", shard_count=8, shard_ids=" 0-1, 4 ,6")
    assert settings.shard_ids == (0, 1, 4, 6)


def test_settings_checked_together_are_named_in_plain_words() -> None:
    """`settings: Value error, SHARD_IDS must lie in 0-1` named no variable first and
    carried pydantic's own words."""
    line = error_line(DISCORD_TOKEN="t", SHARD_COUNT="2", SHARD_IDS="0-9")
    assert line == "Configuration error: SHARD_IDS must lie in 0-1 (see .env.example)"
    line = error_line(DISCORD_TOKEN="t", SHARD_COUNT="4", SHARD_IDS="3-1")
    assert line == "Configuration error: SHARD_IDS: range 3-1 runs backwards (see .env.example)"


def test_paths_under_the_home_directory_are_read_as_a_shell_reads_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`.env` is read by no shell: DATA_DIR=~/gembot made a directory named `~` in the
    working directory, one that `rm -r ~` would remove."""
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = Settings(
        _env_file=None,
        discord_token="t",
        data_dir="~/gembot",
        music_ytdlp_cookies="~/cookies.txt",
    )
    assert settings.data_dir == tmp_path / "gembot"
    assert settings.music_ytdlp_cookies == tmp_path / "cookies.txt"
    line = error_line(DISCORD_TOKEN="t", DATA_DIR="~no-such-user-here/gembot")
    assert line.startswith("Configuration error: DATA_DIR: "), line


def test_setup_installs_the_cpu_build_of_torch_not_the_cuda_one_of_pypi() -> None:
    """PyPI's torch for Linux is the CUDA build (several GB of NVIDIA wheels): on a fresh
    machine setup.sh took it from there, though it meant to install the CPU build."""
    script = (ROOT / "scripts" / "setup.sh").read_text()
    assert "torch_index=(--extra-index-url https://download.pytorch.org/whl/cpu)" in script
    [torch] = [
        line
        for line in script.splitlines()
        if line.startswith(".venv/bin/python -m pip install -q torch==")
    ]
    assert torch.endswith('"${torch_index[@]}"')


@pytest.mark.parametrize(
    "url",
    ["generativelanguage.googleapis.com", "localhost:8080/gemini", "https://", "http://h:99999"],
)
def test_a_gemini_base_url_requests_cannot_use_is_refused_by_name(url: str) -> None:
    """Without a scheme every AI reply said "not answering" for ever; the start said
    nothing."""
    line = error_line(DISCORD_TOKEN="t", GEMINI_BASE_URL=url)
    assert line.startswith("Configuration error: GEMINI_BASE_URL: must be an http"), line


def test_a_gemini_base_url_of_a_proxy_is_taken() -> None:
    url = "http://127.0.0.1:8080/gemini"
    assert Settings(_env_file=None, discord_token="t", gemini_base_url=url).gemini_base_url == url


@pytest.mark.parametrize("name", ["DISCORD_TOKEN", "GEMINI_API_KEY"])
@pytest.mark.parametrize("key", ["MTIz\x7fNDU2.secret", "MTIz NDU2.secret", "MTIz\tNDU2.secret"])
def test_a_key_with_a_space_or_control_character_inside_is_refused_by_name(
    name: str, key: str
) -> None:
    """A control character in DISCORD_TOKEN stopped the start with aiohttp's traceback
    (forbidden in a header); in GEMINI_API_KEY it failed every AI reply."""
    line = error_line(**{"DISCORD_TOKEN": "t", name: key})
    assert line.startswith(f"Configuration error: {name}: must be the key alone"), line
    assert "secret" not in line


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GEMINI_FALLBACK_MODELS", "gemini-2.5-pro gemini-2.0-flash"),
        ("GEMINI_ALLOWED_MODELS", "gemini-2.5-pro;gemini-2.0-flash"),
        ("GEMINI_MODEL", "gemini-2.5-flash?alt=sse"),
    ],
)
def test_a_model_list_without_commas_is_refused_by_name(name: str, value: str) -> None:
    """`GEMINI_FALLBACK_MODELS=a b` was one model named "a b": its 404 came only once the
    main model failed, when the fallback was needed."""
    line = error_line(DISCORD_TOKEN="t", **{name: value})
    assert line.startswith(f"Configuration error: {name}: '"), line
    assert "is not a model name" in line


@pytest.mark.parametrize(
    "name", ["GEMINI_MODEL", "GEMINI_FALLBACK_MODELS", "GEMINI_ALLOWED_MODELS"]
)
def test_a_model_name_longer_than_discord_offers_is_refused_by_name(name: str) -> None:
    """Every one is a choice of `/ai model`: Discord refused the whole list of choices
    (at most 100 characters a choice), so none was offered."""
    line = error_line(DISCORD_TOKEN="t", **{name: "g" * 101})
    assert line.startswith(f"Configuration error: {name}: "), line
    assert "longer than 100 characters" in line and "g" * 60 not in line
    longest = "g" * 100
    assert Settings(_env_file=None, discord_token="t", gemini_model=longest).gemini_model == longest


def test_model_names_as_google_spells_them_are_taken() -> None:
    settings = Settings(
        _env_file=None,
        discord_token="t",
        gemini_model="models/gemini-2.5-flash-preview-05-20",
        gemini_fallback_models="gemini-2.5-pro, gemini-2.0-flash-001",
    )
    assert settings.gemini_fallback_models == ("gemini-2.5-pro", "gemini-2.0-flash-001")


@pytest.mark.parametrize("value", ["-1", "0", "1" + "0" * 20])
def test_a_dev_guild_id_no_server_has_is_refused_by_name(value: str) -> None:
    """No server has such an id: the slash commands' sync failed with a warning at start."""
    assert error_line(DISCORD_TOKEN="t", DEV_GUILD_ID=value).startswith(
        "Configuration error: DEV_GUILD_ID: Input should be "
    )


def test_a_dev_guild_id_is_taken() -> None:
    settings = Settings(_env_file=None, discord_token="t", dev_guild_id="123456789012345678")
    assert settings.dev_guild_id == 123456789012345678
