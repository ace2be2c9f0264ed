"""--x11: a container talks to an X server (Xvfb, with a cookie required) and sees a Wayland socket.

The container's ``xdpyinfo`` is the host's binary with the libraries ``ldd`` lists, copied into a
busybox root: no package download, no bridge network, the same program the host would run.
(Debian's x11-utils in an image built with ``dockyard build`` would need the network in RUN.)
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.runtime.devices import apply_edits
from dockyard.runtime.display import XAUTHORITY_IN_CONTAINER, display_number, wildcard_cookie, x11_edits
from dockyard.runtime.runopts import RunOptions
from tests.integration import test_volumes
from tests.integration.test_volumes import Bundles, sh
from tests.unit.test_devices import mknod

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")
bundles = test_volumes.bundles
busybox_rootfs_template = test_volumes.busybox_rootfs_template

HAVE_X = all(shutil.which(b) for b in ("Xvfb", "xauth", "xdpyinfo"))
needs_x = pytest.mark.skipif(not HAVE_X, reason="needs Xvfb, xauth and xdpyinfo (apt-get install xvfb xauth x11-utils)")


@pytest.fixture(scope="module")
def xvfb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Xvfb on a free display, with an Xauthority cookie it requires; yields the user's environment."""
    if not HAVE_X:
        pytest.skip("needs Xvfb, xauth and xdpyinfo")
    num = next(n for n in range(77, 200) if not os.path.exists(f"/tmp/.X11-unix/X{n}")
               and not os.path.exists(f"/tmp/.X{n}-lock"))
    auth = tmp_path_factory.mktemp("xauth") / "Xauthority"
    subprocess.run(["xauth", "-f", str(auth), "add", f":{num}", ".", secrets.token_hex(16)], check=True,
                   capture_output=True)
    proc = subprocess.Popen(["Xvfb", f":{num}", "-auth", str(auth), "-nolisten", "tcp", "-screen", "0", "640x480x24"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"DISPLAY": f":{num}", "XAUTHORITY": str(auth), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["xdpyinfo"], env=env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.skip("Xvfb did not start")
            time.sleep(0.1)
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def x_rootfs(busybox_rootfs_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """busybox plus the host's xdpyinfo and every library it loads, at the same paths."""
    root = tmp_path_factory.mktemp("xroot") / "rootfs"
    subprocess.run(["cp", "-a", str(busybox_rootfs_template), str(root)], check=True)
    xdpyinfo = shutil.which("xdpyinfo")
    if xdpyinfo is None:
        pytest.skip("needs xdpyinfo")
    files = [xdpyinfo]
    for line in subprocess.run(["ldd", xdpyinfo], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split()
        path = parts[2] if len(parts) > 2 and parts[1] == "=>" else parts[0]
        if path.startswith("/"):
            files.append(path)
    for f in files:
        dest = root / f.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink():
            dest.unlink()
        shutil.copy2(os.path.realpath(f), dest)
    return root


def _run(bundles: Bundles, rootfs: Path, opts: RunOptions, edits: object) -> test_volumes.Result:
    spec = bundles.spec(opts, rootfs=rootfs)
    apply_edits(spec, edits)  # type: ignore[arg-type]
    return bundles.run(spec)


@needs_x
def test_xdpyinfo_connects_with_the_cookie(xvfb: dict[str, str], x_rootfs: Path, bundles: Bundles,
                                           tmp_path: Path) -> None:
    cdir = tmp_path / "container"
    edits = x11_edits(xvfb, cookie_dir=cdir)
    assert edits.env == [f"DISPLAY={xvfb['DISPLAY']}", f"XAUTHORITY={XAUTHORITY_IN_CONTAINER}"]
    assert edits.mounts == [
        {"destination": "/tmp/.X11-unix", "type": "bind", "source": "/tmp/.X11-unix",
         "options": ["rbind", "rprivate", "nosuid", "nodev", "noexec"]},
        {"destination": "/tmp/.Xauthority", "type": "bind", "source": str(cdir / "Xauthority"),
         "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}]
    cookie = cdir / "Xauthority"
    st = cookie.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, 0)
    listed = subprocess.run(["xauth", "-f", str(cookie), "nlist"], capture_output=True, text=True).stdout
    assert listed.startswith("ffff ")  # FamilyWild: valid whatever the container's hostname

    r = _run(bundles, x_rootfs, RunOptions(cmd=["xdpyinfo"]), edits)
    assert r.returncode == 0, r
    assert f"name of display:    {xvfb['DISPLAY']}" in r.stdout
    assert "dimensions:    640x480 pixels" in r.stdout

    # without the cookie the server turns the container away
    no_cookie = x11_edits(xvfb)
    assert not any(m["destination"] == XAUTHORITY_IN_CONTAINER for m in no_cookie.mounts)
    r = _run(bundles, x_rootfs, RunOptions(cmd=["xdpyinfo"]), no_cookie)
    assert r.returncode != 0 and "unable to open display" in r.stderr, r


@needs_x
def test_a_non_root_user_can_read_its_cookie(xvfb: dict[str, str], x_rootfs: Path, bundles: Bundles,
                                             tmp_path: Path) -> None:
    edits = x11_edits(xvfb, cookie_dir=tmp_path / "c", uid=1000, gid=1000)
    assert (tmp_path / "c" / "Xauthority").stat().st_uid == 1000
    r = _run(bundles, x_rootfs, RunOptions(cmd=["xdpyinfo"], user="1000:1000"), edits)
    assert r.returncode == 0 and "name of display" in r.stdout, r


def test_wayland_socket_and_render_nodes(bundles: Bundles, tmp_path: Path) -> None:
    runtime_dir = tmp_path / "xdg"
    runtime_dir.mkdir(mode=0o700)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(runtime_dir / "wayland-7"))
    server.listen(1)
    dev = tmp_path / "dev"
    (dev / "dri").mkdir(parents=True)
    mknod(dev / "dri" / "renderD128", 0o660, 226, 128)
    os.chown(dev / "dri" / "renderD128", 0, 105)
    (dev / "dri" / "card0").touch()  # not a render node: left out
    try:
        env = {"WAYLAND_DISPLAY": "wayland-7", "XDG_RUNTIME_DIR": str(runtime_dir)}
        edits = x11_edits(env, dev_root=str(dev))
        assert edits.env == ["WAYLAND_DISPLAY=wayland-7", f"XDG_RUNTIME_DIR={runtime_dir}"]
        assert edits.mounts == [{"destination": str(runtime_dir / "wayland-7"), "type": "bind",
                                 "source": str(runtime_dir / "wayland-7"), "options": ["bind", "nosuid", "nodev",
                                                                                       "noexec"]}]
        assert [(d.path, d.major, d.minor, d.file_mode, d.gid) for d in edits.devices] == [
            ("/dev/dri/renderD128", 226, 128, 0o660, 105)]
        assert edits.additional_gids == [105]
        r = _run(bundles, bundles.rootfs(), sh('ls -l "$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY" /dev/dri/renderD128 '
                                               "| awk '{print $1, $4, $5, $6}'", "id -G"), edits)
        lines = r.stdout.splitlines()
        assert lines[0] == "crw-rw---- 105 226, 128", r
        assert lines[1].startswith("srwx"), r
        assert "105" in lines[2].split(), r
    finally:
        server.close()


def test_display_forms_and_errors(tmp_path: Path) -> None:
    assert [display_number(d) for d in (":0", ":1.0", "unix:12", "host:10.0", "localhost:3")] == [0, 1, 12, None,
                                                                                                None]
    tcp = x11_edits({"DISPLAY": "remotehost:10.0"}, xauth=str(tmp_path / "no-xauth"))
    assert tcp.mounts == [] and tcp.env == ["DISPLAY=remotehost:10.0"]
    with pytest.raises(InvalidArgument, match="neither DISPLAY nor WAYLAND_DISPLAY is set"):
        x11_edits({})
    with pytest.raises(InvalidArgument, match="does not exist"):
        x11_edits({"DISPLAY": ":5"}, socket_dir=str(tmp_path / "none"))
    with pytest.raises(InvalidArgument, match="Wayland socket"):
        x11_edits({"WAYLAND_DISPLAY": "wayland-9", "XDG_RUNTIME_DIR": str(tmp_path)})
    assert wildcard_cookie("0100 0004 68737473 0002 3737 0012 4d49 0010 abcd\n\n") == \
        "ffff 0004 68737473 0002 3737 0012 4d49 0010 abcd\n"
