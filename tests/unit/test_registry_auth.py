"""Registry client pieces without a registry: config.json and helpers, challenges, tokens, progress."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import AuthError
from dockyard.registry import auth
from dockyard.registry.config import RegistryConfig, config_key, normalize_server
from dockyard.registry.progress import Progress, human_size, progress_bar


@pytest.fixture(autouse=True)
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "dc"
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    return d


# ---- WWW-Authenticate ---------------------------------------------------------------------------
def test_parse_bearer_challenge() -> None:
    [c] = auth.parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                        "scope": "repository:library/busybox:pull"}


def test_parse_basic_and_several() -> None:
    cs = auth.parse_www_authenticate(
        'Basic realm="Registry Realm", Bearer realm="x",error="insufficient_scope"')
    assert [c.scheme for c in cs] == ["basic", "bearer"]
    assert cs[0].params == {"realm": "Registry Realm"}
    assert cs[1].params["error"] == "insufficient_scope"
    quoted = auth.parse_www_authenticate('Basic realm="a \\"quoted\\" realm"')
    assert quoted[0].params["realm"] == 'a "quoted" realm'
    assert auth.parse_www_authenticate("") == []


# ---- config.json --------------------------------------------------------------------------------
def test_store_get_erase_config_json(docker_config: Path) -> None:
    assert not auth.get_credentials("localhost:5000")
    where = auth.store_credentials("localhost:5000", auth.Credentials("al", "pa:ss"))
    assert where == docker_config / "config.json"
    st = (docker_config / "config.json").stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    data = json.loads((docker_config / "config.json").read_text())
    assert base64.b64decode(data["auths"]["localhost:5000"]["auth"]) == b"al:pa:ss"
    assert auth.get_credentials("localhost:5000") == auth.Credentials("al", "pa:ss")
    assert auth.erase_credentials("localhost:5000")
    assert not auth.erase_credentials("localhost:5000")
    assert not auth.get_credentials("localhost:5000")


def test_hub_key_and_legacy_keys(docker_config: Path) -> None:
    auth.store_credentials("docker.io", auth.Credentials("hubuser", "hubpw"))
    data = json.loads((docker_config / "config.json").read_text())
    assert list(data["auths"]) == ["https://index.docker.io/v1/"]
    assert auth.get_credentials("docker.io").username == "hubuser"
    # keys written by old clients, with a scheme or a path
    data["auths"]["http://reg.example:5000/v2/"] = {"auth": base64.b64encode(b"u:p").decode()}
    (docker_config / "config.json").write_text(json.dumps(data))
    assert auth.get_credentials("reg.example:5000") == auth.Credentials("u", "p")
    assert config_key("docker.io") == "https://index.docker.io/v1/"
    assert normalize_server(None) == "docker.io"
    assert normalize_server("https://index.docker.io/v1/") == "docker.io"
    assert normalize_server("http://localhost:5000/v2/") == "localhost:5000"


def test_keeps_other_config_and_identity_token(docker_config: Path) -> None:
    docker_config.mkdir()
    (docker_config / "config.json").write_text(json.dumps({"psFormat": "x", "auths": {
        "r.example": {"identitytoken": "refresh-me"}}}))
    assert auth.get_credentials("r.example") == auth.Credentials(identity_token="refresh-me")
    auth.store_credentials("other.example", auth.Credentials("a", "b"))
    data = json.loads((docker_config / "config.json").read_text())
    assert data["psFormat"] == "x" and "r.example" in data["auths"]


def test_invalid_auth_entry(docker_config: Path) -> None:
    docker_config.mkdir()
    (docker_config / "config.json").write_text(json.dumps({"auths": {"r.example": {"auth": "bm9jb2xvbg=="}}}))
    with pytest.raises(AuthError, match="user:password"):
        auth.get_credentials("r.example")


@pytest.fixture
def fake_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``docker-credential-fake``: a JSON file as its keychain, speaking Docker's helper protocol."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    store = tmp_path / "keychain.json"
    script = bindir / "docker-credential-fake"
    script.write_text(f"""#!/usr/bin/env python3
import json, sys
path = {str(store)!r}
try:
    db = json.load(open(path))
except FileNotFoundError:
    db = {{}}
