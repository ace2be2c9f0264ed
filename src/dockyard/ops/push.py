"""``push``: upload an image's layers, config and manifest to a registry.

Local layers are stored as uncompressed tars (``application/vnd.oci.image.layer.v1.tar``); they are
compressed with gzip for the registry (level ``DOCKYARD_PUSH_GZIP_LEVEL``, default 1: pushing is
usually limited by the CPU, not the network, and gzip -1 loses little over -6 on layers). The
compressed blob is kept in the content store and remembered in ``distribution/gzip/<hex>.json``
(source digest -> compressed digest), so a second push neither compresses again nor changes a
digest. Pulled layers are already compressed and pushed as they are.

Per layer, as Docker: ``HEAD`` (``Layer already exists``), else a cross-repository mount from a
repository of the same registry that the image (or another image with that layer) was pulled from
or pushed to, known from RepoDigests (``Mounted from x/y``), else an upload (``Pushed``). The config
goes beside the layers (on a thread of its own), then the manifest under the tag; the manifest's
digest becomes a RepoDigest.

The requests go by the client's stdlib transport (``RegistryClient(stdlib_http=True)``): blobs are
sent with ``sendfile`` from the content store (verified when stored; the registry checks the
digest it is given), and httpx is not imported unless a token server must be asked; see
``registry/client.py`` for why. Start-up time counts here (a push of one layer to a local registry
takes a few tenths of a second), so this module imports no more than it needs at once.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
from pathlib import Path

from dockyard.digest import hex_of, sha256_small
from dockyard.errors import BlobNotFound, ImageNotFound, InvalidArgument, RegistryError
from dockyard.image import reference
from dockyard.image.oci import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Manifest,
)
from dockyard.records import MutableRecord
from dockyard.registry.config import RegistryConfig
from dockyard.registry.progress import Progress

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import TextIO

    from dockyard.engine import Engine
    from dockyard.image.reference import Reference
    from dockyard.registry.client import RegistryClient

GZIP_TYPES = (OCI_LAYER_GZIP, DOCKER_LAYER_GZIP)


class _Layer(MutableRecord):
    index: int
    diff_id: str
    source_digest: str  # the blob in the local store
    source_type: str
    source_size: int
    digest: str  # the blob as pushed
    size: int
    media_type: str
    _fields = ("index", "diff_id", "source_digest", "source_type", "source_size", "digest", "size", "media_type")

    def __init__(self, index: int, diff_id: str, source_digest: str, source_type: str, source_size: int) -> None:
        self.index = index
        self.diff_id = diff_id
        self.source_digest = source_digest
        self.source_type = source_type
        self.source_size = source_size
        self.digest = ""
        self.size = 0
        self.media_type = ""


# ---- the compressed-blob cache ------------------------------------------------------------------
def _cache_path(eng: Engine, digest: str) -> Path:
    return eng.root / "distribution" / "gzip" / f"{hex_of(digest)}.json"


def compressed_blob(eng: Engine, digest: str, level: int) -> tuple[str, int]:
    """(digest, size) of the gzip form of an uncompressed layer blob, made once and cached."""
    path = _cache_path(eng, digest)
    try:
        d = json.loads(path.read_text())
        if eng.content.has(d["digest"]) and eng.content.info(d["digest"]).size == d["size"]:
            return str(d["digest"]), int(d["size"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from dockyard.store.compression import CompressingWriter

    with eng.content.open(digest) as src, eng.content.writer() as w:
        cw = CompressingWriter("gzip", w, level=max(1, level))  # type: ignore[arg-type]
        while chunk := src.read(1 << 20):
            cw.write(chunk)
        cw.close()
        blob = w.commit(what="compressed layer")
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"digest": blob.digest, "size": blob.size, "source": digest, "level": level}, f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return blob.digest, blob.size


def mount_candidates(eng: Engine, ref: Reference, source_digest: str) -> list[str]:
    """Repositories of ``ref``'s registry (other than ``ref``'s) known to hold a layer."""
    rows = eng.db.conn.execute(
        "SELECT DISTINCT rd.name FROM repo_digests rd JOIN image_layers il ON il.image_id = rd.image_id"
        " WHERE il.blob_digest = ? ORDER BY rd.name", (source_digest,)).fetchall()
    out: list[str] = []
    for (name,) in rows:
        try:
            r = reference.parse(name)
        except InvalidArgument:
            continue
        if r.domain == ref.domain and r.path != ref.path and r.path not in out:
            out.append(r.path)
    return out


class Pusher:
    def __init__(self, eng: Engine, *, config: RegistryConfig | None = None,
                 progress: Progress | None = None) -> None:
        self.eng = eng
        self.config = config or RegistryConfig.from_env()
        self.progress = progress or Progress(quiet=True)
        self._client: RegistryClient | None = None

    def client(self, domain: str) -> RegistryClient:
        from dockyard.registry.client import RegistryClient

        if self._client is None or self._client.domain != domain:
            self._client = RegistryClient(domain, config=self.config, stdlib_http=True)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def push(self, ref: Reference, image_id: str) -> tuple[str, int]:
        """Push ``image_id`` as ``ref`` (with a tag); returns (manifest digest, manifest size)."""
        eng = self.eng
        client = self.client(ref.domain)
        rec = eng.image_record(image_id)
        cfg_raw = eng.content.read(rec.config_digest)
        cfg = ImageConfig.parse(cfg_raw)
        rows = eng.db.image_layers(image_id)
        if len(rows) != len(cfg.diff_ids):
            raise ImageNotFound(f"image {image_id[:19]}: its layer records do not match its config")
        docker = rec.manifest_media_type == DOCKER_MANIFEST
        layers = [_Layer(i, cfg.diff_ids[i], r["blob_digest"], r["blob_media_type"], r["blob_size"])
                  for i, r in enumerate(rows)]
        if docker and any(x.source_type == OCI_LAYER_ZSTD for x in layers):
            docker = False  # Docker's manifest type has no zstd layers
        for x in layers:
            if not eng.content.has(x.source_digest):
                raise BlobNotFound(f"layer {x.diff_id}: blob {x.source_digest} is missing from the store; "
                                   f"pull or load the image again")
        p = self.progress
        display = list(reversed(layers))  # Docker lists the top layer first
        for x in display:
            p.update(_sid(x.diff_id), "Preparing")
        n = self.config.max_concurrent_uploads
        for x in display[n:]:
            p.update(_sid(x.diff_id), "Waiting")

        def push_config() -> None:
            if client.blob_exists(ref.path, rec.config_digest, push=True) is None:
                client.upload_blob(ref.path, rec.config_digest, len(cfg_raw),
                                   lambda: eng.content.open(rec.config_digest))

        # The layers, and the config beside them (a small blob: its round trips then cost nothing
        # after the layers); a layer's error is raised before the config's. Meanwhile this thread
        # reads the image's own manifest. Then the manifest.
        layer_tasks: list[Callable[[], None]] = [
            functools.partial(self._push_layer, client, ref, x, docker) for x in display]
        original: list[Manifest | None] = [None]

        def read_original() -> None:
            original[0] = self._stored_manifest(rec.manifest_digest)

        errors = _run_in_threads([layer_tasks, [push_config]], [max(1, min(n, len(layers))), 1],
                                 meanwhile=read_original)
        for e in errors:
            if e is not None:
                raise e
        # The manifest: the original bytes when nothing changed, to keep its digest.
        mt = DOCKER_MANIFEST if docker else OCI_MANIFEST
        cfg_desc = Descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, rec.config_digest, len(cfg_raw))
        descs = [Descriptor(x.media_type, x.digest, x.size) for x in layers]
        body = _unchanged(original[0], mt, cfg_desc, descs) or Manifest.build(cfg_desc, descs, mt).raw
        digest = "sha256:" + sha256_small(body)  # a few KB: CPython's sha256 spares loading OpenSSL
        got = client.put_manifest(ref.path, ref.tag or "latest", body, mt)
        if got and got.startswith("sha256:") and got != digest:
            raise RegistryError(f"{ref.familiar}: the registry stored the manifest as {got}, "
                                f"expected {digest}")
        eng.db.add_repo_digest(f"{ref.repository}@{digest}", image_id)
        return digest, len(body)

    def _stored_manifest(self, manifest_digest: str | None) -> Manifest | None:
        """The image's manifest as pulled or loaded (None when there is none, or it cannot be read)."""
        if not manifest_digest:
            return None
        try:
            return Manifest.parse(self.eng.content.read(manifest_digest))
        except Exception:
            return None

    def _push_layer(self, client: RegistryClient, ref: Reference, x: _Layer, docker: bool) -> None:
        eng = self.eng
        p = self.progress
        sid = _sid(x.diff_id)
        if x.source_type == OCI_LAYER:
            x.digest, x.size = compressed_blob(eng, x.source_digest, self.config.push_gzip_level)
            x.media_type = DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP
        else:
            x.digest, x.size = x.source_digest, x.source_size
            x.media_type = x.source_type
            if x.source_type in GZIP_TYPES:
                x.media_type = DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP
        if client.blob_exists(ref.path, x.digest, push=True) is not None:
            p.update(sid, "Layer already exists")
            return
        sources = mount_candidates(eng, ref, x.source_digest)
        if x.digest != x.source_digest:
            sources += [s for s in mount_candidates(eng, ref, x.digest) if s not in sources]
        for src in sources[:3]:
            if client.mount_blob(ref.path, x.digest, src):
                p.update(sid, f"Mounted from {src}")
                return
        sent = [0]

        def on_bytes(n: int) -> None:
            sent[0] += n
            p.update(sid, "Pushing", sent[0], x.size)

        p.update(sid, "Pushing", 0, x.size)
        client.upload_blob(ref.path, x.digest, x.size, lambda: eng.content.open(x.digest), on_bytes=on_bytes)
        p.update(sid, "Pushed")


