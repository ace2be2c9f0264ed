"""What build steps do to filesystems: throwaway overlays, RUN in a container, COPY/ADD, commits.

Every step that changes files works on a :class:`Rootfs`: a fresh overlay upper dir stacked over
the parent image's unpacked layers and mounted under ``<engine root>/build/tmp-<pid>-<hex>/``. The
step writes through the mount (RUN from inside a container, COPY/ADD/WORKDIR from here, with every
path resolved as if the root were ``/`` so that a symlink in the image can never lead to the host),
then :meth:`Rootfs.commit` unmounts it and turns the upper dir into a layer tar (whiteouts included)
that the engine stores and unpacks. A step that changed nothing gives no layer.

RUN runs through :class:`~dockyard.runtime.builtin.BuiltinRuntime` with a spec from
:func:`~dockyard.runtime.spec.build_spec`: Docker's defaults (capabilities, seccomp, masked paths),
stdin ``/dev/null``, stdout and stderr to one pipe that the builder streams, hostname
``buildkitsandbox`` as BuildKit's. Network: ``host`` unless the build or the step says ``none``
(Docker's default build network is a bridge; Dockyard has no bridge networking yet, so its builds
use the host's network, which BuildKit calls ``--network=host``). Files the runtime had to create as
mount points (``/etc/hosts``, ``/etc/resolv.conf``, cache-mount targets...) are removed afterwards,
with their parents' mtimes restored, as BuildKit does, so they never end up in a layer.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time

from dockyard.build.context import IgnoreMatcher, SourceTree
from dockyard.errors import BuildError, DockyardError
from dockyard.records import MutableRecord

# No contextlib, pathlib or json here: every RUN, COPY or WORKDIR step that misses the cache loads
# this module, and those (with re, enum, functools, collections, urllib.parse and ipaddress behind
# them) cost ~8 ms. Paths are ``str``; try/except stands in for ``contextlib.suppress``.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, BinaryIO

    from dockyard.engine import Engine, NewLayer
    from dockyard.store.layerstore import LayerInfo
    from dockyard.store.snapshots import Snapshot

BUILD_HOSTNAME = "buildkitsandbox"
MNT_DETACH = 2


# --------------------------------------------------------------------------------------------
# Work directories
# --------------------------------------------------------------------------------------------


def _token_hex(nbytes: int) -> str:
    """``secrets.token_hex`` (which is ``os.urandom(n).hex()``) without importing secrets, random, hmac..."""
    return os.urandom(nbytes).hex()


def work_root(eng: Engine) -> str:
    p = os.path.join(eng.root_dir, "build")
    os.makedirs(p, mode=0o700, exist_ok=True)
    return p


def mounts_under(path: str | os.PathLike[str]) -> list[str]:
    """Mount points at or below ``path`` in this mount namespace, deepest first."""
    from dockyard.rootpath import decode_mount_point

    base = os.path.abspath(os.fspath(path))
    found: list[str] = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4:
                    mp = decode_mount_point(fields[4])
                    if mp == base or mp.startswith(base + "/"):
                        found.append(mp)
    except OSError:
        return []
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def _umount(target: str) -> bool:
    """Detach the mount at ``target`` (and everything below it); False if there was none."""
    from dockyard.runtime import linux  # its ctypes sliver: the ctypes package costs ~2 ms to import

    try:
        linux.umount2(target, MNT_DETACH)
    except OSError:
        return False
    return True


def unmount_all_under(path: str | os.PathLike[str]) -> None:
    for _ in range(8):
        found = mounts_under(path)
        if not found:
            return
        for mp in found:
            _umount(mp)


def _mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    """mount(2); OSError (naming ``target``) on failure."""
    from dockyard.runtime import linux

    linux.mount(source, target, fstype, flags, data)


def remove_dir(path: str | os.PathLike[str]) -> None:
    """Unmount whatever is mounted below ``path``, then delete it."""
    unmount_all_under(path)
    try:
        os.rmdir(path)  # the common case of an empty directory, without importing the tar code
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    from dockyard.store.layers import remove_tree

    try:
        remove_tree(os.fspath(path))
    except FileNotFoundError:
        pass


def cleanup_stale(eng: Engine) -> None:
    """Remove the work directories of builds whose process is gone."""
    root = os.path.join(eng.root_dir, "build")
    try:
        names = os.listdir(root)
    except (FileNotFoundError, NotADirectoryError):
        return
    from dockyard.store.content import _pid_alive

    for name in names:
        if name.startswith("tmp-"):
            pid_s = name.split("-")[1]
            if pid_s.isdigit() and not _pid_alive(int(pid_s)):
                remove_dir(os.path.join(root, name))


class Scratch:
    """A temporary directory for one step (or one build); removed, mounts and all, on close."""

    def __init__(self, eng: Engine, kind: str = "step") -> None:
        self.path = os.path.join(work_root(eng), f"tmp-{os.getpid()}-{kind}-{_token_hex(6)}")
        os.mkdir(self.path, 0o700)

    def sub(self, name: str) -> str:
        p = os.path.join(self.path, name)
        os.makedirs(p, exist_ok=True)
        return p

    def close(self) -> None:
        remove_dir(self.path)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Paths inside a root
# --------------------------------------------------------------------------------------------


def resolve_in_root(root: str, path: str, *, follow: bool = True) -> str:
    """The host path of container path ``path`` under ``root``, symlinks resolved inside ``root``."""
    rel = SourceTree(root).resolve(path, follow=follow)
    return os.path.join(root, rel) if rel else root


def read_root_file(root: str, path: str) -> str | None:
    try:
        host = resolve_in_root(root, path)
        if not os.path.isfile(host):
            return None
        with open(host, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _lookup(db: str | None, name: str, field_count: int) -> list[str] | None:
    for line in (db or "").splitlines():
        fields = line.split(":")
        if len(fields) >= field_count and fields[0] == name:
            return fields
    return None


def parse_chown(spec: str, root: str) -> tuple[int, int]:
    """``--chown=user[:group]`` -> (uid, gid), names looked up in the root's /etc/passwd and /etc/group.

    As Docker: a user without a group gives the group the same number as the user's uid.
    """
    user, has_group, group = spec.partition(":")
    if not user:
        raise BuildError(f"invalid --chown value: {spec!r}")
    passwd = group_db = None
    if not user.isdigit():
        passwd = read_root_file(root, "/etc/passwd")
        fields = _lookup(passwd, user, 7)
        if fields is None or not fields[2].isdigit():
            raise BuildError(f"unable to convert uid/gid chown string to host mapping: can't find uid for "
                             f"user {user}: no such user: {user}")
        uid = int(fields[2])
    else:
        uid = int(user)
    if not has_group or not group:
        return uid, uid
    if group.isdigit():
        return uid, int(group)
    group_db = read_root_file(root, "/etc/group")
    gfields = _lookup(group_db, group, 3)
    if gfields is None or not gfields[2].isdigit():
        raise BuildError(f"unable to convert uid/gid chown string to host mapping: can't find gid for "
                         f"group {group}: no such group: {group}")
    return uid, int(gfields[2])


def parse_chmod(spec: str) -> int:
    if not spec or any(c not in "01234567" for c in spec) or len(spec) > 4:
        raise BuildError(f"invalid --chmod value {spec!r}: only octal modes (like 0755) are supported")
    return int(spec, 8)


def user_ids(user: str, root: str) -> tuple[int, int]:
    """The uid/gid a ``USER`` value stands for in ``root`` (for directories WORKDIR creates)."""
    if not user:
        return 0, 0
    from dockyard.runtime.spec import resolve_user

    try:
        uid, gid, _ = resolve_user(user, read_root_file(root, "/etc/passwd"),
                                   read_root_file(root, "/etc/group"))
    except DockyardError as e:
        raise BuildError(str(e))
    return uid, gid


# --------------------------------------------------------------------------------------------
# Root filesystems for a step
# --------------------------------------------------------------------------------------------


class Rootfs:
    """A writable overlay over an image's layers, mounted; :meth:`commit` makes its changes a layer."""

    def __init__(self, base: str | os.PathLike[str], chain: list[LayerInfo]) -> None:
        from dockyard.store import snapshots

        self.lowers = [_layer_dir(x) for x in chain]
        self.parent_chain = chain[-1].chain_id if chain else None
        # Not ``snapshots.prepare``, which fills the init layer with a container's stubs (/.dockerenv,
        # /etc/hosts...): builds see the image as it is (as BuildKit's do), and the mount points RUN
        # needs are created and removed again by :class:`Stubs`. The init dir stays, empty, as the
        # topmost lower dir (an overlay needs one even with no layers below: FROM scratch).
        self.snap = snapshots.Snapshot(base, self.lowers, "overlay")
        for d in (self.snap.upper, self.snap.work, self.snap.rootfs, self.snap.init):
            os.makedirs(d, exist_ok=True)
        self.path = str(self.snap.rootfs)
        try:
            if not _mount_volatile(self.snap):
                snapshots.mount(self.snap)
        except DockyardError as e:
            raise BuildError(f"mounting the build's root filesystem failed: {e}")
        self._mounted = True

    def unmount(self) -> None:
        if not self._mounted:
            return
        self._mounted = False
        # Mounts a step makes live in its container's mount namespace; here there is only the
        # overlay, and detaching it detaches anything below it too. The sweep over mountinfo is for
        # a mount point the kernel would not take by this path.
        if not _umount(self.path):
            unmount_all_under(self.path)

    def commit(self, eng: Engine) -> NewLayer | None:
        """Unmount, and store the upper dir as a layer on the parent; None if nothing changed."""
        from dockyard.store import layers

        self.unmount()
        upper = str(self.snap.upper)
        lowers_top_first = [str(p) for p in reversed(self.lowers)]
        prune_unchanged_dirs(upper, lowers_top_first)
        with os.scandir(upper) as it:
            if next(it, None) is None:
                return None
        with _temporary_file(self.snap.base) as f:
            layers.write_diff_tar(upper, f, lower_dirs=lowers_top_first)
            f.seek(0)
            if not any(f.read(512)):
                return None
            f.seek(0)
            return eng.add_layer_from_tar(f, self.parent_chain)


