"""``StdlibHTTP`` carrying a pull: streamed bodies (each framing, read as they arrive, the connection
pooled again after), cut bodies, blob redirects to another host without the credentials, ``Range``
resume through ``BlobReader``, manifests with their ``Accept``, bearer tokens fetched without httpx,
and several threads on one client.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_push_wire import RawServer, answer, each_request, serve, wire  # noqa: E402

from dockyard.registry.client import (  # noqa: E402
    MANIFEST_ACCEPT,
    RegistryClient,
    WireError,
    WireStream,
)
from dockyard.registry.config import RegistryConfig  # noqa: E402

__all__ = ["serve"]

Req = tuple[str, str, dict[str, str], bytes]


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\nX-Trailer: t\r\n\r\n"


# ---- streamed bodies --------------------------------------------------------------------------------
def test_streamed_framings_arrive_in_pieces_and_the_connection_is_reused(serve: Callable[..., RawServer]) -> None:
    go_on = threading.Event()

    def handler(s: socket.socket, srv: RawServer) -> None:
        while (req := srv.read_request(s)) is not None:
            if req[1] == "/length":
                s.sendall(answer(200, b"", {"Content-Length": "10"}, length=False) + b"first")
                go_on.wait(10)
                s.sendall(b"-last")
            elif req[1] == "/chunked":
                s.sendall(answer(200, b"", {"Transfer-Encoding": "chunked"}, length=False)
                          + chunked(b"ab", b"cdef")[:9])  # "2\r\nab\r\n" and a part of the next
                go_on.wait(10)
                s.sendall(chunked(b"ab", b"cdef")[9:])
            else:
                s.sendall(answer(200, b"", {"Connection": "close"}, length=False) + b"to the end")
                s.shutdown(socket.SHUT_WR)
                return

    srv = serve(handler)
    w = wire()
    try:
        r = w.request("GET", srv.url + "/length", {}, stream=True)
        assert isinstance(r, WireStream)
        it = r.iter_raw()
        assert next(it) == b"first"  # before the rest was sent
        go_on.set()
        assert b"".join(it) == b"-last"
        go_on.clear()
        r = w.request("GET", srv.url + "/chunked", {}, stream=True)
        it = r.iter_raw()
        assert next(it) == b"ab"
        go_on.set()
        assert b"".join(it) == b"cdef"
        assert srv.connections == 1  # both on one keep-alive connection
        assert w.request("GET", srv.url + "/close", {}, stream=True).read() == b"to the end"
        assert srv.connections == 1
        assert w.request("GET", srv.url + "/length", {}, stream=True).read() == b"first-last"
        assert srv.connections == 2  # the close-delimited answer's connection was not pooled
    finally:
        w.close()


def test_closing_a_stream_early_drops_its_connection_unless_all_is_here(serve: Callable[..., RawServer]) -> None:
    big = os.urandom(3_000_000)
    srv = serve(each_request(lambda req: answer(200, big if req[1] == "/big" else b"small")))
    w = wire()
    try:
        r = w.request("GET", srv.url + "/small", {}, stream=True)
        r.close()  # its 5 bytes came with the head: the connection goes on
        r = w.request("GET", srv.url + "/big", {}, stream=True)
        assert len(next(r.iter_raw())) < len(big)
        r.close()
        assert srv.connections == 1
        assert w.request("GET", srv.url + "/small", {}, stream=True).read() == b"small"
        assert srv.connections == 2
        empty = w.request("HEAD", srv.url + "/big", {}, stream=True)  # no body: an answer read whole
        assert (empty.status_code, list(empty.iter_raw())) == (200, [])
    finally:
        w.close()


@pytest.mark.parametrize("te", [False, True])
def test_a_cut_body_gives_what_came_then_a_reset(serve: Callable[..., RawServer], te: bool) -> None:
    def handler(s: socket.socket, srv: RawServer) -> None:
        srv.read_request(s)
        if te:
            s.sendall(answer(200, b"", {"Transfer-Encoding": "chunked"}, length=False) + b"a\r\n01234")
        else:
            s.sendall(answer(200, b"", {"Content-Length": "10"}, length=False) + b"01234")
        s.shutdown(socket.SHUT_WR)

    srv = serve(handler)
    w = wire()
    got = b""
    with pytest.raises(WireError) as ei:
        for data in w.request("GET", srv.url + "/x", {}, stream=True).iter_raw():
            got += data
    assert got == b"01234" and ei.value.kind == "reset"
    w.close()


def test_gzip_encoded_answers_are_decoded_by_iter_bytes(serve: Callable[..., RawServer]) -> None:
    body = json.dumps({"schemaVersion": 2}).encode()
    srv = serve(each_request(lambda req: answer(200, gzip.compress(body), {"Content-Encoding": "gzip"})))
    w = wire()
    try:
        assert b"".join(w.request("GET", srv.url + "/m", {}, stream=True).iter_bytes()) == body
    finally:
        w.close()


# ---- a registry: manifests, blobs, redirects, resume, tokens, threads --------------------------------
class Registry:
    """A registry answering with ``Basic`` or ``Bearer`` auth, whose blob GETs redirect to ``storage``,
    which cuts the first answer of each blob at ``cut`` bytes and honours ``Range``.
    """

    def __init__(self, serve: Callable[..., RawServer], blobs: dict[str, bytes], *, bearer: bool = False,
                 cut: int | None = None) -> None:
        self.blobs = blobs
        self.cut = cut
        self.cut_done: set[str] = set()
        self.lock = threading.Lock()
        self.manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                    "config": {}, "layers": []}).encode()
        self.storage = serve(self._storage)
        self.token_requests: list[Req] = []
        self.tokens = serve(each_request(self._token))
        self.reg = serve(each_request(self._registry))
        self.challenge = (f'Bearer realm="{self.tokens.url}/token?x=1",service="reg"' if bearer
                          else 'Basic realm="reg"')
        self.authz = "Bearer T" if bearer else None

    def _token(self, req: Req) -> bytes:
        self.token_requests.append(req)
        return answer(200, json.dumps({"token": "T", "expires_in": 300}).encode())

    def _registry(self, req: Req) -> bytes:
        method, target, headers, _ = req
        authz = headers.get("authorization")
        if target == "/v2/" or not authz or (self.authz and authz != self.authz):
            return answer(401, b"{}", {"WWW-Authenticate": self.challenge})
        if "/manifests/" in target:
            assert headers.get("accept") == MANIFEST_ACCEPT
            h = {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                 "Docker-Content-Digest": "sha256:" + hashlib.sha256(self.manifest).hexdigest()}
            if method == "HEAD":
                return answer(200, b"", {**h, "Content-Length": str(len(self.manifest))}, length=False)
            return answer(200, b"", {**h, "Transfer-Encoding": "chunked"}, length=False) + chunked(self.manifest)
        digest = target.rsplit("/", 1)[-1]
        return answer(307, b"<a>elsewhere</a>", {"Location": f"{self.storage.url}/store/{digest}?sig=a%2Fb"})

    def _storage(self, s: socket.socket, srv: RawServer) -> None:
        while (req := srv.read_request(s)) is not None:
            digest = req[1].split("?")[0].rsplit("/", 1)[-1]
            data = self.blobs[digest]
            rng = req[2].get("range")
            if rng:
                start = int(rng.removeprefix("bytes=").rstrip("-"))
                s.sendall(answer(206, data[start:], {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}))
                continue
            with self.lock:
                cut = self.cut is not None and digest not in self.cut_done
                self.cut_done.add(digest)
            if cut:
                assert self.cut is not None
                s.sendall(answer(200, b"", {"Content-Length": str(len(data))}, length=False) + data[:self.cut])
                return
            s.sendall(answer(200, data))


def blobs_of(*sizes: int) -> dict[str, bytes]:
    out = {}
    for n in sizes:
        data = os.urandom(n)
        out["sha256:" + hashlib.sha256(data).hexdigest()] = data
    return out


def client(reg: Registry, **kw: object) -> RegistryClient:
    from dockyard.registry.auth import Credentials

    return RegistryClient("reg.test", config=RegistryConfig(retries=2), base_url=reg.reg.url,
                          credentials=Credentials("u", "p"), stdlib_http=True, **kw)  # type: ignore[arg-type]


@pytest.fixture
def no_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: RegistryClient) -> None:
        raise AssertionError("the httpx client was made")

    monkeypatch.setattr(RegistryClient, "_make_http", refuse)
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(k, raising=False)


@pytest.mark.parametrize("bearer", [False, True])
def test_a_blob_redirected_and_cut_resumes_with_range_without_credentials_elsewhere(
        serve: Callable[..., RawServer], no_httpx: None, bearer: bool) -> None:
    blobs = blobs_of(1_500_000)
    reg = Registry(serve, blobs, bearer=bearer, cut=700_000)
    (digest, data), = blobs.items()
    counted = [0]

    def on_bytes(n: int) -> None:
        counted[0] += n

    with client(reg) as c:
        reader = c.open_blob("a/b", digest, len(data), on_bytes=on_bytes)
        got = reader.read()
        reader.close()
        assert got == data and counted[0] == len(data) and reader.resumes == 1
        assert [r[2].get("range") for r in reg.storage.requests] == [None, "bytes=700000-"]
        assert all("authorization" not in r[2] for r in reg.storage.requests)  # another host: none sent
        assert all(r[1].endswith("?sig=a%2Fb") for r in reg.storage.requests)  # the signed URL as it was
        blob_gets = [r for r in reg.reg.requests if "/blobs/" in r[1]]
        assert blob_gets and all(r[2]["authorization"] == (reg.authz or r[2]["authorization"])
                                 for r in blob_gets)
        assert blob_gets[-1][2]["authorization"].startswith("Bearer " if bearer else "Basic ")
    if bearer:
        (m, t, h, _), = reg.token_requests  # one token, fetched by StdlibHTTP (no httpx client made)
        assert m == "GET" and t.startswith("/token?x=1&service=reg&scope=repository%3Aa%2Fb%3Apull")
        assert h["authorization"].startswith("Basic ")


def test_manifests_by_head_and_chunked_get(serve: Callable[..., RawServer], no_httpx: None) -> None:
    reg = Registry(serve, {})
    with client(reg) as c:
        digest, mt, size = c.head_manifest("a/b", "v1")  # type: ignore[misc]
        body, mt2, digest2 = c.get_manifest("a/b", "v1")
    assert body == reg.manifest and digest == digest2 == "sha256:" + hashlib.sha256(body).hexdigest()
    assert mt == mt2 == "application/vnd.oci.image.manifest.v1+json" and size == len(body)


def test_threads_share_one_client(serve: Callable[..., RawServer], no_httpx: None) -> None:
    blobs = blobs_of(*(200_000 + 1000 * i for i in range(12)))
    reg = Registry(serve, blobs)
    errors: list[BaseException] = []
    with client(reg) as c:
        def fetch(d: str) -> None:
            try:
                for _ in range(3):
                    assert c.get_blob_bytes("a/b", d) == blobs[d]
            except BaseException as e:  # noqa: BLE001  # reported below
                errors.append(e)

        threads = [threading.Thread(target=fetch, args=(d,)) for d in blobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors
    assert reg.storage.connections <= len(blobs) < len(reg.storage.requests)  # kept alive and reused


def test_a_proxy_leaves_the_pull_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    with RegistryClient("reg.test", base_url="https://reg.test", stdlib_http=True) as c:
        assert c.wire is None and c.auth._wire is None
