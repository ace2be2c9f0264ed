"""The content store: blobs named by their digest, as in an OCI image layout.

A blob is visible (``blobs/sha256/<hex>``) only once its bytes were hashed and checked against the
expected digest and size; until then it lives under ``ingest/`` with the writer's pid in its name,
so that a crashed writer's leftovers can be recognised and removed by the next command.
"""

from __future__ import annotations

import os

from dockyard.digest import CHUNK, hex_of, random_hex, validate
from dockyard.errors import BlobNotFound, CorruptData
from dockyard.records import LazyPath, Record

# No pathlib or contextlib here: ``run`` opens the store and reads an image config through it, and
# pathlib alone pulls in re, urllib.parse and ipaddress (~6 ms of every run). The ``Path`` attributes
# cold callers use (``root``, ``blob_dir``, ``ingest_dir``, ``path()``) are made on first use.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any, BinaryIO


class BlobInfo(Record):
    digest: str
    size: int
    _fields = ("digest", "size")

    def __init__(self, digest: str, size: int) -> None:
        self.__dict__.update(digest=digest, size=size)


#: Blobs up to this size are hashed with CPython's own SHA-256 (:func:`dockyard.digest.sha256_small`)
#: once complete: loading OpenSSL for ``hashlib`` costs ~3 ms, more than hashing a config, a manifest
#: or a small layer takes. A larger blob switches to ``hashlib`` (faster on bulk data) when it gets here.
SMALL_BLOB = 1 << 20


class BlobWriter:
    """Accumulates a blob in ``ingest/``; ``commit`` verifies and publishes it atomically."""

    path = LazyPath("file")

    def __init__(self, store: ContentStore) -> None:
        self._store = store
        self.file = os.path.join(store.ingest_root, f"{os.getpid()}-{random_hex(8)}")
        self._f: BinaryIO | None = open(self.file, "xb")  # noqa: SIM115 - closed in commit/abort
        self._h: Any = None  # a hashlib object once the blob outgrew SMALL_BLOB
        self._small: list[bytes] = []  # until then, what was written
        self._digest: str | None = None
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        assert self._f is not None
        self._f.write(data)
        self.size += len(data)
        if self._h is not None:
            self._h.update(data)
        else:
            self._small.append(bytes(data))
            self._digest = None
            if self.size > SMALL_BLOB:
                import hashlib

                self._h = hashlib.sha256()
                for part in self._small:
                    self._h.update(part)
                self._small = []
        return len(data)

    @property
    def digest(self) -> str:
        if self._h is not None:
            return "sha256:" + self._h.hexdigest()
        if self._digest is None:
            from dockyard.digest import sha256_small

            data = b"".join(self._small)
            self._small = [data]
            self._digest = "sha256:" + sha256_small(data)
        return self._digest

    def commit(self, expected_digest: str | None = None, expected_size: int | None = None,
               *, what: str = "blob") -> BlobInfo:
        """Verify the blob, then publish it: its bytes reach the disk (``fsync``) before the rename
        that makes it visible, so a crash leaves either no blob or the whole of it. A blob already
        in the store (same digest: same bytes) is left as it is and the copy dropped, unsynced."""
        assert self._f is not None
        digest = self.digest
        try:
            if expected_size is not None and self.size != expected_size:
                raise CorruptData(f"{what}: size mismatch: expected {expected_size} bytes, got {self.size}")
            if expected_digest is not None and expected_digest != digest:
                raise CorruptData(f"{what}: digest mismatch: expected {expected_digest}, got {digest}")
            target = self._store.blob_file(digest)
            if os.path.exists(target):
                self._f.close()
                self._f = None
                os.unlink(self.file)
            else:
                self._f.flush()
                os.fsync(self._f.fileno())
                self._f.close()
                self._f = None
                os.chmod(self.file, 0o444)
                os.rename(self.file, target)
        except BaseException:
            self.abort()
            raise
        return BlobInfo(digest, self.size)

    def abort(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        try:
            os.unlink(self.file)
        except FileNotFoundError:
            pass

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._f is not None:
            self.abort()


class ContentStore:
    root = LazyPath("root_dir")
    blob_dir = LazyPath("blob_root")
    ingest_dir = LazyPath("ingest_root")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root_dir = os.fspath(root)
        self.blob_root = os.path.join(self.root_dir, "blobs", "sha256")
        self.ingest_root = os.path.join(self.root_dir, "ingest")
        os.makedirs(self.blob_root, exist_ok=True)
        os.makedirs(self.ingest_root, exist_ok=True)

    def blob_file(self, digest: str) -> str:
        """``path()`` as a string, for the run path (which does without pathlib)."""
        return os.path.join(self.blob_root, hex_of(digest))

    def path(self, digest: str) -> Path:
        from pathlib import Path

        return Path(self.blob_file(digest))

    def has(self, digest: str) -> bool:
        return os.path.exists(self.blob_file(digest))

    def info(self, digest: str) -> BlobInfo:
        try:
            return BlobInfo(digest, os.stat(self.blob_file(digest)).st_size)
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found in the content store")

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_file(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found in the content store")

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put_bytes(self, data: bytes, expected_digest: str | None = None) -> BlobInfo:
        with self.writer() as w:
            w.write(data)
            return w.commit(expected_digest)

    def put_stream(self, stream: BinaryIO, expected_digest: str | None = None,
                   expected_size: int | None = None, *, what: str = "blob") -> BlobInfo:
        if expected_digest is not None:
            validate(expected_digest)
            if self.has(expected_digest):
                return self.info(expected_digest)
        with self.writer() as w:
            while chunk := stream.read(CHUNK):
                w.write(chunk)
            return w.commit(expected_digest, expected_size, what=what)

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.blob_file(digest))
        except FileNotFoundError:
            pass

    def walk(self) -> Iterator[BlobInfo]:
        for name in os.listdir(self.blob_root):
            yield BlobInfo("sha256:" + name, os.stat(os.path.join(self.blob_root, name)).st_size)

    def cleanup_ingest(self) -> int:
        """Remove unfinished writes whose writer process is gone (a crash or a ``kill -9``)."""
        removed = 0
        for name in os.listdir(self.ingest_root):
            pid_s = name.split("-", 1)[0]
            if pid_s.isdigit() and _pid_alive(int(pid_s)):
                continue
            p = os.path.join(self.ingest_root, name)
            if os.path.isdir(p):
                import shutil

                shutil.rmtree(p, ignore_errors=True)
            else:
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
            removed += 1
        return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
