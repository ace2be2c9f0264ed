"""OCI and Docker image objects as small typed record classes, with their media types.

Parsing keeps the exact bytes next to the parsed object where identity depends on them: an
image's ID is the sha256 of its config *bytes*, and a manifest's digest the sha256 of its bytes,
so re-serialising would change identities. Constructors that make new objects serialise once,
canonically (sorted keys, no spaces), as Docker does.
"""

from __future__ import annotations

from dockyard import jsonc  # json's results without importing json (and re with it): start-up time
from dockyard.digest import sha256_bytes
from dockyard.errors import CorruptData
from dockyard.records import MutableRecord, Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

# Media types
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
LAYER_TYPES = (OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, DOCKER_LAYER_GZIP, DOCKER_LAYER_FOREIGN,
               "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")


def canonical_json(obj: Any) -> bytes:
    return jsonc.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _loads(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = jsonc.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptData(f"{what} is not valid JSON: {e}")
    if not isinstance(obj, dict):
        raise CorruptData(f"{what} is not a JSON object")
    return obj


class Platform(Record):
    os: str
    architecture: str
    variant: str | None
    _fields = ("os", "architecture", "variant")

    def __init__(self, os: str = "linux", architecture: str = "amd64", variant: str | None = None) -> None:
        self.__dict__.update(os=os, architecture=architecture, variant=variant)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Platform:
        d = d or {}
        return cls(d.get("os", ""), d.get("architecture", ""), d.get("variant") or None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def parse(cls, s: str) -> Platform:
        parts = s.split("/")
        if len(parts) < 2 or len(parts) > 3 or not all(parts):
            from dockyard.errors import InvalidArgument

            raise InvalidArgument(f"invalid platform {s!r}: expected os/arch[/variant]")
        return cls(parts[0], normalize_arch(parts[1]), parts[2] if len(parts) == 3 else None)


def normalize_arch(arch: str) -> str:
    return {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
            "i386": "386", "i686": "386"}.get(arch, arch)


def host_platform() -> Platform:
    import os

    arch = normalize_arch(os.uname().machine)
    variant = "v8" if arch == "arm64" else ("v7" if arch == "arm" else None)
    return Platform("linux", arch, variant)


class Descriptor(Record):
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None
    platform: Platform | None
    urls: list[str] | None
    _fields = ("media_type", "digest", "size", "annotations", "platform", "urls")

    def __init__(self, media_type: str, digest: str, size: int, annotations: dict[str, str] | None = None,
                 platform: Platform | None = None, urls: list[str] | None = None) -> None:
        self.__dict__.update(media_type=media_type, digest=digest, size=size, annotations=annotations,
                             platform=platform, urls=urls)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Descriptor:
        try:
            return cls(
                d.get("mediaType", ""),
                d["digest"],
                int(d["size"]),
                d.get("annotations"),
                Platform.from_dict(d["platform"]) if d.get("platform") else None,
                d.get("urls"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptData(f"invalid descriptor {d!r}: {e}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = self.annotations
        if self.platform:
            out["platform"] = self.platform.to_dict()
        if self.urls:
            out["urls"] = self.urls
        return out


class Manifest(Record):
    media_type: str
    config: Descriptor
    layers: list[Descriptor]
    raw: bytes
    annotations: dict[str, str] | None
    _fields = ("media_type", "config", "layers", "raw", "annotations")

    def __init__(self, media_type: str, config: Descriptor, layers: list[Descriptor], raw: bytes,
                 annotations: dict[str, str] | None = None) -> None:
        self.__dict__.update(media_type=media_type, config=config, layers=layers, raw=raw, annotations=annotations)

    @property
    def digest(self) -> str:
        return sha256_bytes(self.raw)

    @classmethod
    def parse(cls, data: bytes, media_type: str | None = None) -> Manifest:
        d = _loads(data, "manifest")
        mt = d.get("mediaType") or media_type or OCI_MANIFEST
        if mt not in MANIFEST_TYPES:
            raise CorruptData(f"unsupported manifest media type {mt!r}")
        if d.get("schemaVersion") != 2 or "config" not in d or not isinstance(d.get("layers"), list):
            raise CorruptData("manifest is not an image manifest (schemaVersion 2 with config and layers)")
        return cls(mt, Descriptor.from_dict(d["config"]), [Descriptor.from_dict(x) for x in d["layers"]],
                   data, d.get("annotations"))

    @classmethod
    def build(cls, config: Descriptor, layers: list[Descriptor], media_type: str = OCI_MANIFEST,
              annotations: dict[str, str] | None = None) -> Manifest:
        d: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "config": config.to_dict(),
                             "layers": [x.to_dict() for x in layers]}
        if annotations:
            d["annotations"] = annotations
        return cls(media_type, config, layers, jsonc.dumps(d, indent=2).encode(), annotations)


class Index(Record):
    media_type: str
    manifests: list[Descriptor]
    raw: bytes
    _fields = ("media_type", "manifests", "raw")

    def __init__(self, media_type: str, manifests: list[Descriptor], raw: bytes) -> None:
        self.__dict__.update(media_type=media_type, manifests=manifests, raw=raw)

    @classmethod
    def parse(cls, data: bytes, media_type: str | None = None) -> Index:
        d = _loads(data, "image index")
        mt = d.get("mediaType") or media_type or OCI_INDEX
        if not isinstance(d.get("manifests"), list):
            raise CorruptData("image index has no manifests list")
        return cls(mt, [Descriptor.from_dict(x) for x in d["manifests"]], data)

    def select(self, want: Platform) -> Descriptor | None:
        """The manifest for ``want``, with Docker's variant fallback (arm64 ignores a missing variant)."""
        best: Descriptor | None = None
        for m in self.manifests:
            p = m.platform
            if p is None or p.os != want.os or normalize_arch(p.architecture) != want.architecture:
                continue
            if want.variant and p.variant and p.variant != want.variant:
                continue
            if best is None or (p.variant == want.variant):
                best = m
        return best


class ImageConfig(MutableRecord):
    """The image config (``application/vnd.oci.image.config.v1+json``); ``raw`` keeps identity."""

    data: dict[str, Any]
    raw: bytes
    _fields = ("data", "raw")

    def __init__(self, data: dict[str, Any], raw: bytes) -> None:
        self.data = data
        self.raw = raw

    @property
    def id(self) -> str:
        return sha256_bytes(self.raw)

    @classmethod
    def parse(cls, raw: bytes) -> ImageConfig:
        d = _loads(raw, "image config")
        rootfs = d.get("rootfs")
        if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids", []), list):
            raise CorruptData("image config has no rootfs.diff_ids")
        return cls(d, raw)

    @classmethod
    def build(cls, data: dict[str, Any]) -> ImageConfig:
        return cls(data, canonical_json(data))

    @property
    def config(self) -> dict[str, Any]:
        return self.data.get("config") or {}

    @property
    def diff_ids(self) -> list[str]:
        return list(self.data.get("rootfs", {}).get("diff_ids", []))

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.data.get("history") or [])

    @property
    def created(self) -> str | None:
        return self.data.get("created")

    @property
    def platform(self) -> Platform:
        return Platform(self.data.get("os", "linux"), self.data.get("architecture", "amd64"),
                        self.data.get("variant"))


class HistoryEntry(Record):
    created: str
    created_by: str
    comment: str
    author: str
    empty_layer: bool
    _fields = ("created", "created_by", "comment", "author", "empty_layer")

    def __init__(self, created: str, created_by: str = "", comment: str = "", author: str = "",
                 empty_layer: bool = False) -> None:
        self.__dict__.update(created=created, created_by=created_by, comment=comment, author=author,
                             empty_layer=empty_layer)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"created": self.created}
        if self.created_by:
            d["created_by"] = self.created_by
        if self.comment:
            d["comment"] = self.comment
        if self.author:
            d["author"] = self.author
        if self.empty_layer:
            d["empty_layer"] = True
        return d


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)) (OCI image spec)."""
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else sha256_bytes(f"{out[-1]} {d}".encode()))
    return out


