"""Digests (``sha256:<hex>``) and hashing while streaming, so nothing is read twice."""

from __future__ import annotations

from dockyard.errors import CorruptData, InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import BinaryIO

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_LOWER_HEX = frozenset("0123456789abcdef")
CHUNK = 1 << 20


def validate(digest: str) -> str:
    """Return ``digest`` if it is a well-formed sha256/sha512 digest, else raise InvalidArgument."""
    if not is_digest(digest):
        raise InvalidArgument(f"invalid digest {digest!r}: expected sha256:<64 hex characters>")
    return digest


def is_digest(value: str) -> bool:
    # No regular expression: compiling one at import costs more than every call of this (start-up time).
    algorithm, sep, hexpart = value.partition(":")
    return bool(sep) and len(hexpart) == _HEX_LENGTH.get(algorithm, -1) and _LOWER_HEX.issuperset(hexpart)


def hex_of(digest: str) -> str:
    return validate(digest).split(":", 1)[1]


def random_hex(nbytes: int) -> str:
    """Random hex for IDs and temp names: os.urandom is what ``secrets.token_hex`` uses, minus its imports."""
    import os

    return os.urandom(nbytes).hex()


def sha256_bytes(data: bytes) -> str:
    import hashlib  # lazily: loading OpenSSL costs ~3 ms that `run` and `ps` never need

    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_small(data: bytes) -> str:
    """The hex sha256 of a small input (a cache key's material, a profile's text).

    CPython's own SHA-256 module loads in a third of the time ``hashlib`` takes to load OpenSSL, which
    `run` and a fully cached build otherwise never need; hashlib (faster on large data) stays the choice
    for file contents.
    """
    try:
        from _sha256 import sha256  # CPython <= 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # CPython >= 3.12
        except ImportError:
            from hashlib import sha256
    return str(sha256(data).hexdigest())


def sha256_file(path: str) -> str:
    import hashlib

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
        import hashlib

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
