"""The push's stdlib transport against Debian's real registry: what it sends is what skopeo reads
back, a push imports neither httpx nor ssl, chunked uploads go by ``sendfile`` too, progress counts
every byte, and a damaged local blob is one line of error, not a traceback.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registry_peer_fixtures import (  # noqa: E402
    Server,
    busybox_files,
    docker_config,
    env_with_src,
    make_oci_layout,
    real_registry,
    sha256,
    skopeo,
    start_real_registry,
    tar_bytes,
)

from dockyard.engine import Engine  # noqa: E402
from dockyard.image import reference  # noqa: E402
from dockyard.ops.push import Pusher  # noqa: E402
from dockyard.registry.progress import Progress, human_size  # noqa: E402

__all__ = ["docker_config", "real_registry"]

pytestmark = pytest.mark.peers


@pytest.fixture(autouse=True)
def _isolated(docker_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("DOCKYARD_REGISTRY_MIRRORS", "DOCKYARD_INSECURE_REGISTRIES", "DOCKYARD_PUSH_CHUNK_SIZE",
              "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("DOCKYARD_REGISTRY_RETRIES", "2")


@pytest.fixture
def eng(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "root")
    yield e
    e.close()


def big_image(eng: Engine, tmp: Path, name: str, size: int = 3_000_000) -> str:
    rootfs = tmp / "rootfs.tar"
    rootfs.write_bytes(tar_bytes({"data/random": os.urandom(size), **busybox_files()}))
    return eng.import_image(str(rootfs), name)


def read_back(name: str, tmp: Path) -> dict[str, object]:
    """skopeo copies the image out (checking every digest); the manifest."""
    out = tmp / f"out-{hashlib.md5(name.encode()).hexdigest()[:8]}"
    skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{out}:x")
    index = json.loads((out / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    raw = (out / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()
    assert sha256(raw) == digest
    return dict(json.loads(raw))


def test_a_push_process_imports_neither_httpx_nor_ssl(real_registry: Server, tmp_path: Path) -> None:
    root = tmp_path / "root"
    name = f"{real_registry.host}/fast/lean:1"
    with Engine(root) as e:
        image_id = big_image(e, tmp_path, name)
    code = ("import sys\nfrom dockyard.cli.main import main\nrc = main(sys.argv[1:])\n"
            "print(rc, sorted(m for m in ('httpx', 'httpcore', 'h11', 'ssl', 'http.client') if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code, "--root", str(root), "push", "-q", name],
                       capture_output=True, text=True, env=env_with_src(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [name, "0 []"]
    manifest = read_back(name, tmp_path)
    assert manifest["config"]["digest"] == image_id  # type: ignore[index]


def test_chunked_upload_by_sendfile_and_progress_counts_every_byte(real_registry: Server, tmp_path: Path,
                                                                  eng: Engine,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_PUSH_CHUNK_SIZE", str(1 << 20))  # PATCH pieces larger than one write
    name = f"{real_registry.host}/fast/chunks:1"
    image_id = big_image(eng, tmp_path, name, size=3_500_000)
    out = io.StringIO()
    pusher = Pusher(eng, progress=Progress(out, tty=True, min_interval=0))
    try:
        with eng.layers.using():
            pusher.push(reference.parse(name), image_id)
        assert pusher._client is not None and pusher._client.wire is not None
    finally:
        pusher.close()
    manifest = read_back(name, tmp_path)
    assert manifest["config"]["digest"] == image_id  # type: ignore[index]
    size = int(manifest["layers"][0]["size"])  # type: ignore[index]
    assert size > 3 << 20
    text = out.getvalue()
    assert f"Pushing [{'=' * 50}>] {human_size(size):>8}/{human_size(size)}" in text  # every byte counted
    assert ": Pushed" in text


def test_a_damaged_local_blob_is_one_line_of_error(real_registry: Server, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    img = make_oci_layout(layout, "1", [{"data/random": os.urandom(300_000)}])
    src = f"{real_registry.host}/fast/source:1"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:1", f"docker://{src}")
    root = tmp_path / "root"
    env = env_with_src()

    def dockyard(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dockyard", "--root", str(root), *args],
                              capture_output=True, text=True, env=env, timeout=120)

    assert dockyard("pull", "-q", src).returncode == 0
    with Engine(root) as e:
        blob = e.content.path(img.layer_digests[0])
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as f:
        f.truncate(blob.stat().st_size - 1000)
    other = start_real_registry(tmp_path / "other")  # nothing there to mount from
    try:
        target = f"{other.host}/fast/damaged:1"
        assert dockyard("tag", src, target).returncode == 0
        r = dockyard("push", target)
    finally:
        other.stop()
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    err = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].endswith("the local file ended 1000 bytes early"), r.stderr
