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

``httpx`` is imported when a client is made, never at module import.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlencode, urljoin, urlsplit

from dockyard import __version__
from dockyard.errors import AuthError, CorruptData, RegistryError
from dockyard.image.oci import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from dockyard.registry.auth import Authenticator, Credentials, get_credentials
from dockyard.registry.config import DOCKER_HUB_DOMAIN, RegistryConfig

if TYPE_CHECKING:
    import ssl

    import httpx

MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
MAX_MANIFEST_SIZE = 4 << 20  # as containerd and distribution limit them
MAX_CONFIG_SIZE = 32 << 20
USER_AGENT = f"dockyard/{__version__}"
_CHUNK = 1 << 20


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


def transport_message(e: Exception, url: str, method: str = "GET") -> str:
    """Docker's words for a network failure: ``Get "URL": dial tcp HOST:PORT: connect: ...``."""
    import httpx

    parts = urlsplit(url)
    hostport = parts.netloc.rsplit("@", 1)[-1]
    if ":" not in hostport.rsplit("]", 1)[-1]:
        hostport += ":443" if parts.scheme == "https" else ":80"
    text = str(e) or type(e).__name__
    low = text.lower()
    prefix = f'{_go_method(method)} "{url}"'
    if isinstance(e, httpx.ConnectError):
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
    if isinstance(e, httpx.TimeoutException):
        return f"{prefix}: dial tcp {hostport}: i/o timeout" if isinstance(e, httpx.ConnectTimeout) \
            else f"{prefix}: net/http: timeout awaiting response"
    if isinstance(e, httpx.RemoteProtocolError | httpx.ReadError):
        return f"{prefix}: connection reset by peer ({text})"
    return f"{prefix}: {text}"


def _error_text(r: httpx.Response) -> str:
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
    time.sleep(min(8.0, 0.2 * (2 ** attempt)) * (0.75 + random.random() / 2))


class RegistryClient:
    """One registry endpoint (``http(s)://host[:port]``), for one command's requests."""

    def __init__(self, domain: str, *, config: RegistryConfig | None = None,
                 credentials: Credentials | None = None, base_url: str | None = None,
                 timeout: float = 60.0) -> None:
        _import_httpx()
        import httpx

        self.domain = domain
        self.config = config or RegistryConfig.from_env()
        self.base_url = (base_url or self.config.endpoints(domain)[-1]).rstrip("/")
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=15.0),
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            follow_redirects=False,
            verify=_tls_context(),  # verify=True, with the CA bundle loaded at the first TLS handshake
        )
        self.auth = Authenticator(credentials if credentials is not None else get_credentials(domain),
                                  self.http)
        self._pinged = False
        self._ping_lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

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
    def ping(self) -> httpx.Response:
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
              content: bytes | Iterator[bytes] | None = None, stream: bool = False, retry: bool = True,
              authenticate: bool = True, follow: bool = False, retry_refused: bool = True) -> httpx.Response:
        """One request with auth, retries (transport errors, 5xx, 429) and one re-auth on 401.

        ``retry_refused=False``: a refused connection fails at once (nobody listens: the first
        contact with a registry says so without waiting through the backoff).
        """
        import httpx

        if authenticate:
            self._ensure_pinged()
        attempts = 1 + (self.config.retries if retry else 0)
        attempt = 0
        reauthed = False
        while True:
            h = dict(headers or {})
            if authenticate and scopes is not None:
                value = self.auth.header(scopes, refresh=reauthed)
                if value:
                    h["Authorization"] = value
            try:
                req = self.http.build_request(method, url, headers=h, content=content)
                r = self.http.send(req, stream=stream, follow_redirects=follow)
            except httpx.TransportError as e:
                attempt += 1
                refused = isinstance(e, httpx.ConnectError) and "refused" in str(e).lower()
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

    def _fail(self, r: httpx.Response, what: str) -> RegistryError:
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
        r = self._send("GET", self.url(f"/v2/{repo}/manifests/{ref}"), scopes=self.pull_scope(repo),
                       headers={"Accept": MANIFEST_ACCEPT}, stream=True)
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

    def _finish_upload(self, repo: str, loc: str, digest: str, data: bytes | Iterator[bytes],
                       length: int) -> httpx.Response:
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
        ``Content-Range``). Bodies are streamed from the file in 1 MiB pieces, never held whole.
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
                        r = self._finish_upload(repo, loc, digest, _file_piece(f, size, digest, counted), size)
                        if f.read(1):
                            raise CorruptData(f"blob {digest}: the local file is longer than {size} bytes")
                    else:
                        start = 0
                        while start < size:
                            n = min(chunk_size, size - start)
                            r = self._send("PATCH", loc, scopes=self.push_scope(repo), retry=False,
                                           content=_file_piece(f, n, digest, counted),
                                           headers={"Content-Type": "application/octet-stream",
                                                    "Content-Length": str(n),
                                                    "Content-Range": f"{start}-{start + n - 1}"})
                            if r.status_code != 202:
                                raise self._fail(r, f"{repo}: blob upload chunk")
                            r.close()
                            loc = self._location(r.headers.get("location") or loc)
                            start += n
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


def _file_piece(f: BinaryIO, n: int, digest: str, on_bytes: Callable[[int], None]) -> Iterator[bytes]:
    """The next ``n`` bytes of ``f``, in pieces of at most 1 MiB (a streamed request body)."""
    left = n
    while left > 0:
        data = f.read(min(_CHUNK, left))
        if not data:
            raise CorruptData(f"blob {digest}: the local file ended {left} bytes early")
        left -= len(data)
        on_bytes(len(data))
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
        self._resp: httpx.Response | None = None
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
        r = self.client._send("GET", url, scopes=self.client.pull_scope(self.repo), headers=headers,
                              stream=True, follow=True, retry=False)  # read() has its own retry loop
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
        self._it = r.iter_raw()  # as received: a cut body keeps every byte that arrived

    def _drop(self) -> None:
        if self._resp is not None:
            try:
                self._resp.close()
            except Exception:
                pass
        self._resp = None
        self._it = None

    def _next_chunk(self) -> bytes:
        import httpx

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
            except (httpx.TransportError, RegistryError) as e:
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
