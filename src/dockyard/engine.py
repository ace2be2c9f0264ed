"""The engine facade: one method per user action; front ends never touch the store directly.

An ``Engine`` is cheap to make (it opens the database and nothing else) so that each CLI command
builds one, uses it, and exits: there is no daemon.
"""

from __future__ import annotations

import os
import time

from dockyard import jsonc  # json's results without importing json (and re with it): start-up time
from dockyard.errors import Conflict, ImageNotFound, InvalidArgument
from dockyard.image import reference
from dockyard.image.oci import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Manifest,
    MutableRecord,
    chain_ids,
    host_platform,
)
from dockyard.records import LazyPath
from dockyard.store.content import ContentStore
from dockyard.store.layerstore import LayerInfo, LayerStore, _rm
from dockyard.store.metadata import ImageRecord, MetadataDB

# No pathlib, contextlib or json at import: every command (``run`` included) builds an Engine, and
# pathlib alone pulls in re, urllib.parse and ipaddress (~6 ms of every run). The Engine works on
# ``root_dir`` (a str); ``root``, the ``Path`` the cold commands use, is made on first use.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager
    from pathlib import Path
    from typing import Any, BinaryIO

DEFAULT_ROOT = "/var/lib/dockyard"


def default_root_dir() -> str:
    return os.environ.get("DOCKYARD_ROOT") or DEFAULT_ROOT


def default_root() -> Path:
    from pathlib import Path

    return Path(default_root_dir())


def now_rfc3339() -> str:
    from dockyard.timestamps import rfc3339

    return rfc3339(time.time())


class NewLayer(MutableRecord):
    """A layer blob already in the content store, with its unpacked chain entry."""

    blob_digest: str
    blob_media_type: str
    blob_size: int
    diff_id: str
    chain_id: str
    _fields = ("blob_digest", "blob_media_type", "blob_size", "diff_id", "chain_id")

    def __init__(self, blob_digest: str, blob_media_type: str, blob_size: int, diff_id: str, chain_id: str) -> None:
        self.blob_digest = blob_digest
        self.blob_media_type = blob_media_type
        self.blob_size = blob_size
        self.diff_id = diff_id
        self.chain_id = chain_id


