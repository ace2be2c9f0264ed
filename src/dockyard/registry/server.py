"""The registry's HTTP API (OCI distribution spec 1.1 / Docker registry v2), served by uvicorn.

``Registry`` holds the protocol logic and knows nothing of starlette: it takes a ``RequestInfo``
(method, path after ``/v2/``, query, headers, an async iterator over the body) and returns a
``Reply``. ``create_app`` wraps it in a starlette application (imported there, not at module
import, so that ``dockyard --help`` stays fast) and ``serve`` runs that under uvicorn.

Endpoints (``<name>`` may have several ``/``-separated components, so paths are parsed from the
right)::

    GET|HEAD   /v2/                                   API version check (and auth challenge)
    GET        /v2/_catalog?n=&last=                  repositories
    GET        /v2/<name>/tags/list?n=&last=          tags
    GET|HEAD   /v2/<name>/manifests/<tag|digest>
    PUT|DELETE /v2/<name>/manifests/<tag|digest>
    GET|HEAD   /v2/<name>/blobs/<digest>              Range requests answered with 206
    DELETE     /v2/<name>/blobs/<digest>
    POST       /v2/<name>/blobs/uploads/              ?digest= (monolithic), ?mount=&from=, or a session
    GET|PATCH|PUT|DELETE /v2/<name>/blobs/uploads/<uuid>
    GET        /v2/<name>/referrers/<digest>?artifactType=

Request bodies are streamed to the upload's file while being hashed; nothing the size of a blob
is held in memory. Blob responses are streamed from disk.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dockyard.digest import is_digest
from dockyard.errors import BlobNotFound, DockyardError, InvalidArgument
from dockyard.registry.storage import (
    DigestMismatch,
    FilesystemStorage,
    ManifestNotFound,
    RepositoryNotFound,
    Storage,
    UploadNotFound,
    is_valid_name,
    is_valid_tag,
)

if TYPE_CHECKING:
    import asyncio

    from dockyard.registry.htpasswd import Htpasswd

log = logging.getLogger("dockyard.registry")

API_VERSION = "registry/2.0"
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
UPLOAD_MAX_AGE = 7 * 24 * 3600
FILE_CHUNK = 512 * 1024  # bytes read and sent at a time when serving a blob

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
IMAGE_MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
FOREIGN_LAYER_TYPES = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)

_CONTENT_RANGE_RE = re.compile(r"^(?:bytes[ =])?\s*(\d+)-(\d+)(?:/(?:\d+|\*))?$")
_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("upload", re.compile(r"^(?P<name>.+)/blobs/uploads(?:/(?P<uuid>[^/]*))?$")),
    ("blob", re.compile(r"^(?P<name>.+)/blobs/(?P<digest>[^/]+)$")),
    ("manifest", re.compile(r"^(?P<name>.+)/manifests/(?P<reference>[^/]+)$")),
    ("tags", re.compile(r"^(?P<name>.+)/tags/list$")),
    ("referrers", re.compile(r"^(?P<name>.+)/referrers/(?P<digest>[^/]+)$")),
]


class APIError(Exception):
    """An error answered as the spec's ``{"errors": [{"code", "message", "detail"}]}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = dict(headers or {})

    def reply(self) -> Reply:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            err["detail"] = self.detail
        headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
        headers["Content-Type"] = "application/json; charset=utf-8"
        return Reply(self.status, headers, json.dumps({"errors": [err]}).encode())


class BodyDisconnected(Exception):
    """The client went away while sending a request body."""


@dataclass
class RequestInfo:
    method: str
    path: str  # after "/v2/", without a leading slash
    query: Mapping[str, str]
    headers: Mapping[str, str]  # case-insensitive lookup
    body: AsyncIterator[bytes]


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file: Path | None = None  # stream this file (Range requests honoured) instead of ``body``


def _json(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None,
          content_type: str = "application/json") -> Reply:
    return Reply(status, {"Content-Type": content_type, **(headers or {})}, json.dumps(obj).encode())


def _empty(status: int, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, {"Content-Length": "0", **(headers or {})})


def _paginate(items: list[str], query: Mapping[str, str]) -> tuple[list[str], int | None]:
    """Apply ``last`` (exclusive start, lexical) and ``n``; return the page and ``n`` if more follow."""
    last = query.get("last")
    if last:
        items = [i for i in items if i > last]
    raw_n = query.get("n")
    if raw_n is None or raw_n == "":
        return items, None
    try:
        n = int(raw_n)
        if n < 0:
            raise ValueError
    except ValueError:
        raise APIError(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested",
                       {"n": raw_n})
    if len(items) > n:
        return items[:n], n
    return items, None


