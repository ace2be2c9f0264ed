"""dockyard.store.tarstream against CPython's tarfile: the writer's bytes and the reader's members.

The writer must produce exactly what ``tarfile.open(mode="w|", format=PAX_FORMAT, encoding="utf-8",
errors="surrogateescape")`` produces, and the reader must yield what ``tarfile.open(mode="r|")`` yields
(every TarInfo field, the PAX headers, the data, and where and how it fails), for trees with every
kind of awkward entry, archives written by GNU tar and by tarfile in its other formats, hand-made
headers and the damaged and malicious archives other tests use.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from dockyard.store import layers, tarstream
from tests.unit import test_hostile_tars

T0 = 1_600_000_000
CAP = b"\x01\x00\x00\x02" + b"\x00\x04\x00\x00" + b"\x00" * 12
MAX_SPECIAL = 1 << 20
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown, trusted.* xattrs)")
needs_gnu_tar = pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")
# The oracle for damaged and hand-made headers is tarfile as the reader was checked against it (CPython
# 3.11.7): earlier 3.11 releases (Debian 12 has 3.11.2) read some broken PAX headers and cut archives
# differently. Well-formed archives read the same on every 3.11, and those tests run everywhere.
oracle_tarfile = pytest.mark.skipif(sys.version_info < (3, 11, 7),
                                    reason="tarfile before 3.11.7 reads damaged PAX headers differently")


# ---- the writer as it was: tarfile under the same interface ----------------------------------------

class TarfileTarOut:
    """layers._TarOut before tarstream (the reference the new writer must match byte for byte)."""

    def __init__(self, out: Any) -> None:
        self.tf = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,  # noqa: SIM115
                               encoding="utf-8", errors="surrogateescape")
        self.links: dict[tuple[int, int], str] = {}

    def close(self) -> None:
        self.tf.close()

    @staticmethod
    def _info(name: str, st: os.stat_result | None) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.uname = ti.gname = ""
        if st is not None:
            ti.mode = stat.S_IMODE(st.st_mode)
            ti.uid, ti.gid = st.st_uid, st.st_gid
            ti.mtime = st.st_mtime_ns // 1_000_000_000
        else:
            ti.mode, ti.uid, ti.gid, ti.mtime = 0, 0, 0, 0
        return ti

    def marker(self, parts: Any, leaf: str, st: os.stat_result | None) -> None:
        ti = self._info("/".join([*parts, leaf]), st)
        ti.type = tarfile.REGTYPE
        ti.mode &= 0o777
        ti.size = 0
        self.tf.addfile(ti)

    def entry(self, path: str, parts: Any, st: os.stat_result, xattr_names: list[str] | None = None) -> bool:
        name = "/".join(parts)
        ti = self._info(name, st)
        mode = st.st_mode
        ti.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                          for k, v in layers._read_xattrs(path, xattr_names).items()}
        if stat.S_ISDIR(mode):
            ti.type = tarfile.DIRTYPE
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                ti.type = tarfile.LNKTYPE
                ti.linkname = self.links[key]
                self.tf.addfile(ti)
                return True
            if st.st_nlink > 1:
                self.links[key] = name
            ti.type = tarfile.REGTYPE
            ti.size = st.st_size
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with open(fd, "rb", closefd=True) as f:
                self.tf.addfile(ti, f)
            return True
        elif stat.S_ISLNK(mode):
            ti.type = tarfile.SYMTYPE
            ti.linkname = os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            ti.type = tarfile.FIFOTYPE
        else:
            return False
        self.tf.addfile(ti)
        return True


def both_ways(fn: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, bytes]:
    """fn(out) with layers' own writer, then with the tarfile one."""
    new = io.BytesIO()
    fn(new)
    with monkeypatch.context() as m:
        m.setattr(layers, "_TarOut", TarfileTarOut)
        old = io.BytesIO()
        fn(old)
    return new.getvalue(), old.getvalue()


# ---- a tree with everything awkward ------------------------------------------------------------------

LONG_DIR = "d" * 60 + "/" + "e" * 60 + "/" + "f" * 50  # 172 characters: no ustar prefix split fits


def _w(p: Path | bytes, data: bytes) -> None:
    with open(p, "wb") as f:
        f.write(data)


def make_tree(root: Path, *, devices: bool = True) -> None:
    rnd = random.Random(7)
    root.mkdir(parents=True)
    (root / "dir/sub").mkdir(parents=True)
    for size in (0, 1, 100, 511, 512, 513, 1024, 10240, 10241, 100_000, (1 << 20) + 17, 3 << 20):
        _w(root / f"dir/f{size}", rnd.randbytes(size))
    (root / ("a" * 99)).write_bytes(b"99")
    (root / ("b" * 100)).write_bytes(b"100")
    (root / ("c" * 101)).write_bytes(b"101")
    (root / LONG_DIR).mkdir(parents=True)
    (root / LONG_DIR / ("g" * 90)).write_bytes(b"long")  # > 255 bytes as a path
    (root / "ünïcødé").mkdir()
    (root / "ünïcødé/日本語.txt").write_bytes("ça va".encode())
    (root / "emoji-\U0001f600").write_bytes(b"")
    bad = os.fsencode(root) + b"/bad-\xff\xfe-name"
    _w(bad, b"not utf-8")
    _w(os.fsencode(root) + b"/dir/\xe9t\xe9", b"latin-1")
    os.symlink("dir/f1", root / "short-link")
    os.symlink("t/" * 80 + "end", root / "long-link")
    os.symlink("ziel-ü", root / "unicode-link")
    os.symlink(b"\xff\xfe-target", os.fsencode(root) + b"/bad-link")
    os.symlink("/" + "x" * 99, root / "link-99")
    os.symlink("/" + "x" * 100, root / "link-101")
    (root / "hard-a").write_bytes(b"shared")
    os.link(root / "hard-a", root / "hard-b")
    os.link(root / "hard-a", root / LONG_DIR / "hard-c")
    os.mkfifo(root / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(root / "sock"))  # not representable in a tar: skipped by both
    finally:
        sock.close()
    os.setxattr(root / "dir/f1", "user.binary", b"\xff\x00\xfe value")
    os.setxattr(root / "dir/f1", "user.text", "héllo wörld".encode())
    os.setxattr(root / "dir/f100", "user.long", b"v" * 3000)
    os.setxattr(root / "dir", "user.on-a-dir", b"1")
    os.chmod(root / "dir/f1", 0o4755)
    os.chmod(root / "dir/f100", 0o2711)
    os.chmod(root / "dir/sub", 0o1777)
    if devices:
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mknod(root / "blk", stat.S_IFBLK | 0o660, os.makedev(8, 1))
        os.mknod(root / "bigdev", stat.S_IFCHR | 0o600, os.makedev(4095, 1048575))
        os.mknod(root / "gone", stat.S_IFCHR, os.makedev(0, 0))  # an overlay whiteout: a .wh. marker
        (root / "opaque").mkdir()
        os.setxattr(root / "opaque", "trusted.overlay.opaque", b"y")
        (root / "opaque/kept").write_bytes(b"k")
        os.setxattr(root / "dir/f0", "security.capability", CAP)
        os.setxattr(root / "dir/f0", "trusted.note", b"\x80\x81")
        os.chown(root / "dir/f1", 3_000_000, 2_097_152, follow_symlinks=False)  # beyond 7 octal digits
        os.chown(root / "dir/f100", 2_097_151, 2_097_151, follow_symlinks=False)  # the largest that fit
        os.chown(root / "long-link", 4_000_000_000, 5, follow_symlinks=False)
    times = {"dir/f0": 0, "dir/f1": T0 * 10**9 + 999_999_999, "dir/f100": -5 * 10**9 - 1,
             "a" * 99: (8**11 - 1) * 10**9, "b" * 100: 8**11 * 10**9}
    for rel, ns in times.items():
        os.utime(root / rel, ns=(ns, ns), follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root), topdown=False):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, os.fsencode(root)).decode("utf-8", "surrogateescape")
            if rel not in times:
                os.utime(p, ns=(T0 * 10**9 + 123, T0 * 10**9 + 123), follow_symlinks=False)


