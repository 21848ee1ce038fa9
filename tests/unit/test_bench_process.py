"""scripts/bench_process.py: what the benchmarks read of a process, on a real one."""

from __future__ import annotations

import asyncio
import sys

import pytest

from scripts.bench_process import Output, cpu_seconds, memory_mb, settle

# Prints a line, spins for 0.3 s of CPU, prints another, then waits to be stopped.
CHILD = """
import sys, time
print("starting", flush=True)
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
print("spun", flush=True)
sys.stdin.read()
"""


async def test_a_process_output_cpu_and_memory_are_read_as_they_come() -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    output = Output(child)
    try:
        started = await output.wait_for("start")
        spun = await output.wait_for("spun")
        assert started <= spun
        assert cpu_seconds(child.pid) >= 0.3
        await settle(child.pid, within=30)  # it waits on stdin now
        assert 0 < memory_mb(child.pid) <= memory_mb(child.pid, "VmHWM")
        assert output.find("never said") is None
    finally:
        assert child.stdin is not None
        child.stdin.close()
        await child.wait()
    with pytest.raises(RuntimeError, match="never logged 'never said'"):
        await output.wait_for("never said")
    await output.closed()
