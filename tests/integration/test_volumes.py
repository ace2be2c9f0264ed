"""Volumes, --volumes-from, /dev/shm and --ipc, --device: real containers on a real kernel.

Until ``dockyard run`` passes ``volume_paths``/``devices``/``shm_path`` to ``build_spec``, most of
these build the container's spec the way ``create`` will (``build_spec`` plus this feature's
functions) and run the bundle with ``dockyard-runtime``; what the CLI already does is tested
through it.  The helpers here (:class:`Bundles`, :func:`volume_cli`) are shared with
``test_gpu_fake.py`` and ``test_x11.py``.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine import Engine
from dockyard.errors import Conflict, InvalidArgument
from dockyard.ops import volumes
from dockyard.runtime import spec as specmod
from dockyard.runtime.runopts import Mount, RunOptions, parse_device, parse_mount, parse_volume
from tests.conftest import CLI, Result, remove_cgroup_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

RUNTIME_BIN = Path(sys.executable).with_name("dockyard-runtime")

# `dockyard volume ...` through the real entry point, with the command group the lead adds to main.py.
_LAUNCHER = """
import sys
from dockyard.cli import main as m
m.GROUPS.setdefault("volume", ("Manage volumes", {
    "create": "dockyard.cli.volumes:create", "ls": "dockyard.cli.volumes:ls", "list": "dockyard.cli.volumes:ls",
    "inspect": "dockyard.cli.volumes:inspect", "rm": "dockyard.cli.volumes:rm", "remove": "dockyard.cli.volumes:rm",
    "prune": "dockyard.cli.volumes:prune"}))
