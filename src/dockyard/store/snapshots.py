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

import errno
import os

from dockyard.errors import InvalidArgument, RuntimeFailure
from dockyard.records import Record
from dockyard.rootpath import decode_mount_point
from dockyard.rootpath import resolve_in_root as walk_in_root

# No pathlib or contextlib here: ``run`` prepares, mounts and removes its container's filesystem
# through this module, and pathlib alone pulls in re, urllib.parse and ipaddress (~6 ms of every run).
# Paths are taken as ``str`` or ``os.PathLike`` and handled as strings.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

MNT_DETACH = 2


class Snapshot(Record):
    base: str           # containers/<id>/fs
    lowers: list[str]   # layer diff dirs, bottom first
    driver: str         # "overlay" or "copy"
    _fields = ("base", "lowers", "driver")

    def __init__(self, base: str | os.PathLike[str], lowers: Sequence[str | os.PathLike[str]],
                 driver: str) -> None:
        # Normalised as ``Path`` did: the rootfs is compared with /proc/self/mountinfo's mount points.
        self.__dict__.update(base=os.path.normpath(os.fspath(base)), lowers=[os.fspath(p) for p in lowers],
                             driver=driver)

    @property
    def upper(self) -> str:
        return os.path.join(self.base, "upper")

    @property
    def work(self) -> str:
        return os.path.join(self.base, "work")

    @property
    def rootfs(self) -> str:
        return os.path.join(self.base, "merged")

    @property
    def init(self) -> str:
        """Docker's "init layer": mount points the runtime needs, kept out of the container's changes."""
        return os.path.join(self.base, "init")

    def lower_stack(self) -> list[str]:
        """The lower dirs topmost first (overlayfs' ``lowerdir=`` order), the init layer on top."""
        return [self.init, *reversed(self.lowers)]


def _libc_mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    from dockyard.libc import mount  # a sliver of _ctypes: the ctypes package costs ~2 ms to import

    mount(source, target, fstype, flags, data)


def _libc_umount(target: str, flags: int = 0) -> None:
    from dockyard.libc import umount2

    umount2(target, flags)


def default_driver() -> str:
    return os.environ.get("DOCKYARD_SNAPSHOTTER", "overlay")


def prepare(base: str | os.PathLike[str], lowers: Sequence[str | os.PathLike[str]],
            driver: str | None = None) -> Snapshot:
    driver = driver or default_driver()
    snap = Snapshot(base, lowers, driver)
    os.makedirs(snap.upper, exist_ok=True)
    os.makedirs(snap.work, exist_ok=True)
    os.makedirs(snap.rootfs, exist_ok=True)
    _make_init_layer(snap.init)
    if driver == "copy":
        # The flattened copy *is* the container's filesystem; "upper" holds it.
        from dockyard.store import layers

        for low in snap.lowers:
            layers.copy_layer_apply(low, snap.upper)
    return snap


INIT_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf", ".dockerenv")
INIT_DIRS = ("dev", "dev/pts", "dev/shm", "dev/mqueue", "proc", "sys", "etc")


def _make_init_layer(init: str | os.PathLike[str]) -> None:
    """Empty files and dirs where the runtime mounts /etc/hosts, /proc, /dev...: as Docker's ``-init``."""
    init = os.fspath(init)
    for d in INIT_DIRS:
        os.makedirs(os.path.join(init, d), exist_ok=True)
    for f in INIT_FILES:
        p = os.path.join(init, f)
        try:  # Path.touch(): create (mode 0o666 less the umask), or update the times of one there
            os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o666))
        except FileExistsError:
            os.utime(p)


def _overlay_options(snap: Snapshot) -> str:
    opts = f"lowerdir={':'.join(snap.lower_stack())},upperdir={snap.upper},workdir={snap.work}"
    if len(opts) > 4000:
        raise RuntimeFailure("too many layers to mount in one overlay (the mount options exceed a page)")
    return opts


def mount(snap: Snapshot) -> str:
    """Mount the snapshot's root filesystem (unless it is mounted already); returns ``snap.rootfs``."""
    if is_mounted(snap.rootfs):
        return snap.rootfs
    if snap.driver == "copy":
        _libc_mount(snap.upper, snap.rootfs, "", 4096 | 16384, "")  # MS_BIND | MS_REC
        return snap.rootfs
    try:
        # Plain copy-up semantics, so the upper dir is a layer diff (no redirects, no metacopy).
        _libc_mount("overlay", snap.rootfs, "overlay", 0,
                    _overlay_options(snap) + ",index=off,redirect_dir=off,metacopy=off")
    except OSError:
        try:
            _libc_mount("overlay", snap.rootfs, "overlay", 0, _overlay_options(snap))
        except OSError as e:
            raise RuntimeFailure(f"mounting the container's filesystem failed: {e.strerror}")
    return snap.rootfs


def is_mounted(path: str | os.PathLike[str]) -> bool:
    p = os.path.normpath(os.fspath(path))
    try:
        with open("/proc/self/mountinfo") as f:
            return any(decode_mount_point(line.split()[4]) == p for line in f)
    except OSError:
        return False


def unmount(snap: Snapshot) -> None:
    while is_mounted(snap.rootfs):
        try:
            _libc_umount(snap.rootfs, MNT_DETACH)
        except OSError:
            break


def remove(snap: Snapshot) -> None:
    unmount(snap)
    from dockyard.store.layers import remove_tree  # no shutil (~8 ms to import), no recursion limit

    remove_tree(snap.base)


def resolve_in_root(root: str | os.PathLike[str], path: str, *, follow_last: bool = True) -> Path:
    """``path`` inside a container's root, symlinks resolved as the container would see them.

    Never leaves ``root``: ``..`` stops at it and absolute link targets restart from it.
    """
    from pathlib import Path  # cp and volumes only, never run

    try:
        return Path(root).joinpath(*walk_in_root(os.fspath(root), path, follow_last=follow_last, max_links=40))
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InvalidArgument(f"too many levels of symbolic links: {path}") from None
        raise
