"""Root filesystem setup inside the container's mount namespace (runs in the forked init).

The order follows runc, because configs written for runc depend on it:

1. make ``/`` ``rslave`` (or ``linux.rootfsPropagation``) so nothing leaks back to the host, and bind
   the rootfs onto itself so it is a mount point ``pivot_root`` accepts;
2. ``mounts`` in config order (destinations resolved inside the rootfs, symlinks included, never
   escaping it);
3. default devices + ``linux.devices``, ``/dev/ptmx`` -> ``pts/ptmx`` and the ``/dev/fd`` family,
   unless ``/dev`` is bind-mounted from the host;
4. (createRuntime/createContainer hooks, driven by the caller)
5. ``pivot_root`` (or ``MS_MOVE`` + ``chroot`` with ``--no-pivot``);
6. after sysctls: ``maskedPaths``, ``readonlyPaths``, then the read-only remount of ``/``.
"""

from __future__ import annotations

import errno
import os
import stat

from ..errors import RuntimeFailure
from ..rootpath import decode_mount_point, resolve_in_root
from . import linux as L

_FLAGS: dict[str, tuple[bool, int]] = {
    # option: (clear?, flag)
    "ro": (False, L.MS_RDONLY),
    "rw": (True, L.MS_RDONLY),
    "nosuid": (False, L.MS_NOSUID),
    "suid": (True, L.MS_NOSUID),
    "nodev": (False, L.MS_NODEV),
    "dev": (True, L.MS_NODEV),
    "noexec": (False, L.MS_NOEXEC),
    "exec": (True, L.MS_NOEXEC),
    "sync": (False, L.MS_SYNCHRONOUS),
    "async": (True, L.MS_SYNCHRONOUS),
    "dirsync": (False, L.MS_DIRSYNC),
    "remount": (False, L.MS_REMOUNT),
    "mand": (False, L.MS_MANDLOCK),
    "nomand": (True, L.MS_MANDLOCK),
    "atime": (True, L.MS_NOATIME),
    "noatime": (False, L.MS_NOATIME),
    "diratime": (True, L.MS_NODIRATIME),
    "nodiratime": (False, L.MS_NODIRATIME),
    "relatime": (False, L.MS_RELATIME),
    "norelatime": (True, L.MS_RELATIME),
    "strictatime": (False, L.MS_STRICTATIME),
    "nostrictatime": (True, L.MS_STRICTATIME),
    "lazytime": (False, L.MS_LAZYTIME),
    "nolazytime": (True, L.MS_LAZYTIME),
    "nosymfollow": (False, L.MS_NOSYMFOLLOW),
    "symfollow": (True, L.MS_NOSYMFOLLOW),
    "bind": (False, L.MS_BIND),
    "rbind": (False, L.MS_BIND | L.MS_REC),
}
_PROPAGATION = {
    "private": L.MS_PRIVATE,
    "rprivate": L.MS_PRIVATE | L.MS_REC,
    "shared": L.MS_SHARED,
    "rshared": L.MS_SHARED | L.MS_REC,
    "slave": L.MS_SLAVE,
    "rslave": L.MS_SLAVE | L.MS_REC,
    "unbindable": L.MS_UNBINDABLE,
    "runbindable": L.MS_UNBINDABLE | L.MS_REC,
}
#: statvfs f_flag bits -> mount flags, for re-applying flags the kernel locked on a mount.
_STATVFS = ((1, L.MS_RDONLY), (2, L.MS_NOSUID), (4, L.MS_NODEV), (8, L.MS_NOEXEC), (1024, L.MS_NOATIME),
            (2048, L.MS_NODIRATIME), (4096, L.MS_RELATIME))  # fmt: skip

#: (name, major, minor) created in every container's /dev unless /dev is bind-mounted.
DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
                   ("tty", 5, 0))  # fmt: skip
_DEV_LINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
              ("/proc/self/fd/2", "stderr"))  # fmt: skip


