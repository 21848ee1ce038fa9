"""atomic_file: a whole new file or the old one, never a torn mix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from utils.files import atomic_file


def write(path: Path, data: bytes) -> None:
    with atomic_file(path) as handle:
        handle.write(data)


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    write(target, b"old")
    write(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_atomic_write_crash_keeps_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file.bin"
    write(target, b"old")

    def crash(*args: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]