def _unchanged(m: Manifest | None, mt: str, cfg: Descriptor, layers: list[Descriptor]) -> bytes | None:
    """``m``'s bytes when it says what is pushed (the same types, digests and sizes), else None."""
    if m is None or m.media_type != mt or (m.config.media_type, m.config.digest) != (cfg.media_type, cfg.digest):
        return None
    if [(x.media_type, x.digest, x.size) for x in m.layers] != [(x.media_type, x.digest, x.size) for x in layers]:
        return None
    return m.raw


def _run_in_threads(groups: list[list[Callable[[], None]]], workers: list[int],
                    meanwhile: Callable[[], None] | None = None) -> list[BaseException | None]:
    """Run each group of tasks on its own ``workers[i]`` threads, each group's in order (a thread
    pool without ``concurrent.futures``, whose import is a noticeable part of a push's start-up);
    returns what each task raised (None when it did not), all groups' tasks in a row.
    ``meanwhile`` runs on the calling thread while they work (what it raises is raised after them).
    """
    errors: list[BaseException | None] = []
    threads: list[threading.Thread] = []
    for tasks, n in zip(groups, workers, strict=True):
        base = len(errors)
        errors.extend([None] * len(tasks))
        todo = iter(range(len(tasks)))
        lock = threading.Lock()

        def work(tasks: list[Callable[[], None]] = tasks, todo: Iterator[int] = todo,
                 lock: threading.Lock = lock, base: int = base) -> None:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                try:
                    tasks[i]()
                except BaseException as e:  # handed to the caller, as a Future would
                    errors[base + i] = e

        for _ in range(min(n, len(tasks))):
            t = threading.Thread(target=work, name=f"push_{len(threads)}")
            t.start()
            threads.append(t)
    try:
        if meanwhile is not None:
            meanwhile()
    finally:
        for t in threads:
            t.join()
    return errors


