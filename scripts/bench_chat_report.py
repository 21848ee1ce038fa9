"""The table scripts/bench_chat.py prints: a row per configuration (medians over the
rounds), then each configuration against the one that differs from it in one setting
only, paired round by round (a slow spell of the machine falls on both of a pair)."""

from __future__ import annotations

import statistics
from typing import NamedTuple


class Config(NamedTuple):
    channels: int  # active channels
    memory: bool
    tools: bool  # AI tools declared
    database: str  # "sqlite" or "postgresql"
    processes: int  # bot processes (shards spread over them)


# What each configuration is compared with: the setting, and its baseline value.
BASELINES = {"memory": False, "tools": False, "database": "sqlite", "processes": 1}

Runs = dict[Config, list[dict[str, float]]]


def _on(value: bool) -> str:
    return "on" if value else "off"


def report(runs: Runs, repeat: int) -> None:
    print(
        f"{'channels':>8} {'memory':>6} {'tools':>5} {'database':>10} {'procs':>5} {'msgs':>5} "
        f"{'msg/s':>6} {'busy %':>6} {'others':>6} {'discord':>7} {'gemini':>6} {'db':>5} "
        f"{'first p50':>9} {'first p99':>9} "
        f"{'final p50':>9} {'final p99':>9} "
        f"{'lag p99':>7} {'CPU/reply':>9} {'RSS MB':>7} {'peak MB':>7} {'first p50 runs':>15}"
        f"   (ms; medians of {repeat} runs, and the range of first p50 over them; "
        "RSS and CPU: all bot processes together; busy: the whole machine's CPU while "
        "sustained, others: the fakes' and the database's CPU per message then, of which "
        "discord: the fake Discord's and the driver's, gemini: the fake Gemini's, "
        "db: PostgreSQL's; the rest is the kernel's network work)"
    )
    for config, results in runs.items():
        row = {k: statistics.median(run[k] for run in results) for k in results[0]}
        low = min(run["first_p50"] for run in results)
        high = max(run["first_p50"] for run in results)
        print(
            f"{config.channels:>8} {_on(config.memory):>6} {_on(config.tools):>5} "
            f"{config.database:>10} {config.processes:>5} {row['messages']:>5.0f} "
            f"{row['msg_per_s']:>6.1f} {row['busy_pct']:>6.0f} {row['others_ms']:>6.2f} "
            f"{row['discord_ms']:>7.2f} {row['gemini_ms']:>6.2f} {row['database_ms']:>5.2f} "
            f"{row['first_p50']:>9.2f} {row['first_p99']:>9.2f} "
            f"{row['final_p50']:>9.2f} {row['final_p99']:>9.2f} {row['lag_p99']:>7.2f} "
            f"{row['cpu_ms']:>9.2f} {row['rss_mb']:>7.0f} {row['peak_mb']:>7.0f} "
            f"{low:>7.2f}–{high:<7.2f}"
        )
    for config, results in runs.items():
        for setting, baseline in BASELINES.items():
            other = config._replace(**{setting: baseline})
            if other == config or other not in runs:
                continue
            pairs = list(zip(runs[other], results, strict=True))
            p50 = statistics.median(b["first_p50"] - a["first_p50"] for a, b in pairs)
            p99 = statistics.median(b["first_p99"] - a["first_p99"] for a, b in pairs)
            rate = statistics.median(b["msg_per_s"] / a["msg_per_s"] for a, b in pairs)
            cpu = statistics.median(b["cpu_ms"] / a["cpu_ms"] for a, b in pairs)
            rss = statistics.median(b["rss_mb"] - a["rss_mb"] for a, b in pairs)
            print(
                f"{setting} {_value(getattr(config, setting))} vs {_value(baseline)} at "
                f"{_where(config, setting)} (median over rounds): first POST p50 {p50:+.2f} ms, "
                f"p99 {p99:+.2f} ms; sustained msg/s x{rate:.2f}; CPU per reply x{cpu:.2f}; "
                f"RSS {rss:+.0f} MB"
            )


def _value(value: object) -> str:
    return _on(value) if isinstance(value, bool) else str(value)


def _where(config: Config, setting: str) -> str:
    """The configuration's other settings, in words."""
    parts = [f"{config.channels} channels"]
    parts += [f"{name} {_value(getattr(config, name))}" for name in BASELINES if name != setting]
    return ", ".join(parts)
