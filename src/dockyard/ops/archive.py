"""``dockyard save`` and ``dockyard load``: images to and from docker-archive / OCI layout tars.

``save`` streams: every layer is copied from the content store into the tar in chunks, never held
in memory. The docker format carries *uncompressed* layers (their sha256 is the config's diff_id,
which is what ``docker load`` and ``skopeo`` check), so a layer stored compressed is decompressed
into a spool file under ``ingest/`` first (the tar header needs its size). The OCI format stores
blobs as they are, with the image's own manifest when it still matches them.

``load`` reads a file, or stdin spooled to ``ingest/`` (a tar needs random access: ``manifest.json``
may come last), detects the kind (``manifest.json`` -> docker-archive, else ``index.json`` -> OCI
layout), checks everything it can before adding anything (JSON, digests of named blobs, that every
member exists), then adds layers under the shared GC lock, verifying each layer's diff_id (and, for
OCI blobs, the blob digest) while it is unpacked. Image rows and tags are written only once every
layer of every image is in; on any error, layers and blobs this load added are removed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from dockyard.digest import CHUNK, HashingReader
from dockyard.errors import CorruptData, DockyardError, InvalidArgument, InvalidReference
from dockyard.image import reference
from dockyard.image.archive import (
    DOCKER_MANIFEST_FILE,
    OCI_INDEX_FILE,
    OCI_LAYOUT_FILE,
    REPOSITORIES_FILE,
    ArchiveReader,
    ArchiveSink,
    DirSink,
    DockerManifestEntry,
    TarSink,
    blob_path,
    check_oci_layout,
    digest_of_path,
    docker_manifest_bytes,
    index_bytes,
    oci_layout_bytes,
    parse_docker_manifest,
    ref_annotations,
    repositories_bytes,
    tags_from_annotations,
)
from dockyard.image.oci import (
    DOCKER_LAYER_FOREIGN,
    DOCKER_LAYER_GZIP,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    chain_ids,
    host_platform,
)

if TYPE_CHECKING:
    from dockyard.engine import Engine, NewLayer

FORMATS = ("docker", "oci")


# ==== save =====================================================================================

@dataclass
class _SaveItem:
    image_id: str
    tags: list[str] = field(default_factory=list)  # normalised, in the order they were asked for


def _select(eng: Engine, names: list[str]) -> list[_SaveItem]:
    """Docker's rules: ``repo:tag`` saves that tag; a bare ``repo`` every tag of it; an ID none."""
    items: dict[str, _SaveItem] = {}

    def add(image_id: str, tag: str | None) -> None:
        item = items.setdefault(image_id, _SaveItem(image_id))
        if tag and tag not in item.tags:
            item.tags.append(tag)

    for name in names:
        try:
            ref = reference.parse(name, default_tag=False)
        except InvalidReference:
            ref = None
        if ref is not None and not ref.tag and not ref.digest:
            prefix = ref.repository + ":"
            tagged = sorted((t, rec.id) for rec in eng.db.images() for t in rec.tags if t.startswith(prefix))
            if tagged:
                for t, image_id in tagged:
                    add(image_id, t)
                continue
        image_id = eng.resolve_image(name)
        add(image_id, str(ref) if ref is not None and ref.tag and not ref.digest else None)
    return list(items.values())


