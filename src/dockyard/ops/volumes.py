"""Local volumes, ``--volumes-from`` and the host side of ``--ipc shareable``.

A volume is a row in the ``volumes`` table and a directory ``<root>/volumes/<name>/_data`` (what
``docker volume inspect`` calls the Mountpoint).  Only Docker's ``local`` driver exists; its
``--opt type=... --opt device=... --opt o=...`` options are honoured by mounting that filesystem
on ``_data`` the first time a container needs the volume (until ``volume rm``).

Containers use a volume when their ``config["volumes"]`` (mount target -> volume name, what
:func:`prepare_for_container` returns as ``.names``) or, for containers created before that was
recorded, their bundle's ``config.json`` mounts name it; a volume in use, by a running or a
stopped container, cannot be removed, as in Docker (``volume rm -f`` only ignores missing ones).

As Docker does when a container is created, an empty volume mounted over a directory of the image
is filled with that directory's content (owners, modes, times, links and device nodes kept, and
the volume's root takes the directory's owner and mode), unless the mount says ``nocopy``.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from dockyard.digest import random_hex
from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.records import MutableRecord
from dockyard.runtime.runopts import is_local_name

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from dockyard.engine import Engine
    from dockyard.runtime.runopts import Mount, RunOptions

#: The label Docker (23+) puts on anonymous volumes; ``volume prune`` without ``-a`` removes only those.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
#: ``--opt`` keys the local driver accepts.
LOCAL_OPTIONS = ("type", "device", "o", "size")

ImageLookup = Callable[[str], "Path | None"]


def volumes_root(eng: Engine) -> Path:
    return eng.root / "volumes"


def mountpoint(eng: Engine, name: str) -> Path:
    return volumes_root(eng) / name / "_data"


def _rfc3339_seconds(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_name(name: str) -> None:
    if not is_local_name(name):
        raise InvalidArgument(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
            "use absolute path"
        )


def _check_options(name: str, options: Mapping[str, str]) -> None:
    for key in options:
        if key not in LOCAL_OPTIONS:
            raise InvalidArgument(f'create {name}: invalid option key: "{key}"')
    if options.get("size"):
        raise InvalidArgument(f"create {name}: quota size requested but no quota support")
    if any(options.get(k) for k in ("type", "device", "o")):
        for k in ("type", "device"):
            if not options.get(k):
                raise InvalidArgument(f'create {name}: missing required option: "{k}"')


# ---- the table ------------------------------------------------------------------------------
def _row(eng: Engine, name: str) -> Any:
    return eng.db.conn.execute("SELECT * FROM volumes WHERE name=?", (name,)).fetchone()


def exists(eng: Engine, name: str) -> bool:
    return _row(eng, name) is not None


def create(eng: Engine, name: str | None = None, labels: Mapping[str, str] | None = None,
           driver: str = "local", options: Mapping[str, str] | None = None) -> str:
    """``docker volume create``: returns the name (64 hex digits for an anonymous volume).

    Creating a volume that exists returns it unchanged, as Docker does; a different driver for
    an existing name is a conflict.
    """
    driver = driver or "local"
    anonymous = name is None or name == ""
    if anonymous:
        name = random_hex(32)
    assert name is not None
    _check_name(name)
    if driver != "local":
        raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')
    # None (a volume made for a container) shows as null in inspect; {} (volume create) as {}, as in Docker
    opts = dict(options) if options is not None else None
    _check_options(name, opts or {})
    labs = dict(labels) if labels is not None else None
    if anonymous:
        labs = {**(labs or {}), ANONYMOUS_LABEL: ""}
    root = volumes_root(eng)
    root.mkdir(parents=True, exist_ok=True, mode=0o701)
    with eng.db.transaction() as c:
        row = c.execute("SELECT driver FROM volumes WHERE name=?", (name,)).fetchone()
        if row is not None:
            if row[0] != driver:
                raise Conflict(f"create {name}: volume name must be unique")
            return name
        (root / name / "_data").mkdir(parents=True, exist_ok=True, mode=0o755)
        c.execute("INSERT INTO volumes (name, driver, created, labels, options, anonymous) VALUES (?,?,?,?,?,?)",
                  (name, driver, time.time(), json.dumps(labs), json.dumps(opts), int(anonymous)))
    return name


def _inspect_row(eng: Engine, row: Any) -> dict[str, Any]:
    return {
        "CreatedAt": _rfc3339_seconds(row["created"]),
        "Driver": row["driver"],
        "Labels": json.loads(row["labels"]),
        "Mountpoint": str(mountpoint(eng, row["name"])),
        "Name": row["name"],
        "Options": json.loads(row["options"]),
        "Scope": "local",
    }


def inspect(eng: Engine, name: str) -> dict[str, Any]:
    """``docker volume inspect``: Name, Driver, Mountpoint, CreatedAt, Labels, Scope, Options."""
    row = _row(eng, name)
    if row is None:
        raise NotFound(f"get {name}: no such volume")
    return _inspect_row(eng, row)


def ls(eng: Engine) -> list[dict[str, Any]]:
    """Every volume in ``inspect`` shape, by name."""
    rows = eng.db.conn.execute("SELECT * FROM volumes ORDER BY name").fetchall()
    return [_inspect_row(eng, r) for r in rows]


def is_anonymous(eng: Engine, name: str) -> bool:
    row = _row(eng, name)
    return bool(row is not None and row["anonymous"])


# ---- who uses a volume ----------------------------------------------------------------------
def container_volumes(eng: Engine, c: Mapping[str, Any]) -> dict[str, str]:
    """A container's volumes: mount target -> volume name.

    From ``config["volumes"]`` when the container recorded it, else from its bundle's mounts
    whose source is a volume's directory.
    """
    cfg = c.get("config")
    if isinstance(cfg, str):
        cfg = json.loads(cfg)
    recorded = (cfg or {}).get("volumes")
    if isinstance(recorded, dict):
        return {str(k): str(v) for k, v in recorded.items()}
    out: dict[str, str] = {}
    root = str(volumes_root(eng)) + "/"
    try:
        with open(eng.root / "containers" / c["id"] / "config.json") as f:
            mounts = json.load(f).get("mounts") or []
    except (OSError, ValueError):
        return out
    for m in mounts:
        src = str(m.get("source") or "")
        if m.get("type") == "bind" and src.startswith(root):
            out[str(m.get("destination"))] = src[len(root):].split("/", 1)[0]
    return out


def users(eng: Engine, name: str, *, exclude: Iterable[str] = ()) -> list[str]:
    """IDs of the containers (running or not) that use volume ``name``."""
    skip = set(exclude)
    return [r["id"] for r in eng.db.containers()
            if r["id"] not in skip and name in container_volumes(eng, dict(r)).values()]


def in_use(eng: Engine) -> set[str]:
    used: set[str] = set()
    for r in eng.db.containers():
        used.update(container_volumes(eng, dict(r)).values())
    return used


# ---- removal --------------------------------------------------------------------------------
def _unmount_all(path: Path) -> None:
    from dockyard.runtime import linux as L

    for _ in range(16):
        if not _is_mountpoint(path):
            return
        try:
            L.umount2(str(path), L.MNT_DETACH)
        except OSError:
            return


def _is_mountpoint(path: Path) -> bool:
    from dockyard.store.snapshots import is_mounted

    return is_mounted(path)


def _delete(eng: Engine, name: str) -> None:
    vdir = volumes_root(eng) / name
    _unmount_all(vdir / "_data")
    with eng.db.transaction() as c:
        c.execute("DELETE FROM volumes WHERE name=?", (name,))
    import shutil

    shutil.rmtree(vdir, ignore_errors=True)


def rm(eng: Engine, name: str, *, force: bool = False) -> None:
    """``docker volume rm``: refuses a volume that a container uses; ``force`` ignores a missing one."""
    if _row(eng, name) is None:
        if force:
            return
        raise NotFound(f"get {name}: no such volume")
    who = users(eng, name)
    if who:
        raise Conflict(f"remove {name}: volume is in use - [{', '.join(who)}]")
    _delete(eng, name)


def _du(path: Path) -> int:
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for n in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def label_match(labels: Mapping[str, str], f: str) -> bool:
    k, eq, v = f.partition("=")
    return k in labels and (not eq or labels[k] == v)


def prune(eng: Engine, *, all_volumes: bool = False,
          filters: Mapping[str, Sequence[str]] | None = None) -> tuple[list[str], int]:
    """``docker volume prune``: unused anonymous volumes (all unused ones with ``all_volumes``).

    ``filters``: ``label=K[=V]``, ``label!=K[=V]`` (as ``"label!"``) and ``all=true``.  Returns the
    removed names and the bytes reclaimed.
    """
    filters = dict(filters or {})
    for k in filters:
        if k not in ("label", "label!", "all"):
            raise InvalidArgument(f"invalid filter '{k}'")
    if any(v.lower() in ("true", "1") for v in filters.get("all", [])):
        all_volumes = True
    used = in_use(eng)
    removed: list[str] = []
    reclaimed = 0
    for row in eng.db.conn.execute("SELECT * FROM volumes ORDER BY name").fetchall():
        name = row["name"]
        if name in used or (not all_volumes and not row["anonymous"]):
            continue
        labels = json.loads(row["labels"]) or {}
        if not all(label_match(labels, f) for f in filters.get("label", [])):
            continue
        if any(label_match(labels, f) for f in filters.get("label!", [])):
            continue
        reclaimed += _du(mountpoint(eng, name))
        _delete(eng, name)
        removed.append(name)
    return removed, reclaimed


def release(eng: Engine, names: Mapping[str, str] | Iterable[str], *, container_id: str | None = None) -> list[str]:
    """Remove the anonymous volumes among ``names`` that no other container uses (``rm -v``, ``run --rm``).

    ``names`` is a container's target -> name map (or just names); ``container_id`` is the container
    being removed, not counted as a user.  Named volumes are always kept.  Returns what was removed.
    """
    vals = list(names.values()) if isinstance(names, Mapping) else list(names)
    removed = []
    for name in dict.fromkeys(vals):
        if not is_anonymous(eng, name):
            continue
        if users(eng, name, exclude=[container_id] if container_id else []):
            continue
        _delete(eng, name)
        removed.append(name)
    return removed


def discard_created(eng: Engine, vp: VolumePaths) -> None:
    """Undo what :func:`prepare_for_container` created, when creating the container failed after it."""
    for name in vp.created:
        if not users(eng, name):
            with contextlib.suppress(Exception):
                _delete(eng, name)


# ---- local driver mounts ----------------------------------------------------------------------
def _mount_local(eng: Engine, name: str, options: Mapping[str, str]) -> None:
    """``--opt type=tmpfs --opt device=tmpfs --opt o=size=100m`` (or nfs, a block device, a bind)."""
    if not options.get("type") and not options.get("device"):
        return
    target = mountpoint(eng, name)
    if _is_mountpoint(target):
        return
    from dockyard.runtime import linux as L

    fstype = options.get("type", "")
    device = options.get("device", "")
    flags = 0
    data: list[str] = []
    names = {"ro": L.MS_RDONLY, "nosuid": L.MS_NOSUID, "nodev": L.MS_NODEV, "noexec": L.MS_NOEXEC,
             "sync": L.MS_SYNCHRONOUS, "noatime": L.MS_NOATIME, "nodiratime": L.MS_NODIRATIME,
             "bind": L.MS_BIND, "rbind": L.MS_BIND | L.MS_REC, "relatime": L.MS_RELATIME}
    for o in (options.get("o") or "").split(","):
        if not o or o in ("rw", "defaults"):
            continue
        if o in names:
            flags |= names[o]
        else:
            data.append(o)
    if fstype == "none" or flags & L.MS_BIND:
        fstype = ""
    try:
        L.mount(device, str(target), fstype or None, flags, ",".join(data) or None)
    except OSError as e:
        raise InvalidArgument(f"error while mounting volume '{target}': failed to mount local volume: "
                              f"mount {device}:{target}, flags: {hex(flags)}, data: {','.join(data)}: "
                              f"{(e.strerror or str(e)).lower()}")


# ---- a container's volumes ------------------------------------------------------------------
class VolumePaths(dict[str, str]):
    """Mount target -> host directory (``build_spec``'s ``volume_paths``), with the volume names.

    ``names``: target -> volume name (store it as the container's ``config["volumes"]``);
    ``created``: the volumes this call created (removed again by :func:`release` if creating the
    container fails afterwards).
    """

    def __init__(self) -> None:
        super().__init__()
        self.names: dict[str, str] = {}
        self.created: list[str] = []


def _volume_mounts(opts: RunOptions, image_config: Mapping[str, Any] | None) -> list[Mount]:
    """The volume mounts a container gets: its ``volume`` mounts and the image's uncovered ``Volumes``."""
    from dockyard.runtime.runopts import Mount

    out: list[Mount] = []
    covered: set[str] = set(opts.tmpfs)
    for m in opts.mounts:
        covered.add(os.path.normpath(m.target))
        if m.type == "volume":
            out.append(m)
    for vol in (image_config or {}).get("Volumes") or {}:
        dest = os.path.normpath(vol)
        if dest not in covered:
            covered.add(dest)
            out.append(Mount(type="volume", source="", target=dest))
    return out


def _safe_subpath(base: Path, sub: str) -> Path:
    if os.path.isabs(sub) or ".." in Path(sub).parts:
        raise InvalidArgument(f"invalid volume subpath {sub!r}: must be a relative path inside the volume")
    p = base / sub
    if not os.path.lexists(p):
        raise InvalidArgument(f"cannot access path {p}: lstat {p}: no such file or directory")
    return p


def prepare_for_container(eng: Engine, image_rootfs: Path | ImageLookup | None, opts: RunOptions,
                          image_config: Mapping[str, Any] | None) -> VolumePaths:
    """Create the volumes a new container needs and return where they are (``volume_paths``).

    Named volumes that do not exist are created (with ``--mount``'s ``volume-label``/``volume-opt``/
    ``volume-driver``); each anonymous ``-v /path`` and each image ``VOLUME`` not otherwise mounted
    gets a new anonymous volume.  An empty volume is then filled from the image's content at the
    mount target (unless ``nocopy`` or ``volume-subpath``), as Docker does at create time.

    ``image_rootfs``: the image's merged root (a directory, e.g. the container's mounted snapshot),
    or a lookup ``container path -> host path or None`` such as :func:`image_rootfs` yields; None
    skips the copy.
    """
    vp = VolumePaths()
    try:
        for m in _volume_mounts(opts, image_config):
            name = m.source
            if not name or not exists(eng, name):
                name = create(eng, name or None, labels=dict(m.volume_labels) or None,
                              driver=m.volume_driver or "local", options=dict(m.volume_options) or None)
                vp.created.append(name)
            row = _row(eng, name)
            _mount_local(eng, name, json.loads(row["options"]) or {})
            host = mountpoint(eng, name)
            if m.volume_subpath:
                host = _safe_subpath(host, m.volume_subpath)
            elif not m.nocopy and image_rootfs is not None:
                src = _lookup(image_rootfs, m.target)
                if src is not None and src.is_dir() and not any(host.iterdir()):
                    copy_tree(src, host)
            target = os.path.normpath(m.target)
            vp[target] = str(host)
            vp.names[target] = name
    except BaseException:
        for name in vp.created:
            with contextlib.suppress(Exception):
                _delete(eng, name)
        raise
    return vp


def _lookup(image_rootfs: Path | ImageLookup, path: str) -> Path | None:
    if callable(image_rootfs):
        return image_rootfs(path)
    return resolve_in_root(Path(image_rootfs), path)


def resolve_in_root(root: Path, path: str) -> Path | None:
    """``path`` under ``root`` with symlinks resolved as the container sees them; None if missing."""
    from dockyard.errors import InvalidArgument
    from dockyard.store import snapshots

    try:
        p = snapshots.resolve_in_root(root, path)
    except InvalidArgument:  # a symlink loop
        return None
    return p if os.path.lexists(p) else None


@contextlib.contextmanager
def image_rootfs(lowers: Sequence[Path], scratch: Path) -> Iterator[ImageLookup]:
    """A lookup into the merged filesystem of image layers (bottom first), for :func:`prepare_for_container`.

    Nothing is mounted until a path is looked up; then a read-only overlay of the layers is mounted
    under ``scratch`` (a flattened copy where overlayfs is missing) and taken down on exit.
    """
    state: dict[str, Path] = {}
    mnt = scratch / "image-rootfs"

    def root() -> Path:
        if "root" in state:
            return state["root"]
        if len(lowers) == 1:
            state["root"] = Path(lowers[0])
            return state["root"]
        mnt.mkdir(parents=True, exist_ok=True)
        if lowers:
            from dockyard.runtime import linux as L

            opts = "lowerdir=" + ":".join(str(p) for p in reversed(lowers))
            try:
                L.mount("overlay", str(mnt), "overlay", L.MS_RDONLY, opts)
                state["mounted"] = mnt
            except OSError:
                from dockyard.store import layers as layers_mod

                for low in lowers:
                    layers_mod.copy_layer_apply(low, mnt)
        state["root"] = mnt
        return mnt

    def lookup(path: str) -> Path | None:
        return resolve_in_root(root(), path)

    try:
        yield lookup
    finally:
        if "mounted" in state:
            _unmount_all(mnt)
        if mnt.exists():
            import shutil

            shutil.rmtree(mnt, ignore_errors=True)


# ---- copying an image directory into a volume -------------------------------------------------
def _copy_meta(src_st: os.stat_result, dst: str, *, is_link: bool = False) -> None:
    with contextlib.suppress(OSError):
        os.lchown(dst, src_st.st_uid, src_st.st_gid)
    if not is_link:
        os.chmod(dst, stat.S_IMODE(src_st.st_mode))
    with contextlib.suppress(OSError, NotImplementedError):
        os.utime(dst, ns=(src_st.st_atime_ns, src_st.st_mtime_ns), follow_symlinks=not is_link)


def _copy_xattrs(src: str, dst: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for n in names:
        if n.startswith("trusted.overlay."):
            continue
        with contextlib.suppress(OSError):
            os.setxattr(dst, n, os.getxattr(src, n, follow_symlinks=False), follow_symlinks=False)


def copy_tree(src: Path, dst: Path) -> None:
    """Copy the content of directory ``src`` into the existing directory ``dst`` (continuity's CopyDir).

    Owners, modes, times, xattrs, symlinks, hard links, fifos and device nodes are kept; ``dst``
    itself takes ``src``'s owner and mode.  Overlay whiteouts (0:0 character devices) are skipped.
    """
    links: dict[tuple[int, int], str] = {}

    def walk(s: str, d: str) -> None:
        with os.scandir(s) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            sp, dp = e.path, os.path.join(d, e.name)
            st = os.lstat(sp)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(dp, 0o700)
                walk(sp, dp)
                _copy_xattrs(sp, dp)
                _copy_meta(st, dp)
                continue
            if st.st_nlink > 1 and not stat.S_ISDIR(mode):
                first = links.get((st.st_dev, st.st_ino))
                if first is not None:
                    os.link(first, dp)
                    continue
                links[(st.st_dev, st.st_ino)] = dp
            if stat.S_ISLNK(mode):
                os.symlink(os.readlink(sp), dp)
                _copy_meta(st, dp, is_link=True)
                continue
            if stat.S_ISREG(mode):
                import shutil

                shutil.copyfile(sp, dp, follow_symlinks=False)
            elif stat.S_ISCHR(mode) and st.st_rdev == 0:
                links.pop((st.st_dev, st.st_ino), None)
                continue  # an overlay whiteout
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                os.mknod(dp, mode, st.st_rdev)
            else:
                continue  # sockets are not copied
            _copy_xattrs(sp, dp)
            _copy_meta(st, dp)

    walk(str(src), str(dst))
    st = os.stat(src)
    _copy_xattrs(str(src), str(dst))
    _copy_meta(st, str(dst))


# ---- --volumes-from -------------------------------------------------------------------------
def volumes_from(eng: Engine, container: Mapping[str, Any], mode: str = "") -> list[Mount]:
    """The bind and volume mounts of ``container`` (a resolved row), for ``--volumes-from``.

    ``mode`` ``"ro"``/``"rw"`` forces every mount read-only/read-write; ``""`` keeps each one's.
    Inherited volumes are never filled from the new container's image (Docker's ``CopyData: false``).
    """
    from dockyard.runtime.runopts import Mount

    cfg = container.get("config") or {}
    if isinstance(cfg, str):
        cfg = json.loads(cfg)
    ro_targets: set[str] = set()
    out: dict[str, Mount] = {}
    opt_mounts = (cfg.get("opts") or {}).get("mounts") or []
    for m in opt_mounts:
        if m.get("read_only"):
            ro_targets.add(os.path.normpath(m["target"]))
        if m.get("type") == "bind":
            out[os.path.normpath(m["target"])] = Mount(
                type="bind", source=m["source"], target=os.path.normpath(m["target"]),
                read_only=bool(m.get("read_only")), propagation=m.get("propagation") or "")
    # mounts this container inherited itself (recorded by prepare/record as config["mounts"])
    for mp in cfg.get("mounts") or []:
        dest = os.path.normpath(mp.get("Destination", ""))
        if mp.get("Type") == "bind" and dest not in out:
            out[dest] = Mount(type="bind", source=mp["Source"], target=dest, read_only=not mp.get("RW", True),
                              propagation=mp.get("Propagation") or "")
        if not mp.get("RW", True):
            ro_targets.add(dest)
    spec_ro = _spec_readonly_targets(eng, container["id"])
    for target, name in container_volumes(eng, container).items():
        t = os.path.normpath(target)
        out[t] = Mount(type="volume", source=name, target=t, read_only=t in ro_targets or t in spec_ro,
                       nocopy=True)
    result = []
    for m in out.values():
        if mode == "ro":
            m = _replace(m, read_only=True)
        elif mode == "rw":
            m = _replace(m, read_only=False)
        result.append(m)
    return result


def _replace(m: Mount, **kw: Any) -> Mount:
    return m.replace(**kw)


def _spec_readonly_targets(eng: Engine, cid: str) -> set[str]:
    try:
        with open(eng.root / "containers" / cid / "config.json") as f:
            mounts = json.load(f).get("mounts") or []
    except (OSError, ValueError):
        return set()
    return {os.path.normpath(m.get("destination", "")) for m in mounts
            if "ro" in (m.get("options") or []) or "rro" in (m.get("options") or [])}


def parse_volumes_from(value: str) -> tuple[str, str]:
    """``--volumes-from NAME[:ro|rw]`` -> ``(name, mode)``."""
    name, _, mode = value.partition(":")
    if not name:
        raise InvalidArgument(f"invalid volumes-from specification: '{value}'")
    for m in mode.split(",") if mode else []:
        if m not in ("ro", "rw", "z", "Z"):
            raise InvalidArgument(f"invalid mode: {mode}")
    rw = "ro" if "ro" in mode.split(",") else ("rw" if "rw" in mode.split(",") else "")
    return name, rw


def resolve_volumes_from(eng: Engine, specs: Sequence[str], mounts: Sequence[Mount]) -> list[Mount]:
    """``--volumes-from`` merged with the container's own ``-v``/``--mount`` (those win on a target).

    Returns the mount list to put in ``opts.mounts`` (no duplicate targets).
    """
    if not specs:
        return list(mounts)
    from dockyard.ops import containers

    inherited: dict[str, Mount] = {}
    for spec in specs:
        name, mode = parse_volumes_from(spec)
        c = containers.resolve(eng, name)
        for m in volumes_from(eng, c, mode):
            inherited[m.target] = m
    own = {os.path.normpath(m.target) for m in mounts}
    return [m for t, m in inherited.items() if t not in own] + list(mounts)


def mount_points(mounts: Sequence[Mount], vp: VolumePaths) -> list[dict[str, Any]]:
    """``docker inspect``'s ``Mounts`` for a container (binds, volumes, image volumes), by destination."""
    out: list[dict[str, Any]] = []
    by_target = {os.path.normpath(m.target): m for m in mounts}
    for m in mounts:
        if m.type == "bind":
            out.append({"Type": "bind", "Source": m.source, "Destination": os.path.normpath(m.target),
                        "Mode": m.mode, "RW": not m.read_only, "Propagation": m.propagation or "rprivate"})
    for target, name in vp.names.items():
        m2 = by_target.get(target)
        out.append({"Type": "volume", "Name": name, "Source": vp[target], "Destination": target,
                    "Driver": "local", "Mode": m2.mode if m2 else "",
                    "RW": not (m2.read_only if m2 else False), "Propagation": ""})
    return sorted(out, key=lambda d: d["Destination"])


# ---- shared memory and IPC --------------------------------------------------------------------
def shm_dir(eng: Engine, cid: str) -> Path:
    """Where a ``--ipc shareable`` container's /dev/shm lives on the host (a tmpfs)."""
    return eng.root / "containers" / cid / "mounts" / "shm"


def setup_shm(path: Path, size: int) -> None:
    """Mount the tmpfs of a shareable /dev/shm (idempotent)."""
    from dockyard.runtime import linux as L
    from dockyard.runtime.spec import DEFAULT_SHM_SIZE

    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if _is_mountpoint(path):
        return
    try:
        L.mount("shm", str(path), "tmpfs", L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC,
                f"mode=1777,size={size or DEFAULT_SHM_SIZE}")
    except OSError as e:
        raise InvalidArgument(f"mounting shm tmpfs: {e.strerror or e}")


def teardown_shm(path: Path) -> None:
    _unmount_all(path)


class IpcSetup(MutableRecord):
    """What ``build_spec`` needs for ``--ipc``: ``shm_path`` and ``namespace_paths``."""

    shm_path: str | None
    namespace_paths: dict[str, str]
    _fields = ("shm_path", "namespace_paths")

    def __init__(self, shm_path: str | None = None, namespace_paths: dict[str, str] | None = None) -> None:
        self.shm_path = shm_path
        self.namespace_paths = {} if namespace_paths is None else namespace_paths


def prepare_ipc(eng: Engine, opts: RunOptions, cid: str) -> IpcSetup:
    """Docker's ``--ipc`` on the host side.

    ``shareable``: a tmpfs (``--shm-size``) mounted at :func:`shm_dir` and bound on /dev/shm;
    ``host``: the host's /dev/shm; ``container:X``: X's /dev/shm and IPC namespace, X running with
    ``--ipc shareable`` (or ``host``); ``private``/``none``/``""``: nothing.
    """
    mode = opts.ipc
    if mode == "shareable":
        path = shm_dir(eng, cid)
        setup_shm(path, opts.shm_size)
        return IpcSetup(str(path))
    if mode == "host":
        if not os.path.isdir("/dev/shm"):
            raise InvalidArgument("mount /dev/shm: host does not have /dev/shm")
        return IpcSetup("/dev/shm")
    if mode.startswith("container:"):
        from dockyard.ops import containers

        other = containers.refresh(eng, containers.resolve(eng, mode.partition(":")[2]))
        st = other["state"]
        if st.get("status") not in ("running", "paused") or not st.get("pid"):
            raise Conflict(f"cannot join IPC of a non running container: {other['id']}")
        other_mode = ((other["config"].get("opts") or {}).get("ipc")) or ""
        if other_mode == "shareable":
            shm = str(shm_dir(eng, other["id"]))
        elif other_mode == "host":
            shm = "/dev/shm"
        else:
            raise Conflict("non-shareable IPC (hint: use IpcMode:shareable for the donor container)")
        return IpcSetup(shm, {"ipc": f"/proc/{st['pid']}/ns/ipc"})
    return IpcSetup()
