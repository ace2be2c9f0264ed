"""A client for the distribution API (OCI distribution spec / Docker registry v2).

It knows registries and HTTP, nothing of the local store: callers hand it repository names,
references and digests, and get bytes, streams and answers back.

* Authentication is challenge driven: the first request (``GET /v2/``) learns the registry's
  ``WWW-Authenticate`` challenge; every request then carries Basic credentials or a bearer token
  for its scope (``repository:NAME:pull`` or ``pull,push``), fetched and cached by ``auth``.
* Requests that failed for a connection error, a 5xx or a 429 are retried with exponential backoff
  (``DOCKYARD_REGISTRY_RETRIES``, default 4).
* Blobs are streamed (``BlobReader``): a connection broken in the middle of a body is resumed with
  ``Range: bytes=N-``, so the bytes already received are neither fetched nor hashed twice.
* Uploads: ``HEAD`` to skip what the registry has, cross-repository mount (``?mount=&from=``),
  monolithic ``PUT`` for small blobs and ``PATCH`` chunks (``Content-Range``) for large ones.

``httpx`` is imported when a client first needs it, never at module import.

Two transports carry the requests, with one request loop (auth, retries, errors) over both:

* ``httpx`` (the project's HTTP client) for logins and listings, and for everything when a proxy
  is set in the environment;
* ``StdlibHTTP`` for pushes and pulls (``RegistryClient(..., stdlib_http=True)``): plain sockets, a
  small HTTP/1.1 exchange with keep-alive, blob bodies sent with ``sendfile`` straight from the
  content store, and blob bodies received as they arrive (``WireStream``) into the pull's
  decompress-and-unpack pipeline. Why: importing httpx (with httpcore, h11, email,
  urllib.request...) and building its client takes about 60 ms, a fifth of pushing or pulling a
  50 MB layer to or from a local registry, where ``skopeo`` starts in 15 ms; and ``sendfile``
  spares the CPU two copies of every byte, which the registry on the same machine can use. Bearer
  tokens are fetched by ``StdlibHTTP`` too (``auth``), so such a push or pull never imports httpx;
  with a proxy in the environment httpx carries every request.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import threading
import time
from urllib.parse import quote, urlencode, urljoin, urlsplit

from dockyard import __version__
from dockyard.errors import AuthError, CorruptData, RegistryError
from dockyard.image.oci import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from dockyard.registry.auth import Authenticator, Credentials, get_credentials
from dockyard.registry.config import DOCKER_HUB_DOMAIN, RegistryConfig

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterator
    from typing import Any, BinaryIO, Protocol

    import httpx

    class Response(Protocol):
        """What the request loop and its callers read of an answer: an ``httpx.Response`` or a ``WireResponse``."""

        @property
        def status_code(self) -> int: ...
        @property
        def reason_phrase(self) -> str: ...
        @property
        def headers(self) -> Any: ...
        @property
        def request(self) -> Any: ...
        def read(self) -> bytes: ...
        def close(self) -> None: ...
        def json(self, **kwargs: Any) -> Any: ...

    class StreamResponse(Response, Protocol):
        """An answer whose body the caller reads: ``httpx.Response`` (``stream=True``) or ``WireStream``."""

        def iter_raw(self) -> Iterator[bytes]: ...
        def iter_bytes(self) -> Iterator[bytes]: ...


MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
MAX_MANIFEST_SIZE = 4 << 20  # as containerd and distribution limit them
MAX_CONFIG_SIZE = 32 << 20
USER_AGENT = f"dockyard/{__version__}"
_CHUNK = 1 << 20
_SENDFILE_PIECE = 4 << 20  # one sendfile call (progress is reported between them)
_INLINE_BODY = 64 << 10  # a FileBody up to this size goes out in one write with the request head
_RECV = 64 << 10
_STREAM_RECV = 256 << 10  # one recv of a streamed body (a layer): fewer, larger pieces than httpcore's 64 KiB
_MAX_HEADER = 64 << 10
_MAX_BODY = 32 << 20
_MAX_IDLE = 16  # keep-alive connections kept per host, as the httpx client's limits
_MAX_REDIRECTS = 20  # httpx's default
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"  # kept as they are in a request target; the rest percent-encoded


_import_lock = threading.Lock()
_tls_class: type | None = None


def _import_httpx() -> None:
    """``import httpx``, without the command-line client it imports for ``httpx.main``.

    ``httpx/__init__`` does ``from ._main import main``, which loads click, pygments and rich (when
    installed): a tenth of a push's start-up, for a function Dockyard never calls. A stand-in module
    answers that import; it is taken out of ``sys.modules`` right after, and ``httpx.main`` imports
    the real one when called, so ``httpx`` works as usual afterwards.
    """
    if "httpx" in sys.modules:
        return
    with _import_lock:
        if "httpx" in sys.modules or "httpx._main" in sys.modules:
            import httpx  # noqa: F401
            return

        def main(*args: Any, **kwargs: Any) -> Any:
            try:
                from httpx._main import main as real
            except ImportError:  # what httpx/__init__ defines then
                print("The httpx command line client could not run because the required dependencies were "
                      "not installed.\nMake sure you've installed everything with: pip install 'httpx[cli]'")
                sys.exit(1)
            return real(*args, **kwargs)

        import types

        stub = types.ModuleType("httpx._main")
        stub.main = main  # type: ignore[attr-defined]
        sys.modules["httpx._main"] = stub
        try:
            import httpx  # noqa: F401
        finally:
            if sys.modules.get("httpx._main") is stub:
                del sys.modules["httpx._main"]


def _tls_context() -> ssl.SSLContext:
    """What httpx's ``verify=True`` builds, except that the CA certificates are loaded at the first TLS
    handshake instead of at once: loading certifi's bundle is a third of a client's start-up, and a
    registry reached over plain HTTP (loopback, insecure registries) never needs it.
    """
    global _tls_class
    import ssl

    if _tls_class is None:
        class LazyCAContext(ssl.SSLContext):
            _ca_loaded = False
            _ca_lock = threading.Lock()

            def _load_ca(self) -> None:
                if self._ca_loaded:
                    return
                with self._ca_lock:
                    if self._ca_loaded:
                        return
                    # as httpx.create_ssl_context(verify=True, trust_env=True) and
                    # ssl.create_default_context(cafile/capath=...)
                    if os.environ.get("SSL_CERT_FILE"):
                        self.load_verify_locations(cafile=os.environ["SSL_CERT_FILE"])
                    elif os.environ.get("SSL_CERT_DIR"):
                        self.load_verify_locations(capath=os.environ["SSL_CERT_DIR"])
                    else:
                        import certifi

                        self.load_verify_locations(cafile=certifi.where())
                    self._ca_loaded = True

            def wrap_socket(self, *args: Any, **kwargs: Any) -> Any:
                self._load_ca()
                return super().wrap_socket(*args, **kwargs)

            def wrap_bio(self, *args: Any, **kwargs: Any) -> Any:
                self._load_ca()
                return super().wrap_bio(*args, **kwargs)

        _tls_class = LazyCAContext
    ctx: ssl.SSLContext = _tls_class(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment:
        ctx.keylog_filename = keylog
    return ctx


class RegistryNotFound(RegistryError):
    """The registry answered 404 (a manifest, blob, tag or repository it does not have)."""


def _go_method(method: str) -> str:
    return method[:1].upper() + method[1:].lower()


def _failure_kind(e: Exception) -> str:
    """connect, connect_timeout, timeout, reset or other: what failed, for either transport."""
    if isinstance(e, WireError):
        return e.kind
    if not type(e).__module__.startswith(("httpx", "httpcore")):
        return "other"
    import httpx

    if isinstance(e, httpx.ConnectError):
        return "connect"
    if isinstance(e, httpx.ConnectTimeout):
        return "connect_timeout"
    if isinstance(e, httpx.TimeoutException):
        return "timeout"
    if isinstance(e, httpx.RemoteProtocolError | httpx.ReadError):
        return "reset"
    return "other"


def transport_message(e: Exception, url: str, method: str = "GET") -> str:
    """Docker's words for a network failure: ``Get "URL": dial tcp HOST:PORT: connect: ...``."""
    parts = urlsplit(url)
    hostport = parts.netloc.rsplit("@", 1)[-1]
    if ":" not in hostport.rsplit("]", 1)[-1]:
        hostport += ":443" if parts.scheme == "https" else ":80"
    text = str(e) or type(e).__name__
    low = text.lower()
    prefix = f'{_go_method(method)} "{url}"'
    kind = _failure_kind(e)
    if kind == "connect":
        if "refused" in low:
            return f"{prefix}: dial tcp {hostport}: connect: connection refused"
        if "name or service not known" in low or "nodename nor servname" in low or \
                "temporary failure in name resolution" in low or "no address" in low:
            return f"{prefix}: dial tcp: lookup {parts.hostname}: no such host"
        if "wrong_version_number" in low or "record layer failure" in low or "unknown protocol" in low:
            return f"{prefix}: http: server gave HTTP response to HTTPS client"
        if "certificate" in low:
            return f"{prefix}: tls: failed to verify certificate: {text}"
        if "unreachable" in low:
            return f"{prefix}: dial tcp {hostport}: connect: network is unreachable"
    if kind == "connect_timeout":
        return f"{prefix}: dial tcp {hostport}: i/o timeout"
    if kind == "timeout":
        return f"{prefix}: net/http: timeout awaiting response"
    if kind == "reset":
        return f"{prefix}: connection reset by peer ({text})"
    return f"{prefix}: {text}"


