"""Fixtures and helpers for the registry server tests (imported by test_registry_server.py).

Everything runs on loopback: our server and Debian's ``docker-registry`` are started as
subprocesses on free ports; images are built here, from the ``busybox-static`` binary, as OCI
image layouts that ``skopeo`` can copy.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.registry_peer_fixtures import (  # noqa: F401 - shared with the client tests
    BUSYBOX,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    REPO_ROOT,
    SRC,
    free_port,
    sha256,
)
from tests.registry_peer_fixtures import env_with_src as _env  # noqa: F401
from tests.registry_peer_fixtures import start_real_registry as peers_start_real_registry

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def peak_rss_kib(pid: int) -> int:
    """VmHWM (peak resident set size) of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, *, verify: Any = False,
              timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            r = httpx.get(url, verify=verify, timeout=2)
            if r.status_code in (200, 401):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"server did not answer {url} in {timeout}s:\n{log.read_text()}")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    host: str  # 127.0.0.1:PORT, as skopeo wants it
    url: str  # http(s)://127.0.0.1:PORT
    root: Path
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_dockyard(root: Path, log: Path, *extra: str, scheme: str = "http",
                   verify: Any = False) -> Server:
    """Run ``python -m dockyard.registry.server`` on a free port and wait until /v2/ answers."""
    cmd = [sys.executable, "-m", "dockyard.registry.server", "--addr", "127.0.0.1:0",
           "--root", str(root), "--log-level", "warning", *extra]
    logf = open(log, "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=_env(), cwd=REPO_ROOT)
    logf.close()
    deadline = time.monotonic() + 30
    port = None
    while time.monotonic() < deadline and port is None:
        m = re.search(r"listening on https?://127\.0\.0\.1:(\d+)", log.read_text())
        if m:
            port = int(m.group(1))
            break
        if proc.poll() is not None:
            raise AssertionError(f"registry exited with {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.05)
    if port is None:
        proc.kill()
        raise AssertionError(f"registry did not start:\n{log.read_text()}")
    host = f"127.0.0.1:{port}"
    server = Server(proc, host, f"{scheme}://{host}", root, log)
    try:
        wait_http(f"{server.url}/v2/", proc, log, verify=verify)
    except BaseException:
        server.stop()
        raise
    return server


def start_real_registry(tmp: Path) -> Server:
    """Debian's ``docker-registry`` (distribution 2.8) with filesystem storage and deletes enabled: the
    peers' helper, as this module's ``Server`` (which also carries the URL's scheme)."""
    peer = peers_start_real_registry(tmp)
    assert peer.proc is not None and peer.log is not None
    return Server(peer.proc, peer.host, peer.url, peer.root, peer.log)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Our registry, shared by the tests of a module (each test uses its own repository names)."""
    tmp = tmp_path_factory.mktemp("dockyard-registry")
    server = start_dockyard(tmp / "root", tmp / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def real_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_real_registry(tmp_path_factory.mktemp("docker-registry"))
    yield server
    server.stop()


@pytest.fixture
def client(registry: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=60) as c:
        yield c


# ---- skopeo -------------------------------------------------------------------------------------


def skopeo(*args: str, check: bool = True, tmp: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("skopeo")
    if exe is None:
        pytest.skip("skopeo is not installed")
    env = dict(os.environ)
    # never read or write the user's credentials
    env["REGISTRY_AUTH_FILE"] = str((tmp or Path("/tmp")) / "dockyard-test-auth.json")
    proc = subprocess.run([exe, "--insecure-policy", *args], capture_output=True, text=True, env=env,
                          timeout=240)
    if check and proc.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


# ---- images -------------------------------------------------------------------------------------


@dataclass
class LayoutImage:
    """An image written into an OCI layout by ``make_busybox_layout``."""

    layout: Path
    tag: str
    manifest: bytes
    manifest_digest: str
    config_digest: str
    layer_digests: list[str]

    def blobs(self) -> list[str]:
        return [self.config_digest, *self.layer_digests]


def _tar_busybox() -> bytes:
    if BUSYBOX is None:
        pytest.skip("busybox-static is not installed")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "tmp"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        data = Path(BUSYBOX).read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in ("sh", "ls", "cat", "echo"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
        passwd = b"root:x:0:0:root:/root:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(passwd))
    return buf.getvalue()


def _tar_file(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _write_blob(layout: Path, data: bytes) -> str:
    digest = sha256(data)
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def make_busybox_layout(layout: Path, tag: str = "1", *, extra_layer: bytes = b"") -> LayoutImage:
    """Write a two-layer busybox image (OCI manifest) into the OCI layout ``layout`` as ``tag``.

    Also adds, as ``<tag>-multi``, an OCI image index over that manifest (for ``--all`` copies).
    """
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    tars = [_tar_busybox(), _tar_file("data/payload.bin", extra_layer or os.urandom(300_000))]
    layers: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    for t in tars:
        gz = gzip.compress(t, mtime=0)
        layers.append({"mediaType": OCI_LAYER_GZIP, "digest": _write_blob(layout, gz), "size": len(gz)})
        diff_ids.append(sha256(t))
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "dockyard test: busybox"}, {"created_by": "dockyard test: payload"}],
    }, sort_keys=True).encode()
    config_digest = _write_blob(layout, config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": layers,
    }, indent=2).encode()
    manifest_digest = _write_blob(layout, manifest)
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }).encode()
    index_digest = _write_blob(layout, index)
    top_path = layout / "index.json"
    top: dict[str, Any] = (json.loads(top_path.read_text()) if top_path.exists()
                           else {"schemaVersion": 2, "manifests": []})
    top["manifests"] += [
        {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": tag}},
        {"mediaType": OCI_INDEX, "digest": index_digest, "size": len(index),
         "annotations": {"org.opencontainers.image.ref.name": f"{tag}-multi"}},
    ]
    top_path.write_text(json.dumps(top))
    return LayoutImage(layout, tag, manifest, manifest_digest, config_digest,
                       [layer["digest"] for layer in layers])


@pytest.fixture(scope="module")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> LayoutImage:
    return make_busybox_layout(tmp_path_factory.mktemp("oci") / "layout")


def layout_blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


# ---- raw protocol helpers -------------------------------------------------------------------------


def push_blob(client: httpx.Client, name: str, data: bytes) -> str:
    digest = sha256(data)
    r = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data,
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return digest


def image_manifest(config: str, config_size: int, layers: list[tuple[str, int]],
                   media_type: str = OCI_MANIFEST, **extra: Any) -> bytes:
    obj: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": DOCKER_CONFIG if media_type == DOCKER_MANIFEST else OCI_CONFIG,
                   "digest": config, "size": config_size},
        "layers": [{"mediaType": DOCKER_LAYER_GZIP if media_type == DOCKER_MANIFEST else OCI_LAYER_GZIP,
                    "digest": d, "size": s} for d, s in layers],
    }
    obj.update(extra)
    return json.dumps(obj).encode()


def push_small_image(client: httpx.Client, name: str, tag: str, *, media_type: str = OCI_MANIFEST,
                     seed: bytes = b"") -> tuple[str, bytes]:
    """Push a config + one layer + a manifest; return the manifest's digest and bytes."""
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' + seed
    layer = gzip.compress(b"layer-" + name.encode() + seed, mtime=0)
    cd = push_blob(client, name, config)
    ld = push_blob(client, name, layer)
    manifest = image_manifest(cd, len(config), [(ld, len(layer))], media_type)
    r = client.put(f"/v2/{name}/manifests/{tag}", content=manifest, headers={"Content-Type": media_type})
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == sha256(manifest)
    return sha256(manifest), manifest


def error_code(r: httpx.Response) -> str:
    body = r.json()
    assert isinstance(body.get("errors"), list) and body["errors"], body
    return str(body["errors"][0]["code"])
