"""Registry storage: blobs, upload sessions, manifests, tags and referrers on a filesystem.

``Storage`` is the protocol the HTTP server uses; ``FilesystemStorage`` implements it. Everything
is synchronous; the server runs the slow parts (fsync, rehash) in a thread.

Layout under ``root`` (close to the distribution project's, so it reads familiarly)::

    blobs/<algo>/<hex>                                     content: every blob and every manifest
    uploads/<uuid>/data                                    bytes received so far for an upload
    uploads/<uuid>/info.json                               {"name": repository, "started": epoch}
    repositories/<name>/_layers/<algo>/<hex>/link          blob is readable from <name>
    repositories/<name>/_manifests/revisions/<algo>/<hex>/link        manifest is in <name>
    repositories/<name>/_manifests/revisions/<algo>/<hex>/mediatype   its Content-Type
    repositories/<name>/_manifests/tags/<tag>/current/link            tag -> manifest digest
    repositories/<name>/_referrers/<algo>/<subject-hex>/<algo>/<hex>  descriptor JSON of a
                                                                      manifest whose subject is it

``<name>`` may have several ``/``-separated components; repository names never have a component
that starts with ``_`` so the ``_layers``/``_manifests``/``_referrers`` folders cannot collide
with a nested repository.

Rules that keep it consistent without locks:

* a blob appears under ``blobs/`` only after its bytes were hashed and matched the digest, and
  only by ``os.replace`` of a fully written, fsynced file; the same content written twice is the
  same file, so concurrent writers cannot corrupt it;
* every small file (links, media types, tags) is written to a temporary name in its folder and
  renamed over the old one, so a reader sees the old or the new value, never a partial one;
* a blob is readable from a repository only when that repository has a link to it (pushed there,
  or mounted from another repository that has it), as in distribution.

Deleting a blob or manifest removes the repository's link; the content under ``blobs/`` stays
(no garbage collection yet).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from dockyard.digest import CHUNK, is_digest, validate
from dockyard.errors import BlobNotFound, CorruptData, InvalidArgument, NotFound

NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_NAME_LENGTH = 255


class RepositoryNotFound(NotFound):
    pass


class ManifestNotFound(NotFound):
    pass


class UploadNotFound(NotFound):
    pass


class DigestMismatch(CorruptData):
    pass


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and bool(NAME_RE.match(name))


def is_valid_tag(tag: str) -> bool:
    return bool(TAG_RE.match(tag))


def validate_name(name: str) -> str:
    if not is_valid_name(name):
        raise InvalidArgument(f"invalid repository name {name!r}")
    return name


def validate_tag(tag: str) -> str:
    if not is_valid_tag(tag):
        raise InvalidArgument(f"invalid tag {tag!r}")
    return tag


@dataclass(frozen=True)
class Manifest:
    data: bytes
    media_type: str
    digest: str


class UploadWriter(Protocol):
    """Appends one chunk to an upload; used as a context manager.

    Leaving the ``with`` block normally keeps the chunk; leaving it by an exception (or after
    ``rollback()``) truncates the upload back to where the chunk started, so a chunk is all or
    nothing.
    """

    start: int
    size: int

    def write(self, data: bytes) -> None: ...

    def rollback(self) -> None: ...

    def __enter__(self) -> UploadWriter: ...

    def __exit__(self, *exc: object) -> None: ...


class Storage(Protocol):
    # blobs (``name`` scopes the lookup to blobs linked to that repository)
    def blob_path(self, digest: str) -> Path: ...

    def has_blob(self, name: str, digest: str) -> bool: ...

    def stat_blob(self, name: str, digest: str) -> int: ...

    def open_blob(self, name: str, digest: str) -> BinaryIO: ...

    def delete_blob(self, name: str, digest: str) -> None: ...

    def link_blob(self, name: str, digest: str) -> None: ...

    def mount_blob(self, name: str, digest: str, from_name: str | None) -> bool: ...

    # uploads
    def new_upload(self, name: str) -> str: ...

    def append_upload(self, name: str, upload_id: str) -> UploadWriter: ...

    def upload_size(self, name: str, upload_id: str) -> int: ...

    def commit_upload(self, name: str, upload_id: str, digest: str) -> int: ...

    def cancel_upload(self, name: str, upload_id: str) -> None: ...

    # manifests and tags
    def put_manifest(self, name: str, reference: str, data: bytes, media_type: str) -> str: ...

    def get_manifest(self, name: str, reference: str) -> Manifest: ...

    def has_manifest(self, name: str, digest: str) -> bool: ...

    def delete_manifest(self, name: str, reference: str) -> None: ...

    def tag(self, name: str, tag: str, digest: str) -> None: ...

    def untag(self, name: str, tag: str) -> None: ...

    def list_tags(self, name: str) -> list[str]: ...

    def list_repositories(self) -> list[str]: ...

    def referrers(self, name: str, digest: str) -> list[dict[str, Any]]: ...


def _split(digest: str) -> tuple[str, str]:
    algo, hexpart = validate(digest).split(":", 1)
    return algo, hexpart


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _FileUploadWriter:
    def __init__(self, storage: FilesystemStorage, upload_id: str, path: Path) -> None:
        self._storage = storage
        self._id = upload_id
        self._path = path
        self._f: BinaryIO | None = None
        self._hasher: Any = None
        self._saved: Any = None
        self.start = 0
        self.size = 0

    def __enter__(self) -> _FileUploadWriter:
        f = open(self._path, "r+b", buffering=CHUNK)  # noqa: SIM115 - closed in __exit__
        try:
            f.seek(0, os.SEEK_END)
            self.start = self.size = f.tell()
            hasher = self._storage._take_hasher(self._id, self.size, self._path)
        except BaseException:
            f.close()
            raise
        self._f = f
        self._hasher = hasher
        self._saved = hasher.copy()
        return self

    def write(self, data: bytes) -> None:
        assert self._f is not None, "write outside of the with block"
        if not data:
            return
        self._f.write(data)
        self._hasher.update(data)
        self.size += len(data)

    def rollback(self) -> None:
        if self._f is None:
            return
        self._f.flush()
        self._f.truncate(self.start)
        self._f.close()
        self._f = None
        self.size = self.start
        self._storage._put_hasher(self._id, self._saved, self.start)

    def __exit__(self, *exc: object) -> None:
        if self._f is None:
            return
        if exc[0] is not None:
            self.rollback()
            return
        try:
            self._f.close()
        except BaseException:
            self._f = None
            self._storage._drop_hasher(self._id)
            raise
        self._f = None
        self._storage._put_hasher(self._id, self._hasher, self.size)


class FilesystemStorage:
    """``Storage`` on a local filesystem; see the module docstring for the layout."""

    def __init__(self, root: Path | str, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.blobs_dir = self.root / "blobs"
        self.uploads_dir = self.root / "uploads"
        self.repos_dir = self.root / "repositories"
        for d in (self.blobs_dir, self.uploads_dir, self.repos_dir):
            d.mkdir(parents=True, exist_ok=True)
        # running hash of each upload, so that finishing one does not read it again
        self._hashers: dict[str, tuple[Any, int]] = {}
        self._lock = threading.Lock()

    # ---- small atomic files -------------------------------------------------------------------

    def _write_atomic(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @staticmethod
    def _read_text(path: Path) -> str | None:
        try:
            return path.read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None

    # ---- paths --------------------------------------------------------------------------------

    def _repo(self, name: str) -> Path:
        return self.repos_dir / validate_name(name)

    def blob_path(self, digest: str) -> Path:
        algo, hexpart = _split(digest)
        return self.blobs_dir / algo / hexpart

    def _layer_link(self, name: str, digest: str) -> Path:
        algo, hexpart = _split(digest)
        return self._repo(name) / "_layers" / algo / hexpart / "link"

    def _revision_dir(self, name: str, digest: str) -> Path:
        algo, hexpart = _split(digest)
        return self._repo(name) / "_manifests" / "revisions" / algo / hexpart

    def _tag_link(self, name: str, tag: str) -> Path:
        return self._repo(name) / "_manifests" / "tags" / validate_tag(tag) / "current" / "link"

    def _upload_dir(self, upload_id: str) -> Path:
        if not UUID_RE.match(upload_id):
            raise UploadNotFound(f"unknown upload {upload_id!r}")
        return self.uploads_dir / upload_id

    def repository_exists(self, name: str) -> bool:
        return self._repo(name).is_dir()

    # ---- blobs --------------------------------------------------------------------------------

    def has_blob(self, name: str, digest: str) -> bool:
        return self._layer_link(name, digest).is_file() and self.blob_path(digest).is_file()

    def stat_blob(self, name: str, digest: str) -> int:
        if not self._layer_link(name, digest).is_file():
            raise BlobNotFound(f"blob {digest} not found in {name}")
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found")

    def open_blob(self, name: str, digest: str) -> BinaryIO:
        if not self._layer_link(name, digest).is_file():
            raise BlobNotFound(f"blob {digest} not found in {name}")
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found")

    def delete_blob(self, name: str, digest: str) -> None:
        link = self._layer_link(name, digest)
        try:
            link.unlink()
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found in {name}")
        with contextlib.suppress(OSError):
            link.parent.rmdir()

    def link_blob(self, name: str, digest: str) -> None:
        if not self.blob_path(digest).is_file():
            raise BlobNotFound(f"blob {digest} not found")
        link = self._layer_link(name, digest)
        if not link.is_file():
            self._write_atomic(link, digest.encode())

    def mount_blob(self, name: str, digest: str, from_name: str | None) -> bool:
        """Link ``digest`` into ``name`` if ``from_name`` has it; False if it does not.

        With no ``from_name`` (OCI 1.1's mount without ``from``) any stored copy of the blob will do:
        knowing a digest is as good as knowing the repository, when every user may read every one.
        """
        if from_name is None:
            if not self.blob_path(digest).is_file():
                return False
        elif not is_valid_name(from_name) or not self.has_blob(from_name, digest):
            return False
        self.link_blob(name, digest)
        return True

    def _store_content(self, data: bytes, digest: str) -> None:
        path = self.blob_path(digest)
        if path.is_file():
            return
        self._write_atomic(path, data)

    # ---- uploads ------------------------------------------------------------------------------

    def new_upload(self, name: str) -> str:
        validate_name(name)
        upload_id = str(uuidlib.uuid4())
        d = self.uploads_dir / upload_id
        d.mkdir(parents=True)
        (d / "data").touch()
        self._write_atomic(d / "info.json", json.dumps({"name": name, "started": time.time()}).encode())
        with self._lock:
            self._hashers[upload_id] = (hashlib.sha256(), 0)
        return upload_id

    def _upload_data(self, name: str, upload_id: str) -> Path:
        d = self._upload_dir(upload_id)
        try:
            info = json.loads((d / "info.json").read_bytes())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            raise UploadNotFound(f"unknown upload {upload_id!r}")
        if info.get("name") != name:
            raise UploadNotFound(f"upload {upload_id} is not for {name}")
        return d / "data"

    def upload_size(self, name: str, upload_id: str) -> int:
        try:
            return self._upload_data(name, upload_id).stat().st_size
        except FileNotFoundError:
            raise UploadNotFound(f"unknown upload {upload_id!r}")

    def append_upload(self, name: str, upload_id: str) -> UploadWriter:
        return _FileUploadWriter(self, upload_id, self._upload_data(name, upload_id))

    def _take_hasher(self, upload_id: str, size: int, path: Path, algorithm: str = "sha256") -> Any:
        """The running hash of an upload of ``size`` bytes (rehashing the file if it is unknown)."""
        with self._lock:
            entry = self._hashers.pop(upload_id, None)
        if entry is not None and entry[1] == size and entry[0].name == algorithm:
            return entry[0]
        h = hashlib.new(algorithm)
        with open(path, "rb") as f:
            remaining = size
            while remaining > 0 and (chunk := f.read(min(CHUNK, remaining))):
                h.update(chunk)
                remaining -= len(chunk)
        return h

    def _put_hasher(self, upload_id: str, hasher: Any, size: int) -> None:
        with self._lock:
            self._hashers[upload_id] = (hasher, size)

    def _drop_hasher(self, upload_id: str) -> None:
        with self._lock:
            self._hashers.pop(upload_id, None)

    def commit_upload(self, name: str, upload_id: str, digest: str) -> int:
        """Verify the whole upload against ``digest`` and publish it; returns its size.

        On a mismatch the upload is cancelled and ``DigestMismatch`` raised: nothing is published.
        """
        algo, _ = _split(digest)
        data = self._upload_data(name, upload_id)
        size = data.stat().st_size
        actual = f"{algo}:{self._take_hasher(upload_id, size, data, algo).hexdigest()}"
        if actual != digest:
            self.cancel_upload(name, upload_id)
            raise DigestMismatch(f"upload digest {actual} does not match {digest}")
        if self.fsync:
            with open(data, "rb") as f:
                os.fsync(f.fileno())
        target = self.blob_path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(data, 0o644)
        os.replace(data, target)
        if self.fsync:
            _fsync_dir(target.parent)
        self.link_blob(name, digest)
        self._remove_upload(upload_id)
        return size

    def cancel_upload(self, name: str, upload_id: str) -> None:
        self._upload_data(name, upload_id)
        self._remove_upload(upload_id)

    def _remove_upload(self, upload_id: str) -> None:
        self._drop_hasher(upload_id)
        shutil.rmtree(self._upload_dir(upload_id), ignore_errors=True)

    def purge_uploads(self, older_than: float) -> int:
        """Remove uploads started more than ``older_than`` seconds ago; returns how many."""
        now = time.time()
        removed = 0
        for d in self.uploads_dir.iterdir():
            try:
                started = d.stat().st_mtime
                info = json.loads((d / "info.json").read_bytes())
                started = float(info.get("started", started))
            except (OSError, ValueError):
                pass
            if now - started > older_than:
                self._drop_hasher(d.name)
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed

    # ---- manifests ----------------------------------------------------------------------------

    def put_manifest(self, name: str, reference: str, data: bytes, media_type: str) -> str:
        """Store a manifest's exact bytes; tag it when ``reference`` is a tag. Returns its digest.

        A digest ``reference`` must be the digest of ``data`` (``DigestMismatch`` otherwise).
        """
        if ":" in reference:
            algo, _ = _split(reference)
            digest = f"{algo}:{hashlib.new(algo, data).hexdigest()}"
            if digest != reference:
                raise DigestMismatch(f"manifest digest {digest} does not match {reference}")
        else:
            validate_tag(reference)
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self._store_content(data, digest)
        rev = self._revision_dir(name, digest)
        if self._read_text(rev / "mediatype") != media_type:
            self._write_atomic(rev / "mediatype", media_type.encode())
        if not (rev / "link").is_file():
            self._write_atomic(rev / "link", digest.encode())
        self._index_referrer(name, digest, data, media_type)
        if ":" not in reference:
            self.tag(name, reference, digest)
        return digest

    def _index_referrer(self, name: str, digest: str, data: bytes, media_type: str) -> None:
        subject = _subject_of(data)
        if subject is None:
            return
        obj = json.loads(data)
        desc: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
        artifact_type = obj.get("artifactType")
        if not artifact_type and isinstance(obj.get("config"), dict):
            artifact_type = obj["config"].get("mediaType")
        if artifact_type:
            desc["artifactType"] = artifact_type
        if isinstance(obj.get("annotations"), dict) and obj["annotations"]:
            desc["annotations"] = obj["annotations"]
        s_algo, s_hex = _split(subject)
        algo, hexpart = _split(digest)
        path = self._repo(name) / "_referrers" / s_algo / s_hex / algo / hexpart
        self._write_atomic(path, json.dumps(desc, sort_keys=True).encode())

    def resolve(self, name: str, reference: str) -> str:
        """The digest a tag or digest reference names in ``name`` (``ManifestNotFound`` if none)."""
        if ":" in reference:
            digest = validate(reference)
        else:
            if not is_valid_tag(reference):
                raise ManifestNotFound(f"manifest {reference} not found in {name}")
            link = self._read_text(self._tag_link(name, reference))
            if link is None:
                raise ManifestNotFound(f"manifest {reference} not found in {name}")
            digest = validate(link)
        if not (self._revision_dir(name, digest) / "link").is_file():
            raise ManifestNotFound(f"manifest {reference} not found in {name}")
        return digest

    def has_manifest(self, name: str, digest: str) -> bool:
        return (self._revision_dir(name, digest) / "link").is_file()

    def get_manifest(self, name: str, reference: str) -> Manifest:
        digest = self.resolve(name, reference)
        media_type = self._read_text(self._revision_dir(name, digest) / "mediatype")
        try:
            data = self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise ManifestNotFound(f"manifest {reference} not found in {name}")
        if not media_type:
            try:
                media_type = str(json.loads(data).get("mediaType") or "")
            except (ValueError, AttributeError):
                media_type = ""
        return Manifest(data, media_type or "application/octet-stream", digest)

    def delete_manifest(self, name: str, reference: str) -> None:
        """Delete a tag (``reference`` is a tag) or a manifest and every tag that names it."""
        if ":" not in reference:
            self.untag(name, reference)
            return
        digest = self.resolve(name, reference)
        rev = self._revision_dir(name, digest)
        try:
            subject = _subject_of(self.blob_path(digest).read_bytes())
        except OSError:
            subject = None
        shutil.rmtree(rev, ignore_errors=True)
        for tag in self._all_tags(name):
            if self._read_text(self._tag_link(name, tag)) == digest:
                shutil.rmtree(self._tag_link(name, tag).parent.parent, ignore_errors=True)
        if subject is not None:
            s_algo, s_hex = _split(subject)
            algo, hexpart = _split(digest)
            with contextlib.suppress(OSError):
                (self._repo(name) / "_referrers" / s_algo / s_hex / algo / hexpart).unlink()

    def tag(self, name: str, tag: str, digest: str) -> None:
        if not self.has_manifest(name, digest):
            raise ManifestNotFound(f"manifest {digest} not found in {name}")
        link = self._tag_link(name, tag)
        if self._read_text(link) != digest:
            self._write_atomic(link, digest.encode())

    def untag(self, name: str, tag: str) -> None:
        if not is_valid_tag(tag) or self._read_text(self._tag_link(name, tag)) is None:
            raise ManifestNotFound(f"tag {tag} not found in {name}")
        shutil.rmtree(self._tag_link(name, tag).parent.parent, ignore_errors=True)

    def _all_tags(self, name: str) -> list[str]:
        try:
            entries = list((self._repo(name) / "_manifests" / "tags").iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [e.name for e in entries if is_valid_tag(e.name)]

    def list_tags(self, name: str) -> list[str]:
        if not self.repository_exists(name):
            raise RepositoryNotFound(f"repository {name} not found")
        return sorted(t for t in self._all_tags(name) if (self._tag_link(name, t)).is_file())

    def list_repositories(self) -> list[str]:
        found: list[str] = []
        for dirpath, dirnames, _ in os.walk(self.repos_dir):
            if "_manifests" in dirnames:
                found.append(os.path.relpath(dirpath, self.repos_dir).replace(os.sep, "/"))
            dirnames[:] = [d for d in dirnames if not d.startswith("_") and not d.startswith(".")]
        return sorted(n for n in found if is_valid_name(n))

    def referrers(self, name: str, digest: str) -> list[dict[str, Any]]:
        s_algo, s_hex = _split(digest)
        base = self._repo(name) / "_referrers" / s_algo / s_hex
        out: list[dict[str, Any]] = []
        if not base.is_dir():
            return out
        for algo_dir in sorted(base.iterdir()):
            for entry in sorted(algo_dir.iterdir()):
                if entry.name.startswith("."):
                    continue
                try:
                    desc = json.loads(entry.read_bytes())
                except (OSError, ValueError):
                    continue
                digest_of = desc.get("digest") if isinstance(desc, dict) else None
                if isinstance(digest_of, str) and is_digest(digest_of) and self.has_manifest(name, digest_of):
                    out.append(desc)
        return out


def _subject_of(data: bytes) -> str | None:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    subject = obj.get("subject")
    if isinstance(subject, dict) and isinstance(subject.get("digest"), str):
        try:
            return validate(subject["digest"])
        except InvalidArgument:
            return None
    return None
