"""dockyard.digest: the streaming hasher that avoids loading OpenSSL for small layers."""

from __future__ import annotations

import hashlib
import io

import pytest

from dockyard.digest import HashingReader


@pytest.mark.parametrize("n", [0, 1, 1000, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 << 20])
@pytest.mark.parametrize("read_size", [1 << 12, 1 << 20, -1])
def test_hashing_reader_gives_hashlibs_digest_on_either_side_of_the_small_stream_limit(n: int,
                                                                                     read_size: int) -> None:
    """Small streams are hashed by CPython's own SHA-256 at the end, larger ones switch to hashlib
    mid-stream: the digest and size must be the same either way."""
    data = bytes(range(256)) * (n // 256) + b"x" * (n % 256)
    h = HashingReader(io.BytesIO(data))
    h.read(read_size)
    h.drain()
    assert h.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert h.size == n


@pytest.mark.parametrize("n", [0, 64, 1 << 20, (1 << 20) + 1])
def test_sha256_bytes_is_hashlibs_below_and_above_the_small_limit(n: int) -> None:
    from dockyard.digest import sha256_bytes

    data = b"\x01" * n
    assert sha256_bytes(data) == "sha256:" + hashlib.sha256(data).hexdigest()