def parse_options(options: list[str]) -> tuple[int, list[int], str]:
    """(mount flags, propagation flags to apply afterwards, filesystem data string)."""
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    for opt in options:
        if opt in _FLAGS:
            clear, flag = _FLAGS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in _PROPAGATION:
            propagation.append(_PROPAGATION[opt])
        elif opt in ("tmpcopyup", "idmap", "ridmap", "rro", "rrw", "defaults"):
            continue  # runc/crun extensions not supported here; "defaults" means no extra flags
        else:
            data.append(opt)
    return flags, propagation, ",".join(data)


def propagation_flag(value: str | None) -> int:
    if not value:
        return L.MS_SLAVE | L.MS_REC
    try:
        return _PROPAGATION[value]
    except KeyError:
        raise RuntimeFailure(f"invalid linux.rootfsPropagation {value!r}")


def secure_join(root: str, unsafe: str) -> str:
    """``root``/``unsafe`` with every symlink resolved as if ``root`` were ``/`` (never escaping it)."""
    try:
        return root + "".join("/" + p for p in resolve_in_root(root, unsafe))
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise RuntimeFailure(f"too many symlinks resolving {unsafe} in {root}") from None
        raise


def remount(target: str, flags: int) -> None:
    """Bind-remount ``target`` with ``flags``, keeping flags the kernel locked (user namespaces)."""
    try:
        L.mount(None, target, None, flags | L.MS_BIND | L.MS_REMOUNT)
    except OSError as e:
        if e.errno != errno.EPERM:
            raise
        f_flag = os.statvfs(target).f_flag
        for st_bit, ms in _STATVFS:
            if f_flag & st_bit:
                flags |= ms
        L.mount(None, target, None, flags | L.MS_BIND | L.MS_REMOUNT)


def _mkdir_p(path: str) -> None:
    """``mkdir -p``, quiet if ``path`` exists (whatever it is); one syscall when the parent exists."""
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass
    except FileNotFoundError:
        try:
            os.makedirs(path, 0o755, exist_ok=True)
        except FileExistsError:
            pass


def _ensure_target(dest: str, is_dir: bool) -> None:
    if is_dir:
        _mkdir_p(dest)
        return
    _mkdir_p(os.path.dirname(dest))
    if not os.path.lexists(dest):
        os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755))


def _fail(m: dict[str, object], e: OSError) -> RuntimeFailure:
    return RuntimeFailure(
        f"error mounting \"{m.get('source', '')}\" to rootfs at \"{m.get('destination', '')}\": "
        f"{(e.strerror or str(e)).lower()}"
    )


