"""The data-directory lock: exclusive while held, free once released or its holder dies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from utils.instance_lock import AlreadyLocked, InstanceLock


def test_second_holder_is_refused_until_release(tmp_path: Path) -> None:
    first = InstanceLock(tmp_path / "data")
    first.acquire()
    with pytest.raises(AlreadyLocked), InstanceLock(tmp_path / "data"):
        pass
    first.release()
    with InstanceLock(tmp_path / "data") as again:
        assert again.path == tmp_path / "data" / "bot.lock"


def test_lock_of_a_killed_process_is_free(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from utils.instance_lock import InstanceLock; "
            "InstanceLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(AlreadyLocked):
            InstanceLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    with InstanceLock(tmp_path):
        pass
