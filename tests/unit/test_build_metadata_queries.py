"""The metadata queries a build leans on: ``image`` and ``cache_image``, one round trip each."""

from __future__ import annotations

from pathlib import Path

from dockyard.store.metadata import ImageRecord, MetadataDB


def _db(tmp_path: Path) -> MetadataDB:
    db = MetadataDB(tmp_path / "dockyard.db")
    layers = [(f"sha256:chain{i}", f"sha256:blob{i}", "application/vnd.oci.image.layer.v1.tar", 10 + i)
              for i in range(12)]  # idx 10 and 11 sort after 2 as text: order must be numeric
    db.add_image(ImageRecord("sha256:a", "sha256:a", "sha256:m", "mt", "2024-01-01T00:00:00Z", 5, 1.5),
                 layers, tags=["docker.io/library/z:1", "docker.io/library/b:2"],
                 repo_digests=["docker.io/library/b@sha256:x"])
    db.add_image(ImageRecord("sha256:e", "sha256:e", None, None, None, 0, 2.0), [])
    return db


def test_image(tmp_path: Path) -> None:
    db = _db(tmp_path)
    rec = db.image("sha256:a")
    assert rec is not None
    assert (rec.id, rec.config_digest, rec.manifest_digest, rec.manifest_media_type, rec.created, rec.size,
            rec.added_at) == ("sha256:a", "sha256:a", "sha256:m", "mt", "2024-01-01T00:00:00Z", 5, 1.5)
    assert rec.tags == ["docker.io/library/b:2", "docker.io/library/z:1"]
    assert rec.repo_digests == ["docker.io/library/b@sha256:x"]
    assert rec.chain == [f"sha256:chain{i}" for i in range(12)]
    empty = db.image("sha256:e")
    assert empty is not None and (empty.tags, empty.repo_digests, empty.chain) == ([], [], [])
    assert db.image("sha256:missing") is None
    db.close()


def test_cache_image(tmp_path: Path) -> None:
    db = _db(tmp_path)
    db.cache_put("k1", "sha256:a")
    db.cache_put("k2", "sha256:e")
    db.cache_put("k3", "sha256:gone")
    hit = db.cache_image("k1")
    assert hit is not None
    image_id, config_digest, layers = hit
    assert (image_id, config_digest) == ("sha256:a", "sha256:a")
    assert layers == [(f"sha256:chain{i}", f"sha256:blob{i}", "application/vnd.oci.image.layer.v1.tar", 10 + i)
                      for i in range(12)]
    assert db.cache_image("k2") == ("sha256:e", "sha256:e", [])
    assert db.cache_image("k3") is None
    assert db.cache_image("nope") is None
    db.close()