sys.exit(m.main(sys.argv[1:]))
"""


def volume_cli(root: Path, *args: str, check: bool = True, input: str | None = None) -> Result:
    p = subprocess.run([sys.executable, "-c", _LAUNCHER, "--root", str(root), "volume", *args], capture_output=True,
                       text=True, timeout=60, input=input)
    r = Result(p.returncode, p.stdout, p.stderr)
    if check and p.returncode != 0:
        raise AssertionError(f"volume {' '.join(args)} exited {p.returncode}: {p.stdout} {p.stderr}")
    return r


# ---- running specs built by build_spec ----------------------------------------------------------
@pytest.fixture(scope="session")
def busybox_rootfs_template(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Path:
    root = tmp_path_factory.mktemp("bb") / "rootfs"
    root.mkdir()
    subprocess.run(["tar", "-xf", str(busybox_tar), "-C", str(root)], check=True)
    root.chmod(0o755)  # the tar's "./" is mktemp's 0700: a non-root user could not reach anything
    return root


class Bundles:
    """Build specs like ``create`` does and run them with ``dockyard-runtime`` (private state root)."""

    def __init__(self, base: Path, template: Path) -> None:
        self.base = base
        self.template = template
        self.state = base / "rt-state"
        self.ids: list[str] = []
        # a cgroup parent of its own: cleaning it up never races with another test run's containers
        self.cgroup_parent = f"dockyard-vtest-{uuid.uuid4().hex[:8]}"

    def rootfs(self, template: Path | None = None) -> Path:
        d = self.base / f"rootfs-{uuid.uuid4().hex[:8]}"
        subprocess.run(["cp", "-a", str(template or self.template), str(d)], check=True)
        return d

    def spec(self, opts: RunOptions, image_config: dict[str, Any] | None = None, *, rootfs: Path | None = None,
             **kw: Any) -> dict[str, Any]:
        from dockyard.ops.containers import _limit_caps_to_host

        cid = uuid.uuid4().hex * 2
        root = rootfs or self.rootfs()
        passwd = (root / "etc/passwd").read_text() if (root / "etc/passwd").exists() else None
        group = (root / "etc/group").read_text() if (root / "etc/group").exists() else None
        if opts.devices and "devices" not in kw:
            kw["devices"] = [d for m in opts.devices for d in specmod.resolve_device(m)]
        spec = specmod.build_spec(image_config or {}, opts, container_id=cid, rootfs=str(root),
                                  cgroups_path=f"/{self.cgroup_parent}/{cid[:12]}", passwd_text=passwd,
                                  group_text=group, **kw)
        _limit_caps_to_host(spec)
        return spec

    def _bundle(self, spec: dict[str, Any]) -> tuple[str, Path]:
        cid = f"t-{uuid.uuid4().hex[:10]}"
        bundle = self.base / cid
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(spec, indent=1))
        self.ids.append(cid)
        return cid, bundle

    def run(self, spec: dict[str, Any], timeout: float = 60) -> Result:
        cid, bundle = self._bundle(spec)
        p = subprocess.run([str(RUNTIME_BIN), "--root", str(self.state), "run", "--bundle", str(bundle), cid],
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return Result(p.returncode, p.stdout, p.stderr)

    def start(self, spec: dict[str, Any]) -> tuple[str, int]:
        """Run detached; returns (id, host pid of its process)."""
        cid, bundle = self._bundle(spec)
        subprocess.run([str(RUNTIME_BIN), "--root", str(self.state), "run", "-d", "--bundle", str(bundle), cid],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)
        st = json.loads(subprocess.run([str(RUNTIME_BIN), "--root", str(self.state), "state", cid],
                                       capture_output=True, text=True, check=True).stdout)
        return cid, int(st["pid"])

    def cleanup(self) -> None:
        for cid in self.ids:
            subprocess.run([str(RUNTIME_BIN), "--root", str(self.state), "delete", "--force", cid],
                           capture_output=True, timeout=30)
        remove_cgroup_tree(self.cgroup_parent)


@pytest.fixture
def bundles(tmp_path: Path, busybox_rootfs_template: Path) -> Iterator[Bundles]:
    b = Bundles(tmp_path, busybox_rootfs_template)
    yield b
    b.cleanup()


@pytest.fixture
def eng(root: Path) -> Iterator[Engine]:
    with Engine(root) as e:
        yield e
    # a failed test may leave a volume's tmpfs or a shareable /dev/shm mounted under the root
    for m in sorted((m[4] for m in mountinfo() if m[4].startswith(str(root) + "/")), reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)


@pytest.fixture(autouse=True)
def _cleanup_containers(cli: CLI) -> Iterator[None]:
    yield
    ids = cli("ps", "-aq", check=False).stdout.split()
    if ids:
        cli("rm", "-f", *ids, check=False)


def mountinfo() -> list[list[str]]:
    with open("/proc/self/mountinfo") as f:
        return [line.split() for line in f]


def sh(*script: str) -> RunOptions:
    return RunOptions(cmd=["sh", "-c", "; ".join(script)])


# ---- the volume command ---------------------------------------------------------------------------
def test_volume_create_ls_inspect_rm(root: Path) -> None:
    assert volume_cli(root, "create", "--label", "team=blue", "data").stdout == "data\n"
    anon = volume_cli(root, "create").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", anon)
    assert volume_cli(root, "create", "data").stdout == "data\n"  # exists: returned unchanged
    lines = volume_cli(root, "ls").stdout.splitlines()
    assert lines[0] == "DRIVER    VOLUME NAME"
    assert sorted(lines[1:]) == sorted([f"local     {anon}", "local     data"])
    assert volume_cli(root, "ls", "-q", "--filter", "label=team=blue").stdout == "data\n"
    assert volume_cli(root, "ls", "-q", "--filter", "name=dat").stdout == "data\n"
    assert volume_cli(root, "ls", "--format", "{{.Name}} {{.Driver}}", "-f", "dangling=true").stdout.split("\n")[:-1] \
        == sorted([f"{anon} local", "data local"])
    info = json.loads(volume_cli(root, "inspect", "data").stdout)
    assert len(info) == 1
    v = info[0]
    assert set(v) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
    assert (v["Name"], v["Driver"], v["Labels"], v["Scope"], v["Options"]) == ("data", "local", {"team": "blue"},
                                                                               "local", {})
    assert v["Mountpoint"] == str(root / "volumes" / "data" / "_data") and os.path.isdir(v["Mountpoint"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", v["CreatedAt"])
    anon_info = json.loads(volume_cli(root, "inspect", anon).stdout)[0]
    assert anon_info["Labels"] == {"com.docker.volume.anonymous": ""}
    assert volume_cli(root, "inspect", "--format", "{{.Mountpoint}}", "data").stdout.strip() == v["Mountpoint"]

    missing = volume_cli(root, "inspect", "nosuch", check=False)
    assert (missing.returncode, missing.stderr) == (1, "Error: get nosuch: no such volume\n")
    assert volume_cli(root, "rm", "data", anon).stdout == f"data\n{anon}\n"
    assert not (root / "volumes" / "data").exists()
    assert volume_cli(root, "ls", "-q").stdout == ""
    r = volume_cli(root, "rm", "data", check=False)
    assert (r.returncode, r.stderr) == (1, "Error: get data: no such volume\n")
    assert volume_cli(root, "rm", "-f", "data").returncode == 0


@pytest.mark.parametrize("args, message", [
    (["create", "a"], 'create a: "a" includes invalid characters for a local volume name'),
    (["create", "bad/name"], 'includes invalid characters'),
    (["create", "-d", "nfsplugin", "x1"],
     'create x1: error looking up volume plugin nfsplugin: plugin "nfsplugin" not found'),
    (["create", "-o", "color=red", "x2"], 'create x2: invalid option key: "color"'),
    (["ls", "--filter", "colour=red"], "invalid filter 'colour'"),
])
def test_volume_command_errors(root: Path, args: list[str], message: str) -> None:
    r = volume_cli(root, *args, check=False)
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr, r


def test_tmpfs_volume_options_mount_on_first_use(eng: Engine, root: Path, bundles: Bundles) -> None:
    volume_cli(root, "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=1m,uid=7", "ram")
    assert json.loads(volume_cli(root, "inspect", "ram").stdout)[0]["Options"] == {
        "type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=7"}
    opts = sh("df -k /ram | tail -1", "stat -c %u /ram")
    opts.mounts = [parse_volume("ram:/ram")]
    vp = volumes.prepare_for_container(eng, None, opts, {})
    out = bundles.run(bundles.spec(opts, volume_paths=vp)).stdout.split()
    assert out[1] == "1024" and out[-1] == "7"
    volume_cli(root, "rm", "ram")
    assert not any(m[4].startswith(str(root)) for m in mountinfo())


# ---- named volumes in containers ------------------------------------------------------------------
def test_named_volume_persists_across_containers(eng: Engine, root: Path, bundles: Bundles) -> None:
    first = sh("echo kept > /data/file", "mkdir /data/dir")
    first.mounts = [parse_volume("data:/data")]
    vp = volumes.prepare_for_container(eng, None, first, {})
    assert dict(vp) == {"/data": str(root / "volumes/data/_data")} and vp.names == {"/data": "data"}
    assert vp.created == ["data"]  # -v NAME:/path creates a missing volume
    assert volumes.inspect(eng, "data")["Labels"] is None and volumes.inspect(eng, "data")["Options"] is None
    spec = bundles.spec(first, volume_paths=vp)
    assert {"destination": "/data", "type": "bind", "source": vp["/data"], "options": ["rbind"]} in spec["mounts"]
    assert bundles.run(spec).returncode == 0

    second = sh("cat /data/file", "ls /data", "touch /data/x")
    second.mounts = [parse_mount("type=volume,source=data,target=/data,readonly")]
    vp2 = volumes.prepare_for_container(eng, None, second, {})
    assert vp2.created == []
    r = bundles.run(bundles.spec(second, volume_paths=vp2))
    assert r.stdout == "kept\ndir\nfile\n" and "Read-only file system" in r.stderr
    assert volume_cli(root, "ls", "-q").stdout == "data\n"


def test_volume_subpath_and_labels_from_mount(eng: Engine, root: Path, bundles: Bundles) -> None:
    opts = sh("cat /sub/f")
    opts.mounts = [parse_mount("type=volume,source=tree,target=/sub,volume-subpath=a/b,volume-label=x=y")]
    with pytest.raises(InvalidArgument, match="cannot access path"):
        volumes.prepare_for_container(eng, None, opts, {})
    assert not volumes.exists(eng, "tree")  # what the failed call created is gone again
    volumes.create(eng, "tree", labels={"x": "y"})
    sub = volumes.mountpoint(eng, "tree") / "a" / "b"
    sub.mkdir(parents=True)
    (sub / "f").write_text("deep\n")
    vp = volumes.prepare_for_container(eng, None, opts, {})
    assert vp["/sub"] == str(sub)
    assert bundles.run(bundles.spec(opts, volume_paths=vp)).stdout == "deep\n"
    bad = RunOptions(mounts=[parse_mount("type=volume,source=tree,target=/x,volume-subpath=../../etc")])
    with pytest.raises(InvalidArgument, match="subpath"):
        volumes.prepare_for_container(eng, None, bad, {})


def test_rm_refuses_a_volume_a_container_uses(cli: CLI, busybox_image: str, root: Path) -> None:
    volume_cli(root, "create", "data")
    mp = str(root / "volumes" / "data" / "_data")
    cid = cli("create", "-v", f"{mp}:/data", "busybox", "true").stdout.strip()
    r = volume_cli(root, "rm", "data", check=False)
    assert (r.returncode, r.stderr) == (1, f"Error: remove data: volume is in use - [{cid}]\n")
    assert volume_cli(root, "rm", "-f", "data", check=False).returncode == 1  # Docker: -f does not override use
    assert "data" not in volume_cli(root, "prune", "-a", "-f").stdout
    assert volume_cli(root, "ls", "-q", "-f", "dangling=false").stdout == "data\n"
    cli("rm", cid)
    assert volume_cli(root, "rm", "data").stdout == "data\n"


def test_a_recorded_container_volume_map_counts_as_use_and_release(eng: Engine, root: Path) -> None:
    """What create records (config["volumes"]) is what rm, prune and release (rm -v, run --rm) read."""
    opts = RunOptions(cmd=["true"], mounts=[parse_volume("named:/n"), parse_volume("/anon")])
    vp = volumes.prepare_for_container(eng, None, opts, {"Volumes": {"/img": {}}})
    assert set(vp) == {"/n", "/anon", "/img"} and vp.names["/n"] == "named"
    anon = [vp.names["/anon"], vp.names["/img"]]
    assert all(volumes.is_anonymous(eng, n) for n in anon)
    eng.db.add_container("c" * 64, "user1", "sha256:x", "busybox", 0.0, {"volumes": vp.names}, {"status": "exited"})
    eng.db.add_container("d" * 64, "user2", "sha256:x", "busybox", 0.0, {"volumes": {"/anon": anon[0]}},
                         {"status": "exited"})
    with pytest.raises(Conflict, match=rf"remove named: volume is in use - \[{'c' * 64}\]"):
        volumes.rm(eng, "named")
    assert volumes.prune(eng, all_volumes=True) == ([], 0)
    # removing container c with -v: its anonymous volumes go, unless another container uses one
    assert volumes.release(eng, vp.names, container_id="c" * 64) == [anon[1]]
    assert volumes.exists(eng, "named") and volumes.exists(eng, anon[0])
    eng.db.remove_container("c" * 64)
    eng.db.remove_container("d" * 64)
    (volumes.mountpoint(eng, anon[0]) / "five").write_text("12345")
    removed, reclaimed = volumes.prune(eng)
    assert (removed, reclaimed) == ([anon[0]], 5)
    assert volumes.exists(eng, "named")
    out = volume_cli(root, "prune", "-a", "-f").stdout
    assert out == "Deleted Volumes:\nnamed\n\nTotal reclaimed space: 0B\n"


def test_discard_created_undoes_a_failed_create(eng: Engine) -> None:
    volumes.create(eng, "old")
    opts = RunOptions(cmd=["true"], mounts=[parse_volume("old:/o"), parse_volume("fresh:/f"), parse_volume("/a")])
    vp = volumes.prepare_for_container(eng, None, opts, {})
    assert vp.created == ["fresh", vp.names["/a"]]
    volumes.discard_created(eng, vp)
    assert [v["Name"] for v in volumes.ls(eng)] == ["old"]


# ---- filling a new volume from the image --------------------------------------------------------
def _image_tar(busybox_tar: Path, dest: Path) -> Path:
    """busybox plus /srv/data with owners, modes, a symlink, a hard link and a nested dir."""
    with tarfile.open(busybox_tar) as src, tarfile.open(dest, "w") as out:
        for m in src.getmembers():
            out.addfile(m, src.extractfile(m) if m.isfile() else None)

        def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644, uid: int = 0,
                gid: int = 0, link: str = "") -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.uid, ti.gid, ti.mtime, ti.linkname = kind, mode, uid, gid, 1_000_000, link
            ti.size = len(data) if kind == tarfile.REGTYPE else 0
            out.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("./srv", tarfile.DIRTYPE, mode=0o755)
        add("./srv/data", tarfile.DIRTYPE, mode=0o750, uid=1234, gid=1235)
        add("./srv/data/a", data=b"A\n", mode=0o640, uid=1234, gid=1235)
        add("./srv/data/b", data=b"B\n")
        add("./srv/data/hard", tarfile.LNKTYPE, link="./srv/data/a")
        add("./srv/data/link", tarfile.SYMTYPE, link="a", mode=0o777)
        add("./srv/data/sub", tarfile.DIRTYPE, mode=0o700, uid=7, gid=8)
        add("./srv/data/sub/f", data=b"F\n", mode=0o600, uid=7, gid=8)
        add("./srv/other", tarfile.DIRTYPE, mode=0o755)
        add("./srv/other/o", data=b"O\n")
    return dest


def test_new_volumes_are_filled_from_the_image(cli: CLI, eng: Engine, busybox_tar: Path, tmp_path: Path,
                                               bundles: Bundles) -> None:
    tar = _image_tar(busybox_tar, tmp_path / "img.tar")
    image_id = cli("import", "-c", "VOLUME /srv/data", str(tar), "vols:1").stdout.strip()
    cfg = eng.image_config(image_id).config
    assert cfg["Volumes"] == {"/srv/data": {}}
    lowers = [x.path for x in eng.image_chain(image_id)]
    opts = sh("ls -ln /srv/data | sed 1d | awk '{print $1, $3, $4, $NF}'", "cat /srv/data/sub/f", "ls /srv/other")
    opts.mounts = [parse_volume("keep:/srv/other:nocopy")]
    with volumes.image_rootfs(lowers, tmp_path / "scratch") as lookup:
        vp = volumes.prepare_for_container(eng, lookup, opts, cfg)
    data = Path(vp["/srv/data"])
    st = data.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 1234, 1235)  # the root takes the dir's
    a, hard = (data / "a").stat(), (data / "hard").stat()
    assert (stat.S_IMODE(a.st_mode), a.st_uid, a.st_gid, a.st_mtime) == (0o640, 1234, 1235, 1_000_000)
    assert a.st_ino == hard.st_ino  # a hard link stays one
    assert os.readlink(data / "link") == "a"
    assert (data / "sub").stat().st_uid == 7 and (data / "sub" / "f").read_text() == "F\n"
    assert not any(Path(vp["/srv/other"]).iterdir())  # nocopy
    spec = bundles.spec(opts, cfg, rootfs=bundles.rootfs(), volume_paths=vp)
    r = bundles.run(spec)
    assert r.stdout.splitlines() == [
        "-rw-r----- 1234 1235 a", "-rw-r--r-- 0 0 b", "-rw-r----- 1234 1235 hard", "lrwxrwxrwx 0 0 a",
        "drwx------ 7 8 sub", "F"], r

    # a volume that has content is never overwritten; an empty existing one is filled
    (data / "b").write_text("changed\n")
    volumes.create(eng, "empty")
    again = RunOptions(cmd=["true"], mounts=[parse_volume(f"{vp.names['/srv/data']}:/srv/data"),
                                             parse_volume("empty:/srv/other")])
    with volumes.image_rootfs(lowers, tmp_path / "scratch") as lookup:
        vp2 = volumes.prepare_for_container(eng, lookup, again, cfg)
    assert (Path(vp2["/srv/data"]) / "b").read_text() == "changed\n"
    assert (Path(vp2["/srv/other"]) / "o").read_text() == "O\n"


def test_filling_sees_the_merged_layers(cli: CLI, eng: Engine, busybox_tar: Path, tmp_path: Path) -> None:
    """An image of two layers (the top one deletes and adds files): the overlay's view is copied."""
    tar = _image_tar(busybox_tar, tmp_path / "img.tar")
    cli("import", str(tar), "vols:base")
    cli("run", "--name", "mod", "vols:base", "sh", "-c", "rm /srv/data/b; echo C > /srv/data/c")
    image_id = cli("commit", "-c", "VOLUME /srv/data", "mod", "vols:2").stdout.strip()
    lowers = [x.path for x in eng.image_chain(image_id)]
    assert len(lowers) == 2
    scratch = tmp_path / "scratch"
    with volumes.image_rootfs(lowers, scratch) as lookup:
        vp = volumes.prepare_for_container(eng, lookup, RunOptions(cmd=["true"]), eng.image_config(image_id).config)
        assert any(m[4] == str(scratch / "image-rootfs") for m in mountinfo())
    assert not (scratch / "image-rootfs").exists()
    assert sorted(os.listdir(vp["/srv/data"])) == ["a", "c", "hard", "link", "sub"]


