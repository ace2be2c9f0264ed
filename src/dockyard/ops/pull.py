"""``pull``: fetch an image from a registry into the store, verified, in one pass per layer.

For each layer the HTTP body is read once: every compressed byte goes to a ``BlobWriter`` (which
hashes it) while the same bytes are decompressed, hashed again (the diff_id) and unpacked into a
temporary layer directory. Layers are fetched in parallel (``DOCKYARD_MAX_CONCURRENT_DOWNLOADS``,
default 3); a broken connection resumes with ``Range``. Nothing becomes visible until every layer
checked out: blobs are committed, layers published and the image row written (one transaction)
only after all digests and diff_ids matched, so a failed pull leaves no image, no tag, no blob.

The requests go by the client's stdlib transport (``RegistryClient(stdlib_http=True)``: no httpx
to import, bodies streamed as they arrive), or by httpx when a proxy is set in the environment.
"""

from __future__ import annotations

import os
import sys

from dockyard.digest import HashingReader, sha256_bytes
from dockyard.errors import (
    CorruptData,
    DockyardError,
    ImageNotFound,
    InvalidArgument,
    RegistryError,
)
from dockyard.image import reference
from dockyard.image.oci import (
    DOCKER_CONFIG,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    chain_ids,
    host_platform,
)
from dockyard.registry.config import RegistryConfig
from dockyard.registry.progress import Progress
from dockyard.store.layerstore import TeeReader

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import threading
    from typing import Any, BinaryIO, TextIO

    from dockyard.engine import Engine, NewLayer
    from dockyard.image.reference import Reference
    from dockyard.registry.client import RegistryClient
    from dockyard.store.content import BlobWriter

SCHEMA1_TYPES = ("application/vnd.docker.distribution.manifest.v1+prettyjws",
                 "application/vnd.docker.distribution.manifest.v1+json")


class _Cancelled(Exception):
    pass


class _Tee(TeeReader):
    """``TeeReader`` (every byte read is written to the compressed blob) that stops once cancelled."""

    def __init__(self, src: BinaryIO, sink: BlobWriter, cancel: threading.Event) -> None:
        super().__init__(src, sink)
        self._cancel = cancel

    def read(self, n: int = -1) -> bytes:
        if self._cancel.is_set():
            raise _Cancelled()
        return super().read(n)


class _Pending:
    """A verified layer waiting for the whole pull to succeed."""

    __slots__ = ("index", "writer", "tmp", "size")

    def __init__(self, index: int, writer: BlobWriter, tmp: str | None, size: int) -> None:
        self.index = index
        self.writer = writer
        self.tmp = tmp
        self.size = size


