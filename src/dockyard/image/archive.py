"""Image archive formats, as pure readers and writers: docker-archive and the OCI image layout.

A **docker-archive** (``docker save``) is a tar with ``manifest.json``, a list of
``{"Config": path, "RepoTags": [...], "Layers": [path, ...]}``; each layer path names an
uncompressed layer tar whose sha256 is the matching ``rootfs.diff_ids`` entry of the config, and
``repositories`` maps ``{repo: {tag: top layer id}}`` for very old readers. Older Docker wrote
``<id>.json`` and ``<v1 id>/layer.tar``; Docker 25+ writes every file under ``blobs/sha256/`` and
adds ``oci-layout`` and ``index.json``, so that the same tar is also an OCI image layout. The writer
here does what Docker 25+ does; the reader accepts any paths ``manifest.json`` names.

An **OCI image layout** (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``) names images by
descriptor; tags live in annotations: ``io.containerd.image.name`` (a full reference, as Docker and
containerd write it) and ``org.opencontainers.image.ref.name`` (a tag, or a reference).

Nothing here knows about the engine: the writers take bytes and streams (``TarSink`` streams a tar
to any file object, ``DirSink`` writes a layout directory); ``ArchiveReader`` gives random access to
the members of a tar file on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import secrets
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol, cast

from dockyard.digest import CHUNK
from dockyard.errors import CorruptData, InvalidReference
from dockyard.image import reference
from dockyard.image.oci import OCI_INDEX, Descriptor

DOCKER_MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"
OCI_LAYOUT_FILE = "oci-layout"
OCI_INDEX_FILE = "index.json"
OCI_LAYOUT_VERSION = "1.0.0"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
MAX_JSON_SIZE = 32 << 20  # manifests, configs, indexes: refuse to read more than this into memory

_BLOB_PATH_RE = re.compile(r"^blobs/(sha256|sha512)/([a-f0-9]{64}|[a-f0-9]{128})$")
_LEGACY_CONFIG_RE = re.compile(r"^([a-f0-9]{64})\.json$")


# ---- names ----------------------------------------------------------------------------------

def blob_path(digest: str) -> str:
    """``sha256:<hex>`` -> ``blobs/sha256/<hex>``, the path of a blob in a layout."""
    algo, _, hexpart = digest.partition(":")
    if not algo or not hexpart or "/" in digest:
        raise CorruptData(f"invalid digest {digest!r}")
    return f"blobs/{algo}/{hexpart}"


def digest_of_path(path: str) -> str | None:
    """The digest a member path promises by its name (``blobs/sha256/<hex>``, ``<hex>.json``), if any."""
    path = normalize_member(path)
    m = _BLOB_PATH_RE.match(path)
    if m and len(m.group(2)) == (64 if m.group(1) == "sha256" else 128):
        return f"{m.group(1)}:{m.group(2)}"
    m = _LEGACY_CONFIG_RE.match(path)
    if m:
        return f"sha256:{m.group(1)}"
    return None


def normalize_member(name: str) -> str:
    """A tar member name or a path in ``manifest.json``, as one comparable string."""
    name = name.replace("\\", "/").lstrip("/")
    name = posixpath.normpath(name) if name else ""
    return "" if name == "." else name


def tags_from_annotations(annotations: dict[str, str] | None) -> list[str]:
    """The normalised tag (``docker.io/library/busybox:latest``) an index entry carries, if any.

    ``io.containerd.image.name`` wins; else ``org.opencontainers.image.ref.name`` read as a
    reference, as containerd (and so Docker's containerd store) does: ``busybox:1`` is
    ``busybox:1`` and a bare ``v1`` is the image ``v1:latest``. A name that is not a valid
    reference, or one with only a digest, gives no tag.
    """
    if not annotations:
        return []
    for key in (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME):
        value = annotations.get(key)
        if not value:
            continue
        try:
            ref = reference.parse(value)
        except InvalidReference:
            continue
        if ref.tag and not ref.digest:
            return [str(ref)]
        if ref.tag:
            return [str(ref.with_tag(ref.tag))]
        return []
    return []


def ref_annotations(tag: str | None) -> dict[str, str] | None:
    """Index annotations for a normalised tag, as Docker 25+ writes them."""
    if not tag:
        return None
    ref = reference.parse(tag)
    return {ANNOTATION_IMAGE_NAME: str(ref), ANNOTATION_REF_NAME: ref.tag or "latest"}


# ---- docker-archive metadata ------------------------------------------------------------------

@dataclass
class DockerManifestEntry:
    """One image in a docker-archive's ``manifest.json``."""

    config: str
    repo_tags: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    parent: str | None = None
    layer_sources: dict[str, dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"Config": self.config, "RepoTags": self.repo_tags or None,
                             "Layers": self.layers}
        if self.parent:
            d["Parent"] = self.parent
        if self.layer_sources:
            d["LayerSources"] = self.layer_sources
        return d

    @classmethod
    def from_dict(cls, d: Any) -> DockerManifestEntry:
        if not isinstance(d, dict):
            raise CorruptData(f"{DOCKER_MANIFEST_FILE}: an entry is not a JSON object")
        config = d.get("Config")
        layers = d.get("Layers")
        tags = d.get("RepoTags") or []
        if not isinstance(config, str) or not config:
            raise CorruptData(f"{DOCKER_MANIFEST_FILE}: an entry has no Config")
        if not isinstance(layers, list) or not all(isinstance(x, str) and x for x in layers):
            raise CorruptData(f"{DOCKER_MANIFEST_FILE}: entry {config!r} has no valid Layers list")
        if not isinstance(tags, list) or not all(isinstance(x, str) for x in tags):
            raise CorruptData(f"{DOCKER_MANIFEST_FILE}: entry {config!r} has an invalid RepoTags list")
        parent = d.get("Parent") if isinstance(d.get("Parent"), str) and d.get("Parent") else None
        sources = d.get("LayerSources") if isinstance(d.get("LayerSources"), dict) else None
        return cls(config, list(tags), list(layers), parent, sources)


def parse_docker_manifest(data: bytes) -> list[DockerManifestEntry]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptData(f"{DOCKER_MANIFEST_FILE} is not valid JSON: {e}")
    if not isinstance(obj, list):
        raise CorruptData(f"{DOCKER_MANIFEST_FILE} is not a JSON list")
    return [DockerManifestEntry.from_dict(x) for x in obj]


def docker_manifest_bytes(entries: list[DockerManifestEntry]) -> bytes:
    return json.dumps([e.to_dict() for e in entries], separators=(",", ":")).encode() + b"\n"


def repositories_bytes(repos: dict[str, dict[str, str]]) -> bytes:
    """``{"busybox": {"latest": "<top layer hex>"}}`` (the pre-1.10 format's tag list)."""
    return json.dumps(repos, separators=(",", ":")).encode() + b"\n"


# ---- OCI layout metadata ----------------------------------------------------------------------

def oci_layout_bytes() -> bytes:
    return json.dumps({"imageLayoutVersion": OCI_LAYOUT_VERSION}).encode()


def check_oci_layout(data: bytes) -> None:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptData(f"{OCI_LAYOUT_FILE} is not valid JSON: {e}")
    if not isinstance(obj, dict) or not isinstance(obj.get("imageLayoutVersion"), str):
        raise CorruptData(f"{OCI_LAYOUT_FILE} has no imageLayoutVersion")
    if not obj["imageLayoutVersion"].startswith("1."):
        raise CorruptData(f"unsupported OCI layout version {obj['imageLayoutVersion']!r}")


def index_bytes(manifests: list[Descriptor]) -> bytes:
    d = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [m.to_dict() for m in manifests]}
    return json.dumps(d, separators=(",", ":")).encode() + b"\n"


