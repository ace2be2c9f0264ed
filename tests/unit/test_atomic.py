"""write_atomic: a reader sees the old file or the new one, and a failed write leaves nothing behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dockyard.atomic import write_atomic


def test_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    target.write_text("old")
    write_atomic(target, '{"new": "ü"}')
    assert target.read_text(encoding="utf-8") == '{"new": "ü"}'
    write_atomic(str(target), b"\x00" * 200_000)
    assert target.read_bytes() == b"\x00" * 200_000
    assert sorted(os.listdir(tmp_path)) == ["config.json"]  # no temporary left


def test_mode_applies_to_a_new_file(tmp_path: Path) -> None:
    write_atomic(tmp_path / "lease", b"x", mode=0o600)
    assert stat.S_IMODE((tmp_path / "lease").stat().st_mode) == 0o600


def test_a_failed_rename_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # rename(2) cannot put a file over a directory
    with pytest.raises(IsADirectoryError):
        write_atomic(target, "data")
    assert target.is_dir()
    assert sorted(os.listdir(tmp_path)) == ["taken"]


def test_a_missing_directory_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "nope" / "file", "data")