def short_digest(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def manifest_kind(body: bytes, header_type: str) -> str:
    """The media type of a manifest from its ``mediaType`` field, else the Content-Type."""
    import json

    try:
        d = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise CorruptData("manifest is not valid JSON")
    if not isinstance(d, dict):
        raise CorruptData("manifest is not a JSON object")
    mt = d.get("mediaType") or header_type
    if d.get("schemaVersion") == 1:
        return SCHEMA1_TYPES[0]
    if mt not in (*INDEX_TYPES, *MANIFEST_TYPES):
        if isinstance(d.get("manifests"), list):
            return INDEX_TYPES[0]
        if "config" in d and "layers" in d:
            return MANIFEST_TYPES[0]
    return str(mt)


class Puller:
    def __init__(self, eng: Engine, *, config: RegistryConfig | None = None, progress: Progress | None = None,
                 platform: str | None = None) -> None:
        self.eng = eng
        self.config = config or RegistryConfig.from_env()
        self.progress = progress or Progress(quiet=True)
        self.platform = Platform.parse(platform) if platform else None
        self._clients: dict[str, RegistryClient] = {}

    def close(self) -> None:
        for c in self._clients.values():
            c.close()

    # ---- registry access -----------------------------------------------------------------------
    def _endpoint_clients(self, domain: str) -> list[RegistryClient]:
        from urllib.parse import urlsplit

        from dockyard.registry.auth import get_credentials
        from dockyard.registry.client import RegistryClient

        out = []
        endpoints = self.config.endpoints(domain)
        for i, base in enumerate(endpoints):
            key = f"{domain} {base}"
            if key not in self._clients:
                # a mirror gets the mirror's own credentials, never Docker Hub's
                creds = get_credentials(urlsplit(base).netloc) if i + 1 < len(endpoints) else None
                self._clients[key] = RegistryClient(domain, config=self.config, base_url=base, credentials=creds,
                                                    stdlib_http=True)
            out.append(self._clients[key])
        return out

    def fetch_manifest(self, ref: Reference) -> tuple[RegistryClient, bytes, str]:
        """(client that answered, bytes, media type) for a tag or digest, mirrors first."""
        from dockyard.registry.client import RegistryNotFound

        clients = self._endpoint_clients(ref.domain)
        target = ref.digest or ref.tag or "latest"
        last: Exception | None = None
        for i, client in enumerate(clients):
            try:
                body, mt, hdr = client.get_manifest(ref.path, target)
            except RegistryNotFound as e:
                last = e
                if i + 1 < len(clients):
                    continue
                raise RegistryNotFound(f"manifest for {ref.familiar} not found: {e}")
            except RegistryError as e:
                last = e
                if i + 1 < len(clients):  # a mirror that fails: fall back to the next endpoint
                    continue
                raise
            digest = sha256_bytes(body)
            if ref.digest and digest != ref.digest:
                raise CorruptData(f"manifest verification failed for digest {ref.digest}")
            if hdr and hdr.startswith("sha256:") and hdr != digest:
                raise CorruptData(f"manifest for {ref.familiar}: the registry's Docker-Content-Digest {hdr} "
                                  f"does not match the manifest's bytes ({digest})")
            return client, body, mt
        assert last is not None
        raise last

    # ---- one reference -------------------------------------------------------------------------
    def pull(self, ref: Reference) -> tuple[str, bool, str]:
        """Pull ``ref``; returns (image ID, whether the name now points somewhere new, digest)."""
        from dockyard.engine import NewLayer

        eng = self.eng
        p = self.progress
        p.line(f"{ref.digest or ref.tag}: Pulling from {ref.path}")
        client, body, header_type = self.fetch_manifest(ref)
        top_digest = sha256_bytes(body)
        mt = manifest_kind(body, header_type)
        if mt in SCHEMA1_TYPES:
            raise RegistryError(f"{ref.familiar}: Docker Image Format v1 and Docker Image manifest "
                                "version 2, schema 1 support has been removed. Suggest the author of "
                                f"{ref.familiar} to upgrade the image to the OCI Format or Docker Image "
                                "manifest v2, schema 2.")
        from_index = False
        if mt in INDEX_TYPES:
            index = Index.parse(body, mt)
            want = self.platform or host_platform()
            desc = index.select(want)
            if desc is None:
                raise RegistryError(f"no matching manifest for {want} in the manifest list entries")
            mbody, mmt, hdr = client.get_manifest(ref.path, desc.digest)
            if sha256_bytes(mbody) != desc.digest:
                raise CorruptData(f"manifest verification failed for digest {desc.digest}")
            mt = manifest_kind(mbody, mmt or desc.media_type)
            if mt not in MANIFEST_TYPES:
                raise CorruptData(f"manifest {desc.digest} for {want} is not an image manifest ({mt})")
            body = mbody
            from_index = True
        elif mt not in MANIFEST_TYPES:
            raise RegistryError(f"{ref.familiar}: unsupported manifest media type {mt!r}")
        man = Manifest.parse(body, mt)
        man_digest = sha256_bytes(body)
        if man.config.media_type not in (OCI_CONFIG, DOCKER_CONFIG, ""):
            raise RegistryError(f"{ref.familiar}: not an image: encountered unknown media type "
                                f"{man.config.media_type}")

        if eng.content.has(man.config.digest):
            cfg_raw = eng.content.read(man.config.digest)
        else:
            cfg_raw = client.get_blob_bytes(ref.path, man.config.digest)
        if sha256_bytes(cfg_raw) != man.config.digest:
            raise CorruptData(f"image config verification failed for digest {man.config.digest}")
        cfg = ImageConfig.parse(cfg_raw)
        if self.platform and not from_index:
            got = cfg.platform
            if got.os != self.platform.os or got.architecture != self.platform.architecture:
                raise RegistryError(f"image with reference {ref.familiar} was found but does not match the "
                                    f"specified platform: wanted {self.platform}, actual: {got}")
        diff_ids = cfg.diff_ids
        if len(diff_ids) != len(man.layers):
            raise CorruptData(f"{ref.familiar}: the image config lists {len(diff_ids)} layers but the "
                              f"manifest {len(man.layers)}")
        chains = chain_ids(diff_ids)

        layers: list[NewLayer | None] = [None] * len(man.layers)
        todo: list[int] = []
        for i, d in enumerate(man.layers):
            if eng.layers.get(chains[i]) is not None and eng.content.has(d.digest):
                layers[i] = NewLayer(d.digest, d.media_type, d.size, diff_ids[i], chains[i])
            else:
                todo.append(i)
        if todo or eng.db.image(cfg.id) is None:  # an image that is up to date shows no layers
            for x in layers:
                if x is not None:
                    p.update(short_digest(x.blob_digest), "Already exists")
        for i in todo:
            p.update(short_digest(man.layers[i].digest), "Pulling fs layer")
        for i in todo[self.config.max_concurrent_downloads:]:
            p.update(short_digest(man.layers[i].digest), "Waiting")

        pending = self._download(client, ref.path, man.layers, diff_ids, chains, todo)
        # Everything verified: make it visible, then write the image row last.
        try:
            for pd in pending:
                d = man.layers[pd.index]
                blob = pd.writer.commit(d.digest, d.size, what=f"layer {d.digest}")
                chain = chains[pd.index]
                if pd.tmp is not None:
                    if eng.layers.get(chain) is None:
                        eng.layers.publish(pd.tmp, chain, diff_ids[pd.index],
                                           chains[pd.index - 1] if pd.index else None, pd.size)
                    else:
                        _discard(pd.tmp)
                    pd.tmp = None
                layers[pd.index] = NewLayer(blob.digest, d.media_type, d.size, diff_ids[pd.index], chain)
                p.update(short_digest(d.digest), "Pull complete")
        except BaseException:
            _abort(pending)
            raise
        eng.content.put_bytes(cfg_raw, man.config.digest)
        eng.content.put_bytes(body, man_digest)
        tag_name = str(ref) if ref.tag and not ref.digest else None
        before = eng.db.tag_target(tag_name) if tag_name else eng.db.digest_target(
            f"{ref.repository}@{top_digest}")
        had_image = eng.db.image(cfg.id) is not None
        image_id = eng.register_image(cfg, man_digest, mt, [x for x in layers if x is not None],
                                      tags=[tag_name] if tag_name else [],
                                      repo_digests=[f"{ref.repository}@{top_digest}"])
        updated = before != image_id or not had_image
        return image_id, updated, top_digest

    def _download(self, client: RegistryClient, repo: str, descs: list[Descriptor], diff_ids: list[str],
                  chains: list[str], todo: list[int]) -> list[_Pending]:
        if not todo:
            return []
        # A small pool of threads, not concurrent.futures (which imports logging: start-up time). The
        # first failure stops the others at their next read and leaves the layers not begun; the
        # error of the first layer (in the manifest's order) that failed is raised.
        import threading

        cancel = threading.Event()
        lock = threading.Lock()
        results: dict[int, _Pending] = {}
        errors: list[tuple[int, BaseException]] = []
        unpack = {i: self.eng.layers.get(chains[i]) is None for i in todo}
        queue = todo[::-1]  # popped from the end: in order

        def work() -> None:
            while True:
                with lock:
                    if not queue or cancel.is_set():
                        return
                    i = queue.pop()
                try:
                    pd = self._fetch_layer(client, repo, descs[i], diff_ids[i], chains[i - 1] if i else None, i,
                                           cancel, unpack[i])
                except BaseException as e:
                    with lock:
                        if not isinstance(e, _Cancelled):
                            errors.append((i, e))
                    cancel.set()
                    continue
                with lock:
                    results[i] = pd

        workers = min(self.config.max_concurrent_downloads, len(todo))
        threads = [threading.Thread(target=work, name=f"pull_{k}") for k in range(workers)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        except BaseException:  # Ctrl-C: stop the workers at their next read, clean up, re-raise
            cancel.set()
            for t in threads:
                if t.ident is not None:
                    t.join()
            _abort(list(results.values()))
            raise
        if errors:
            _abort(list(results.values()))
            order = {i: n for n, i in enumerate(todo)}
            raise min(errors, key=lambda e: order[e[0]])[1]
        return [results[i] for i in todo]

    def _fetch_layer(self, client: RegistryClient, repo: str, d: Descriptor, diff_id: str,
                     parent: str | None, index: int, cancel: threading.Event, unpack: bool) -> _Pending:
        """Download (or read) one layer blob, unpacking it (``unpack``) in the same pass; verify."""
        from dockyard.store.compression import open_decompressed

        eng = self.eng
        p = self.progress
        sid = short_digest(d.digest)
        total = [0]

        def on_bytes(n: int) -> None:
            total[0] += n
            p.update(sid, "Downloading", total[0], d.size)

        writer = eng.content.writer()
        tmp: str | None = None
        src: Any = None
        try:
            if eng.content.has(d.digest):
                src = eng.content.open(d.digest)  # the blob is here, only its unpacked layer is not
            else:
                p.update(sid, "Downloading", 0, d.size)
                src = client.open_blob(repo, d.digest, d.size, on_bytes=on_bytes)
            tee = _Tee(src, writer, cancel)
            size = 0
            try:
                hashing = HashingReader(open_decompressed(tee))  # type: ignore[arg-type]
                if unpack:
                    tmp, size = eng.layers.unpack(hashing, parent)  # type: ignore[arg-type]
                else:
                    hashing.drain()
                tee.drain()  # anything after the end of the compressed stream is part of the blob
            except (CorruptData, InvalidArgument) as e:
                # Damaged bytes: read the rest, so that a wrong digest is named as the cause.
                try:
                    tee.drain()
                except DockyardError:
                    raise e
                _check_blob(writer, d)
                raise CorruptData(f"layer {d.digest}: {e}")
            p.update(sid, "Verifying Checksum")
            _check_blob(writer, d)
            if hashing.digest != diff_id:
                raise CorruptData(f"layer {d.digest}: its content ({hashing.digest}) does not match the "
                                  f"image config's diff_id {diff_id}")
            p.update(sid, "Download complete")
            return _Pending(index, writer, tmp, size)
        except BaseException:
            writer.abort()
            if tmp is not None:
                _discard(tmp)
            raise
        finally:
            if src is not None:
                src.close()


def _check_blob(writer: BlobWriter, d: Descriptor) -> None:
    if writer.size != d.size or writer.digest != d.digest:
        raise CorruptData(f"filesystem layer verification failed for digest {d.digest}: received "
                          f"{writer.size} bytes with digest {writer.digest} (expected {d.size} bytes)")


def _discard(tmp: str | os.PathLike[str]) -> None:
    """Remove a half-unpacked layer directory, best effort (the layer store's walk: no shutil, and no
    recursion limit for a hostile layer's depth)."""
    from dockyard.store.layers import remove_tree

    try:
        remove_tree(tmp)
    except OSError:
        pass


def _abort(pending: list[_Pending]) -> None:
    for pd in pending:
        pd.writer.abort()
        if pd.tmp is not None:
            _discard(pd.tmp)
            pd.tmp = None


# ---- the operations -----------------------------------------------------------------------------
def pull(eng: Engine, name: str, platform: str | None = None, all_tags: bool = False, quiet: bool = False,
         out: TextIO | None = None) -> str:
    """``docker pull``: returns the image ID (of the last tag with ``all_tags``)."""
    out = out if out is not None else sys.stdout
    progress = Progress(out, quiet=quiet)
    ref = reference.parse(name, default_tag=False)
    if all_tags and (ref.tag or ref.digest):
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    puller = Puller(eng, progress=progress, platform=platform)
    try:
        with eng.layers.using():
            eng.cleanup()
            if all_tags:
                clients = puller._endpoint_clients(ref.domain)
                tags = clients[-1].list_tags(ref.path)
                if not tags:
                    raise ImageNotFound(f"{ref.familiar}: the registry has no tags for this repository")
                image_id = ""
                updated_any = False
                for t in tags:
                    image_id, updated, digest = puller.pull(ref.with_tag(t))
                    updated_any = updated_any or updated
                    progress.line(f"Digest: {digest}")
                status = "Downloaded newer image for" if updated_any else "Image is up to date for"
                progress.line(f"Status: {status} {ref.familiar_repository}")
                out.write(f"{ref.repository}\n")
                out.flush()
                return image_id
            if ref.tag is None and ref.digest is None:
                progress.line("Using default tag: latest")
                ref = ref.with_tag("latest")
            image_id, updated, digest = puller.pull(ref)
            progress.line(f"Digest: {digest}")
            status = "Downloaded newer image for" if updated else "Image is up to date for"
            progress.line(f"Status: {status} {ref.familiar}")
            out.write(f"{ref}\n")
            out.flush()
            return image_id
    finally:
        puller.close()


def ensure_image(eng: Engine, name: str, out: TextIO | None = None, platform: str | None = None) -> str:
    """The local image named ``name``, pulled first if it is not here (``docker run``'s behaviour)."""
    out = out if out is not None else sys.stderr
    try:
        return eng.resolve_image(name)
    except ImageNotFound:
        if reference.looks_like_id(name) and len(name.removeprefix("sha256:")) == 64:
            raise
    ref = reference.parse(name)
    out.write(f"Unable to find image '{ref.familiar}' locally\n")
    out.flush()
    return pull(eng, str(ref), platform=platform, out=out)