# ---- writing ----------------------------------------------------------------------------------

class ArchiveSink(Protocol):
    """Where a writer puts an archive's files: a tar stream or a directory."""

    def add_dir(self, name: str) -> None: ...

    def add_bytes(self, name: str, data: bytes) -> None: ...

    def add_stream(self, name: str, stream: BinaryIO, size: int) -> None: ...


class _Counting:
    """A write-only file object that knows its position, so tarfile needs no seek (a pipe works)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._pos = 0

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        self._out.flush()


class TarSink:
    """Streams a tar to ``out`` (which need not seek): deterministic owners, modes and mtimes.

    tarfile's ``w`` mode over a position-counting wrapper rather than its ``w|`` stream mode,
    whose buffer is re-sliced per 10 KiB record; members are copied in ``CHUNK``-sized pieces.
    """

    def __init__(self, out: BinaryIO, mtime: int = 0) -> None:
        self._tf = tarfile.TarFile(fileobj=cast(IO[bytes], _Counting(out)), mode="w",
                                   format=tarfile.PAX_FORMAT, copybufsize=CHUNK)
        self._mtime = mtime

    def _info(self, name: str, kind: bytes, size: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.size = size
        ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        ti.mtime = self._mtime
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti

    def add_dir(self, name: str) -> None:
        self._tf.addfile(self._info(name.rstrip("/") + "/", tarfile.DIRTYPE, 0))

    def add_bytes(self, name: str, data: bytes) -> None:
        import io

        self._tf.addfile(self._info(name, tarfile.REGTYPE, len(data)), io.BytesIO(data))

    def add_stream(self, name: str, stream: BinaryIO, size: int) -> None:
        # tarfile copies exactly ``size`` bytes in chunks and fails if the stream is short.
        try:
            self._tf.addfile(self._info(name, tarfile.REGTYPE, size), stream)
        except (tarfile.TarError, OSError) as e:
            if isinstance(e, tarfile.ReadError) or "unexpected end of data" in str(e):
                raise CorruptData(f"{name}: blob is shorter than its recorded size ({size} bytes)")
            raise

    def close(self) -> None:
        self._tf.close()


class DirSink:
    """Writes the same files into a directory (an OCI layout directory for ``oci:DIR`` readers)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _target(self, name: str) -> Path:
        name = normalize_member(name)
        if not name or name.startswith("../"):
            raise CorruptData(f"refusing to write {name!r} outside the layout directory")
        return self.root / name

    def add_dir(self, name: str) -> None:
        self._target(name).mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _atomic(self, name: str) -> Iterator[BinaryIO]:
        target = self._target(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            with open(tmp, "wb") as f:
                yield f
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    def add_bytes(self, name: str, data: bytes) -> None:
        with self._atomic(name) as f:
            f.write(data)

    def add_stream(self, name: str, stream: BinaryIO, size: int) -> None:
        with self._atomic(name) as f:
            left = size
            while left > 0:
                chunk = stream.read(min(CHUNK, left))
                if not chunk:
                    raise CorruptData(f"{name}: blob is shorter than its recorded size ({size} bytes)")
                f.write(chunk)
                left -= len(chunk)

    def close(self) -> None:
        pass


# ---- reading ----------------------------------------------------------------------------------

class _MemberReader:
    """A member's bytes, with tar errors turned into ``CorruptData`` that names the member."""

    def __init__(self, f: IO[bytes], name: str) -> None:
        self._f = f
        self.name = name

    def read(self, n: int = -1) -> bytes:
        try:
            return self._f.read(n)
        except (tarfile.TarError, EOFError) as e:
            raise CorruptData(f"{self.name}: {e} (the archive is truncated or damaged)")

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> _MemberReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ArchiveReader:
    """Random access to the members of a tar file (an image archive) on disk.

    Every error is a ``CorruptData`` whose message starts with the member it concerns.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            self._tf = tarfile.open(self.path, "r:")  # noqa: SIM115 - closed in close()
        except tarfile.ReadError as e:
            raise CorruptData(f"not a tar archive: {e}")
        members: list[tarfile.TarInfo] = []
        while True:
            try:
                m = self._tf.next()
            except (tarfile.TarError, EOFError) as e:
                self._tf.close()
                if not members:
                    raise CorruptData(f"not a tar archive: {e}")
                if "unexpected end of data" in str(e):
                    raise CorruptData(f"{members[-1].name}: unexpected end of archive "
                                      "(the file is truncated)")
                raise CorruptData(f"the tar header after {members[-1].name!r} is damaged: {e}")
            if m is None:
                break
            members.append(m)
        size = os.path.getsize(self.path)
        if members:
            # tarfile stops quietly at a cut or damaged header: a whole archive ends in a zero block.
            with open(self.path, "rb") as f:
                f.seek(self._tf.offset)
                trailer = f.read(tarfile.BLOCKSIZE)
            if len(trailer) < tarfile.BLOCKSIZE or any(trailer):
                self._tf.close()
                last = members[-1].name
                if len(trailer) < tarfile.BLOCKSIZE:
                    raise CorruptData(f"{last}: unexpected end of archive after this member "
                                      "(the file is truncated)")
                raise CorruptData(f"the tar header after {last!r} is damaged")
        self._members: dict[str, tarfile.TarInfo] = {}
        for m in members:
            if m.isfile() and m.offset_data + m.size > size:
                self._tf.close()
                raise CorruptData(f"{m.name}: unexpected end of archive (the file is truncated)")
            name = normalize_member(m.name)
            if name:
                self._members[name] = m

    def close(self) -> None:
        self._tf.close()

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def names(self) -> list[str]:
        return list(self._members)

    def has(self, name: str) -> bool:
        m = self._members.get(normalize_member(name))
        return m is not None and (m.isfile() or m.issym() or m.islnk())

    def _resolve(self, name: str) -> tarfile.TarInfo:
        """The regular-file member ``name`` is or links to (relative symlinks, hard links)."""
        key = normalize_member(name)
        for _ in range(32):
            m = self._members.get(key)
            if m is None:
                raise CorruptData(f"{name}: missing from the archive")
            if m.isfile():
                return m
            if m.issym():
                key = normalize_member(posixpath.join(posixpath.dirname(key), m.linkname))
            elif m.islnk():
                key = normalize_member(m.linkname)
            else:
                raise CorruptData(f"{name}: is not a regular file in the archive")
        raise CorruptData(f"{name}: too many levels of links in the archive")

    def size(self, name: str) -> int:
        return self._resolve(name).size

    def open(self, name: str) -> _MemberReader:
        m = self._resolve(name)
        f = self._tf.extractfile(m)
        if f is None:
            raise CorruptData(f"{name}: is not a regular file in the archive")
        return _MemberReader(f, normalize_member(name))

    def read(self, name: str, limit: int = MAX_JSON_SIZE) -> bytes:
        m = self._resolve(name)
        if m.size > limit:
            raise CorruptData(f"{name}: too large ({m.size} bytes) for a metadata file")
        with self.open(name) as f:
            data = f.read()
        if len(data) != m.size:
            raise CorruptData(f"{name}: unexpected end of archive (the file is truncated)")
        return data