# ---- the writer -------------------------------------------------------------------------------------

@needs_root
def test_write_diff_tar_is_byte_identical_to_tarfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "tree"
    make_tree(root)
    new, old = both_ways(lambda out: layers.write_diff_tar(root, out), monkeypatch)
    assert len(new) % tarfile.RECORDSIZE == 0
    assert new == old
    names = tarfile.open(fileobj=io.BytesIO(new)).getnames()  # noqa: SIM115
    assert "sock" not in names and ".wh.gone" in names and "opaque/.wh..wh..opq" in names
    assert "bad-\udcff\udcfe-name" in names and LONG_DIR + "/" + "g" * 90 in names


@needs_root
def test_diff_dirs_is_byte_identical_to_tarfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    make_tree(lower)
    make_tree(upper)
    (upper / "dir/f1").write_bytes(b"changed")
    os.unlink(upper / "dir/f512")
    shutil.rmtree(upper / "ünïcødé")
    (upper / "new" / ("n" * 120)).mkdir(parents=True)
    os.utime(upper / "dir", ns=(1, 1))
    new, old = both_ways(lambda out: layers.diff_dirs(lower, upper, out), monkeypatch)
    assert new == old
    assert ".wh.ünïcødé" in tarfile.open(fileobj=io.BytesIO(new)).getnames()  # noqa: SIM115


def test_non_utf8_xattr_name_fails_as_tarfile_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "f").write_bytes(b"x")
    os.setxattr(root / "f", b"user.\xff".decode("utf-8", "surrogateescape"), b"v")
    errors = []
    for patch in (False, True):
        with monkeypatch.context() as m:
            if patch:
                m.setattr(layers, "_TarOut", TarfileTarOut)
            with pytest.raises(UnicodeEncodeError) as ei:
                layers.write_diff_tar(root, io.BytesIO())
            errors.append(str(ei.value))
    assert errors[0] == errors[1]


def _reference(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    tf = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8",  # noqa: SIM115
                      errors="surrogateescape")
    for ti, data in entries:
        tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    tf.close()
    return out.getvalue()


def _ours(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    w = tarstream.TarWriter(out)
    for ti, data in entries:
        mine = tarstream.TarInfo(ti.name)
        for f in ("mode", "uid", "gid", "size", "mtime", "type", "linkname", "uname", "gname", "devmajor",
                  "devminor"):
            setattr(mine, f, getattr(ti, f))
        mine.pax_headers = dict(ti.pax_headers)
        w.addfile(mine, io.BytesIO(data) if data is not None else None)
    w.close()
    return out.getvalue()


NAME_PARTS = ["a", "bin", "x" * 40, "y" * 99, "z" * 160, "ünï", "日本", "\udcff\udcfe", "sp ace", "=eq=",
              "new\nline", "\U0001f600", "."]
STRINGS = ["", "root", "u" * 32, "u" * 33, "wörld", "\udc80x", "g" * 31]
NUMBERS = [0, 1, 1000, 2_097_151, 2_097_152, 4_294_967_295, 10**12]
TIMES: list[int | float] = [0, 1, T0, 8**11 - 1, 8**11, -1, 1.5, 2.5, T0 + 0.25, T0 + 0.5, 1e20]
SIZES = [0, 1, 511, 512, 513, 1024, 4096, 10239, 10240, 70_000]
PAX_VALUES = ["1", "plain", "ünï", "\udcff-bad", "x" * 500, "line\nbreak", "=", ""]
TYPES = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
         tarfile.FIFOTYPE, tarfile.CONTTYPE, b"V"]


