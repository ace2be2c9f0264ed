"""Networking costs: ``run --rm`` start-to-exit time per network mode, and TCP throughput into a container.

Run as root: .venv/bin/python bench/network_bench.py [RUNS] [MB]

* start time -- median wall time of ``dockyard run --rm busybox true`` with ``--network none``,
  the default bridge, the bridge with a published port, and a user network;
* throughput -- ``busybox nc -l`` in a container reads RUNS x MB of zeros that the host sends
  (``/dev/zero`` through a socket) to ``127.0.0.1:PORT`` (DNAT + loopback masquerade), to the
  host's own address (DNAT) and straight to the container's address on the bridge (no NAT); the
  time runs until the container has read everything and closed the connection.

Docker is measured the same way when Debian's ``dockerd`` is installed: a private daemon on its own
bridge (``--bip 10.213.0.1/24``) and with ``--iptables=false``, so it leaves the host's firewall alone;
its published ports then go through ``docker-proxy``, which is also Docker's path for traffic to
127.0.0.1 by default. ``docker load`` gets the same busybox image from ``dockyard save``.

All traffic stays on this machine. Prints a table.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dockerd import private_dockerd

BIN = str(Path(sys.executable).with_name("dockyard"))
CACHE = Path(os.environ.get("DOCKYARD_IMAGE_CACHE", "/var/cache/dockyard-test-images"))


def dy(root: str, *args: str, check: bool = True) -> str:
    p = subprocess.run([BIN, "--root", root, *args], capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise SystemExit(f"dockyard {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def host_address() -> str:
    """An address of this host that is not loopback (the route to a documentation address says)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.200", 9))  # no packet is sent: UDP connect only picks a route
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def start_time(root: str, runs: int, *args: str) -> float:
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        dy(root, "run", "--rm", *args, "busybox", "true")
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def send_zeros(addr: str, port: int, mb: int) -> float:
    """Seconds to push ``mb`` MiB to a reader that closes when done (retrying until it listens)."""
    chunk = b"\0" * (1 << 20)
    deadline = time.monotonic() + 10
    while True:
        s = socket.socket()
        try:
            s.connect((addr, port))
            break
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with s:
        t0 = time.perf_counter()
        for _ in range(mb):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
        return time.perf_counter() - t0


def median_run(cmd: list[str], runs: int) -> float:
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def docker_throughput(docker: list[str], runs: int, mb: int, target: str) -> float:
    rates = []
    for _ in range(runs):
        port = free_port()
        cid = subprocess.run([*docker, "run", "-d", "-p", f"{port}:80", "busybox", "sh", "-c",
                              "nc -l -p 80 > /dev/null"], capture_output=True, text=True, check=True).stdout.strip()
        try:
            addr = "127.0.0.1" if target == "loopback" else host_address()
            rates.append(mb / send_zeros(addr, port, mb))
        finally:
            subprocess.run([*docker, "rm", "-f", cid], capture_output=True)
    return statistics.median(rates)


def throughput(root: str, runs: int, mb: int, target: str) -> float:
    """Median MB/s into a fresh ``nc -l`` container, sent to ``target`` (loopback, host, direct)."""
    rates = []
    for _ in range(runs):
        port = free_port()
        cid = dy(root, "run", "-d", "-p", f"{port}:80", "busybox", "sh", "-c", "nc -l -p 80 > /dev/null").strip()
        try:
            if target == "loopback":
                addr, p = "127.0.0.1", port
            elif target == "host":
                addr, p = host_address(), port
            else:
                addr = dy(root, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", cid).strip()
                p = 80
            rates.append(mb / send_zeros(addr, p, mb))
        finally:
            dy(root, "rm", "-f", cid, check=False)
    return statistics.median(rates)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    mb = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    with tempfile.TemporaryDirectory(prefix="dy-netbench-") as tmp:
        root = os.path.join(tmp, "root")
        dy(root, "import", "-c", 'CMD ["sh"]', str(CACHE / "busybox.tar"), "busybox:latest")
        net = f"bench{os.getpid()}"
        dy(root, "network", "create", net, check=False)
        dy(root, "run", "--rm", "busybox", "true")  # first bridge use sets dockyard0 and the NAT table up
        rows = [
            ("run --rm, --network none", start_time(root, runs, "--network", "none")),
            ("run --rm, bridge (default)", start_time(root, runs)),
            ("run --rm, bridge + -p PORT:80", start_time(root, runs, "-p", f"{free_port()}:80")),
            ("run --rm, user network", start_time(root, runs, "--network", net)),
        ]
        print(f"{'start to exit (median of ' + str(runs) + ')':<40} {'seconds':>10}")
        for name, t in rows:
            print(f"{name:<40} {t:>10.3f}")
        print()
        print(f"{'TCP host -> container, ' + str(mb) + ' MiB':<40} {'MiB/s':>10}")
        for target, label in (("loopback", "127.0.0.1:PORT (DNAT, masquerade)"),
                              ("host", "host address:PORT (DNAT)"),
                              ("direct", "container address:80 (no NAT)")):
            print(f"{label:<40} {throughput(root, runs, mb, target):>10.0f}")
        with contextlib.suppress(SystemExit):
            dy(root, "network", "rm", net, check=False)
        dy(root, "system", "prune", "-f", check=False)
        docker_side(root, tmp, runs, mb, {name: t for name, t in rows})


def docker_side(root: str, tmp: str, runs: int, mb: int, ours: dict[str, float]) -> None:
    archive = os.path.join(tmp, "busybox.tar")
    dy(root, "save", "-o", archive, "busybox:latest")
    with private_dockerd(Path(tmp), "--bip", "10.213.0.1/24") as host:
        if host is None:
            return
        docker = ["docker", "-H", host]
        subprocess.run([*docker, "load", "-i", archive], check=True, capture_output=True)
        subprocess.run([*docker, "run", "--rm", "busybox", "true"], check=True, capture_output=True)  # warm
        print()
        print(f"{'docker (private dockerd), median of ' + str(runs):<40} {'seconds':>10}   dockyard's share")
        pairs: list[tuple[str, list[str], str]] = [
            ("docker run --rm, --network none", ["--network", "none"], "run --rm, --network none"),
            ("docker run --rm, bridge (default)", [], "run --rm, bridge (default)"),
        ]
        for label, extra, mine in pairs:
            t = median_run([*docker, "run", "--rm", *extra, "busybox", "true"], runs)
            print(f"{label:<40} {t:>10.3f}   {ours[mine] / t:.2f}x")
        print(f"{'docker TCP host -> container, ' + str(mb) + ' MiB':<40} {'MiB/s':>10}")
        tp: Callable[[str], float] = lambda target: docker_throughput(docker, runs, mb, target)  # noqa: E731
        print(f"{'127.0.0.1:PORT (docker-proxy)':<40} {tp('loopback'):>10.0f}")
        print(f"{'host address:PORT (docker-proxy)':<40} {tp('host'):>10.0f}")


if __name__ == "__main__":
    main()
