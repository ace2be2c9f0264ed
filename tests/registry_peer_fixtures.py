"""Peers for the pull/push tests: Debian's real registry, a token server, a fault-injecting proxy.

Everything listens on 127.0.0.1 on a free port and is stopped by its fixture.

* ``start_real_registry(tmp, htpasswd=..., token=...)``: ``docker-registry serve`` (distribution
  2.8) with a temporary config; optionally Basic auth (a bcrypt htpasswd made with ``bcrypt``) or
  token auth (``auth.token`` trusting a self-signed certificate made with ``openssl``).
* ``TokenServer``: a small ``http.server`` issuing RS256 JWTs (signed with ``openssl dgst``) for the
  registry's ``auth.token`` config, after checking Basic credentials.
* ``FaultProxy``: an HTTP proxy in front of a registry that can answer 500 once, flip a byte of a
  blob body, or cut a body after N bytes, and records the requests (with their ``Range``).
* ``make_oci_layout``: an OCI image layout made with tarfile + json (gzip layers) for skopeo.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SRC = REPO_ROOT / "src"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"

BUSYBOX = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p)), None)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_with_src() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_port(url: str, proc: subprocess.Popen[bytes] | None, log: Path | None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text() if log else ''}")
        try:
            c = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=2)
            c.request("GET", parts.path or "/")
            r = c.getresponse()
            r.read()
            c.close()
            if r.status in (200, 401):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer in {timeout}s:\n{log.read_text() if log else ''}")


@dataclass
class Server:
    proc: subprocess.Popen[bytes] | None
    host: str  # 127.0.0.1:PORT
    root: Path
    log: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---- credentials ------------------------------------------------------------------------------
def write_htpasswd(path: Path, users: dict[str, str]) -> None:
    bcrypt = pytest.importorskip("bcrypt", reason="bcrypt is needed for docker-registry's htpasswd")
    lines = [f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}" for u, p in users.items()]
    path.write_text("\n".join(lines) + "\n")


def make_cert(tmp: Path, cn: str = "dockyard-test-token", *, server: bool = False) -> tuple[Path, Path]:
    """A self-signed RSA certificate and key (PEM): for signing tokens, or (``server``) for a TLS server
    on 127.0.0.1/localhost."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp / f"{cn}.key", tmp / f"{cn}.crt"
    san = ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"] if server else []
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", f"/CN={cn}", *san],
                   check=True, capture_output=True)
    return cert, key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """``GET /token?service=&scope=`` -> ``{"token": JWT}`` for the registry's ``auth.token``.

    Users in ``users`` get what they ask for; anonymous requests get a 401 unless ``anonymous_pull``
    (then pull only). ``requests`` records (user, scopes).
    """

    def __init__(self, tmp: Path, users: dict[str, str], *, service: str = "dockyard-test",
                 issuer: str = "dockyard-test-issuer", anonymous_pull: bool = False,
                 key_name: str = "access_token") -> None:
        self.cert, self.key = make_cert(tmp)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.users = users
        self.service = service
        self.issuer = issuer
        self.anonymous_pull = anonymous_pull
        self.key_name = key_name
        self.requests: list[tuple[str | None, list[str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                outer._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), check=True, capture_output=True).stdout
        return f"{signing_input}.{_b64url(sig)}"

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        q = parse_qs(urlsplit(h.path).query)
        scopes = q.get("scope", [])
        user = None
        authz = h.headers.get("Authorization", "")
        if authz.startswith("Basic "):
            u, _, p = base64.b64decode(authz[6:]).decode().partition(":")
            if self.users.get(u) != p:
                return self._send(h, 401, {"details": "incorrect username or password"})
            user = u
        elif not self.anonymous_pull:
            return self._send(h, 401, {"details": "authentication required"})
        self.requests.append((user, scopes))
        access = []
        for s in scopes:
            parts = s.split(":")
            if len(parts) < 3:
                continue
            typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            if user is None:
                actions = [a for a in actions if a == "pull"]
            access.append({"type": typ, "name": name, "actions": actions})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        self._send(h, 200, {self.key_name: self.sign(claims), "expires_in": 300})

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- the real registry --------------------------------------------------------------------------
def start_real_registry(tmp: Path, *, htpasswd: Path | None = None,
                        token: TokenServer | None = None) -> Server:
    """Debian's ``docker-registry`` on a free loopback port with a temporary config."""
    exe = shutil.which("docker-registry")
    if exe is None:
        pytest.skip("docker-registry is not installed")
    root = tmp / "data"
    root.mkdir(parents=True, exist_ok=True)
    auth = ""
    if htpasswd is not None:
        auth = f"auth:\n  htpasswd:\n    realm: dockyard-test\n    path: {htpasswd}\n"
    elif token is not None:
        auth = (f"auth:\n  token:\n    realm: {token.realm}\n    service: {token.service}\n"
                f"    issuer: {token.issuer}\n    rootcertbundle: {token.cert}\n")
    last = ""
    for _ in range(5):  # the port is chosen before the registry binds it: retry on a collision
        port = free_port()
        config = tmp / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n" + auth
        )
        log = tmp / "registry.log"
        with open(log, "wb") as logf:
            proc = subprocess.Popen([exe, "serve", str(config)], stdout=logf, stderr=subprocess.STDOUT)
        server = Server(proc, f"127.0.0.1:{port}", root, log)
        try:
            wait_port(f"{server.url}/v2/", proc, log)
            return server
        except AssertionError as e:
            last = str(e)
            server.stop()
    raise AssertionError(f"docker-registry did not start: {last}")


