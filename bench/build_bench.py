"""`dockyard build` side by side with `docker build` and `podman build`.

Run as root: .venv/bin/python bench/build_bench.py [N]
The Dockerfile: FROM busybox + five RUN steps + CMD. Three cases, each the median of N runs:

* cold         -- ``build --no-cache``: every RUN step runs in a container and is committed;
* cached       -- the same build again: every step comes from the cache;
* last changed -- only the last RUN differs from the previous build: one step runs.

Docker is measured against a private dockerd started here (Debian's docker.io:
``dockerd --data-root TMP --bridge=none --iptables=false -H unix://TMP/docker.sock``) with the busybox
image loaded from ``dockyard save``; first with ``DOCKER_BUILDKIT=1``, falling back to the classic
builder when the docker CLI has no buildx. Podman is measured if installed. All builds use
``--network none`` (the RUN steps need no network; dockerd here has no bridge).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dockerd import private_dockerd

REPO = Path(__file__).resolve().parents[1]
BIN = str(Path(sys.executable).with_name("dockyard"))
CACHE = Path(os.environ.get("DOCKYARD_IMAGE_CACHE", "/var/cache/dockyard-test-images"))

DOCKERFILE = """FROM busybox
RUN echo one > /one
RUN echo two > /two && ls / > /dev/null
RUN mkdir -p /app/data && echo three > /app/data/three
RUN sh -c 'for i in 1 2 3 4 5; do echo $i; done' > /app/count
RUN echo {last} > /app/last
CMD ["cat", "/app/last"]
"""


def median_time(run: Callable[[int], None], n: int) -> float:
    ts = []
    for i in range(n):
        t0 = time.perf_counter()
        run(i)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def sh(cmd: list[str], env: dict[str, str] | None = None) -> None:
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(name: str, build: Callable[[list[str]], None], ctx: Path, n: int) -> dict[str, float]:
    """cold / cached / last-changed medians for one builder; ``build(extra_args)`` builds ``ctx``."""
    df = ctx / "Dockerfile"
    df.write_text(DOCKERFILE.format(last="warm"))
    build([])  # warm-up: base image resolved, caches filled

    def cold(i: int) -> None:
        build(["--no-cache"])

    def cached(i: int) -> None:
        build([])

    counter = iter(range(10**9))

    def last(i: int) -> None:
        df.write_text(DOCKERFILE.format(last=f"v{next(counter)}"))
        build([])

    out = {"cold": median_time(cold, n)}
    df.write_text(DOCKERFILE.format(last="warm"))
    build([])
    out["cached"] = median_time(cached, n)
    out["last changed"] = median_time(last, n)
    print(f"  {name}: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in out.items()), flush=True)
    return out


def docker_clients() -> list[str]:
    """Every ``docker`` executable on PATH, in PATH order."""
    found = []
    for d in os.environ.get("PATH", "").split(os.pathsep):
        p = Path(d) / "docker"
        if p.is_file() and os.access(p, os.X_OK):
            found.append(str(p))
    return found


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    subprocess.run([str(REPO / "scripts" / "make-base-images"), "busybox"], check=True, stdout=subprocess.DEVNULL)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        d = Path(tmp)
        env = {**os.environ, "DOCKYARD_ROOT": str(d / "root")}
        sh([BIN, "import", "-c", 'CMD ["sh"]', str(CACHE / "busybox.tar"), "busybox:latest"], env)
        archive = d / "busybox-image.tar"
        sh([BIN, "save", "-o", str(archive), "busybox:latest"], env)
        print(f"median of {n} runs; FROM busybox + 5 RUN + CMD")

        ctx = d / "ctx-dockyard"
        ctx.mkdir()
        results["dockyard build"] = measure(
            "dockyard build", lambda extra: sh([BIN, "build", "--network", "none", *extra, "-t", "bench:1",
                                                str(ctx)], env), ctx, n)

        with private_dockerd(d) as host:
            if host is not None:
                sh(["docker", "-H", host, "load", "-i", str(archive)])
                dctx = d / "ctx-docker"
                dctx.mkdir()
                (dctx / "Dockerfile").write_text(DOCKERFILE.format(last="probe"))
                # BuildKit is the yardstick. Debian's docker.io client (20.10) has it built in; a newer
                # client without the buildx plugin cannot use it, so every docker on PATH is tried.
                clients = list(dict.fromkeys(os.path.realpath(p) for p in docker_clients()))
                bk = None
                for client in clients:
                    probe = subprocess.run([client, "-H", host, "build", "--network", "none", "-t", "bench:1",
                                            str(dctx)], env={**os.environ, "DOCKER_BUILDKIT": "1"},
                                           capture_output=True)
                    if probe.returncode == 0:
                        bk = client
                        break
                if bk is not None:
                    label = f"docker build (BuildKit, {bk})"
                    benv = {**os.environ, "DOCKER_BUILDKIT": "1"}
                    results[label] = measure(
                        label, lambda extra: sh([bk, "-H", host, "build", "--network", "none", *extra,
                                                 "-t", "bench:1", str(dctx)], benv), dctx, n)
                else:
                    print("  docker: no client here speaks BuildKit (no buildx plugin)")
                cenv = {**os.environ, "DOCKER_BUILDKIT": "0"}
                results["docker build (classic builder)"] = measure(
                    "docker build (classic builder)",
                    lambda extra: sh([clients[0], "-H", host, "build", "--network", "none", *extra,
                                      "-t", "bench:1", str(dctx)], cenv), dctx, n)
            else:
                print("  docker: no dockerd could be started; skipped")

        if shutil.which("podman"):
            pctx = d / "ctx-podman"
            pctx.mkdir()
            try:
                sh(["podman", "load", "-q", "-i", str(archive)])
                results["podman build"] = measure(
                    "podman build", lambda extra: sh(["podman", "build", "--network", "none", "--layers", *extra,
                                                      "-t", "bench-build:1", str(pctx)]), pctx, n)
            except subprocess.CalledProcessError as e:
                print(f"  podman build failed: {e}")
            finally:
                subprocess.run(["podman", "rmi", "-f", "bench-build:1"], capture_output=True)
                subprocess.run(["podman", "image", "prune", "-f"], capture_output=True)
        else:
            print("  podman: not installed; skipped")

    base = results["dockyard build"]
    print()
    print(f"{'':44} {'cold':>9} {'cached':>9} {'last changed':>13}")
    for name, r in results.items():
        cells = [f"{r[k] * 1000:7.0f}ms" for k in ("cold", "cached", "last changed")]
        print(f"{name:44} {cells[0]:>9} {cells[1]:>9} {cells[2]:>13}")
        if name != "dockyard build":
            ratios = [f"{r[k] / base[k]:.1f}x" for k in ("cold", "cached", "last changed")]
            print(f"{'  ... relative to dockyard (higher = slower)':44} {ratios[0]:>9} {ratios[1]:>9} {ratios[2]:>13}")


if __name__ == "__main__":
    main()
