"""Layer tars <-> directories, in overlayfs' native on-disk format.

Each layer is unpacked into its own directory. A deletion (``.wh.NAME`` in the tar) becomes a 0:0
character device ``NAME`` and an opaque directory (``.wh..wh..opq``) becomes the xattr
``trusted.overlay.opaque=y``, so a container's root is ``mount -t overlay -o lowerdir=L_n:...:L_1``.
``whiteouts="apply"`` instead applies a layer onto a flattened copy of its parents (the copying
fallback where overlayfs is unavailable).

Safety: unpacking never creates, changes or deletes anything outside ``dest``. Every member name is
normalised lexically (leading ``/`` and ``./`` dropped; ``..`` that would climb out of the layer is
refused with ``UnsafeArchive``, except after a leading ``/`` where, as in Docker, it is confined to
the root). Parent directories are then walked one component at a time with
``openat(O_NOFOLLOW|O_DIRECTORY)``, so a symlink anywhere in a parent path (one made earlier by the
same tar or one already in ``dest``) is refused, never followed. Leaves are created with
``O_EXCL|O_NOFOLLOW``/``mknodat``/``symlinkat``/``linkat`` relative to the parent's descriptor after
removing whatever was there (a later entry replaces an earlier one, as in Docker), and metadata is set
through descriptors or with ``AT_SYMLINK_NOFOLLOW``. Symlink targets are stored verbatim: they are
resolved inside the container, never during unpacking.

Everything here is a pure function of the filesystem: no global state, no database.
"""

from __future__ import annotations

import errno
import os
import stat

from dockyard.digest import CHUNK, HashingReader
from dockyard.errors import CorruptData, DockyardError, UnsafeArchive
from dockyard.records import MutableRecord
from dockyard.store import tarstream
from dockyard.store.tarstream import TarInfo

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any, BinaryIO, Literal

    StrPath = str | os.PathLike[str]

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_OPAQUE_XATTRS = (OPAQUE_XATTR, "user.overlay.opaque")

_MAX_SPECIAL_HEADER = 1 << 20  # PAX / GNU long name headers larger than this are refused (as Go does)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ENV_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EMFILE, errno.ENFILE, errno.ENOMEM}


class UnpackStats(MutableRecord):
    entries: int  # tar members processed (PAX / long-name pseudo headers not counted)
    bytes: int  # regular file content written
    whiteouts: int  # deletions and opaque markers applied or recorded
    skipped: list[tuple[str, str]]  # (member or path, why)
    diff_id: str  # sha256 of the whole uncompressed tar stream, read to its end
    tar_size: int  # its length
    _fields = ("entries", "bytes", "whiteouts", "skipped", "diff_id", "tar_size")

    def __init__(self, entries: int = 0, bytes: int = 0, whiteouts: int = 0,
                 skipped: list[tuple[str, str]] | None = None, diff_id: str = "", tar_size: int = 0) -> None:
        self.entries, self.bytes, self.whiteouts = entries, bytes, whiteouts
        self.skipped = [] if skipped is None else skipped
        self.diff_id, self.tar_size = diff_id, tar_size


# ---- names ----------------------------------------------------------------------------------

def _split_name(name: str, member: str, what: str = "its path") -> list[str]:
    """Clean a member name into path components inside the layer, refusing escapes."""
    absolute = name.startswith("/")
    parts: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
            elif not absolute:
                raise UnsafeArchive(f"refusing layer entry {member!r}: {what} climbs out of the layer")
            continue
        parts.append(comp)
    return parts


def _err(member: str, e: OSError, what: str = "") -> DockyardError:
    detail = f"{what}: " if what else ""
    msg = f"unpacking layer entry {member!r}: {detail}{e.strerror or e}"
    if e.errno in _ENV_ERRNOS:
        return DockyardError(msg)
    return CorruptData(msg)