def _layer_dir(info: LayerInfo) -> str:
    """The unpacked layer's directory as a ``str`` (``diff_dir``; ``path`` would be a ``Path``)."""
    d = getattr(info, "diff_dir", None)
    return d if isinstance(d, str) else os.fspath(info.path)


def _mount_volatile(snap: Snapshot) -> bool:
    """Mount a step's overlay with ``volatile`` (Linux 5.10+): no syncs reach the upper dir's filesystem.

    The upper dir is thrown away (once :meth:`Rootfs.commit` has streamed it into the content store,
    which syncs what it keeps), so its data never needs to be on disk: without ``volatile`` every
    ``fsync`` in a RUN step, and the unmount itself, sync the whole host filesystem. False where the
    kernel refuses the option; the caller then mounts as containers do.
    """
    from dockyard.store import snapshots

    if snap.driver != "overlay":
        return False
    opts = snapshots._overlay_options(snap)
    try:
        _mount("overlay", str(snap.rootfs), "overlay", 0, opts + ",index=off,redirect_dir=off,metacopy=off,volatile")
    except OSError:
        return False
    return True


def _temporary_file(directory: str | os.PathLike[str]) -> BinaryIO:
    """An unnamed ``w+b`` file in ``directory``: what ``tempfile.TemporaryFile`` makes on Linux
    (``O_TMPFILE``), without importing tempfile (and shutil, random) on the RUN path."""
    try:
        fd = os.open(directory, os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC, 0o600)
    except (OSError, AttributeError):
        import tempfile

        return tempfile.TemporaryFile(dir=directory)
    return open(fd, "w+b")  # noqa: SIM115 - the caller closes it