action = sys.argv[1]
data = sys.stdin.read()
if action == "get":
    if data.strip() not in db:
        print("credentials not found in native keychain"); sys.exit(1)
    u, s = db[data.strip()]
    print(json.dumps({{"ServerURL": data.strip(), "Username": u, "Secret": s}}))
elif action == "store":
    d = json.loads(data); db[d["ServerURL"]] = [d["Username"], d["Secret"]]
    json.dump(db, open(path, "w"))
elif action == "erase":
    if data.strip() not in db:
        print("credentials not found in native keychain"); sys.exit(1)
    del db[data.strip()]; json.dump(db, open(path, "w"))
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return store


def test_creds_store_helper(docker_config: Path, fake_helper: Path) -> None:
    docker_config.mkdir()
    (docker_config / "config.json").write_text(json.dumps({"credsStore": "fake"}))
    assert not auth.get_credentials("localhost:5000")
    where = auth.store_credentials("localhost:5000", auth.Credentials("h", "secret"))
    assert where == "docker-credential-fake"
    assert json.loads(fake_helper.read_text()) == {"localhost:5000": ["h", "secret"]}
    data = json.loads((docker_config / "config.json").read_text())
    assert data["auths"] == {"localhost:5000": {}}  # no secret in the file
    assert auth.get_credentials("localhost:5000") == auth.Credentials("h", "secret")
    assert auth.erase_credentials("localhost:5000")
    assert json.loads(fake_helper.read_text()) == {}


def test_cred_helpers_per_registry_and_identity_token(docker_config: Path, fake_helper: Path) -> None:
    docker_config.mkdir()
    (docker_config / "config.json").write_text(json.dumps({"credHelpers": {"ghcr.example": "fake"}}))
    fake_helper.write_text(json.dumps({"ghcr.example": ["<token>", "refresh"]}))
    assert auth.get_credentials("ghcr.example") == auth.Credentials(identity_token="refresh")
    assert not auth.get_credentials("other.example")  # not the helper's registry: config.json


def test_missing_helper(docker_config: Path) -> None:
    docker_config.mkdir()
    (docker_config / "config.json").write_text(json.dumps({"credsStore": "nonexistent-xyz"}))
    with pytest.raises(AuthError, match="docker-credential-nonexistent-xyz"):
        auth.get_credentials("localhost:5000")


# ---- registry config ----------------------------------------------------------------------------
def test_insecure_and_endpoints() -> None:
    c = RegistryConfig.from_env({"DOCKYARD_INSECURE_REGISTRIES": "reg.lan:5000, 10.1.0.0/16",
                                 "DOCKYARD_REGISTRY_MIRRORS": "https://mirror.example/, mirror2.example"})
    for d in ("localhost:5000", "127.0.0.1:5000", "127.9.9.9", "[::1]:5000", "localhost", "reg.lan:5000",
              "10.1.2.3:80"):
        assert c.is_insecure(d), d
    for d in ("reg.lan:5001", "example.com", "10.2.0.1", "docker.io"):
        assert not c.is_insecure(d), d
    assert c.endpoints("docker.io") == ["https://mirror.example", "https://mirror2.example",
                                        "https://registry-1.docker.io"]
    assert c.endpoints("localhost:5000") == ["http://localhost:5000"]
    assert c.endpoints("quay.example") == ["https://quay.example"]
    assert RegistryConfig.from_env({}).max_concurrent_downloads == 3
    assert RegistryConfig.from_env({"DOCKYARD_MAX_CONCURRENT_DOWNLOADS": "7"}).max_concurrent_downloads == 7