class RootfsSetup:
    """Everything done to the mount namespace before and after ``pivot_root``."""

    def __init__(self, config: dict[str, object], bundle: str, rootfs: str, *, userns: bool,
                 cgroupns: bool, cgroup_sources: list[tuple[str, str, list[str]]]) -> None:  # fmt: skip
        self.config = config
        self.linux: dict[str, object] = config.get("linux") or {}  # type: ignore[assignment]
        self.bundle = bundle
        self.rootfs = rootfs
        self.userns = userns
        self.cgroupns = cgroupns
        #: (name under /sys/fs/cgroup, host cgroup dir, controllers) of the container's cgroup
        self.cgroup_sources = cgroup_sources

    # --- before pivot ---------------------------------------------------------------------------
    def prepare(self) -> None:
        flag = propagation_flag(self.linux.get("rootfsPropagation"))  # type: ignore[arg-type]
        L.mount(None, "/", None, flag)
        if flag & L.MS_SHARED:
            self._make_parent_private()
        try:
            L.mount(self.rootfs, self.rootfs, "bind", L.MS_BIND | L.MS_REC)
        except OSError as e:
            raise RuntimeFailure(f"error bind-mounting rootfs {self.rootfs}: {e.strerror}")

    def _make_parent_private(self) -> None:
        """pivot_root refuses a new root whose parent mount is shared (rootfsPropagation=shared)."""
        parent = os.path.dirname(self.rootfs)
        best = "/"
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mnt = decode_mount_point(line.split()[4])
                if (parent == mnt or parent.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                    best = mnt
        L.mount(None, best, None, L.MS_PRIVATE)

    def mount_all(self) -> bool:
        """Do ``mounts`` in order; return True if /dev is bind-mounted (then no device nodes are made)."""
        bind_dev = False
        for m in self.config.get("mounts") or []:  # type: ignore[attr-defined]
            dest_rel = str(m.get("destination") or "")
            try:
                self._mount_one(m)
            except OSError as e:
                raise _fail(m, e)
            if os.path.normpath("/" + dest_rel) == "/dev" and self._is_bind(m):
                bind_dev = True
        return bind_dev

    @staticmethod
    def _is_bind(m: dict[str, object]) -> bool:
        opts = m.get("options") or []
        return m.get("type") == "bind" or "bind" in opts or "rbind" in opts  # type: ignore[operator]

    def _mount_one(self, m: dict[str, object]) -> None:
        dest = secure_join(self.rootfs, str(m.get("destination") or ""))
        kind = str(m.get("type") or "")
        source = str(m.get("source") or "")
        flags, propagation, data = parse_options([str(o) for o in m.get("options") or []])  # type: ignore[attr-defined]
        if self._is_bind(m):
            if not source.startswith("/"):
                source = os.path.join(self.bundle, source)
            _ensure_target(dest, os.path.isdir(source))
            L.mount(source, dest, "bind", L.MS_BIND | (flags & L.MS_REC))
            rest = flags & ~(L.MS_BIND | L.MS_REC | L.MS_REMOUNT)
            if rest:
                remount(dest, rest)
        elif kind == "cgroup":
            self._mount_cgroup(dest, flags)
        else:
            _mkdir_p(dest)
            L.mount(source or kind, dest, kind, flags & ~L.MS_BIND, data)
        for p in propagation:
            L.mount(None, dest, None, p)

    def _mount_cgroup(self, dest: str, flags: int) -> None:
        """``type: cgroup``: the container's own cgroup, read-only if asked, like runc does it."""
        _mkdir_p(dest)
        base = flags & ~(L.MS_RDONLY | L.MS_BIND | L.MS_REC)
        if len(self.cgroup_sources) == 1 and self.cgroup_sources[0][0] == "":
            if self.cgroupns:
                L.mount("cgroup2", dest, "cgroup2", flags)
            else:
                L.mount(self.cgroup_sources[0][1], dest, "bind", L.MS_BIND | L.MS_REC)
                remount(dest, flags & ~L.MS_BIND)
            return
        L.mount("tmpfs", dest, "tmpfs", base, "mode=755")
        for name, host_path, controllers in self.cgroup_sources:
            sub = os.path.join(dest, name)
            _mkdir_p(sub)
            if self.cgroupns:
                named = [c[5:] for c in controllers if c.startswith("name=")]
                L.mount(named[0] if named else "cgroup", sub, "cgroup", flags, ",".join(controllers))
            else:
                L.mount(host_path, sub, "bind", L.MS_BIND | L.MS_REC)
                remount(sub, flags & ~L.MS_BIND)
            if "," in name:  # co-mounted controllers (cpu,cpuacct): runc adds a symlink per controller
                for c in name.split(","):
                    try:
                        os.symlink(name, os.path.join(dest, c))
                    except FileExistsError:
                        pass

    def create_devices(self) -> None:
        dev = secure_join(self.rootfs, "/dev")
        _mkdir_p(dev)
        old_umask = os.umask(0)
        try:
            for name, major, minor in DEFAULT_DEVICES:
                self._make_node(f"/dev/{name}", "c", major, minor, 0o666, 0, 0)
            for d in self.linux.get("devices") or []:  # type: ignore[attr-defined]
                self._make_node(
                    str(d["path"]),
                    str(d.get("type", "c")),
                    int(d.get("major", 0)),
                    int(d.get("minor", 0)),
                    int(d["fileMode"]) if d.get("fileMode") is not None else 0o666,
                    int(d.get("uid") or 0),
                    int(d.get("gid") or 0),
                )
        finally:
            os.umask(old_umask)
        ptmx = os.path.join(dev, "ptmx")
        try:
            os.unlink(ptmx)
        except FileNotFoundError:
            pass
        os.symlink("pts/ptmx", ptmx)
        links = list(_DEV_LINKS)
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "core"))
        for target, name in links:
            try:
                os.symlink(target, os.path.join(dev, name))
            except FileExistsError:
                pass

    def _make_node(self, path: str, kind: str, major: int, minor: int, mode: int, uid: int, gid: int) -> None:
        dest = secure_join(self.rootfs, path)
        if self.userns:
            # mknod is not allowed in a user namespace: bind the host's node instead, as runc does.
            _ensure_target(dest, False)
            try:
                L.mount(path, dest, "bind", L.MS_BIND)
            except OSError as e:
                raise RuntimeFailure(f"error bind-mounting device {path}: {e.strerror}")
            return
        _mkdir_p(os.path.dirname(dest))
        kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
        if kind not in kinds:
            raise RuntimeFailure(f"invalid device type {kind!r} for {path}")
        node = (mode & 0o7777) | kinds[kind], os.makedev(major, minor)
        try:
            try:
                os.mknod(dest, *node)
            except FileExistsError:  # replace what is there (the usual /dev is a fresh tmpfs)
                try:
                    os.unlink(dest)
                except IsADirectoryError:
                    raise RuntimeFailure(f"cannot create device {path}: a directory is in the way")
                os.mknod(dest, *node)
            os.chown(dest, uid, gid)
        except OSError as e:
            raise RuntimeFailure(f"error creating device node {path}: {e.strerror}")

    def pivot(self, no_pivot: bool) -> None:
        if no_pivot:
            os.chdir(self.rootfs)
            L.mount(self.rootfs, "/", None, L.MS_MOVE)
            os.chroot(".")
            os.chdir("/")
            return
        old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new = os.open(self.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new)
            L.pivot_root(".", ".")
            # The old root is now stacked under "." -- make it a slave so unmounting it does not
            # propagate to the host, then detach it.
            os.fchdir(old)
            L.mount(None, ".", None, L.MS_SLAVE | L.MS_REC)
            L.umount2(".", L.MNT_DETACH)
            os.chdir("/")
        except OSError as e:
            raise RuntimeFailure(f"pivot_root {self.rootfs}: {e.strerror}")
        finally:
            os.close(old)
            os.close(new)

    # --- after pivot -----------------------------------------------------------------------------
    def mask_and_protect(self) -> None:
        for path in self.linux.get("readonlyPaths") or []:  # type: ignore[attr-defined]
            try:
                L.mount(path, path, None, L.MS_BIND | L.MS_REC)
            except OSError as e:
                if e.errno == errno.ENOENT:
                    continue
                raise RuntimeFailure(f"can't make {path} read-only: {e.strerror}")
            try:
                remount(path, L.MS_RDONLY | L.MS_REC)
            except OSError as e:
                raise RuntimeFailure(f"can't make {path} read-only: {e.strerror}")
        for path in self.linux.get("maskedPaths") or []:  # type: ignore[attr-defined]
            try:
                L.mount("/dev/null", path, None, L.MS_BIND)
            except OSError as e:
                if e.errno == errno.ENOENT:
                    continue
                if e.errno != errno.ENOTDIR:
                    raise RuntimeFailure(f"can't mask path {path}: {e.strerror}")
                try:
                    L.mount("tmpfs", path, "tmpfs", L.MS_RDONLY)
                except OSError as e2:
                    raise RuntimeFailure(f"can't mask path {path}: {e2.strerror}")

    def readonly_root(self) -> None:
        try:
            remount("/", L.MS_RDONLY)
        except OSError as e:
            raise RuntimeFailure(f"error making rootfs read-only: {e.strerror}")
