"""What the benchmarks read of a bot process they started: its CPU time and memory
(from /proc, so Linux only) and its output lines, each with when it arrived.

Used by scripts/bench_chat.py and scripts/bench_startup.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far, all its threads included."""
    # Fields after the command name, which may hold spaces: state is the first, utime
    # and stime (fields 14 and 15 of proc(5)) the 12th and 13th.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def named_cpu_seconds(name: str) -> float:
    """CPU time so far of every process called `name` (a database server's), summed
    over those alive now."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        if text[text.index("(") + 1 : text.rindex(")")] == name:
            total += cpu_seconds(int(stat.parent.name))
    return total


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, all) CPU time of the whole machine so far, every core, from /proc/stat."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks) - idle) / CLOCK_TICKS, sum(ticks) / CLOCK_TICKS


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of /proc/PID/status in MiB: VmRSS now, or VmHWM (the peak RSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no {field} for process {pid}")


async def settle(
    pid: int, *, busy: float = 0.03, interval: float = 0.5, within: float = 180
) -> None:
    """Wait until the process uses less than `busy` of a core over `interval` seconds
    (its background work, such as indexing, is done)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(interval)
        if cpu_seconds(pid) - before < busy * interval:
            return
    raise TimeoutError(f"process {pid} still busy after {within} s")


class Output:
    """A process's output lines as they come (read for as long as it runs, so a
    full pipe never blocks it), each with its CLOCK_MONOTONIC arrival time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[tuple[float, str]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.decode(errors="replace").rstrip()))

    def find(self, *parts: str) -> float | None:
        """When the first line containing every one of `parts` arrived, if one has."""
        return next((at for at, line in self.lines if all(p in line for p in parts)), None)

    async def wait_for(self, *parts: str, within: float = 120) -> float:
        """When the first line containing every one of `parts` arrived, waiting for it."""
        deadline = time.monotonic() + within
        while (at := self.find(*parts)) is None:
            if self._reader.done() or time.monotonic() > deadline:
                text = "\n".join(line for _, line in self.lines[-30:])
                raise RuntimeError(f"the bot never logged {' … '.join(parts)!r}:\n{text}")
            await asyncio.sleep(0.01)
        return at

    async def closed(self) -> None:
        await self._reader