def start_dockyard_registry(tmp: Path) -> Server:
    """Dockyard's own registry server (``python -m dockyard.registry.server``)."""
    if not (SRC / "dockyard" / "registry" / "server.py").exists():
        pytest.skip("Dockyard's registry server is not in this tree")
    root = tmp / "dyroot"
    log = tmp / "dyserver.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "dockyard.registry.server", "--addr", "127.0.0.1:0",
                                 "--root", str(root), "--log-level", "warning"],
                                stdout=logf, stderr=subprocess.STDOUT, env=env_with_src(), cwd=REPO_ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text())
        if m:
            server = Server(proc, f"127.0.0.1:{m.group(1)}", root, log)
            wait_port(f"{server.url}/v2/", proc, log)
            return server
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"Dockyard's registry did not start:\n{log.read_text()}")


# ---- the fault proxy ----------------------------------------------------------------------------
@dataclass
class Fault:
    """What to do to requests whose method and path match (``times`` left; -1: always)."""

    method: str
    path_re: str
    # "status" (answer ``status``), "corrupt" (flip byte ``offset``), "cut" (close after ``offset``
    # bytes of the body), "replace" (answer ``body`` with the upstream's status, no digest header)
    kind: str
    status: int = 500
    offset: int = 0
    times: int = 1
    body: bytes = b""


class FaultProxy:
    """A forwarding HTTP/1.1 proxy with programmable faults; ``log`` lists (method, path, range, status)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream  # host:port
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, str | None, int]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _any(self) -> None:
                outer._forward(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.times != 0 and f.method == method and re.search(f.path_re, path):
                    if f.times > 0:
                        f.times -= 1
                    return f
        return None

    def _forward(self, h: BaseHTTPRequestHandler) -> None:
        method, path = h.command, h.path
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        fault = self._take(method, path)
        rng = h.headers.get("Range")
        if fault is not None and fault.kind == "status":
            self.log.append((method, path, rng, fault.status))
            msg = b'{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}'
            h.send_response(fault.status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(msg)))
            h.end_headers()
            h.wfile.write(msg)
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("connection", "keep-alive",
                                                                            "proxy-connection")}
        up_host, up_port = self.upstream.rsplit(":", 1)
        conn = http.client.HTTPConnection(up_host, int(up_port), timeout=60)
        try:
            conn.request(method, path, body=body if (body or method in ("POST", "PUT", "PATCH")) else None,
                         headers=headers)
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        self.log.append((method, path, rng, r.status))
        h.send_response(r.status)
        replace = fault is not None and fault.kind == "replace"
        if replace:
            data = fault.body  # type: ignore[union-attr]
        for k, v in r.getheaders():
            if k.lower() in ("transfer-encoding", "connection", "keep-alive", "content-length"):
                continue
            if replace and k.lower() == "docker-content-digest":
                continue
            h.send_header(k, v)
        if method == "HEAD":
            h.send_header("Content-Length", r.getheader("Content-Length") or "0")
            h.end_headers()
            return
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if fault is not None and fault.kind == "corrupt" and len(data) > fault.offset:
            b = bytearray(data)
            b[fault.offset] ^= 0xFF
            data = bytes(b)
        if fault is not None and fault.kind == "cut":
            h.wfile.write(data[:fault.offset])
            h.wfile.flush()
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        h.wfile.write(data)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- images -------------------------------------------------------------------------------------
def tar_bytes(files: Mapping[str, bytes | str | None], *, mode: int = 0o644) -> bytes:
    """An uncompressed layer tar: ``path -> bytes`` (a file), ``str`` (a symlink), None (a directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs: set[str] = set()
        for path in sorted(files):
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
                    tf.addfile(ti)
            content = files[path]
            ti = tarfile.TarInfo(path.strip("/"))
            ti.mtime = 1_700_000_000
            if content is None:
                if ti.name in dirs:
                    continue
                dirs.add(ti.name)
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            elif isinstance(content, str):
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, content, 0o777
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(content), (0o755 if path.startswith(("bin/", "/bin/")) else mode)
                tf.addfile(ti, io.BytesIO(content))
    return buf.getvalue()


def busybox_files() -> dict[str, bytes | str | None]:
    if BUSYBOX is None:
        pytest.skip("busybox is not installed")
    return {"bin/busybox": Path(BUSYBOX).read_bytes(), "bin/sh": "busybox", "bin/ls": "busybox",
            "etc/hostname": b"dockyard\n", "tmp": None}


@dataclass
class LayoutImage:
    """What was written into an OCI layout (to compare with what a pull produced)."""

    manifest_digest: str
    manifest: bytes
    config_digest: str
    config: bytes
    layer_digests: list[str]
    diff_ids: list[str]
    platform: tuple[str, str, str | None]


def _put_blob(layout: Path, data: bytes) -> str:
    d = sha256(data)
    p = layout / "blobs" / "sha256" / d.split(":")[1]
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return d


def build_image(layout: Path, layers: Sequence[Mapping[str, bytes | str | None]], *,
                arch: str = "amd64", variant: str | None = None, cmd: list[str] | None = None,
                label: str = "", compression: str = "gzip") -> LayoutImage:
    """Write an image's blobs (gzip/zstd/no layers, config, manifest) into ``layout``; no index entry."""
    layer_descs, diff_ids, digests = [], [], []
    for files in layers:
        raw = tar_bytes(files)
        if compression == "zstd":
            import zstandard

            blob, mt = zstandard.ZstdCompressor(level=3).compress(raw), OCI_LAYER_ZSTD
        elif compression == "none":
            blob, mt = raw, OCI_LAYER
        else:
            blob, mt = gzip.compress(raw, compresslevel=6, mtime=0), OCI_LAYER_GZIP
        d = _put_blob(layout, blob)
        layer_descs.append({"mediaType": mt, "digest": d, "size": len(blob)})
        diff_ids.append(sha256(raw))
        digests.append(d)
    config: dict[str, Any] = {
        "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": cmd or ["/bin/sh"], "Env": ["PATH=/bin"],
                   "Labels": {"test": label} if label else None},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"}
                    for i in range(len(layers))],
    }
    if variant:
        config["variant"] = variant
    cfg = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    cfg_d = _put_blob(layout, cfg)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": cfg_d, "size": len(cfg)},
                           "layers": layer_descs}, indent=2).encode()
    m_d = _put_blob(layout, manifest)
    return LayoutImage(m_d, manifest, cfg_d, cfg, digests, diff_ids, ("linux", arch, variant))


