"""The store's run path without the heavy stdlib chain: no pathlib, contextlib, json, collections or
functools, while the ``Path`` attributes the cold commands use and the ``with`` APIs still work."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.engine import Engine
from dockyard.records import LazyPath
from dockyard.store import snapshots
from dockyard.store.content import ContentStore
from dockyard.store.layerstore import LayerInfo
from dockyard.store.metadata import ImageRecord, MetadataDB

HEAVY = ("collections", "functools", "enum", "re", "json", "argparse", "gettext", "contextlib", "pathlib",
         "fnmatch", "urllib", "urllib.parse", "ipaddress", "signal", "socket", "selectors", "threading",
         "typing", "dataclasses", "subprocess", "hashlib", "shutil", "tarfile", "tempfile", "random",
         "inspect", "locale", "weakref", "copy", "datetime", "string", "bz2", "lzma")


def _add_image(root: Path) -> tuple[str, str]:
    """A one-layer image tagged busybox, made through the store's own API (no tar, no CLI)."""
    with Engine(root) as eng:
        cfg = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
               "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "d" * 64]}}
        raw = json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()
        blob = eng.content.put_bytes(raw)
        chain = "sha256:" + "d" * 64
        os.makedirs(eng.layers.diff_dir(chain) + "/bin")
        eng.db.add_layer(chain, chain, None, 0, "d" * 64)
        eng.db.add_image(ImageRecord(blob.digest, blob.digest, None, None, None, 0, 1.0),
                         [(chain, "sha256:" + "b" * 64, "application/vnd.oci.image.layer.v1.tar", 1)],
                         tags=["docker.io/library/busybox:latest"])
        return blob.digest, chain


RUN_PATH = """
import os, sys
from dockyard import names
from dockyard.engine import Engine
from dockyard.store import snapshots

root, cdir = sys.argv[1], sys.argv[2]
eng = Engine(root)
image_id = eng.resolve_image("busybox")
cfg = eng.image_config(image_id)
assert cfg.config["Cmd"] == ["sh"]
chain = eng.image_chain(image_id)
name = names.generate(eng.db.container_names())
assert names.valid(name)
eng.db.add_container("c" * 64, name, image_id, "busybox", 1.0, {"chain": [x.chain_id for x in chain]},
                     {"status": "created"})
with eng.layers.using():
    snap = snapshots.prepare(cdir + "/fs", [x.diff_dir for x in chain])
snap = snapshots.Snapshot(cdir + "/fs", [eng.layers.diff_dir(x.chain_id) for x in chain], "overlay")
assert not snapshots.is_mounted(snap.rootfs)
snapshots.unmount(snap)
eng.db.update_container_state("c" * 64, status="running", pid=1)
assert [r["id"] for r in eng.db.containers()] == ["c" * 64]
assert eng.db.container("c" * 64)["name"] == name
eng.db.remove_container("c" * 64)
eng.close()
heavy = %r
print(sorted(m for m in heavy if m in sys.modules))
"""


