"""Container filesystems: an overlay of the image's unpacked layers plus the container's own upper dir.

Lifecycle (after containerd's snapshotter): ``prepare`` makes the upper/work dirs once, when the
container is created; ``mount`` stacks them over the layers each time the container starts, and
``unmount`` takes the stack down when it stops, leaving the upper dir (the container's changes)
in place, so a stopped container keeps its files; ``remove`` deletes everything.

Where overlayfs is not available (``DOCKYARD_SNAPSHOTTER=copy`` or a failed probe), the layers are
copied, with their whiteouts applied, into the container's own directory once; its changes are then
found by comparing against the layers.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from dockyard.errors import InvalidArgument, RuntimeFailure
from dockyard.records import Record
from dockyard.rootpath import decode_mount_point
from dockyard.rootpath import resolve_in_root as walk_in_root

MNT_DETACH = 2


class Snapshot(Record):
    base: Path          # containers/<id>/fs
    lowers: list[Path]  # layer diff dirs, bottom first
    driver: str         # "overlay" or "copy"
    _fields = ("base", "lowers", "driver")

    def __init__(self, base: Path, lowers: list[Path], driver: str) -> None:
        self.__dict__.update(base=base, lowers=lowers, driver=driver)

    @property
    def upper(self) -> Path:
        return self.base / "upper"

    @property
    def work(self) -> Path:
        return self.base / "work"

    @property
    def rootfs(self) -> Path:
        return self.base / "merged"

    @property
    def init(self) -> Path:
        """Docker's "init layer": mount points the runtime needs, kept out of the container's changes."""
        return self.base / "init"

    def lower_stack(self) -> list[Path]:
        """The lower dirs topmost first (overlayfs' ``lowerdir=`` order), the init layer on top."""
        return [self.init, *reversed(self.lowers)]


def _libc_mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def _libc_umount(target: str, flags: int = 0) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(target.encode(), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def default_driver() -> str:
    return os.environ.get("DOCKYARD_SNAPSHOTTER", "overlay")


def prepare(base: Path, lowers: list[Path], driver: str | None = None) -> Snapshot:
    driver = driver or default_driver()
    snap = Snapshot(base, lowers, driver)
    snap.upper.mkdir(parents=True, exist_ok=True)
    snap.work.mkdir(parents=True, exist_ok=True)
    snap.rootfs.mkdir(parents=True, exist_ok=True)
    _make_init_layer(snap.init)
    if driver == "copy":
        # The flattened copy *is* the container's filesystem; "upper" holds it.
        from dockyard.store import layers

        for low in lowers:
            layers.copy_layer_apply(low, snap.upper)
    return snap


INIT_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf", ".dockerenv")
INIT_DIRS = ("dev", "dev/pts", "dev/shm", "dev/mqueue", "proc", "sys", "etc")


def _make_init_layer(init: Path) -> None:
    """Empty files and dirs where the runtime mounts /etc/hosts, /proc, /dev...: as Docker's ``-init``."""
    for d in INIT_DIRS:
        (init / d).mkdir(parents=True, exist_ok=True)
    for f in INIT_FILES:
        (init / f).touch()


def _overlay_options(snap: Snapshot) -> str:
    lowers = [str(p) for p in snap.lower_stack()]
    opts = f"lowerdir={':'.join(lowers)},upperdir={snap.upper},workdir={snap.work}"
    if len(opts) > 4000:
        raise RuntimeFailure("too many layers to mount in one overlay (the mount options exceed a page)")
    return opts


def mount(snap: Snapshot) -> Path:
    if is_mounted(snap.rootfs):
        return snap.rootfs
    if snap.driver == "copy":
        _libc_mount(str(snap.upper), str(snap.rootfs), "", 4096 | 16384, "")  # MS_BIND | MS_REC
        return snap.rootfs
    try:
        # Plain copy-up semantics, so the upper dir is a layer diff (no redirects, no metacopy).
        _libc_mount("overlay", str(snap.rootfs), "overlay", 0,
                    _overlay_options(snap) + ",index=off,redirect_dir=off,metacopy=off")
    except OSError:
        try:
            _libc_mount("overlay", str(snap.rootfs), "overlay", 0, _overlay_options(snap))
        except OSError as e:
            raise RuntimeFailure(f"mounting the container's filesystem failed: {e.strerror}")
    return snap.rootfs


def is_mounted(path: Path) -> bool:
    p = str(path)
    try:
        with open("/proc/self/mountinfo") as f:
            return any(decode_mount_point(line.split()[4]) == p for line in f)
    except OSError:
        return False


def unmount(snap: Snapshot) -> None:
    while is_mounted(snap.rootfs):
        try:
            _libc_umount(str(snap.rootfs), MNT_DETACH)
        except OSError:
            break


def remove(snap: Snapshot) -> None:
    unmount(snap)
    with contextlib.suppress(FileNotFoundError):
        import shutil

        shutil.rmtree(snap.base)


def resolve_in_root(root: Path, path: str, *, follow_last: bool = True) -> Path:
    """``path`` inside a container's root, symlinks resolved as the container would see them.

    Never leaves ``root``: ``..`` stops at it and absolute link targets restart from it.
    """
    try:
        return root.joinpath(*walk_in_root(str(root), path, follow_last=follow_last, max_links=40))
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InvalidArgument(f"too many levels of symbolic links: {path}") from None
        raise
