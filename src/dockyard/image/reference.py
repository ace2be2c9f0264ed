"""Image references, parsed and normalised exactly as Docker does.

``busybox`` is ``docker.io/library/busybox:latest``; ``localhost:5000/a/b`` keeps its registry; a
digest pins content. Docker's grammar (distribution/reference) is reproduced so that the same
strings are accepted and refused with the same words.
"""

from __future__ import annotations

from dockyard.errors import InvalidReference
from dockyard.records import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
NAME_TOTAL_LENGTH_MAX = 255
_compiled: dict[str, Any] = {}
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_TAG_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_HEX = frozenset("0123456789abcdef")


def _reference_re() -> Any:
    """Docker's grammar, compiled on first use: compiling it costs more at start-up than most commands
    spend parsing (`run busybox` takes the fast path in ``_parse_simple`` and never needs it)."""
    if not _compiled:
        import re

        _compiled["ref"] = re.compile(
            rf"^(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>{_TAG}))?"
            rf"(?:@(?P<digest>{_DIGEST}))?$")
    return _compiled["ref"]


def _is_hex64(s: str) -> bool:
    return len(s) == 64 and _HEX.issuperset(s)


def _parse_simple(ref: str) -> tuple[str, str | None] | None:
    """(name, tag) for the common ``busybox``, ``daphne/duck:v2`` shapes -- lowercase alphanumeric path
    components and a plain ASCII tag -- which Docker's grammar accepts as they are; None for the rest."""
    name, sep, tag = ref.partition(":")
    if len(name) > NAME_TOTAL_LENGTH_MAX or not all(c and _LOWER_ALNUM.issuperset(c) for c in name.split("/")):
        return None
    if not sep:
        return name, None
    if not tag or len(tag) > 128 or tag[0] in ".-" or not _TAG_CHARS.issuperset(tag):
        return None
    return name, tag


class Reference(Record):
    """A normalised reference: ``domain/path`` plus a tag and/or a digest."""

    domain: str
    path: str
    tag: str | None
    digest: str | None
    _fields = ("domain", "path", "tag", "digest")

    def __init__(self, domain: str, path: str, tag: str | None = None, digest: str | None = None) -> None:
        self.__dict__.update(domain=domain, path=path, tag=tag, digest=digest)

    @property
    def repository(self) -> str:
        """``docker.io/library/busybox``: the full name, no tag."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """``busybox`` or ``localhost:5000/a/b``: the name as Docker prints it."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if path.startswith(OFFICIAL_PREFIX) and path.count("/") == 1:
                path = path[len(OFFICIAL_PREFIX):]
            return path
        return self.repository

    def __str__(self) -> str:
        s = self.repository
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    @property
    def familiar(self) -> str:
        s = self.familiar_repository
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, None, digest)


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    if i == -1 or (
        not any(c in name[:i] for c in ".:") and name[:i] != "localhost" and name[:i].lower() == name[:i]
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = name[:i], name[i + 1:]
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def parse(ref: str, *, default_tag: bool = True) -> Reference:
    """Parse a user's reference (``busybox``, ``host:5000/a/b:tag``, ``name@sha256:...``).

    Errors use Docker's wording so that a user searching for the message finds Docker's answers.
    """
    if not ref:
        raise InvalidReference("invalid reference format: empty reference")
    if _is_hex64(ref):
        raise InvalidReference(
            f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings"
        )
    simple = _parse_simple(ref)
    if simple is not None:
        domain, path = _split_domain(simple[0])
        return Reference(domain, path, simple[1] or (DEFAULT_TAG if default_tag else None), None)
    m = _reference_re().match(ref)
    if not m:
        # Docker's clearest message for the common mistake.
        name_part = ref.split("@", 1)[0]
        if ":" in name_part.rsplit("/", 1)[-1]:
            name_part = name_part.rsplit(":", 1)[0]
        if name_part.lower() != name_part and _reference_re().match(_lower_path(ref)):
            raise InvalidReference(
                f"invalid reference format: repository name ({name_part}) must be lowercase"
            )
        raise InvalidReference(f"invalid reference format: {ref!r}")
    name = m.group("name")
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(f"invalid reference format: repository name must not be more than "
                               f"{NAME_TOTAL_LENGTH_MAX} characters")
    domain, path = _split_domain(name)
    if path.lower() != path or (domain.lower() != domain and not any(c in domain for c in ".:")):
        raise InvalidReference(f"invalid reference format: repository name ({name}) must be lowercase")
    tag = m.group("tag")
    digest = m.group("digest")
    if digest is not None:
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or not _is_hex64(hexpart):
            raise InvalidReference(f"invalid reference format: bad digest {digest!r}")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def _lower_path(ref: str) -> str:
    domain, sep, rest = ref.partition("/")
    if sep and (any(c in domain for c in ".:") or domain == "localhost"):
        return domain + "/" + rest.lower()
    return ref.lower()


def parse_repository(name: str) -> Reference:
    """A repository name with no tag (``dockyard images busybox``)."""
    return parse(name, default_tag=False)


def looks_like_id(value: str) -> bool:
    """A (possibly abbreviated) image or container ID: 1-64 lowercase hex digits, or ``sha256:`` + that."""
    v = value.removeprefix("sha256:")
    return 0 < len(v) <= 64 and all(c in "0123456789abcdef" for c in v)
