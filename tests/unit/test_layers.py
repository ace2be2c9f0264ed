"""Layer tars <-> directories: round trips, whiteouts, overlay mounts, diffs and determinism."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import CorruptData
from dockyard.store import layers
from dockyard.store.layers import (
    OPAQUE_XATTR,
    changes,
    changes_dirs,
    diff_dirs,
    dir_size,
    unpack,
    write_diff_tar,
)

T0 = 1_600_000_000  # a fixed mtime
CAP = b"\x01\x00\x00\x02" + b"\x00\x04\x00\x00" + b"\x00" * 12  # vfs cap v2: cap_net_bind_service

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


# ---- building tars ----------------------------------------------------------------------------

def _info(name: str, type_: bytes, **kw: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.mode = 0o644
    ti.mtime = T0
    for k, v in kw.items():
        if k == "xattrs":
            assert isinstance(v, dict)
            ti.pax_headers.update({f"SCHILY.xattr.{n}": b.decode("utf-8", "surrogateescape")
                                   for n, b in v.items()})
        else:
            setattr(ti, k, v)
    return ti


def reg(name: str, data: bytes = b"", **kw: object) -> tuple[tarfile.TarInfo, bytes]:
    ti = _info(name, tarfile.REGTYPE, **kw)
    ti.size = len(data)
    return ti, data


def dir_(name: str, **kw: object) -> tuple[tarfile.TarInfo, None]:
    kw.setdefault("mode", 0o755)
    return _info(name, tarfile.DIRTYPE, **kw), None


def sym(name: str, target: str, **kw: object) -> tuple[tarfile.TarInfo, None]:
    kw.setdefault("mode", 0o777)
    return _info(name, tarfile.SYMTYPE, linkname=target, **kw), None


def hard(name: str, target: str, **kw: object) -> tuple[tarfile.TarInfo, None]:
    return _info(name, tarfile.LNKTYPE, linkname=target, **kw), None


def dev(name: str, kind: bytes, major: int, minor: int, **kw: object) -> tuple[tarfile.TarInfo, None]:
    return _info(name, kind, devmajor=major, devminor=minor, **kw), None


def fifo(name: str, **kw: object) -> tuple[tarfile.TarInfo, None]:
    return _info(name, tarfile.FIFOTYPE, **kw), None


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes | None], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8",
                      errors="surrogateescape") as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def do_unpack(data: bytes, dest: Path, **kw: object) -> layers.UnpackStats:
    return unpack(io.BytesIO(data), dest, **kw)  # type: ignore[arg-type]


def read_tar(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return tf.getmembers()


# ---- looking at trees -------------------------------------------------------------------------

def xattrs_of(path: Path) -> dict[str, bytes]:
    out = {}
    for n in sorted(os.listxattr(path, follow_symlinks=False)):
        if n.startswith("security.selinux"):
            continue
        out[n] = os.getxattr(path, n, follow_symlinks=False)
    return out


def snapshot(root: Path, *, dir_mtimes: bool = True) -> dict[str, tuple]:
    """Everything observable about a tree, for comparing two of them."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            extra: object = None
            if stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = st.st_rdev
            mtime = st.st_mtime_ns // 10**9
            if stat.S_ISDIR(st.st_mode) and not dir_mtimes:
                mtime = 0
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        st.st_size if not stat.S_ISDIR(st.st_mode) else 0, mtime, extra, xattrs_of(p))
    return out


# ---- unpack ---------------------------------------------------------------------------------