def _random_info(rnd: random.Random) -> tuple[tarfile.TarInfo, bytes | None]:
    name = "/".join(rnd.choice(NAME_PARTS) for _ in range(rnd.randint(1, 4)))
    if rnd.random() < 0.2:
        name += "/"
    if rnd.random() < 0.1:
        name = "/" + name
    ti = tarfile.TarInfo(name)
    ti.type = rnd.choice(TYPES)
    ti.mode = rnd.choice([0, 0o644, 0o7777, 0o100755, 0o40755])
    ti.uid, ti.gid = rnd.choice(NUMBERS), rnd.choice(NUMBERS)
    ti.mtime = rnd.choice(TIMES)
    ti.uname, ti.gname = rnd.choice(STRINGS), rnd.choice(STRINGS)
    if ti.type in (tarfile.SYMTYPE, tarfile.LNKTYPE) or rnd.random() < 0.1:
        ti.linkname = "/".join(rnd.choice(NAME_PARTS) for _ in range(rnd.randint(1, 3)))
    if ti.type in (tarfile.CHRTYPE, tarfile.BLKTYPE) or rnd.random() < 0.1:
        ti.devmajor, ti.devminor = rnd.choice([0, 1, 4095, 2_097_151]), rnd.choice([0, 3, 1_048_575])
    for _ in range(rnd.choice([0, 0, 1, 3])):
        key = rnd.choice(["comment", "path", "linkpath", "uid", "mtime", "size", "uname", "SCHILY.xattr.user.a",
                          "SCHILY.xattr.user.b", "LIBARCHIVE.xattr.user.c", "atime", "ünï-key"])
        ti.pax_headers = {**ti.pax_headers, key: rnd.choice(PAX_VALUES)}
    data: bytes | None = None
    if ti.type in (tarfile.REGTYPE, tarfile.CONTTYPE, b"V") and rnd.random() < 0.8:
        data = rnd.randbytes(rnd.choice(SIZES))
        ti.size = len(data)
    return ti, data


def test_random_members_are_byte_identical() -> None:
    rnd = random.Random(20240601)
    for _ in range(400):
        entries = [_random_info(rnd) for _ in range(rnd.randint(1, 6))]
        assert _ours(entries) == _reference(entries), [e[0].get_info() for e in entries]


@pytest.mark.parametrize("field, value", [
    ("name", "n" * 100), ("name", "n" * 101), ("linkname", "l" * 100), ("linkname", "l" * 101),
    ("uname", "u" * 32), ("uname", "u" * 33), ("gname", "ü"), ("uid", 2_097_151), ("uid", 2_097_152),
    ("gid", 8**7), ("size", 8**11 - 1), ("mtime", 8**11 - 1), ("mtime", 8**11), ("mtime", -1),
    ("mtime", 0.5), ("mtime", 1.5), ("mtime", float(T0)), ("mode", 0o177777), ("name", "\udcff"),
])
def test_field_limits(field: str, value: Any) -> None:
    ti = tarfile.TarInfo("f")
    setattr(ti, field, value)
    if field == "size":
        ti.type = tarfile.SYMTYPE  # a header with no data following
    assert _ours([(ti, None)]) == _reference([(ti, None)])


def test_dir_gets_a_slash_and_pax_path_keeps_it() -> None:
    for name in ("d", "d/", "ü" * 3, "x" * 99, "x" * 100):
        ti = tarfile.TarInfo(name)
        ti.type = tarfile.DIRTYPE
        assert _ours([(ti, None)]) == _reference([(ti, None)])


def test_binary_pax_values_use_hdrcharset_binary() -> None:
    ti = tarfile.TarInfo("f")
    ti.pax_headers = {"SCHILY.xattr.user.v": "\udcff\udcfe", "comment": "ok"}
    ours = _ours([(ti, None)])
    assert ours == _reference([(ti, None)])
    assert b"21 hdrcharset=BINARY\n" in ours and b"SCHILY.xattr.user.v=\xff\xfe\n" in ours


def test_pax_record_lengths_at_digit_boundaries() -> None:
    for n in range(80, 130):  # record lengths crossing 99 -> 100 and beyond
        ti = tarfile.TarInfo("f")
        ti.pax_headers = {"comment": "c" * n}
        assert _ours([(ti, None)]) == _reference([(ti, None)])
    for n in range(980, 1010):
        ti = tarfile.TarInfo("f")
        ti.pax_headers = {"comment": "c" * n}
        assert _ours([(ti, None)]) == _reference([(ti, None)])


def test_device_number_overflow_raises_like_tarfile() -> None:
    ti = tarfile.TarInfo("dev")
    ti.type, ti.devmajor = tarfile.CHRTYPE, 8**7
    with pytest.raises(ValueError, match="overflow in number field"):
        _reference([(ti, None)])
    with pytest.raises(ValueError, match="overflow in number field"):
        _ours([(ti, None)])


def test_short_file_fails_and_grown_file_is_cut_to_size() -> None:
    w = tarstream.TarWriter(io.BytesIO())
    ti = tarstream.TarInfo("f")
    ti.size = 2000
    with pytest.raises(OSError, match="unexpected end of data"):
        w.addfile(ti, io.BytesIO(b"x" * 1999))
    ref = tarfile.open(fileobj=io.BytesIO(), mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115
    ref_ti = tarfile.TarInfo("f")
    ref_ti.size = 2000
    with pytest.raises(OSError, match="unexpected end of data"):
        ref.addfile(ref_ti, io.BytesIO(b"x" * 1999))
    grown = tarfile.TarInfo("f")
    grown.size = 700
    assert _ours([(grown, b"y" * 5000)]) == _reference([(grown, b"y" * 5000)])


def test_close_pads_to_a_record_and_is_idempotent() -> None:
    out = io.BytesIO()
    w = tarstream.TarWriter(out)
    w.close()
    w.close()
    assert out.getvalue() == b"\0" * tarfile.RECORDSIZE == _reference([])


# ---- the reader ---------------------------------------------------------------------------------------

FIELDS = ("name", "mode", "uid", "gid", "size", "mtime", "chksum", "type", "linkname", "uname", "gname",
          "devmajor", "devminor", "offset", "offset_data", "pax_headers", "sparse")
DATA_CAP = 8 << 20


class OneWay:
    """A stream with read() only: no seek, no tell."""

    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)


class TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


