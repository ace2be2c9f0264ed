"""Apache ``htpasswd`` files for the registry's Basic auth.

Supported entries, one ``user:hash`` a line (``#`` comments and blank lines ignored):

* bcrypt ``$2y$``/``$2b$``/``$2a$`` (``htpasswd -B``, what Docker's docs use) — needs the
  optional ``bcrypt`` package; a file with such an entry is refused at load time without it;
* Apache MD5 ``$apr1$`` (``htpasswd -m``, the default of ``htpasswd``) and MD5-crypt ``$1$``,
  implemented here with ``hashlib``;
* SHA-1 ``{SHA}`` (``htpasswd -s``).

The file is re-read when its modification time or size changes, so users can be added without a
restart. Successful checks are cached (by a hash of the password) because bcrypt is slow by design
and clients send credentials with every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BCRYPT_PREFIXES = ("$2y$", "$2b$", "$2a$")
_CACHE_MAX = 1024


def _to64(value: int, n: int) -> str:
    out = []
    for _ in range(n):
        out.append(_ITOA64[value & 0x3F])
        value >>= 6
    return "".join(out)


def md5_crypt(password: bytes, salt: bytes, magic: bytes = b"$apr1$") -> str:
    """The MD5-crypt of ``password`` (``magic`` ``$apr1$`` for Apache's variant, ``$1$`` for glibc's)."""
    salt = salt[:8]
    final = hashlib.md5(password + salt + password).digest()
    ctx = bytearray(password + magic + salt)
    remaining = len(password)
    while remaining > 0:
        ctx += final[: min(16, remaining)]
        remaining -= 16
    i = len(password)
    while i:
        ctx += b"\x00" if i & 1 else password[:1]
        i >>= 1
    final = hashlib.md5(ctx).digest()
    for i in range(1000):
        step = bytearray(password if i & 1 else final)
        if i % 3:
            step += salt
        if i % 7:
            step += password
        step += final if i & 1 else password
        final = hashlib.md5(step).digest()
    encoded = ""
    for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        encoded += _to64((final[a] << 16) | (final[b] << 8) | final[c], 4)
    encoded += _to64(final[11], 2)
    return f"{magic.decode()}{salt.decode('ascii', 'replace')}${encoded}"


def _bcrypt_module() -> Any:
    try:
        import bcrypt
    except ImportError:
        return None
    return bcrypt


def bcrypt_available() -> bool:
    return _bcrypt_module() is not None


def check_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches one htpasswd hash (False for a format that is not supported)."""
    pw = password.encode()
    if hashed.startswith(_BCRYPT_PREFIXES):
        mod = _bcrypt_module()
        if mod is None:
            return False
        # the bcrypt package understands $2b$ and $2a$; $2y$ is the same algorithm
        h = hashed.encode()
        if h.startswith(b"$2y$"):
            h = b"$2b$" + h[4:]
        try:
            # bcrypt only ever used the first 72 bytes (newer packages refuse longer passwords)
            return bool(mod.checkpw(pw[:72], h))
        except ValueError:
            return False
    if hashed.startswith("{SHA}"):
        expected = base64.b64encode(hashlib.sha1(pw).digest()).decode()
        return hmac.compare_digest(expected, hashed[5:])
    for magic in ("$apr1$", "$1$"):
        if hashed.startswith(magic):
            salt = hashed[len(magic):].split("$", 1)[0]
            return hmac.compare_digest(md5_crypt(pw, salt.encode(), magic.encode()), hashed)
    return False


def _supported(hashed: str) -> bool:
    return hashed.startswith(("{SHA}", "$apr1$", "$1$")) or (
        hashed.startswith(_BCRYPT_PREFIXES) and bcrypt_available()
    )


def parse(text: str, source: str = "htpasswd") -> dict[str, str]:
    """Parse an htpasswd file's text into ``{user: hash}``; raise InvalidArgument on bad entries."""
    users: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed:
            raise InvalidArgument(f"{source}:{lineno}: expected user:hash")
        if not _supported(hashed):
            if hashed.startswith(_BCRYPT_PREFIXES):
                raise InvalidArgument(
                    f"{source}:{lineno}: bcrypt entry for {user!r} needs the 'bcrypt' Python package",
                    hint="pip install bcrypt, or use htpasswd -m (apr1) entries",
                )
            raise InvalidArgument(
                f"{source}:{lineno}: unsupported password hash for {user!r} "
                "(use bcrypt $2y$, apr1 $apr1$ or {SHA})"
            )
        users[user] = hashed
    return users


class Htpasswd:
    """Users from an htpasswd file, reloaded when the file changes."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, str] = {}
        self._ok: dict[tuple[str, bytes], str] = {}
        self._load()

    def _load(self) -> None:
        try:
            st = os.stat(self.path)
            text = self.path.read_text()
        except OSError as e:
            raise InvalidArgument(f"cannot read htpasswd file {self.path}: {e.strerror or e}")
        users = parse(text, str(self.path))
        with self._lock:
            self._users = users
            self._stamp = (st.st_mtime_ns, st.st_size)
            self._ok.clear()

    def _maybe_reload(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            return  # keep the users we have rather than lock everyone out
        if (st.st_mtime_ns, st.st_size) != self._stamp:
            try:
                self._load()
            except InvalidArgument:
                pass

    @property
    def users(self) -> list[str]:
        return sorted(self._users)

    def verify(self, user: str, password: str) -> bool:
        self._maybe_reload()
        with self._lock:
            hashed = self._users.get(user)
        key = (user, hashlib.sha256(password.encode()).digest())
        if hashed is None:
            # spend about the same time as for a known user, so users cannot be enumerated by timing
            md5_crypt(password.encode(), b"dockyard")
            return False
        if self._ok.get(key) == hashed:
            return True
        if not check_password(password, hashed):
            return False
        with self._lock:
            if len(self._ok) >= _CACHE_MAX:
                self._ok.clear()
            self._ok[key] = hashed
        return True