def _descriptor_errors(desc: Any, where: str) -> str | None:
    if not isinstance(desc, dict):
        return f"{where} is not a descriptor object"
    if not isinstance(desc.get("digest"), str) or not is_digest(desc["digest"]):
        return f"{where} has an invalid digest"
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return f"{where} has an invalid size"
    if "mediaType" in desc and not isinstance(desc["mediaType"], str):
        return f"{where} has an invalid mediaType"
    return None


class Registry:
    """The distribution API over a ``Storage``, independent of the web framework."""

    def __init__(
        self, storage: Storage, *, htpasswd: Htpasswd | None = None, realm: str = "dockyard"
    ) -> None:
        self.storage = storage
        self.htpasswd = htpasswd
        self.realm = realm
        self._upload_locks: dict[str, asyncio.Lock] = {}

    # ---- entry point --------------------------------------------------------------------------

    async def handle(self, req: RequestInfo) -> Reply:
        try:
            await self._authorize(req)
            reply = await self._route(req)
        except APIError as e:
            reply = e.reply()
        except ManifestNotFound as e:
            reply = APIError(404, "MANIFEST_UNKNOWN", "manifest unknown", str(e)).reply()
        except RepositoryNotFound as e:
            reply = APIError(404, "NAME_UNKNOWN", "repository name not known to registry", str(e)).reply()
        except UploadNotFound as e:
            reply = APIError(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", str(e)).reply()
        except BlobNotFound as e:
            reply = APIError(404, "BLOB_UNKNOWN", "blob unknown to registry", str(e)).reply()
        except DigestMismatch as e:
            reply = APIError(400, "DIGEST_INVALID", "provided digest did not match uploaded content",
                             str(e)).reply()
        except BodyDisconnected:
            reply = APIError(400, "UNKNOWN", "client disconnected while sending the body").reply()
        except InvalidArgument as e:
            reply = APIError(400, "UNSUPPORTED", str(e)).reply()
        except Exception as e:  # a bug or an I/O error: answer 500, keep serving
            log.exception("error handling %s /v2/%s", req.method, req.path)
            reply = APIError(500, "UNKNOWN", "internal server error", type(e).__name__).reply()
        reply.headers.setdefault("Docker-Distribution-API-Version", API_VERSION)
        return reply

    async def _authorize(self, req: RequestInfo) -> None:
        if self.htpasswd is None:
            return
        header = req.headers.get("authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic" and value:
            try:
                user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                sep = ""
            if sep:
                import asyncio

                if await asyncio.to_thread(self.htpasswd.verify, user, password):
                    return
        raise APIError(401, "UNAUTHORIZED", "authentication required", None,
                       {"WWW-Authenticate": f'Basic realm="{self.realm}"'})

    async def _route(self, req: RequestInfo) -> Reply:
        path = req.path
        m = req.method
        if path in ("", "/"):
            if m not in ("GET", "HEAD"):
                raise self._method_not_allowed(m)
            return _json({})
        if path == "_catalog":
            if m not in ("GET", "HEAD"):
                raise self._method_not_allowed(m)
            return self._catalog(req)
        for kind, rx in _ROUTES:
            match = rx.match(path)
            if match is None:
                continue
            name = match["name"]
            if not is_valid_name(name):
                raise APIError(400, "NAME_INVALID", "invalid repository name", {"name": name})
            if kind == "upload":
                return await self._upload(req, name, match["uuid"] or "")
            if kind == "blob":
                return await self._blob(req, name, match["digest"])
            if kind == "manifest":
                return await self._manifest(req, name, match["reference"])
            if kind == "tags":
                if m not in ("GET", "HEAD"):
                    raise self._method_not_allowed(m)
                return self._tags(req, name)
            if kind == "referrers":
                if m not in ("GET", "HEAD"):
                    raise self._method_not_allowed(m)
                return self._referrers(req, name, match["digest"])
        raise APIError(404, "NOT_FOUND", "page not found", {"path": "/v2/" + path})

    @staticmethod
    def _method_not_allowed(method: str) -> APIError:
        return APIError(405, "UNSUPPORTED", f"the operation is unsupported: method {method} not allowed")

    # ---- listing ------------------------------------------------------------------------------

    def _catalog(self, req: RequestInfo) -> Reply:
        page, n = _paginate(self.storage.list_repositories(), req.query)
        headers = {}
        if n is not None and page:
            headers["Link"] = f'</v2/_catalog?n={n}&last={quote(page[-1], safe="")}>; rel="next"'
        return _json({"repositories": page}, headers=headers)

    def _tags(self, req: RequestInfo, name: str) -> Reply:
        page, n = _paginate(self.storage.list_tags(name), req.query)
        headers = {}
        if n is not None and page:
            headers["Link"] = f'</v2/{name}/tags/list?n={n}&last={quote(page[-1], safe="")}>; rel="next"'
        return _json({"name": name, "tags": page}, headers=headers)

    def _referrers(self, req: RequestInfo, name: str, digest: str) -> Reply:
        if not is_digest(digest):
            raise APIError(400, "DIGEST_INVALID", "invalid digest", {"digest": digest})
        manifests = self.storage.referrers(name, digest)
        headers = {}
        artifact_type = req.query.get("artifactType")
        if artifact_type:
            manifests = [d for d in manifests if d.get("artifactType") == artifact_type]
            headers["OCI-Filters-Applied"] = "artifactType"
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        return _json(index, headers=headers, content_type=OCI_INDEX)

    # ---- blobs --------------------------------------------------------------------------------

    async def _blob(self, req: RequestInfo, name: str, digest: str) -> Reply:
        if not is_digest(digest):
            raise APIError(400, "DIGEST_INVALID", "invalid digest", {"digest": digest})
        if req.method in ("GET", "HEAD"):
            self.storage.stat_blob(name, digest)  # BlobNotFound -> 404 BLOB_UNKNOWN
            headers = {
                "Content-Type": "application/octet-stream",
                "Docker-Content-Digest": digest,
                "ETag": f'"{digest}"',
                "Cache-Control": "max-age=31536000",
            }
            return Reply(200, headers, file=self.storage.blob_path(digest))
        if req.method == "DELETE":
            self.storage.delete_blob(name, digest)
            return _empty(202, {"Docker-Content-Digest": digest})
        raise self._method_not_allowed(req.method)

    # ---- uploads ------------------------------------------------------------------------------

    def _lock(self, upload_id: str) -> asyncio.Lock:
        import asyncio

        lock = self._upload_locks.get(upload_id)
        if lock is None:
            lock = self._upload_locks[upload_id] = asyncio.Lock()
        return lock

    def _forget_lock(self, upload_id: str) -> None:
        self._upload_locks.pop(upload_id, None)

    @staticmethod
    def _upload_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
        return {
            "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
            "Docker-Upload-UUID": upload_id,
            "Range": f"0-{max(size - 1, 0)}",
        }

    @staticmethod
    def _blob_created(name: str, digest: str) -> Reply:
        return _empty(201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})

    async def _receive(self, req: RequestInfo, name: str, upload_id: str, size: int) -> int:
        """Append the request body to the upload (validating Content-Range); return the new size."""
        expected: int | None = None
        header = req.headers.get("content-range")
        if header:
            m = _CONTENT_RANGE_RE.match(header.strip())
            if m is None:
                raise APIError(416, "RANGE_INVALID", "invalid content range", {"Content-Range": header},
                               self._upload_headers(name, upload_id, size))
            start, end = int(m[1]), int(m[2])
            if start != size or end < start:
                raise APIError(416, "RANGE_INVALID", "invalid content range",
                               {"Content-Range": header, "uploaded": size},
                               self._upload_headers(name, upload_id, size))
            expected = end - start + 1
        with self.storage.append_upload(name, upload_id) as writer:
            async for chunk in req.body:
                writer.write(chunk)
                if expected is not None and writer.size - writer.start > expected:
                    raise APIError(400, "SIZE_INVALID", "body is longer than its Content-Range",
                                   {"Content-Range": header})
            if expected is not None and writer.size - writer.start != expected:
                raise APIError(400, "SIZE_INVALID", "body is shorter than its Content-Range",
                               {"Content-Range": header, "received": writer.size - writer.start})
            return writer.size

    async def _commit(self, name: str, upload_id: str, digest: str) -> int:
        import asyncio

        try:
            return await asyncio.to_thread(self.storage.commit_upload, name, upload_id, digest)
        finally:
            self._forget_lock(upload_id)

    async def _upload(self, req: RequestInfo, name: str, upload_id: str) -> Reply:
        method = req.method
        if not upload_id:
            if method != "POST":
                raise self._method_not_allowed(method)
            return await self._start_upload(req, name)
        if method == "POST":
            raise self._method_not_allowed(method)
        self.storage.upload_size(name, upload_id)  # UploadNotFound -> 404, before making a lock
        async with self._lock(upload_id):
            try:
                size = self.storage.upload_size(name, upload_id)
            except UploadNotFound:  # finished or cancelled while we waited for the lock
                self._forget_lock(upload_id)
                raise
            if method == "GET":
                return _empty(204, self._upload_headers(name, upload_id, size))
            if method == "DELETE":
                self.storage.cancel_upload(name, upload_id)
                self._forget_lock(upload_id)
                return _empty(204)
            if method == "PATCH":
                size = await self._receive(req, name, upload_id, size)
                return _empty(202, self._upload_headers(name, upload_id, size))
            if method == "PUT":
                digest = req.query.get("digest")
                if not digest or not is_digest(digest):
                    raise APIError(400, "DIGEST_INVALID", "a valid digest query parameter is required",
                                   {"digest": digest})
                await self._receive(req, name, upload_id, size)
                await self._commit(name, upload_id, digest)
                return self._blob_created(name, digest)
        raise self._method_not_allowed(method)

    async def _start_upload(self, req: RequestInfo, name: str) -> Reply:
        mount, from_name = req.query.get("mount"), req.query.get("from")
        if mount and is_digest(mount) and self.storage.mount_blob(name, mount, from_name or None):
            return self._blob_created(name, mount)
        digest = req.query.get("digest")
        if digest is not None and not is_digest(digest):
            raise APIError(400, "DIGEST_INVALID", "invalid digest", {"digest": digest})
        upload_id = self.storage.new_upload(name)
        try:
            async with self._lock(upload_id):
                size = await self._receive(req, name, upload_id, 0)
                if digest is None:
                    return _empty(202, self._upload_headers(name, upload_id, size))
                await self._commit(name, upload_id, digest)
                return self._blob_created(name, digest)
        except BaseException:
            try:
                self.storage.cancel_upload(name, upload_id)
            except UploadNotFound:
                pass
            self._forget_lock(upload_id)
            raise

    # ---- manifests ----------------------------------------------------------------------------

    async def _manifest(self, req: RequestInfo, name: str, reference: str) -> Reply:
        is_ref_digest = is_digest(reference)
        if ":" in reference and not is_ref_digest:
            raise APIError(400, "DIGEST_INVALID", "invalid digest", {"digest": reference})
        method = req.method
        if method in ("GET", "HEAD"):
            if not is_ref_digest and not is_valid_tag(reference):
                raise APIError(404, "MANIFEST_UNKNOWN", "manifest unknown", {"tag": reference})
            m = self.storage.get_manifest(name, reference)
            headers = {
                "Content-Type": m.media_type,
                "Docker-Content-Digest": m.digest,
                "ETag": f'"{m.digest}"',
                "Content-Length": str(len(m.data)),
            }
            return Reply(200, headers, m.data)
        if method == "PUT":
            if not is_ref_digest and not is_valid_tag(reference):
                raise APIError(400, "TAG_INVALID", "manifest tag did not match URI", {"tag": reference})
            data = await self._read_small(req, MAX_MANIFEST_SIZE)
            media_type, subject = self._validate_manifest(name, data, req.headers.get("content-type") or "")
            digest = self.storage.put_manifest(name, reference, data, media_type)
            headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
            if subject:
                headers["OCI-Subject"] = subject
            return _empty(201, headers)
        if method == "DELETE":
            if not is_ref_digest and not is_valid_tag(reference):
                raise APIError(404, "MANIFEST_UNKNOWN", "manifest unknown", {"tag": reference})
            self.storage.delete_manifest(name, reference)
            return _empty(202)
        raise self._method_not_allowed(method)

    @staticmethod
    async def _read_small(req: RequestInfo, limit: int) -> bytes:
        buf = bytearray()
        async for chunk in req.body:
            buf += chunk
            if len(buf) > limit:
                raise APIError(413, "SIZE_INVALID", f"manifest is larger than {limit} bytes")
        return bytes(buf)

    def _validate_manifest(self, name: str, data: bytes, content_type: str) -> tuple[str, str | None]:
        """Check a manifest's JSON and that what it references exists; return (media type, subject)."""
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise APIError(400, "MANIFEST_INVALID", "manifest invalid", f"not valid JSON: {e}")
        if not isinstance(obj, dict):
            raise APIError(400, "MANIFEST_INVALID", "manifest invalid", "not a JSON object")
        ct = content_type.split(";", 1)[0].strip().lower()
        if ct in ("application/json", "application/octet-stream", "*/*"):
            ct = ""
        body_type = obj.get("mediaType")
        if body_type is not None and not isinstance(body_type, str):
            raise APIError(400, "MANIFEST_INVALID", "manifest invalid", "mediaType is not a string")
        if ct and body_type and ct != body_type:
            raise APIError(400, "MANIFEST_INVALID", "manifest invalid",
                           f"Content-Type {ct} does not match mediaType {body_type}")
        media_type = ct or body_type or ""
        if not media_type:
            if "manifests" in obj:
                media_type = OCI_INDEX
            elif "config" in obj:
                media_type = OCI_MANIFEST
            else:
                raise APIError(400, "MANIFEST_INVALID", "manifest invalid", "unknown manifest media type")
        if media_type in DOCKER_SCHEMA1 or obj.get("schemaVersion") == 1:
            raise APIError(400, "MANIFEST_INVALID", "manifest invalid",
                           "Docker schema 1 manifests are not supported")
        if media_type not in IMAGE_MANIFEST_TYPES and media_type not in INDEX_TYPES:
            raise APIError(400, "MANIFEST_INVALID", "manifest invalid",
                           f"unsupported manifest media type {media_type}")
        if obj.get("schemaVersion") != 2:
            raise APIError(400, "MANIFEST_INVALID", "manifest invalid", "schemaVersion must be 2")

        missing: list[dict[str, str]] = []
        if media_type in IMAGE_MANIFEST_TYPES:
            descs: list[tuple[str, Any]] = [("config", obj.get("config"))]
            layers = obj.get("layers")
            if not isinstance(layers, list):
                raise APIError(400, "MANIFEST_INVALID", "manifest invalid", "layers must be a list")
            descs += [(f"layers[{i}]", d) for i, d in enumerate(layers)]
            for where, desc in descs:
                problem = _descriptor_errors(desc, where)
                if problem:
                    raise APIError(400, "MANIFEST_INVALID", "manifest invalid", problem)
                if desc.get("mediaType") in FOREIGN_LAYER_TYPES and desc.get("urls"):
                    continue
                if not self.storage.has_blob(name, desc["digest"]):
                    missing.append({"digest": desc["digest"]})
        else:
            manifests = obj.get("manifests")
            if not isinstance(manifests, list):
                raise APIError(400, "MANIFEST_INVALID", "manifest invalid", "manifests must be a list")
            for i, desc in enumerate(manifests):
                problem = _descriptor_errors(desc, f"manifests[{i}]")
                if problem:
                    raise APIError(400, "MANIFEST_INVALID", "manifest invalid", problem)
                d = desc["digest"]
                if not self.storage.has_manifest(name, d) and not self.storage.has_blob(name, d):
                    missing.append({"digest": d})
        if missing:
            raise APIError(400, "MANIFEST_BLOB_UNKNOWN", "manifest references a manifest or blob unknown "
                           "to registry", missing[0] if len(missing) == 1 else missing)
        subject = obj.get("subject")
        if subject is not None:
            problem = _descriptor_errors(subject, "subject")
            if problem:
                raise APIError(400, "MANIFEST_INVALID", "manifest invalid", problem)
            return media_type, str(subject["digest"])
        return media_type, None


# ---- starlette / uvicorn --------------------------------------------------------------------------


def create_app(storage: Storage, *, htpasswd: Htpasswd | None = None, realm: str = "dockyard") -> Any:
    """A starlette application serving ``storage`` (starlette is imported here, not at module import)."""
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import FileResponse, Response
    from starlette.routing import Route

    registry = Registry(storage, htpasswd=htpasswd, realm=realm)

    async def body_of(request: Request) -> AsyncIterator[bytes]:
        try:
            async for chunk in request.stream():
                if chunk:
                    yield chunk
        except ClientDisconnect:
            raise BodyDisconnected()

    async def endpoint(request: Request) -> Response:
        path = request.scope["path"]
        rest = path[len("/v2"):].lstrip("/")
        info = RequestInfo(
            method=request.method.upper(),
            path=rest,
            query=request.query_params,
            headers=request.headers,
            body=body_of(request),
        )
        reply = await registry.handle(info)
        file = reply.file
        if file is not None and reply.status == 200:
            try:
                st = os.stat(file)
            except FileNotFoundError:  # deleted since the check
                reply = APIError(404, "BLOB_UNKNOWN", "blob unknown to registry").reply()
                reply.headers["Docker-Distribution-API-Version"] = API_VERSION
            else:
                resp = FileResponse(file, headers=reply.headers, stat_result=st,
                                    media_type=reply.headers.get("Content-Type"))
                resp.chunk_size = FILE_CHUNK
                return resp
        headers = dict(reply.headers)
        body = reply.body
        if info.method == "HEAD":
            headers.setdefault("Content-Length", str(len(body)))
            body = b""
        return Response(body, status_code=reply.status, headers=headers)

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/v2{rest:path}", endpoint, methods=methods)])
    app.state.registry = registry
    return app


def parse_addr(addr: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces), ``[v6]:port``, ``host`` (port 5000) or ``port``."""
    addr = addr.strip()
    if addr.isdigit():
        host, port_s = "0.0.0.0", addr
    elif addr.startswith("["):
        host, sep, rest = addr[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidArgument(f"invalid address {addr!r}: expected [host]:port")
        port_s = rest[1:] or "5000"
    elif addr.count(":") == 1:
        host, port_s = addr.split(":")
        host = host or "0.0.0.0"
    elif ":" not in addr and addr:
        host, port_s = addr, "5000"
    else:
        raise InvalidArgument(f"invalid address {addr!r}: expected host:port")
    try:
        port = int(port_s)
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise InvalidArgument(f"invalid address {addr!r}: bad port {port_s!r}")
    return host, port


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise InvalidArgument(f"cannot resolve {host!r}: {e.strerror}")
    family, type_, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(1024)
    except OSError as e:
        sock.close()
        raise InvalidArgument(f"cannot listen on {host}:{port}: {e.strerror or e}")
    sock.set_inheritable(True)
    return sock


def serve(
    addr: str = "127.0.0.1:5000",
    *,
    root: Path,
    htpasswd: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    log_level: str = "info",
) -> None:
    """Serve a registry stored under ``root`` until SIGINT/SIGTERM.

    ``addr`` may use port 0; the address actually bound is printed on stderr as
    ``dockyard registry listening on http(s)://HOST:PORT``.
    """
    if (tls_cert is None) != (tls_key is None):
        raise InvalidArgument("--tls-cert and --tls-key must be given together")
    for p in (tls_cert, tls_key, htpasswd):
        if p is not None and not Path(p).is_file():
            raise InvalidArgument(f"no such file: {p}")
    level = log_level.lower()
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(levelname)s: %(name)s: %(message)s")

    users = None
    if htpasswd is not None:
        from dockyard.registry.htpasswd import Htpasswd

        users = Htpasswd(htpasswd)
    try:
        storage = FilesystemStorage(root)
        purged = storage.purge_uploads(UPLOAD_MAX_AGE)
    except OSError as e:
        raise InvalidArgument(f"cannot use {root} as the registry's root: {e.strerror or e}")
    if purged:
        log.info("removed %d stale upload(s)", purged)
    app = create_app(storage, htpasswd=users)

    import uvicorn

    host, port = parse_addr(addr)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=level,
        access_log=level in ("debug", "trace", "info"),
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    try:
        config.load()  # fails early on an unreadable certificate or key
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"cannot load TLS certificate/key: {e}")
    sock = _bind(host, port)
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    scheme = "https" if tls_cert else "http"
    print(f"dockyard registry listening on {scheme}://{shown}:{bound[1]} (root {root})", file=sys.stderr,
          flush=True)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down cleanly, then re-raised the SIGINT it caught
        pass
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    import argparse

    from dockyard.registry import serve_cli

    parser = argparse.ArgumentParser(prog="python -m dockyard.registry.server",
                                     description="Serve an OCI distribution registry.")
    serve_cli.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return serve_cli.run(args)
    except DockyardError as e:
        print(f"dockyard registry serve: {e}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
