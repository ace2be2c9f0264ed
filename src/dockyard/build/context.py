"""The build context: a directory (or a tar from stdin), ``.dockerignore``, globs and content hashes.

``.dockerignore`` follows moby's ``patternmatcher`` exactly: each line is a Go ``filepath.Match``
pattern extended with ``**`` (any number of directories), cleaned (``filepath.Clean``) and stripped of
a leading ``/``; ``!`` re-includes; the *last* matching pattern decides; a pattern that matches a parent
directory excludes everything under it; lines starting with ``#`` are comments. A Dockerfile-specific
ignore file (``<Dockerfile>.dockerignore`` next to the Dockerfile) takes precedence over the context's
``.dockerignore``, as in BuildKit.

:class:`SourceTree` is a directory read the way COPY reads it: symlinks in a source path are resolved
as if the tree were ``/`` (a link can never lead out of the context or out of another stage's root),
sources may be Go globs (``*.txt``, ``src/[ab]?``), excluded paths do not exist. :func:`content_hash`
is what the build cache keys COPY/ADD on: path, type, mode, owner (where the copy keeps it), content
or link target -- never mtimes, so touching a file does not rebuild.
"""

from __future__ import annotations

import errno
import os
import stat

from dockyard.errors import BuildError
from dockyard.rootpath import resolve_in_root

# No re or pathlib at module level: every build loads this module, and those two (with enum,
# functools, collections, urllib.parse and ipaddress behind them) cost ~6 ms. ``re`` is imported
# where a glob or a .dockerignore pattern is compiled.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import re
    from collections.abc import Iterable, Iterator
    from pathlib import Path
    from typing import BinaryIO

__all__ = [
    "BuildContext",
    "IgnoreMatcher",
    "SourceTree",
    "clean_path",
    "content_hash",
    "go_match",
    "has_glob",
    "read_dockerignore",
]


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------


def clean_path(path: str) -> str:
    """Go's ``path.Clean``: ``a//b/../c/`` -> ``a/c``, ``""`` -> ``.``, ``/..`` -> ``/``."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    text = "/".join(out)
    if rooted:
        return "/" + text
    return text or "."


def _rel(path: str) -> str:
    """A source path as a path inside the tree: cleaned, rooted there, without the leading ``/``."""
    return clean_path("/" + path).lstrip("/")


# --------------------------------------------------------------------------------------------
# Go's filepath.Match
# --------------------------------------------------------------------------------------------

def has_glob(pattern: str) -> bool:
    """Whether ``pattern`` has Go ``filepath.Match`` meta characters (``* ? [`` or ``\\``)."""
    return any(c in pattern for c in "*?[\\")


_match_cache: dict[str, re.Pattern[str]] = {}


def _match_regex(pattern: str) -> re.Pattern[str]:
    """Go's ``filepath.Match`` pattern as a regular expression (``*``/``?`` never match ``/``)."""
    cached = _match_cache.get(pattern)
    if cached is not None:
        return cached
    import re

    out: list[str] = []
    i, n = 0, len(pattern)
    bad = BuildError(f"syntax error in pattern: {pattern}")
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "\\":
            if i + 1 >= n:
                raise bad
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif ch == "[":
            i += 1
            negate = False
            if i < n and pattern[i] == "^":
                negate = True
                i += 1
            items: list[str] = []
            first = True
            while True:
                if i >= n:
                    raise bad
                if pattern[i] == "]" and not first:
                    i += 1
                    break
                first = False
                lo, i = _class_char(pattern, i, bad)
                if i < n and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1, bad)
                    if hi < lo:
                        raise bad
                    items.append(f"{re.escape(lo)}-{re.escape(hi)}")
                else:
                    items.append(re.escape(lo))
            body = "".join(items)
            out.append(f"[^/{body}]" if negate else f"(?:(?!/)[{body}])")
        else:
            out.append(re.escape(ch))
            i += 1
    compiled = re.compile("".join(out), re.DOTALL)
    if len(_match_cache) < 4096:
        _match_cache[pattern] = compiled
    return compiled


