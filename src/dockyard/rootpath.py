"""Paths the kernel and containers see: a path inside a root directory, symlinks resolved as if that
root were ``/`` (never leaving it), and mount points as ``/proc/self/mountinfo`` escapes them.

One walk serves the runtime (mount destinations in a rootfs), ``cp`` and volumes (paths in a
container's filesystem) and the builder (paths in a build context). It imports only ``os`` and
``stat``, so every layer may use it (like ``errors`` and ``digest``), the runtime's hot path included.
"""

from __future__ import annotations

import errno
import os
import stat


def resolve_in_root(root: str, path: str, *, follow_last: bool = True, max_links: int = 255) -> list[str]:
    """The components of ``path`` under ``root`` once every symlink is resolved inside ``root``.

    ``..`` stops at the root and an absolute link target restarts from it. A component that does not
    exist is kept as it is. With ``follow_last=False`` a symlink in the last place is not followed.
    More than ``max_links`` links raises ``OSError(ELOOP)``, for the caller to word.
    """
    pending = [p for p in path.split("/") if p not in ("", ".")]
    pending.reverse()
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = [*resolved, part]
        if not follow_last and not pending:
            return candidate
        host = os.path.join(root, *candidate)
        try:
            st = os.lstat(host)
        except OSError:
            resolved = candidate
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved = candidate
            continue
        links += 1
        if links > max_links:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
        target = os.readlink(host)
        if target.startswith("/"):
            resolved = []
        more = target.split("/")
        more.reverse()
        pending.extend(more)
    return resolved


def decode_mount_point(field: str) -> str:
    """A mount point as ``/proc/self/mountinfo`` writes it: space, tab, newline and backslash are octal
    escapes there (``\\040``)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
