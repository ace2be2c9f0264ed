"""``dockyard save`` / ``dockyard load`` against real peers: skopeo, and dockerd when it can start.

Images are built from the host's static busybox (``tests/archive_fixtures.py``) in a private root.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.engine import Engine
from dockyard.errors import CorruptData, ImageNotFound, InvalidArgument
from dockyard.image import archive as fmt
from dockyard.image import reference
from dockyard.ops import archive
from tests.archive_fixtures import add_layered_image, busybox_tar, sha256, small_tar
from tests.conftest import CLI, DOCKYARD_BIN, assert_one_line_error

SKOPEO = shutil.which("skopeo") or ""
needs_skopeo = pytest.mark.skipif(not SKOPEO, reason="skopeo is not installed")


# ---- fixtures and helpers ----------------------------------------------------------------------

class Images:
    def __init__(self, eng: Engine, busybox: str, layered: str) -> None:
        self.eng = eng
        self.busybox = busybox  # busybox:latest, one uncompressed layer
        self.layered = layered  # localhost:5000/a/b:v1 = busybox + a layer stored only as gzip


@pytest.fixture
def images(root: Path, tmp_path: Path) -> Iterator[Images]:
    eng = Engine(root)
    bb = eng.import_image(str(busybox_tar(tmp_path)), "busybox:latest")
    layered = add_layered_image(eng, bb, {"etc/hello": b"hello from layer 2\n"}, "localhost:5000/a/b:v1",
                                gzip_blob=True)
    yield Images(eng, bb, layered)
    eng.close()


def fresh(tmp_path: Path, name: str = "root2") -> Engine:
    return Engine(tmp_path / name)


def image_rows(root: Path) -> int:
    with sqlite3.connect(root / "dockyard.db") as c:
        return int(c.execute("SELECT count(*) FROM images").fetchone()[0])


def leftovers(root: Path) -> list[str]:
    """Layer dirs, blobs and spool files in a root: none may remain after a failed load."""
    out = []
    for sub in ("layers", "blobs/sha256", "ingest"):
        d = root / sub
        if d.is_dir():
            out += [f"{sub}/{p.name}" for p in d.iterdir() if p.name != "sha256"]
    return out


def members(path: Path) -> list[str]:
    with tarfile.open(path) as tf:
        return tf.getnames()


def read_member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tf:
        f = tf.extractfile(name)
        assert f is not None
        return f.read()


def rewrite_tar(src: Path, dst: Path, replace: dict[str, bytes | None]) -> Path:
    """Copy a tar, replacing (or, with None, dropping) the named members."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            if m.name in replace:
                data = replace[m.name]
                if data is None:
                    continue
                m.size = len(data)
                tout.addfile(m, io.BytesIO(data))
            else:
                tout.addfile(m, tin.extractfile(m) if m.isfile() else None)
    return dst