# ---- --volumes-from -----------------------------------------------------------------------------
def test_volumes_from_another_container(cli: CLI, busybox_image: str, eng: Engine, root: Path, tmp_path: Path,
                                        bundles: Bundles) -> None:
    volumes.create(eng, "shared")
    (volumes.mountpoint(eng, "shared") / "hello").write_text("from the donor\n")
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    mp = volumes.mountpoint(eng, "shared")
    # a container created by today's CLI (its volume found through its bundle)...
    cli("create", "--name", "donor", "-v", f"{mp}:/shared", "-v", f"{host_dir}:/hostdir:ro", "busybox", "true")
    # ...and one as create will record it (config["volumes"], config["opts"]["mounts"])
    eng.db.add_container("e" * 64, "donor2", "sha256:x", "busybox", 0.0, {
        "volumes": {"/v2": "shared"},
        "opts": {"mounts": [{"type": "volume", "source": "shared", "target": "/v2", "read_only": True}]}},
        {"status": "exited"})
    got = {m.target: m for m in volumes.resolve_volumes_from(eng, ["donor", "donor2"], [])}
    assert got["/shared"] == Mount(type="volume", source="shared", target="/shared", nocopy=True)
    assert got["/hostdir"] == Mount(type="bind", source=str(host_dir), target="/hostdir", read_only=True)
    assert got["/v2"] == Mount(type="volume", source="shared", target="/v2", read_only=True, nocopy=True)
    forced = {m.target: m.read_only for m in volumes.resolve_volumes_from(eng, ["donor:ro", "donor2:rw"], [])}
    assert forced == {"/shared": True, "/hostdir": True, "/v2": False}
    own = parse_volume(f"{tmp_path}:/shared")
    merged = volumes.resolve_volumes_from(eng, ["donor"], [own])
    assert [m.target for m in merged].count("/shared") == 1 and own in merged  # the container's own -v wins
    with pytest.raises(InvalidArgument, match="invalid mode: xx"):
        volumes.resolve_volumes_from(eng, ["donor:xx"], [])

    opts = sh("cat /shared/hello", "echo back > /shared/reply")
    opts.volumes_from = ["donor"]
    opts.mounts = volumes.resolve_volumes_from(eng, opts.volumes_from, opts.mounts)
    vp = volumes.prepare_for_container(eng, None, opts, {})
    assert vp.names == {"/shared": "shared"} and vp.created == []
    assert bundles.run(bundles.spec(opts, volume_paths=vp)).stdout == "from the donor\n"
    assert (mp / "reply").read_text() == "back\n"
    points = volumes.mount_points(opts.mounts, vp)
    assert points == [
        {"Type": "bind", "Source": str(host_dir), "Destination": "/hostdir", "Mode": "", "RW": False,
         "Propagation": "rprivate"},
        {"Type": "volume", "Name": "shared", "Source": str(mp), "Destination": "/shared", "Driver": "local",
         "Mode": "", "RW": True, "Propagation": ""}]


