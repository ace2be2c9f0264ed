"""pull / push / login / logout / search, proven against peers: Debian's docker-registry and skopeo.

Images are made here as OCI layouts (tarfile + json) and put into the real registry with skopeo;
what Dockyard pulls is compared with what was written, and what Dockyard pushes is read back and
verified by skopeo. Faults (a flipped byte, a cut connection, a 500) come from a proxy in front of
the real registry.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registry_peer_fixtures import (  # noqa: E402
    Fault,
    FaultProxy,
    LayoutImage,
    Server,
    basic_registry,
    busybox_files,
    docker_config,
    dockyard_registry,
    env_with_src,
    fault_proxy,
    make_multiarch_layout,
    make_oci_layout,
    real_registry,
    sha256,
    skopeo,
    tar_bytes,
    token_registry,
)

from dockyard.engine import Engine  # noqa: E402
from dockyard.errors import AuthError, CorruptData, RegistryError  # noqa: E402
from dockyard.image.oci import host_platform  # noqa: E402
from dockyard.ops.pull import ensure_image, pull  # noqa: E402
from dockyard.ops.push import push  # noqa: E402

__all__ = ["basic_registry", "docker_config", "dockyard_registry", "fault_proxy", "real_registry",
           "token_registry"]

pytestmark = pytest.mark.peers


@pytest.fixture(autouse=True)
def _isolated(docker_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("DOCKYARD_REGISTRY_MIRRORS", "DOCKYARD_INSECURE_REGISTRIES",
              "DOCKYARD_MAX_CONCURRENT_DOWNLOADS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("DOCKYARD_REGISTRY_RETRIES", "3")


@pytest.fixture
def eng(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "root")
    yield e
    e.close()


def assert_nothing_stored(eng: Engine) -> None:
    assert eng.db.images() == []
    assert list(eng.content.walk()) == []
    assert list(eng.content.ingest_dir.iterdir()) == []
    assert eng.db.layers() == []
    assert [p.name for p in eng.layers.root.iterdir()] == []


def seed(reg: Server, tmp: Path, repo: str, tag: str, layers: list[dict[str, bytes | str | None]],
         *creds: str, fmt: str | None = None) -> LayoutImage:
    """An image written as an OCI layout and copied into ``reg`` by skopeo (``fmt``: v2s2 for Docker's)."""
    layout = tmp / f"layout-{repo.replace('/', '-')}-{tag}"
    img = make_oci_layout(layout, tag, layers)
    extra = [f"--dest-creds={creds[0]}"] if creds else []
    if fmt:
        extra.append(f"--format={fmt}")
    skopeo("copy", "--dest-tls-verify=false", *extra, f"oci:{layout}:{tag}", f"docker://{reg.host}/{repo}:{tag}")
    return img


def two_layers() -> list[dict[str, bytes | str | None]]:
    return [busybox_files(), {"etc/hello": b"hello from layer 2\n", "usr/share/big": os.urandom(300_000)}]


# ---- pull ---------------------------------------------------------------------------------------
def test_pull_what_skopeo_pushed(real_registry: Server, tmp_path: Path, eng: Engine) -> None:
    layers = two_layers()
    img = seed(real_registry, tmp_path, "peer/bb", "v1", layers)
    out = io.StringIO()
    image_id = pull(eng, f"{real_registry.host}/peer/bb:v1", out=out)
    assert image_id == img.config_digest
    rec = eng.image_record(image_id)
    assert rec.tags == [f"{real_registry.host}/peer/bb:v1"]
    assert rec.repo_digests == [f"{real_registry.host}/peer/bb@{img.manifest_digest}"]
    assert rec.manifest_digest == img.manifest_digest
    chain = eng.image_chain(image_id)
    assert [c.diff_id for c in chain] == img.diff_ids
    assert (chain[0].path / "bin" / "busybox").read_bytes() == layers[0]["bin/busybox"]
    assert os.readlink(chain[0].path / "bin" / "sh") == "busybox"
    assert (chain[1].path / "etc" / "hello").read_bytes() == b"hello from layer 2\n"
    assert (chain[1].path / "usr" / "share" / "big").read_bytes() == layers[1]["usr/share/big"]
    # the compressed blobs are kept as the registry sent them
    for d in img.layer_digests:
        assert eng.content.has(d)
        assert sha256(eng.content.read(d)) == d
    text = out.getvalue().splitlines()
    short = [d.split(":")[1][:12] for d in img.layer_digests]
    assert text[0] == "v1: Pulling from peer/bb"
    for s in short:
        assert f"{s}: Pulling fs layer" in text
        assert f"{s}: Pull complete" in text
    assert text[-3:] == [f"Digest: {img.manifest_digest}",
                         f"Status: Downloaded newer image for {real_registry.host}/peer/bb:v1",
                         f"{real_registry.host}/peer/bb:v1"]
    # again: up to date, no layer lines (as Docker)
    out = io.StringIO()
    assert pull(eng, f"{real_registry.host}/peer/bb:v1", out=out) == image_id
    assert out.getvalue().splitlines() == [
        "v1: Pulling from peer/bb", f"Digest: {img.manifest_digest}",
        f"Status: Image is up to date for {real_registry.host}/peer/bb:v1",
        f"{real_registry.host}/peer/bb:v1"]


def test_pull_shares_layers_and_default_tag(real_registry: Server, tmp_path: Path, eng: Engine) -> None:
    base = busybox_files()
    seed(real_registry, tmp_path, "peer/base", "latest", [base])
    img2 = seed(real_registry, tmp_path, "peer/child", "latest", [base, {"etc/child": b"c\n"}])
    pull(eng, f"{real_registry.host}/peer/base", out=io.StringIO())
    out = io.StringIO()
    pull(eng, f"{real_registry.host}/peer/child", out=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Using default tag: latest"
    assert f"{img2.layer_digests[0].split(':')[1][:12]}: Already exists" in lines
    assert lines[-1] == f"{real_registry.host}/peer/child:latest"


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_pull_zstd_and_uncompressed_layers(real_registry: Server, tmp_path: Path, eng: Engine,
                                           compression: str) -> None:
    layout = tmp_path / "layout"
    files: list[dict[str, bytes | str | None]] = [{"etc/z": b"zstd or plain\n", "bin/x": os.urandom(70_000)}]
    img = make_oci_layout(layout, "z", files, compression=compression)
    name = f"{real_registry.host}/peer/{compression}:z"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:z", f"docker://{name}")
    image_id = pull(eng, name, out=io.StringIO())
    assert image_id == img.config_digest
    assert (eng.image_chain(image_id)[0].path / "etc" / "z").read_bytes() == b"zstd or plain\n"
    # pushed back: zstd stays zstd (OCI manifest), an uncompressed layer goes out as gzip
    eng.tag(name, f"{real_registry.host}/back/{compression}:z")
    digest = push(eng, f"{real_registry.host}/back/{compression}:z", out=io.StringIO())
    skopeo("copy", "--src-tls-verify=false", f"docker://{real_registry.host}/back/{compression}:z",
           f"oci:{tmp_path / 'out'}:x")
    m = json.loads((tmp_path / "out" / "blobs" / "sha256" / digest.split(":")[1]).read_bytes())
    assert m["layers"][0]["mediaType"] == {"zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
                                           "none": "application/vnd.oci.image.layer.v1.tar+gzip"}[compression]


def test_pull_through_mirror(real_registry: Server, tmp_path: Path, eng: Engine,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """docker.io images come from DOCKYARD_REGISTRY_MIRRORS first (no Internet needed)."""
    img = seed(real_registry, tmp_path, "library/mirrored", "latest", [{"etc/m": b"m"}])
    monkeypatch.setenv("DOCKYARD_REGISTRY_MIRRORS", f"http://{real_registry.host}")
    out = io.StringIO()
    image_id = pull(eng, "mirrored", out=out)
    assert image_id == img.config_digest
    assert eng.image_record(image_id).tags == ["docker.io/library/mirrored:latest"]
    assert eng.resolve_image("mirrored") == image_id
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["Using default tag: latest", "latest: Pulling from library/mirrored"]
    assert lines[-3:] == [f"Digest: {img.manifest_digest}", "Status: Downloaded newer image for mirrored:latest",
                          "docker.io/library/mirrored:latest"]


def test_pull_by_digest(real_registry: Server, tmp_path: Path, eng: Engine) -> None:
    img = seed(real_registry, tmp_path, "peer/dig", "v1", [busybox_files()])
    name = f"{real_registry.host}/peer/dig@{img.manifest_digest}"
    out = io.StringIO()
    image_id = pull(eng, name, out=out)
    assert image_id == img.config_digest
    rec = eng.image_record(image_id)
    assert rec.tags == []
    assert rec.repo_digests == [name]
    assert eng.resolve_image(name) == image_id
    assert out.getvalue().splitlines()[-1] == name
    # a digest the registry does not have
    with pytest.raises(RegistryError, match="manifest unknown"):
        pull(eng, f"{real_registry.host}/peer/dig@sha256:{'ab' * 32}", out=io.StringIO())


def test_pull_all_tags(real_registry: Server, tmp_path: Path, eng: Engine) -> None:
    seed(real_registry, tmp_path, "peer/many", "a", [{"etc/a": b"a"}])
    seed(real_registry, tmp_path, "peer/many", "b", [{"etc/b": b"b"}])
    out = io.StringIO()
    pull(eng, f"{real_registry.host}/peer/many", all_tags=True, out=out)
    tags = sorted(t for r in eng.db.images() for t in r.tags)
    assert tags == [f"{real_registry.host}/peer/many:a", f"{real_registry.host}/peer/many:b"]
    assert out.getvalue().splitlines()[-1] == f"{real_registry.host}/peer/many"


def test_pull_multiarch_index(real_registry: Server, tmp_path: Path, eng: Engine) -> None:
    host = host_platform()
    other = "arm64" if host.architecture != "arm64" else "amd64"
    plats = [{"architecture": host.architecture, "os": "linux",
              **({"variant": host.variant} if host.variant else {})},
             {"architecture": other, "os": "linux", **({"variant": "v8"} if other == "arm64" else {})}]
    layout = tmp_path / "multi"
    index_digest, _, imgs = make_multiarch_layout(
        layout, "multi", [(plats[0], [{"etc/arch": host.architecture.encode()}]),
                          (plats[1], [{"etc/arch": other.encode()}])])
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi",
           f"docker://{real_registry.host}/peer/multi:1")
    # the registry holds the index unchanged
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{real_registry.host}/peer/multi:1").stdout
    assert sha256(raw.encode()) == index_digest
    image_id = pull(eng, f"{real_registry.host}/peer/multi:1", out=io.StringIO())
    assert image_id == imgs[0].config_digest
    assert eng.image_config(image_id).data["architecture"] == host.architecture
    assert eng.image_record(image_id).manifest_digest == imgs[0].manifest_digest
    assert eng.image_record(image_id).repo_digests == [f"{real_registry.host}/peer/multi@{index_digest}"]
    other_id = pull(eng, f"{real_registry.host}/peer/multi:1", platform=f"linux/{other}", out=io.StringIO())
    assert other_id == imgs[1].config_digest
    chain = eng.image_chain(other_id)
    assert (chain[0].path / "etc" / "arch").read_bytes() == other.encode()
    with pytest.raises(RegistryError, match="no matching manifest for linux/s390x"):
        pull(eng, f"{real_registry.host}/peer/multi:1", platform="linux/s390x", out=io.StringIO())


def test_ensure_image_pulls_missing(real_registry: Server, tmp_path: Path, eng: Engine) -> None:
    img = seed(real_registry, tmp_path, "peer/run", "latest", [{"etc/x": b"x"}])
    err = io.StringIO()
    image_id = ensure_image(eng, f"{real_registry.host}/peer/run", out=err)
    assert image_id == img.config_digest
    assert err.getvalue().startswith(f"Unable to find image '{real_registry.host}/peer/run:latest' locally\n")
    err = io.StringIO()
    assert ensure_image(eng, f"{real_registry.host}/peer/run", out=err) == image_id
    assert err.getvalue() == ""


# ---- push ---------------------------------------------------------------------------------------
def test_push_imported_image_verified_by_skopeo(real_registry: Server, tmp_path: Path, eng: Engine) -> None:
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(tar_bytes(busybox_files()))
    name = f"{real_registry.host}/my/duck:v2"
    image_id = eng.import_image(str(rootfs), name)
    out = io.StringIO()
    digest = push(eng, name, out=out)
    cfg = eng.image_config(image_id)
    diff_id = cfg.diff_ids[0]
    lines = out.getvalue().splitlines()
    assert lines[0] == f"The push refers to repository [{real_registry.host}/my/duck]"
    assert f"{diff_id.split(':')[1][:12]}: Pushed" in lines
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{name}").stdout.encode()
    assert lines[-1] == f"v2: digest: {digest} size: {len(raw)}"
    assert sha256(raw) == digest
    manifest = json.loads(raw)
    assert manifest["config"]["digest"] == image_id
    assert manifest["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    # skopeo copies it out, verifying every blob's digest on the way
    skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{tmp_path / 'out'}:x")
    blobs = tmp_path / "out" / "blobs" / "sha256"
    layer = (blobs / manifest["layers"][0]["digest"].split(":")[1]).read_bytes()
    assert sha256(layer) == manifest["layers"][0]["digest"]
    assert sha256(gzip.decompress(layer)) == diff_id
    assert sha256((blobs / image_id.split(":")[1]).read_bytes()) == image_id
    assert f"{real_registry.host}/my/duck@{digest}" in eng.image_record(image_id).repo_digests
    # a second push: compressed once, same digest, layer already there
    out = io.StringIO()
    assert push(eng, name, out=out) == digest
    assert f"{diff_id.split(':')[1][:12]}: Layer already exists" in out.getvalue().splitlines()
    # another repository of the same registry: mounted, not uploaded
    eng.tag(name, f"{real_registry.host}/their/duck:v1")
    out = io.StringIO()
    assert push(eng, f"{real_registry.host}/their/duck:v1", out=out) == digest
    assert f"{diff_id.split(':')[1][:12]}: Mounted from my/duck" in out.getvalue().splitlines()


@pytest.mark.parametrize("fmt", ["oci", "v2s2"])
def test_push_pulled_image_keeps_manifest_digest(real_registry: Server, tmp_path: Path, eng: Engine,
                                                 tmp_path_factory: pytest.TempPathFactory, fmt: str) -> None:
    seed(real_registry, tmp_path, f"peer/keep-{fmt}", "v1", two_layers(), fmt=fmt)
    src = f"{real_registry.host}/peer/keep-{fmt}:v1"
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{src}").stdout.encode()
    manifest = json.loads(raw)
    want_type = {"oci": "application/vnd.oci.image.manifest.v1+json",
                 "v2s2": "application/vnd.docker.distribution.manifest.v2+json"}[fmt]
    assert manifest["mediaType"] == want_type
    image_id = pull(eng, src, out=io.StringIO())
    assert image_id == manifest["config"]["digest"]
    assert eng.image_record(image_id).manifest_media_type == want_type
    eng.tag(src, f"{real_registry.host}/copy/keep-{fmt}:v9")
    digest = push(eng, f"{real_registry.host}/copy/keep-{fmt}:v9", out=io.StringIO())
    assert digest == sha256(raw)
    # and a fresh engine pulls it back to the same image
    other = Engine(tmp_path_factory.mktemp("other-root"))
    try:
        assert pull(other, f"{real_registry.host}/copy/keep-{fmt}:v9", out=io.StringIO()) == image_id
    finally:
        other.close()


def test_podman_pulls_what_dockyard_pushed(real_registry: Server, tmp_path: Path, eng: Engine) -> None:
    """podman (containers/image + containers/storage) as a second, independent client."""
    import shutil

    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(tar_bytes({"etc/podman-check": b"ok\n", **busybox_files()}))
    name = f"{real_registry.host}/pod/man:1"
    image_id = eng.import_image(str(rootfs), name)
    push(eng, name, out=io.StringIO())
    import tempfile

    store = tmp_path / "podman"
    runroot = tempfile.mkdtemp(prefix="dy-podman-")  # podman wants a short runroot path
    base = ["podman", "--root", str(store / "root"), "--runroot", runroot, "--storage-driver", "vfs"]
    auth = tmp_path / "podman-auth.json"
    auth.write_text("{}")
    env = {**os.environ, "REGISTRY_AUTH_FILE": str(auth)}
    try:
        r = subprocess.run([*base, "pull", "-q", "--tls-verify=false", name], capture_output=True, text=True,
                           env=env, timeout=300)
        if r.returncode != 0 and ("overlay" in r.stderr or "storage" in r.stderr or "mount" in r.stderr):
            pytest.skip(f"podman cannot run here: {r.stderr.strip()[:200]}")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == image_id.split(":")[1]
        r = subprocess.run([*base, "image", "inspect", "--format", "{{json .RootFS.Layers}}", name],
                           capture_output=True, text=True, env=env, timeout=120)
        assert json.loads(r.stdout) == eng.image_config(image_id).diff_ids
    finally:
        subprocess.run([*base, "system", "reset", "-f"], capture_output=True, env=env, timeout=120)
        shutil.rmtree(runroot, ignore_errors=True)


def test_push_chunked_upload(real_registry: Server, tmp_path: Path, eng: Engine,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_PUSH_CHUNK_SIZE", "65536")
    monkeypatch.setenv("DOCKYARD_PUSH_GZIP_LEVEL", "6")
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(tar_bytes({"data/random": os.urandom(400_000), **busybox_files()}))
    name = f"{real_registry.host}/chunk/ed:1"
    image_id = eng.import_image(str(rootfs), name)
    digest = push(eng, name, out=io.StringIO())
    skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{tmp_path / 'out'}:x")
    m = json.loads((tmp_path / "out" / "blobs" / "sha256" / digest.split(":")[1]).read_bytes())
    assert m["config"]["digest"] == image_id
    assert m["layers"][0]["size"] > 65536 * 3


def test_push_missing_tag(real_registry: Server, eng: Engine) -> None:
    from dockyard.errors import ImageNotFound

    with pytest.raises(ImageNotFound, match="An image does not exist locally with the tag"):
        push(eng, f"{real_registry.host}/no/such:tag", out=io.StringIO())


# ---- auth ---------------------------------------------------------------------------------------
def cli(*args: str, stdin: str | None = None, root: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "dockyard", *(["--root", str(root)] if root else []), *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env_with_src(), timeout=300)


def test_basic_auth_login_pull_logout(basic_registry: Server, tmp_path: Path, docker_config: Path) -> None:
    seed(basic_registry, tmp_path, "sec/bb", "v1", [busybox_files()], "alice:wonderland")
    root = tmp_path / "root"
    name = f"{basic_registry.host}/sec/bb:v1"
    r = cli("pull", name, root=root)
    assert r.returncode == 1
    assert "unauthorized: authentication required" in r.stderr
    assert f"dockyard login {basic_registry.host}" in r.stderr
    r = cli("login", "-u", "alice", "--password-stdin", basic_registry.host, stdin="wrong\n")
    assert r.returncode == 1 and "incorrect username or password" in r.stderr
    assert not (docker_config / "config.json").exists()
    r = cli("login", "-u", "alice", "--password-stdin", basic_registry.host, stdin="wonderland\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("Login Succeeded")
    cfg_file = docker_config / "config.json"
    assert stat.S_IMODE(cfg_file.stat().st_mode) == 0o600
    auths = json.loads(cfg_file.read_text())["auths"]
    import base64

    assert base64.b64decode(auths[basic_registry.host]["auth"]) == b"alice:wonderland"
    r = cli("pull", name, root=root)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == name
    with Engine(root) as e:
        assert e.resolve_image(name)
    r = cli("push", f"{basic_registry.host}/sec/bb:v1", root=root)
    assert r.returncode == 0, r.stderr
    r = cli("logout", basic_registry.host)
    assert r.returncode == 0
    assert r.stdout.strip() == f"Removing login credentials for {basic_registry.host}"
    assert basic_registry.host not in json.loads(cfg_file.read_text()).get("auths", {})
    assert cli("logout", basic_registry.host).stdout.strip() == f"Not logged in to {basic_registry.host}"


def test_token_auth(token_registry: Server, tmp_path: Path, eng: Engine) -> None:
    token = token_registry.extra["token"]
    img = seed(token_registry, tmp_path, "tok/bb", "v1", [busybox_files()], "bob:builder")
    name = f"{token_registry.host}/tok/bb:v1"
    with pytest.raises(AuthError, match="unauthorized: authentication required"):
        pull(eng, name, out=io.StringIO())
    assert_nothing_stored(eng)
    r = cli("login", "-u", "bob", "--password-stdin", token_registry.host, stdin="builder")
    assert r.returncode == 0, r.stderr
    assert pull(eng, name, out=io.StringIO()) == img.config_digest
    assert ("bob", ["repository:tok/bb:pull"]) in token.requests
    eng.tag(name, f"{token_registry.host}/tok/copy:v2")
    digest = push(eng, f"{token_registry.host}/tok/copy:v2", out=io.StringIO())
    assert digest == img.manifest_digest
    assert any(u == "bob" and "repository:tok/copy:pull,push" in s for u, s in token.requests)


def test_token_server_access_token_key(tmp_path: Path, eng: Engine) -> None:
    """A token server answering ``token`` (not ``access_token``) and anonymous pulls."""
    from registry_peer_fixtures import TokenServer, start_real_registry

    token = TokenServer(tmp_path, {"u": "p"}, anonymous_pull=True, key_name="token")
    reg = start_real_registry(tmp_path / "reg", token=token)
    try:
        seed(reg, tmp_path, "anon/bb", "v1", [{"etc/x": b"x"}], "u:p")
        assert pull(eng, f"{reg.host}/anon/bb:v1", out=io.StringIO())
        assert (None, ["repository:anon/bb:pull"]) in token.requests
    finally:
        reg.stop()
        token.stop()


# ---- faults -------------------------------------------------------------------------------------
def test_corrupt_layer_byte(real_registry: Server, fault_proxy: FaultProxy, tmp_path: Path,
        eng: Engine) -> None:
    img = seed(real_registry, tmp_path, "fault/corrupt", "v1", two_layers())
    bad = img.layer_digests[1]
    fault_proxy.add(Fault("GET", f"/blobs/{bad}", "corrupt", offset=5000, times=-1))
    with pytest.raises(CorruptData) as ei:
        pull(eng, f"{fault_proxy.host}/fault/corrupt:v1", out=io.StringIO())
    assert bad in str(ei.value)
    assert_nothing_stored(eng)


def test_corrupt_layer_cli_message(real_registry: Server, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    img = seed(real_registry, tmp_path, "fault/corrupt2", "v1", [{"etc/x": os.urandom(50_000)}])
    bad = img.layer_digests[0]
    fault_proxy.add(Fault("GET", f"/blobs/{bad}", "corrupt", offset=100, times=-1))
    # the proxy lives in this process: run the CLI in-process
    from dockyard.cli.main import main

    root = tmp_path / "root"
    err = io.StringIO()
    old = sys.stderr
    sys.stderr = err
    try:
        rc = main(["--root", str(root), "pull", "-q", f"{fault_proxy.host}/fault/corrupt2:v1"])
    finally:
        sys.stderr = old
    assert rc == 1
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and bad in lines[0] and "verification failed" in lines[0]


def test_dropped_connection_resumes_with_range(real_registry: Server, fault_proxy: FaultProxy, tmp_path: Path,
                                               eng: Engine) -> None:
    layers: list[dict[str, bytes | str | None]] = [{"data/blob": os.urandom(2_000_000)}]
    img = seed(real_registry, tmp_path, "fault/cut", "v1", layers)
    d = img.layer_digests[0]
    fault_proxy.add(Fault("GET", f"/blobs/{d}", "cut", offset=700_000, times=1))
    image_id = pull(eng, f"{fault_proxy.host}/fault/cut:v1", out=io.StringIO())
    assert image_id == img.config_digest
    gets = [(rng, st) for m, p, rng, st in fault_proxy.log if m == "GET" and p.endswith(d)]
    assert gets[0] == (None, 200)
    assert gets[1][0] == "bytes=700000-" and gets[1][1] == 206
    assert (eng.image_chain(image_id)[0].path / "data" / "blob").read_bytes() == layers[0]["data/blob"]


def test_single_500_is_retried(real_registry: Server, fault_proxy: FaultProxy, tmp_path: Path,
        eng: Engine) -> None:
    img = seed(real_registry, tmp_path, "fault/five", "v1", [{"etc/x": b"x"}])
    fault_proxy.add(Fault("GET", "/manifests/v1", "status", status=500))
    fault_proxy.add(Fault("GET", f"/blobs/{img.layer_digests[0]}", "status", status=503))
    assert pull(eng, f"{fault_proxy.host}/fault/five:v1", out=io.StringIO()) == img.config_digest
    statuses = [st for m, p, _, st in fault_proxy.log if p.endswith("/manifests/v1")]
    assert statuses == [500, 200]


def test_push_retries_500(real_registry: Server, fault_proxy: FaultProxy, tmp_path: Path,
        eng: Engine) -> None:
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(tar_bytes({"etc/x": os.urandom(10_000)}))
    name = f"{fault_proxy.host}/fault/pushy:1"
    eng.import_image(str(rootfs), name)
    fault_proxy.add(Fault("PUT", "/blobs/uploads/", "status", status=500))
    digest = push(eng, name, out=io.StringIO())
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{real_registry.host}/fault/pushy:1").stdout
    assert sha256(raw.encode()) == digest


def test_malformed_manifest(real_registry: Server, fault_proxy: FaultProxy, tmp_path: Path,
        eng: Engine) -> None:
    seed(real_registry, tmp_path, "fault/badjson", "v1", [{"etc/x": b"x"}])
    fault_proxy.add(Fault("GET", "/manifests/v1", "replace", body=b'{"schemaVersion": 2, "layers": 7',
                          times=-1))
    with pytest.raises(CorruptData):
        pull(eng, f"{fault_proxy.host}/fault/badjson:v1", out=io.StringIO())
    assert_nothing_stored(eng)


def test_unknown_tag_cli(real_registry: Server, tmp_path: Path) -> None:
    seed(real_registry, tmp_path, "peer/known", "v1", [{"etc/x": b"x"}])
    r = cli("pull", f"{real_registry.host}/peer/known:nope", root=tmp_path / "root")
    assert r.returncode == 1
    assert r.stderr.strip() == (f"Error: manifest for {real_registry.host}/peer/known:nope not found: "
                                "manifest unknown: manifest unknown")
    assert r.stdout == "nope: Pulling from peer/known\n"


def test_connection_refused(tmp_path: Path) -> None:
    from registry_peer_fixtures import free_port

    port = free_port()
    r = cli("pull", f"127.0.0.1:{port}/x/y:z", root=tmp_path / "root")
    assert r.returncode == 1
    assert r.stderr.strip() == (f'Error: Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: '
                                "connect: connection refused")


def test_cli_pull_output_and_quiet(real_registry: Server, tmp_path: Path) -> None:
    img = seed(real_registry, tmp_path, "peer/cli", "v1", [{"etc/x": b"x"}])
    name = f"{real_registry.host}/peer/cli:v1"
    r = cli("pull", "-q", name, root=tmp_path / "root")
    assert r.returncode == 0, r.stderr
    assert r.stdout == name + "\n"
    r = cli("pull", name, root=tmp_path / "root")
    assert r.stdout.splitlines() == ["v1: Pulling from peer/cli", f"Digest: {img.manifest_digest}",
                                     f"Status: Image is up to date for {name}", name]


def test_search_via_catalog(real_registry: Server, tmp_path: Path) -> None:
    seed(real_registry, tmp_path, "findme/please", "v1", [{"etc/x": b"x"}])
    r = cli("search", f"{real_registry.host}/findme")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    assert any(line.startswith(f"{real_registry.host}/findme/please") for line in lines[1:])


# ---- Dockyard's own registry ---------------------------------------------------------------------
def test_pull_from_dockyard_registry(real_registry: Server, dockyard_registry: Server, tmp_path: Path,
                                     eng: Engine) -> None:
    img = seed(real_registry, tmp_path, "via/real", "v1", two_layers())
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{real_registry.host}/via/real:v1", f"docker://{dockyard_registry.host}/via/ours:v1")
    image_id = pull(eng, f"{dockyard_registry.host}/via/ours:v1", out=io.StringIO())
    assert image_id == img.config_digest
    assert eng.image_record(image_id).manifest_digest == img.manifest_digest
    # and push back into our registry under another name (mount from via/ours)
    eng.tag(image_id, f"{dockyard_registry.host}/via/again:v2")
    out = io.StringIO()
    assert push(eng, f"{dockyard_registry.host}/via/again:v2", out=out) == img.manifest_digest
    assert "Mounted from via/ours" in out.getvalue()
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dockyard_registry.host}/via/again:v2").stdout
    assert hashlib.sha256(raw.encode()).hexdigest() == img.manifest_digest.split(":")[1]


def test_push_threads_keep_the_upload_limit_and_the_error_order() -> None:
    import threading
    import time

    from dockyard.ops.push import _run_in_threads

    lock = threading.Lock()
    running = {"layers": 0, "peak": 0}
    order: list[int] = []

    def layer(i: int) -> None:
        with lock:
            running["layers"] += 1
            running["peak"] = max(running["peak"], running["layers"])
            order.append(i)
        time.sleep(0.02)
        with lock:
            running["layers"] -= 1
        if i in (3, 5):
            raise ValueError(f"layer {i}")

    def config() -> None:
        raise KeyError("config")

    tasks = [lambda i=i: layer(i) for i in range(8)]
    errors = _run_in_threads([tasks, [config]], [2, 1])
    assert running["peak"] == 2  # the config's thread never takes a layer
    assert sorted(order) == list(range(8)) and order[:2] in ([0, 1], [1, 0])
    assert [type(e).__name__ if e else None for e in errors] == \
        [None, None, None, "ValueError", None, "ValueError", None, None, "KeyError"]
    assert str(errors[3]) == "layer 3"
