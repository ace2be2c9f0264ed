"""`dockyard run` with networks, published ports, named volumes and devices, through the real CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import CLI

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(autouse=True)
def _cleanup(cli: CLI):  # type: ignore[no-untyped-def]
    yield
    ids = cli("ps", "-aq", check=False).stdout.split()
    if ids:
        cli("rm", "-f", "-v", *ids, check=False)
    for net in ("tourmates",):
        cli("network", "rm", net, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str, timeout: float = 10) -> str:
    end = time.time() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.1)


def test_default_bridge_none_and_host_networks(cli: CLI, busybox_image: str) -> None:
    out = cli("run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0; ip route | head -1").stdout
    assert " inet " in out and out.splitlines()[-1].startswith("default via ")
    out = cli("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    assert "UP" in out.split("<", 1)[1].split(">", 1)[0].split(",")  # lo is up, as in Docker
    host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    out = cli("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link").stdout
    assert len(out.splitlines()) == len(host_links.splitlines())
    # Docker: with the host's network a container takes the host's name too (unless -h says otherwise)
    out = cli("run", "--rm", "--network", "host", "busybox", "sh", "-c", "hostname; cat /etc/hostname").stdout
    assert out.split() == [os.uname().nodename] * 2
    assert cli("run", "--rm", "--network", "host", "-h", "given", "busybox", "hostname").stdout.strip() == "given"


def test_published_port_is_reachable_and_gone_after_rm(cli: CLI, busybox_image: str) -> None:
    port = free_port()
    cid = cli("run", "-d", "-p", f"{port}:80", "busybox", "sh", "-c",
              "echo hello-web > /tmp/index.html; exec httpd -f -p 80 -h /tmp").stdout.strip()
    assert fetch(f"http://127.0.0.1:{port}/index.html") == "hello-web\n"
    assert f"0.0.0.0:{port}->80/tcp" in cli("ps").stdout
    assert cli("port", cid).stdout.strip() == f"80/tcp -> 0.0.0.0:{port}"
    r = cli("run", "--rm", "-p", f"{port}:80", "busybox", "true", check=False)
    assert r.returncode == 125 and str(port) in r.stderr
    cli("rm", "-f", cid)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=1)
    rules = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    assert f"dport {port} " not in rules


def test_containers_on_a_user_network_reach_each_other_by_name(cli: CLI, busybox_image: str) -> None:
    cli("network", "create", "tourmates")
    assert "tourmates" in cli("network", "ls").stdout
    cli("run", "-d", "--name", "server1", "--network", "tourmates", "busybox", "sh", "-c",
        "echo pong > /tmp/ping; exec httpd -f -p 8000 -h /tmp")
    out = cli("run", "--rm", "--network", "tourmates", "busybox", "sh", "-c",
              "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://server1:8000/ping && break; sleep 0.2; done")
    assert out.stdout.strip() == "pong"


def test_named_volume_persists_and_is_initialised_from_the_image(cli: CLI, busybox_image: str) -> None:
    cli("run", "--rm", "-v", "ducks:/data", "busybox", "sh", "-c", "echo quack > /data/note")
    assert cli("run", "--rm", "-v", "ducks:/data", "busybox", "cat", "/data/note").stdout == "quack\n"
    assert "ducks" in cli("volume", "ls").stdout
    # an empty named volume over /etc starts with the image's /etc in it, as Docker does
    assert "root:" in cli("run", "--rm", "-v", "etcvol:/etc", "busybox", "cat", "/etc/passwd").stdout
    info = json.loads(cli("volume", "inspect", "ducks").stdout)[0]
    assert Path(info["Mountpoint"], "note").read_text() == "quack\n"
    cli("volume", "rm", "ducks", "etcvol")


def test_device_mapping_and_shm_size(cli: CLI, busybox_image: str) -> None:
    out = cli("run", "--rm", "--device", "/dev/null:/dev/mynull", "--shm-size", "128m", "busybox", "sh", "-c",
              "echo x > /dev/mynull && ls -l /dev/mynull | cut -c1; df -k /dev/shm | tail -1").stdout.splitlines()
    assert out[0] == "c" and out[1].split()[1] == str(128 * 1024)
    r = cli("run", "--rm", "--device", "/dev/nonexistent", "busybox", "true", check=False)
    assert r.returncode == 125 and "/dev/nonexistent" in r.stderr


def test_gpus_without_a_gpu_is_a_clear_error(cli: CLI, busybox_image: str) -> None:
    if Path("/dev/nvidiactl").exists():
        pytest.skip("this machine has an NVIDIA GPU: scripts/gpu-check covers it")
    r = cli("run", "--rm", "--gpus", "all", "busybox", "true", check=False)
    assert r.returncode == 125 and "could not select device driver" in r.stderr
    assert cli("ps", "-aq").stdout.strip() == ""


def test_x11_flag_shares_the_display_socket_and_a_cookie(cli: CLI, busybox_image: str, tmp_path: Path) -> None:
    import shutil

    if not (shutil.which("Xvfb") and shutil.which("xauth")):
        pytest.skip("Xvfb/xauth are not installed (scripts/setup installs them)")
    display = ":93"
    xvfb = subprocess.Popen(["Xvfb", display, "-nolisten", "tcp"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if Path("/tmp/.X11-unix/X93").exists():
                break
            time.sleep(0.1)
        auth = tmp_path / "xauth"
        subprocess.run(["xauth", "-f", str(auth), "generate", display, ".", "trusted"], check=True,
                       capture_output=True)
        out = cli("run", "--rm", "--x11", "--network", "none", "busybox", "sh", "-c",
                  "echo $DISPLAY $XAUTHORITY; ls /tmp/.X11-unix; wc -c < /tmp/.Xauthority",
                  env={"DISPLAY": display, "XAUTHORITY": str(auth)}).stdout.split()
        assert out[:3] == [display, "/tmp/.Xauthority", "X93"] and int(out[3]) > 0
    finally:
        xvfb.terminate()
        xvfb.wait(10)
