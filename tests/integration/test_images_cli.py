"""The image commands, end to end through the installed `dockyard` command against a private root."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import signal
import sqlite3
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, DOCKYARD_BIN, assert_one_line_error


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o755
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_import_makes_a_one_layer_image_whose_id_is_its_config_digest(cli: CLI, busybox_tar: Path, root: Path) -> None:
    image_id = cli("import", str(busybox_tar), "busybox").stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    out = cli("images").stdout.splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    cols = out[1].split()
    assert cols[:3] == ["busybox", "latest", image_id[7:19]]
    assert out[1].endswith("MB")
    info = json.loads(cli("inspect", "busybox").stdout)[0]
    assert info["Id"] == image_id
    assert info["RepoTags"] == ["busybox:latest"]
    assert len(info["RootFS"]["Layers"]) == 1
    # The ID is the sha256 of the config bytes as stored: the same image has the same ID everywhere.
    config_blob = root / "blobs" / "sha256" / image_id[7:]
    assert hashlib.sha256(config_blob.read_bytes()).hexdigest() == image_id[7:]
    # The layer's diff_id is the sha256 of the uncompressed tar the user gave.
    assert info["RootFS"]["Layers"][0] == "sha256:" + hashlib.sha256(busybox_tar.read_bytes()).hexdigest()
    # The layer is unpacked once, with the files in it.
    layer_dirs = list((root / "layers").iterdir())
    assert len(layer_dirs) == 1 and (layer_dirs[0] / "diff" / "bin" / "busybox").is_file()


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, "zstd"])
def test_import_detects_compression_from_the_bytes(cli: CLI, compress: object, busybox_tar: Path) -> None:
    raw = busybox_tar.read_bytes()
    if compress == "zstd":
        import zstandard

        data = zstandard.ZstdCompressor().compress(raw)
    else:
        data = compress(raw)  # type: ignore[operator]
    plain = cli("import", str(busybox_tar)).stdout.strip()
    cli("rmi", plain)
    image_id = cli("import", "-", "packed:1", input=data).stdout.strip()
    info = json.loads(cli("image", "inspect", "packed:1").stdout)[0]
    assert info["RootFS"]["Layers"] == ["sha256:" + hashlib.sha256(raw).hexdigest()]
    assert info["Id"] == image_id


def test_import_changes_and_message_apply_to_the_config(cli: CLI, busybox_tar: Path) -> None:
    cli("import", "-c", 'CMD ["sh", "-c", "echo hi"]', "-c", "ENV A=1 B=two", "-c", "WORKDIR /srv",
        "-c", "ENTRYPOINT /bin/sh", "-c", "USER nobody", "-c", 'LABEL org.x="y z"', "-c", "EXPOSE 80/udp 8080",
        "-m", "from the test", str(busybox_tar), "conf:1")
    info = json.loads(cli("inspect", "conf:1").stdout)[0]
    c = info["Config"]
    assert c["Env"] == ["A=1", "B=two"]
    assert c["WorkingDir"] == "/srv"
    assert c["Entrypoint"] == ["/bin/sh", "-c", "/bin/sh"]
    assert c["User"] == "nobody"
    assert c["Labels"] == {"org.x": "y z"}
    assert c["ExposedPorts"] == {"80/udp": {}, "8080/tcp": {}}
    assert info["Comment"] == "from the test"
    hist = cli("history", "conf:1").stdout.splitlines()
    assert hist[0].split()[:2] == ["IMAGE", "CREATED"] and "COMMENT" in hist[0]
    assert "from the test" in hist[1]


def test_tag_rmi_untags_first_and_frees_unreferenced_blobs(cli: CLI, busybox_tar: Path, root: Path) -> None:
    image_id = cli("import", str(busybox_tar), "one:1").stdout.strip()
    cli("tag", "one:1", "localhost:5000/two/three:v2")
    rows = cli("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(rows) == ["localhost:5000/two/three:v2", "one:1"]
    r = cli("rmi", "one:1")
    assert r.stdout.strip() == "Untagged: one:1"
    assert cli("images", "-q").stdout.strip() == image_id[7:19]
    # By ID with one tag left: untag and delete, and the blobs and the layer go too.
    r = cli("rmi", image_id[7:15])
    assert r.stdout.splitlines() == ["Untagged: localhost:5000/two/three:v2", f"Deleted: {image_id}"]
    assert cli("images", "-q").stdout.strip() == ""
    assert list((root / "blobs" / "sha256").iterdir()) == []
    assert list((root / "layers").iterdir()) == []


def test_rmi_by_id_refuses_an_image_named_twice_unless_forced(cli: CLI, busybox_tar: Path) -> None:
    image_id = cli("import", str(busybox_tar), "a:1").stdout.strip()
    cli("tag", "a:1", "b:1")
    r = cli("rmi", image_id[7:19], check=False)
    assert r.returncode == 1 and "referenced in multiple repositories" in r.stderr
    out = cli("rmi", "-f", image_id[7:19]).stdout
    assert "Deleted: " + image_id in out


def test_shared_layers_survive_until_the_last_image_goes(cli: CLI, busybox_tar: Path, root: Path) -> None:
    cli("import", "-c", "CMD sh", str(busybox_tar), "x:1")
    cli("import", "-c", "CMD ls", str(busybox_tar), "y:1")
    assert len(list((root / "layers").iterdir())) == 1
    cli("rmi", "x:1")
    assert len(list((root / "layers").iterdir())) == 1
    cli("rmi", "y:1")
    assert list((root / "layers").iterdir()) == []


def test_images_filters_quiet_digests_no_trunc_and_dangling(cli: CLI, busybox_tar: Path) -> None:
    a = cli("import", "-c", "LABEL team=ml", str(busybox_tar), "ml/tool:1").stdout.strip()
    b = cli("import", str(busybox_tar)).stdout.strip()  # untagged: <none> <none>
    rows = [line.split() for line in cli("images").stdout.splitlines()[1:]]
    assert ["<none>", "<none>", b[7:19]] in [r[:3] for r in rows]
    assert cli("images", "-f", "dangling=true", "-q").stdout.split() == [b[7:19]]
    assert cli("images", "--filter", "label=team=ml", "-q").stdout.split() == [a[7:19]]
    assert cli("images", "ml/tool", "-q").stdout.split() == [a[7:19]]
    assert cli("images", "--filter", "reference=ml/*", "-q").stdout.split() == [a[7:19]]
    assert a in cli("images", "--no-trunc").stdout
    assert cli("images", "--digests").stdout.splitlines()[0].split()[:3] == ["REPOSITORY", "TAG", "DIGEST"]
    r = cli("images", "--filter", "bogus=1", check=False)
    assert_one_line_error(r)


def test_image_prune_removes_dangling_images(cli: CLI, busybox_tar: Path) -> None:
    cli("import", str(busybox_tar), "keep:1")
    dangling = cli("import", "-c", "CMD ls", str(busybox_tar)).stdout.strip()
    out = cli("image", "prune", "-f").stdout
    assert f"deleted: {dangling}" in out and "Total reclaimed space:" in out
    assert cli("images", "-q").stdout.split() != []
    assert dangling[7:19] not in cli("images", "-aq").stdout


def test_system_df_counts_images(cli: CLI, busybox_tar: Path) -> None:
    cli("import", str(busybox_tar), "df:1")
    lines = cli("system", "df").stdout.splitlines()
    assert lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert lines[1].split()[:3] == ["Images", "1", "0"]


@pytest.mark.parametrize("args, words, code", [
    (["import", "/nonexistent/rootfs.tar"], "no such file", 1),
    (["import", "-", "UPPER/case"], "must be lowercase", 1),
    (["tag", "nosuch:img", "a::b"], "No such image", 1),
    (["rmi", "nosuch"], "No such image: nosuch", 1),
    (["inspect", "nosuch"], "No such object: nosuch", 1),
    (["history", "x@sha256:123"], "invalid reference format", 1),
    (["images", "--bogus"], "unknown", 125),
    (["frobnicate"], "not a dockyard command", 1),
])
def test_bad_input_gets_one_clear_line(cli: CLI, args: list[str], words: str, code: int) -> None:
    r = cli(*args, check=False, input=b"")
    assert r.returncode == code, r
    assert words in r.stderr, r.stderr
    assert_one_line_error(r)


@pytest.mark.parametrize("payload, words", [
    (b"this is not a tar archive at all, just some words " * 40, "unknown compression"),
    (gzip.compress(_tar_bytes({"a": os.urandom(100_000)}))[:5000], "truncated"),
    (b"\x1f\x8b\x08\x00" + os.urandom(2000), "corrupt"),
])
def test_bad_archives_leave_nothing_behind(cli: CLI, root: Path, payload: bytes, words: str) -> None:
    r = cli("import", "-", "bad:1", input=payload, check=False)
    assert_one_line_error(r)
    assert words in r.stderr.lower(), r.stderr
    assert cli("images", "-aq").stdout.strip() == ""
    assert list((root / "blobs" / "sha256").iterdir()) == []
    assert [p for p in (root / "layers").iterdir()] == []
    assert list((root / "ingest").iterdir()) == []


def test_truncated_tar_is_refused(cli: CLI, busybox_tar: Path, root: Path) -> None:
    data = busybox_tar.read_bytes()[:700_000]
    r = cli("import", "-", "cut:1", input=data, check=False)
    assert_one_line_error(r)
    assert cli("images", "-aq").stdout.strip() == ""
    assert list((root / "layers").iterdir()) == []


def test_two_imports_at_once_leave_a_consistent_store(cli: CLI, busybox_tar: Path, root: Path) -> None:
    results: list[object] = []

    def one(tag: str) -> None:
        results.append(cli("import", "-c", f"LABEL n={tag}", str(busybox_tar), f"par:{tag}", check=False))

    threads = [threading.Thread(target=one, args=(str(i),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), results  # type: ignore[attr-defined]
    assert len(cli("images", "-q").stdout.split()) == 4
    assert len(list((root / "layers").iterdir())) == 1  # one shared layer, however many raced for it


def test_rmi_during_load_of_the_same_layer_keeps_the_new_image_whole(cli: CLI, busybox_tar: Path) -> None:
    cli("import", str(busybox_tar), "old:1")
    procs = [subprocess.Popen([str(DOCKYARD_BIN), "--root", str(cli.root), "import", "-c", f"LABEL i={i}",
                               str(busybox_tar), f"new:{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(3)]
    r = cli("rmi", "old:1")
    assert "Untagged: old:1" in r.stdout
    for p in procs:
        assert p.wait(60) == 0, p.stderr.read()  # type: ignore[union-attr]
    for i in range(3):
        info = json.loads(cli("inspect", f"new:{i}").stdout)[0]
        layer = info["GraphDriver"]["Data"]["UpperDir"]
        assert Path(layer, "bin", "busybox").is_file()


def test_kill_9_during_import_leaves_nothing_half_visible(cli: CLI, busybox_tar: Path, root: Path) -> None:
    # Feed the import slowly through a pipe, kill it mid-stream, then run the next command.
    p = subprocess.Popen([str(DOCKYARD_BIN), "--root", str(root), "import", "-", "slow:1"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    data = busybox_tar.read_bytes()
    assert p.stdin is not None
    p.stdin.write(data[: len(data) // 2])
    p.stdin.flush()
    deadline = time.time() + 10
    while time.time() < deadline and not any((root / "ingest").iterdir()):
        time.sleep(0.02)
    assert any((root / "ingest").iterdir()), "the import never started writing"
    time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    # Nothing visible: no image, no tag.
    assert cli("images", "-aq").stdout.strip() == ""
    db = sqlite3.connect(root / "dockyard.db")
    assert db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM tags").fetchone()[0] == 0
    # The next import cleans up what the dead one left and works.
    cli("import", str(busybox_tar), "after:1")
    assert list((root / "ingest").iterdir()) == []
    assert [p.name for p in (root / "layers").iterdir() if p.name.startswith("tmp-")] == []


def test_help_for_every_command_and_debug_shows_tracebacks(cli: CLI) -> None:
    top = cli("--help").stdout
    for name in ("images", "import", "tag", "rmi", "history", "save", "load", "inspect"):
        assert name in top
        r = cli(name, "--help")
        assert r.stdout.startswith("usage: dockyard " + name)
    assert cli("image", "prune", "--help").stdout.startswith("usage: dockyard image prune")
    r = cli("--debug", "rmi", "nosuch", check=False)
    assert "Traceback" in r.stderr


def test_python_dash_m_and_version(cli: CLI) -> None:
    import sys

    out = subprocess.run([sys.executable, "-m", "dockyard", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("Dockyard version ")
    assert cli("--version").stdout == out.stdout


def test_layer_tar_cannot_write_outside_through_import(cli: CLI, tmp_path: Path) -> None:
    outside = tmp_path / "outside-canary"
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tf:
        ln = tarfile.TarInfo("escape")
        ln.type = tarfile.SYMTYPE
        ln.linkname = str(tmp_path)
        tf.addfile(ln)
        f = tarfile.TarInfo("escape/outside-canary")
        f.size = 3
        tf.addfile(f, io.BytesIO(b"bad"))
    r = cli("import", "-", "evil:1", input=evil.getvalue(), check=False)
    assert not outside.exists()
    assert_one_line_error(r)