class LimitedTarInfo(tarfile.TarInfo):
    """What layers' _SafeTarInfo did: refuse big PAX / long-name headers before reading them."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        special = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                   tarfile.GNUTYPE_LONGLINK)
        if self.type in special and self.size > MAX_SPECIAL:
            raise TooLarge(self.size)
        return super()._proc_member(tarfile_)  # type: ignore[misc]


def _record(ti: Any) -> dict[str, Any]:
    rec = {f: getattr(ti, f) for f in FIELDS}
    rec["mtime_type"] = type(ti.mtime).__name__
    rec["tests"] = (ti.isreg(), ti.isdir(), ti.issym(), ti.islnk(), ti.ischr(), ti.isblk(), ti.isfifo(),
                    ti.isdev(), ti.issparse())
    return rec


def _read_all(f: Any) -> bytes:
    parts, total = [], 0
    while total < DATA_CAP:
        chunk = f.read(min(65536, DATA_CAP - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


def tarfile_view(data: bytes) -> tuple[list[dict[str, Any]], tuple[Any, ...]]:
    """Members and outcome as tarfile reads ``data`` the way unpack used to (stream, size limits)."""
    members: list[dict[str, Any]] = []
    try:
        tf = tarfile.open(fileobj=OneWay(data), mode="r|", tarinfo=LimitedTarInfo,  # type: ignore[call-overload]  # noqa: SIM115
                          encoding="utf-8", errors="surrogateescape")
    except tarfile.ReadError as e:
        return members, ("open", str(e))
    except TooLarge as e:
        return members, ("too-large", e.size)
    except (Exception, RecursionError) as e:
        return members, ("crash", type(e).__name__)
    while True:
        try:
            ti = tf.next()
        except TooLarge as e:
            return members, ("too-large", e.size)
        except tarfile.TarError as e:
            return members, ("next", str(e))
        except (Exception, RecursionError) as e:
            return members, ("crash", type(e).__name__)
        if ti is None:
            return members, ("end",)
        tf.members.clear()
        rec = _record(ti)
        members.append(rec)
        if ti.isreg() or ti.type not in tarfile.SUPPORTED_TYPES:
            try:
                rec["data"] = _read_all(tf.extractfile(ti))
            except tarfile.TarError as e:
                return members, ("data", str(e))
            except Exception as e:
                return members, ("crash", type(e).__name__)


def tarstream_view(data: bytes) -> tuple[list[dict[str, Any]], tuple[Any, ...]]:
    """The same through tarstream.TarReader (which must never raise anything but its own errors)."""
    members: list[dict[str, Any]] = []
    r = tarstream.TarReader(OneWay(data), max_special=MAX_SPECIAL)
    first = True
    while True:
        try:
            ti = r.next()
        except tarstream.HeaderTooLarge as e:
            return members, ("too-large", e.size)
        except tarstream.TarError as e:
            if first:
                assert isinstance(e, tarstream.ReadError)
                return members, ("open", str(e))
            return members, ("next", str(e))
        first = False
        if ti is None:
            return members, ("end",)
        rec = _record(ti)
        members.append(rec)
        if ti.isreg() or ti.type not in tarstream.SUPPORTED_TYPES:
            try:
                f = r.extractfile(ti)
                assert f is not None
                rec["data"] = _read_all(f)
            except tarstream.TarError as e:
                return members, ("data", str(e))


def assert_same_reading(data: bytes, what: str = "") -> tuple[list[dict[str, Any]], tuple[Any, ...]]:
    theirs = tarfile_view(data)
    ours = tarstream_view(data)
    if theirs[1][0] == "crash":
        # tarfile itself dies (IndexError, ValueError, RecursionError...): ours must report an error or
        # read on, never crash, and agree on every member before the crash.
        assert ours[0][: len(theirs[0])] == theirs[0], what
        return ours
    assert ours[1] == theirs[1], what
    assert len(ours[0]) == len(theirs[0]), what
    for a, b in zip(ours[0], theirs[0], strict=True):
        assert a == b, (what, a, b)
    return ours


# -- archives ----------------------------------------------------------------------------------------

def _tarfile_archive(fmt: int, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _gnu_tar(root: Path, fmt: str, out: Path, *extra: str) -> bytes:
    subprocess.run(["tar", f"--format={fmt}", "--numeric-owner", *extra, "-cf", str(out), "-C", str(root),
                    "."], capture_output=True, env={**os.environ, "LC_ALL": "C"})
    assert out.exists() and out.stat().st_size > 0
    return out.read_bytes()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tarstream") / "tree"
    make_tree(root, devices=os.geteuid() == 0)
    sparse = root / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(3 << 20)
        for off in (0, 300_000, 1 << 20, (3 << 20) - 3):
            f.seek(off)
            f.write(b"data")
    return root


def test_reads_our_own_archives_like_tarfile(tree: Path) -> None:
    out = io.BytesIO()
    layers.write_diff_tar(tree, out)
    members, outcome = assert_same_reading(out.getvalue())
    assert outcome == ("end",) and len(members) > 40
    by_name = {m["name"]: m for m in members}
    assert by_name["dir/f1"]["uid"] == (3_000_000 if os.geteuid() == 0 else os.geteuid())
    assert by_name["dir/f1"]["pax_headers"]["SCHILY.xattr.user.binary"] == "\udcff\x00\udcfe value"


@needs_gnu_tar
@pytest.mark.parametrize("fmt", ["gnu", "oldgnu", "posix", "ustar", "v7"])
def test_reads_gnu_tar_archives_like_tarfile(tree: Path, tmp_path: Path, fmt: str) -> None:
    extra = ("--xattrs", "--xattrs-include=*") if fmt == "posix" else ()
    data = _gnu_tar(tree, fmt, tmp_path / "a.tar", *extra)
    members, outcome = assert_same_reading(data, fmt)
    assert outcome == ("end",) and len(members) > 20


@needs_gnu_tar
@pytest.mark.parametrize("args", [("--format=gnu",), ("--format=oldgnu",), ("--format=posix", "--sparse-version=0.0"),
                                  ("--format=posix", "--sparse-version=0.1"),
                                  ("--format=posix", "--sparse-version=1.0")])
def test_reads_gnu_sparse_files_like_tarfile(tree: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    out = tmp_path / "s.tar"
    subprocess.run(["tar", *args, "--sparse", "-cf", str(out), "-C", str(tree), "sparse", "dir/f100"], check=True)
    members, outcome = assert_same_reading(out.read_bytes())
    assert outcome == ("end",)
    sparse = next(m for m in members if m["name"] == "sparse")
    assert sparse["sparse"] and sparse["data"] == (tree / "sparse").read_bytes()


def _entries_for_formats() -> list[tuple[tarfile.TarInfo, bytes | None]]:
    out: list[tuple[tarfile.TarInfo, bytes | None]] = []
    table: list[tuple[str, bytes, bytes | None, dict[str, Any]]] = [
        ("plain", tarfile.REGTYPE, b"hello", {}),
        ("x" * 60 + "/" + "y" * 60, tarfile.REGTYPE, b"prefix", {}),  # ustar prefix field
        ("deep/" + "z" * 120, tarfile.REGTYPE, b"gnu long name", {}),
        ("dir", tarfile.DIRTYPE, None, {"mode": 0o755}),
        ("sym", tarfile.SYMTYPE, None, {"linkname": "t" * 150}),
        ("hard", tarfile.LNKTYPE, None, {"linkname": "plain"}),
        ("big-ids", tarfile.REGTYPE, b"", {"uid": 3_000_000, "gid": 8**7 + 5}),
        ("old", tarfile.REGTYPE, b"", {"mtime": -100}),
        ("future", tarfile.REGTYPE, b"", {"mtime": 8**11 + 5}),
        ("dev", tarfile.CHRTYPE, None, {"devmajor": 3_000_000, "devminor": 1}),
        ("ünï", tarfile.REGTYPE, b"u", {"uname": "wörld", "gname": "g" * 40}),
        ("fifo", tarfile.FIFOTYPE, None, {}),
        ("contiguous", tarfile.CONTTYPE, b"c" * 600, {}),
        ("unknown", b"V", b"v" * 700, {}),
    ]
    for name, type_, data, kw in table:
        ti = tarfile.TarInfo(name)
        ti.type = type_
        ti.mtime = T0
        for k, v in kw.items():
            setattr(ti, k, v)
        if data is not None:
            ti.size = len(data)
        out.append((ti, data))
    return out


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT])
def test_reads_tarfile_formats_and_base256_like_tarfile(fmt: int) -> None:
    entries = []
    for ti, data in _entries_for_formats():
        try:
            ti.tobuf(fmt, "utf-8", "surrogateescape")  # type: ignore[arg-type]
        except ValueError:
            continue  # not representable in this format
        entries.append((ti, data))
    data = _tarfile_archive(fmt, entries)
    members, outcome = assert_same_reading(data)
    assert outcome == ("end",) and len(members) == len(entries)
    if fmt == tarfile.GNU_FORMAT:
        assert b"\x80" in data  # base-256 numbers were written
        assert any(m["uid"] == 3_000_000 for m in members)


# -- hand-made headers -------------------------------------------------------------------------------

def _hdr(name: bytes = b"f", type_: bytes = b"0", size: int | bytes = 0, *, mode: bytes = b"0000644\0",
         uid: bytes = b"0000000\0", mtime: bytes = b"00000000000\0", linkname: bytes = b"",
         magic: bytes = b"ustar\x0000", prefix: bytes = b"", dev: bytes = b"\0" * 16,
         signed: bool = False, chksum: bytes | None = None, extra: bytes = b"") -> bytes:
    size_b = size if isinstance(size, bytes) else b"%011o\0" % size
    buf = (name.ljust(100, b"\0")[:100] + mode + uid + uid + size_b + mtime + b" " * 8 + type_
           + linkname.ljust(100, b"\0")[:100] + magic + b"\0" * 64 + dev + prefix.ljust(155, b"\0")[:155])
    buf = (buf + extra).ljust(512, b"\0")[:512]
    if chksum is None:
        total = sum(b - 256 if signed and b > 127 else b for b in buf)
        chksum = b"%06o\0 " % (total if total >= 0 else total)
    return buf[:148] + chksum + buf[156:]


def _pax(records: bytes, type_: bytes = b"x", name: bytes = b"././@PaxHeader") -> bytes:
    return _hdr(name, type_, len(records)) + records + b"\0" * (-len(records) % 512)


def _rec(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def _file(name: bytes, data: bytes, **kw: Any) -> bytes:
    return _hdr(name, b"0", len(data), **kw) + data + b"\0" * (-len(data) % 512)


END = b"\0" * 1024

HANDMADE: dict[str, bytes] = {
    "signed-checksum": _file("é".encode("latin-1") * 3, b"x", signed=True) + END,
    "bad-checksum-first": _hdr(chksum=b"0000001\0") + END,
    "bad-checksum-later": _file(b"a", b"1") + _hdr(chksum=b"0000001\0") + _file(b"b", b"2") + END,
    "checksum-spaces": _file(b"a", b"1") + END,
    "invalid-number-first": _hdr(mode=b"0000z44\0") + END,
    "invalid-number-later": _file(b"a", b"1") + _hdr(mode=b"0000z44\0") + END,
    "0o-prefixed-number": _file(b"a", b"1", mode=b"0o00644\0") + END,
    "spaces-in-number": _file(b"a", b"1", mode=b"  644  \0") + END,
    "base256-size": _hdr(b"f", b"0", b"\x80" + b"\0" * 10 + b"\x03") + b"abc".ljust(512, b"\0") + END,
    "base256-negative-size": _hdr(b"f", b"0", b"\xff" * 12) + END,
    "base256-very-negative-size": _hdr(b"f", b"0", b"\xff" * 10 + b"\xf0\x00") + _file(b"g", b"g") + END,
    "base256-uid": _file(b"f", b"", uid=b"\x80\0\0\0\0\x2d\xc6\xc0") + END,
    "negative-octal": _file(b"f", b"", uid=b"-000001\0") + END,
    "v7-dir": _hdr(b"olddir/", b"\0", magic=b"\0" * 8) + END,
    "v7-file": _hdr(b"oldfile", b"\0", 3, magic=b"\0" * 8) + b"abc".ljust(512, b"\0") + END,
    "prefix": _file(b"name", b"p", prefix=b"some/prefix") + END,
    "prefix-on-dir": _hdr(b"d///", b"5", prefix=b"pre") + END,
    "dir-with-size": _hdr(b"d", b"5", 600) + _file(b"after", b"a") + END,
    "sym-with-size": _hdr(b"s", b"2", 5, linkname=b"t") + b"\0" * 512 + END,
    "unknown-type-with-data": _hdr(b"u", b"V", 700) + b"v" * 1024 + _file(b"after", b"a") + END,
    "one-zero-block": _file(b"a", b"1") + b"\0" * 512,
    "no-end-blocks": _file(b"a", b"1"),
    "trailing-junk": _file(b"a", b"1") + END + b"junk" * 100,
    "header-then-garbage": _file(b"a", b"1") + bytes(range(256)) * 2 + END,
    "short-header-later": _file(b"a", b"1") + b"\x01" * 100,
    "short-header-first": b"\x01" * 100,
    "empty": b"",
    "zeros": b"\0" * 10240,
    "pax-path": _pax(_rec(b"path", b"from/pax///")) + _file(b"ignored", b"d") + END,
    "pax-linkpath": _pax(_rec(b"linkpath", b"l" * 200)) + _hdr(b"s", b"2", linkname=b"short") + END,
    "pax-numbers": _pax(_rec(b"uid", b"123") + _rec(b"gid", b"x") + _rec(b"mtime", b"1.25") + _rec(b"size", b"3")
                        + _rec(b"atime", b"7.5") + _rec(b"uname", b"\xff")) + _file(b"f", b"abc") + END,
    "pax-size-override": _pax(_rec(b"size", b"1000")) + _hdr(b"f", b"0", 3) + b"q" * 1024 + END,
    "pax-size-on-dir": _pax(_rec(b"size", b"1000")) + _hdr(b"d", b"5", 0) + _file(b"after", b"a") + END,
    "pax-bad-numbers": _pax(_rec(b"mtime", b"nan?") + _rec(b"uid", b"1_000") + _rec(b"gid", b" 5 "))
    + _file(b"f", b"") + END,
    "pax-binary": _pax(b"21 hdrcharset=BINARY\n" + _rec(b"path", b"bin\xff\xfe")) + _file(b"f", b"") + END,
    "pax-hdrcharset-inside-value": _pax(_rec(b"comment", b"x\n7 hdrcharset=ODD\n")) + _file(b"f", b"") + END,
    "pax-hdrcharset-bad-utf8": _pax(b"18 hdrcharset=\xff\xfe\xfd\n") + _file(b"f", b"") + END,
    "pax-zero-length-first": _pax(b"0 path=x\n") + _file(b"f", b"") + END,
    "pax-zero-length-later": _file(b"a", b"") + _pax(b"0 path=x\n") + _file(b"f", b"") + END,
    "pax-lengths-lie": _pax(b"5 path=abcdef\n99 comment=short\n") + _file(b"f", b"") + END,
    "pax-no-equals": _pax(b"12 pathabc\n") + _file(b"f", b"") + END,
    "pax-keyword-newline": _pax(_rec(b"we\nird", b"v") + _rec(b"\xff", b"\xfe")) + _file(b"f", b"") + END,
    "pax-then-eof": _pax(_rec(b"path", b"p")) + END,
    "pax-then-nothing": _pax(_rec(b"path", b"p")),
    "pax-then-bad-checksum": _pax(_rec(b"path", b"p")) + _hdr(chksum=b"0000001\0") + END,
    "pax-chain": _pax(_rec(b"path", b"first")) + _pax(_rec(b"comment", b"second")) + _file(b"f", b"") + END,
    "pax-then-longname": _pax(_rec(b"path", b"pax-wins")) + _hdr(b"././@LongLink", b"L", 9) + b"gnu-name\0".ljust(
        512, b"\0") + _file(b"f", b"") + END,
    "longname-then-pax": _hdr(b"././@LongLink", b"L", 9) + b"gnu-name\0".ljust(512, b"\0")
    + _pax(_rec(b"path", b"pax-name")) + _file(b"f", b"") + END,
    "solaris-X": _pax(_rec(b"path", b"solaris"), b"X") + _file(b"f", b"") + END,
    "global-g": _pax(_rec(b"comment", b"global") + _rec(b"uid", b"77") + _rec(b"path", b"every/"), b"g")
    + _file(b"a", b"1") + _pax(_rec(b"gid", b"5")) + _file(b"b", b"2") + _hdr(b"d", b"5") + END,
    "global-g-size": _pax(_rec(b"size", b"3"), b"g") + _file(b"a", b"abcdef") + _file(b"b", b"2") + END,
    "global-g-hdrcharset": _pax(b"21 hdrcharset=BINARY\n", b"g") + _pax(_rec(b"path", b"\xff")) + _file(b"f", b"")
    + END,
    "global-g-only": _pax(_rec(b"comment", b"g"), b"g") + END,
    "gnu-longname": _hdr(b"././@LongLink", b"L", 300) + (b"n" * 299 + b"/").ljust(512, b"\0")
    + _hdr(b"short", b"5") + END,
    "gnu-longname-nul-inside": _hdr(b"././@LongLink", b"L", 20) + b"abc\0def".ljust(512, b"\0") + _file(b"f", b"")
    + END,
    "gnu-longlink": _hdr(b"././@LongLink", b"K", 200) + b"k" * 200 + b"\0" * 312 + _hdr(b"h", b"1", linkname=b"x")
    + END,
    "gnu-longname-then-eof": _hdr(b"././@LongLink", b"L", 5) + b"name\0".ljust(512, b"\0") + END,
    "gnu-longname-cut": _hdr(b"././@LongLink", b"L", 2000) + b"n" * 100,
    "gnu-longname-chain": b"".join(_hdr(b"././@LongLink", b"L", 4) + b"%03d\0" % i + b"\0" * 508 for i in range(50))
    + _file(b"f", b"") + END,
    "too-large-pax": _hdr(b"././@PaxHeader", b"x", MAX_SPECIAL + 1) + END,
    "too-large-longname": _hdr(b"././@LongLink", b"L", 5 << 20) + END,
    "too-large-nested": _pax(_rec(b"path", b"p")) + _hdr(b"././@LongLink", b"K", 2 << 20) + END,
    "just-at-limit": _pax(_rec(b"comment", b"c" * (MAX_SPECIAL - 20))) + _file(b"f", b"") + END,
    "data-cut": _hdr(b"f", b"0", 5000) + b"x" * 2000,
    "data-cut-at-block": _hdr(b"f", b"0", 5000) + b"x" * 4608,
    "padding-cut": _hdr(b"f", b"0", 5) + b"x" * 5,
    "huge-size": _hdr(b"f", b"0", 8**11 - 1) + b"x" * 512,
    "gnu-sparse-old-extended": b"",  # filled in below
    "gnu-sparse-bad-struct": _hdr(b"s", b"S", 0, extra=b"") + END,
    "pax-sparse-bad-map": _pax(_rec(b"GNU.sparse.map", b"1,x")) + _file(b"f", b"") + END,
    "pax-sparse-bad-size": _pax(_rec(b"GNU.sparse.size", b"big")) + _file(b"f", b"") + END,
    "pax-sparse-10-bad": _pax(_rec(b"GNU.sparse.major", b"1") + _rec(b"GNU.sparse.minor", b"0"))
    + _hdr(b"f", b"0", 512) + b"nonumber".ljust(512, b"\0") + END,
    "pax-sparse-10-cut": _pax(_rec(b"GNU.sparse.major", b"1") + _rec(b"GNU.sparse.minor", b"0"))
    + _hdr(b"f", b"0", 512),
    "pax-sparse-00": _pax(_rec(b"GNU.sparse.size", b"2000") + _rec(b"GNU.sparse.numblocks", b"1")
                          + _rec(b"GNU.sparse.offset", b"1024") + _rec(b"GNU.sparse.numbytes", b"5"))
    + _file(b"f", b"12345") + END,
    "pax-5000-digit-length": _pax(b"9" * 5000 + b" path=x\n") + _file(b"f", b"") + END,
    "garbage-random": random.Random(5).randbytes(4096),
    "garbage-digest": bytes.fromhex("f1" * 64) * 100,
    "pax-sparse-01-short-data": _pax(_rec(b"GNU.sparse.map", b"0,5000") + _rec(b"GNU.sparse.realsize", b"5000"))
    + _file(b"f", b"12345") + END,
}


def _old_gnu_sparse_extended() -> bytes:
    # An old GNU 'S' header with the 4 in-header slots full and one extension block of 2 more.
    structs = b"".join(b"%011o\0%011o\0" % (i * 4096, 512) for i in range(4))
    hdr = bytearray(_hdr(b"sparse", b"S", 6 * 512, magic=b"ustar  \0"))
    hdr[386:495] = structs + b"\x01" + b"%011o\0" % (40 * 4096)
    hdr[148:156] = b" " * 8
    hdr[148:156] = b"%06o\0 " % sum(hdr)
    ext = (b"%011o\0%011o\0" % (5 * 4096, 512) + b"%011o\0%011o\0" % (6 * 4096, 512)).ljust(512, b"\0")
    return bytes(hdr) + ext + bytes(range(256)) * 12 + END


HANDMADE["gnu-sparse-old-extended"] = _old_gnu_sparse_extended()
HANDMADE["gnu-sparse-old-ext-cut"] = _old_gnu_sparse_extended()[:700]


@pytest.mark.parametrize("name", sorted(HANDMADE))
def test_handmade_headers_read_like_tarfile(name: str) -> None:
    if name.startswith("pax-") and sys.version_info < (3, 11, 7):
        pytest.skip("tarfile before 3.11.7 reads damaged PAX headers differently")  # see oracle_tarfile
    assert_same_reading(HANDMADE[name], name)


def test_handmade_outcomes_are_what_the_tests_mean() -> None:
    """A few outcomes spelled out, so the table above provably reaches the paths it names."""
    view = {n: tarstream_view(d) for n, d in HANDMADE.items()}
    assert view["signed-checksum"][1] == ("end",) and len(view["signed-checksum"][0]) == 1
    assert view["bad-checksum-first"][1] == ("open", "bad checksum")
    assert view["bad-checksum-later"][1] == ("end",) and len(view["bad-checksum-later"][0]) == 1
    assert view["empty"][1] == ("open", "empty file")
    assert view["short-header-first"][1] == ("open", "truncated header")
    assert view["data-cut"][1] == ("data", "unexpected end of data")
    assert view["padding-cut"][1] == ("next", "unexpected end of data")
    assert view["base256-very-negative-size"][1] == ("next", "seeking backwards is not allowed")
    assert view["too-large-pax"][1] == ("too-large", MAX_SPECIAL + 1)
    assert view["too-large-nested"][1] == ("too-large", 2 << 20)
    assert view["pax-then-eof"][1] == ("open", "end of file header")
    assert view["pax-zero-length-first"][1] == ("open", "invalid header")
    assert view["pax-zero-length-later"][1] == ("end",)
    assert view["global-g"][0][1]["uid"] == 77 and view["global-g"][0][1]["gid"] == 5
    assert view["pax-binary"][0][0]["name"] == "bin\udcff\udcfe"
    assert view["gnu-longname-chain"][0][0]["name"] == "000"  # the outermost header wins
    assert view["gnu-sparse-old-extended"][0][0]["sparse"] == [(i * 4096, 512) for i in (0, 1, 2, 3, 5, 6)]
    assert view["pax-hdrcharset-bad-utf8"][1][0] == "open"  # tarfile dies with UnicodeDecodeError
    assert view["pax-sparse-bad-map"][1][0] == "open"  # tarfile dies with ValueError
    assert view["pax-5000-digit-length"][1][0] == "open"  # tarfile dies with ValueError (int digit limit)
    if sys.version_info >= (3, 11, 7):  # see oracle_tarfile
        assert tarfile_view(HANDMADE["pax-5000-digit-length"])[1] == ("crash", "ValueError")


def test_long_chain_of_long_names_does_not_exhaust_the_stack() -> None:
    # tarfile recurses once per header and dies with RecursionError; tarstream reads on.
    chain = b"".join(_hdr(b"././@LongLink", b"L", 4) + b"%03d\0" % (i % 1000) + b"\0" * 508 for i in range(3000))
    members, outcome = assert_same_reading(chain + _file(b"f", b"") + END)
    assert outcome == ("end",) and members[0]["name"] == "000"
    assert tarfile_view(chain + _file(b"f", b"") + END)[1] == ("crash", "RecursionError")


@oracle_tarfile
@pytest.mark.parametrize("type_", [b"L", b"K", b"x", b"g"])
@pytest.mark.parametrize("lead", [0, 1])
def test_negative_special_header_size_is_refused(type_: bytes, lead: int) -> None:
    """The one input read differently: a PAX / long-name header with a size of -512 or less.

    tarfile then reads ``-N`` bytes, which slices its own read-ahead buffer, so what follows depends
    on its buffering. tarstream refuses the header. Both fail at the same point; the words differ.
    """
    data = (_file(b"a", b"1") if lead else b"") + _hdr(b"././@LongLink", type_, b"\xff" * 10 + b"\xfc\x18")
    data += b"n" * 512 + _file(b"f", b"") + END
    theirs, ours = tarfile_view(data), tarstream_view(data)
    assert ours[0] == theirs[0]
    assert ours[1][0] == theirs[1][0] == ("next" if lead else "open")
    assert ours[1][1] == f"negative size in a {type_!r} header"


@oracle_tarfile
def test_truncated_at_every_block_reads_like_tarfile() -> None:
    out = io.BytesIO()
    w = tarstream.TarWriter(out)
    for name, data in [("a" * 150, b"x" * 700), ("b", b""), ("c", b"y" * 1024)]:
        ti = tarstream.TarInfo(name)
        ti.size = len(data)
        ti.pax_headers = {"SCHILY.xattr.user.k": "v"}
        w.addfile(ti, io.BytesIO(data))
    w.close()
    data = out.getvalue()
    for cut in list(range(0, 6000, 97)) + [512 * i for i in range(12)]:
        assert_same_reading(data[:cut], f"cut at {cut}")


@oracle_tarfile
@needs_gnu_tar
def test_damaged_archives_read_like_tarfile(tmp_path: Path) -> None:
    """Seeded mutations of varied archives: every field tarfile parses, with and without valid checksums."""
    bases = [_tarfile_archive(fmt, [e for e in _entries_for_formats() if _fits(e[0], fmt)])
             for fmt in (tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT)]
    bases += [HANDMADE["global-g"], HANDMADE["gnu-sparse-old-extended"], HANDMADE["pax-sparse-00"],
              HANDMADE["longname-then-pax"]]
    small = tmp_path / "small"
    small.mkdir()
    (small / "s").write_bytes(b"")
    with open(small / "s", "r+b") as f:
        f.truncate(40960)
        f.seek(20000)
        f.write(b"data")
    for v in ("0.1", "1.0"):
        subprocess.run(["tar", "--format=posix", "--sparse", f"--sparse-version={v}", "-cf", str(tmp_path / "s.tar"),
                        "-C", str(small), "s"], check=True)
        bases.append((tmp_path / "s.tar").read_bytes()[:4096] + END)
    rnd = random.Random(1234)
    for i in range(1500):
        base = bytearray(rnd.choice(bases))
        limit = min(len(base), 6 * 512)
        for _ in range(rnd.randint(1, 3)):
            pos = rnd.randrange(limit)
            base[pos] = rnd.choice([0, 0x20, 0x30, 0x37, 0x39, 0x80, 0xFF, 0x0A, 0x3D, rnd.randrange(256)])
        if rnd.random() < 0.6:  # re-sign every header-looking block, so the damage gets past the checksum
            for off in range(0, limit, 512):
                blk = base[off:off + 512]
                if len(blk) == 512 and any(blk) and blk[257:262] in (b"ustar", b"\0\0\0\0\0"):
                    blk[148:156] = b" " * 8
                    base[off + 148:off + 156] = b"%06o\0 " % sum(blk)
        if rnd.random() < 0.2:
            base = base[:rnd.randrange(len(base))]
        assert_same_reading(bytes(base), f"mutation {i}")


def _fits(ti: tarfile.TarInfo, fmt: int) -> bool:
    try:
        ti.tobuf(fmt, "utf-8", "surrogateescape")  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def test_hostile_archives_read_like_tarfile(tmp_path: Path) -> None:
    box = test_hostile_tars.Box(tmp_path / "box", tmp_path / "box/dest", tmp_path / "box/sentinel.txt",
                                tmp_path / "box/canary")
    for case in test_hostile_tars.CASES:
        assert_same_reading(case.build(box), case.id)


def test_reads_in_small_pieces_from_a_slow_stream() -> None:
    data = HANDMADE["global-g"] + b""

    class Trickle:
        def __init__(self, b: bytes) -> None:
            self._f = io.BytesIO(b)

        def read(self, n: int = -1) -> bytes:
            return self._f.read(min(n, 7) if n >= 0 else 7)

    r = tarstream.TarReader(Trickle(data))
    assert [_record(ti) for ti in r] == [{k: v for k, v in m.items() if k != "data"} for m in tarfile_view(data)[0]]


def test_extractfile_kinds() -> None:
    r = tarstream.TarReader(OneWay(_hdr(b"s", b"2", linkname=b"t") + _hdr(b"d", b"5") + END))
    sym = r.next()
    assert sym is not None and sym.issym()
    with pytest.raises(tarstream.StreamError, match="cannot extract"):
        r.extractfile(sym)
    d = r.next()
    assert d is not None and r.extractfile(d) is None and r.next() is None and r.next() is None


# ---- unpack's words for damaged layers (other tests match on them) ------------------------------------

@pytest.mark.parametrize("name, message", [
    ("bad-checksum-first", "layer is not a valid tar archive: bad checksum"),
    ("short-header-first", "layer is not a valid tar archive: truncated header"),
    ("garbage-random", "layer is not a valid tar archive: "),
    ("data-cut", "layer tar is damaged at 'f': unexpected end of data"),
    ("padding-cut", "layer tar is damaged: unexpected end of data"),
    ("pax-then-nothing", "layer is not a valid tar archive: empty header"),
    ("too-large-pax", f"layer tar: a {MAX_SPECIAL + 1}-byte extended header is too large"),
    ("too-large-nested", f"layer tar: a {2 << 20}-byte extended header is too large"),
    ("base256-negative-size", "layer entry 'f': truncated (0 of -1 bytes)"),
    ("pax-hdrcharset-bad-utf8", "layer is not a valid tar archive: invalid hdrcharset in a PAX header"),
])
def test_unpack_messages_for_damaged_layers(tmp_path: Path, name: str, message: str) -> None:
    from dockyard.errors import CorruptData

    with pytest.raises(CorruptData) as ei:
        layers.unpack(io.BytesIO(HANDMADE[name]), tmp_path / "d", whiteouts="apply")
    assert str(ei.value).startswith(message), str(ei.value)


def test_unpack_of_an_empty_stream_is_an_empty_layer(tmp_path: Path) -> None:
    assert layers.unpack(io.BytesIO(b""), tmp_path / "d").entries == 0


# ---- start-up cost -------------------------------------------------------------------------------------

def test_layers_imports_neither_tarfile_nor_pathlib() -> None:
    code = ("import sys; from dockyard.store import layers; "
            "print(sorted(m for m in ('tarfile', 'pathlib', 'shutil', 'collections.abc', 're', 'struct', 'copy')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