def _xattrs(path: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for n in names:
        if n.startswith("trusted.overlay.") or n.startswith("user.overlay."):
            continue
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError:
            pass
    return out


def _is_opaque(path: str) -> bool:
    for name in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def prune_unchanged_dirs(upper: str, lowers_top_first: list[str]) -> None:
    """Drop directories that overlayfs copied up but that hold nothing and match the layer below.

    Creating a mount point (or a file that is removed again) copies its parent directory up; once
    the file is gone and the parent's mtime restored, the copy is identical to the lower one and
    would only add noise (and a non-empty layer) to the commit.
    """

    def lower_entry(rel: str) -> tuple[str, os.stat_result] | None:
        for low in lowers_top_first:
            p = os.path.join(low, rel)
            try:
                return p, os.lstat(p)
            except OSError:
                continue
        return None

    def visit(rel: str) -> bool:
        """Returns True if the directory ``rel`` (relative to upper) was removed."""
        host = os.path.join(upper, rel) if rel else upper
        try:
            names = os.listdir(host)
        except OSError:
            return False
        remaining = len(names)
        for name in names:
            child = f"{rel}/{name}" if rel else name
            try:
                st = os.lstat(os.path.join(upper, child))
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and visit(child):
                remaining -= 1
        if not rel or remaining or _is_opaque(host):
            return False
        st = os.lstat(host)
        found = lower_entry(rel)
        if found is None or not stat.S_ISDIR(found[1].st_mode):
            return False
        low_path, low = found
        if (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns) != (low.st_mode, low.st_uid, low.st_gid,
                                                                 low.st_mtime_ns):
            return False
        if _xattrs(host) != _xattrs(low_path):
            return False
        try:
            os.rmdir(host)
        except OSError:
            return False
        return True

    if lowers_top_first:
        visit("")


class Stubs:
    """Mount points the runtime will create in a root; :meth:`clean` removes them again."""

    def __init__(self, root: str, destinations: list[str]) -> None:
        self.root = root
        self.created: list[str] = []  # host paths, in creation order (parents first)
        self.parents: dict[str, tuple[int, int]] = {}
        for dest in destinations:
            parts = [p for p in dest.split("/") if p not in ("", ".")]
            current = ""
            for i, part in enumerate(parts):
                parent_host = resolve_in_root(root, current or "/")
                host = os.path.join(parent_host, part)
                if not os.path.lexists(host):
                    try:
                        st = os.stat(parent_host)
                        self.parents.setdefault(parent_host, (st.st_atime_ns, st.st_mtime_ns))
                    except OSError:
                        pass
                    # this and everything below is new
                    sub = host
                    for rest in parts[i + 1:]:
                        if sub not in self.created:
                            self.created.append(sub)
                        sub = os.path.join(sub, rest)
                    if sub not in self.created:
                        self.created.append(sub)
                    break
                current = f"{current}/{part}"

    def clean(self) -> None:
        for host in sorted(self.created, key=lambda p: p.count("/"), reverse=True):
            try:
                st = os.lstat(host)
            except OSError:
                continue
            try:
                if stat.S_ISDIR(st.st_mode):
                    os.rmdir(host)  # only if empty
                elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    os.unlink(host)
            except OSError:
                pass
        for parent, (atime, mtime) in self.parents.items():
            try:
                # only if it changed: touching a directory of a lower layer would copy it up
                if os.stat(parent).st_mtime_ns != mtime:
                    os.utime(parent, ns=(atime, mtime))
            except OSError:
                pass


# --------------------------------------------------------------------------------------------
# RUN
# --------------------------------------------------------------------------------------------


class RunRequest(MutableRecord):
    argv: list[str]
    env: list[str]
    user: str
    workdir: str
    network: str
    mounts: list[dict[str, Any]]
    privileged: bool
    hostname: str
    _fields = ("argv", "env", "user", "workdir", "network", "mounts", "privileged", "hostname")

    def __init__(self, argv: list[str], env: list[str], user: str = "", workdir: str = "/", network: str = "host",
                 mounts: list[dict[str, Any]] | None = None, privileged: bool = False,
                 hostname: str = BUILD_HOSTNAME) -> None:
        self.argv = argv
        self.env = env
        self.user = user
        self.workdir = workdir
        self.network = network
        self.mounts = [] if mounts is None else mounts
        self.privileged = privileged
        self.hostname = hostname


def _run_root() -> str:
    return os.environ.get("DOCKYARD_RUN_ROOT", "/run/dockyard")


_subreaper_set = False


def _become_subreaper() -> None:
    global _subreaper_set
    if _subreaper_set:
        return
    from dockyard.runtime import linux as L

    L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
    _subreaper_set = True


def _host_resolv_conf(network: str) -> str:
    try:
        with open("/etc/resolv.conf") as f:
            text = f.read()
    except OSError:
        text = ""
    if network != "host" and "nameserver 127." in text:
        text = "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    return text


def make_dir_in_root(root: str, path: str, *, uid: int = 0, gid: int = 0, mode: int = 0o755) -> bool:
    """``mkdir -p`` of container path ``path`` inside ``root``; returns True if it created anything."""
    parts = [p for p in path.split("/") if p not in ("", ".", "..")]
    created = False
    current = "/"
    for part in parts:
        parent = resolve_in_root(root, current)
        host = os.path.join(parent, part)
        try:
            st = os.lstat(host)
        except OSError:
            st = None
        if st is None:
            os.mkdir(host, mode)
            os.chmod(host, mode)
            os.lchown(host, uid, gid)
            created = True
        elif stat.S_ISLNK(st.st_mode):
            target = resolve_in_root(root, current.rstrip("/") + "/" + part)
            if not os.path.exists(target):
                os.makedirs(target, mode, exist_ok=True)
                created = True
            elif not os.path.isdir(target):
                raise BuildError(f"mkdir {path}: not a directory")
        elif not stat.S_ISDIR(st.st_mode):
            raise BuildError(f"mkdir {path}: not a directory")
        current = current.rstrip("/") + "/" + part
    return created


def _write_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def run_container(eng: Engine, rootfs: Rootfs, scratch: str | os.PathLike[str], req: RunRequest,
                  on_output: Callable[[bytes], None]) -> int:
    """Run ``req.argv`` in ``rootfs``; stream its output to ``on_output``; return its exit code.

    Raises BuildError if the container cannot be created or its command cannot be started.
    """
    from dockyard import jsonc
    from dockyard.runtime import spec as specmod
    from dockyard.runtime.builtin import BuiltinRuntime
    from dockyard.runtime.runopts import RunOptions

    cid = "build-" + _token_hex(16)
    bundle = os.path.join(scratch, "bundle")
    os.makedirs(bundle, exist_ok=True)
    hostname_path = os.path.join(bundle, "hostname")
    hosts_path = os.path.join(bundle, "hosts")
    resolv_conf_path = os.path.join(bundle, "resolv.conf")
    _write_text(hostname_path, req.hostname + "\n")
    _write_text(hosts_path, f"127.0.0.1\tlocalhost {req.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    _write_text(resolv_conf_path, _host_resolv_conf(req.network))
    opts = RunOptions(cmd=list(req.argv), env=list(req.env), workdir=req.workdir or "/", user=req.user,
                      network=req.network, hostname=req.hostname, privileged=req.privileged)
    try:
        spec = specmod.build_spec(
            {}, opts, container_id=cid, rootfs=rootfs.path, cgroups_path=f"/dockyard/{cid}",
            hostname_path=hostname_path, hosts_path=hosts_path, resolv_conf_path=resolv_conf_path,
            passwd_text=read_root_file(rootfs.path, "/etc/passwd"),
            group_text=read_root_file(rootfs.path, "/etc/group"),
            host_hostname=os.uname().nodename,  # socket.gethostname(), without socket
        )
    except DockyardError as e:
        raise BuildError(str(e))
    spec["mounts"].extend(req.mounts)
    # The working directory is created as part of the step (runc does the same).
    make_dir_in_root(rootfs.path, spec["process"]["cwd"])
    stubs = Stubs(rootfs.path, [m["destination"] for m in spec["mounts"]])
    _write_text(os.path.join(bundle, "config.json"), jsonc.dumps(spec))

    _become_subreaper()
    rt = BuiltinRuntime(root=os.path.join(_run_root(), "runtime"))
    r, w = os.pipe2(os.O_CLOEXEC)
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    pid = 0
    try:
        try:
            pid = rt.create(cid, bundle, stdio=(devnull, w, w))
        finally:
            os.close(w)
            os.close(devnull)
        try:
            rt.start(cid)
        except DockyardError as e:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            pid = 0
            raise BuildError(str(e))
        while True:
            try:
                chunk = os.read(r, 65536)
            except InterruptedError:
                continue
            if not chunk:
                break
            on_output(chunk)
        _, status = os.waitpid(pid, 0)
        pid = 0
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code
    except DockyardError as e:
        if isinstance(e, BuildError):
            raise
        raise BuildError(str(e))
    finally:
        os.close(r)
        _reap()  # the step's orphans were re-parented to us: reap them before the cgroup goes
        try:
            rt.delete(cid, force=True)
        except Exception as e:  # noqa: BLE001 - cleanup must go on; say what was left behind
            sys.stderr.write(f"warning: removing build container {cid}: {e}\n")
        if pid:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        _reap()
        stubs.clean()


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


# --------------------------------------------------------------------------------------------
# RUN --mount
# --------------------------------------------------------------------------------------------


class RunMount(MutableRecord):
    """One ``RUN --mount=...`` (BuildKit's ``instructions.Mount``)."""

    type: str
    target: str
    source: str
    from_: str
    readonly: bool | None
    id: str
    sharing: str
    mode: int | None
    uid: int | None
    gid: int | None
    size: str
    required: bool
    env: str
    _fields = ("type", "target", "source", "from_", "readonly", "id", "sharing", "mode", "uid", "gid", "size",
               "required", "env")

    def __init__(self, type: str = "bind", target: str = "", source: str = "", from_: str = "",
                 readonly: bool | None = None, id: str = "", sharing: str = "shared", mode: int | None = None,
                 uid: int | None = None, gid: int | None = None, size: str = "", required: bool = False,
                 env: str = "") -> None:
        self.type = type
        self.target = target
        self.source = source
        self.from_ = from_
        self.readonly = readonly
        self.id = id
        self.sharing = sharing
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.required = required
        self.env = env

    def canonical(self) -> str:
        """The parts of the mount that decide what a step sees (for the cache key)."""
        return (f"{self.type},{self.target},{self.source},{self.from_},{self.readonly},{self.id},"
                f"{self.sharing},{self.mode},{self.uid},{self.gid},{self.size},{self.env}")


_MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")


def parse_run_mount(value: str, expand: Callable[[str], str] = lambda s: s) -> RunMount:
    """Parse one ``--mount`` value (CSV of ``key=value`` and bare flags), BuildKit's rules."""
    import csv

    try:
        fields = next(csv.reader([value]))
    except (csv.Error, StopIteration):
        raise BuildError(f"invalid mount {value!r}")
    m = RunMount()
    seen_type = False
    for raw in fields:
        raw = raw.strip()
        if not raw:
            continue
        key, has_value, val = raw.partition("=")
        key = key.lower()
        if not has_value:
            if key in ("ro", "readonly"):
                m.readonly = True
                continue
            if key in ("rw", "readwrite"):
                m.readonly = False
                continue
            if key == "required":
                m.required = True
                continue
            raise BuildError(f"invalid field '{raw}' must be a key=value pair")
        if key != "type":
            val = expand(val)
        if key == "type":
            if val not in _MOUNT_TYPES:
                raise BuildError(f"unsupported mount type {val!r}")
            m.type = val
            seen_type = True
        elif key in ("target", "dst", "destination"):
            m.target = val
        elif key in ("source", "src"):
            m.source = val
        elif key == "from":
            m.from_ = val
        elif key in ("ro", "readonly"):
            m.readonly = _bool(key, val)
        elif key in ("rw", "readwrite"):
            m.readonly = not _bool(key, val)
        elif key == "required":
            m.required = _bool(key, val)
        elif key == "id":
            m.id = val
        elif key == "sharing":
            if val not in ("shared", "private", "locked"):
                raise BuildError(f"unsupported sharing value {val!r}")
            m.sharing = val
        elif key == "mode":
            try:
                m.mode = int(val, 8)
            except ValueError:
                raise BuildError(f"invalid value for mode: {val!r}")
        elif key in ("uid", "gid"):
            try:
                setattr(m, key, int(val))
            except ValueError:
                raise BuildError(f"invalid value for {key}: {val!r}")
        elif key == "size":
            m.size = val
        elif key == "env":
            m.env = val
        else:
            raise BuildError(f"unexpected key '{key}' in '{raw}'")
    del seen_type
    if m.type == "secret":
        if not m.id and not m.target:
            raise BuildError("invalid secret mount: id or target is required")
        if not m.id:
            m.id = os.path.basename(m.target)
        if not m.target and not m.env:
            m.target = "/run/secrets/" + m.id
    elif m.type == "ssh":
        m.id = m.id or "default"
        m.target = m.target or "/run/buildkit/ssh_agent.0"
    elif not m.target:
        raise BuildError("mount destination (target) is required")
    if m.target and not m.target.startswith("/"):
        m.target = "/" + m.target  # made absolute against the working dir by the caller if needed
    if m.type == "cache" and not m.id:
        m.id = m.target
    if m.readonly is None:
        m.readonly = m.type in ("bind", "secret", "ssh")
    return m


def _bool(key: str, val: str) -> bool:
    low = val.lower()
    if low in ("1", "t", "true", "y", "yes"):
        return True
    if low in ("0", "f", "false", "n", "no"):
        return False
    raise BuildError(f"invalid value for {key}: {val!r}")


def bind_mount(source: str, target: str, *, readonly: bool) -> dict[str, Any]:
    return {"destination": target, "type": "bind", "source": source,
            "options": ["rbind", "ro" if readonly else "rw", "rprivate"]}


def tmpfs_mount(target: str, size: str = "") -> dict[str, Any]:
    opts = ["nosuid", "nodev", "rprivate"]
    if size:
        opts.append(f"size={size}")
    return {"destination": target, "type": "tmpfs", "source": "tmpfs", "options": opts}


def writable_view(source: str, scratch: str | os.PathLike[str]) -> str:
    """An overlay over ``source`` whose writes go to a throwaway upper (``rw`` binds)."""
    upper, work, merged = (os.path.join(scratch, d) for d in ("u", "w", "m"))
    for p in (upper, work, merged):
        os.makedirs(p, exist_ok=True)
    try:
        _mount("overlay", merged, "overlay", 0,
               f"lowerdir={source},upperdir={upper},workdir={work},index=off")
    except OSError:
        # overlay cannot stack on this source (e.g. it is itself an overlay): copy it instead
        import shutil

        remove_dir(merged)
        shutil.copytree(source, merged, symlinks=True)
    return merged


def cache_dir(eng: Engine, m: RunMount, seed: Callable[[str], None] | None = None) -> Any:
    """``with cache_dir(eng, m) as path``: the persistent directory of a cache mount, locked per its
    ``sharing`` mode while in use. (contextlib only here, for the steps that have a cache mount.)"""
    import contextlib

    return contextlib.contextmanager(_cache_dir)(eng, m, seed)


def _cache_dir(eng: Engine, m: RunMount, seed: Callable[[str], None] | None) -> Iterator[str]:
    import fcntl
    import shutil
    import tempfile
    from urllib.parse import quote

    base = os.path.join(eng.root_dir, "build-cache-mounts")
    os.makedirs(base, mode=0o700, exist_ok=True)
    name = quote(m.id, safe="") or "default"
    path = os.path.join(base, name)
    lock_path = os.path.join(base, f"{name}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    tmp: str | None = None
    try:
        if m.sharing == "locked":
            fcntl.flock(fd, fcntl.LOCK_EX)
        elif m.sharing == "private":
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                tmp = tempfile.mkdtemp(prefix=f"{name}.private-", dir=base)
        else:
            fcntl.flock(fd, fcntl.LOCK_SH)
        target = tmp or path
        if tmp is None and not os.path.exists(path):
            fresh = tempfile.mkdtemp(prefix=f".{name}.new-", dir=base)
            if seed is not None:
                seed(fresh)
            os.chmod(fresh, m.mode if m.mode is not None else 0o755)
            os.chown(fresh, m.uid or 0, m.gid or 0)
            try:
                os.rename(fresh, path)
            except OSError:
                shutil.rmtree(fresh, ignore_errors=True)
        elif tmp is not None:
            os.chmod(tmp, m.mode if m.mode is not None else 0o755)
            os.chown(tmp, m.uid or 0, m.gid or 0)
        yield target
    finally:
        os.close(fd)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# COPY / ADD
# --------------------------------------------------------------------------------------------


class Copier:
    """Copies sources into a mounted root as COPY/ADD do.

    Ownership: ``owner`` (``--chown``) if given; else the source's own with ``keep_owner`` (COPY
    --from another stage, ADD of an archive); else root. Modes are kept (or ``--chmod``), mtimes
    kept. Parent directories that do not exist are created 0755 (owned by ``owner`` or root).
    """

    def __init__(self, root: str, *, owner: tuple[int, int] | None = None, chmod: int | None = None,
                 keep_owner: bool = False, exclude: IgnoreMatcher | None = None) -> None:
        self.root = root
        self.owner = owner
        self.chmod = chmod
        self.keep_owner = keep_owner
        self.exclude = exclude
        self._dir_times: list[tuple[str, int, int]] = []

    # -- helpers --
    def _ids(self, st: os.stat_result | None) -> tuple[int, int]:
        if self.owner is not None:
            return self.owner
        if self.keep_owner and st is not None:
            return st.st_uid, st.st_gid
        return 0, 0

    def _host(self, cpath: str) -> str:
        """Host path for container path ``cpath``: parents resolved in the root, leaf not followed."""
        parent, _, leaf = cpath.rstrip("/").rpartition("/")
        return os.path.join(resolve_in_root(self.root, parent or "/"), leaf)

    def ensure_dir(self, cpath: str, template: os.stat_result | None = None) -> None:
        """Create directory ``cpath`` and missing parents (the last one from ``template``)."""
        parts = [p for p in cpath.split("/") if p not in ("", ".", "..")]
        current = ""
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            current = f"{current}/{part}"
            host = resolve_in_root(self.root, current)
            try:
                st = os.stat(host)
            except OSError:
                st = None
            if st is not None:
                if not stat.S_ISDIR(st.st_mode):
                    raise BuildError(f"cannot copy to non-directory: {current}")
                continue
            if last and template is not None:
                mode = self.chmod if self.chmod is not None else stat.S_IMODE(template.st_mode)
                uid, gid = self._ids(template)
                os.mkdir(host, 0o700)
                os.chmod(host, mode)
                os.lchown(host, uid, gid)
                self._dir_times.append((host, template.st_atime_ns, template.st_mtime_ns))
            else:
                uid, gid = self.owner if self.owner is not None else (0, 0)
                os.mkdir(host, 0o755)
                os.chmod(host, 0o755)
                os.lchown(host, uid, gid)

    def copy(self, tree: SourceTree, named: str, resolved: str, dest: str, dest_is_dir: bool) -> None:
        """Copy one source: a directory's contents into ``dest``, a file to ``dest`` (or into it)."""
        st = tree.lstat(resolved)
        if st is None:
            raise BuildError(f"file not found: {named}")
        if stat.S_ISDIR(st.st_mode):
            self.ensure_dir(dest, st if not self._exists(dest) else None)
            base = dest.rstrip("/") or ""
            for sub, cst in tree.walk(resolved):
                if not sub:
                    continue
                if self.exclude and self.exclude.excluded(sub):
                    continue
                self._entry(tree, f"{resolved}/{sub}" if resolved else sub, cst, f"{base}/{sub}")
        else:
            if dest_is_dir:
                self.ensure_dir(dest)
                target = dest.rstrip("/") + "/" + os.path.basename(named.rstrip("/"))
            else:
                parent = dest.rstrip("/").rpartition("/")[0]
                if parent:
                    self.ensure_dir(parent)
                target = dest
            self._entry(tree, resolved, st, target)
        self.finish()

    def _exists(self, cpath: str) -> bool:
        return os.path.lexists(resolve_in_root(self.root, cpath))

    def write_file(self, cpath: str, data: bytes, mode: int = 0o644, mtime_ns: int | None = None) -> None:
        parent = cpath.rstrip("/").rpartition("/")[0]
        if parent:
            self.ensure_dir(parent)
        host = self._host(cpath)
        self._clear(host, want_dir=False)
        fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with open(fd, "wb", closefd=True) as f:
            f.write(data)
        os.chmod(host, self.chmod if self.chmod is not None else mode)
        uid, gid = self.owner if self.owner is not None else (0, 0)
        os.lchown(host, uid, gid)
        if mtime_ns is not None:
            os.utime(host, ns=(mtime_ns, mtime_ns))

    @staticmethod
    def _clear(host: str, *, want_dir: bool) -> bool:
        """Remove what is at ``host`` unless it is a directory and a directory is wanted."""
        try:
            st = os.lstat(host)
        except OSError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if want_dir:
                return True
            from dockyard.store.layers import remove_tree

            remove_tree(host)
            return False
        os.unlink(host)
        return False

    def _entry(self, tree: SourceTree, src_rel: str, st: os.stat_result, cpath: str) -> None:
        host = self._host(cpath)
        src = tree.host_path(src_rel)
        mode = st.st_mode
        uid, gid = self._ids(st)
        perm = self.chmod if self.chmod is not None else stat.S_IMODE(mode)
        if stat.S_ISDIR(mode):
            if not self._clear(host, want_dir=True):
                os.mkdir(host, 0o700)
            os.chmod(host, perm)
            os.lchown(host, uid, gid)
            _copy_xattrs(src, host)
            self._dir_times.append((host, st.st_atime_ns, st.st_mtime_ns))
            return
        self._clear(host, want_dir=False)
        if stat.S_ISREG(mode):
            _copy_file(src, host)
            os.chmod(host, perm)
            os.lchown(host, uid, gid)
            _copy_xattrs(src, host)  # after chown, which drops security.capability
            os.utime(host, ns=(st.st_mtime_ns, st.st_mtime_ns))
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), host)
            os.lchown(host, uid, gid)
            try:
                os.utime(host, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)
            except (OSError, NotImplementedError):
                pass
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            os.mknod(host, stat.S_IFMT(mode) | perm, st.st_rdev)
            os.chmod(host, perm)
            os.lchown(host, uid, gid)
            os.utime(host, ns=(st.st_mtime_ns, st.st_mtime_ns))
        # sockets are skipped, as Docker does

    def finish(self) -> None:
        """Set directory times last (writing entries into a directory changes its mtime)."""
        for host, _atime, mtime in reversed(self._dir_times):
            try:
                os.utime(host, ns=(mtime, mtime))
            except OSError:
                pass
        self._dir_times = []


def _copy_xattrs(src: str, dst: str) -> None:
    """Extended attributes (file capabilities, user.*), never overlayfs' own."""
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith(("trusted.overlay.", "user.overlay.", "security.selinux")):
            continue
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError:
            pass


def _copy_file(src: str, dst: str) -> None:
    sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(sfd).st_size
            copied = 0
            try:
                while copied < size:
                    n = os.copy_file_range(sfd, dfd, size - copied)
                    if n == 0:
                        break
                    copied += n
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                os.lseek(sfd, copied, os.SEEK_SET)
                os.lseek(dfd, copied, os.SEEK_SET)
                while True:
                    buf = os.read(sfd, 1 << 20)
                    if not buf:
                        break
                    os.write(dfd, buf)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


# --------------------------------------------------------------------------------------------
# ADD: archives and URLs
# --------------------------------------------------------------------------------------------


def is_archive(path: str) -> bool:
    """Whether ``path`` is a tar archive (plain, gzip, bzip2, xz or zstd), as ADD auto-extracts."""
    from dockyard.store.compression import PEEK_SIZE, _plausible_tar_header, detect, open_decompressed

    try:
        with open(path, "rb") as f:
            head = f.read(PEEK_SIZE)
            kind = detect(head)
            if kind == "unknown" or not head:
                return False
            if kind == "none":
                return (len(head) >= 262 and head[257:262] == b"ustar") or _plausible_tar_header(head)
            f.seek(0)
            reader = open_decompressed(f)
            block = reader.read(512)
            return (len(block) >= 262 and block[257:262] == b"ustar") or _plausible_tar_header(block)
    except (OSError, DockyardError, EOFError):
        return False


def extract_archive(path: str, dest: str) -> None:
    """Unpack a (compressed) tar into directory ``dest``, never writing outside it."""
    from dockyard.store import layers
    from dockyard.store.compression import open_decompressed

    with open(path, "rb") as f:
        try:
            layers.unpack(open_decompressed(f), dest, whiteouts="apply")
        except DockyardError as e:
            raise BuildError(f"failed to extract {os.path.basename(path)}: {e}")


class Download(MutableRecord):
    path: str
    filename: str
    mtime: float | None
    digest: str
    _fields = ("path", "filename", "mtime", "digest")

    def __init__(self, path: str, filename: str, mtime: float | None, digest: str) -> None:
        self.path = path
        self.filename = filename
        self.mtime = mtime
        self.digest = digest


def fetch_url(url: str, dest_dir: str, checksum: str | None = None) -> Download:
    """Download ``url`` (ADD): the file, the name it gets, its Last-Modified time, its digest."""
    import hashlib
    from email.utils import parsedate_to_datetime
    from urllib.parse import unquote, urlparse

    import httpx

    name = os.path.basename(unquote(urlparse(url).path)) or "__unnamed__"
    path = os.path.join(dest_dir, "download")
    h = hashlib.sha256()
    mtime: float | None = None
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60) as r:
            if r.status_code >= 400:
                raise BuildError(f"failed to load {url}: invalid response status {r.status_code}")
            lm = r.headers.get("last-modified")
            if lm:
                try:
                    mtime = parsedate_to_datetime(lm).timestamp()
                except (TypeError, ValueError):
                    pass
            cd = r.headers.get("content-disposition", "")
            if "filename=" in cd:
                cand = cd.split("filename=", 1)[1].strip().strip('"').split(";")[0]
                if cand and "/" not in cand:
                    name = cand
            with open(path, "wb") as f:
                for chunk in r.iter_bytes():
                    h.update(chunk)
                    f.write(chunk)
    except httpx.HTTPError as e:
        raise BuildError(f"failed to load {url}: {e}")
    digest = "sha256:" + h.hexdigest()
    if checksum:
        want = checksum if ":" in checksum else "sha256:" + checksum
        if not want.startswith("sha256:"):
            raise BuildError(f"unsupported checksum algorithm in {checksum!r} (sha256 only)")
        if want != digest:
            raise BuildError(f"digest mismatch {want}: {digest}")
    os.chmod(path, 0o600)
    when = mtime if mtime is not None else time.time()
    os.utime(path, (when, when))
    return Download(path, name, mtime, digest)