def _write_index(layout: Path, entries: list[dict[str, Any]]) -> None:
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    idx = layout / "index.json"
    old = json.loads(idx.read_text())["manifests"] if idx.exists() else []
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                   "manifests": old + entries}))


def make_oci_layout(layout: Path, ref_name: str, layers: Sequence[Mapping[str, bytes | str | None]],
                    **kw: Any) -> LayoutImage:
    """An OCI layout holding one image under ``ref_name`` (``skopeo copy oci:DIR:ref_name ...``)."""
    img = build_image(layout, layers, **kw)
    _write_index(layout, [{"mediaType": OCI_MANIFEST, "digest": img.manifest_digest,
                           "size": len(img.manifest),
                           "annotations": {"org.opencontainers.image.ref.name": ref_name}}])
    return img


def make_multiarch_layout(layout: Path, ref_name: str,
                          images: list[tuple[dict[str, Any], Sequence[Mapping[str, bytes | str | None]]]]
                          ) -> tuple[str, bytes, list[LayoutImage]]:
    """A nested image index (one entry per platform) under ``ref_name``; returns (digest, bytes, images)."""
    built = []
    entries = []
    for plat, layers in images:
        img = build_image(layout, layers, arch=plat["architecture"], variant=plat.get("variant"),
                          label=str(plat))
        built.append(img)
        entries.append({"mediaType": OCI_MANIFEST, "digest": img.manifest_digest, "size": len(img.manifest),
                        "platform": plat})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, indent=2).encode()
    d = _put_blob(layout, index)
    _write_index(layout, [{"mediaType": OCI_INDEX, "digest": d, "size": len(index),
                           "annotations": {"org.opencontainers.image.ref.name": ref_name}}])
    return d, index, built


# ---- skopeo -------------------------------------------------------------------------------------
def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("skopeo")
    if exe is None:
        pytest.skip("skopeo is not installed")
    env = dict(os.environ)
    env.setdefault("REGISTRY_AUTH_FILE", "/nonexistent-dockyard-test-auth.json")
    r = subprocess.run([exe, "--insecure-policy", *args], capture_output=True, text=True, timeout=300,
                       env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


# ---- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_real_registry(tmp_path_factory.mktemp("docker-registry"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("docker-registry-basic")
    users = {"alice": "wonderland"}
    write_htpasswd(tmp / "htpasswd", users)
    server = start_real_registry(tmp, htpasswd=tmp / "htpasswd")
    server.extra["users"] = users
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("docker-registry-token")
    users = {"bob": "builder"}
    token = TokenServer(tmp, users)
    server = start_real_registry(tmp, token=token)
    server.extra["users"] = users
    server.extra["token"] = token
    yield server
    server.stop()
    token.stop()


@pytest.fixture(scope="module")
def dockyard_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_dockyard_registry(tmp_path_factory.mktemp("dockyard-registry"))
    yield server
    server.stop()


@pytest.fixture
def fault_proxy(real_registry: Server) -> Iterator[FaultProxy]:
    proxy = FaultProxy(real_registry.host)
    yield proxy
    proxy.stop()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty DOCKER_CONFIG directory for the test (never the user's own)."""
    d = tmp_path / "docker-config"
    d.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    return d