def skopeo(*args: str) -> str:
    p = subprocess.run([SKOPEO, "--insecure-policy", *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"skopeo {' '.join(args)}: {p.stderr}"
    return p.stdout


def diff_ids(eng: Engine, image_id: str) -> list[str]:
    return eng.image_config(image_id).diff_ids


# ---- save: docker-archive ----------------------------------------------------------------------

@needs_skopeo
def test_save_writes_a_docker_archive_that_skopeo_reads(images: Images, tmp_path: Path) -> None:
    eng = images.eng
    out = tmp_path / "both.tar"
    archive.save(eng, ["busybox:latest", "localhost:5000/a/b:v1"], str(out))

    names = members(out)
    assert len(names) == len(set(names)), "a shared layer must be written once"
    bb_layer = diff_ids(eng, images.busybox)[0]
    assert names.count(fmt.blob_path(bb_layer)) == 1
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= set(names)

    manifest = json.loads(read_member(out, "manifest.json"))
    assert [m["RepoTags"] for m in manifest] == [["busybox:latest"], ["localhost:5000/a/b:v1"]]
    assert manifest[0]["Config"] == fmt.blob_path(images.busybox)
    assert manifest[1]["Layers"] == [fmt.blob_path(d) for d in diff_ids(eng, images.layered)]
    assert manifest[1]["Parent"] == images.busybox
    # Every layer entry is the uncompressed tar whose sha256 is its diff_id, even the gzip-stored one.
    for d in diff_ids(eng, images.layered):
        assert sha256(read_member(out, fmt.blob_path(d))) == d
    assert json.loads(read_member(out, "repositories")) == {
        "busybox": {"latest": bb_layer.split(":")[1]},
        "localhost:5000/a/b": {"v1": diff_ids(eng, images.layered)[1].split(":")[1]}}
    index = json.loads(read_member(out, "index.json"))
    assert [m["annotations"] for m in index["manifests"]] == [
        {"io.containerd.image.name": "docker.io/library/busybox:latest",
         "org.opencontainers.image.ref.name": "latest"},
        {"io.containerd.image.name": "localhost:5000/a/b:v1", "org.opencontainers.image.ref.name": "v1"}]

    for ref, image_id in (("busybox:latest", images.busybox), ("localhost:5000/a/b:v1", images.layered)):
        info = json.loads(skopeo("inspect", f"docker-archive:{out}:{ref}"))
        assert info["Layers"] == diff_ids(eng, image_id)
        cfg = subprocess.run([SKOPEO, "inspect", "--config", "--raw", f"docker-archive:{out}:{ref}"],
                             capture_output=True, check=True).stdout
        assert sha256(cfg) == image_id
    # The same file is an OCI layout too, as Docker 25+ writes it.
    info = json.loads(skopeo("inspect", f"oci-archive:{out}:v1"))
    assert info["Layers"] == diff_ids(eng, images.layered)
    skopeo("copy", f"docker-archive:{out}:busybox:latest", f"oci:{tmp_path / 'copied'}:x")
    assert (tmp_path / "copied" / "index.json").is_file()


@needs_skopeo
def test_save_oci_format_stores_blobs_as_they_are(images: Images, tmp_path: Path) -> None:
    eng = images.eng
    out = tmp_path / "bb-oci.tar"
    archive.save(eng, ["busybox"], str(out), fmt="oci")
    assert "manifest.json" not in members(out)
    info = json.loads(skopeo("inspect", f"oci-archive:{out}"))
    rec = eng.image_record(images.busybox)
    assert info["Digest"] == rec.manifest_digest  # the image's own manifest, unchanged
    assert info["Layers"] == diff_ids(eng, images.busybox)

    both = tmp_path / "both-oci.tar"
    archive.save(eng, ["busybox:latest", "localhost:5000/a/b:v1"], str(both), fmt="oci")
    rows = eng.db.image_layers(images.layered)
    info = json.loads(skopeo("inspect", f"oci-archive:{both}:v1"))
    assert info["Layers"] == [r["blob_digest"] for r in rows]  # the gzip blob, as stored
    assert info["Layers"][1] != diff_ids(eng, images.layered)[1]
    raw = json.loads(subprocess.run([SKOPEO, "inspect", "--raw", f"oci-archive:{both}:v1"],
                                    capture_output=True, check=True).stdout)
    assert raw["layers"][1]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"


def test_save_selects_images_as_docker_does(images: Images, tmp_path: Path) -> None:
    eng = images.eng
    eng.tag("busybox:latest", "busybox:1.36")
    by_repo = tmp_path / "repo.tar"
    archive.save(eng, ["busybox"], str(by_repo))  # a bare repository: all of its tags
    manifest = json.loads(read_member(by_repo, "manifest.json"))
    assert len(manifest) == 1 and manifest[0]["RepoTags"] == ["busybox:1.36", "busybox:latest"]

    by_id = tmp_path / "id.tar"
    archive.save(eng, [images.layered[7:19]], str(by_id))  # an ID: no tags
    manifest = json.loads(read_member(by_id, "manifest.json"))
    assert manifest[0]["RepoTags"] is None and "Parent" not in manifest[0]
    eng2 = fresh(tmp_path)
    assert list(archive.load(eng2, str(by_id))) == [f"Loaded image ID: {images.layered}"]
    assert eng2.list_images()[0].tags == []

    with pytest.raises(ImageNotFound):
        archive.save(eng, ["busybox:latest", "nosuch:1"], str(tmp_path / "never.tar"))
    assert sorted(p.name for p in tmp_path.iterdir() if "never" in p.name) == []


def test_save_is_deterministic_and_streams_to_stdout(images: Images, cli: CLI, tmp_path: Path) -> None:
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    archive.save(images.eng, ["busybox:latest", "localhost:5000/a/b:v1"], str(a))
    archive.save(images.eng, ["busybox:latest", "localhost:5000/a/b:v1"], str(b))
    assert a.read_bytes() == b.read_bytes()
    p = subprocess.run([str(DOCKYARD_BIN), "--root", str(cli.root), "save", "busybox:latest",
                        "localhost:5000/a/b:v1"], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == a.read_bytes()
    cli("save", "-o", str(tmp_path / "c.tar"), "--format", "oci", "busybox")
    assert "index.json" in members(tmp_path / "c.tar")


# ---- load ---------------------------------------------------------------------------------------

def test_round_trip_keeps_ids_layers_and_files(images: Images, tmp_path: Path) -> None:
    for kind in ("docker", "oci"):
        out = tmp_path / f"rt-{kind}.tar"
        archive.save(images.eng, ["busybox:latest", "localhost:5000/a/b:v1"], str(out), fmt=kind)
        eng2 = fresh(tmp_path, f"root-{kind}")
        lines = list(archive.load(eng2, str(out)))
        assert lines == ["Loaded image: busybox:latest", "Loaded image: localhost:5000/a/b:v1"]
        assert eng2.resolve_image("busybox") == images.busybox
        assert eng2.resolve_image("localhost:5000/a/b:v1") == images.layered
        assert diff_ids(eng2, images.layered) == diff_ids(images.eng, images.layered)
        chain = eng2.image_chain(images.layered)
        assert (chain[0].path / "bin" / "busybox").is_file()
        assert os.readlink(chain[0].path / "bin" / "sh") == "busybox"
        assert (chain[1].path / "etc" / "hello").read_bytes() == b"hello from layer 2\n"
        if kind == "docker":
            assert eng2.db.image_parent(images.layered) == images.busybox
        # Loading again changes nothing and says the same.
        assert list(archive.load(eng2, str(out))) == lines
        assert len(eng2.list_images()) == 2
        eng2.close()


@needs_skopeo
def test_archives_written_by_skopeo_load_with_the_same_id(images: Images, tmp_path: Path) -> None:
    eng = images.eng
    layout = tmp_path / "layout"
    archive.write_oci_layout_dir(eng, images.busybox, layout, "bb")
    layered_layout = tmp_path / "layout2"
    archive.write_oci_layout_dir(eng, images.layered, layered_layout)
    x, y, z = tmp_path / "x.tar", tmp_path / "y.tar", tmp_path / "z.tar"
    skopeo("copy", f"oci:{layout}:bb", f"docker-archive:{x}:busybox:skopeo")
    skopeo("copy", f"oci:{layout}", f"oci-archive:{y}:tagname")
    skopeo("copy", f"oci:{layered_layout}", f"oci-archive:{z}:localhost:5000/x/y:2")
    assert "manifest.json" in members(x) and "index.json" in members(y)

    eng2 = fresh(tmp_path)
    assert list(archive.load(eng2, str(x))) == ["Loaded image: busybox:skopeo"]
    # A bare ref.name is read as a reference, as containerd does: "tagname" is tagname:latest.
    assert list(archive.load(eng2, str(y))) == ["Loaded image: tagname:latest"]
    assert list(archive.load(eng2, str(z))) == ["Loaded image: localhost:5000/x/y:2"]
    recs = {r.id: r for r in eng2.list_images()}
    assert set(recs) == {images.busybox, images.layered}
    assert recs[images.busybox].tags == ["docker.io/library/busybox:skopeo",
                                         "docker.io/library/tagname:latest"]
    assert recs[images.layered].tags == ["localhost:5000/x/y:2"]
    assert diff_ids(eng2, images.layered) == diff_ids(eng, images.layered)
    assert (eng2.image_chain(images.layered)[1].path / "etc" / "hello").is_file()
    eng2.close()


def test_load_from_stdin_prints_what_docker_prints(images: Images, tmp_path: Path) -> None:
    out = tmp_path / "both.tar"
    archive.save(images.eng, ["busybox:latest", "localhost:5000/a/b:v1"], str(out))
    root2 = tmp_path / "root2"
    cli2 = CLI(root2)
    with open(out, "rb") as f:
        p = subprocess.run([str(DOCKYARD_BIN), "--root", str(root2), "load"], stdin=f, capture_output=True,
                           timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode() == "Loaded image: busybox:latest\nLoaded image: localhost:5000/a/b:v1\n"
    assert p.stderr == b""
    listing = cli2("images").stdout
    assert "busybox" in listing and "localhost:5000/a/b" in listing and images.layered[7:19] in listing
    assert leftovers(root2) and not [x for x in leftovers(root2) if x.startswith("ingest/")]

    # A gzip-compressed archive on stdin; -q prints nothing; the old tag owner is named.
    root3 = tmp_path / "root3"
    cli3 = CLI(root3)
    cli3("import", str(busybox_tar(tmp_path / "other")), "busybox:latest", "-m", "another")
    old = cli3("images", "-q", "--no-trunc").stdout.strip()
    r = cli3("load", input=gzip.compress(out.read_bytes(), compresslevel=1))
    assert r.stdout.splitlines() == [
        f"The image busybox:latest already exists, renaming the old one with ID {old} to empty string",
        "Loaded image: busybox:latest", "Loaded image: localhost:5000/a/b:v1"]
    assert cli3("load", "-q", "-i", str(out)).stdout == ""


def test_legacy_layout_with_symlinked_layers_loads(images: Images, tmp_path: Path) -> None:
    """Docker < 25 wrote ``<id>/layer.tar`` (sometimes a symlink to another layer) and ``<id>.json``."""
    eng = images.eng
    cfg = eng.content.read(eng.image_record(images.busybox).config_digest)
    layer = eng.content.read(diff_ids(eng, images.busybox)[0])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        add("aaaa/layer.tar", layer)
        link = tarfile.TarInfo("bbbb/layer.tar")
        link.type = tarfile.SYMTYPE
        link.linkname = "../aaaa/layer.tar"
        tf.addfile(link)
        add(f"{images.busybox[7:]}.json", cfg)
        add("manifest.json", json.dumps([{"Config": f"{images.busybox[7:]}.json", "RepoTags": ["old:style"],
                                          "Layers": ["./bbbb/layer.tar"]}]).encode())
    path = tmp_path / "legacy.tar"
    path.write_bytes(buf.getvalue())
    eng2 = fresh(tmp_path)
    assert list(archive.load(eng2, str(path))) == ["Loaded image: old:style"]
    assert eng2.resolve_image("old:style") == images.busybox


# ---- bad input -----------------------------------------------------------------------------------

def _bad_archives(images: Images, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (archive, text the one-line error must contain)."""
    eng = images.eng
    good = tmp_path / "good.tar"
    archive.save(eng, ["busybox:latest", "localhost:5000/a/b:v1"], str(good))
    bb_layer = fmt.blob_path(diff_ids(eng, images.busybox)[0])
    top_layer = fmt.blob_path(diff_ids(eng, images.layered)[1])
    out: dict[str, tuple[Path, str]] = {}

    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    out["truncated"] = (truncated, bb_layer)

    # The second image's layer is wrong: the first image must not be added either.
    out["diff_id"] = (rewrite_tar(good, tmp_path / "diffid.tar", {top_layer: small_tar({"etc/evil": b"x"})}),
                      f"{top_layer}: layer does not match its diff_id")
    out["missing_member"] = (rewrite_tar(good, tmp_path / "missing.tar", {top_layer: None}), top_layer)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(hashlib.sha512(b"x").digest() * 100)
    out["garbage"] = (garbage, "not a tar archive")
    out["bad_json"] = (rewrite_tar(good, tmp_path / "json.tar", {"manifest.json": b"[{"}), "manifest.json")
    out["no_file"] = (tmp_path / "does-not-exist.tar", "no such file or directory")

    # OCI: a layer blob that decompresses to the right diff_id but is not the blob the manifest names.
    oci = tmp_path / "good-oci.tar"
    archive.save(eng, ["localhost:5000/a/b:v1"], str(oci), fmt="oci")
    gz = eng.db.image_layers(images.layered)[1]["blob_digest"]
    raw = gzip.decompress(eng.content.read(gz))
    out["oci_blob_digest"] = (rewrite_tar(oci, tmp_path / "ocidigest.tar",
                                          {fmt.blob_path(gz): gzip.compress(raw, compresslevel=1, mtime=1)}),
                              f"{fmt.blob_path(gz)}: digest mismatch")
    return out


def test_bad_archives_fail_with_one_line_and_add_nothing(images: Images, tmp_path: Path) -> None:
    for name, (path, expected) in _bad_archives(images, tmp_path).items():
        root = tmp_path / f"bad-{name}"
        cli = CLI(root)
        cli("images")  # make the root
        r = cli("load", "-i", str(path), check=False)
        assert_one_line_error(r)
        assert expected in r.stderr, (name, r.stderr)
        assert r.stderr.startswith("Error: "), r.stderr
        assert image_rows(root) == 0, name
        assert leftovers(root) == [], (name, leftovers(root))
        if name != "no_file":
            with open(path, "rb") as f:  # the same through stdin
                p = subprocess.run([str(DOCKYARD_BIN), "--root", str(root), "load"], stdin=f,
                                   capture_output=True, timeout=120)
            assert p.returncode != 0 and b"Traceback" not in p.stderr, p.stderr
            assert len(p.stderr.decode().strip().splitlines()) == 1, p.stderr
            assert image_rows(root) == 0 and leftovers(root) == [], name


def test_failed_load_keeps_what_was_there(images: Images, tmp_path: Path) -> None:
    """A layer the root already had is not taken away by a load that fails later."""
    eng = images.eng
    bad = _bad_archives(images, tmp_path)["diff_id"][0]
    before_layers = sorted(p.name for p in (eng.root / "layers").iterdir())
    before_blobs = sorted(p.name for p in eng.content.blob_dir.iterdir())
    eng.remove_image("localhost:5000/a/b:v1")
    eng.tag("busybox:latest", "keep:me")
    with pytest.raises(CorruptData):
        archive.load(eng, str(bad))
    assert eng.resolve_image("keep:me") == images.busybox
    assert eng.resolve_image("busybox:latest") == images.busybox
    with pytest.raises(ImageNotFound):
        eng.resolve_image("localhost:5000/a/b:v1")
    now_layers = sorted(p.name for p in (eng.root / "layers").iterdir())
    assert set(now_layers) <= set(before_layers)
    assert eng.image_chain(images.busybox)
    assert set(p.name for p in eng.content.blob_dir.iterdir()) <= set(before_blobs)


def test_load_refuses_stdin_when_empty_and_unknown_formats(images: Images, tmp_path: Path) -> None:
    eng2 = fresh(tmp_path)
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    with pytest.raises(CorruptData, match="neither manifest.json nor index.json"):
        archive.load(eng2, str(empty))
    with pytest.raises(InvalidArgument):
        archive.save(images.eng, ["busybox"], str(tmp_path / "x.tar"), fmt="zip")
    r = CLI(tmp_path / "root3")("load", input=b"", check=False)
    assert_one_line_error(r)
    assert "stdin is empty" in r.stderr


_PEAK_RSS = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL);"
             " print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def _peak_rss_kib(*cmd: str) -> int:
    """Run ``cmd`` (its stdout discarded) and return its peak RSS; fail if it fails."""
    import sys

    out = subprocess.run([sys.executable, "-c", _PEAK_RSS, *cmd], capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()
    assert out[0] == "0", cmd
    return int(out[1])


def test_save_and_load_stream_big_layers(root: Path, tmp_path: Path) -> None:
    """A 128 MiB layer goes through save (to a file and to stdout) and load in far less memory."""
    size = 128 << 20
    src = tmp_path / "big.tar"
    with tarfile.open(src, "w") as tf:
        ti = tarfile.TarInfo("big.bin")
        ti.size = size

        class Random(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def readinto(self, b: memoryview) -> int:  # type: ignore[override]
                data = os.urandom(len(b))
                b[: len(data)] = data
                return len(data)

        tf.addfile(ti, io.BufferedReader(Random()))
    with Engine(root) as eng:
        eng.import_image(str(src), "big:1")
    src.unlink()
    out = tmp_path / "big-saved.tar"
    limit = 80 * 1024  # KiB: the interpreter and its imports are ~25 MiB
    assert _peak_rss_kib(str(DOCKYARD_BIN), "--root", str(root), "save", "-o", str(out), "big:1") < limit
    assert _peak_rss_kib(str(DOCKYARD_BIN), "--root", str(root), "save", "big:1") < limit
    assert _peak_rss_kib(str(DOCKYARD_BIN), "--root", str(tmp_path / "r2"), "load", "-i", str(out)) < limit
    with Engine(tmp_path / "r2") as eng2:
        assert eng2.image_chain(eng2.resolve_image("big:1"))[0].size >= size


# ---- format helpers --------------------------------------------------------------------------------

def test_tags_from_annotations() -> None:
    t = fmt.tags_from_annotations
    assert t({"io.containerd.image.name": "docker.io/library/busybox:1",
              "org.opencontainers.image.ref.name": "1"}) == ["docker.io/library/busybox:1"]
    assert t({"org.opencontainers.image.ref.name": "busybox:skopeo"}) == ["docker.io/library/busybox:skopeo"]
    assert t({"org.opencontainers.image.ref.name": "v1"}) == ["docker.io/library/v1:latest"]
    assert t({"org.opencontainers.image.ref.name": "Not Valid"}) == []
    assert t(None) == []
    assert fmt.ref_annotations(str(reference.parse("localhost:5000/a:b"))) == {
        "io.containerd.image.name": "localhost:5000/a:b", "org.opencontainers.image.ref.name": "b"}
    assert fmt.digest_of_path("./blobs/sha256/" + "a" * 64) == "sha256:" + "a" * 64
    assert fmt.digest_of_path("b" * 64 + ".json") == "sha256:" + "b" * 64
    assert fmt.digest_of_path("abc/layer.tar") is None


# ---- dockerd (optional) ------------------------------------------------------------------------------

@pytest.fixture
def dockerd() -> Iterator[str]:
    exe = shutil.which("dockerd")
    if exe is None or shutil.which("docker") is None or os.geteuid() != 0:
        pytest.skip("dockerd (and root) not available")
    base = Path(tempfile.mkdtemp(prefix="dyd-", dir="/tmp"))  # short: unix socket paths are limited
    sock = base / "d.sock"
    host = f"unix://{sock}"
    log = open(base / "log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([exe, "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
                             "--pidfile", str(base / "d.pid"), "-H", host, "--bridge=none",
                             "--iptables=false", "--ip6tables=false"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if subprocess.run(["docker", "-H", host, "version"], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:
            proc.poll()
        if proc.returncode is not None or subprocess.run(["docker", "-H", host, "version"],
                                                         capture_output=True).returncode != 0:
            pytest.skip(f"dockerd did not start: {(base / 'log').read_text(errors='replace')[-300:]}")
        yield host
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        subprocess.run(["umount", "-R", str(base / "data")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_docker_loads_our_archive_and_we_load_dockers(images: Images, dockerd: str, tmp_path: Path) -> None:
    out = tmp_path / "both.tar"
    archive.save(images.eng, ["busybox:latest", "localhost:5000/a/b:v1"], str(out))
    p = subprocess.run(["docker", "-H", dockerd, "load", "-i", str(out)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["Loaded image: busybox:latest", "Loaded image: localhost:5000/a/b:v1"]
    for ref, image_id in (("busybox:latest", images.busybox), ("localhost:5000/a/b:v1", images.layered)):
        info = json.loads(subprocess.run(["docker", "-H", dockerd, "image", "inspect", ref],
                                         capture_output=True, text=True, check=True).stdout)[0]
        assert info["Id"] == image_id
        assert info["RootFS"]["Layers"] == diff_ids(images.eng, image_id)
    # And the other way: what this dockerd's `docker save` writes loads here with the same ID.
    theirs = tmp_path / "theirs.tar"
    subprocess.run(["docker", "-H", dockerd, "save", "-o", str(theirs), "localhost:5000/a/b:v1"], check=True,
                   capture_output=True)
    eng2 = fresh(tmp_path)
    assert list(archive.load(eng2, str(theirs))) == ["Loaded image: localhost:5000/a/b:v1"]
    assert eng2.resolve_image("localhost:5000/a/b:v1") == images.layered
    eng2.close()