def _sid(diff_id: str) -> str:
    return diff_id.split(":", 1)[-1][:12]


def push(eng: Engine, name: str, quiet: bool = False, out: TextIO | None = None,
         all_tags: bool = False) -> str:
    """``docker push``: returns the manifest digest (of the last tag pushed with ``all_tags``)."""
    out = out if out is not None else sys.stdout
    progress = Progress(out, quiet=quiet)
    ref = reference.parse(name, default_tag=False)
    if ref.digest:
        raise InvalidArgument(f"cannot push a digest reference: {name}")
    if all_tags and ref.tag:
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    if all_tags:
        tags = sorted({reference.parse(t).tag or "latest" for rec in eng.db.images() for t in rec.tags
                       if reference.parse(t).repository == ref.repository})
        if not tags:
            raise ImageNotFound(f"An image does not exist locally with the tag: {ref.familiar_repository}")
    else:
        if ref.tag is None:
            progress.line("Using default tag: latest")
        tags = [ref.tag or "latest"]
    targets = []
    for t in tags:
        try:
            targets.append((ref.with_tag(t), eng.resolve_image(str(ref.with_tag(t)))))
        except ImageNotFound:
            raise ImageNotFound(f"An image does not exist locally with the tag: "
                                f"{ref.familiar_repository if t == 'latest' else ref.with_tag(t).familiar}")
    progress.line(f"The push refers to repository [{ref.repository}]")
    pusher = Pusher(eng, progress=progress)
    digest = ""
    try:
        with eng.layers.using():  # no GC may remove the compressed blobs made for the push
            for r, image_id in targets:
                digest, size = pusher.push(r, image_id)
                progress.line(f"{r.tag}: digest: {digest} size: {size}")
    finally:
        pusher.close()
    if quiet:
        out.write(f"{ref.with_tag(tags[-1])}\n" if not all_tags else f"{ref.repository}\n")
        out.flush()
    return digest
