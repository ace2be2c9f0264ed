"""``--x11``: let a container show windows on the user's X11 or Wayland display.

X11: the server's socket directory ``/tmp/.X11-unix`` is bind-mounted and ``DISPLAY`` passed on.
The user's cookie for that display (``xauth nlist $DISPLAY``) is rewritten to the FamilyWild
address family (``ffff``), so it matches whatever hostname the container has, and written to a
file the container's user owns, mounted read-only at ``/tmp/.Xauthority`` with ``XAUTHORITY`` set.
A TCP display (``host:10.0``, an SSH forward) is passed as is: the container needs a network that
reaches it (``--network host``).

Wayland: the compositor's socket ``$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY`` is mounted at the same
path, with ``WAYLAND_DISPLAY`` and ``XDG_RUNTIME_DIR`` set.

Render nodes (``/dev/dri/renderD*``) are added when the host has them, for GPU-accelerated
drawing, with their group added to the process so that a non-root user can open them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from dockyard.errors import InvalidArgument
from dockyard.runtime.devices import SpecEdits, host_device

X11_SOCKET_DIR = "/tmp/.X11-unix"
XAUTHORITY_IN_CONTAINER = "/tmp/.Xauthority"
COOKIE_FILE = "Xauthority"

_LOCAL_DISPLAY = re.compile(r"(?:unix)?:(\d+)(?:\.\d+)?")


def display_number(display: str) -> int | None:
    """The display number of a local display (``:0``, ``:0.0``, ``unix:1``), None for a TCP one."""
    m = _LOCAL_DISPLAY.fullmatch(display)
    return int(m.group(1)) if m else None


def wildcard_cookie(nlist_output: str) -> str:
    """``xauth nlist`` lines with the address family set to FamilyWild (``ffff``): any host matches."""
    return "".join("ffff" + line[4:] + "\n" for line in nlist_output.splitlines() if len(line) > 4)


def write_cookie(display: str, dest: Path, environ: Mapping[str, str], *, uid: int = 0, gid: int = 0,
                 xauth: str = "xauth") -> bool:
    """Write the user's cookie for ``display`` (as FamilyWild) to ``dest``; False if there is none."""
    import subprocess

    env = {k: v for k, v in environ.items() if k in ("XAUTHORITY", "HOME", "PATH")}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    try:
        listed = subprocess.run([xauth, "nlist", display], capture_output=True, text=True, env=env, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    cookie = wildcard_cookie(listed.stdout)
    if listed.returncode != 0 or not cookie:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        merged = subprocess.run([xauth, "-f", str(tmp), "nmerge", "-"], input=cookie, capture_output=True,
                                text=True, env=env, timeout=10)
    except (OSError, subprocess.SubprocessError):
        tmp.unlink(missing_ok=True)
        return False
    if merged.returncode != 0:
        tmp.unlink(missing_ok=True)
        return False
    os.chown(tmp, uid, gid)
    os.chmod(tmp, 0o600)
    os.replace(tmp, dest)
    return True


def render_nodes(dev_root: str = "/dev") -> list[str]:
    dri = os.path.join(dev_root, "dri")
    try:
        return sorted(os.path.join(dri, n) for n in os.listdir(dri) if n.startswith("renderD"))
    except OSError:
        return []


def x11_edits(environ: Mapping[str, str], *, cookie_dir: Path | None = None, uid: int = 0, gid: int = 0,
              dev_root: str = "/dev", socket_dir: str = X11_SOCKET_DIR, xauth: str = "xauth") -> SpecEdits:
    """What ``--x11`` adds to a container, from the user's environment (``DISPLAY``, ``XAUTHORITY``,
    ``WAYLAND_DISPLAY``, ``XDG_RUNTIME_DIR``).

    ``cookie_dir``: where to write the container's Xauthority file (the container's directory);
    ``uid``/``gid``: the container process's user, who must be able to read it.  Raises
    ``InvalidArgument`` when there is no display to share.
    """
    out = SpecEdits()
    display = environ.get("DISPLAY", "")
    wayland = environ.get("WAYLAND_DISPLAY", "")
    if not display and not wayland:
        raise InvalidArgument("--x11: there is no display to share: neither DISPLAY nor WAYLAND_DISPLAY is set")
    if display:
        num = display_number(display)
        if num is not None:
            if not os.path.isdir(socket_dir):
                raise InvalidArgument(f"--x11: DISPLAY is {display} but {socket_dir} does not exist")
            out.mounts.append({"destination": X11_SOCKET_DIR, "type": "bind", "source": socket_dir,
                               "options": ["rbind", "rprivate", "nosuid", "nodev", "noexec"]})
        out.env.append(f"DISPLAY={display}")
        if cookie_dir is not None:
            dest = cookie_dir / COOKIE_FILE
            if write_cookie(display, dest, environ, uid=uid, gid=gid, xauth=xauth):
                out.mounts.append({"destination": XAUTHORITY_IN_CONTAINER, "type": "bind", "source": str(dest),
                                   "options": ["bind", "ro", "nosuid", "nodev", "noexec"]})
                out.env.append(f"XAUTHORITY={XAUTHORITY_IN_CONTAINER}")
    if wayland:
        runtime_dir = environ.get("XDG_RUNTIME_DIR", "")
        sock = wayland if wayland.startswith("/") else os.path.join(runtime_dir, wayland)
        if not sock.startswith("/"):
            raise InvalidArgument("--x11: WAYLAND_DISPLAY is set but XDG_RUNTIME_DIR is not")
        if not os.path.exists(sock):
            raise InvalidArgument(f"--x11: the Wayland socket {sock} does not exist")
        out.mounts.append({"destination": sock, "type": "bind", "source": sock,
                           "options": ["bind", "nosuid", "nodev", "noexec"]})
        out.env.append(f"WAYLAND_DISPLAY={wayland}")
        if runtime_dir:
            out.env.append(f"XDG_RUNTIME_DIR={runtime_dir}")
    for node in render_nodes(dev_root):
        try:
            dev = host_device(node, "/dev/" + os.path.relpath(node, dev_root))
        except Exception:
            continue
        out.devices.append(dev)
        if dev.gid and dev.gid not in out.additional_gids:
            out.additional_gids.append(dev.gid)
    return out
