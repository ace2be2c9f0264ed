"""Digests (``sha256:<hex>``) and hashing while streaming, so nothing is read twice."""

from __future__ import annotations

from dockyard.errors import CorruptData, InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_LOWER_HEX = frozenset("0123456789abcdef")
CHUNK = 1 << 20
#: A stream up to this size is hashed by CPython's own SHA-256 (no OpenSSL to load): about where
#: hashlib's ~3 ms of loading pays for its faster hashing on this kind of machine.
SMALL_STREAM = 1 << 20


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
    """``sha256:<hex>`` of ``data``: small inputs (chain IDs, configs, manifests) without loading OpenSSL."""
    if len(data) <= SMALL_STREAM:
        return "sha256:" + sha256_small(data)
    import hashlib  # lazily: loading OpenSSL costs ~3 ms that `run`, `ps` and most builds never need

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

    Used to compute a layer's digest and its diff_id in one pass while it is unpacked. A stream that
    stays under ``SMALL_STREAM`` is hashed at the end with :func:`sha256_small`: a build step's or a
    commit's layer is usually small, and loading OpenSSL for ``hashlib`` costs ~3 ms, more than hashing it.
    """

    def __init__(self, raw: BinaryIO, algorithm: str = "sha256") -> None:
        self._raw = raw
        self._h: Any = None
        self._held: list[bytes] | None = [] if algorithm == "sha256" else None
        if self._held is None:
            import hashlib

            self._h = hashlib.new(algorithm)
        self._algo = algorithm
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.size += len(data)
        if self._held is not None:
            self._held.append(data)
            if self.size <= SMALL_STREAM:
                return data
            import hashlib

            self._h = hashlib.sha256()
            for chunk in self._held:
                self._h.update(chunk)
            self._held = None
            return data
        self._h.update(data)
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
        if self._held is not None:
            return "sha256:" + sha256_small(b"".join(self._held))
        return f"{self._algo}:{self._h.hexdigest()}"


def verify(expected: str, actual: str, what: str) -> None:
    if expected != actual:
        raise CorruptData(f"{what}: digest mismatch: expected {expected}, got {actual}")