def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _is_whiteout_dev(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _rmtree_at(parent_fd: int, name: str) -> None:
    """Remove directory ``name`` under ``parent_fd`` with everything in it, never following symlinks.

    Iterative and holding one descriptor at a time (climbing back with ``..``), so any depth works:
    ``shutil.rmtree`` recurses and dies with RecursionError beyond about a thousand levels.
    """
    cur = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    stack: list[tuple[str, Iterator[str]]] = [(name, iter(os.listdir(cur)))]
    try:
        while stack:
            _, it = stack[-1]
            for child in it:
                st = _lstat_at(cur, child)
                if st is None:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    nfd = os.open(child, _DIR_FLAGS, dir_fd=cur)
                    os.close(cur)
                    cur = nfd
                    stack.append((child, iter(os.listdir(cur))))
                    break
                os.unlink(child, dir_fd=cur)
            else:
                done, _ = stack.pop()
                if stack:
                    nfd = os.open("..", _DIR_FLAGS, dir_fd=cur)
                    os.close(cur)
                    cur = nfd
                    os.rmdir(done, dir_fd=cur)
    finally:
        os.close(cur)
    os.rmdir(name, dir_fd=parent_fd)


def _remove_at(dir_fd: int, name: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        _rmtree_at(dir_fd, name)
    else:
        os.unlink(name, dir_fd=dir_fd)


def remove_tree(path: StrPath) -> None:
    """Delete ``path`` (a directory tree of any depth, or anything else); missing is fine.

    Never follows symlinks inside the tree. Use it instead of ``shutil.rmtree`` for layer and
    container directories: a layer may hold directories nested deeper than Python's recursion limit.
    """
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    if not name:
        raise ValueError("refusing to remove /")
    pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        st = _lstat_at(pfd, name)
        if st is not None:
            _remove_at(pfd, name, st)
    finally:
        os.close(pfd)


def _ns(value: Any) -> int:
    if isinstance(value, int):
        return value * 1_000_000_000
    return int(round(float(value) * 1_000_000_000))


def _tar_xattrs(ti: TarInfo) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key, value in ti.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            out[key[len("SCHILY.xattr."):]] = value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            import base64
            import urllib.parse

            name = urllib.parse.unquote(key[len("LIBARCHIVE.xattr."):])
            try:
                out[name] = base64.b64decode(value + "=" * (-len(value) % 4))
            except ValueError:
                continue
    return {k: v for k, v in out.items() if k}


# ---- the directory walker ---------------------------------------------------------------------

class _Tree:
    """Resolves parent directories inside the layer root, one O_NOFOLLOW component at a time.

    Keeps the last parent open (tar members come grouped by directory). The cached descriptor is
    always the parent of the operation in progress, and operations only remove children of it, so
    it never goes stale.
    """

    def __init__(self, root_fd: int) -> None:
        self.root = root_fd
        self._key: tuple[str, ...] | None = None
        self._fd = -1

    def close(self) -> None:
        if self._key is not None:
            os.close(self._fd)
            self._key, self._fd = None, -1

    def walk(self, comps: Sequence[str], member: str, *, create: bool, start_fd: int | None = None,
             start: int = 0, created: list[tuple[str, ...]] | None = None) -> int | None:
        """Open ``comps`` as a directory (new descriptor); None if missing and not ``create``."""
        cur = os.dup(self.root if start_fd is None else start_fd)
        try:
            for i in range(start, len(comps)):
                comp = comps[i]
                made = False
                try:
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                except FileNotFoundError:
                    if not create:
                        os.close(cur)
                        return None
                    try:
                        os.mkdir(comp, 0o755, dir_fd=cur)
                        made = True
                    except FileExistsError:
                        pass
                    nfd = self._open_dir(cur, comps, i, member)
                except OSError as e:
                    if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise _err(member, e, "/".join(comps[: i + 1]))
                    nfd = self._open_dir(cur, comps, i, member)
                os.close(cur)
                cur = nfd
                if made:
                    os.fchmod(cur, 0o755)  # independent of the umask, as MkdirAll(0755) under umask 022
                    if created is not None:
                        created.append(tuple(comps[: i + 1]))
            return cur
        except BaseException:
            os.close(cur)
            raise

    def _open_dir(self, cur: int, comps: Sequence[str], i: int, member: str) -> int:
        path = "/".join(comps[: i + 1])
        try:
            return os.open(comps[i], _DIR_FLAGS, dir_fd=cur)
        except OSError as e:
            st = _lstat_at(cur, comps[i])
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise UnsafeArchive(
                    f"refusing layer entry {member!r}: {path!r} is a symbolic link, and writing through"
                    " it could reach outside the layer"
                )
            if st is not None:
                raise CorruptData(f"unpacking layer entry {member!r}: {path!r} is not a directory")
            raise _err(member, e, path)

    def parent(self, parts: Sequence[str], member: str, *, create: bool,
               created: list[tuple[str, ...]] | None = None) -> int | None:
        """Descriptor of the directory holding ``parts[-1]`` (owned by the cache: do not close)."""
        key = tuple(parts[:-1])
        if key == self._key:
            return self._fd
        start_fd, start = None, 0
        if self._key is not None and key[: len(self._key)] == self._key:
            start_fd, start = self._fd, len(self._key)
        fd = self.walk(key, member, create=create, start_fd=start_fd, start=start, created=created)
        if fd is None:
            return None
        self.close()
        self._key, self._fd = key, fd
        return fd


# ---- unpack ---------------------------------------------------------------------------------

class _DirMeta(MutableRecord):
    parts: tuple[str, ...]
    member: str
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    atime_ns: int
    xattrs: dict[str, bytes]
    _fields = ("parts", "member", "mode", "uid", "gid", "mtime_ns", "atime_ns", "xattrs")

    def __init__(self, parts: tuple[str, ...], member: str, mode: int, uid: int, gid: int, mtime_ns: int,
                 atime_ns: int, xattrs: dict[str, bytes]) -> None:
        self.parts, self.member, self.mode, self.uid, self.gid = parts, member, mode, uid, gid
        self.mtime_ns, self.atime_ns, self.xattrs = mtime_ns, atime_ns, xattrs


class _Unpacker:
    def __init__(self, root_fd: int, whiteouts: str, stats: UnpackStats) -> None:
        self.tree = _Tree(root_fd)
        self.mode = whiteouts
        self.stats = stats
        self.dirs: dict[tuple[str, ...], _DirMeta] = {}
        # "apply" mode: every path this layer created or walked through, to survive its own opaque marker.
        self.touched: set[tuple[str, ...]] = set()
        self.tf: tarstream.TarReader | None = None

    def skip(self, what: str, why: str) -> None:
        self.stats.skipped.append((what, why))

    def touch(self, parts: Sequence[str]) -> None:
        if self.mode == "apply":
            for i in range(1, len(parts) + 1):
                self.touched.add(tuple(parts[:i]))

    # -- entries --

    def entry(self, ti: TarInfo) -> None:
        member = ti.name
        self.stats.entries += 1
        parts = _split_name(member, member)
        if not parts:
            if ti.isdir():
                self._record_dir((), member, ti)
                return
            raise UnsafeArchive(f"refusing layer entry {member!r}: it would replace the layer's root")
        leaf = parts[-1]
        if leaf.startswith(WHITEOUT_PREFIX):
            self._whiteout(ti, parts, member)
            return
        if ti.ischr() and ti.devmajor == 0 and ti.devminor == 0 and self.mode == "apply":
            # An overlay-native whiteout inside a tar: in a flattened copy it means "delete".
            self._delete(parts, member)
            return
        if not (ti.isdir() or ti.isreg() or ti.issym() or ti.islnk() or ti.ischr() or ti.isblk()
                or ti.isfifo()):
            self.skip(member, f"unsupported tar entry type {ti.type!r}")
            return
        link_parts: list[str] | None = None
        if ti.islnk():
            if not ti.linkname:
                raise CorruptData(f"layer entry {member!r}: hard link with an empty target")
            link_parts = _split_name(ti.linkname, member, f"its hard link target {ti.linkname!r}")
            if not link_parts:
                raise UnsafeArchive(f"refusing layer entry {member!r}: hard link to the layer's root")
            if link_parts == parts:
                self.skip(member, "hard link to itself")
                return
        pfd = self.tree.parent(parts, member, create=True)
        assert pfd is not None
        self.touch(parts)
        existing = _lstat_at(pfd, leaf)
        if ti.isdir():
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                self._replace(pfd, leaf, existing, member)
                existing = None
            if existing is None:
                try:
                    os.mkdir(leaf, 0o700, dir_fd=pfd)
                except OSError as e:
                    raise _err(member, e)
            self._record_dir(tuple(parts), member, ti)
            return
        if link_parts is not None:
            self._hardlink(pfd, leaf, existing, link_parts, member, ti)
            return
        if existing is not None:
            self._replace(pfd, leaf, existing, member)
        try:
            if ti.isreg():
                self._regular(pfd, leaf, member, ti)
                return
            if ti.issym():
                os.symlink(ti.linkname, leaf, dir_fd=pfd)
            elif ti.isfifo():
                os.mkfifo(leaf, 0o600, dir_fd=pfd)
            else:
                kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK
                try:
                    os.mknod(leaf, 0o600 | kind, os.makedev(ti.devmajor, ti.devminor), dir_fd=pfd)
                except PermissionError:
                    import logging  # lazily: ~6 ms to import, for a rare warning

                    logging.getLogger(__name__).warning("skipping device %s: mknod is not permitted here", member)
                    self.skip(member, "mknod not permitted")
                    return
        except OSError as e:
            raise _err(member, e)
        self._meta_at(pfd, leaf, member, ti, symlink=ti.issym())

    def _replace(self, pfd: int, leaf: str, existing: os.stat_result, member: str) -> None:
        try:
            _remove_at(pfd, leaf, existing)
        except OSError as e:
            raise _err(member, e, "removing what it replaces")

    def _regular(self, pfd: int, leaf: str, member: str, ti: TarInfo) -> None:
        fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=pfd)
        with open(fd, "wb", closefd=True) as f:
            written = 0
            if ti.size:
                assert self.tf is not None
                src = self.tf.extractfile(ti)
                assert src is not None
                while True:
                    chunk = src.read(CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    written += len(chunk)
            if written != ti.size:
                raise CorruptData(f"layer entry {member!r}: truncated ({written} of {ti.size} bytes)")
            f.flush()  # before the chown, which must come after the last write (it clears capabilities)
            self.stats.bytes += written
            self._chown(fd, None, None, member, ti)
            os.fchmod(fd, ti.mode & 0o7777)
            self._xattrs(fd, member, ti, _tar_xattrs(ti))
            mtime, atime = self._times(ti)
            try:
                os.utime(fd, ns=(atime, mtime))
            except (OSError, OverflowError, ValueError):
                self.skip(member, "mtime out of range")

    def _hardlink(self, pfd: int, leaf: str, existing: os.stat_result | None, target: list[str],
                  member: str, ti: TarInfo) -> None:
        tfd = self.tree.walk(target[:-1], member, create=False)
        if tfd is None:
            raise CorruptData(f"layer entry {member!r}: hard link target {ti.linkname!r} not found")
        try:
            tst = _lstat_at(tfd, target[-1])
            if tst is None:
                raise CorruptData(f"layer entry {member!r}: hard link target {ti.linkname!r} not found")
            if stat.S_ISDIR(tst.st_mode):
                raise CorruptData(f"layer entry {member!r}: hard link to a directory {ti.linkname!r}")
            if existing is not None:
                if existing.st_ino == tst.st_ino and existing.st_dev == tst.st_dev:
                    return  # already that very file
                self._replace(pfd, leaf, existing, member)
            try:
                os.link(target[-1], leaf, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            except OSError as e:
                raise _err(member, e, f"hard link to {ti.linkname!r}")
        finally:
            os.close(tfd)
        # Metadata belongs to the shared inode, set by the target's own entry: leave it alone.

    # -- whiteouts --

    def _whiteout(self, ti: TarInfo, parts: list[str], member: str) -> None:
        leaf = parts[-1]
        if leaf == WHITEOUT_OPAQUE:
            self._opaque(parts[:-1], member)
            return
        if leaf.startswith(WHITEOUT_META_PREFIX):
            self.skip(member, "aufs metadata entry")
            return
        name = leaf[len(WHITEOUT_PREFIX):]
        if name in ("", ".", ".."):
            raise UnsafeArchive(f"refusing layer entry {member!r}: whiteout of {name!r}")
        target = parts[:-1] + [name]
        if self.mode == "apply":
            self._delete(target, member)
            return
        pfd = self.tree.parent(target, member, create=True)
        assert pfd is not None
        existing = _lstat_at(pfd, name)
        if existing is not None:
            if _is_whiteout_dev(existing):
                self.stats.whiteouts += 1
                return
            self._replace(pfd, name, existing, member)
        try:
            os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
        except PermissionError:
            raise DockyardError(
                f"unpacking layer entry {member!r}: creating an overlay whiteout needs CAP_MKNOD",
                hint="unpack with whiteouts='apply' into a flattened copy instead",
            )
        except OSError as e:
            raise _err(member, e, "creating whiteout")
        self._chown(None, pfd, name, member, ti)
        self.stats.whiteouts += 1

    def _delete(self, parts: list[str], member: str) -> None:
        pfd = self.tree.parent(parts, member, create=False)
        self.stats.whiteouts += 1
        if pfd is None:
            return
        existing = _lstat_at(pfd, parts[-1])
        if existing is not None:
            self._replace(pfd, parts[-1], existing, member)

    def _opaque(self, dir_parts: list[str], member: str) -> None:
        self.stats.whiteouts += 1
        fd = self.tree.parent([*dir_parts, WHITEOUT_OPAQUE], member, create=True)
        assert fd is not None
        self.touch(dir_parts)
        if self.mode == "overlay":
            try:
                os.setxattr(fd, OPAQUE_XATTR, b"y")
            except OSError as e:
                raise _err(member, e, "marking the directory opaque")
            return
        try:
            self._prune(fd, tuple(dir_parts))
        except OSError as e:
            raise _err(member, e, "emptying the opaque directory")

    def _prune(self, top_fd: int, top: tuple[str, ...]) -> None:
        """Remove what lower layers put under ``top``; keep what this layer created there.

        Iterative with one descriptor at a time, like ``_rmtree_at``.
        """
        cur = os.dup(top_fd)
        stack: list[tuple[tuple[str, ...], Iterator[str]]] = [(top, iter(os.listdir(cur)))]
        try:
            while stack:
                rel, it = stack[-1]
                for name in it:
                    child = (*rel, name)
                    st = _lstat_at(cur, name)
                    if st is None:
                        continue
                    if child not in self.touched:
                        _remove_at(cur, name, st)
                    elif stat.S_ISDIR(st.st_mode):
                        nfd = os.open(name, _DIR_FLAGS, dir_fd=cur)
                        os.close(cur)
                        cur = nfd
                        stack.append((child, iter(os.listdir(cur))))
                        break
                else:
                    stack.pop()
                    if stack:
                        nfd = os.open("..", _DIR_FLAGS, dir_fd=cur)
                        os.close(cur)
                        cur = nfd
        finally:
            os.close(cur)

    # -- metadata --

    def _times(self, ti: TarInfo) -> tuple[int, int]:
        mtime = _ns(ti.mtime)
        atime = mtime
        raw = ti.pax_headers.get("atime")
        if raw:
            try:
                atime = _ns(float(raw))
            except ValueError:
                pass
        return mtime, atime

    def _chown(self, fd: int | None, dir_fd: int | None, name: str | None, member: str,
               ti: TarInfo) -> None:
        try:
            if fd is not None:
                os.fchown(fd, ti.uid, ti.gid)
            else:
                assert name is not None
                os.chown(name, ti.uid, ti.gid, dir_fd=dir_fd, follow_symlinks=False)
        except (PermissionError, OverflowError) as e:
            self.skip(member, f"chown {ti.uid}:{ti.gid}: {e}")
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise _err(member, e, "chown")
            self.skip(member, f"chown {ti.uid}:{ti.gid}: {e.strerror}")

    def _xattrs(self, target: int | str, member: str, ti: TarInfo, xattrs: dict[str, bytes],
                *, is_dir_fd: int | None = None) -> None:
        for key in sorted(xattrs):
            value = xattrs[key]
            if key in _OPAQUE_XATTRS:
                if value == b"y" and is_dir_fd is not None:
                    continue  # handled as an opaque marker when the directory was recorded
                self.skip(member, f"xattr {key}")
                continue
            if ".overlay." in key and key.split(".", 1)[0] in ("trusted", "user"):
                self.skip(member, f"xattr {key} (overlayfs internals)")
                continue
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as e:
                if e.errno in _ENV_ERRNOS:
                    raise _err(member, e, f"xattr {key}")
                self.skip(member, f"xattr {key}: {e.strerror}")

    def _meta_at(self, pfd: int, leaf: str, member: str, ti: TarInfo, *, symlink: bool) -> None:
        self._chown(None, pfd, leaf, member, ti)
        if not symlink:
            # Just created by us, not a symlink, and nothing else writes into dest meanwhile.
            os.chmod(leaf, ti.mode & 0o7777, dir_fd=pfd)
        xattrs = _tar_xattrs(ti)
        if xattrs:
            self._xattrs(f"/proc/self/fd/{pfd}/{leaf}", member, ti, xattrs)
        mtime, atime = self._times(ti)
        try:
            os.utime(leaf, ns=(atime, mtime), dir_fd=pfd, follow_symlinks=False)
        except (OSError, OverflowError, ValueError):
            self.skip(member, "mtime out of range")

    def _record_dir(self, parts: tuple[str, ...], member: str, ti: TarInfo) -> None:
        mtime, atime = self._times(ti)
        xattrs = _tar_xattrs(ti)
        self.dirs[parts] = _DirMeta(parts, member, ti.mode & 0o7777, ti.uid, ti.gid, mtime, atime, xattrs)
        if any(xattrs.get(k) == b"y" for k in _OPAQUE_XATTRS):
            self._opaque(list(parts), member)

    def finish_dirs(self) -> None:
        """Set directories' owners, modes, xattrs and mtimes, after everything inside them."""
        self.tree.close()
        for meta in self.dirs.values():
            try:
                fd = self.tree.walk(meta.parts, meta.member, create=False)
            except CorruptData:
                fd = None  # replaced by a later entry (a symlink or a file): nothing to set
            if fd is None:
                continue
            try:
                ti = TarInfo(meta.member)
                ti.uid, ti.gid = meta.uid, meta.gid
                self._chown(fd, None, None, meta.member, ti)
                os.fchmod(fd, meta.mode)
                self._xattrs(fd, meta.member, ti, meta.xattrs, is_dir_fd=fd)
                try:
                    os.utime(fd, ns=(meta.atime_ns, meta.mtime_ns))
                except (OSError, OverflowError, ValueError):
                    self.skip(meta.member, "mtime out of range")
            finally:
                os.close(fd)


class _CountingReader:
    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.count += len(data)
        return data


def unpack(stream: BinaryIO, dest: StrPath, *,
           whiteouts: Literal["overlay", "apply"] = "overlay") -> UnpackStats:
    """Unpack an uncompressed layer tar from ``stream`` (read once, no seek) into ``dest``.

    ``whiteouts="overlay"``: ``dest`` becomes one overlayfs layer (whiteouts as 0:0 character devices,
    opaque directories as ``trusted.overlay.opaque=y``). ``whiteouts="apply"``: ``dest`` is a flattened
    copy of the layers below, and whiteouts delete from it.

    The stream is read to its end, so ``stats.diff_id`` covers everything (and a caller's tee too).
    Raises ``UnsafeArchive`` for an entry that would reach outside ``dest``, ``CorruptData`` for a
    damaged tar. ``dest`` is created if missing.
    """
    if whiteouts not in ("overlay", "apply"):
        raise ValueError(f"whiteouts must be 'overlay' or 'apply', not {whiteouts!r}")
    stats = UnpackStats()
    hashing = HashingReader(stream)
    counting = _CountingReader(hashing)  # type: ignore[arg-type]
    os.makedirs(dest, exist_ok=True)
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    u = _Unpacker(root_fd, whiteouts, stats)
    try:
        reader = tarstream.TarReader(counting, max_special=_MAX_SPECIAL_HEADER)
        u.tf = reader
        try:
            ti = reader.next()
        except tarstream.HeaderTooLarge as e:
            raise CorruptData(f"layer tar: {e}")
        except tarstream.ReadError as e:
            if counting.count:
                raise CorruptData(f"layer is not a valid tar archive: {e}")
            ti = None  # an empty stream is an empty layer
        while ti is not None:
            try:
                u.entry(ti)
            except tarstream.TarError as e:
                raise CorruptData(f"layer tar is damaged at {ti.name!r}: {e}")
            except OSError as e:
                raise _err(ti.name, e)
            try:
                ti = reader.next()
            except tarstream.HeaderTooLarge as e:
                raise CorruptData(f"layer tar: {e}")
            except tarstream.TarError as e:
                raise CorruptData(f"layer tar is damaged: {e}")
        u.finish_dirs()
        hashing.drain()
    finally:
        u.tree.close()
        os.close(root_fd)
    stats.diff_id = hashing.digest
    stats.tar_size = hashing.size
    return stats


# ---- reading trees --------------------------------------------------------------------------

def _join(root: str, parts: Sequence[str]) -> str:
    return os.path.join(root, *parts) if parts else root


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _sorted_entries(path: str) -> list[tuple[str, os.stat_result]]:
    with os.scandir(path) as it:
        entries = [(e.name, e.stat(follow_symlinks=False)) for e in it]
    entries.sort(key=lambda x: x[0])
    return entries


def _walk(root: str) -> Iterator[tuple[tuple[str, ...], os.stat_result, str]]:
    """(parts, lstat, path) in pre-order, names sorted, never following symlinks; iterative."""
    stack: list[tuple[tuple[str, ...], str, Iterator[tuple[str, os.stat_result]]]] = [
        ((), root, iter(_sorted_entries(root)))
    ]
    while stack:
        parts, dirpath, it = stack[-1]
        for name, st in it:
            p = (*parts, name)
            path = f"{dirpath}/{name}"
            yield p, st, path
            if stat.S_ISDIR(st.st_mode):
                stack.append((p, path, iter(_sorted_entries(path))))
                break
        else:
            stack.pop()


def _exported_xattr(name: str) -> bool:
    if ".overlay." in name:
        return False
    return name == "security.capability" or name.startswith(("user.", "trusted."))


def _xattr_names(path: str) -> list[str]:
    try:
        return os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []


def _read_xattrs(path: str, names: list[str] | None = None) -> dict[str, bytes]:
    """The xattrs a layer tar carries: security.capability, user.* and trusted.*, minus overlayfs'."""
    if names is None:
        names = _xattr_names(path)
    out: dict[str, bytes] = {}
    for name in sorted(names):
        if not _exported_xattr(name):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return out


def _is_opaque(path: str, names: list[str] | None = None) -> bool:
    for name in _OPAQUE_XATTRS:
        if names is not None and name not in names:
            continue
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def _check_overlay_features(names: list[str], rel: str) -> None:
    for name in ("trusted.overlay.metacopy", "trusted.overlay.redirect"):
        if name in names:
            raise CorruptData(
                f"{rel}: overlay upper uses {name.split('.')[-1]}, which a layer tar cannot express",
                hint="mount overlays with metacopy=off,redirect_dir=off",
            )


class _TarOut:
    """A deterministic PAX tar writer: no user/group names, whole-second mtimes, sorted xattrs."""

    def __init__(self, out: BinaryIO) -> None:
        self.tf = tarstream.TarWriter(out)  # tarfile's "w|" PAX stream, byte for byte
        self.links: dict[tuple[int, int], str] = {}

    def close(self) -> None:
        self.tf.close()

    @staticmethod
    def _info(name: str, st: os.stat_result | None) -> TarInfo:
        ti = TarInfo(name)
        ti.uname = ti.gname = ""
        if st is not None:
            ti.mode = stat.S_IMODE(st.st_mode)
            ti.uid, ti.gid = st.st_uid, st.st_gid
            ti.mtime = st.st_mtime_ns // 1_000_000_000
        else:
            ti.mode, ti.uid, ti.gid, ti.mtime = 0, 0, 0, 0
        return ti

    def marker(self, parts: Sequence[str], leaf: str, st: os.stat_result | None) -> None:
        """A ``.wh.`` entry: a whiteout or an opaque-directory marker (empty regular file)."""
        ti = self._info("/".join([*parts, leaf]), st)
        ti.type = tarstream.REGTYPE
        ti.mode &= 0o777
        ti.size = 0
        self.tf.addfile(ti)

    def entry(self, path: str, parts: Sequence[str], st: os.stat_result,
              xattr_names: list[str] | None = None) -> bool:
        """Add the entry at ``path`` as ``parts``; False if it cannot be in a tar (a socket)."""
        name = "/".join(parts)
        ti = self._info(name, st)
        mode = st.st_mode
        ti.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                          for k, v in _read_xattrs(path, xattr_names).items()}
        if stat.S_ISDIR(mode):
            ti.type = tarstream.DIRTYPE
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                ti.type = tarstream.LNKTYPE
                ti.linkname = self.links[key]
                self.tf.addfile(ti)
                return True
            if st.st_nlink > 1:
                self.links[key] = name
            ti.type = tarstream.REGTYPE
            ti.size = st.st_size
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with open(fd, "rb", closefd=True) as f:
                self.tf.addfile(ti, f)
            return True
        elif stat.S_ISLNK(mode):
            ti.type = tarstream.SYMTYPE
            ti.linkname = os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            ti.type = tarstream.CHRTYPE if stat.S_ISCHR(mode) else tarstream.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            ti.type = tarstream.FIFOTYPE
        else:
            return False
        self.tf.addfile(ti)
        return True


# ---- overlay lookups in lower layers ----------------------------------------------------------

def _lower_layers_at(lower_dirs: Sequence[str], parts: Sequence[str]) -> tuple[str | None, list[str]]:
    """Resolve ``parts`` through the lower layers as overlayfs would (``lower_dirs`` topmost first).

    Returns (kind, layers): kind None if the path does not exist in the merged lower view, "dir" or
    "other"; layers are the layers whose directory at ``parts`` is merged (for listing), topmost first.
    """
    layers = list(lower_dirs)
    for i in range(len(parts)):
        sub = parts[: i + 1]
        last = i == len(parts) - 1
        merged: list[str] = []
        found: str | None = None
        for layer in layers:
            st = _lstat(_join(layer, sub))
            if st is None:
                continue
            if _is_whiteout_dev(st) or not stat.S_ISDIR(st.st_mode):
                if found is None:
                    found = "whiteout" if _is_whiteout_dev(st) else "other"
                break
            found = found or "dir"
            merged.append(layer)
            if _is_opaque(_join(layer, sub)):
                break
        if found is None or found == "whiteout":
            return None, []
        if found == "other":
            return ("other", []) if last else (None, [])
        layers = merged
    return "dir", layers


def _lower_names(lower_dirs: Sequence[str], parts: Sequence[str]) -> list[str]:
    kind, layers = _lower_layers_at(lower_dirs, parts)
    if kind != "dir":
        return []
    names: set[str] = set()
    for layer in layers:
        try:
            names.update(os.listdir(_join(layer, parts)))
        except OSError:
            continue
    return sorted(n for n in names if _lower_layers_at(lower_dirs, [*parts, n])[0] is not None)


# ---- overlay upper -> layer tar / changes ------------------------------------------------------

def write_diff_tar(upper: StrPath, out: BinaryIO, *,
                   lower_dirs: Sequence[StrPath] | None = None) -> None:
    """Write the layer tar of an overlayfs upper dir to ``out`` (PAX, deterministic order and bytes).

    Whiteout devices become ``.wh.NAME`` entries and opaque directories a directory entry followed by
    ``.wh..wh..opq``. With ``lower_dirs`` (topmost first, as in ``lowerdir=``), whiteouts of paths that
    no lower layer has are dropped. Mtimes are kept to the second; owners numerically, no names.
    """
    root = str(upper)
    lowers = [str(p) for p in lower_dirs] if lower_dirs is not None else None
    w = _TarOut(out)
    try:
        for parts, st, path in _walk(root):
            if _is_whiteout_dev(st):
                if lowers is not None and _lower_layers_at(lowers, parts)[0] is None:
                    continue
                w.marker(parts[:-1], WHITEOUT_PREFIX + parts[-1], st)
                continue
            names = _xattr_names(path)
            _check_overlay_features(names, "/".join(parts))
            w.entry(path, parts, st, names)
            if stat.S_ISDIR(st.st_mode) and _is_opaque(path, names):
                w.marker(parts, WHITEOUT_OPAQUE, st)
    finally:
        w.close()


def changes(upper: StrPath, lower_dirs: Sequence[StrPath]) -> list[tuple[str, str]]:
    """``docker diff`` of an overlay upper dir: sorted ``("A"|"C"|"D", "/path")``.

    ``lower_dirs`` are the image layers topmost first (the ``lowerdir=`` order). A path present in the
    merged lower view is C, else A; a whiteout is D; an opaque directory that hides a lower directory
    is C, with D for every lower entry it hides that the upper does not have again. Directories
    copied up because something inside changed appear as C, as Docker shows them.
    """
    root = str(upper)
    lowers = [str(p) for p in lower_dirs]
    result: dict[str, str] = {}
    for parts, st, fs_path in _walk(root):
        path = "/" + "/".join(parts)
        if _is_whiteout_dev(st):
            result[path] = "D"
            continue
        in_lower = _lower_layers_at(lowers, parts)[0] is not None
        result[path] = "C" if in_lower else "A"
        if stat.S_ISDIR(st.st_mode) and in_lower and _is_opaque(fs_path):
            present = set(os.listdir(fs_path))
            for name in _lower_names(lowers, parts):
                if name not in present:
                    result[f"{path}/{name}"] = "D"
    return sorted(((k, p) for p, k in result.items()), key=lambda x: x[1])


# ---- copying fallback: applying layer dirs onto a flattened copy ---------------------------------

def copy_layer_apply(layer: StrPath, dest: StrPath) -> UnpackStats:
    """Apply one overlay-format layer directory onto ``dest``, a flattened copy of the layers below.

    For the copying snapshotter (no overlayfs): call it for each layer, bottom first. Whiteout
    devices delete, opaque directories empty what lower layers left there, and everything else is
    copied with its owner, mode, xattrs, hard links and (whole-second) mtimes. It streams the layer
    as a tar through ``unpack(whiteouts="apply")``, so the same refusal to write through symlinks
    protects the copy: a symlink from a lower layer is replaced, never followed.
    """
    import threading

    rfd, wfd = os.pipe()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            with open(wfd, "wb", closefd=True) as f:
                write_diff_tar(layer, f)
        except BrokenPipeError:
            pass  # the reader stopped first: its error is the one to report
        except BaseException as e:  # handed to the calling thread
            errors.append(e)

    t = threading.Thread(target=produce, name="copy-layer", daemon=True)
    t.start()
    try:
        with open(rfd, "rb", closefd=True) as f:
            stats = unpack(f, dest, whiteouts="apply")
    except BaseException:
        t.join()
        if errors:
            raise errors[0] from None
        raise
    t.join()
    if errors:
        raise errors[0]
    return stats


# ---- copying fallback: full copy vs its base -------------------------------------------------------

def _same_time(a: os.stat_result, b: os.stat_result) -> bool:
    sa, na = divmod(a.st_mtime_ns, 1_000_000_000)
    sb, nb = divmod(b.st_mtime_ns, 1_000_000_000)
    return sa == sb and (na == nb or na == 0 or nb == 0)


def _same_content(a: str, b: str) -> bool:
    fa = os.open(a, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fb = os.open(b, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            while True:
                ca = os.read(fa, CHUNK)
                cb = os.read(fb, CHUNK)
                if ca != cb:
                    return False
                if not ca:
                    return True
        finally:
            os.close(fb)
    finally:
        os.close(fa)


def _entry_changed(lp: str, ls: os.stat_result, up: str, us: os.stat_result, compare_content: bool) -> bool:
    if stat.S_IFMT(ls.st_mode) != stat.S_IFMT(us.st_mode):
        return True
    if (ls.st_mode, ls.st_uid, ls.st_gid) != (us.st_mode, us.st_uid, us.st_gid):
        return True
    if _read_xattrs(lp) != _read_xattrs(up):
        return True
    if stat.S_ISDIR(us.st_mode):
        return False  # a directory's size and mtime change with its entries: judged by them instead
    if ls.st_rdev != us.st_rdev or ls.st_size != us.st_size or not _same_time(ls, us):
        return True
    if stat.S_ISLNK(us.st_mode):
        return os.readlink(lp) != os.readlink(up)
    if stat.S_ISREG(us.st_mode) and compare_content:
        return not _same_content(lp, up)
    return False


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _compare_trees(lower: str, upper: str, compare_content: bool) -> list[tuple[str, tuple[str, ...]]]:
    """(kind, parts) in tar order: pre-order, names sorted, changed parents before their children."""
    out: list[tuple[str, tuple[str, ...]]] = []

    class Frame:
        __slots__ = ("parts", "it", "idx", "meta_changed", "changed")

        def __init__(self, parts: tuple[str, ...], it: Iterator[str], idx: int, meta_changed: bool) -> None:
            self.parts, self.it, self.idx, self.meta_changed, self.changed = parts, it, idx, meta_changed, False

    def names(parts: tuple[str, ...]) -> Iterator[str]:
        return iter(sorted(set(_listdir(_join(lower, parts))) | set(_listdir(_join(upper, parts)))))

    def add_all(parts: tuple[str, ...]) -> None:
        for sub, _st, _path in _walk(_join(upper, parts)):
            out.append(("A", (*parts, *sub)))

    stack = [Frame((), names(()), 0, False)]
    while stack:
        f = stack[-1]
        for name in f.it:
            p = (*f.parts, name)
            lp, up = _join(lower, p), _join(upper, p)
            ls, us = _lstat(lp), _lstat(up)
            if us is None:
                if ls is not None:
                    out.append(("D", p))
                    f.changed = True
                continue
            if ls is None or (stat.S_ISDIR(us.st_mode) and not stat.S_ISDIR(ls.st_mode)):
                out.append(("A" if ls is None else "C", p))
                if stat.S_ISDIR(us.st_mode):
                    add_all(p)
                f.changed = True
                continue
            if stat.S_ISDIR(us.st_mode):
                stack.append(Frame(p, names(p), len(out), _entry_changed(lp, ls, up, us, False)))
                break
            if _entry_changed(lp, ls, up, us, compare_content):
                out.append(("C", p))
                f.changed = True
        else:
            stack.pop()
            if f.parts and (f.changed or f.meta_changed):
                out.insert(f.idx, ("C", f.parts))
                stack[-1].changed = True
    return out


def changes_dirs(lower: StrPath, upper_full: StrPath, *,
                 compare_content: bool = True) -> list[tuple[str, str]]:
    """``docker diff`` between a base tree and its full, modified copy: sorted ``(kind, "/path")``."""
    found = _compare_trees(str(lower), str(upper_full), compare_content)
    return sorted(((k, "/" + "/".join(p)) for k, p in found), key=lambda x: x[1])


def diff_dirs(lower: StrPath, upper_full: StrPath, out: BinaryIO, *,
              compare_content: bool = True) -> None:
    """Write the layer tar that turns ``lower`` into ``upper_full`` (the copying fallback's commit).

    Added and changed entries (type, mode, owner, xattrs, size, mtime, content or link target) are
    written from ``upper_full``, deleted ones as ``.wh.NAME``; directories holding changes are
    included, as Docker does. Deterministic like ``write_diff_tar``; whiteouts carry mtime 0.
    """
    upper = str(upper_full)
    found = _compare_trees(str(lower), upper, compare_content)
    w = _TarOut(out)
    try:
        for kind, parts in found:
            if kind == "D":
                w.marker(parts[:-1], WHITEOUT_PREFIX + parts[-1], None)
                continue
            path = _join(upper, parts)
            st = _lstat(path)
            if st is not None:
                w.entry(path, parts, st)
    finally:
        w.close()


# ---- sizes ----------------------------------------------------------------------------------

def dir_size(path: StrPath) -> int:
    """Apparent size of everything under ``path`` that is not a directory; hard links counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for _parts, st, _path in _walk(str(path)):
        if stat.S_ISDIR(st.st_mode):
            continue
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
        total += st.st_size
    return total