def _oci_media_type(mt: str) -> str:
    return {DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
            DOCKER_LAYER_FOREIGN: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"}.get(mt, mt)


class _Writer:
    """Writes images into a sink, each blob once, and then the format's metadata files."""

    def __init__(self, eng: Engine, sink: ArchiveSink, fmt: str) -> None:
        if fmt not in FORMATS:
            raise InvalidArgument(f"unknown archive format {fmt!r} (expected docker or oci)")
        self.eng = eng
        self.sink = sink
        self.fmt = fmt
        self.written: dict[str, int] = {}  # blob path -> size
        self.entries: list[DockerManifestEntry] = []
        self.index: list[Descriptor] = []
        self.repos: dict[str, dict[str, str]] = {}
        sink.add_dir("blobs")
        sink.add_dir("blobs/sha256")

    def _blob_from_store(self, digest: str) -> int:
        path = blob_path(digest)
        if path not in self.written:
            size = self.eng.content.info(digest).size
            with self.eng.content.open(digest) as f:
                self.sink.add_stream(path, f, size)
            self.written[path] = size
        return self.written[path]

    def _blob_bytes(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = blob_path(digest)
        if path not in self.written:
            self.sink.add_bytes(path, data)
            self.written[path] = len(data)
        return digest

    def _uncompressed_layer(self, blob_digest: str, diff_id: str) -> int:
        """Write the layer as the uncompressed tar whose digest is ``diff_id``; returns its size."""
        path = blob_path(diff_id)
        if path in self.written:
            return self.written[path]
        if self.eng.content.has(diff_id):  # stored uncompressed (by this image or another)
            return self._blob_from_store(diff_id)
        from dockyard.store.compression import open_decompressed

        spool = self.eng.content.ingest_dir / f"{os.getpid()}-save-{secrets.token_hex(6)}"
        try:
            h = hashlib.sha256()
            size = 0
            with self.eng.content.open(blob_digest) as raw, open(spool, "xb") as out:
                try:
                    src = open_decompressed(raw)
                    while chunk := src.read(CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                except InvalidArgument as e:
                    raise CorruptData(f"layer blob {blob_digest}: {e}")
            got = "sha256:" + h.hexdigest()
            if got != diff_id:
                raise CorruptData(f"layer blob {blob_digest} does not decompress to its diff_id: "
                                  f"expected {diff_id}, got {got}")
            with open(spool, "rb") as f:
                self.sink.add_stream(path, f, size)
        finally:
            with contextlib.suppress(FileNotFoundError):
                spool.unlink()
        self.written[path] = size
        return size

    def add_image(self, item: _SaveItem, parent: str | None = None,
                  ref_name: str | None = None) -> Descriptor:
        eng = self.eng
        rec = eng.image_record(item.image_id)
        cfg = ImageConfig.parse(eng.content.read(rec.config_digest))
        rows = eng.db.image_layers(item.image_id)
        diff_ids = cfg.diff_ids
        if len(rows) != len(diff_ids):
            raise CorruptData(f"image {item.image_id}: {len(rows)} layers but {len(diff_ids)} diff_ids")
        layers: list[Descriptor] = []
        for row, diff_id in zip(rows, diff_ids, strict=True):
            if self.fmt == "docker":
                size = self._uncompressed_layer(row["blob_digest"], diff_id)
                layers.append(Descriptor(OCI_LAYER, diff_id, size))
            else:
                size = self._blob_from_store(row["blob_digest"])
                layers.append(Descriptor(_oci_media_type(row["blob_media_type"]), row["blob_digest"], size))
        cfg_size = self._blob_from_store(rec.config_digest)
        manifest = self._stored_manifest(rec.manifest_digest, rec.config_digest, layers)
        if manifest is None:
            manifest = Manifest.build(Descriptor(OCI_CONFIG, rec.config_digest, cfg_size), layers)
        man_digest = self._blob_bytes(manifest.raw)
        desc = Descriptor(manifest.media_type, man_digest, len(manifest.raw))
        if ref_name is not None:
            self.index.append(Descriptor(desc.media_type, desc.digest, desc.size,
                                         {"org.opencontainers.image.ref.name": ref_name}))
        elif item.tags:
            for t in item.tags:
                self.index.append(Descriptor(desc.media_type, desc.digest, desc.size, ref_annotations(t)))
        else:
            self.index.append(desc)
        if self.fmt == "docker":
            familiar = [reference.parse(t) for t in item.tags]
            self.entries.append(DockerManifestEntry(
                blob_path(rec.config_digest), [r.familiar for r in familiar],
                [blob_path(x) for x in diff_ids], parent))
            if diff_ids:
                for r in familiar:
                    self.repos.setdefault(r.familiar_repository, {})[r.tag or "latest"] = \
                        diff_ids[-1].split(":", 1)[1]
        return desc

    def _stored_manifest(self, digest: str | None, config_digest: str,
                         layers: list[Descriptor]) -> Manifest | None:
        """The image's own manifest, if it describes exactly the blobs being written."""
        if not digest or not self.eng.content.has(digest):
            return None
        try:
            m = Manifest.parse(self.eng.content.read(digest))
        except CorruptData:
            return None
        if m.config.digest != config_digest or [x.digest for x in m.layers] != [x.digest for x in layers]:
            return None
        if self.fmt == "docker" and m.media_type != OCI_MANIFEST:
            return None  # Docker 25+ writes OCI manifests in its layout
        return m

    def finish(self) -> None:
        self.sink.add_bytes(OCI_INDEX_FILE, index_bytes(self.index))
        if self.fmt == "docker":
            self.sink.add_bytes(DOCKER_MANIFEST_FILE, docker_manifest_bytes(self.entries))
        self.sink.add_bytes(OCI_LAYOUT_FILE, oci_layout_bytes())
        if self.fmt == "docker" and self.repos:
            self.sink.add_bytes(REPOSITORIES_FILE, repositories_bytes(self.repos))


def _write_images(eng: Engine, sink: ArchiveSink, items: list[_SaveItem], fmt: str) -> None:
    w = _Writer(eng, sink, fmt)
    saved = {i.image_id for i in items}
    for item in items:
        parent = eng.db.image_parent(item.image_id)
        w.add_image(item, parent if parent in saved else None)
    w.finish()


def save(eng: Engine, names: list[str], output: str | None, fmt: str = "docker") -> None:
    """``docker save``: write the images to ``output`` (temp name, then rename) or to stdout."""
    if fmt not in FORMATS:
        raise InvalidArgument(f"unknown archive format {fmt!r} (expected docker or oci)")
    if not names:
        raise InvalidArgument("save requires at least 1 argument")
    with eng.layers.using():
        items = _select(eng, names)
        if output is None or output == "-":
            out = sys.stdout.buffer
            sink = TarSink(out)
            _write_images(eng, sink, items, fmt)
            sink.close()
            out.flush()
            return
        target = Path(output)
        if target.is_dir():
            raise InvalidArgument(f"open {output}: is a directory")
        if not target.parent.is_dir():
            raise InvalidArgument(f"open {output}: no such file or directory")
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            with open(tmp, "xb") as f:
                sink = TarSink(f)
                _write_images(eng, sink, items, fmt)
                sink.close()
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644 & ~_umask())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_oci_layout_dir(eng: Engine, image_id: str, path: str | Path, tag: str | None = None) -> str:
    """Write one image as an OCI image layout directory (``skopeo copy oci:PATH[:tag] ...``).

    ``tag`` becomes the index entry's ``org.opencontainers.image.ref.name``. Blobs are written as
    stored; returns the manifest digest.
    """
    with eng.layers.using():
        image_id = eng.resolve_image(image_id)
        sink = DirSink(path)
        w = _Writer(eng, sink, "oci")
        desc = w.add_image(_SaveItem(image_id), ref_name=tag)
        w.finish()
    return desc.digest


# ==== load =====================================================================================

@dataclass
class _LayerSrc:
    member: str
    diff_id: str
    blob_digest: str | None = None  # checked against the member's raw bytes when known
    blob_size: int | None = None


@dataclass
class _LoadImage:
    config: ImageConfig
    config_member: str
    layers: list[_LayerSrc]
    tags: list[str] = field(default_factory=list)
    parent: str | None = None
    manifest_digest: str | None = None  # of the manifest written for it at load


def _wrap(member: str, e: DockyardError) -> CorruptData:
    """``e`` as a CorruptData (of the same class if it is one) whose message starts with ``member``."""
    cls = type(e) if isinstance(e, CorruptData) else CorruptData
    msg = str(e)
    if msg.startswith((member + ":", member + " ")):
        return cls(msg)
    return cls(f"{member}: {msg}")


def _verify_bytes(member: str, data: bytes, digest: str | None, size: int | None = None) -> None:
    if size is not None and len(data) != size:
        raise CorruptData(f"{member}: size mismatch: expected {size} bytes, got {len(data)}")
    if digest is None:
        return
    algo = digest.split(":", 1)[0]
    if algo not in ("sha256", "sha512"):
        raise CorruptData(f"{member}: unsupported digest algorithm {algo!r}")
    got = f"{algo}:{hashlib.new(algo, data).hexdigest()}"
    if got != digest:
        raise CorruptData(f"{member}: digest mismatch: expected {digest}, got {got}")


def _read_config(r: ArchiveReader, member: str, digest: str | None, size: int | None = None) -> ImageConfig:
    try:
        data = r.read(member)
        _verify_bytes(member, data, digest, size)
        return ImageConfig.parse(data)
    except CorruptData as e:
        raise _wrap(member, e)


def _parse_tag(member: str, value: str) -> str:
    try:
        ref = reference.parse(value)
    except InvalidReference as e:
        raise CorruptData(f"{member}: invalid RepoTag {value!r}: {e}")
    if ref.digest or not ref.tag:
        raise CorruptData(f"{member}: invalid RepoTag {value!r}: not a name:tag reference")
    return str(ref)


def _plan_docker(r: ArchiveReader) -> list[_LoadImage]:
    try:
        entries = parse_docker_manifest(r.read(DOCKER_MANIFEST_FILE))
    except CorruptData as e:
        raise _wrap(DOCKER_MANIFEST_FILE, e)
    plan = []
    for entry in entries:
        cfg = _read_config(r, entry.config, digest_of_path(entry.config))
        if len(cfg.diff_ids) != len(entry.layers):
            raise CorruptData(f"{DOCKER_MANIFEST_FILE}: image {entry.config!r} lists {len(entry.layers)} "
                              f"layers but its config has {len(cfg.diff_ids)} diff_ids")
        layers = []
        for path, diff_id in zip(entry.layers, cfg.diff_ids, strict=True):
            if not r.has(path):
                raise CorruptData(f"{path}: missing from the archive (named in {DOCKER_MANIFEST_FILE})")
            layers.append(_LayerSrc(path, diff_id, digest_of_path(path)))
        tags = [_parse_tag(DOCKER_MANIFEST_FILE, t) for t in entry.repo_tags]
        plan.append(_LoadImage(cfg, entry.config, layers, tags, entry.parent))
    return plan


def _read_blob_json(r: ArchiveReader, desc: Descriptor) -> bytes:
    member = blob_path(desc.digest)
    try:
        data = r.read(member)
        _verify_bytes(member, data, desc.digest, desc.size)
    except CorruptData as e:
        raise _wrap(member, e)
    return data


def _manifest_kind(desc: Descriptor, data: bytes) -> str:
    if desc.media_type in MANIFEST_TYPES:
        return "manifest"
    if desc.media_type in INDEX_TYPES:
        return "index"
    try:
        obj = json.loads(data)
    except ValueError:
        return "other"
    if isinstance(obj, dict):
        mt = obj.get("mediaType")
        if mt in MANIFEST_TYPES or (mt is None and "config" in obj and "layers" in obj):
            return "manifest"
        if mt in INDEX_TYPES or (mt is None and "manifests" in obj):
            return "index"
    return "other"


def _plan_oci(r: ArchiveReader) -> list[_LoadImage]:
    if r.has(OCI_LAYOUT_FILE):
        try:
            check_oci_layout(r.read(OCI_LAYOUT_FILE))
        except CorruptData as e:
            raise _wrap(OCI_LAYOUT_FILE, e)
    try:
        index = Index.parse(r.read(OCI_INDEX_FILE))
    except CorruptData as e:
        raise _wrap(OCI_INDEX_FILE, e)
    plan: list[_LoadImage] = []
    for top in index.manifests:
        desc = top
        data = _read_blob_json(r, desc)
        kind = _manifest_kind(desc, data)
        if kind == "index":
            member = blob_path(desc.digest)
            try:
                nested = Index.parse(data, desc.media_type or None)
            except CorruptData as e:
                raise _wrap(member, e)
            want = host_platform()
            chosen = nested.select(want)
            if chosen is None:
                images = [m for m in nested.manifests if m.media_type in MANIFEST_TYPES]
                if len(images) != 1:
                    raise CorruptData(f"{member}: no image for platform {want} in this index")
                chosen = images[0]
            desc = chosen
            data = _read_blob_json(r, desc)
            kind = _manifest_kind(desc, data)
        if kind != "manifest":
            continue  # an artifact, not an image
        member = blob_path(desc.digest)
        try:
            manifest = Manifest.parse(data, desc.media_type or None)
        except CorruptData as e:
            raise _wrap(member, e)
        cfg = _read_config(r, blob_path(manifest.config.digest), manifest.config.digest, manifest.config.size)
        if len(cfg.diff_ids) != len(manifest.layers):
            raise CorruptData(f"{member}: manifest lists {len(manifest.layers)} layers but its config has "
                              f"{len(cfg.diff_ids)} diff_ids")
        layers = []
        for ld, diff_id in zip(manifest.layers, cfg.diff_ids, strict=True):
            path = blob_path(ld.digest)
            if not r.has(path):
                raise CorruptData(f"{path}: missing from the archive (a layer of manifest {desc.digest})")
            layers.append(_LayerSrc(path, diff_id, ld.digest, ld.size))
        plan.append(_LoadImage(cfg, blob_path(manifest.config.digest), layers,
                               tags_from_annotations(top.annotations)))
    return plan


def _merge(plan: list[_LoadImage]) -> list[_LoadImage]:
    """One entry per image ID (an index names an image once per tag), tags in order."""
    out: dict[str, _LoadImage] = {}
    for img in plan:
        seen = out.get(img.config.id)
        if seen is None:
            out[img.config.id] = img
        else:
            seen.tags += [t for t in img.tags if t not in seen.tags]
    return list(out.values())


def plan_archive(r: ArchiveReader) -> list[_LoadImage]:
    if r.has(DOCKER_MANIFEST_FILE):
        return _merge(_plan_docker(r))
    if r.has(OCI_INDEX_FILE):
        return _merge(_plan_oci(r))
    if r.has(REPOSITORIES_FILE):
        raise CorruptData("this archive is in the pre-1.10 Docker format (no manifest.json), "
                          "which is not supported")
    raise CorruptData("not an image archive: it has neither manifest.json nor index.json")


_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


@contextlib.contextmanager
def _archive_file(eng: Engine, source: str) -> Iterator[str]:
    """A path to the (uncompressed) archive: the file itself, or a spool under ``ingest/``."""
    from dockyard.store.compression import open_decompressed

    f: BinaryIO
    if source == "-":
        f = sys.stdin.buffer
        label = "stdin"
    else:
        try:
            f = open(source, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise InvalidArgument(f"open {source}: no such file or directory")
        except IsADirectoryError:
            raise InvalidArgument(f"open {source}: is a directory, not a tar archive")
        except PermissionError:
            raise InvalidArgument(f"open {source}: permission denied")
        label = source
    try:
        if source != "-":
            head = f.read(8)
            if not head:
                raise CorruptData(f"{source}: empty file, not a tar archive")
            if not head.startswith(_COMPRESSED_MAGIC):
                yield source
                return
            f.seek(0)
        spool = eng.content.ingest_dir / f"{os.getpid()}-load-{secrets.token_hex(6)}.tar"
        try:
            with open(spool, "xb") as out:
                try:
                    src = open_decompressed(f)
                except InvalidArgument:
                    raise CorruptData(f"{label}: not a tar archive (nor a gzip, bzip2, xz or zstd one)")
                except CorruptData as e:
                    raise CorruptData(f"{label}: {e}")
                n = 0
                try:
                    while chunk := src.read(CHUNK):
                        out.write(chunk)
                        n += len(chunk)
                except CorruptData as e:
                    raise CorruptData(f"{label}: {e}")
            if n == 0:
                if source == "-":
                    raise InvalidArgument("requested load from stdin, but stdin is empty")
                raise CorruptData(f"{label}: empty archive")
            yield str(spool)
        finally:
            with contextlib.suppress(FileNotFoundError):
                spool.unlink()
    finally:
        if source != "-":
            f.close()


def load(eng: Engine, source: str) -> Iterator[str]:
    """``docker load``: add every image of the archive at ``source`` (a path, or ``-`` for stdin).

    Returns the lines Docker prints (``Loaded image: busybox:latest``, ``Loaded image ID: sha256:...``),
    after all the work is done.
    """
    label = "stdin" if source == "-" else source
    with _archive_file(eng, source) as path:
        try:
            reader = ArchiveReader(path)
        except CorruptData as e:
            raise CorruptData(f"{label}: {e}")
        with reader:
            try:
                plan = plan_archive(reader)
            except CorruptData as e:
                raise type(e)(f"{label}: {e}")
            if not plan:
                raise CorruptData(f"{label}: the archive contains no images")
            lines = _add_all(eng, reader, plan, label)
    return iter(lines)


class _Added:
    """What a load created, so that a failed load can take it back."""

    def __init__(self) -> None:
        self.chains: list[str] = []
        self.blobs: list[str] = []


def _add_all(eng: Engine, r: ArchiveReader, plan: list[_LoadImage], label: str) -> list[str]:
    added = _Added()
    try:
        with eng.layers.using():
            eng.cleanup()
            layers_of: list[list[NewLayer]] = []
            done: dict[str, NewLayer] = {}
            for img in plan:
                layers_of.append(_add_layers(eng, r, img, done, added, label))
            for img, layers in zip(plan, layers_of, strict=True):
                _put_blob(eng, img.config.raw, added)
                manifest = Manifest.build(
                    Descriptor(OCI_CONFIG, img.config.id, len(img.config.raw)),
                    [Descriptor(x.blob_media_type, x.blob_digest, x.blob_size) for x in layers])
                _put_blob(eng, manifest.raw, added)
                img.manifest_digest = manifest.digest
            lines: list[str] = []
            loaded: set[str] = set()
            for img, layers in zip(plan, layers_of, strict=True):
                for t in img.tags:
                    old = eng.db.tag_target(t)
                    if old is not None and old != img.config.id:
                        lines.append(f"The image {reference.parse(t).familiar} already exists, renaming the "
                                     f"old one with ID {old} to empty string")
                parent = img.parent
                if parent and parent not in loaded and eng.db.image(parent) is None:
                    parent = None
                eng.register_image(img.config, img.manifest_digest, OCI_MANIFEST, layers,
                                   tags=img.tags, parent=parent)
                loaded.add(img.config.id)
                if img.tags:
                    lines += [f"Loaded image: {reference.parse(t).familiar}" for t in img.tags]
                else:
                    lines.append(f"Loaded image ID: {img.config.id}")
            return lines
    except BaseException:
        with eng.layers.exclusive():
            _discard(eng, added)
        raise


def _put_blob(eng: Engine, data: bytes, added: _Added) -> None:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if not eng.content.has(digest):
        eng.content.put_bytes(data, digest)
        added.blobs.append(digest)


def _add_layers(eng: Engine, r: ArchiveReader, img: _LoadImage, done: dict[str, NewLayer],
                added: _Added, label: str) -> list[NewLayer]:
    from dockyard.engine import NewLayer
    from dockyard.store.compression import open_decompressed

    chains = chain_ids(img.config.diff_ids)
    out: list[NewLayer] = []
    parent: str | None = None
    for src, chain in zip(img.layers, chains, strict=True):
        if chain in done:
            out.append(done[chain])
        elif eng.layers.get(chain) is not None and eng.content.has(src.diff_id):
            info = eng.content.info(src.diff_id)
            out.append(NewLayer(src.diff_id, OCI_LAYER, info.size, src.diff_id, chain))
        else:
            had_chain = eng.layers.get(chain) is not None
            had_blob = eng.content.has(src.diff_id)
            try:
                with r.open(src.member) as raw:
                    # A blob named by its digest is checked against it, unless that is the diff_id,
                    # which add_layer_from_tar checks (of the decompressed bytes) anyway.
                    check = src.blob_digest if src.blob_digest != src.diff_id else None
                    algo = (check or "sha256:").split(":", 1)[0]
                    hr = HashingReader(cast(BinaryIO, raw), algo if algo == "sha512" else "sha256")
                    try:
                        stream = open_decompressed(cast(BinaryIO, hr))
                    except InvalidArgument:
                        raise CorruptData("not a tar archive, and not a compressed one")
                    try:
                        layer = eng.add_layer_from_tar(stream, parent, expected_diff_id=src.diff_id)
                    finally:
                        if not had_chain and eng.layers.get(chain) is not None:
                            added.chains.append(chain)
                        if not had_blob and eng.content.has(src.diff_id):
                            added.blobs.append(src.diff_id)
                    hr.drain()
                    if check is not None and hr.digest != check:
                        raise CorruptData(f"digest mismatch: expected {check}, got {hr.digest}")
                    if src.blob_size is not None and hr.size != src.blob_size:
                        raise CorruptData(f"size mismatch: expected {src.blob_size} bytes, got {hr.size}")
            except CorruptData as e:
                if "digest mismatch" in str(e) and str(e).startswith("layer:"):
                    raise CorruptData(f"{label}: {src.member}: layer does not match its diff_id"
                                      f"{str(e).removeprefix('layer: digest mismatch')}")
                raise type(e)(f"{label}: {_wrap(src.member, e)}")
            except DockyardError as e:  # e.g. the file system refused an entry: name the layer
                raise type(e)(f"{label}: {src.member}: {e}", hint=e.hint)
            out.append(layer)
            done[chain] = layer
        parent = chain
    return out


def _discard(eng: Engine, added: _Added) -> None:
    """Remove the layers and blobs a failed load added that nothing has come to use meanwhile."""
    needed = eng.db.referenced_chain_ids()
    stack = list(needed)
    while stack:
        row = eng.db.layer(stack.pop())
        if row is not None and row["parent"] and row["parent"] not in needed:
            needed.add(row["parent"])
            stack.append(row["parent"])
    for chain in reversed(added.chains):
        if chain not in needed:
            eng.layers.remove(chain)
    blobs = eng.db.referenced_blobs()
    for digest in added.blobs:
        if digest not in blobs:
            eng.content.delete(digest)
