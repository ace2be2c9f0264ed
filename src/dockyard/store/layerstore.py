"""Unpacked layers, one directory per chain ID, shared by every image and container that uses them.

``layers/<chain hex>/diff`` holds one layer in overlayfs' native format (whiteouts as 0:0 character
devices, opaque directories as ``trusted.overlay.opaque``), so a container's root is one overlay
mount over the chain. A layer is unpacked under a temporary name carrying the writer's pid and
renamed into place when complete: a half-unpacked layer is never visible, and a dead writer's
leftovers are swept by the next command.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from dockyard.digest import CHUNK, hex_of, random_hex
from dockyard.records import Record
from dockyard.store.content import BlobWriter, _pid_alive
from dockyard.store.metadata import MetadataDB

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import BinaryIO


class LayerInfo(Record):
    chain_id: str
    diff_id: str
    size: int
    path: Path
    _fields = ("chain_id", "diff_id", "size", "path")

    def __init__(self, chain_id: str, diff_id: str, size: int, path: Path) -> None:
        self.__dict__.update(chain_id=chain_id, diff_id=diff_id, size=size, path=path)


class TeeReader:
    """Feeds every byte read to a BlobWriter, so a stream is stored and unpacked in one pass."""

    def __init__(self, raw: BinaryIO, sink: BlobWriter) -> None:
        self._raw = raw
        self._sink = sink

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._sink.write(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


class LayerStore:
    def __init__(self, root: Path, db: MetadataDB) -> None:
        self.root = root / "layers"
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = db
        self._lock_path = root / "gc.lock"

    def dir_for(self, chain_id: str) -> Path:
        return self.root / hex_of(chain_id)

    def diff_path(self, chain_id: str) -> Path:
        return self.dir_for(chain_id) / "diff"

    def diff_dir(self, chain_id: str) -> str:
        """``diff_path`` as a string, for the run path (which does without pathlib)."""
        return os.path.join(os.fspath(self.root), hex_of(chain_id), "diff")

    def get(self, chain_id: str) -> LayerInfo | None:
        row = self.db.layer(chain_id)
        if row is None or not (self.root / row["dir"] / "diff").is_dir():
            return None
        return LayerInfo(chain_id, row["diff_id"], row["size"], self.root / row["dir"] / "diff")

    @contextlib.contextmanager
    def using(self) -> Iterator[None]:
        """Held (shared) while a command adds layers and images; GC takes it exclusively."""
        with open(self._lock_path, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with open(self._lock_path, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def new_tmp(self) -> Path:
        d = self.root / f"tmp-{os.getpid()}-{random_hex(6)}"
        (d / "diff").mkdir(parents=True)
        return d

    def unpack(self, tar_stream: BinaryIO, parent_chain: str | None, diff_id: str | None = None,
               sink: BlobWriter | None = None) -> tuple[Path, int]:
        """Unpack an uncompressed tar into a fresh temporary layer dir; returns (tmp dir, size)."""
        from dockyard.store import layers

        tmp = self.new_tmp()
        try:
            stream: BinaryIO = TeeReader(tar_stream, sink) if sink is not None else tar_stream  # type: ignore[assignment]
            layers.unpack(stream, tmp / "diff", whiteouts="overlay")
            while stream.read(CHUNK):  # tar's trailing padding belongs to the digest too
                pass
            size = layers.dir_size(tmp / "diff")
        except BaseException:
            _rm(tmp)
            raise
        return tmp, size

    def publish(self, tmp: Path, chain_id: str, diff_id: str, parent: str | None, size: int) -> LayerInfo:
        """Rename a complete temporary layer into place and record it (idempotent under races)."""
        target = self.dir_for(chain_id)
        try:
            os.rename(tmp, target)
        except OSError:
            # Someone else published the same layer first (ENOTEMPTY/EEXIST): theirs is as good.
            _rm(tmp)
        self.db.add_layer(chain_id, diff_id, parent, size, target.name)
        return LayerInfo(chain_id, diff_id, size, target / "diff")

    def remove(self, chain_id: str) -> None:
        row = self.db.layer(chain_id)
        d = self.root / (row["dir"] if row else hex_of(chain_id))
        self.db.remove_layer(chain_id)
        if d.exists():
            trash = self.root / f"tmp-{os.getpid()}-del-{random_hex(4)}"
            with contextlib.suppress(OSError):
                os.rename(d, trash)
                d = trash
            _rm(d)

    def cleanup(self) -> int:
        """Remove temporary dirs of dead writers, and layer dirs with no database row."""
        removed = 0
        known = {r["dir"] for r in self.db.layers()}
        for p in self.root.iterdir():
            if p.name.startswith("tmp-"):
                pid_s = p.name.split("-")[1]
                if pid_s.isdigit() and _pid_alive(int(pid_s)):
                    continue
            elif p.name in known:
                continue
            _rm(p)
            removed += 1
        return removed


def _rm(path: Path) -> None:
    """Remove a tree of any depth (a hostile layer can nest deeper than rmtree's recursion allows)."""
    from dockyard.store.layers import remove_tree

    with contextlib.suppress(OSError):
        remove_tree(path)
