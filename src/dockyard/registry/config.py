"""Where registries live and how to reach them: plain HTTP or TLS, Docker Hub's API host, mirrors.

As in Docker, loopback registries (``localhost``, ``127.0.0.0/8``, ``::1``) are reached over plain
HTTP; other hosts only when listed in ``DOCKYARD_INSECURE_REGISTRIES`` (comma-separated
``host[:port]`` or CIDR ranges). ``DOCKYARD_REGISTRY_MIRRORS`` (comma-separated URLs) are tried, in
order, before Docker Hub for ``docker.io`` images. ``RegistryConfig`` is a plain record (keyword
fields with defaults) so that a configuration file can fill it as well as the environment.
"""

from __future__ import annotations

import os

from dockyard.records import MutableRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import ipaddress

DOCKER_HUB_DOMAIN = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_INDEX = "index.docker.io"


class RegistryConfig(MutableRecord):
    insecure_registries: list[str]
    mirrors: list[str]
    max_concurrent_downloads: int
    max_concurrent_uploads: int
    push_gzip_level: int
    push_chunk_size: int  # one streamed request for all but huge blobs, as Docker does
    retries: int
    # A registry name served from another place, for pull and push alike (the tour serves docker.io
    # from Dockyard's own registry on loopback): ``DOCKYARD_REGISTRY_ENDPOINTS=docker.io=http://127.0.0.1:5000``.
    endpoint_overrides: dict[str, str]
    _fields = ("insecure_registries", "mirrors", "max_concurrent_downloads", "max_concurrent_uploads",
               "push_gzip_level", "push_chunk_size", "retries", "endpoint_overrides")

    def __init__(self, insecure_registries: list[str] | None = None, mirrors: list[str] | None = None,
                 max_concurrent_downloads: int = 3, max_concurrent_uploads: int = 5, push_gzip_level: int = 1,
                 push_chunk_size: int = 512 << 20, retries: int = 4,
                 endpoint_overrides: dict[str, str] | None = None) -> None:
        self.insecure_registries = insecure_registries if insecure_registries is not None else []
        self.mirrors = mirrors if mirrors is not None else []
        self.max_concurrent_downloads = max_concurrent_downloads
        self.max_concurrent_uploads = max_concurrent_uploads
        self.push_gzip_level = push_gzip_level
        self.push_chunk_size = push_chunk_size
        self.retries = retries
        self.endpoint_overrides = endpoint_overrides if endpoint_overrides is not None else {}

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RegistryConfig:
        e = dict(os.environ) if env is None else env

        def _list(key: str) -> list[str]:
            return [x.strip() for x in e.get(key, "").split(",") if x.strip()]

        def _int(key: str, default: int, lo: int, hi: int) -> int:
            try:
                return max(lo, min(hi, int(e.get(key, default))))
            except ValueError:
                return default

        return cls(
            insecure_registries=_list("DOCKYARD_INSECURE_REGISTRIES"),
            mirrors=[m.rstrip("/") for m in _list("DOCKYARD_REGISTRY_MIRRORS")],
            max_concurrent_downloads=_int("DOCKYARD_MAX_CONCURRENT_DOWNLOADS", 3, 1, 64),
            max_concurrent_uploads=_int("DOCKYARD_MAX_CONCURRENT_UPLOADS", 5, 1, 64),
            push_gzip_level=_int("DOCKYARD_PUSH_GZIP_LEVEL", 1, 0, 9),
            push_chunk_size=_int("DOCKYARD_PUSH_CHUNK_SIZE", 512 << 20, 1024, 1 << 31),
            retries=_int("DOCKYARD_REGISTRY_RETRIES", 4, 0, 20),
            endpoint_overrides={k.strip(): v.strip().rstrip("/") for k, _, v in
                                (x.partition("=") for x in _list("DOCKYARD_REGISTRY_ENDPOINTS")) if v},
        )

    def is_insecure(self, domain: str) -> bool:
        """Plain HTTP for this registry host (``host``, ``host:port``, ``[v6]:port``)?"""
        host = split_host(domain)
        if host == "localhost" or host.endswith(".localhost"):
            return True
        ip = _ip(host)
        if ip is not None and ip.is_loopback:
            return True
        for entry in self.insecure_registries:
            entry = entry.removeprefix("http://").removeprefix("https://").rstrip("/")
            if entry in (domain, host):
                return True
            if "/" in entry and ip is not None:
                import ipaddress

                try:
                    if ip in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    pass
        return False

    def api_host(self, domain: str) -> str:
        """The host[:port] serving the API: Docker Hub's images live at ``registry-1.docker.io``."""
        return DOCKER_HUB_API_HOST if domain in (DOCKER_HUB_DOMAIN, DOCKER_HUB_INDEX) else domain

    def endpoints(self, domain: str) -> list[str]:
        """Base URLs to try, in order (mirrors first for Docker Hub)."""
        if domain in self.endpoint_overrides:
            url = self.endpoint_overrides[domain]
            return [url if "://" in url else ("http://" if self.is_insecure(url) else "https://") + url]
        out: list[str] = []
        if domain == DOCKER_HUB_DOMAIN:
            out.extend(m if "://" in m else "https://" + m for m in self.mirrors)
        host = self.api_host(domain)
        out.append(("http://" if self.is_insecure(domain) else "https://") + host)
        return out


def split_host(domain: str) -> str:
    """The host part of ``host[:port]`` or ``[v6]:port``."""
    if domain.startswith("["):
        return domain[1:].split("]", 1)[0]
    if domain.count(":") > 1:  # a bare IPv6 address
        return domain
    return domain.split(":", 1)[0]


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    import ipaddress  # here: it imports functools and collections, ~3 ms of every build and pull

    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def config_key(domain: str) -> str:
    """The key of a registry in ``config.json``'s ``auths`` (Docker Hub's is historical)."""
    return DOCKER_HUB_CONFIG_KEY if domain in (DOCKER_HUB_DOMAIN, DOCKER_HUB_INDEX, DOCKER_HUB_API_HOST) \
        else domain


def normalize_server(server: str | None) -> str:
    """A registry domain from what a user typed (``login``): URL, host[:port], or nothing (Hub)."""
    if not server:
        return DOCKER_HUB_DOMAIN
    s = server.strip()
    for p in ("https://", "http://"):
        s = s.removeprefix(p)
    s = s.split("/", 1)[0]
    if s in (DOCKER_HUB_INDEX, DOCKER_HUB_API_HOST, DOCKER_HUB_DOMAIN):
        return DOCKER_HUB_DOMAIN
    return s
