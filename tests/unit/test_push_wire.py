"""``StdlibHTTP``, the push's transport: HTTP/1.1 framing, keep-alive, redirects, ``sendfile`` bodies,
early error answers, TLS, and the one-line errors the request loop makes of its failures.

The servers here are raw sockets driven by a handler per connection, so that each test says byte
for byte what the registry answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.errors import CorruptData, RegistryError
from dockyard.registry import auth
from dockyard.registry.client import (
    FileBody,
    RegistryClient,
    StdlibHTTP,
    WireError,
    _tls_context,
    transport_message,
)
from dockyard.registry.config import RegistryConfig
from tests.registry_peer_fixtures import make_cert

Handler = Callable[[socket.socket, "RawServer"], None]


class RawServer:
    """A loopback server calling ``handler(sock, server)`` on a thread for each connection."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self._accepted: list[socket.socket] = []
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.lsock.getsockname()[1]}"
        self.url = f"{'https' if tls else 'http'}://{self.host}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            self.connections += 1
            self._accepted.append(s)
            threading.Thread(target=self._run, args=(s,), daemon=True).start()

    def _run(self, s: socket.socket) -> None:
        try:
            if self.tls is not None:
                s = self.tls.wrap_socket(s, server_side=True)
            self.handler(s, self)
        except (OSError, ValueError):
            pass
        finally:
            s.close()

    def read_request(self, s: socket.socket, *, body: bool = True) -> tuple[str, str, dict[str, str], bytes] | None:
        """The next request on ``s`` (None at the end of the connection); ``body=False`` leaves it unread."""
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = s.recv(65536)
            if not data:
                return None
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        n = int(headers.get("content-length") or 0)
        while body and len(rest) < n:
            data = s.recv(min(1 << 20, n - len(rest)))
            if not data:
                break
            rest += data
        req = (method, target, headers, rest if body else b"")
        self.requests.append(req)
        return req

    def stop(self) -> None:
        """Stop listening and end the connections still open. ``close()`` alone is not enough: the accept
        thread, blocked in accept(2), keeps the socket listening, and a later test's server could then be
        answered by this one's handler."""
        for sock in (self.lsock, *self._accepted):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes accept(2) and recv(2) in the threads
            except OSError:
                pass
            sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def make(handler: Handler, tls: ssl.SSLContext | None = None) -> RawServer:
        servers.append(RawServer(handler, tls))
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None, *, length: bool = True) -> bytes:
    h = dict(headers or {})
    if length:
        h.setdefault("Content-Length", str(len(body)))
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in h.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def each_request(respond: Callable[[tuple[str, str, dict[str, str], bytes]], bytes]) -> Handler:
    """A keep-alive handler: ``respond(request)`` answers each request on the connection."""
    def handler(s: socket.socket, srv: RawServer) -> None:
        while (req := srv.read_request(s)) is not None:
            s.sendall(respond(req))
    return handler


def wire(**kw: float) -> StdlibHTTP:
    return StdlibHTTP(tls_context=_tls_context, **kw)


# ---- framing and keep-alive -----------------------------------------------------------------------
def test_framings_on_one_keep_alive_connection(serve: Callable[..., RawServer]) -> None:
    def respond(req: tuple[str, str, dict[str, str], bytes]) -> bytes:
        path = req[1]
        if path == "/length":
            return answer(200, b"hello", {"X-A": "1"})
        if path == "/chunked":
            return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Multi: a\r\nX-Multi: b\r\n\r\n"
                    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
        if path == "/head":
            return answer(200, headers={"Content-Length": "12345"}, length=False)
        if path == "/nocontent":
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        if path == "/interim":
            return b"HTTP/1.1 100 Continue\r\n\r\n" + answer(201, b"made")
        return answer(404)

    srv = serve(each_request(respond))
    w = wire()
    try:
        r = w.request("GET", srv.url + "/length", {})
        assert (r.status_code, r.read(), r.headers["x-a"], r.headers.get("X-A")) == (200, b"hello", "1", "1")
        r = w.request("GET", srv.url + "/chunked", {})
        assert (r.read(), r.headers.get("x-multi")) == (b"hello world", "a, b")
        r = w.request("HEAD", srv.url + "/head", {})
        assert (r.read(), r.headers.get("content-length")) == (b"", "12345")
        assert w.request("DELETE", srv.url + "/nocontent", {}).status_code == 204
        r = w.request("POST", srv.url + "/interim", {}, b"data")
        assert (r.status_code, r.read()) == (201, b"made")
        assert srv.connections == 1
    finally:
        w.close()
    methods = [(m, t, h.get("content-length"), b) for m, t, h, b in srv.requests]
    assert methods == [("GET", "/length", None, b""), ("GET", "/chunked", None, b""), ("HEAD", "/head", None, b""),
                       ("DELETE", "/nocontent", None, b""), ("POST", "/interim", "4", b"data")]
    h = srv.requests[0][2]
    assert h["host"] == srv.host and h["user-agent"].startswith("dockyard/") and h["accept-encoding"] == "identity"


