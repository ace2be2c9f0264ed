"""Container start-up, side by side: `dockyard run --rm busybox true` against podman and docker.

Run as root: .venv/bin/python bench/run_bench.py [N]
Needs the busybox base (scripts/make-base-images). Podman is set up as the brief says for this VM
(runc, lowered default ulimits); docker is measured only when a dockerd answers on its socket.
Also: run without --rm, start -a, ps -a with 200 exited containers, commit of a 10 MB change.
Goal (not asserted): dockyard under a quarter of podman's and docker's time for run --rm.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = str(Path(sys.executable).with_name("dockyard"))
CACHE = Path(os.environ.get("DOCKYARD_IMAGE_CACHE", "/var/cache/dockyard-test-images"))


def median_time(cmd: list[str], n: int, env: dict[str, str] | None = None, setup: object = None) -> float:
    ts = []
    for _ in range(n):
        if callable(setup):
            setup()
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


@contextlib.contextmanager
def fake_gpus(d: Path) -> Iterator[bool]:
    """Two fake NVIDIA GPUs (device nodes with the driver's numbers, a library to mount) described by a
    CDI spec in /var/run/cdi for the run; removed afterwards. False where mknod is not allowed."""
    dev = d / "gpu-dev"
    dev.mkdir()
    try:
        for name, minor in (("nvidia0", 0), ("nvidia1", 1), ("nvidiactl", 255)):
            os.mknod(dev / name, 0o666 | stat.S_IFCHR, os.makedev(195, minor))
    except OSError:
        yield False
        return
    lib = d / "libcuda.so.1"
    lib.write_text("fake libcuda\n")
    node = lambda n: {"path": f"/dev/{n}", "hostPath": str(dev / n)}  # noqa: E731
    spec = {"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu",
            "devices": [{"name": "0", "containerEdits": {"deviceNodes": [node("nvidia0")]}},
                        {"name": "1", "containerEdits": {"deviceNodes": [node("nvidia1")]}},
                        {"name": "all", "containerEdits": {"deviceNodes": [node("nvidia0"), node("nvidia1")]}}],
            "containerEdits": {"deviceNodes": [node("nvidiactl")],
                               "mounts": [{"hostPath": str(lib), "containerPath": "/usr/lib/libcuda.so.1",
                                           "options": ["ro", "nosuid", "nodev", "bind"]}]}}
    cdi = Path("/var/run/cdi")
    made = not cdi.exists()
    cdi.mkdir(parents=True, exist_ok=True)
    path = cdi / f"dockyard-bench-{os.getpid()}.json"
    path.write_text(json.dumps(spec))
    try:
        yield True
    finally:
        path.unlink()
        if made:
            cdi.rmdir()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    subprocess.run([str(REPO / "scripts" / "make-base-images"), "busybox"], check=True, stdout=subprocess.DEVNULL)
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        env = {**os.environ, "DOCKYARD_ROOT": str(Path(d) / "root")}
        subprocess.run([BIN, "import", "-c", 'CMD ["sh"]', str(CACHE / "busybox.tar"), "busybox"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([BIN, "run", "--rm", "busybox", "true"], env=env, check=True)  # warm
        dy = median_time([BIN, "run", "--rm", "--network", "none", "busybox", "true"], n, env)
        rows.append(("dockyard run --rm --network none busybox true", dy, ""))
        dyb = median_time([BIN, "run", "--rm", "busybox", "true"], n, env)
        rows.append(("dockyard run --rm busybox true (bridge)", dyb, ""))
        if shutil.which("podman"):
            archive = Path(d) / "bb.tar"
            subprocess.run([BIN, "save", "-o", str(archive), "busybox"], env=env, check=True)
            subprocess.run(["podman", "load", "-q", "-i", str(archive)], check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["podman", "run", "--rm", "--net=none", "busybox", "true"], check=True)
            pm = median_time(["podman", "run", "--rm", "--net=none", "busybox", "true"], n)
            rows.append(("podman run --rm --net=none busybox true", pm, f"dockyard takes {dy / pm:.2f}x its time"))
            pmb = median_time(["podman", "run", "--rm", "busybox", "true"], n)
            rows.append(("podman run --rm busybox true (bridge)", pmb, f"dockyard takes {dyb / pmb:.2f}x its time"))
        if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
            subprocess.run(["docker", "load", "-q", "-i", str(Path(d) / "bb.tar")], check=True,
                           stdout=subprocess.DEVNULL)
            dk = median_time(["docker", "run", "--rm", "busybox", "true"], n)
            rows.append(("docker run --rm busybox true", dk, f"dockyard takes {dyb / dk:.2f}x its time"))
        names = iter(range(10**6))
        rows.append(("dockyard run (no --rm) busybox true",
                     median_time([BIN, "run", "busybox", "true"], n, env), ""))
        subprocess.run([BIN, "run", "--name", "again", "busybox", "true"], env=env, check=True)
        rows.append(("dockyard start -a (exited container)",
                     median_time([BIN, "start", "-a", "again"], n, env), ""))
        for _ in range(200 - n - 1):
            subprocess.run([BIN, "create", "busybox", "true"], env=env, check=True, stdout=subprocess.DEVNULL)
        count = len(subprocess.run([BIN, "ps", "-aq"], env=env, capture_output=True, text=True).stdout.split())
        rows.append((f"dockyard ps -a ({count} containers)", median_time([BIN, "ps", "-a"], 7, env), ""))
        with fake_gpus(Path(d)) as ok:
            if ok:
                rows.append(("dockyard run --rm --gpus all busybox true (fake GPUs, CDI)",
                             median_time([BIN, "run", "--rm", "--gpus", "all", "busybox", "true"], n, env), ""))
        subprocess.run([BIN, "run", "--name", "big", "busybox", "dd", "if=/dev/urandom", "of=/big", "bs=1M",
                        "count=10"], env=env, check=True, stderr=subprocess.DEVNULL)
        rows.append(("dockyard commit (10 MB change)",
                     median_time([BIN, "commit", "big", f"big:{next(names)}"], 5, env), ""))
    width = max(len(r[0]) for r in rows)
    for name, t, note in rows:
        print(f"{name:<{width}}  {t * 1000:7.1f} ms  {note}")


if __name__ == "__main__":
    main()
