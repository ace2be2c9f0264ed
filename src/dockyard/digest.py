"""Digests (``sha256:<hex>``) and hashing while streaming, so nothing is read twice."""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO

from dockyard.errors import CorruptData, InvalidArgument

_DIGEST_RE = re.compile(r"^(sha256):([a-f0-9]{64})$|^(sha512):([a-f0-9]{128})$")
CHUNK = 1 << 20


def validate(digest: str) -> str:
    """Return ``digest`` if it is a well-formed sha256/sha512 digest, else raise InvalidArgument."""
    if not _DIGEST_RE.match(digest):
        raise InvalidArgument(f"invalid digest {digest!r}: expected sha256:<64 hex characters>")
    return digest


def is_digest(value: str) -> bool:
    return bool(_DIGEST_RE.match(value))


def hex_of(digest: str) -> str:
    return validate(digest).split(":", 1)[1]


def random_hex(nbytes: int) -> str:
    """Random hex for IDs and temp names: os.urandom is what ``secrets.token_hex`` uses, minus its imports."""
    import os

    return os.urandom(nbytes).hex()


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class HashingReader:
    """Wraps a binary stream; hashes (and counts) every byte read through it.

    Used to compute a layer's digest and its diff_id in one pass while it is unpacked.
    """

    def __init__(self, raw: BinaryIO, algorithm: str = "sha256") -> None:
        self._raw = raw
        self._h = hashlib.new(algorithm)
        self._algo = algorithm
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._h.update(data)
        self.size += len(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read to the end, so the digest covers trailing bytes a tar reader stopped before."""
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return f"{self._algo}:{self._h.hexdigest()}"


def verify(expected: str, actual: str, what: str) -> None:
    if expected != actual:
        raise CorruptData(f"{what}: digest mismatch: expected {expected}, got {actual}")
