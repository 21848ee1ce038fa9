"""The one-instance-per-data-directory lock: an OS file lock on DATA_DIR/bot.lock.

`fcntl.flock` is released by the kernel when the process ends however it ends
(even `kill -9`), so a crash never leaves a stale lock behind, unlike a PID file.
The bot holds it for its whole life; the maintenance CLI holds it while it
replaces or rewrites the database, so neither runs while the other writes.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "bot.lock"


class AlreadyLocked(Exception):
    """Another process holds the lock of this data directory."""


class InstanceLock:
    """An exclusive, non-blocking lock on `data_dir/bot.lock`; use as a context manager."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock at once or raise `AlreadyLocked`; never waits."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # close-on-exec by default
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyLocked(str(self.path)) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
