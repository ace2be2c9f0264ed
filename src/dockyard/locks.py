"""flock(2) on a lock file as a ``with`` block: the one lock the store, containers and networks share.

A class rather than a ``contextlib.contextmanager``: contextlib (with collections and functools) is
not worth its import on the run path.
"""

from __future__ import annotations

import fcntl
import os


class FileLock:
    """``with FileLock(path) as fd``: ``path`` (created 0o600 if missing) locked with ``op``
    (``fcntl.LOCK_EX`` or ``LOCK_SH``) for the block; closing the descriptor releases it."""

    __slots__ = ("_path", "_op", "_fd")

    def __init__(self, path: str | os.PathLike[str], op: int = fcntl.LOCK_EX) -> None:
        self._path = os.fspath(path)
        self._op = op
        self._fd = -1

    def __enter__(self) -> int:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, self._op)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return fd

    def __exit__(self, *exc: object) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