def _error_text(r: Response) -> str:
    """``code: message`` from a registry's JSON error body (Docker's errcode wording)."""
    try:
        body = r.read()
        d = json.loads(body) if body else {}
        errs = d.get("errors") if isinstance(d, dict) else None
    except (ValueError, UnicodeDecodeError):
        errs = None
    if errs and isinstance(errs, list) and isinstance(errs[0], dict):
        e = errs[0]
        code = str(e.get("code") or "unknown").lower().replace("_", " ")
        msg = str(e.get("message") or "")
        return f"{code}: {msg}" if msg else code
    phrase = r.reason_phrase or ""
    return f"received unexpected HTTP status: {r.status_code} {phrase}".rstrip()


def _sleep_backoff(attempt: int) -> None:
    import random  # here: a push that needs no retry has no other use for it

    time.sleep(min(8.0, 0.2 * (2 ** attempt)) * (0.75 + random.random() / 2))


# ---- the stdlib transport ------------------------------------------------------------------------
class WireError(Exception):
    """A request that failed below HTTP, on either transport: ``kind`` is connect, connect_timeout,
    timeout, reset or other (what ``transport_message`` words); the text is the cause's.
    """

    def __init__(self, kind: str, cause: BaseException | str) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.kind = kind


class FileBody:
    """A request body: the next ``size`` bytes of an open file (a blob of the content store).

    ``StdlibHTTP`` sends it with ``sendfile`` on plain HTTP (with a read loop over TLS); httpx
    iterates it in 1 MiB pieces. A file shorter than ``size`` is ``CorruptData``; ``on_bytes(n)``
    follows the bytes sent.
    """

    def __init__(self, f: BinaryIO, size: int, digest: str, on_bytes: Callable[[int], None] | None = None) -> None:
        self.f = f
        self.size = size
        self.digest = digest
        self.on_bytes = on_bytes

    def _short(self, left: int) -> CorruptData:
        return CorruptData(f"blob {self.digest}: the local file ended {left} bytes early")

    def __iter__(self) -> Iterator[bytes]:
        left = self.size
        while left > 0:
            data = self.f.read(min(_CHUNK, left))
            if not data:
                raise self._short(left)
            left -= len(data)
            if self.on_bytes:
                self.on_bytes(len(data))
            yield data

    def send(self, sock: socket.socket, plain: bool) -> None:
        """Write the body to ``sock``: ``sendfile`` from the page cache when ``plain`` (no TLS)."""
        left = self.size
        try:
            fd_ok = plain and self.f.fileno() >= 0
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
            fd_ok = False
        if not fd_ok:
            for data in self:
                sock.sendall(data)
            return
        offset = self.f.tell()
        while left > 0:
            # in pieces, for progress; socket.sendfile leaves the file at offset + sent
            sent = sock.sendfile(self.f, offset, min(_SENDFILE_PIECE, left))
            if sent <= 0:
                raise self._short(left)
            offset += sent
            left -= sent
            if self.on_bytes:
                self.on_bytes(sent)