def _class_char(pattern: str, i: int, bad: BuildError) -> tuple[str, int]:
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise bad
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise bad
    return pattern[i], i + 1


def go_match(pattern: str, name: str) -> bool:
    """Go's ``filepath.Match(pattern, name)``; a malformed pattern raises BuildError."""
    return _match_regex(pattern).fullmatch(name) is not None


# --------------------------------------------------------------------------------------------
# .dockerignore (moby/patternmatcher)
# --------------------------------------------------------------------------------------------


def read_dockerignore(text: str) -> list[str]:
    """The patterns of a ``.dockerignore`` file, normalised as moby's ``ignorefile.ReadAll`` does."""
    out: list[str] = []
    for lineno, raw in enumerate(text.split("\n")):
        line = raw.removesuffix("\r")
        if lineno == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean_path(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


class _Pattern:
    __slots__ = ("text", "exclusion", "regex")

    def __init__(self, text: str, exclusion: bool, regex: re.Pattern[str]) -> None:
        self.text = text
        self.exclusion = exclusion
        self.regex = regex


def _compile_ignore(pattern: str) -> re.Pattern[str]:
    """moby's ``Pattern.compile``: ``**`` spans directories, ``*``/``?`` stay inside one."""
    import re

    reg = "^"
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                reg += ".*" if i >= n else "(.*/)?"
                continue
            reg += "[^/]*"
        elif ch == "?":
            reg += "[^/]"
        elif ch in ".$+()|{}^":
            reg += "\\" + ch
        elif ch == "\\":
            if i + 1 < n:
                reg += "\\" + pattern[i + 1]
                i += 1
            else:
                reg += "\\\\"
        else:
            reg += ch
        i += 1
    reg += "$"
    try:
        return re.compile(reg, re.DOTALL)
    except re.error:
        raise BuildError(f"syntax error in pattern: {pattern}")


class IgnoreMatcher:
    """Which context paths ``.dockerignore`` patterns exclude (moby's ``MatchesOrParentMatches``)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in patterns:
            text = raw.strip()
            if not text:
                continue
            exclusion = text.startswith("!")
            if exclusion:
                text = text[1:]
                if not text:
                    raise BuildError('illegal exclusion pattern: "!"')
            self.patterns.append(_Pattern(text, exclusion, _compile_ignore(text)))
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether ``path`` (relative to the context, ``/``-separated) is excluded."""
        path = _rel(path)
        if not self.patterns or path in (".", ""):
            return False
        parent = path.rpartition("/")[0]
        parents = parent.split("/") if parent else []
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue
            hit = p.regex.match(path) is not None
            if not hit:
                for i in range(len(parents)):
                    if p.regex.match("/".join(parents[: i + 1])) is not None:
                        hit = True
                        break
            if hit:
                matched = not p.exclusion
        return matched


# --------------------------------------------------------------------------------------------
# Source trees
# --------------------------------------------------------------------------------------------


class SourceTree:
    """A directory read as COPY reads it: confined symlinks, globs, ``.dockerignore``.

    ``root`` is a host directory (the context, or another stage's mounted root); ``matcher`` hides
    excluded paths. Paths given to the methods are relative to the tree (a leading ``/`` and ``..``
    that would climb out are ignored, as BuildKit cleans them).
    """

    def __init__(self, root: str | os.PathLike[str], matcher: IgnoreMatcher | None = None) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.matcher = matcher or IgnoreMatcher([])

    def excluded(self, rel: str) -> bool:
        return self.matcher.excluded(rel)

    def resolve(self, rel: str, *, follow: bool = True) -> str:
        """``rel`` resolved inside the tree (symlinks as if the root were ``/``): a relative path.

        With ``follow=False`` the last component is not followed. The result may not exist.
        """
        try:
            return "/".join(resolve_in_root(self.root, _rel(rel), follow_last=follow))
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise BuildError(f"too many levels of symbolic links: {rel}") from None
            raise

    def host_path(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def lstat(self, rel: str) -> os.stat_result | None:
        try:
            return os.lstat(self.host_path(rel))
        except OSError:
            return None

    def _visible(self, rel: str, st: os.stat_result | None) -> bool:
        if st is None:
            return False
        if not self.excluded(rel):
            return True
        # An excluded directory may still hold re-included (`!`) files.
        if not (stat.S_ISDIR(st.st_mode) and self.matcher.has_exclusions):
            return False
        return next(self._walk_dir(rel, "", self.host_path(rel)), None) is not None

    def find(self, src: str) -> list[tuple[str, str]]:
        """The sources ``src`` names, as ``(path as named, resolved path)`` pairs, sorted.

        ``src`` is one path or a Go glob (matched component by component, as BuildKit does). A
        symlink named (or matched) is followed inside the tree; its own name is what a copy is
        named after. Returns ``[]`` if nothing exists (or everything matching is excluded).
        """
        rel = _rel(src)
        if rel == ".":
            return [("", "")]
        parts = rel.split("/")
        bases = [""]
        for part in parts[:-1]:
            nxt: list[str] = []
            for base in bases:
                for cand in self._component(base, part):
                    resolved = self.resolve(cand)
                    st = self.lstat(resolved)
                    if st is not None and stat.S_ISDIR(st.st_mode):
                        nxt.append(resolved)
            bases = nxt
        out: list[tuple[str, str]] = []
        for base in bases:
            for cand in self._component(base, parts[-1]):
                resolved = self.resolve(cand)
                if self._visible(resolved, self.lstat(resolved)):
                    out.append((cand, resolved))
        return sorted(dict.fromkeys(out))

    def _component(self, base: str, part: str) -> list[str]:
        """Visible entries of directory ``base`` that match path component ``part``."""
        if not has_glob(part):
            cand = f"{base}/{part}" if base else part
            return [cand] if self._visible(cand, self.lstat(cand)) else []
        try:
            names = sorted(os.listdir(self.host_path(base)))
        except OSError:
            return []
        out = []
        for name in names:
            if go_match(part, name):
                cand = f"{base}/{name}" if base else name
                if self._visible(cand, self.lstat(cand)):
                    out.append(cand)
        return out

    def walk(self, rel: str) -> Iterator[tuple[str, os.stat_result]]:
        """``rel`` (already resolved) and everything under it, pre-order with names sorted and
        excluded entries left out; yields (path relative to ``rel``, lstat). Symlinks are not followed."""
        top = self.host_path(rel)
        try:
            st = os.lstat(top)
        except OSError:
            return
        yield "", st
        if stat.S_ISDIR(st.st_mode):
            yield from self._walk_dir(rel, "", top)

    def _walk_dir(self, rel: str, sub: str, host: str) -> Iterator[tuple[str, os.stat_result]]:
        try:
            names = sorted(os.listdir(host))
        except OSError:
            return
        for name in names:
            child_rel = f"{sub}/{name}" if sub else name
            child = os.path.join(host, name)
            try:
                cst = os.lstat(child)
            except OSError:
                continue
            is_dir = stat.S_ISDIR(cst.st_mode)
            if self.matcher and self.excluded(f"{rel}/{child_rel}" if rel else child_rel):
                if is_dir and self.matcher.has_exclusions:
                    inner = list(self._walk_dir(rel, child_rel, child))
                    if inner:  # a directory kept for the re-included (`!`) files inside it
                        yield child_rel, cst
                        yield from inner
                continue
            yield child_rel, cst
            if is_dir:
                yield from self._walk_dir(rel, child_rel, child)


# --------------------------------------------------------------------------------------------
# Content hashes
# --------------------------------------------------------------------------------------------

_hash_memo: dict[tuple[str, int, int, int, int, int], str] = {}


def file_digest(path: str, st: os.stat_result) -> str:
    """sha256 of a regular file's content (remembered per inode/size/mtime/ctime in this process)."""
    key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    found = _hash_memo.get(key)
    if found is not None:
        return found
    import hashlib  # here: loading OpenSSL costs milliseconds that a build without COPY never needs

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    digest = h.hexdigest()
    _hash_memo[key] = digest
    return digest


def content_hash(tree: SourceTree, sources: Iterable[str], *, keep_owner: bool = False) -> str:
    """A digest of what COPY would copy from ``sources`` (resolved paths in ``tree``).

    Covers each entry's path, type, permission bits, content (or link target, or device numbers)
    and, with ``keep_owner``, its uid/gid -- not its times.
    """
    import hashlib

    h = hashlib.sha256()
    for src in sources:
        h.update(f"src {src}\0".encode("utf-8", "surrogateescape"))
        for sub, st in tree.walk(src):
            mode = st.st_mode
            line = f"{sub}\0{stat.S_IFMT(mode):o}\0{stat.S_IMODE(mode):o}"
            if keep_owner:
                line += f"\0{st.st_uid}:{st.st_gid}"
            host = tree.host_path(f"{src}/{sub}" if sub and src else (sub or src))
            if stat.S_ISREG(mode):
                line += "\0" + file_digest(host, st)
            elif stat.S_ISLNK(mode):
                line += "\0" + os.readlink(host)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                line += f"\0{os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
            h.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------------------------
# The context itself
# --------------------------------------------------------------------------------------------


class BuildContext(SourceTree):
    """The build context: a directory used in place, or a tar (from stdin) unpacked to a temp dir."""

    def __init__(self, root: str | os.PathLike[str], matcher: IgnoreMatcher | None = None,
                 *, temporary: str | None = None) -> None:
        super().__init__(root, matcher)
        self._temporary = temporary

    def close(self) -> None:
        if self._temporary:
            import shutil

            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None

    def __enter__(self) -> BuildContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_ignore(self, patterns: list[str]) -> None:
        self.matcher = IgnoreMatcher(patterns)

    @classmethod
    def from_directory(cls, path: str | os.PathLike[str]) -> BuildContext:
        p = os.fspath(path)
        if not os.path.exists(p):
            raise BuildError(f'unable to prepare context: path "{p}" not found')
        if not os.path.isdir(p):
            raise BuildError(f'unable to prepare context: context must be a directory: {p}')
        return cls(p)

    @classmethod
    def from_tar(cls, stream: BinaryIO, workdir: str | os.PathLike[str]) -> BuildContext:
        """Unpack a (possibly compressed) tar context into a new directory under ``workdir``.

        Through the layer store's unpacker, which never writes outside its directory, rather than
        ``tarfile``'s ``filter="data"``: that filter only exists from Python 3.11.4 (Debian 12 has 3.11.2).
        """
        import shutil
        import tempfile

        from dockyard.errors import DockyardError
        from dockyard.store.compression import open_decompressed
        from dockyard.store.layers import unpack

        os.makedirs(workdir, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="context-", dir=workdir)
        try:
            unpack(open_decompressed(stream), tmp, whiteouts="apply")
        except (DockyardError, OSError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BuildError(f"unable to read the build context archive: {e}")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(tmp, temporary=tmp)

    @classmethod
    def empty(cls, workdir: str | os.PathLike[str]) -> BuildContext:
        import tempfile

        os.makedirs(workdir, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="context-", dir=workdir)
        return cls(tmp, temporary=tmp)


def load_ignore_patterns(context_root: str, dockerfile_path: str | None) -> list[str]:
    """The ``.dockerignore`` patterns that apply: ``<Dockerfile>.dockerignore`` first, else the context's."""
    candidates: list[str] = []
    if dockerfile_path:
        candidates.append(dockerfile_path + ".dockerignore")
    candidates.append(os.path.join(context_root, ".dockerignore"))
    for c in candidates:
        try:
            with open(c, encoding="utf-8", errors="surrogateescape") as f:
                return read_dockerignore(f.read())
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        except OSError as e:
            raise BuildError(f"error reading {os.path.basename(c)}: {e.strerror}")
    return []


def ensure_path(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