class Engine:
    #: The root as a ``Path`` (as it was given), for the commands that work with pathlib.
    root = LazyPath("_root_arg")

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._root_arg = root if root is not None else default_root_dir()
        self.root_dir = os.path.abspath(self._root_arg)  # the form the run path uses (no pathlib there)
        os.makedirs(self.root_dir, mode=0o711, exist_ok=True)
        self.db = MetadataDB(os.path.join(self.root_dir, "dockyard.db"))
        self.content = ContentStore(self.root_dir)
        self.layers = LayerStore(self.root_dir, self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- resolving names ------------------------------------------------------------------
    def resolve_image(self, name: str) -> str:
        """An image ID from a name[:tag], name@digest, full or abbreviated ID."""
        if reference.looks_like_id(name):
            ids = self.db.images_by_prefix(name)
            if len(ids) == 1:
                return ids[0]
            if len(ids) > 1:
                raise Conflict(f"ambiguous image ID prefix {name!r}: matches {len(ids)} images")
            if name.startswith("sha256:"):
                raise ImageNotFound(f"No such image: {name}")
        try:
            ref = reference.parse(name)
        except InvalidArgument:
            if reference.looks_like_id(name):
                raise ImageNotFound(f"No such image: {name}")
            raise
        target = (self.db.digest_target(f"{ref.repository}@{ref.digest}") if ref.digest
                  else self.db.tag_target(str(ref)))
        if ref.digest and target is None:
            # A pulled manifest's digest, or the image ID itself given with a name.
            for rec in self.db.images():
                if rec.manifest_digest == ref.digest and any(
                        t.startswith(ref.repository + ":") for t in rec.tags):
                    target = rec.id
        if target is None:
            raise ImageNotFound(f"No such image: {ref.familiar}")
        return target

    def image_config(self, image_id: str) -> ImageConfig:
        rec = self.db.image(image_id)
        if rec is None:
            raise ImageNotFound(f"No such image: {image_id}")
        return ImageConfig.parse(self.content.read(rec.config_digest))

    def image_record(self, image_id: str) -> ImageRecord:
        rec = self.db.image(image_id)
        if rec is None:
            raise ImageNotFound(f"No such image: {image_id}")
        return rec

    def image_chain(self, image_id: str) -> list[LayerInfo]:
        """The unpacked layers of an image, bottom first (each checked to exist)."""
        out = []
        for cid in self.image_record(image_id).chain:
            info = self.layers.get(cid)
            if info is None:
                raise ImageNotFound(f"image {image_id[:19]}: layer {cid} is missing from the store")
            out.append(info)
        return out

    # ---- adding images --------------------------------------------------------------------
    def add_layer_from_tar(self, tar_stream: BinaryIO, parent_chain: str | None,
                           *, expected_diff_id: str | None = None) -> NewLayer:
        """Store an uncompressed layer tar as a blob and unpack it, in one pass."""
        from dockyard.digest import verify

        with self.content.writer() as w:
            tmp, size = self.layers.unpack(tar_stream, parent_chain, sink=w)
            try:
                diff_id = w.digest
                if expected_diff_id:
                    verify(expected_diff_id, diff_id, "layer")
                blob = w.commit(what="layer")
            except BaseException:
                _rm(tmp)
                raise
        chain = chain_ids([parent_chain, diff_id])[1] if parent_chain else diff_id
        if self.layers.get(chain) is None:
            self.layers.publish(tmp, chain, diff_id, parent_chain, size)
        else:
            _rm(tmp)
        return NewLayer(blob.digest, OCI_LAYER, blob.size, diff_id, chain)

    def create_image(self, config: dict[str, Any], layers: list[NewLayer], *, tags: list[str] = (),  # type: ignore[assignment]
                     parent: str | None = None, manifest_media_type: str = OCI_MANIFEST,
                     repo_digests: list[str] = ()) -> str:  # type: ignore[assignment]
        """Write config + manifest blobs and the image row; returns the image ID."""
        cfg = ImageConfig.build(config)
        cfg_blob = self.content.put_bytes(cfg.raw)
        manifest = Manifest.build(
            Descriptor(OCI_CONFIG, cfg_blob.digest, cfg_blob.size),
            [Descriptor(x.blob_media_type, x.blob_digest, x.blob_size) for x in layers],
            manifest_media_type,
        )
        man_blob = self.content.put_bytes(manifest.raw)
        return self.register_image(cfg, man_blob.digest, manifest_media_type, layers, tags=tags,
                                   parent=parent, repo_digests=repo_digests)

    def register_image(self, cfg: ImageConfig, manifest_digest: str | None, manifest_media_type: str | None,
                       layers: list[NewLayer], *, tags: list[str] = (),  # type: ignore[assignment]
                       parent: str | None = None, repo_digests: list[str] = ()) -> str:  # type: ignore[assignment]
        if [x.diff_id for x in layers] != cfg.diff_ids:
            from dockyard.errors import CorruptData

            raise CorruptData("image config's rootfs.diff_ids do not match its layers")
        size = 0
        for x in layers:
            info = self.layers.get(x.chain_id)
            size += info.size if info else 0
        rec = ImageRecord(cfg.id, cfg.id, manifest_digest, manifest_media_type, cfg.created, size, time.time())
        self.db.add_image(rec, [(x.chain_id, x.blob_digest, x.blob_media_type, x.blob_size) for x in layers],
                          tags=list(tags), repo_digests=list(repo_digests), parent=parent)
        return cfg.id

    def import_image(self, source: str, repo_tag: str | None = None, changes: list[str] = (),  # type: ignore[assignment]
                     message: str | None = None, platform: str | None = None) -> str:
        """``docker import``: a root filesystem tar (any compression) becomes a one-layer image."""
        tag = str(reference.parse(repo_tag)) if repo_tag else None
        from dockyard.build.changes import apply_changes
        from dockyard.store.compression import open_decompressed

        base_config: dict[str, Any] = {}
        if changes:
            base_config = apply_changes({}, changes)
        with self._open_source(source) as raw, self.layers.using():
            self.cleanup()
            layer = self.add_layer_from_tar(open_decompressed(raw), None)
            plat = host_platform()
            created = now_rfc3339()
            config: dict[str, Any] = {
                "architecture": plat.architecture,
                "config": base_config,
                "created": created,
                "history": [{"created": created, "comment": message or "Imported from "
                             + (source if source.startswith(("http://", "https://")) else "-")}],
                "os": plat.os,
                "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
            }
            if plat.variant:
                config["variant"] = plat.variant
            return self.create_image(config, [layer], tags=[tag] if tag else [])

    def _open_source(self, source: str) -> AbstractContextManager[BinaryIO]:
        import contextlib  # `dockyard import` is a cold command

        return contextlib.contextmanager(_source_stream)(source)

    # ---- tags and removal -----------------------------------------------------------------
    def tag(self, source: str, target: str) -> None:
        image_id = self.resolve_image(source)
        ref = reference.parse(target)
        if ref.digest:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {target}")
        self.db.set_tag(str(ref), image_id)

    def remove_image(self, name: str, *, force: bool = False) -> list[tuple[str, str]]:
        """``docker rmi``: returns ``[("Untagged", ref) | ("Deleted", id)]`` as Docker prints them.

        By name: untag; delete once nothing else names or uses the image. By ID: delete, refusing
        (unless forced) while several repositories name it or a container uses it; a forced removal
        of an image in use only untags it, as Docker does.
        """
        image_id = self.resolve_image(name)
        rec = self.image_record(image_id)
        short = image_id.removeprefix("sha256:")[:12]
        users = [r for r in self.db.containers() if r["image_id"] == image_id]
        norm = _try_norm(name)
        by_name = norm is not None and (self.db.tag_target(norm) == image_id)
        out: list[tuple[str, str]] = []
        if by_name:
            assert norm is not None
            if len(rec.tags) > 1 or (users and force):
                self.db.remove_tag(norm)
                return [("Untagged", reference.parse(norm).familiar)]
            if users:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name}" (must force) - container '
                    f"{users[0]['id'][:12]} is using its referenced image {short}")
        else:
            if len(rec.tags) > 1 and not force:
                raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is referenced "
                               "in multiple repositories")
            if users:
                running = any(jsonc.loads(u["state"]).get("status") == "running" for u in users)
                if not force or running:
                    raise Conflict(
                        f"conflict: unable to delete {short} (must be forced) - image is being used by "
                        f"{'running' if running else 'stopped'} container {users[0]['id'][:12]}"
                        if not (force and running) else
                        f"conflict: unable to delete {short} (cannot be forced) - image is being used by "
                        f"running container {users[0]['id'][:12]}")
        out += [("Untagged", reference.parse(t).familiar) for t in rec.tags]
        out += [("Untagged", reference.parse(d).familiar) for d in rec.repo_digests]
        if users:  # forced, stopped users: keep the image for them, untagged
            for t in rec.tags:
                self.db.remove_tag(t)
            return out
        with self.layers.exclusive():
            self.db.remove_image(image_id)
            out.append(("Deleted", image_id))
            self.gc()
        return out

    def prune_images(self, all_images: bool = False) -> tuple[list[tuple[str, str]], int]:
        """``docker image prune``: dangling images (or all unused with ``-a``); returns (lines, bytes)."""
        used = self.db.images_in_use() | (set() if all_images else self.db.cache_image_ids())
        out: list[tuple[str, str]] = []
        before = self._disk_usage()
        with self.layers.exclusive():
            for rec in self.db.images():
                if rec.id in used or (rec.tags and not all_images):
                    continue
                if self.db.children(rec.id) and not all_images:
                    continue
                for t in rec.tags:
                    out.append(("untagged", reference.parse(t).familiar))
                self.db.remove_image(rec.id)
                out.append(("deleted", rec.id))
            self.gc()
        return out, max(0, before - self._disk_usage())

    def _disk_usage(self) -> int:
        total = sum(b.size for b in self.content.walk())
        total += sum(r["size"] for r in self.db.layers())
        return total

    def gc(self) -> None:
        """Mark and sweep: free blobs and layers that no image or container references.

        Called with the exclusive lock held, so no command is between unpacking and registering.
        """
        needed_chains = self.db.referenced_chain_ids()
        rows = {r["chain_id"]: r for r in self.db.layers()}
        stack = list(needed_chains)
        while stack:  # parents of needed layers are needed too
            c = stack.pop()
            parent = rows[c]["parent"] if c in rows else None
            if parent and parent not in needed_chains:
                needed_chains.add(parent)
                stack.append(parent)
        for cid in rows:
            if cid not in needed_chains:
                self.layers.remove(cid)
        needed_blobs = self.db.referenced_blobs()
        for b in list(self.content.walk()):
            if b.digest not in needed_blobs:
                self.content.delete(b.digest)

    def cleanup(self) -> None:
        """Remove what crashed commands left behind (unfinished blobs and layers)."""
        from dockyard.store.content import _pid_alive

        self.content.cleanup_ingest()
        for name in os.listdir(self.layers.layers_dir):  # names, not Paths: one per layer on every build
            if name.startswith("tmp-"):
                pid_s = name.split("-")[1]
                if pid_s.isdigit() and not _pid_alive(int(pid_s)):
                    _rm(os.path.join(self.layers.layers_dir, name))

    # ---- reading --------------------------------------------------------------------------
    def list_images(self) -> list[ImageRecord]:
        return sorted(self.db.images(), key=lambda r: (r.created or "", r.added_at), reverse=True)

    def inspect_image(self, image_id: str) -> dict[str, Any]:
        """Docker's ``image inspect`` JSON shape."""
        rec = self.image_record(image_id)
        cfg = self.image_config(image_id)
        d = cfg.data
        c = dict(cfg.config)
        defaults: dict[str, Any] = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
                                    "AttachStdout": False, "AttachStderr": False, "Tty": False,
                                    "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
                                    "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
                                    "OnBuild": None, "Labels": None}
        config = {**defaults, **c}
        return {
            "Id": rec.id,
            "RepoTags": [reference.parse(t).familiar for t in rec.tags],
            "RepoDigests": [reference.parse(x).familiar for x in rec.repo_digests],
            "Parent": self.db.image_parent(rec.id) or "",
            "Comment": (cfg.history[-1].get("comment", "") if cfg.history else ""),
            "Created": d.get("created", ""),
            "DockerVersion": d.get("docker_version", ""),
            "Author": d.get("author", ""),
            "Config": config,
            "Architecture": d.get("architecture", ""),
            **({"Variant": d["variant"]} if d.get("variant") else {}),
            "Os": d.get("os", ""),
            "Size": rec.size,
            "GraphDriver": {
                "Data": self._graph_driver_data(rec),
                "Name": "overlay2",
            },
            "RootFS": {"Type": "layers", "Layers": cfg.diff_ids},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }

    def _graph_driver_data(self, rec: ImageRecord) -> dict[str, str] | None:
        paths = [self.layers.diff_dir(c) for c in rec.chain]
        if not paths:
            return None
        return {"LowerDir": ":".join(reversed(paths[:-1])), "MergedDir": "", "UpperDir": paths[-1],
                "WorkDir": ""} if len(paths) > 1 else {"UpperDir": paths[0]}

    def history(self, image_id: str) -> list[dict[str, Any]]:
        """History entries newest first, each with the size of its layer (0 for empty layers)."""
        rec = self.image_record(image_id)
        cfg = self.image_config(image_id)
        sizes = [(self.layers.get(c).size if self.layers.get(c) else 0) for c in rec.chain]  # type: ignore[union-attr]
        hist = cfg.history or [{"created": cfg.created or ""} for _ in sizes]
        out = []
        li = 0
        for h in hist:
            size = 0
            if not h.get("empty_layer") and li < len(sizes):
                size = sizes[li]
                li += 1
            out.append({**h, "size": size})
        out.reverse()
        # Docker shows the image ID on the newest entry and <missing> for older ones.
        for i, h in enumerate(out):
            h["id"] = rec.id if i == 0 else "<missing>"
        return out

    def inspect_container(self, name: str) -> dict[str, Any]:
        from dockyard.ops import containers

        return containers.inspect(self, containers.resolve(self, name))

    def system_df(self) -> dict[str, Any]:
        imgs = self.db.images()
        used = self.db.images_in_use()
        layer_rows = self.db.layers()
        shared: dict[str, int] = {}
        for rec in imgs:
            for c in self.db.image(rec.id).chain:  # type: ignore[union-attr]
                shared[c] = shared.get(c, 0) + 1
        total_layers = sum(r["size"] for r in layer_rows)
        reclaim = 0
        for rec in imgs:
            if rec.id not in used:
                for c in self.db.image(rec.id).chain:  # type: ignore[union-attr]
                    if shared.get(c) == 1:
                        row = self.db.layer(c)
                        reclaim += row["size"] if row else 0
        containers = self.db.containers()
        return {
            "images": (len(imgs), len([i for i in imgs if i.id in used]), total_layers, reclaim),
            "containers": (len(containers),
                           len([c for c in containers if jsonc.loads(c["state"]).get("status") == "running"]),
                           0, 0),
        }


