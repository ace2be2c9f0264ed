"""Hostile layer tars: nothing outside the destination may ever be created, changed or deleted.

Each case unpacks into ``box/dest`` where ``box`` also holds a sentinel file and a canary directory.
Everything in ``box`` outside ``dest`` is snapshotted (type, mode, owner, size, mtime, content, link
target) before and after; it must not change, whatever the outcome. Then the case's own expectation
is checked: ``UnsafeArchive`` raised, or the entry confined inside ``dest``.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.errors import CorruptData, UnsafeArchive
from dockyard.store.layers import unpack

T0 = 1_600_000_000


# ---- tar building ---------------------------------------------------------------------------------

def _ti(name: str, type_: bytes, **kw: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.mode = 0o644
    ti.mtime = T0
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def reg(name: str, data: bytes = b"pwned", **kw: object) -> tuple[tarfile.TarInfo, bytes | None]:
    ti = _ti(name, tarfile.REGTYPE, **kw)
    ti.size = len(data)
    return ti, data


def dir_(name: str, **kw: object) -> tuple[tarfile.TarInfo, bytes | None]:
    kw.setdefault("mode", 0o755)
    return _ti(name, tarfile.DIRTYPE, **kw), None


def sym(name: str, target: str, **kw: object) -> tuple[tarfile.TarInfo, bytes | None]:
    kw.setdefault("mode", 0o777)
    return _ti(name, tarfile.SYMTYPE, linkname=target, **kw), None


def hard(name: str, target: str) -> tuple[tarfile.TarInfo, bytes | None]:
    return _ti(name, tarfile.LNKTYPE, linkname=target), None


def chrdev(name: str, major: int = 1, minor: int = 3) -> tuple[tarfile.TarInfo, bytes | None]:
    return _ti(name, tarfile.CHRTYPE, devmajor=major, devminor=minor, mode=0o666), None


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes | None], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def pax_path_override(header_name: str, real_name: str) -> bytes:
    """A ustar entry named harmlessly whose PAX ``path`` record says otherwise."""
    ti, data = reg(header_name)
    ti.pax_headers = {"path": real_name}
    return tar_bytes((ti, data))


def raw_pax_header_then(name_in_pax: str) -> bytes:
    """A hand-made PAX 'x' header whose path has '..', followed by a plain ustar member."""
    record = f" path={name_in_pax}\n"
    n = len(record) + 1
    while len(str(n)) + len(record) != n:
        n = len(str(n)) + len(record)
    payload = f"{n}{record}".encode()
    hdr = tarfile.TarInfo("PaxHeader/x")
    hdr.type = tarfile.XHDTYPE
    hdr.size = len(payload)
    body = hdr.tobuf(tarfile.USTAR_FORMAT) + payload + b"\0" * (-len(payload) % 512)
    ti, data = reg("innocent")
    assert data is not None
    body += ti.tobuf(tarfile.USTAR_FORMAT) + data + b"\0" * (-len(data) % 512)
    return body + b"\0" * 1024


# ---- the box ---------------------------------------------------------------------------------------

@dataclass
class Box:
    root: Path
    dest: Path
    sentinel: Path
    canary: Path


@pytest.fixture
def box(tmp_path: Path) -> Box:
    root = tmp_path / "box"
    dest = root / "dest"
    dest.mkdir(parents=True)
    sentinel = root / "sentinel.txt"
    sentinel.write_bytes(b"do not touch")
    os.chmod(sentinel, 0o640)
    canary = root / "canary"
    canary.mkdir()
    (canary / "inside").write_bytes(b"canary")
    (canary / "sub").mkdir()
    (canary / "sub" / "deeper").write_bytes(b"deeper")
    for p in (canary / "sub" / "deeper", canary / "sub", canary / "inside", canary, sentinel, root):
        os.utime(p, (T0, T0))
    return Box(root, dest, sentinel, canary)


def outside_snapshot(box: Box) -> dict[str, tuple]:
    out: dict[str, tuple] = {}

    def record(p: Path) -> None:
        st = os.lstat(p)
        extra: object = None
        if stat.S_ISREG(st.st_mode):
            extra = hashlib.sha256(p.read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            extra = os.readlink(p)
        out[str(p)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_nlink, extra,
                       sorted(os.listxattr(p, follow_symlinks=False)))

    record(box.root)
    for dirpath, dirnames, filenames in os.walk(box.root):
        here = Path(dirpath)
        if here == box.dest:
            dirnames[:] = []
            continue
        for n in dirnames + filenames:
            if here / n != box.dest:
                record(here / n)
    record(Path("/etc/passwd"))
    return out


# ---- the cases -------------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    build: Callable[[Box], bytes]
    expect: str  # "unsafe" | "corrupt" (a CorruptData that may or may not be UnsafeArchive) | "ok"
    check: Callable[[Box], None] | None = None
    prepare: Callable[[Box], None] | None = None


def _confined_abs(box: Box) -> None:
    assert (box.dest / "abs/path").read_bytes() == b"pwned"


def _confined_rootdotdot(box: Box) -> None:
    assert (box.dest / "escape").read_bytes() == b"pwned"
    assert not (box.root / "escape").exists()


def _confined_box_path(box: Box) -> None:
    assert (box.dest / str(box.sentinel).lstrip("/")).read_bytes() == b"pwned"


def _replaced_symlink(box: Box) -> None:
    assert not (box.dest / "s").is_symlink()
    assert (box.dest / "s").read_bytes() == b"pwned"


def _prepared_link_replaced(box: Box) -> None:
    assert not (box.dest / "pre").is_symlink() and (box.dest / "pre").read_bytes() == b"pwned"


def _deep_ok(box: Box) -> None:
    fd = os.open(box.dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(500):  # one component at a time: the whole path is longer than PATH_MAX
            nfd = os.open("abcdefgh", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        f = os.open("f", os.O_RDONLY, dir_fd=fd)
        try:
            assert os.read(f, 100) == b"pwned"
        finally:
            os.close(f)
    finally:
        os.close(fd)


def _link_is_symlink(box: Box) -> None:
    assert (box.dest / "h").read_bytes() == b"pwned" and not (box.dest / "h").is_symlink()


def _only_link_removed(box: Box) -> None:
    assert not os.path.lexists(box.dest / "s")


def _dir_replaced(box: Box) -> None:
    assert (box.dest / "s").is_dir() and not (box.dest / "s").is_symlink()
    assert stat.S_IMODE(os.lstat(box.dest / "s").st_mode) == 0o777


def _prepare_symlink_to_canary(box: Box) -> None:
    os.symlink(str(box.canary), box.dest / "pre")


def _prepare_dir_with_outward_link(box: Box) -> None:
    (box.dest / "d").mkdir()
    os.symlink(str(box.canary), box.dest / "d" / "out")
    os.symlink("../../canary", box.dest / "d" / "rel")


CASES: list[Case] = [
    Case("dotdot", lambda b: tar_bytes(reg("../escape")), "unsafe"),
    Case("dotdot-nested", lambda b: tar_bytes(reg("a/../../escape")), "unsafe"),
    Case("dot-dotdot", lambda b: tar_bytes(reg("./../sentinel.txt")), "unsafe"),
    Case("dotdot-dir", lambda b: tar_bytes(dir_("../canary", mode=0o777)), "unsafe"),
    Case("absolute-confined", lambda b: tar_bytes(reg("/abs/path")), "ok", _confined_abs),
    Case("root-dotdot-confined", lambda b: tar_bytes(reg("/../../escape")), "ok", _confined_rootdotdot),
    Case("absolute-box-path-confined", lambda b: tar_bytes(reg(str(b.sentinel))), "ok", _confined_box_path),
    Case("symlink-relative-then-write", lambda b: tar_bytes(sym("a", "../.."), reg("a/escape")), "unsafe"),
    Case("symlink-dotdot-then-write-sentinel",
         lambda b: tar_bytes(sym("a", ".."), reg("a/sentinel.txt")), "unsafe"),
    Case("symlink-absolute-then-write",
         lambda b: tar_bytes(sym("a", str(b.canary)), reg("a/inside")), "unsafe"),
    Case("symlink-absolute-then-mkdir",
         lambda b: tar_bytes(sym("a", str(b.canary)), dir_("a/newdir")), "unsafe"),
    Case("symlink-chain",
         lambda b: tar_bytes(sym("a", "b"), sym("b", "c"), sym("c", str(b.canary)), reg("a/inside")),
         "unsafe"),
    Case("symlink-in-subdir-climbing",
         lambda b: tar_bytes(dir_("d"), sym("d/link", "../.."), reg("d/link/sentinel.txt")), "unsafe"),
    Case("symlink-to-etc-then-passwd",
         lambda b: tar_bytes(sym("etc", "/etc"), reg("etc/passwd", b"root::0:0::/:/bin/sh\n")), "unsafe"),
    Case("symlink-then-device-through-it",
         lambda b: tar_bytes(sym("a", str(b.canary)), chrdev("a/null")), "unsafe"),
    Case("symlink-then-hardlink-through-it",
         lambda b: tar_bytes(reg("f"), sym("a", str(b.canary)), hard("a/h", "f")), "unsafe"),
    Case("preexisting-symlink-write-through",
         lambda b: tar_bytes(reg("pre/inside")), "unsafe", None, _prepare_symlink_to_canary),
    Case("preexisting-symlink-replaced-by-file",
         lambda b: tar_bytes(reg("pre")), "ok", _prepared_link_replaced, _prepare_symlink_to_canary),
    Case("symlink-replaced-by-file",
         lambda b: tar_bytes(sym("s", str(b.sentinel)), reg("s")), "ok", _replaced_symlink),
    Case("symlink-replaced-by-dir-with-mode",
         lambda b: tar_bytes(sym("s", str(b.canary)), dir_("s", mode=0o777, mtime=1)), "ok", _dir_replaced),
    Case("symlink-metadata-not-followed",
         lambda b: tar_bytes(sym("s", str(b.sentinel), mode=0o777, uid=4242, gid=4242, mtime=5)), "ok"),
    Case("dir-replaced-by-symlink-between-entries",
         lambda b: tar_bytes(dir_("d"), reg("d/f"), sym("d", str(b.canary)), reg("d/inside")), "unsafe"),
    Case("dir-replaced-by-relative-symlink",
         lambda b: tar_bytes(dir_("d"), reg("d/f"), sym("d", ".."), reg("d/sentinel.txt")), "unsafe"),
    Case("hardlink-dotdot", lambda b: tar_bytes(hard("h", "../sentinel.txt")), "unsafe"),
    Case("hardlink-nested-dotdot", lambda b: tar_bytes(hard("h", "x/../../sentinel.txt")), "unsafe"),
    Case("hardlink-etc-passwd-confined", lambda b: tar_bytes(hard("h", "/etc/passwd")), "corrupt"),
    Case("hardlink-absolute-sentinel-confined", lambda b: tar_bytes(hard("h", str(b.sentinel))), "corrupt"),
    Case("hardlink-through-symlink",
         lambda b: tar_bytes(sym("s", str(b.root)), hard("h", "s/sentinel.txt")), "unsafe"),
    Case("hardlink-through-relative-symlink",
         lambda b: tar_bytes(sym("s", ".."), hard("h", "s/sentinel.txt")), "unsafe"),
    Case("hardlink-to-outward-symlink-then-overwrite",
         lambda b: tar_bytes(sym("s", str(b.sentinel)), hard("h", "s"), reg("h")), "ok", _link_is_symlink),
    Case("hardlink-to-dir", lambda b: tar_bytes(dir_("d"), hard("h", "d")), "corrupt"),
    Case("whiteout-dotdot-name", lambda b: tar_bytes(reg(".wh..."), reg("x/.wh...")), "unsafe"),
    Case("whiteout-dot-name", lambda b: tar_bytes(reg(".wh..")), "unsafe"),
    Case("whiteout-escaping-dir", lambda b: tar_bytes(reg("../.wh.sentinel.txt")), "unsafe"),
    Case("whiteout-escaping-nested", lambda b: tar_bytes(reg("a/../../.wh.canary")), "unsafe"),
    Case("whiteout-through-symlink",
         lambda b: tar_bytes(sym("s", str(b.root)), reg("s/.wh.sentinel.txt")), "unsafe"),
    Case("whiteout-through-relative-symlink",
         lambda b: tar_bytes(sym("s", ".."), reg("s/.wh.canary")), "unsafe"),
    Case("opaque-through-symlink",
         lambda b: tar_bytes(sym("s", str(b.canary)), reg("s/.wh..wh..opq")), "unsafe"),
    Case("whiteout-of-outward-symlink", lambda b: tar_bytes(sym("s", str(b.canary)), reg(".wh.s")), "ok"),
    Case("opaque-over-outward-symlinks",
         lambda b: tar_bytes(reg("d/.wh..wh..opq")), "ok", None, _prepare_dir_with_outward_link),
    Case("whiteout-of-preexisting-outward-link",
         lambda b: tar_bytes(reg("d/.wh.out"), reg("d/.wh.rel")), "ok", None, _prepare_dir_with_outward_link),
    Case("device-dotdot", lambda b: tar_bytes(chrdev("../dev-escape")), "unsafe"),
    Case("device-nested-dotdot", lambda b: tar_bytes(chrdev("dev/../../null")), "unsafe"),
    Case("fifo-dotdot",
         lambda b: tar_bytes((_ti("../fifo", tarfile.FIFOTYPE), None)), "unsafe"),
    Case("very-long-escaping-name",
         lambda b: tar_bytes(reg("a/" * 3000 + "../" * 3001 + "escape")), "unsafe"),
    Case("very-long-deep-name-confined",  # 4.5 KB: longer than PATH_MAX, fine one component at a time
         lambda b: tar_bytes(reg("abcdefgh/" * 500 + "f")), "ok", _deep_ok),
    Case("component-too-long", lambda b: tar_bytes(reg("x" * 300)), "corrupt"),
    Case("pax-path-override-dotdot", lambda b: pax_path_override("harmless", "../escape"), "unsafe"),
    Case("pax-path-override-nested", lambda b: pax_path_override("harmless", "ok/../../../sentinel.txt"),
         "unsafe"),
    Case("raw-pax-header-dotdot", lambda b: raw_pax_header_then("../../escape"), "unsafe"),
    Case("pax-linkpath-dotdot",
         lambda b: tar_bytes((_ti("h", tarfile.LNKTYPE, linkname="x" * 120 + "/../../../sentinel.txt"),
                              None)),
         "unsafe"),
    Case("gnu-longname-dotdot",
         lambda b: tar_bytes(reg("x" * 120 + "/../../escape"), fmt=tarfile.GNU_FORMAT), "unsafe"),
    Case("gnu-longlink-hardlink-dotdot",
         lambda b: tar_bytes(hard("h", "y" * 150 + "/../../sentinel.txt"), fmt=tarfile.GNU_FORMAT), "unsafe"),
    Case("gnu-longlink-symlink-then-write",
         lambda b: tar_bytes(sym("s", "/" + "/".join(["."] * 60) + str(b.canary)), reg("s/inside"),
                             fmt=tarfile.GNU_FORMAT), "unsafe"),
    Case("root-entry-as-file", lambda b: tar_bytes(reg("./")), "unsafe"),
    Case("root-entry-as-symlink", lambda b: tar_bytes(sym(".", str(b.canary))), "unsafe"),
]


@pytest.mark.parametrize("whiteouts", ["overlay", "apply"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_tar(box: Box, case: Case, whiteouts: str) -> None:
    if whiteouts == "overlay" and os.geteuid() != 0:
        pytest.skip("overlay whiteouts are character devices: mknod needs root")
    if case.prepare is not None:
        case.prepare(box)
    data = case.build(box)
    before = outside_snapshot(box)
    if case.expect == "unsafe":
        with pytest.raises(UnsafeArchive) as ei:
            unpack(io.BytesIO(data), box.dest, whiteouts=whiteouts)  # type: ignore[arg-type]
        assert "'" in str(ei.value)  # names the member
    elif case.expect == "corrupt":
        with pytest.raises(CorruptData):
            unpack(io.BytesIO(data), box.dest, whiteouts=whiteouts)  # type: ignore[arg-type]
    else:
        unpack(io.BytesIO(data), box.dest, whiteouts=whiteouts)  # type: ignore[arg-type]
        if case.check is not None:
            case.check(box)
    assert outside_snapshot(box) == before
    assert (box.canary / "inside").read_bytes() == b"canary"
    assert box.sentinel.read_bytes() == b"do not touch"


def test_at_least_fifteen_cases() -> None:
    assert len([c for c in CASES if c.expect == "unsafe"]) >= 15


def test_unsafe_error_names_the_member(box: Box) -> None:
    with pytest.raises(UnsafeArchive, match="a/passwd"):
        unpack(io.BytesIO(tar_bytes(sym("a", "/etc"), reg("a/passwd"))), box.dest)
