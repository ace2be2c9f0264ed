"""A private ``dockerd`` for the benchmarks that measure Docker side by side (Debian's docker.io).

Its own data root, exec root and socket under a temporary directory, and ``--iptables=false`` so that
it leaves the host's firewall alone. Imported by the bench scripts (run as ``python bench/X.py``,
so this directory is on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def private_dockerd(d: Path, *network: str) -> Iterator[str | None]:
    """The daemon's ``unix://`` address, or None when there is none to start (a note is printed).

    ``network`` picks its bridge: ``--bridge=none`` for builds, ``--bip CIDR`` for a bridge of its own.
    """
    if not shutil.which("dockerd") or not shutil.which("docker"):
        yield None
        return
    sock = d / "docker.sock"
    with open(d / "dockerd.log", "wb") as log:
        proc = subprocess.Popen(
            ["dockerd", "--data-root", str(d / "docker-data"), "--exec-root", str(d / "docker-exec"),
             "--pidfile", str(d / "docker.pid"), *(network or ("--bridge=none",)), "--iptables=false",
             "--ip-masq=false", "-H", f"unix://{sock}"],
            stdout=log, stderr=log, start_new_session=True)
        try:
            host = f"unix://{sock}"
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                if subprocess.run(["docker", "-H", host, "info"], capture_output=True).returncode == 0:
                    yield host
                    return
                time.sleep(0.5)
            print(f"  (dockerd did not start; see {d / 'dockerd.log'})")
            yield None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