def test_close_delimited_and_connection_close_answers_are_not_reused(serve: Callable[..., RawServer]) -> None:
    def handler(s: socket.socket, srv: RawServer) -> None:
        req = srv.read_request(s)
        assert req is not None
        if req[1] == "/old":
            s.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it, until the close")
        else:
            s.sendall(answer(200, b"bye", {"Connection": "close"}))

    srv = serve(handler)
    w = wire()
    try:
        assert w.request("GET", srv.url + "/old", {}).read() == b"all of it, until the close"
        assert w.request("GET", srv.url + "/close", {}).read() == b"bye"
        assert w.request("GET", srv.url + "/old", {}).read() == b"all of it, until the close"
        assert srv.connections == 3
    finally:
        w.close()


def test_a_pooled_connection_closed_by_the_server_is_replaced(serve: Callable[..., RawServer],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(s: socket.socket, srv: RawServer) -> None:  # one request per connection, then a silent close
        if srv.read_request(s) is not None:
            s.sendall(answer(200, b"ok"))

    srv = serve(handler)
    w = wire()
    try:
        assert w.request("GET", srv.url + "/a", {}).read() == b"ok"
        time.sleep(0.1)
        assert w.request("GET", srv.url + "/b", {}).read() == b"ok"  # seen closed in the pool
        # closed after the pool's check (a race): the request goes once more, on a new connection
        monkeypatch.setattr("dockyard.registry.client._Conn.idle_ok", lambda self: True)
        time.sleep(0.1)
        assert w.request("PUT", srv.url + "/c", {}, b"again").read() == b"ok"
        assert srv.connections == 3
    finally:
        w.close()


@pytest.mark.parametrize("raw", [b"HTTP/1.1 OK\r\n\r\n", b"garbage\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello",
                                 b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                                 b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", b""])
def test_malformed_or_cut_answers_are_transport_errors(serve: Callable[..., RawServer], raw: bytes) -> None:
    def handler(s: socket.socket, srv: RawServer) -> None:
        if srv.read_request(s) is not None:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)

    srv = serve(handler)
    w = wire()
    try:
        with pytest.raises(WireError) as ei:
            w.request("GET", srv.url + "/x", {})
        assert ei.value.kind == "reset"
        msg = transport_message(ei.value, srv.url + "/x")
        assert msg.startswith(f'Get "{srv.url}/x": connection reset by peer (') and "\n" not in msg
    finally:
        w.close()


def test_header_values_cannot_smuggle_lines(serve: Callable[..., RawServer]) -> None:
    srv = serve(each_request(lambda req: answer(200)))
    w = wire()
    try:
        with pytest.raises(WireError, match="invalid header"):
            w.request("GET", srv.url + "/", {"Authorization": "Bearer x\r\nX-Evil: 1"})
        assert srv.requests == []
        w.request("GET", srv.url + "/a b/ü?q=ü x&digest=sha256:ab", {})
        assert srv.requests[0][1] == "/a%20b/%C3%BC?q=%C3%BC%20x&digest=sha256:ab"
    finally:
        w.close()


# ---- redirects ------------------------------------------------------------------------------------
def test_redirects_follow_httpx_rules(serve: Callable[..., RawServer]) -> None:
    other = serve(each_request(lambda req: answer(200, b"", {"Content-Length": "42"}, length=False)
                               if req[0] == "HEAD" else answer(200, b"there")))

    def respond(req: tuple[str, str, dict[str, str], bytes]) -> bytes:
        if req[1] == "/away":
            return answer(307, headers={"Location": other.url + "/blob"})
        if req[1] == "/near":
            return answer(302, headers={"Location": "/here"})
        if req[1] == "/see-other":
            return answer(303, headers={"Location": "/here"})
        if req[1] == "/loop":
            return answer(302, headers={"Location": "/loop"})
        return answer(200, b"here")

    srv = serve(each_request(respond))
    w = wire()
    auth_h = {"Authorization": "Bearer secret"}
    try:
        r = w.request("HEAD", srv.url + "/away", dict(auth_h), follow=True)
        assert (r.status_code, r.headers["content-length"]) == (200, "42")
        assert "authorization" not in other.requests[-1][2]  # another origin: no credentials
        assert w.request("HEAD", srv.url + "/away", dict(auth_h)).status_code == 307  # not followed
        assert w.request("GET", srv.url + "/near", dict(auth_h), follow=True).read() == b"here"
        assert srv.requests[-1][2]["authorization"] == "Bearer secret"  # same origin: kept
        r = w.request("POST", srv.url + "/see-other", {"Content-Type": "x/y"}, b"body", follow=True)
        assert (r.request.method, r.read()) == ("GET", b"here")
        m, t, h, b = srv.requests[-1]
        assert (m, t, b, "content-length" in h, "content-type" in h) == ("GET", "/here", b"", False, False)
        with pytest.raises(WireError, match="redirects"):
            w.request("GET", srv.url + "/loop", {}, follow=True)
    finally:
        w.close()


# ---- bodies ---------------------------------------------------------------------------------------
def digest_server(serve: Callable[..., RawServer], *, early: int | None = None) -> RawServer:
    """Answers each PUT with the sha256 of its body (``early``: that status at once, body unread)."""
    def handler(s: socket.socket, srv: RawServer) -> None:
        while (req := srv.read_request(s, body=early is None)) is not None:
            if early is not None:
                msg = json.dumps({"errors": [{"code": "SIZE_INVALID", "message": "too big"}]}).encode()
                s.sendall(answer(early, msg, {"Connection": "close"}))
                s.shutdown(socket.SHUT_RDWR)
                return
            s.sendall(answer(201, b"", {"X-Digest": hashlib.sha256(req[3]).hexdigest(),
                                       "X-Length": str(len(req[3]))}))
    return serve(handler)


@pytest.mark.parametrize("size", [100, 3_000_000])
def test_file_body_goes_whole_and_in_place(serve: Callable[..., RawServer], tmp_path: Path, size: int) -> None:
    data = os.urandom(size + 1000)
    (tmp_path / "blob").write_bytes(data)
    srv = digest_server(serve)
    w = wire()
    seen: list[int] = []
    try:
        with open(tmp_path / "blob", "rb") as f:
            f.read(1000)  # the body starts where the file is
            r = w.request("PUT", srv.url + "/up", {}, FileBody(f, size, "sha256:x", seen.append))
            assert f.tell() == 1000 + size
        assert r.headers["x-digest"] == hashlib.sha256(data[1000:]).hexdigest()
        assert r.headers["x-length"] == str(size)
        assert seen == [size]  # one piece: the whole of a small body, one sendfile call up to 4 MiB
    finally:
        w.close()


def test_a_short_file_is_corrupt_data_and_its_connection_dropped(serve: Callable[..., RawServer],
                                                                 tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(os.urandom(200_000))
    srv = digest_server(serve)
    w = wire()
    try:
        with open(tmp_path / "blob", "rb") as f, pytest.raises(CorruptData, match="ended 50000 bytes early"):
            w.request("PUT", srv.url + "/up", {}, FileBody(f, 250_000, "sha256:x"))
        assert w._idle.get(("http", "127.0.0.1", int(srv.host.split(":")[1]))) in (None, [])
    finally:
        w.close()


def test_an_error_answered_before_the_body_is_taken_is_heard(serve: Callable[..., RawServer],
                                                             tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(os.urandom(32 << 20))
    srv = digest_server(serve, early=413)
    w = wire()
    try:
        with open(tmp_path / "blob", "rb") as f:
            r = w.request("PUT", srv.url + "/up", {}, FileBody(f, 32 << 20, "sha256:x"))
        assert r.status_code == 413
        assert json.loads(r.read())["errors"][0]["code"] == "SIZE_INVALID"
    finally:
        w.close()


# ---- failures through the request loop --------------------------------------------------------------
def client(host: str, **kw: object) -> RegistryClient:
    return RegistryClient(host, config=RegistryConfig(retries=1), credentials=auth.Credentials(),
                          stdlib_http=True, **kw)  # type: ignore[arg-type]


def test_refused_unknown_host_and_timeout_in_dockers_words(serve: Callable[..., RawServer],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dockyard.registry.client._sleep_backoff", lambda attempt: None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with client(f"127.0.0.1:{port}") as c, pytest.raises(RegistryError) as ei:
        c.blob_exists("a/b", "sha256:" + "0" * 64, push=True)
    assert str(ei.value) == (f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: '
                             "connect: connection refused")
    with client("nosuchhost.invalid:5000", base_url="http://nosuchhost.invalid:5000") as c, \
            pytest.raises(RegistryError, match="no such host"):
        c.ping()

    def silent(s: socket.socket, srv: RawServer) -> None:
        srv.read_request(s)
        time.sleep(2)

    srv = serve(silent)
    with client(srv.host, timeout=0.3) as c, pytest.raises(RegistryError) as ei:
        c.ping()
    assert str(ei.value) == f'Get "{srv.url}/v2/": net/http: timeout awaiting response'


def test_server_errors_are_retried_and_worded_from_the_json(serve: Callable[..., RawServer],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dockyard.registry.client._sleep_backoff", lambda attempt: None)
    calls: list[str] = []

    def respond(req: tuple[str, str, dict[str, str], bytes]) -> bytes:
        calls.append(req[0])
        if req[1] == "/v2/":
            return answer(200)
        err = json.dumps({"errors": [{"code": "BLOB_UNKNOWN", "message": "nope"}]}).encode()
        return answer(503 if len(calls) < 3 else 400, err)

    srv = serve(each_request(respond))
    with client(srv.host) as c, pytest.raises(RegistryError) as ei:
        c.mount_blob("a/b", "sha256:" + "0" * 64, "c/d")
    assert str(ei.value) == f"a/b: mount of sha256:{'0' * 64} from c/d: blob unknown: nope"
    assert calls == ["GET", "POST", "POST"]


def test_a_proxy_in_the_environment_leaves_every_request_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    with client("reg.example") as c:
        assert c.wire is None
    monkeypatch.delenv("https_proxy")
    with client("reg.example") as c:
        assert c.wire is not None
        assert c._http is None  # not made until something needs it


# ---- TLS ------------------------------------------------------------------------------------------
@pytest.fixture
def tls_pair(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    cert, key = make_cert(tmp_path, "localhost", server=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx, cert


def test_tls_is_verified_and_bodies_go_over_it(serve: Callable[..., RawServer], tls_pair: tuple[ssl.SSLContext, Path],
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dockyard.registry.client._sleep_backoff", lambda attempt: None)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    ctx, cert = tls_pair

    def handler(s: socket.socket, srv: RawServer) -> None:
        while (req := srv.read_request(s)) is not None:
            s.sendall(answer(200 if req[0] == "GET" else 201, b"{}",
                             {"X-Digest": hashlib.sha256(req[3]).hexdigest()}))

    srv = serve(handler, tls=ctx)
    monkeypatch.setenv("SSL_CERT_FILE", "/dev/null")  # trusts nothing
    with client(srv.host, base_url=srv.url) as c, pytest.raises(RegistryError) as ei:
        c.ping()
    assert str(ei.value).startswith(f'Get "{srv.url}/v2/": tls: failed to verify certificate: ')
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    data = os.urandom(1_500_000)
    (tmp_path / "blob").write_bytes(data)
    with client(srv.host, base_url=srv.url) as c:
        assert c.ping().status_code == 200
        assert c.wire is not None
        with open(tmp_path / "blob", "rb") as f:
            r = c.wire.request("PUT", srv.url + "/up", {}, FileBody(f, len(data), "sha256:x"))
        assert r.headers["x-digest"] == hashlib.sha256(data).hexdigest()
    def go_http(s: socket.socket, srv: RawServer) -> None:  # Go's answer to a TLS handshake on plain HTTP
        s.recv(65536)
        s.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")

    plain = serve(go_http)
    with client(plain.host, base_url=f"https://{plain.host}") as c, \
            pytest.raises(RegistryError, match="server gave HTTP response to HTTPS client"):
        c.ping()