# ---- /dev/shm and --ipc ---------------------------------------------------------------------------
@pytest.mark.parametrize("flags, size", [([], "65536"), (["--shm-size", "128m"], "131072")])
def test_shm_size(cli: CLI, busybox_image: str, flags: list[str], size: str) -> None:
    out = cli("run", "--rm", *flags, "busybox", "df", "-k", "/dev/shm").stdout.splitlines()[-1].split()
    assert out[0] == "shm" and out[1] == size


def _shm_mount(spec: dict[str, Any]) -> dict[str, Any] | None:
    return next((m for m in spec["mounts"] if m["destination"] == "/dev/shm"), None)


def _ipc_ns(spec: dict[str, Any]) -> dict[str, str] | None:
    return next((n for n in spec["linux"]["namespaces"] if n["type"] == "ipc"), None)


def test_ipc_modes_in_the_spec(eng: Engine, bundles: Bundles, tmp_path: Path) -> None:
    rootfs = bundles.rootfs()
    private = bundles.spec(RunOptions(cmd=["true"], shm_size=1 << 20), rootfs=rootfs)
    assert _ipc_ns(private) == {"type": "ipc"}
    assert _shm_mount(private) == {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                                   "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={1 << 20}"]}
    none = bundles.spec(RunOptions(cmd=["true"], ipc="none"), rootfs=rootfs)
    assert _ipc_ns(none) == {"type": "ipc"} and _shm_mount(none) is None

    shareable_opts = RunOptions(cmd=["true"], ipc="shareable", shm_size=2 << 20)
    ipc = volumes.prepare_ipc(eng, shareable_opts, "f" * 64)
    try:
        assert ipc.shm_path == str(eng.root / "containers" / ("f" * 64) / "mounts" / "shm")
        assert ipc.namespace_paths == {}
        line = next(m for m in mountinfo() if m[4] == ipc.shm_path)
        assert "size=2048k" in line[-1] and stat.S_IMODE(os.stat(ipc.shm_path).st_mode) == 0o1777
        shareable = bundles.spec(shareable_opts, rootfs=rootfs, shm_path=ipc.shm_path)
        assert _ipc_ns(shareable) == {"type": "ipc"}
        assert _shm_mount(shareable) == {"destination": "/dev/shm", "type": "bind", "source": ipc.shm_path,
                                         "options": ["rbind", "rprivate"]}
    finally:
        volumes.teardown_shm(Path(ipc.shm_path or "/nonexistent"))
    host_opts = RunOptions(cmd=["true"], ipc="host")
    host = bundles.spec(host_opts, rootfs=rootfs, shm_path=volumes.prepare_ipc(eng, host_opts, "0" * 64).shm_path)
    assert _ipc_ns(host) is None
    assert _shm_mount(host) == {"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                                "options": ["rbind", "rprivate"]}
    joined = bundles.spec(RunOptions(cmd=["true"], ipc="container:x"), rootfs=rootfs, shm_path="/some/shm",
                          namespace_paths={"ipc": "/proc/42/ns/ipc"})
    assert _ipc_ns(joined) == {"type": "ipc", "path": "/proc/42/ns/ipc"}
    assert _shm_mount(joined)["source"] == "/some/shm"  # type: ignore[index]


def test_a_container_joins_a_shareable_ipc(eng: Engine, bundles: Bundles, tmp_path: Path) -> None:
    shm = tmp_path / "donor-shm"
    volumes.setup_shm(shm, 1 << 20)
    try:
        donor_opts = sh("echo shared > /dev/shm/hello", "exec sleep 60")
        donor_opts.ipc = "shareable"
        _, pid = bundles.start(bundles.spec(donor_opts, shm_path=str(shm)))
        for _ in range(100):
            if (shm / "hello").exists():
                break
            import time

            time.sleep(0.05)
        opts = sh("cat /dev/shm/hello", "readlink /proc/self/ns/ipc", "df -k /dev/shm | tail -1")
        opts.ipc = "container:donor"
        r = bundles.run(bundles.spec(opts, shm_path=str(shm), namespace_paths={"ipc": f"/proc/{pid}/ns/ipc"}))
        lines = r.stdout.splitlines()
        assert lines[0] == "shared", r
        assert lines[1] == os.readlink(f"/proc/{pid}/ns/ipc")
        assert lines[2].split()[1] == "1024"
        private = bundles.run(bundles.spec(sh("readlink /proc/self/ns/ipc", "ls /dev/shm")))
        assert private.stdout.splitlines()[0] != lines[1] and "hello" not in private.stdout
    finally:
        bundles.cleanup()
        volumes.teardown_shm(shm)


def test_prepare_ipc_checks_the_donor(cli: CLI, busybox_image: str, eng: Engine) -> None:
    cli("create", "--name", "stopped", "busybox", "true")
    with pytest.raises(Conflict, match="cannot join IPC of a non running container: "):
        volumes.prepare_ipc(eng, RunOptions(ipc="container:stopped"), "1" * 64)
    cli("run", "-d", "--name", "private", "busybox", "sleep", "30")
    with pytest.raises(Conflict, match=r"non-shareable IPC \(hint: use IpcMode:shareable for the donor container\)"):
        volumes.prepare_ipc(eng, RunOptions(ipc="container:private"), "1" * 64)
    cid = cli("run", "-d", "--ipc", "shareable", "busybox", "sleep", "30").stdout.strip()
    pid = json.loads(cli("inspect", cid).stdout)[0]["State"]["Pid"]
    ipc = volumes.prepare_ipc(eng, RunOptions(ipc=f"container:{cid[:12]}"), "1" * 64)
    assert ipc.shm_path == str(eng.root / "containers" / cid / "mounts" / "shm")
    assert ipc.namespace_paths == {"ipc": f"/proc/{pid}/ns/ipc"}


# ---- --device -------------------------------------------------------------------------------------
def test_device_with_permissions_in_a_real_container(bundles: Bundles, tmp_path: Path) -> None:
    opts = sh("ls -l /dev/mynull | awk '{print $1, $5, $6}'", "echo ok > /dev/mynull && echo wrote")
    opts.devices = [parse_device("/dev/null:/dev/mynull:r")]
    spec = bundles.spec(opts)
    assert {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0} \
        in spec["linux"]["devices"]
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"} in spec["linux"]["resources"]["devices"]
    r = bundles.run(spec)
    # /dev/null is on Docker's default allow-list (c 1:3 rwm), so writing works there too
    assert r.stdout.splitlines() == ["crw-rw-rw- 1, 3", "wrote"], r

    # a device that only the rule allows: read passes the cgroup (then the driver says ENXIO), write does not
    node = tmp_path / "fakedev"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(240, 7))
    opts = sh("ls -l /dev/fake | awk '{print $5, $6}'", "true < /dev/fake", "echo x > /dev/fake")
    opts.devices = [parse_device(f"{node}:/dev/fake:r")]
    err = bundles.run(bundles.spec(opts)).stderr
    assert "can't open /dev/fake: No such device or address" in err, err
    assert "can't create /dev/fake: Operation not permitted" in err, err
    opts.device_cgroup_rules = ["c 240:* rwm"]
    err = bundles.run(bundles.spec(opts)).stderr
    assert "can't create /dev/fake: No such device or address" in err, err
    with pytest.raises(InvalidArgument, match="error gathering device information"):
        specmod.resolve_device(parse_device("/dev/does-not-exist"))