def _source_stream(source: str) -> Iterator[BinaryIO]:
    """What ``docker import`` reads: stdin (``-``), an HTTP(S) URL or a file (a generator for
    ``contextlib.contextmanager``, applied where it is used: contextlib is not imported by ``run``)."""
    import sys

    if source == "-":
        yield sys.stdin.buffer
        return
    if source.startswith(("http://", "https://")):
        import httpx

        with httpx.stream("GET", source, follow_redirects=True, timeout=60) as r:
            if r.status_code != 200:
                raise InvalidArgument(f"import {source}: HTTP {r.status_code}")
            yield _IterReader(r.iter_bytes())  # type: ignore[misc]
        return
    try:
        f = open(source, "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise InvalidArgument(f"open {source}: no such file or directory")
    except IsADirectoryError:
        raise InvalidArgument(f"{source} is a directory, not a tar archive")
    with f:
        yield f


class _IterReader:
    """A file-like read() over an iterator of byte chunks (an HTTP response body)."""

    def __init__(self, it: Iterator[bytes]) -> None:
        self._it = it
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._it)
            except StopIteration:
                break
        if n < 0:
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:n], self._buf[n:]
        return data


def _try_norm(name: str) -> str | None:
    try:
        return str(reference.parse(name))
    except InvalidArgument:
        return None
