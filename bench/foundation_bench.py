"""Foundation benchmarks: import throughput, `images` with 500 images, start-up time.

Run: .venv/bin/python bench/foundation_bench.py   (as root; uses a temporary DOCKYARD root)
Targets (not asserted): `dockyard --version` within 30 ms; `images` with 500 images well under 1 s.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

BIN = str(Path(sys.executable).with_name("dockyard"))


def timeit(cmd: list[str], n: int = 15, env: dict[str, str] | None = None) -> float:
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def make_rootfs(path: Path, total: int = 100 * 1024 * 1024) -> None:
    rnd = os.urandom(1 << 20)
    with tarfile.open(path, "w") as tf:
        written, i = 0, 0
        while written < total:
            size = min(1 << 20, total - written) if i % 10 else 4096
            ti = tarfile.TarInfo(f"usr/lib/f{i // 100}/file{i}")
            ti.size = size
            tf.addfile(ti, io.BytesIO(rnd[:size]))
            written += size
            i += 1


def main() -> None:
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        root = Path(d) / "root"
        env = {**os.environ, "DOCKYARD_ROOT": str(root)}
        tar = Path(d) / "rootfs.tar"
        make_rootfs(tar)
        size_mb = tar.stat().st_size / 1e6
        ts = []
        for i in range(3):
            t0 = time.perf_counter()
            subprocess.run([BIN, "import", str(tar), f"big:{i}"], env=env, check=True, stdout=subprocess.DEVNULL)
            ts.append(time.perf_counter() - t0)
            subprocess.run([BIN, "rmi", f"big:{i}"], env=env, check=True, stdout=subprocess.DEVNULL)
        imp = statistics.median(ts)
        print(f"import {size_mb:.0f} MB rootfs: {imp:.2f} s  ({size_mb / imp:.0f} MB/s)")

        small = Path(d) / "small.tar"
        with tarfile.open(small, "w") as tf:
            ti = tarfile.TarInfo("hello")
            ti.size = 5
            tf.addfile(ti, io.BytesIO(b"hello"))
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        from dockyard.engine import Engine

        with Engine(root) as eng:
            for i in range(500):
                eng.import_image(str(small), f"img{i % 50}/n:{i}", changes=[f"LABEL i={i}"])
        t_images = timeit([BIN, "images"], n=7, env=env)
        print(f"images with 500 images: {t_images * 1000:.0f} ms")

        t_py = timeit([sys.executable, "-c", "pass"])
        t_py_s = timeit([sys.executable, "-S", "-c", "pass"])
        t_ver = timeit([BIN, "--version"], env=env)
        t_img_empty = timeit([BIN, "--root", str(Path(d) / "empty"), "images"])
        print(f"python -c pass: {t_py * 1000:.1f} ms  (python -S: {t_py_s * 1000:.1f} ms)")
        print(f"dockyard --version: {t_ver * 1000:.1f} ms  ({t_ver / t_py:.2f}x python -c pass)")
        print(f"dockyard images (empty store): {t_img_empty * 1000:.1f} ms  ({t_img_empty / t_py:.2f}x python -c pass)")


if __name__ == "__main__":
    main()
