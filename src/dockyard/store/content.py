"""The content store: blobs named by their digest, as in an OCI image layout.

A blob is visible (``blobs/sha256/<hex>``) only once its bytes were hashed and checked against the
expected digest and size; until then it lives under ``ingest/`` with the writer's pid in its name,
so that a crashed writer's leftovers can be recognised and removed by the next command.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from dockyard.digest import CHUNK, hex_of, random_hex, validate
from dockyard.errors import BlobNotFound, CorruptData
from dockyard.records import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
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

    def __init__(self, store: ContentStore) -> None:
        self._store = store
        self.path = store.ingest_dir / f"{os.getpid()}-{random_hex(8)}"
        self._f: BinaryIO | None = open(self.path, "xb")  # noqa: SIM115 - closed in commit/abort
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
            target = self._store.path(digest)
            if target.exists():
                self._f.close()
                self._f = None
                self.path.unlink()
            else:
                self._f.flush()
                os.fsync(self._f.fileno())
                self._f.close()
                self._f = None
                os.chmod(self.path, 0o444)
                os.rename(self.path, target)
        except BaseException:
            self.abort()
            raise
        return BlobInfo(digest, self.size)

    def abort(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._f is not None:
            self.abort()


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blob_dir = root / "blobs" / "sha256"
        self.ingest_dir = root / "ingest"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.blob_dir / hex_of(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def info(self, digest: str) -> BlobInfo:
        try:
            return BlobInfo(digest, self.path(digest).stat().st_size)
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found in the content store")

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
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
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()

    def walk(self) -> Iterator[BlobInfo]:
        for p in self.blob_dir.iterdir():
            yield BlobInfo("sha256:" + p.name, p.stat().st_size)

    def cleanup_ingest(self) -> int:
        """Remove unfinished writes whose writer process is gone (a crash or a ``kill -9``)."""
        removed = 0
        for p in self.ingest_dir.iterdir():
            pid_s = p.name.split("-", 1)[0]
            if pid_s.isdigit() and _pid_alive(int(pid_s)):
                continue
            if p.is_dir():
                import shutil

                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
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