class _Headers:
    """Response headers by case-insensitive name; repeated ones joined with ``, `` (as httpx)."""

    def __init__(self) -> None:
        self._d: dict[str, str] = {}

    def add(self, name: str, value: str) -> None:
        k = name.lower()
        self._d[k] = f"{self._d[k]}, {value}" if k in self._d else value

    def get(self, name: str, default: Any = None) -> Any:
        return self._d.get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._d[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._d


class WireRequest:
    """What an answer says of its request (``response.request.method``, as httpx's)."""

    __slots__ = ("method", "url")

    def __init__(self, method: str, url: str) -> None:
        self.method = method
        self.url = url


class WireResponse:
    """A complete answer of ``StdlibHTTP`` (the body is read before it is returned)."""

    def __init__(self, request: WireRequest, status: int, reason: str, headers: _Headers, content: bytes) -> None:
        self.request = request
        self.status_code = status
        self.reason_phrase = reason
        self.headers = headers
        self.content = content

    def read(self) -> bytes:
        return self.content

    def close(self) -> None:
        pass

    def json(self, **kwargs: Any) -> Any:
        return json.loads(self.read(), **kwargs)

    def iter_raw(self) -> Iterator[bytes]:
        if self.content:
            yield self.content

    def iter_bytes(self) -> Iterator[bytes]:
        return self.iter_raw()


class WireStream(WireResponse):
    """An answer of ``StdlibHTTP`` whose body is read as it arrives (``request(..., stream=True)``).

    It holds its connection until the body is read to its end (the connection then goes back to the
    pool, when it may) or until ``close()`` (which drops a connection with unread bytes, as httpx
    does, unless they are all received already). A body cut short raises ``WireError("reset")`` after
    every byte that arrived has been given out.
    """

    def __init__(self, request: WireRequest, status: int, reason: str, headers: _Headers, wire: StdlibHTTP,
                 key: tuple[str, str, int], conn: _Conn, mode: str, length: int, keep: bool) -> None:
        super().__init__(request, status, reason, headers, b"")
        self._wire = wire
        self._key = key
        self._conn: _Conn | None = conn
        self._mode = mode  # "length" (``_left`` bytes), "chunked" (``_left``: of this chunk) or "close"
        self._left = length
        self._keep = keep
        self._done = False
        self._consumed = False  # read() or iter_*() has begun

    def _finish(self) -> None:
        conn, self._conn = self._conn, None
        self._done = True
        if conn is not None:
            if self._keep:
                self._wire._give(self._key, conn)
            else:
                conn.close()

    def _abort(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _from(self, conn: _Conn, n: int) -> bytes:
        """Up to ``n`` bytes (n > 0): what is buffered, else one ``recv``; b"" at the end of the stream."""
        if conn.buf:
            data = bytes(conn.buf[:n])
            del conn.buf[:len(data)]
            return data
        return conn.sock.recv(min(n, _STREAM_RECV))

    def _next(self) -> bytes:
        """The next piece of the body as received; b"" at its end."""
        conn = self._conn
        if self._done or conn is None:
            return b""
        try:
            if self._mode == "close":
                data = self._from(conn, _STREAM_RECV)
                if not data:
                    self._finish()
                return data
            if self._mode == "chunked" and self._left == 0:
                line = conn.line().split(b";", 1)[0].strip()
                try:
                    n = int(line, 16)
                except ValueError:
                    n = -1
                if n < 0:
                    raise WireError("reset", f"malformed chunk size {line[:40]!r}")
                if n == 0:
                    while conn.line():  # trailers
                        pass
                    self._finish()
                    return b""
                self._left = n
            data = self._from(conn, self._left)
            if not data:
                raise WireError("reset", f"the connection closed {self._left} bytes before the end of the answer")
            self._left -= len(data)
            if self._left == 0:
                if self._mode == "length":
                    self._finish()
                elif conn.exactly(2) != b"\r\n":
                    raise WireError("reset", "malformed chunk: no CRLF after the data")
            return data
        except WireError:
            self._abort()
            raise
        except EOFError:
            self._abort()
            raise WireError("reset", "the connection closed before the end of the answer")
        except TimeoutError as e:
            self._abort()
            raise WireError("timeout", e)
        except OSError as e:
            self._abort()
            raise WireError("reset", e)

    def iter_raw(self) -> Iterator[bytes]:
        """The body's bytes as they arrive (no content decoding)."""
        self._consumed = True
        while data := self._next():
            yield data

    def iter_bytes(self) -> Iterator[bytes]:
        """The body, decoded from a gzip or deflate ``Content-Encoding`` as httpx would (none is asked for)."""
        coding = (self.headers.get("content-encoding") or "").strip().lower()
        if coding not in ("gzip", "deflate", "x-gzip"):
            yield from self.iter_raw()
            return
        import zlib

        d = zlib.decompressobj(zlib.MAX_WBITS | 16 if coding != "deflate" else zlib.MAX_WBITS)
        try:
            for data in self.iter_raw():
                if out := d.decompress(data):
                    yield out
            if out := d.flush():
                yield out
        except zlib.error as e:
            raise WireError("other", f"the answer's {coding} encoding is damaged: {e}")

    def read(self) -> bytes:
        if not self._consumed:
            self._consumed = True
            parts: list[bytes] = []
            total = 0
            while data := self._next():
                total += len(data)
                if total > _MAX_BODY:
                    self._abort()
                    raise WireError("other", f"the registry's answer is larger than {_MAX_BODY} bytes")
                parts.append(data)
            self.content = b"".join(parts)
        return self.content

    def close(self) -> None:
        conn = self._conn
        if conn is None:
            return
        if self._mode == "length" and len(conn.buf) >= self._left:  # all here: the connection can go on
            del conn.buf[:self._left]
            self._left = 0
            self._finish()
        else:
            self._abort()

    def __del__(self) -> None:
        if self._conn is not None:
            self._conn.close()


class _Stale(Exception):
    """A pooled connection that the server had closed: the request may go again on a new one."""


class _Conn:
    """One connection: its socket and the bytes received but not yet parsed."""

    __slots__ = ("sock", "plain", "buf", "received")

    def __init__(self, sock: socket.socket, plain: bool) -> None:
        self.sock = sock
        self.plain = plain
        self.buf = bytearray()
        self.received = 0

    def _fill(self) -> bool:
        data = self.sock.recv(_RECV)
        self.buf += data
        self.received += len(data)
        return bool(data)

    def line(self) -> bytes:
        """The next line, without its CRLF (or LF); b"" at a blank line; raises at the end of the stream."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                out = bytes(self.buf[:i]).rstrip(b"\r")
                del self.buf[:i + 1]
                return out
            if len(self.buf) > _MAX_HEADER:
                raise WireError("reset", "the registry's answer has a header line over 64 KiB")
            start = len(self.buf)
            if not self._fill():
                raise EOFError

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise WireError("reset", f"the connection closed {n - len(self.buf)} bytes before the end "
                                         "of the answer")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def to_end(self, limit: int) -> bytes:
        while self._fill():
            if len(self.buf) > limit:
                raise WireError("other", f"the registry's answer is larger than {limit} bytes")
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def idle_ok(self) -> bool:
        """Still usable after waiting in the pool: nothing to read (no close, no stray bytes)?"""
        if self.buf or (not self.plain and self.sock.pending()):  # type: ignore[attr-defined]  # an SSLSocket
            return False
        try:
            p = select.poll()
            p.register(self.sock, select.POLLIN | select.POLLPRI)
            return not p.poll(0)
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class StdlibHTTP:
    """HTTP/1.1 over the standard library's sockets, for the registry API requests of a push or pull.

    Why not httpx: see the module's docstring (start-up time, and ``sendfile`` for blob bodies).
    It does what pushes and pulls need of httpx and no more, and answers the same way to the request loop
    (``RegistryClient._send``), which keeps auth, retries and error words for both:

    * keep-alive connections per (scheme, host, port), a pooled one checked for a close or stray
      bytes before it is used again (as httpcore does); TLS with the client's verifying context;
    * request bodies of ``bytes`` or ``FileBody`` (``sendfile`` without TLS), always with a
      ``Content-Length``; a server that answers and closes before taking the whole body (an error
      page) is heard: the answer is read before the broken write is reported;
    * answers framed by ``Content-Length``, ``chunked`` or the end of the connection, no body for
      ``HEAD``, 204 and 304, interim 1xx answers skipped; bodies are read whole (API answers are
      small, and capped at 32 MiB), or with ``stream`` given out as they arrive (``WireStream``: blobs,
      manifests), the connection held until the end of the body; no content codings are asked for
      (``Accept-Encoding: identity``; ``iter_bytes`` decodes gzip or deflate anyway, as httpx would);
    * thread safe: each request has a connection of its own, taken from or given back to the pool
      under a lock;
    * redirects followed when asked (``follow``: blob ``HEAD`` and ``GET``), at most 20, with httpx's rules: a
      303 (or a 301/302 to a ``POST``) turns into a ``GET`` without body, and ``Authorization`` is
      dropped when the origin changes (except an upgrade of the same host to https);
    * failures raise ``WireError`` (connect, connect_timeout, timeout, reset, other), as the
      httpx path does after translating httpx's ``TransportError``.
    """

    def __init__(self, *, tls_context: Callable[[], ssl.SSLContext], timeout: float = 60.0,
                 connect_timeout: float = 15.0, user_agent: str = USER_AGENT) -> None:
        self._tls_context = tls_context  # called for each TLS connection (the client keeps one context)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.user_agent = user_agent
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = [c for cs in self._idle.values() for c in cs]
            self._idle.clear()
        for c in conns:
            c.close()

    # ---- connections -------------------------------------------------------------------------------
    def _connect(self, scheme: str, host: str, port: int) -> _Conn:
        try:
            # an ASCII name as bytes: getaddrinfo would encode a str with the idna codec (an import)
            sock = socket.create_connection((host.encode() if host.isascii() else host, port),  # type: ignore[arg-type]
                                            timeout=self.connect_timeout)
        except TimeoutError as e:
            raise WireError("connect_timeout", e)
        except OSError as e:
            raise WireError("connect", e)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                # the handshake, under the connect timeout
                sock = self._tls_context().wrap_socket(sock, server_hostname=host)
            sock.settimeout(self.timeout)
        except TimeoutError as e:
            sock.close()
            raise WireError("connect_timeout", e)
        except OSError as e:  # ssl.SSLError too
            sock.close()
            raise WireError("connect", e)
        return _Conn(sock, scheme == "http")

    def _take(self, key: tuple[str, str, int]) -> _Conn | None:
        while True:
            with self._lock:
                conns = self._idle.get(key)
                if not conns:
                    return None
                c = conns.pop()
            if c.idle_ok():
                return c
            c.close()

    def _give(self, key: tuple[str, str, int], c: _Conn) -> None:
        with self._lock:
            conns = self._idle.setdefault(key, [])
            if not self._closed and len(conns) < _MAX_IDLE:
                conns.append(c)
                return
        c.close()

    # ---- requests ----------------------------------------------------------------------------------
    def request(self, method: str, url: str, headers: dict[str, str], content: bytes | FileBody | None = None,
                *, follow: bool = False, stream: bool = False) -> WireResponse:
        """One request (and its redirects, with ``follow``); ``stream``: the answer may be a ``WireStream``,
        whose body the caller reads (and closes).
        """
        for _ in range(_MAX_REDIRECTS + 1):
            r = self._exchange(method, url, headers, content, stream)
            loc = r.headers.get("location")
            if not follow or r.status_code not in (301, 302, 303, 307, 308) or not loc:
                return r
            try:
                r.read()  # as httpx: the redirect's body is read, so its connection can be used again
            finally:
                r.close()
            new = urljoin(url, loc)
            if (r.status_code == 303 and method != "HEAD") or (r.status_code in (301, 302) and method == "POST"):
                method, content = "GET", None
                headers = {k: v for k, v in headers.items()
                           if k.lower() not in ("content-length", "content-type", "transfer-encoding")}
            elif content is not None and not isinstance(content, bytes):
                return r  # a streamed body cannot be sent again (httpx: StreamConsumed)
            if not _same_origin(url, new):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = new
        raise WireError("other", f"stopped after {_MAX_REDIRECTS} redirects")

    def _exchange(self, method: str, url: str, headers: dict[str, str],
                  content: bytes | FileBody | None, stream: bool = False) -> WireResponse:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        try:
            host = parts.hostname or ""
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as e:
            raise WireError("other", f"invalid URL {url!r}: {e}")
        if scheme not in ("http", "https") or not host:
            raise WireError("other", f"invalid URL {url!r}")
        head = self._head(method, parts, scheme, headers, content)
        key = (scheme, host, port)
        req = WireRequest(method, url)
        conn = self._take(key)
        if conn is not None:
            try:
                return self._over(conn, key, req, head, content, reused=True, stream=stream)
            except _Stale:
                pass  # the server closed it as it left the pool: once more on a new connection
        return self._over(self._connect(scheme, host, port), key, req, head, content, reused=False, stream=stream)

    def _over(self, conn: _Conn, key: tuple[str, str, int], req: WireRequest, head: bytes,
              content: bytes | FileBody | None, *, reused: bool, stream: bool = False) -> WireResponse:
        """One request and its answer on ``conn``, which goes back to the pool when it may (or is handed
        to the ``WireStream`` answered, with ``stream``).

        ``_Stale``: a pooled connection (``reused``) failed before a byte of answer came, for a body
        that can be sent again (not a ``FileBody``, whose file has moved on).
        """
        reusable = False
        handed = False
        received = conn.received
        try:
            broken: OSError | None = None
            try:
                if isinstance(content, FileBody) and content.size > _INLINE_BODY:
                    conn.sock.sendall(head)
                    content.send(conn.sock, conn.plain)
                elif isinstance(content, FileBody):
                    data = b"".join(content)  # small: one write with the head
                    conn.sock.sendall(head + data)
                else:
                    conn.sock.sendall(head + (content or b""))
            except TimeoutError:
                raise
            except (BrokenPipeError, ConnectionResetError) as e:
                broken = e  # the server may have answered (an error) and closed: read that first
            try:
                r, reusable = self._answer(conn, req, (self, key) if stream else None)
            except (WireError, EOFError, OSError) as e:
                if reused and not isinstance(content, FileBody) and conn.received == received and \
                        isinstance(e, EOFError | ConnectionResetError | BrokenPipeError):
                    raise _Stale
                if broken is not None:
                    raise WireError("reset", broken)
                if isinstance(e, EOFError):
                    raise WireError("reset", "server disconnected without sending a response")
                raise
            if broken is not None:
                reusable = False
            if isinstance(r, WireStream):
                r._keep = r._keep and reusable
                handed = True
            return r
        except TimeoutError as e:
            raise WireError("timeout", e)
        except (WireError, _Stale):
            raise
        except OSError as e:
            raise WireError("reset", e)
        finally:
            if handed:
                pass  # the WireStream reads the body and gives the connection back
            elif reusable:
                self._give(key, conn)
            else:
                conn.close()

    def _head(self, method: str, parts: Any, scheme: str, headers: dict[str, str],
              content: bytes | FileBody | None) -> bytes:
        target = quote(parts.path or "/", safe=_URL_SAFE)
        if parts.query:
            target += "?" + quote(parts.query, safe=_URL_SAFE)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        default = ":443" if scheme == "https" else ":80"
        host_header = netloc[:-len(default)] if netloc.endswith(default) else netloc
        fields = {"host": ("Host", host_header), "user-agent": ("User-Agent", self.user_agent),
                  "accept": ("Accept", "*/*"), "accept-encoding": ("Accept-Encoding", "identity")}
        for k, v in headers.items():
            fields[k.lower()] = (k, v)
        for k in ("content-length", "transfer-encoding", "connection"):
            fields.pop(k, None)
        if content is not None or method in ("POST", "PUT", "PATCH"):
            n = content.size if isinstance(content, FileBody) else len(content or b"")
            fields["content-length"] = ("Content-Length", str(n))
        lines = [f"{method} {target} HTTP/1.1"]
        for name, value in fields.values():
            if any(c in name or c in value for c in "\r\n\0") or not name:
                raise WireError("other", f"invalid header {name!r}")
            lines.append(f"{name}: {value}")
        try:
            return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError as e:
            raise WireError("other", f"a header that is not Latin-1: {e}")

    def _answer(self, conn: _Conn, req: WireRequest,
                stream: tuple[StdlibHTTP, tuple[str, str, int]] | None = None) -> tuple[WireResponse, bool]:
        """Read one answer (after any 1xx); (response, whether the connection can be used again).

        ``stream`` (this transport and the connection's pool key): an answer with a body is a
        ``WireStream`` over ``conn``, its headers only read.
        """
        while True:
            status_line = conn.line()
            version, _, rest = status_line.partition(b" ")
            code, _, reason = rest.partition(b" ")
            if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
                raise WireError("reset", f"malformed status line {status_line[:100]!r}")
            status = int(code)
            headers = _Headers()
            size = 0
            last: str | None = None
            while line := conn.line():
                size += len(line)
                if size > _MAX_HEADER:
                    raise WireError("reset", "the registry's answer has over 64 KiB of headers")
                if line[:1] in (b" ", b"\t") and last is not None:  # obsolete line folding
                    headers.add(last, line.strip().decode("latin-1"))
                    continue
                name, sep, value = line.partition(b":")
                if not sep or not name or name != name.strip():
                    raise WireError("reset", f"malformed header line {line[:100]!r}")
                last = name.decode("latin-1")
                headers.add(last, value.strip().decode("latin-1"))
            if 100 <= status < 200 and status != 101:
                continue
            break
        keep = version == b"HTTP/1.1" and "close" not in (headers.get("connection") or "").lower()
        te = (headers.get("transfer-encoding") or "").lower()
        mode, n = "length", 0
        if req.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            pass
        elif te:
            mode = "chunked" if te.rsplit(",", 1)[-1].strip() == "chunked" else "close"
        elif "content-length" in headers:
            values = {v.strip() for v in headers["content-length"].split(",")}
            if len(values) != 1 or not next(iter(values)).isdigit():
                raise WireError("reset", f"invalid Content-Length {headers['content-length']!r}")
            n = int(values.pop())
        else:
            mode = "close"
        if mode == "close":
            keep = False
        text = reason.decode("latin-1")
        if stream is not None and (mode != "length" or n):
            return WireStream(req, status, text, headers, stream[0], stream[1], conn, mode, n, keep), keep
        if mode == "chunked":
            body = self._chunked(conn)
        elif mode == "close":
            body = conn.to_end(_MAX_BODY)
        elif n > _MAX_BODY:
            raise WireError("other", f"the registry's answer is larger than {_MAX_BODY} bytes")
        else:
            body = conn.exactly(n)
        return WireResponse(req, status, text, headers, body), keep

    @staticmethod
    def _chunked(conn: _Conn) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = conn.line().split(b";", 1)[0].strip()
            try:
                n = int(line, 16)
            except ValueError:
                raise WireError("reset", f"malformed chunk size {line[:40]!r}")
            if n < 0:
                raise WireError("reset", f"malformed chunk size {line[:40]!r}")
            if n == 0:
                while conn.line():  # trailers
                    pass
                return b"".join(parts)
            total += n
            if total > _MAX_BODY:
                raise WireError("other", f"the registry's answer is larger than {_MAX_BODY} bytes")
            parts.append(conn.exactly(n))
            if conn.exactly(2) != b"\r\n":
                raise WireError("reset", "malformed chunk: no CRLF after the data")


def _same_origin(a: str, b: str) -> bool:
    """httpx's rule for keeping ``Authorization`` on a redirect: the same scheme, host and port, or
    an upgrade from http to https on the same host with the default ports.
    """
    pa, pb = urlsplit(a), urlsplit(b)

    def port(p: Any) -> int | None:
        return p.port or {"http": 80, "https": 443}.get(p.scheme)

    if (pa.scheme, pa.hostname, port(pa)) == (pb.scheme, pb.hostname, port(pb)):
        return True
    return (pa.scheme == "http" and pb.scheme == "https" and pa.hostname == pb.hostname
            and port(pa) == 80 and port(pb) == 443)


def _proxy_in_environment() -> bool:
    """A proxy that httpx would use (``HTTP(S)_PROXY``, ``ALL_PROXY``, any case)? Then httpx carries
    every request, since ``StdlibHTTP`` speaks to registries directly only.
    """
    return any(v and k.lower() in ("http_proxy", "https_proxy", "all_proxy") for k, v in os.environ.items())


class RegistryClient:
    """One registry endpoint (``http(s)://host[:port]``), for one command's requests."""

    def __init__(self, domain: str, *, config: RegistryConfig | None = None,
                 credentials: Credentials | None = None, base_url: str | None = None,
                 timeout: float = 60.0, stdlib_http: bool = False) -> None:
        """``stdlib_http``: send every request with ``StdlibHTTP`` (pushes and pulls), unless a proxy is
        configured; httpx, made at its first use, then carries nothing (the bearer tokens go by
        ``StdlibHTTP`` too). Without it, httpx carries every request.
        """
        self.domain = domain
        self.config = config or RegistryConfig.from_env()
        self.base_url = (base_url or self.config.endpoints(domain)[-1]).rstrip("/")
        self.timeout = timeout
        self._tls: ssl.SSLContext | None = None
        self._http: httpx.Client | None = None
        self._http_lock = threading.Lock()
        self.wire = StdlibHTTP(tls_context=self.tls_context, timeout=timeout) \
            if stdlib_http and not _proxy_in_environment() else None
        if self.wire is None:
            self._make_http()
        self.auth = Authenticator(credentials if credentials is not None else get_credentials(domain),
                                  lambda: self.http, wire=self.wire)
        self._pinged = False
        self._ping_lock = threading.Lock()

    def tls_context(self) -> ssl.SSLContext:
        """httpx's ``verify=True``, with the CA bundle loaded at the first TLS handshake (made, and
        ``ssl`` imported, when first asked for: a plain-HTTP push has no use for it).
        """
        with self._http_lock:
            if self._tls is None:
                self._tls = _tls_context()
            return self._tls

    def _make_http(self) -> httpx.Client:
        with self._http_lock:
            if self._http is None:
                if self._tls is None:
                    self._tls = _tls_context()
                _import_httpx()
                import httpx

                self._http = httpx.Client(
                    timeout=httpx.Timeout(self.timeout, connect=15.0),
                    headers={"User-Agent": USER_AGENT},
                    limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
                    follow_redirects=False,
                    verify=self._tls,
                )
            return self._http

    @property
    def http(self) -> httpx.Client:
        """The httpx client (made, and httpx imported, at the first use)."""
        return self._http if self._http is not None else self._make_http()

    def close(self) -> None:
        if self.wire is not None:
            self.wire.close()
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def login_hint(self) -> str:
        server = "" if self.domain == DOCKER_HUB_DOMAIN else f" {self.domain}"
        return f"Log in first with 'dockyard login{server}'."

    def url(self, path: str) -> str:
        return self.base_url + path

    # ---- the request loop ----------------------------------------------------------------------
    def ping(self) -> Response:
        """``GET /v2/``: learns the auth challenge; raises if the registry is unreachable."""
        r = self._send("GET", self.url("/v2/"), scopes=None, authenticate=False, retry_refused=False)
        r.close()
        if r.status_code == 401:
            if not self.auth.learn(r.headers.get("www-authenticate")):
                raise AuthError("unauthorized: the registry asks for an authentication scheme Dockyard "
                                f"does not support ({r.headers.get('www-authenticate', 'none')})")
        elif r.status_code == 404:
            raise RegistryError(f"{self.base_url} does not speak the registry API v2 (GET /v2/: 404)")
        elif r.status_code >= 400 and r.status_code != 403:
            raise RegistryError(f"GET {self.url('/v2/')}: {_error_text(r)}")
        self._pinged = True
        return r

    def _ensure_pinged(self) -> None:
        if self._pinged:
            return
        with self._ping_lock:
            if not self._pinged:
                self.ping()

    def _send(self, method: str, url: str, *, scopes: list[str] | None, headers: dict[str, str] | None = None,
              content: bytes | FileBody | None = None, stream: bool = False, retry: bool = True,
              authenticate: bool = True, follow: bool = False, retry_refused: bool = True) -> Response:
        """One request with auth, retries (transport errors, 5xx, 429) and one re-auth on 401.

        ``StdlibHTTP`` carries it when the client has one, httpx otherwise (``stream=True``: the body
        is read by the caller; see ``_send_stream``).
        ``retry_refused=False``: a refused connection fails at once (nobody listens: the first
        contact with a registry says so without waiting through the backoff).
        """
        if authenticate:
            self._ensure_pinged()
        wire = self.wire
        attempts = 1 + (self.config.retries if retry else 0)
        attempt = 0
        reauthed = False
        while True:
            h = dict(headers or {})
            if authenticate and scopes is not None:
                value = self.auth.header(scopes, refresh=reauthed)
                if value:
                    h["Authorization"] = value
            r: Response
            try:
                if wire is not None:
                    r = wire.request(method, url, h, content, follow=follow, stream=stream)
                else:
                    r = self._httpx_send(method, url, h, content, stream, follow)
            except WireError as e:
                attempt += 1
                refused = e.kind == "connect" and "refused" in str(e).lower()
                if attempt < attempts and (retry_refused or not refused):
                    _sleep_backoff(attempt - 1)
                    continue
                raise RegistryError(transport_message(e, url, method))
            if r.status_code == 401 and authenticate and scopes is not None and not reauthed:
                r.close()
                reauthed = True
                if self.auth.learn(r.headers.get("www-authenticate")):
                    continue
                return r
            if (r.status_code >= 500 or r.status_code == 429) and attempt + 1 < attempts:
                r.close()
                attempt += 1
                _sleep_backoff(attempt - 1)
                continue
            return r

    def _send_stream(self, method: str, url: str, *, scopes: list[str] | None,
                     headers: dict[str, str] | None = None, retry: bool = True,
                     follow: bool = False) -> StreamResponse:
        """``_send`` with ``stream=True``: an answer whose body the caller reads (``iter_raw``, ``iter_bytes``)."""
        r = self._send(method, url, scopes=scopes, headers=headers, stream=True, retry=retry, follow=follow)
        return r  # type: ignore[return-value]  # a streamed request's answer is a WireStream or httpx's

    def _httpx_send(self, method: str, url: str, headers: dict[str, str], content: bytes | FileBody | None,
                    stream: bool, follow: bool) -> httpx.Response:
        import httpx

        http = self.http
        try:
            req = http.build_request(method, url, headers=headers, content=content)
            return http.send(req, stream=stream, follow_redirects=follow)
        except httpx.TransportError as e:
            raise WireError(_failure_kind(e), e)

    def _fail(self, r: Response, what: str) -> RegistryError:
        """The error for an unexpected answer (the response is closed)."""
        text = _error_text(r) if r.request.method != "HEAD" else ""
        r.close()
        if r.status_code == 401:
            creds = self.auth.creds
            basic = self.auth.challenge is not None and self.auth.challenge.scheme == "basic"
            if creds and basic:
                msg = "unauthorized: incorrect username or password"
            elif text.startswith("unauthorized: ") and creds:
                msg = text
            else:
                msg = "unauthorized: authentication required"
            return AuthError(msg, hint=None if creds else self.login_hint)
        if r.status_code == 403:
            return AuthError(f"denied: {what}: requested access to the resource is denied"
                             if not text.startswith("denied") else text)
        if r.status_code == 404:
            return RegistryNotFound(text or f"{what}: not found")
        return RegistryError(f"{what}: {text or f'HTTP {r.status_code}'}")

    @staticmethod
    def pull_scope(repo: str) -> list[str]:
        return [f"repository:{repo}:pull"]

    @staticmethod
    def push_scope(repo: str) -> list[str]:
        return [f"repository:{repo}:pull,push"]

    # ---- manifests -----------------------------------------------------------------------------
    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str, str | None]:
        """(bytes, media type, Docker-Content-Digest) of a manifest or index by tag or digest."""
        r = self._send_stream("GET", self.url(f"/v2/{repo}/manifests/{ref}"), scopes=self.pull_scope(repo),
                              headers={"Accept": MANIFEST_ACCEPT})
        try:
            if r.status_code != 200:
                raise self._fail(r, f"{repo}:{ref}")
            length = int(r.headers.get("content-length") or 0)
            if length > MAX_MANIFEST_SIZE:
                raise CorruptData(f"manifest for {repo}:{ref} is too large ({length} bytes)")
            body = b""
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > MAX_MANIFEST_SIZE:
                    raise CorruptData(f"manifest for {repo}:{ref} is too large")
            mt = r.headers.get("content-type", "").split(";", 1)[0].strip()
            return body, mt, r.headers.get("docker-content-digest")
        finally:
            r.close()

    def head_manifest(self, repo: str, ref: str) -> tuple[str | None, str, int] | None:
        """(digest, media type, size) of a manifest, or None when the registry has none."""
        r = self._send("HEAD", self.url(f"/v2/{repo}/manifests/{ref}"), scopes=self.pull_scope(repo),
                       headers={"Accept": MANIFEST_ACCEPT})
        r.close()
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise self._fail(r, f"{repo}:{ref}")
        return (r.headers.get("docker-content-digest"), r.headers.get("content-type", ""),
                int(r.headers.get("content-length") or 0))

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> str | None:
        """Upload a manifest under a tag or digest; returns the registry's Docker-Content-Digest."""
        r = self._send("PUT", self.url(f"/v2/{repo}/manifests/{ref}"), scopes=self.push_scope(repo),
                       headers={"Content-Type": media_type}, content=data)
        if r.status_code not in (200, 201, 202):
            raise self._fail(r, f"{repo}:{ref}: manifest upload")
        r.close()
        return r.headers.get("docker-content-digest")

    # ---- blobs ---------------------------------------------------------------------------------
    def get_blob_bytes(self, repo: str, digest: str, limit: int = MAX_CONFIG_SIZE) -> bytes:
        """A small blob (a config) in memory; the caller verifies its digest."""
        reader = self.open_blob(repo, digest, None)
        try:
            data = b""
            while chunk := reader.read(_CHUNK):
                data += chunk
                if len(data) > limit:
                    raise CorruptData(f"blob {digest} is larger than {limit} bytes")
            return data
        finally:
            reader.close()

    def open_blob(self, repo: str, digest: str, size: int | None, *, offset: int = 0,
                  on_bytes: Callable[[int], None] | None = None) -> BlobReader:
        return BlobReader(self, repo, digest, size, offset=offset, on_bytes=on_bytes)

    def blob_exists(self, repo: str, digest: str, *, push: bool = False) -> int | None:
        """The size of a blob the registry has in ``repo``, or None."""
        r = self._send("HEAD", self.url(f"/v2/{repo}/blobs/{digest}"),
                       scopes=self.push_scope(repo) if push else self.pull_scope(repo), follow=True)
        r.close()
        if r.status_code == 200:
            return int(r.headers.get("content-length") or 0)
        if r.status_code == 404:
            return None
        raise self._fail(r, f"{repo}: blob {digest}")

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Ask for ``digest`` to be linked from ``from_repo`` (same registry); True when done."""
        q = urlencode({"mount": digest, "from": from_repo})
        r = self._send("POST", self.url(f"/v2/{repo}/blobs/uploads/?{q}"),
                       scopes=[*self.push_scope(repo), f"repository:{from_repo}:pull"],
                       headers={"Content-Length": "0"}, content=b"")
        r.close()
        if r.status_code == 201:
            return True
        if r.status_code == 202:  # the registry opened an upload instead: give it back
            loc = r.headers.get("location")
            if loc:
                try:
                    self._send("DELETE", self._location(loc), scopes=self.push_scope(repo),
                               retry=False).close()
                except RegistryError:
                    pass
            return False
        if r.status_code in (401, 403, 404, 405):
            return False
        raise self._fail(r, f"{repo}: mount of {digest} from {from_repo}")

    def _location(self, loc: str) -> str:
        return urljoin(self.base_url + "/", loc)

    @staticmethod
    def _with_query(url: str, **params: str) -> str:
        return url + ("&" if "?" in url else "?") + urlencode(params)

    def _start_upload(self, repo: str) -> str:
        r = self._send("POST", self.url(f"/v2/{repo}/blobs/uploads/"), scopes=self.push_scope(repo),
                       headers={"Content-Length": "0"}, content=b"")
        if r.status_code != 202 or not r.headers.get("location"):
            raise self._fail(r, f"{repo}: blob upload")
        r.close()
        return self._location(r.headers["location"])

    def _finish_upload(self, repo: str, loc: str, digest: str, data: bytes | FileBody,
                       length: int) -> Response:
        r = self._send("PUT", self._with_query(loc, digest=digest), scopes=self.push_scope(repo),
                       headers={"Content-Type": "application/octet-stream", "Content-Length": str(length)},
                       content=data, retry=False)
        if r.status_code not in (201, 204):
            raise self._fail(r, f"{repo}: blob upload")
        r.close()
        return r

    def upload_blob(self, repo: str, digest: str, size: int, opener: Callable[[], BinaryIO], *,
                    chunk_size: int | None = None, on_bytes: Callable[[int], None] | None = None) -> None:
        """Upload a blob from a fresh stream from ``opener()``; whole uploads are retried on failure.

        Blobs up to ``chunk_size`` go in one ``PUT``; larger ones as ``PATCH`` chunks (with their
        ``Content-Range``). Bodies are streamed from the file, never held whole: with ``sendfile``
        by ``StdlibHTTP`` over plain HTTP, else in 1 MiB pieces. The registry checks the digest
        (``?digest=``) against what it received; the local file was verified when it was stored.
        """
        chunk_size = chunk_size or self.config.push_chunk_size
        attempts = 1 + self.config.retries
        progress = [0]

        def counted(n: int) -> None:
            progress[0] += n
            if on_bytes:
                on_bytes(n)

        for attempt in range(attempts):
            try:
                loc = self._start_upload(repo)
                with opener() as f:
                    if size <= chunk_size:  # monolithic: one PUT, streamed from the file
                        r = self._finish_upload(repo, loc, digest, FileBody(f, size, digest, counted), size)
                        if f.read(1):
                            raise CorruptData(f"blob {digest}: the local file is longer than {size} bytes")
                    else:
                        start = 0
                        while start < size:
                            n = min(chunk_size, size - start)
                            r = self._send("PATCH", loc, scopes=self.push_scope(repo), retry=False,
                                           content=FileBody(f, n, digest, counted),
                                           headers={"Content-Type": "application/octet-stream",
                                                    "Content-Length": str(n),
                                                    "Content-Range": f"{start}-{start + n - 1}"})
                            if r.status_code != 202:
                                raise self._fail(r, f"{repo}: blob upload chunk")
                            r.close()
                            loc = self._location(r.headers.get("location") or loc)
                            start += n
                        if f.read(1):
                            raise CorruptData(f"blob {digest}: the local file is longer than {size} bytes")
                        r = self._finish_upload(repo, loc, digest, b"", 0)
                got = r.headers.get("docker-content-digest")
                if got and got != digest:
                    raise CorruptData(f"registry stored blob as {got}, expected {digest}")
                return
            except (RegistryError, CorruptData) as e:
                retryable = isinstance(e, RegistryError) and not isinstance(e, AuthError | RegistryNotFound)
                if on_bytes and progress[0]:
                    on_bytes(-progress[0])
                progress[0] = 0
                if not retryable or attempt + 1 >= attempts:
                    raise
                _sleep_backoff(attempt)

    # ---- listings ------------------------------------------------------------------------------
    def _paged(self, path: str, key: str, scopes: list[str], page: int) -> list[str]:
        out: list[str] = []
        url: str | None = self.url(f"{path}?n={page}")
        while url:
            r = self._send("GET", url, scopes=scopes)
            if r.status_code != 200:
                raise self._fail(r, path)
            try:
                items = r.json().get(key) or []
            except ValueError:
                raise CorruptData(f"{path}: invalid JSON answer")
            out.extend(items)
            link = r.headers.get("link", "")
            url = None
            if link and "rel=\"next\"" in link.replace("'", '"'):
                target = link.split(";", 1)[0].strip().strip("<>")
                url = self._location(target)
        return out

    def list_tags(self, repo: str, page: int = 1000) -> list[str]:
        return self._paged(f"/v2/{repo}/tags/list", "tags", self.pull_scope(repo), page)

    def catalog(self, page: int = 1000) -> list[str]:
        return self._paged("/v2/_catalog", "repositories", ["registry:catalog:*"], page)

    def search_v1(self, term: str, limit: int = 25) -> list[dict[str, Any]] | None:
        """Hub-style ``GET /v1/search``; None when the registry does not offer it."""
        q = urlencode({"q": term, "n": str(limit)})
        r = self._send("GET", self.url(f"/v1/search?{q}"), scopes=None, authenticate=False)
        if r.status_code in (404, 405, 401, 400):
            r.close()
            return None
        if r.status_code != 200:
            raise self._fail(r, "search")
        try:
            d = r.json()
        except ValueError:
            return None
        results = d.get("results") if isinstance(d, dict) else None
        return list(results) if isinstance(results, list) else None


def _raw_chunks(r: StreamResponse) -> Iterator[bytes]:
    """``r.iter_raw()``, with httpx's transport errors raised as ``WireError`` (as ``StdlibHTTP``'s)."""
    if isinstance(r, WireResponse):
        yield from r.iter_raw()
        return
    import httpx

    it = r.iter_raw()
    while True:
        try:
            data = next(it)
        except StopIteration:
            return
        except httpx.TransportError as e:
            raise WireError(_failure_kind(e), e)
        yield data


class BlobReader:
    """A file-like ``read()`` over a blob's body that resumes with ``Range`` when a connection breaks.

    ``size`` (from the descriptor) bounds the read: more bytes than announced is an error, fewer is
    a broken connection to resume. ``on_bytes(n)`` is called for progress.
    """

    def __init__(self, client: RegistryClient, repo: str, digest: str, size: int | None, *,
                 offset: int = 0, on_bytes: Callable[[int], None] | None = None) -> None:
        self.client = client
        self.repo = repo
        self.digest = digest
        self.size = size
        self.pos = offset
        self.resumes = 0
        self._on_bytes = on_bytes
        self._resp: StreamResponse | None = None
        self._it: Iterator[bytes] | None = None
        self._buf = b""
        self._off = 0
        self._eof = False
        self._skip = 0

    def _open(self) -> None:
        headers = {}
        if self.pos:
            headers["Range"] = f"bytes={self.pos}-"
        url = self.client.url(f"/v2/{self.repo}/blobs/{self.digest}")
        r = self.client._send_stream("GET", url, scopes=self.client.pull_scope(self.repo), headers=headers,
                                     follow=True, retry=False)  # read() has its own retry loop
        if r.status_code == 206 and self.pos:
            cr = r.headers.get("content-range", "")
            try:
                start = int(cr.split()[1].split("-")[0])
            except (IndexError, ValueError):
                start = -1
            if start != self.pos:
                r.close()
                raise RegistryError(f"blob {self.digest}: registry answered range {cr!r} "
                                    f"for bytes={self.pos}-")
            self._skip = 0
        elif r.status_code == 200:
            self._skip = self.pos  # no range support: read and drop what we already have
        elif r.status_code == 416 and self.size is not None and self.pos >= self.size:
            r.close()
            self._eof = True
            return
        else:
            raise self.client._fail(r, f"{self.repo}: blob {self.digest}")
        self._resp = r
        self._it = _raw_chunks(r)  # as received: a cut body keeps every byte that arrived

    def _drop(self) -> None:
        if self._resp is not None:
            try:
                self._resp.close()
            except Exception:
                pass
        self._resp = None
        self._it = None

    def _next_chunk(self) -> bytes:
        failures = 0
        while True:
            if self._eof:
                return b""
            try:
                if self._it is None:
                    self._open()
                    if self._eof:
                        return b""
                assert self._it is not None
                try:
                    data = next(self._it)
                except StopIteration:
                    data = b""
            except (WireError, RegistryError) as e:
                if isinstance(e, AuthError | RegistryNotFound):
                    self._drop()
                    raise
                self._drop()
                failures += 1
                if failures > max(1, self.client.config.retries):
                    if isinstance(e, RegistryError):
                        raise
                    raise RegistryError(f"blob {self.digest}: "
                                        + transport_message(e, self.client.url(f"/v2/{self.repo}/blobs/"
                                                                               f"{self.digest}")))
                self.resumes += 1
                _sleep_backoff(failures - 1)
                continue
            if not data:
                self._drop()
                if self.size is not None and self.pos < self.size:
                    failures += 1  # the body ended early: a proxy or server cut it
                    if failures > max(1, self.client.config.retries):
                        raise RegistryError(f"blob {self.digest}: connection closed after {self.pos} of "
                                            f"{self.size} bytes")
                    self.resumes += 1
                    _sleep_backoff(failures - 1)
                    continue
                self._eof = True
                return b""
            if self._skip:
                n = min(self._skip, len(data))
                self._skip -= n
                data = data[n:]
                if not data:
                    continue
            if self.size is not None and self.pos + len(data) > self.size:
                self._drop()
                raise CorruptData(f"blob {self.digest}: registry sent more than the {self.size} bytes "
                                  "the manifest announced")
            self.pos += len(data)
            if self._on_bytes:
                self._on_bytes(len(data))
            return data

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (fewer at a chunk boundary); b"" only at the end of the blob."""
        if n is None or n < 0:
            parts = [self._buf[self._off:]]
            self._buf, self._off = b"", 0
            while chunk := self._next_chunk():
                parts.append(chunk)
            return b"".join(parts)
        if self._off >= len(self._buf):
            self._buf, self._off = self._next_chunk(), 0
            if not self._buf:
                return b""
        data = self._buf[self._off:self._off + n]
        self._off += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._drop()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