# ---- token flow ---------------------------------------------------------------------------------
class _TokenHandler(BaseHTTPRequestHandler):
    answers: list[tuple[int, dict[str, Any]]] = []
    seen: list[tuple[str, str | None]] = []

    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        status, body = type(self).answers.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def token_server() -> Iterator[tuple[str, type[_TokenHandler]]]:
    handler = type("H", (_TokenHandler,), {"answers": [], "seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/token", handler
    httpd.shutdown()
    httpd.server_close()


def test_bearer_token_flow(token_server: tuple[str, type[_TokenHandler]]) -> None:
    import httpx

    realm, handler = token_server
    handler.answers += [(200, {"token": "T1", "expires_in": 300}), (200, {"access_token": "T2"})]
    with httpx.Client() as http:
        a = auth.Authenticator(auth.Credentials("u", "p"), http)
        assert a.learn(f'Bearer realm="{realm}",service="svc"')
        assert a.header(["repository:a/b:pull"]) == "Bearer T1"
        assert a.header(["repository:a/b:pull"]) == "Bearer T1"  # cached
        assert a.header(["repository:a/b:pull,push"]) == "Bearer T2"  # another scope
    assert len(handler.seen) == 2
    path, authz = handler.seen[0]
    assert "service=svc" in path and "scope=repository%3Aa%2Fb%3Apull" in path
    assert authz == "Basic " + base64.b64encode(b"u:p").decode()


def test_bearer_anonymous_and_denied(token_server: tuple[str, type[_TokenHandler]]) -> None:
    import httpx

    realm, handler = token_server
    handler.answers += [(200, {"token": "anon"}), (401, {})]
    with httpx.Client() as http:
        a = auth.Authenticator(auth.Credentials(), http)
        a.learn(f'Bearer realm="{realm}"')
        assert a.header(["repository:x:pull"]) == "Bearer anon"
        assert handler.seen[0][1] is None
        with pytest.raises(AuthError, match="unauthorized: authentication required"):
            a.header(["repository:y:pull"])


def test_basic_challenge_header() -> None:
    import httpx

    with httpx.Client() as http:
        a = auth.Authenticator(auth.Credentials("al", "pw"), http)
        assert a.header(["x"]) is None  # no challenge yet
        a.learn('Basic realm="r"')
        assert a.header(["x"]) == "Basic " + base64.b64encode(b"al:pw").decode()
        assert auth.Authenticator(auth.Credentials(), http).header(["x"]) is None


# ---- errors -------------------------------------------------------------------------------------
def test_transport_messages() -> None:
    import httpx

    from dockyard.registry.client import transport_message

    e = httpx.ConnectError("[Errno 111] Connection refused")
    assert transport_message(e, "http://127.0.0.1:5999/v2/") == \
        'Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused'
    e = httpx.ConnectError("[Errno -2] Name or service not known")
    assert transport_message(e, "https://nope.invalid/v2/", "HEAD") == \
        'Head "https://nope.invalid/v2/": dial tcp: lookup nope.invalid: no such host'
    e = httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)")
    assert transport_message(e, "https://h:5000/v2/").endswith(
        "http: server gave HTTP response to HTTPS client")


# ---- blob reader --------------------------------------------------------------------------------
class _BlobHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    blob = b""
    cut_first = True
    honour_range = True
    ranges: list[str | None] = []

    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        cls = type(self)
        if self.path == "/v2/":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        rng = self.headers.get("Range")
        cls.ranges.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng and cls.honour_range else 0
        data = cls.blob[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(cls.blob) - 1}/{len(cls.blob)}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if cls.cut_first:
            cls.cut_first = False
            self.wfile.write(data[:len(data) // 3])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(data)


@pytest.mark.parametrize("honour_range", [True, False])
def test_blob_reader_resumes(honour_range: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.registry.client import RegistryClient

    monkeypatch.setattr("dockyard.registry.client._sleep_backoff", lambda attempt: None)
    blob = os.urandom(300_000)
    ranges: list[str | None] = []
    handler = type("B", (_BlobHandler,), {"blob": blob, "cut_first": True, "honour_range": honour_range,
                                          "ranges": ranges})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{httpd.server_address[1]}"
        with RegistryClient(host, credentials=auth.Credentials()) as c:
            got = []
            with c.open_blob("a/b", "sha256:" + "0" * 64, len(blob)) as r:
                while chunk := r.read(10_000):
                    got.append(chunk)
                assert r.resumes == 1
        assert b"".join(got) == blob
        assert ranges[0] is None
        assert ranges[1] == f"bytes={len(blob) // 3}-"
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---- progress -----------------------------------------------------------------------------------
def test_human_size_and_bar() -> None:
    assert human_size(0) == "0B"
    assert human_size(12_345_678) == "12.35MB"
    assert human_size(50_000_000) == "50MB"
    assert progress_bar(25, 100) == "[" + "=" * 12 + ">" + " " * 37 + "]" + "      25B/100B"
    assert progress_bar(100, 100).startswith("[" + "=" * 50 + ">]")
    assert progress_bar(5, None) == "      5B"


def test_progress_plain_lines() -> None:
    out = io.StringIO()
    p = Progress(out, tty=False)
    p.line("latest: Pulling from library/busybox")
    p.update("abc", "Pulling fs layer")
    p.update("abc", "Downloading", 10, 100)  # no byte counts off a terminal
    p.update("abc", "Pulling fs layer")  # no repeats
    p.update("abc", "Pull complete")
    assert out.getvalue() == ("latest: Pulling from library/busybox\nabc: Pulling fs layer\n"
                              "abc: Pull complete\n")


def test_progress_tty_redraws_in_place() -> None:
    out = io.StringIO()
    p = Progress(out, tty=True, min_interval=0)
    p.update("aaa", "Pulling fs layer")
    p.update("bbb", "Pulling fs layer")
    p.update("aaa", "Downloading", 50, 100)
    text = out.getvalue()
    assert text.startswith("\x1b[2K\raaa: Pulling fs layer\n\x1b[2K\rbbb: Pulling fs layer\n")
    assert text.endswith("\x1b[2A\x1b[2K\raaa: Downloading [" + "=" * 25 + ">" + " " * 24 + "]      50B/100B"
                         "\x1b[2B\r")


def test_progress_quiet() -> None:
    out = io.StringIO()
    p = Progress(out, quiet=True, tty=True)
    p.line("x")
    p.update("a", "b")
    assert out.getvalue() == ""


def test_endpoint_override_serves_a_registry_name_from_elsewhere() -> None:
    from dockyard.registry.config import RegistryConfig

    cfg = RegistryConfig.from_env({
        "DOCKYARD_REGISTRY_ENDPOINTS": "docker.io=http://127.0.0.1:5000, ghcr.io=127.0.0.1:6000",
        "DOCKYARD_REGISTRY_MIRRORS": "https://mirror.example"})
    assert cfg.endpoints("docker.io") == ["http://127.0.0.1:5000"]
    assert cfg.endpoints("ghcr.io") == ["http://127.0.0.1:6000"]
    assert cfg.endpoints("quay.io") == ["https://quay.io"]


# ---- start-up: TLS context and httpx import ------------------------------------------------------
class _OkHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A TLS server for 127.0.0.1 with a self-signed certificate: (host:port, certificate)."""
    import ssl

    from tests.registry_peer_fixtures import make_cert

    cert, key = make_cert(tmp_path, "localhost", server=True)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _OkHandler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{srv.server_address[1]}", cert
    finally:
        srv.shutdown()
        srv.server_close()


def test_tls_is_verified_with_the_ca_bundle_loaded_at_first_handshake(
        tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.errors import RegistryError
    from dockyard.registry.client import RegistryClient

    host, cert = tls_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with RegistryClient(host, base_url=f"https://{host}") as c:
        ctx = c.http._transport._pool._ssl_context
        assert ctx.cert_store_stats()["x509_ca"] == 0  # nothing loaded before a TLS connection
        with pytest.raises(RegistryError, match="tls: failed to verify certificate"):
            c.ping()
        assert ctx.cert_store_stats()["x509_ca"] > 0  # certifi's bundle, as httpx's verify=True
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # honoured, as httpx does
    with RegistryClient(host, base_url=f"https://{host}") as c:
        assert c.ping().status_code == 200


def test_plain_http_client_loads_no_ca_bundle() -> None:
    from dockyard.registry.client import RegistryClient

    srv = ThreadingHTTPServer(("127.0.0.1", 0), _OkHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{srv.server_address[1]}"
        with RegistryClient(host) as c:
            assert c.base_url == f"http://{host}"
            assert c.ping().status_code == 200
            ctx = c.http._transport._pool._ssl_context
            assert ctx.cert_store_stats()["x509_ca"] == 0
    finally:
        srv.shutdown()
        srv.server_close()


def test_httpx_is_imported_without_its_command_line_client() -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom dockyard.registry.client import RegistryClient\nRegistryClient('127.0.0.1:1').close()\n"
            "import httpx\nprint(callable(httpx.main), 'httpx._main' in sys.modules, 'click' in sys.modules,"
            " 'pygments' in sys.modules)\nsys.argv = ['httpx', '--help']\nhttpx.main()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    assert lines[0] == "True False False False"
    try:  # httpx.main still works: the real command-line client, or httpx's own words without it
        import rich  # noqa: F401
    except ImportError:
        assert r.returncode == 1
        assert "pip install 'httpx[cli]'" in r.stdout
    else:
        assert r.returncode == 0, r.stderr
