"""Paths inside a root: the symlink-safe walk (runtime mounts, cp, volumes, build contexts) and mount points."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dockyard.rootpath import resolve_in_root


def test_links_resolve_inside_the_root_and_never_climb_out(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/etc", tmp_path / "abs")  # absolute: restarts from the root, not the host's /etc
    os.symlink("../../../..", tmp_path / "etc" / "up")  # .. stops at the root
    os.symlink("etc", tmp_path / "rel")
    assert resolve_in_root(str(tmp_path), "/abs/passwd") == ["etc", "passwd"]
    assert resolve_in_root(str(tmp_path), "etc/up/etc/up/x") == ["x"]
    assert resolve_in_root(str(tmp_path), "../../rel/./missing/deeper") == ["etc", "missing", "deeper"]
    assert resolve_in_root(str(tmp_path), "") == []


def test_the_last_link_is_kept_when_asked(tmp_path: Path) -> None:
    os.symlink("/target", tmp_path / "link")
    assert resolve_in_root(str(tmp_path), "link") == ["target"]
    assert resolve_in_root(str(tmp_path), "link", follow_last=False) == ["link"]


def test_a_loop_is_eloop_after_the_callers_bound(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(OSError) as e:
        resolve_in_root(str(tmp_path), "a", max_links=40)
    assert e.value.errno == errno.ELOOP


def test_mount_points_are_decoded_from_mountinfo_escapes() -> None:
    from dockyard.rootpath import decode_mount_point

    assert decode_mount_point("/plain/path") == "/plain/path"
    assert decode_mount_point("/a\\040b\\011c\\012d") == "/a b\tc\nd"
    assert decode_mount_point("/x\\134y") == "/x\\y"
