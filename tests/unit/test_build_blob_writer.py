"""The content store's blob writer: small blobs hashed without hashlib, large ones with it, same digests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dockyard.errors import CorruptData
from dockyard.store import content


@pytest.mark.parametrize("sizes", [[], [0], [10], [100, 200], [content.SMALL_BLOB], [content.SMALL_BLOB, 1],
                                   [700_000, 700_000, 5], [3 * content.SMALL_BLOB]])
def test_digest_matches_hashlib(tmp_path: Path, sizes: list[int]) -> None:
    store = content.ContentStore(tmp_path)
    parts = [os.urandom(n) for n in sizes]
    with store.writer() as w:
        for p in parts:
            w.write(memoryview(p))
        assert w.digest == "sha256:" + hashlib.sha256(b"".join(parts)).hexdigest()
        info = w.commit()
    assert info.size == sum(sizes)
    assert store.read(info.digest) == b"".join(parts)
    assert not list(store.ingest_dir.iterdir())


def test_digest_follows_later_writes(tmp_path: Path) -> None:
    store = content.ContentStore(tmp_path)
    with store.writer() as w:
        w.write(b"a")
        first = w.digest
        w.write(b"b")
        assert w.digest != first
        assert w.commit().digest == "sha256:" + hashlib.sha256(b"ab").hexdigest()


def test_existing_blob_kept_and_copy_dropped(tmp_path: Path) -> None:
    store = content.ContentStore(tmp_path)
    a = store.put_bytes(b"same")
    b = store.put_bytes(b"same")
    assert a == b
    assert not list(store.ingest_dir.iterdir())


def test_mismatch_leaves_nothing(tmp_path: Path) -> None:
    store = content.ContentStore(tmp_path)
    with pytest.raises(CorruptData):
        store.put_bytes(b"x", expected_digest="sha256:" + "0" * 64)
    assert not list(store.ingest_dir.iterdir())
    assert not list(store.blob_dir.iterdir())
