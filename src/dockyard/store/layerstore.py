"""Unpacked layers, one directory per chain ID, shared by every image and container that uses them.

``layers/<chain hex>/diff`` holds one layer in overlayfs' native format (whiteouts as 0:0 character
devices, opaque directories as ``trusted.overlay.opaque``), so a container's root is one overlay
mount over the chain. A layer is unpacked under a temporary name carrying the writer's pid and
renamed into place when complete: a half-unpacked layer is never visible, and a dead writer's
leftovers are swept by the next command.
"""

from __future__ import annotations

import fcntl
import os

from dockyard.digest import CHUNK, hex_of, random_hex
from dockyard.locks import FileLock
from dockyard.records import LazyPath, Record
from dockyard.store.content import BlobWriter, _pid_alive
from dockyard.store.metadata import MetadataDB

# No pathlib or contextlib here: ``run`` looks its image's layers up through this module, and pathlib
# alone pulls in re, urllib.parse and ipaddress (~6 ms of every run). The store works on strings; the
# ``Path`` forms cold callers use (``root``, ``LayerInfo.path``...) are made on demand.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import BinaryIO


class LayerInfo(Record):
    chain_id: str
    diff_id: str
    size: int
    diff_dir: str  # the layer's diff directory (``path`` is its ``Path`` form)
    _fields = ("chain_id", "diff_id", "size", "diff_dir")

    path = LazyPath("diff_dir")

    def __init__(self, chain_id: str, diff_id: str, size: int, path: str | os.PathLike[str]) -> None:
        self.__dict__.update(chain_id=chain_id, diff_id=diff_id, size=size, diff_dir=os.fspath(path))


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
    root = LazyPath("layers_dir")

    def __init__(self, root: str | os.PathLike[str], db: MetadataDB) -> None:
        self.layers_dir = os.path.join(os.fspath(root), "layers")
        os.makedirs(self.layers_dir, exist_ok=True)
        self.db = db
        self._lock_path = os.path.join(os.fspath(root), "gc.lock")

    def diff_dir(self, chain_id: str) -> str:
        """The unpacked layer's directory (a string: the run path does without pathlib)."""
        return os.path.join(self.layers_dir, hex_of(chain_id), "diff")

    def get(self, chain_id: str) -> LayerInfo | None:
        row = self.db.layer(chain_id)
        if row is None:
            return None
        diff = os.path.join(self.layers_dir, row["dir"], "diff")
        if not os.path.isdir(diff):
            return None
        return LayerInfo(chain_id, row["diff_id"], row["size"], diff)

    def using(self) -> FileLock:
        """Held (shared) while a command adds layers and images; GC takes it exclusively."""
        return FileLock(self._lock_path, fcntl.LOCK_SH)

    def exclusive(self) -> FileLock:
        return FileLock(self._lock_path, fcntl.LOCK_EX)

    def new_tmp(self) -> str:
        d = os.path.join(self.layers_dir, f"tmp-{os.getpid()}-{random_hex(6)}")
        os.makedirs(os.path.join(d, "diff"))
        return d

    def unpack(self, tar_stream: BinaryIO, parent_chain: str | None, diff_id: str | None = None,
               sink: BlobWriter | None = None) -> tuple[str, int]:
        """Unpack an uncompressed tar into a fresh temporary layer dir; returns (tmp dir, size)."""
        from dockyard.store import layers

        tmp = self.new_tmp()
        try:
            stream: BinaryIO = TeeReader(tar_stream, sink) if sink is not None else tar_stream  # type: ignore[assignment]
            layers.unpack(stream, os.path.join(tmp, "diff"), whiteouts="overlay")
            while stream.read(CHUNK):  # tar's trailing padding belongs to the digest too
                pass
            size = layers.dir_size(os.path.join(tmp, "diff"))
        except BaseException:
            _rm(tmp)
            raise
        return tmp, size

    def publish(self, tmp: str | os.PathLike[str], chain_id: str, diff_id: str, parent: str | None,
                size: int) -> LayerInfo:
        """Rename a complete temporary layer into place and record it (idempotent under races)."""
        name = hex_of(chain_id)
        target = os.path.join(self.layers_dir, name)
        try:
            os.rename(tmp, target)
        except OSError:
            # Someone else published the same layer first (ENOTEMPTY/EEXIST): theirs is as good.
            _rm(tmp)
        self.db.add_layer(chain_id, diff_id, parent, size, name)
        return LayerInfo(chain_id, diff_id, size, os.path.join(target, "diff"))

    def remove(self, chain_id: str) -> None:
        row = self.db.layer(chain_id)
        d = os.path.join(self.layers_dir, row["dir"] if row else hex_of(chain_id))
        self.db.remove_layer(chain_id)
        if os.path.exists(d):
            trash = os.path.join(self.layers_dir, f"tmp-{os.getpid()}-del-{random_hex(4)}")
            try:
                os.rename(d, trash)
                d = trash
            except OSError:
                pass
            _rm(d)

    def cleanup(self) -> int:
        """Remove temporary dirs of dead writers, and layer dirs with no database row."""
        removed = 0
        known = {r["dir"] for r in self.db.layers()}
        for name in os.listdir(self.layers_dir):
            if name.startswith("tmp-"):
                pid_s = name.split("-")[1]
                if pid_s.isdigit() and _pid_alive(int(pid_s)):
                    continue
            elif name in known:
                continue
            _rm(os.path.join(self.layers_dir, name))
            removed += 1
        return removed


def _rm(path: str | os.PathLike[str]) -> None:
    """Remove a tree of any depth (a hostile layer can nest deeper than rmtree's recursion allows)."""
    from dockyard.store.layers import remove_tree

    try:
        remove_tree(os.fspath(path))
    except OSError:
        pass
