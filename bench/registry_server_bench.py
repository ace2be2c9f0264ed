"""Throughput and memory of ``dockyard registry serve`` on loopback.

    .venv/bin/python bench/registry_server_bench.py [--size-mb 200] [--chunk-mb 16]

Starts the server in a temporary directory, then times a streamed PATCH upload, a chunked upload
(Content-Range, ``--chunk-mb`` per PATCH), a monolithic POST and a GET of the blob, and prints
MiB/s and the server's peak RSS.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

SRC = Path(__file__).resolve().parents[1] / "src"


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--chunk-mb", type=int, default=16)
    args = ap.parse_args()
    size = args.size_mb << 20
    block = os.urandom(1 << 20)

    def blocks(tag: int) -> Iterator[bytes]:
        for i in range(args.size_mb):
            yield bytes([tag, i & 0xFF]) + block[2:]

    digests = {}
    for tag in (1, 2, 3):
        h = hashlib.sha256()
        for b in blocks(tag):
            h.update(b)
        digests[tag] = "sha256:" + h.hexdigest()

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        env = dict(os.environ, PYTHONPATH=str(SRC))
        with open(log, "wb") as logf:
            cmd = [sys.executable, "-m", "dockyard.registry.server", "--addr", "127.0.0.1:0",
                   "--root", str(Path(tmp) / "root"), "--log-level", "warning"]
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
        try:
            port = None
            for _ in range(200):
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text())
                if m:
                    port = int(m.group(1))
                    break
                time.sleep(0.05)
            if port is None:
                print(log.read_text(), file=sys.stderr)
                return 1
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as c:
                for _ in range(100):
                    try:
                        c.get("/v2/")
                        break
                    except httpx.HTTPError:
                        time.sleep(0.05)
                print(f"baseline peak RSS {peak_rss_mib(proc.pid):.1f} MiB")

                t = time.perf_counter()
                r = c.post("/v2/bench/blobs/uploads/")
                r = c.patch(r.headers["Location"], content=blocks(1))
                r = c.put(r.headers["Location"], params={"digest": digests[1]})
                assert r.status_code == 201, r.text
                report("streamed PATCH upload", size, t, proc.pid)

                t = time.perf_counter()
                r = c.post("/v2/bench/blobs/uploads/")
                loc = r.headers["Location"]
                chunk = bytearray()
                offset = 0
                for b in blocks(2):
                    chunk += b
                    if len(chunk) >= args.chunk_mb << 20:
                        r = c.patch(loc, content=bytes(chunk),
                                    headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
                        assert r.status_code == 202, r.text
                        offset += len(chunk)
                        chunk.clear()
                r = c.put(loc, params={"digest": digests[2]}, content=bytes(chunk),
                          headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"} if chunk else {})
                assert r.status_code == 201, r.text
                report(f"chunked upload ({args.chunk_mb} MiB chunks)", size, t, proc.pid)

                t = time.perf_counter()
                r = c.post("/v2/bench/blobs/uploads/", params={"digest": digests[3]}, content=blocks(3))
                assert r.status_code == 201, r.text
                report("monolithic POST", size, t, proc.pid)

                t = time.perf_counter()
                n = 0
                with c.stream("GET", f"/v2/bench/blobs/{digests[1]}") as resp:
                    for data in resp.iter_raw():
                        n += len(data)
                assert n == size
                report("GET", size, t, proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


def report(what: str, size: int, start: float, pid: int) -> None:
    dt = time.perf_counter() - start
    print(f"{what:36s} {size / dt / (1 << 20):8.1f} MiB/s   peak RSS {peak_rss_mib(pid):.1f} MiB")


if __name__ == "__main__":
    raise SystemExit(main())