@needs_root
def test_round_trip_every_type(tmp_path: Path) -> None:
    big = os.urandom(3 * 1024 * 1024 + 7)
    long_name = "deep/" + "x" * 150 + "/file-ü-" + "y" * 120
    data = tar_bytes(
        dir_("./", mode=0o755, mtime=T0 - 5),
        dir_("etc", mode=0o750, uid=0, gid=42, mtime=T0 + 1),
        reg("etc/hosts", b"127.0.0.1 localhost\n", mode=0o644, uid=1234, gid=5678, mtime=T0 + 2),
        reg("bin/ping", b"\x7fELF...", mode=0o4755, xattrs={"security.capability": CAP}, mtime=T0 + 3),
        reg("big", big, mode=0o600),
        reg("empty", b"", mode=0o400),
        reg("withx", b"x", xattrs={"user.comment": b"hello", "trusted.thing": b"\x00\xff\x10"}),
        sym("etc/localtime", "/usr/share/zoneinfo/UTC", uid=7, gid=8, mtime=T0 + 4),
        sym("rel", "etc/hosts"),
        hard("etc/hosts.bak", "etc/hosts"),
        dev("dev/null", tarfile.CHRTYPE, 1, 3, mode=0o666),
        dev("dev/loop0", tarfile.BLKTYPE, 7, 0, mode=0o660, gid=6),
        fifo("run/fifo", mode=0o620),
        dir_("tmp", mode=0o1777),
        dir_("sgid", mode=0o2755, xattrs={"user.dir": b"1"}),
        reg(long_name, b"long"),
        reg("/abs/file", b"abs"),
        reg("./dot/file", b"dot"),
    )
    dest = tmp_path / "dest"
    stats = do_unpack(data, dest)
    assert stats.entries == 18
    assert stats.bytes == 20 + 7 + len(big) + 1 + 4 + 3 + 3
    assert stats.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert stats.tar_size == len(data)
    assert not [s for s in stats.skipped if "mknod" in s[1]]

    st = os.lstat(dest / "etc")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o750
    assert (st.st_gid, st.st_mtime) == (42, T0 + 1)  # set after the files inside were created
    assert os.lstat(dest).st_mtime == T0 - 5
    st = os.lstat(dest / "etc/hosts")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime) == (1234, 5678, 0o644, T0 + 2)
    assert (dest / "etc/hosts").read_bytes() == b"127.0.0.1 localhost\n"
    assert st.st_nlink == 2 and os.lstat(dest / "etc/hosts.bak").st_ino == st.st_ino
    st = os.lstat(dest / "bin/ping")
    assert stat.S_IMODE(st.st_mode) == 0o4755  # setuid survives the chown
    assert os.getxattr(dest / "bin/ping", "security.capability") == CAP  # and so does the capability
    assert stat.S_IMODE(os.lstat(dest / "bin").st_mode) == 0o755  # implicit parent
    assert (dest / "big").read_bytes() == big
    assert (dest / "empty").read_bytes() == b"" and stat.S_IMODE(os.lstat(dest / "empty").st_mode) == 0o400
    assert os.getxattr(dest / "withx", "user.comment") == b"hello"
    assert os.getxattr(dest / "withx", "trusted.thing") == b"\x00\xff\x10"
    st = os.lstat(dest / "etc/localtime")
    assert stat.S_ISLNK(st.st_mode) and os.readlink(dest / "etc/localtime") == "/usr/share/zoneinfo/UTC"
    assert (st.st_uid, st.st_gid, st.st_mtime) == (7, 8, T0 + 4)
    assert os.readlink(dest / "rel") == "etc/hosts"
    st = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666
    st = os.lstat(dest / "dev/loop0")
    assert stat.S_ISBLK(st.st_mode) and st.st_rdev == os.makedev(7, 0) and st.st_gid == 6
    st = os.lstat(dest / "run/fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620
    assert stat.S_IMODE(os.lstat(dest / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.lstat(dest / "sgid").st_mode) == 0o2755
    assert os.getxattr(dest / "sgid", "user.dir") == b"1"
    assert (dest / long_name).read_bytes() == b"long"
    assert (dest / "abs/file").read_bytes() == b"abs"
    assert (dest / "dot/file").read_bytes() == b"dot"

    # And back: the tree written as a tar and unpacked again is the same tree.
    buf = io.BytesIO()
    write_diff_tar(dest, buf)
    again = tmp_path / "again"
    do_unpack(buf.getvalue(), again)
    a, b = snapshot(dest), snapshot(again)
    assert a == b


def test_later_entries_replace_earlier_ones(tmp_path: Path) -> None:
    data = tar_bytes(
        reg("a", b"file"),
        dir_("a"),  # file -> dir
        reg("a/inside", b"1"),
        dir_("b"),
        reg("b/inside", b"1"),
        reg("b", b"now a file"),  # dir (with contents) -> file
        reg("c", b"old"),
        sym("c", "target"),  # file -> symlink
        sym("d", "elsewhere"),
        reg("d", b"plain"),  # symlink -> file: written in place of the link, not through it
        reg("e", b"one"),
        reg("e", b"two"),
        dir_("f", mode=0o700),
        dir_("f", mode=0o711),  # dir -> dir keeps contents, takes the later metadata
    )
    dest = tmp_path / "d"
    do_unpack(data, dest)
    assert (dest / "a/inside").read_bytes() == b"1"
    assert (dest / "b").read_bytes() == b"now a file"
    assert os.readlink(dest / "c") == "target"
    assert not (dest / "d").is_symlink() and (dest / "d").read_bytes() == b"plain"
    assert not (dest / "elsewhere").exists()
    assert (dest / "e").read_bytes() == b"two"
    assert stat.S_IMODE(os.lstat(dest / "f").st_mode) == 0o711


def test_dir_mtimes_set_after_contents_and_dot_dot_inside(tmp_path: Path) -> None:
    data = tar_bytes(
        dir_("a", mtime=T0),
        dir_("a/b", mtime=T0 + 10),
        reg("a/b/c", b"x", mtime=T0 + 20),
        reg("a/x/../y", b"y"),  # cleaned to a/y, as Docker does
    )
    dest = tmp_path / "d"
    do_unpack(data, dest)
    assert os.lstat(dest / "a").st_mtime == T0
    assert os.lstat(dest / "a/b").st_mtime == T0 + 10
    assert (dest / "a/y").read_bytes() == b"y"
    assert not (dest / "a/x").exists()


def test_empty_stream_and_empty_tar(tmp_path: Path) -> None:
    s = do_unpack(b"", tmp_path / "a")
    assert s.entries == 0 and s.diff_id == "sha256:" + hashlib.sha256(b"").hexdigest()
    s = do_unpack(b"\0" * 10240, tmp_path / "b")
    assert s.entries == 0 and s.tar_size == 10240
    assert os.listdir(tmp_path / "b") == []


def test_damaged_tars_are_corrupt_data(tmp_path: Path) -> None:
    data = tar_bytes(reg("a", b"x" * 5000), reg("b", b"y"))
    with pytest.raises(CorruptData):
        do_unpack(data[:512 + 2000], tmp_path / "trunc")  # cut inside a's data
    with pytest.raises(CorruptData):
        do_unpack(os.urandom(4096), tmp_path / "garbage")
    # a 2 MiB PAX header is refused instead of being read into memory
    ti, d = reg("p", b"")
    ti.pax_headers["comment"] = "z" * (2 << 20)
    with pytest.raises(CorruptData):
        do_unpack(tar_bytes((ti, d)), tmp_path / "pax")


def test_stream_is_read_to_its_end_and_needs_no_seek(tmp_path: Path) -> None:
    data = tar_bytes(reg("a", b"x")) + b"trailing junk"

    class OneWay:
        def __init__(self, b: bytes) -> None:
            self._f = io.BytesIO(b)

        def read(self, n: int = -1) -> bytes:
            return self._f.read(n)

    src = OneWay(data)
    s = unpack(src, tmp_path / "d")  # type: ignore[arg-type]
    assert s.tar_size == len(data) and src.read() == b""
    assert s.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()


# ---- whiteouts --------------------------------------------------------------------------------

def _is_whiteout(p: Path) -> bool:
    st = os.lstat(p)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


@needs_root
def test_whiteouts_overlay_format(tmp_path: Path) -> None:
    data = tar_bytes(
        dir_("etc"),
        reg("etc/.wh.passwd", b""),
        dir_("opq"),
        reg("opq/new", b"n"),
        reg("opq/.wh..wh..opq", b""),
        reg(".wh.gone-dir", b""),
        reg(".wh..wh.plnk", b""),  # aufs metadata: skipped
    )
    dest = tmp_path / "d"
    s = do_unpack(data, dest)
    assert _is_whiteout(dest / "etc/passwd")
    assert _is_whiteout(dest / "gone-dir")
    assert os.getxattr(dest / "opq", OPAQUE_XATTR) == b"y"
    assert (dest / "opq/new").read_bytes() == b"n"
    assert not list(dest.rglob(".wh.*"))
    assert s.whiteouts == 3
    assert any(".wh..wh.plnk" in m for m, _ in s.skipped)


def _lower(tmp_path: Path) -> Path:
    base = tmp_path / "flat"
    do_unpack(tar_bytes(
        dir_("etc"), reg("etc/passwd", b"root"), reg("etc/keep", b"k"),
        dir_("opq"), reg("opq/old", b"o"), dir_("opq/sub"), reg("opq/sub/old2", b"o2"),
        reg("opq/sub/mine", b"lower version"), dir_("opq/olddir"), reg("opq/olddir/f", b"f"),
        dir_("gone"), reg("gone/f", b"f"), reg("dev0", b"will be whiteout by device"),
    ), base)
    return base


@pytest.mark.parametrize("marker_first", [True, False])
def test_whiteouts_apply_format(tmp_path: Path, marker_first: bool) -> None:
    base = _lower(tmp_path)
    own = [reg("opq/new", b"n"), reg("opq/sub/mine", b"this layer"), reg("opq/implicit/f", b"i")]
    marker = [reg("opq/.wh..wh..opq", b"")]
    body = marker + own if marker_first else own + marker
    data = tar_bytes(
        dir_("etc"), reg("etc/.wh.passwd", b""), reg(".wh.gone", b""), reg(".wh.not-there", b""),
        reg("nodir/.wh.x", b""), dev("dev0", tarfile.CHRTYPE, 0, 0),
        dir_("opq"), *body,
    )
    s = do_unpack(data, base, whiteouts="apply")
    assert not (base / "etc/passwd").exists() and (base / "etc/keep").read_bytes() == b"k"
    assert not (base / "gone").exists()
    assert not (base / "dev0").exists()  # a 0:0 device in a tar is a whiteout too
    assert not (base / "nodir").exists()  # a whiteout does not create its parent
    got = sorted(str(p.relative_to(base / "opq")) for p in (base / "opq").rglob("*"))
    assert got == ["implicit", "implicit/f", "new", "sub", "sub/mine"]
    assert (base / "opq/sub/mine").read_bytes() == b"this layer"
    assert not list(base.rglob(".wh.*"))
    assert not [p for p in base.rglob("*") if stat.S_ISCHR(os.lstat(p).st_mode)]
    assert s.whiteouts == 6


def test_opaque_root_in_apply_mode_keeps_only_this_layer(tmp_path: Path) -> None:
    base = _lower(tmp_path)
    do_unpack(tar_bytes(reg("etc/new", b"n"), reg(".wh..wh..opq", b"")), base, whiteouts="apply")
    assert sorted(str(p.relative_to(base)) for p in base.rglob("*")) == ["etc", "etc/new"]


# ---- overlay mounts -----------------------------------------------------------------------------

@pytest.fixture
def mounts():
    mounted: list[Path] = []

    def mount(target: Path, lowers: list[Path], upper: Path | None = None, work: Path | None = None) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        opts = "lowerdir=" + ":".join(str(p) for p in lowers)
        if upper is not None:
            assert work is not None
            upper.mkdir(parents=True, exist_ok=True)
            work.mkdir(parents=True, exist_ok=True)
            opts += f",upperdir={upper},workdir={work}"
        r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(target)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"overlay mount not available: {r.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for m in reversed(mounted):
        if subprocess.run(["umount", str(m)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(m)], capture_output=True)


def _names(root: Path) -> dict[str, bytes | str | None]:
    out: dict[str, bytes | str | None] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = None
    return out


@pytest.mark.root
@needs_root
def test_overlay_mount_of_two_layers_then_diff(tmp_path: Path, mounts) -> None:
    l1, l2 = tmp_path / "l1", tmp_path / "l2"
    do_unpack(tar_bytes(
        dir_("etc"), reg("etc/keep", b"k"), reg("etc/gone", b"g"),
        dir_("opq"), reg("opq/old1", b"1"), dir_("opq/sub"), reg("opq/sub/old2", b"2"),
        dir_("bin"), reg("bin/sh", b"sh"), sym("bin/bash", "sh"), reg("bin/ls", b"ls"),
        dir_("var"), reg("var/log", b"v"),
    ), l1)
    do_unpack(tar_bytes(
        dir_("etc"), reg("etc/.wh.gone", b""),
        dir_("opq"), reg("opq/new", b"n"), reg("opq/.wh..wh..opq", b""),
    ), l2)
    merged = mounts(tmp_path / "m", [l2, l1], tmp_path / "up", tmp_path / "work")
    assert not (merged / "etc/gone").exists()
    assert (merged / "etc/keep").read_bytes() == b"k"
    assert os.listdir(merged / "opq") == ["new"]

    # A container changes things.
    (merged / "etc/keep").write_bytes(b"changed")
    (merged / "newfile").write_bytes(b"added")
    os.unlink(merged / "bin/sh")
    shutil.rmtree(merged / "var")
    os.mkdir(merged / "var")  # a directory deleted and made again: overlay makes it opaque
    (merged / "var/again").write_bytes(b"a")
    os.link(merged / "newfile", merged / "newlink")
    os.setxattr(merged / "bin/ls", "user.note", b"x")
    before = _names(merged)

    upper = tmp_path / "up"
    found = changes(upper, [l2, l1])
    assert found == sorted(found, key=lambda x: x[1])
    got = {p: k for k, p in found}
    assert got == {"/bin": "C", "/bin/sh": "D", "/bin/ls": "C", "/etc": "C", "/etc/keep": "C",
                   "/newfile": "A", "/newlink": "A", "/var": "C", "/var/again": "A", "/var/log": "D"}

    buf = io.BytesIO()
    write_diff_tar(upper, buf, lower_dirs=[l2, l1])
    members = {m.name: m for m in read_tar(buf.getvalue())}
    assert set(members) == {"bin", "bin/.wh.sh", "bin/ls", "etc", "etc/keep", "newfile", "newlink",
                            "var", "var/.wh..wh..opq", "var/again"}
    assert members["newlink"].islnk() and members["newlink"].linkname == "newfile"
    assert members["bin/ls"].pax_headers.get("SCHILY.xattr.user.note") == "x"
    assert not [k for m in members.values() for k in m.pax_headers if ".overlay." in k]

    # The diff, unpacked as a third layer, shows the same root as the container did.
    l3 = tmp_path / "l3"
    do_unpack(buf.getvalue(), l3)
    assert os.getxattr(l3 / "var", OPAQUE_XATTR) == b"y"
    merged2 = mounts(tmp_path / "m2", [l3, l2, l1])
    assert _names(merged2) == before

    # And applied onto a flattened copy (the copying snapshotter) it gives the same tree as well.
    flat = tmp_path / "flat"
    flat.mkdir()
    for layer_dir in (l1, l2):
        layers.copy_layer_apply(layer_dir, flat)
    do_unpack(buf.getvalue(), flat, whiteouts="apply")
    assert _names(flat) == before
    # ... and diff_dirs against the flattened base finds the same changes as the overlay did.
    base = tmp_path / "base"
    base.mkdir()
    for layer_dir in (l1, l2):
        layers.copy_layer_apply(layer_dir, base)
    assert {p: k for k, p in changes_dirs(base, flat)} == got


# ---- diffs --------------------------------------------------------------------------------------

def _fixed_tree(root: Path, *, whiteout: bool = True) -> None:
    """The same content, built from scratch, with pinned mtimes."""
    (root / "d/sub").mkdir(parents=True)
    (root / "d/sub/f").write_bytes(b"f")
    (root / "a").write_bytes(b"a" * 1000)
    os.link(root / "a", root / "a-link")
    os.symlink("/nowhere", root / "s")
    os.setxattr(root / "a", "user.z", b"2")
    os.setxattr(root / "a", "user.a", b"1")
    os.setxattr(root / "a", "trusted.overlay.origin", b"junk")  # overlay internals: never exported
    (root / "opq").mkdir()
    os.setxattr(root / "opq", OPAQUE_XATTR, b"y")
    (root / "opq/in").write_bytes(b"i")
    if whiteout:
        os.mknod(root / "deleted", stat.S_IFCHR, 0)
    os.mkfifo(root / "fifo")
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for n in filenames + dirnames:
            os.utime(Path(dirpath) / n, (T0, T0), follow_symlinks=False)
    os.utime(root, (T0, T0))


@needs_root
def test_write_diff_tar_is_deterministic(tmp_path: Path) -> None:
    digests = []
    for n in ("one", "two"):
        root = tmp_path / n
        root.mkdir()
        _fixed_tree(root)
        for _ in range(2):
            buf = io.BytesIO()
            write_diff_tar(root, buf)
            digests.append(hashlib.sha256(buf.getvalue()).hexdigest())
    assert len(set(digests)) == 1
    names = [m.name for m in read_tar(buf.getvalue())]
    assert names == ["a", "a-link", "d", "d/sub", "d/sub/f", ".wh.deleted", "fifo", "opq",
                     "opq/.wh..wh..opq", "opq/in", "s"]
    m = {x.name: x for x in read_tar(buf.getvalue())}
    assert list(m["a"].pax_headers) == ["SCHILY.xattr.user.a", "SCHILY.xattr.user.z"]
    assert m["a"].mtime == T0 and m["a"].uname == "" and m["a-link"].islnk()


@needs_root
def test_diff_dirs_round_trip(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    do_unpack(tar_bytes(
        dir_("etc"), reg("etc/a", b"same"), reg("etc/b", b"old"), reg("etc/c", b"c"),
        reg("etc/samesize", b"1234", mtime=T0), dir_("keep"), reg("keep/x", b"x"),
        dir_("gone"), reg("gone/y", b"y"), sym("link", "etc/a"), reg("todir", b"file"),
        dir_("tofile"), reg("tofile/z", b"z"), reg("perm", b"p", mode=0o644),
    ), lower)
    full = tmp_path / "full"
    shutil.copytree(lower, full, symlinks=True)
    (full / "etc/b").write_bytes(b"new content")
    os.unlink(full / "etc/c")
    (full / "etc/samesize").write_bytes(b"abcd")  # same size and mtime: only the content differs
    os.utime(full / "etc/samesize", (T0, T0))
    shutil.rmtree(full / "gone")
    os.unlink(full / "link")
    os.symlink("etc/b", full / "link")
    os.unlink(full / "todir")
    (full / "todir").mkdir()
    (full / "todir/in").write_bytes(b"in")
    shutil.rmtree(full / "tofile")
    (full / "tofile").write_bytes(b"now a file")
    os.chmod(full / "perm", 0o600)
    (full / "new").mkdir()
    (full / "new/deep").write_bytes(b"d")

    assert changes_dirs(lower, full) == [
        ("C", "/etc"), ("C", "/etc/b"), ("D", "/etc/c"), ("C", "/etc/samesize"), ("D", "/gone"),
        ("C", "/link"), ("A", "/new"), ("A", "/new/deep"), ("C", "/perm"), ("C", "/todir"),
        ("A", "/todir/in"), ("C", "/tofile"),
    ]
    assert ("C", "/etc/samesize") not in changes_dirs(lower, full, compare_content=False)

    buf = io.BytesIO()
    diff_dirs(lower, full, buf)
    names = [m.name for m in read_tar(buf.getvalue())]
    assert names == ["etc", "etc/b", "etc/.wh.c", "etc/samesize", ".wh.gone", "link", "new", "new/deep",
                     "perm", "todir", "todir/in", "tofile"]
    again = io.BytesIO()
    diff_dirs(lower, full, again)
    assert again.getvalue() == buf.getvalue()

    applied = tmp_path / "applied"
    shutil.copytree(lower, applied, symlinks=True)
    do_unpack(buf.getvalue(), applied, whiteouts="apply")
    assert snapshot(applied, dir_mtimes=False) == snapshot(full, dir_mtimes=False)


def test_diff_dirs_of_identical_trees_is_empty(tmp_path: Path) -> None:
    lower = tmp_path / "l"
    do_unpack(tar_bytes(dir_("a"), reg("a/b", b"b"), sym("c", "a")), lower)
    full = tmp_path / "f"
    shutil.copytree(lower, full, symlinks=True)
    assert changes_dirs(lower, full) == []
    buf = io.BytesIO()
    diff_dirs(lower, full, buf)
    assert read_tar(buf.getvalue()) == []


def test_dir_size_counts_hard_links_once(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/a").write_bytes(b"x" * 1000)
    os.link(tmp_path / "d/a", tmp_path / "d/b")
    (tmp_path / "d/c").write_bytes(b"y" * 24)
    os.symlink("abc", tmp_path / "d/s")
    assert dir_size(tmp_path / "d") == 1000 + 24 + 3


def test_deep_trees_need_no_recursion(tmp_path: Path) -> None:
    """Deeper than Python's recursion limit: unpack, write, replace, prune and remove all cope."""
    depth = 1100  # > sys.getrecursionlimit()
    name = "/".join(["d"] * depth) + "/f"
    dest = tmp_path / "deep"
    try:
        do_unpack(tar_bytes(reg(name, b"deep")), dest)
        assert dir_size(dest) == 4
        buf = io.BytesIO()
        write_diff_tar(dest, buf)
        assert [m.name for m in read_tar(buf.getvalue())][-1] == name
        do_unpack(tar_bytes(reg("d", b"a file now")), dest)  # replaces the whole deep tree
        assert (dest / "d").read_bytes() == b"a file now"
        do_unpack(tar_bytes(reg(name, b"deep")), dest / "x")
        do_unpack(tar_bytes(reg("keep", b"k"), reg(".wh..wh..opq", b"")), dest / "x", whiteouts="apply")
        assert os.listdir(dest / "x") == ["keep"]
        do_unpack(tar_bytes(reg(name, b"deep")), dest / "y")
    finally:
        layers.remove_tree(dest)
    assert not dest.exists()


def test_remove_tree_never_follows_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"k")
    t = tmp_path / "t"
    (t / "a/b").mkdir(parents=True)
    os.symlink(outside, t / "a/b/link")
    os.symlink(outside, t / "a/dirlink")
    (t / "a/b/f").write_bytes(b"f")
    layers.remove_tree(t)
    assert not t.exists() and (outside / "keep").read_bytes() == b"k"
    layers.remove_tree(t)  # missing is fine
    (tmp_path / "file").write_bytes(b"x")
    layers.remove_tree(tmp_path / "file")
    assert not (tmp_path / "file").exists()


@needs_root
def test_libarchive_xattrs_and_refused_ones(tmp_path: Path) -> None:
    import base64

    ti, data = reg("f", b"x")
    ti.pax_headers["LIBARCHIVE.xattr.user.with%20space"] = base64.b64encode(b"\x00bin").decode().rstrip("=")
    ti.pax_headers["SCHILY.xattr.trusted.overlay.redirect"] = "/elsewhere"  # never honoured from a tar
    link = _info("l", tarfile.SYMTYPE, linkname="f", xattrs={"user.nope": b"1"})
    s = do_unpack(tar_bytes((ti, data), (link, None)), tmp_path / "d")
    assert os.getxattr(tmp_path / "d/f", "user.with space") == b"\x00bin"
    assert "trusted.overlay.redirect" not in os.listxattr(tmp_path / "d/f")
    reasons = " ".join(r for _, r in s.skipped)
    assert "trusted.overlay.redirect" in reasons and "user.nope" in reasons  # user.* is refused on symlinks


def test_devices_skipped_when_mknod_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: object, **kw: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(layers.os, "mknod", refuse)
    s = do_unpack(tar_bytes(dev("dev/null", tarfile.CHRTYPE, 1, 3), reg("ok", b"1")), tmp_path / "d")
    assert s.skipped == [("dev/null", "mknod not permitted")]
    assert not (tmp_path / "d/dev/null").exists() and (tmp_path / "d/ok").exists()


def test_unknown_entry_types_are_skipped(tmp_path: Path) -> None:
    ti, _ = reg("vol")
    ti.type = b"V"  # a GNU volume header
    s = do_unpack(tar_bytes((ti, None), reg("after", b"a"), fmt=tarfile.GNU_FORMAT), tmp_path / "d")
    assert [m for m, _ in s.skipped] == ["vol"] and (tmp_path / "d/after").read_bytes() == b"a"


@needs_root
def test_copy_layer_apply(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"p")
    l1, l2 = tmp_path / "l1", tmp_path / "l2"
    do_unpack(tar_bytes(sym("lib", str(outside)), dir_("d"), reg("d/old", b"o"), reg("x", b"x"),
                        reg("hl1", b"h"), hard("hl2", "hl1")), l1)
    do_unpack(tar_bytes(dir_("lib", mode=0o700), reg("lib/precious", b"mine"), reg(".wh.x", b""),
                        reg("d/.wh..wh..opq", b""), reg("d/new", b"n")), l2)
    flat = tmp_path / "flat"
    flat.mkdir()
    s1 = layers.copy_layer_apply(l1, flat)
    s2 = layers.copy_layer_apply(l2, flat)
    assert s1.entries == 6 and s2.whiteouts == 2
    assert (outside / "precious").read_bytes() == b"p"  # the lower symlink was replaced, not followed
    assert not (flat / "lib").is_symlink() and (flat / "lib/precious").read_bytes() == b"mine"
    assert stat.S_IMODE(os.lstat(flat / "lib").st_mode) == 0o700
    assert not (flat / "x").exists() and os.listdir(flat / "d") == ["new"]
    assert os.lstat(flat / "hl1").st_ino == os.lstat(flat / "hl2").st_ino

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "f").write_bytes(b"")
    os.setxattr(bad / "f", "trusted.overlay.metacopy", b"")
    with pytest.raises(CorruptData, match="metacopy"):
        layers.copy_layer_apply(bad, flat)