def test_the_run_path_through_the_store_loads_no_heavy_modules(tmp_path: Path) -> None:
    _add_image(tmp_path / "root")
    env = {**os.environ, "DOCKYARD_SNAPSHOTTER": "overlay"}
    out = subprocess.run([sys.executable, "-c", RUN_PATH % (HEAVY,), str(tmp_path / "root"), str(tmp_path / "c")],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    init = tmp_path / "c" / "fs" / "init"
    assert (init / ".dockerenv").is_file() and (init / "dev" / "pts").is_dir()


def test_sqlite_without_functools_keeps_its_statement_cache() -> None:
    code = ("import sys\n"
            "from dockyard.store import metadata\n"
            "assert 'functools' not in sys.modules and 'collections' not in sys.modules\n"
            "c = metadata.connect(':memory:')\n"
            "assert [c.execute('SELECT ?', (i % 200,)).fetchone()[0] for i in range(1000)] == "
            "[i % 200 for i in range(1000)]\n"
            "import functools\n"
            "assert functools.lru_cache.__module__ == 'functools' and hasattr(functools, 'partial')\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_engine_paths(tmp_path: Path) -> None:
    with Engine(tmp_path / "r") as eng:
        assert isinstance(eng.root, Path) and eng.root == tmp_path / "r"
        assert eng.root is eng.root  # made once
        assert eng.root_dir == str(tmp_path / "r")
        assert eng.content.blob_dir == tmp_path / "r" / "blobs" / "sha256"
        assert eng.content.ingest_dir == tmp_path / "r" / "ingest"
        assert eng.layers.root == tmp_path / "r" / "layers"
        assert eng.db.path == str(tmp_path / "r" / "dockyard.db")
    with Engine(str(tmp_path / "s")) as eng:
        assert eng.root == tmp_path / "s" and (tmp_path / "s" / "dockyard.db").is_file()


def test_engine_default_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_ROOT", str(tmp_path / "env-root"))
    with Engine() as eng:
        assert eng.root == tmp_path / "env-root" and eng.root_dir == str(tmp_path / "env-root")
        assert oct(os.stat(eng.root_dir).st_mode & 0o777) == oct(0o711 & ~_umask())


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_layer_lookups_are_strings_with_path_views(tmp_path: Path) -> None:
    image_id, chain = _add_image(tmp_path)
    with Engine(tmp_path) as eng:
        [info] = eng.image_chain(image_id)
        assert info.diff_dir == eng.layers.diff_dir(chain)
        assert isinstance(info.path, Path) and info.path == Path(info.diff_dir)
        assert info == LayerInfo(chain, chain, 0, Path(info.diff_dir))  # a Path is taken as well
        assert eng.inspect_image(image_id)["GraphDriver"]["Data"] == {"UpperDir": info.diff_dir}
        assert eng.image_config(image_id).config == {"Cmd": ["sh"]}


def test_layer_locks(tmp_path: Path) -> None:
    with Engine(tmp_path) as eng:
        lock = str(tmp_path / "gc.lock")

        def try_lock(op: int) -> bool:
            with open(lock, "a+") as f:
                try:
                    fcntl.flock(f, op | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                fcntl.flock(f, fcntl.LOCK_UN)
                return True

        with eng.layers.using():
            assert try_lock(fcntl.LOCK_SH) and not try_lock(fcntl.LOCK_EX)
        assert try_lock(fcntl.LOCK_EX)
        with pytest.raises(KeyError), eng.layers.exclusive():
            assert not try_lock(fcntl.LOCK_SH)
            raise KeyError
        assert try_lock(fcntl.LOCK_EX)


def test_transaction_commits_or_rolls_back(tmp_path: Path) -> None:
    db = MetadataDB(str(tmp_path / "x.db"))
    with db.transaction() as c:
        c.execute("INSERT INTO build_cache (key, image_id, created) VALUES ('a', 'i', 1)")
    with pytest.raises(ValueError), db.transaction() as c:
        c.execute("INSERT INTO build_cache (key, image_id, created) VALUES ('b', 'i', 1)")
        raise ValueError
    assert db.cache_get("a") == "i" and db.cache_get("b") is None
    assert not db.conn.in_transaction
    db.add_container("c1", "n", "i", "ref", 1.0, {"chain": ["x"], "s": "é"}, {"status": "created"})
    assert db.update_container_state("c1", pid=5) == {"status": "created", "pid": 5}
    assert json.loads(db.container("c1")["config"]) == {"chain": ["x"], "s": "é"}
    assert db.referenced_chain_ids() == {"x"}
    db.close()


def test_content_store_takes_str_or_path(tmp_path: Path) -> None:
    for root in (str(tmp_path / "a"), tmp_path / "b"):
        store = ContentStore(root)
        info = store.put_bytes(b"hello")
        assert store.read(info.digest) == b"hello" and store.has(info.digest)
        assert store.path(info.digest) == Path(root) / "blobs" / "sha256" / info.digest.split(":")[1]
        assert list(store.walk()) == [info]
        with store.writer() as w:
            w.write(b"x")
            assert isinstance(w.path, Path) and w.path.parent == store.ingest_dir
        assert os.listdir(store.ingest_dir) == []
        store.delete(info.digest)
        store.delete(info.digest)
        assert not store.has(info.digest)


def test_snapshots_take_str_or_path(tmp_path: Path) -> None:
    low = tmp_path / "low"
    low.mkdir()
    for base in (tmp_path / "p" / "fs", str(tmp_path / "s") + "//fs/"):
        snap = snapshots.prepare(base, [low], driver="overlay")
        b = os.path.normpath(str(base))
        assert (snap.base, snap.lowers, snap.upper, snap.rootfs) == (b, [str(low)], b + "/upper", b + "/merged")
        assert snap.lower_stack() == [b + "/init", str(low)]
        assert snapshots._overlay_options(snap) == f"lowerdir={b}/init:{low},upperdir={b}/upper,workdir={b}/work"
        assert all(os.path.isdir(os.path.join(b, "init", d)) for d in snapshots.INIT_DIRS)
        assert all(os.path.isfile(os.path.join(b, "init", f)) for f in snapshots.INIT_FILES)
        snapshots.prepare(base, [low], driver="overlay")  # again: the stubs are there already
        assert not snapshots.is_mounted(snap.rootfs) and not snapshots.is_mounted(Path(snap.rootfs))
        snapshots.remove(snap)
        assert not os.path.exists(b)


def test_resolve_in_root_returns_a_path(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/etc", tmp_path / "link")
    assert snapshots.resolve_in_root(str(tmp_path), "link/x") == tmp_path / "etc" / "x"
    assert snapshots.resolve_in_root(tmp_path, "/../etc") == tmp_path / "etc"


def test_lazy_path_is_made_once() -> None:
    class C:
        p = LazyPath("s")

        def __init__(self) -> None:
            self.s = "/a/b"

    c = C()
    assert c.p == Path("/a/b") and c.p is c.p
    assert isinstance(C.p, LazyPath)
