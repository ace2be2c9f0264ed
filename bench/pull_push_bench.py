#!/usr/bin/env python3
"""Pull/push throughput of Dockyard against skopeo (and podman when installed), on loopback.

Two images are made (random data, so gzip cannot cheat) and put into Debian's ``docker-registry``
with skopeo: ``big`` (one 50 MB layer) and ``ten`` (10 layers of 5 MB). Each tool then pulls and
pushes them, ``--runs`` times (fresh destination each run), as separate processes; wall time and
peak RSS (``ru_maxrss`` of the child, from ``wait4``) are recorded, and a table of medians with
ratios to skopeo is printed.

* pull: ``dockyard pull`` (download + verify + unpack into its layer store) vs ``skopeo copy
  docker://... oci:DIR`` (download + verify, no unpack) vs ``podman pull`` (download + unpack).
* push: each tool to a registry of its own, started for the run (so nothing is mounted or
  skipped): ``dockyard push`` of the pulled image (compressed blobs, sent as they are), of an
  imported image (uncompressed layer: gzip on the first push, cached after), ``skopeo copy
  oci:DIR docker://...`` and ``podman push``.

Run: ``.venv/bin/python bench/pull_push_bench.py [--runs 3] [--size-mb 50]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import registry_peer_fixtures as peers  # noqa: E402


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one command, which must succeed.

    The RSS comes from ``/usr/bin/time -f %M`` (a child's ``ru_maxrss`` seen from this process would
    include this process' own size at fork time). The page cache is written back first (``sync``,
    untimed): what the previous command left dirty (a pull's 50-100 MB) would otherwise be flushed
    during this one and slow every ``fsync`` in it (the registry syncs each blob it receives), so
    a tool's time would depend on which tool ran before it.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        timer = ["/usr/bin/time", "-q", "-f", "%M", "-o", rss.name] if os.path.exists("/usr/bin/time") else []
        os.sync()
        t0 = time.perf_counter()
        proc = subprocess.run([*timer, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace")
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
        text = rss.read().strip().splitlines()
    return dt, (int(text[-1]) / 1024 if text and text[-1].isdigit() else float("nan"))


def dockyard(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "dockyard", "--root", str(root), *args]


@contextlib.contextmanager
def fresh_registry(tmp: Path) -> Iterator[peers.Server]:
    d = Path(tempfile.mkdtemp(dir=tmp, prefix="reg-"))
    server = peers.start_real_registry(d)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(d, ignore_errors=True)


def drop_podman_store(store: Path) -> None:
    """Unmount what podman's overlay driver mounted under ``store`` (it bind-mounts its own dir), remove it."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
              if line.split()[1].startswith(str(store) + "/")]
    for m in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    shutil.rmtree(store, ignore_errors=True)


def podman_cmd(store: Path, *args: str) -> list[str]:
    return ["podman", "--root", str(store / "root"), "--runroot", str(store / "run"), "--storage-driver",
            os.environ.get("BENCH_PODMAN_DRIVER", "overlay"), *args]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mb", type=int, default=50, help="size of the big layer (default 50)")
    ap.add_argument("--layers", type=int, default=10, help="layers of the many-layer image (default 10)")
    ap.add_argument("--layer-mb", type=int, default=5, help="size of each of those layers (default 5)")
    ap.add_argument("--no-podman", action="store_true")
    a = ap.parse_args()
    for exe in ("skopeo", "docker-registry"):
        if shutil.which(exe) is None:
            print(f"{exe} is not installed", file=sys.stderr)
            return 2
    have_podman = not a.no_podman and shutil.which("podman") is not None
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    env = peers.env_with_src()
    env["DOCKER_CONFIG"] = str(tmp / "docker-config")
    env["REGISTRY_AUTH_FILE"] = str(tmp / "auth.json")
    (tmp / "auth.json").write_text("{}")
    src = peers.start_real_registry(tmp / "reg-src")
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def record(op: str, tool: str, m: tuple[float, float]) -> None:
        results.setdefault((op, tool), []).append(m)
        print(f"  {op:<28} {tool:<22} {m[0]:7.2f}s  {m[1]:7.1f} MB", file=sys.stderr, flush=True)

    try:
        images = {
            "big": [{"data/big": os.urandom(a.size_mb << 20)}],
            "ten": [{f"data/l{i}": os.urandom(a.layer_mb << 20)} for i in range(a.layers)],
        }
        sizes = {"big": a.size_mb, "ten": a.layers * a.layer_mb}
        for name, layers in images.items():
            layout = tmp / f"layout-{name}"
            peers.make_oci_layout(layout, "1", layers)
            subprocess.run(["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
                            f"oci:{layout}:1", f"docker://{src.host}/bench/{name}:1"],
                           check=True, capture_output=True, env=env)
        n = 0
        for name in images:
            ref = f"{src.host}/bench/{name}:1"
            for _ in range(a.runs):
                n += 1
                root = tmp / f"dy-{n}"
                record(f"pull {name}", "dockyard", run(dockyard(root, "pull", "-q", ref), env))
                out = tmp / f"oci-{n}"
                record(f"pull {name}", "skopeo (to oci dir)", run(
                    ["skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}",
                     f"oci:{out}:1"], env))
                if have_podman:
                    store = tmp / f"podman-{n}"
                    try:
                        record(f"pull {name}", "podman",
                               run(podman_cmd(store, "pull", "-q", "--tls-verify=false", ref), env))
                    except RuntimeError as e:
                        print(f"podman pull failed, skipping podman: {e}", file=sys.stderr)
                        drop_podman_store(store)
                        have_podman = False
                # pushes: each tool to a registry of its own, started for this run, so that nothing
                # can be mounted or found there already (skopeo and podman remember where blobs are)
                with fresh_registry(tmp) as dst:
                    run(dockyard(root, "tag", ref, f"{dst.host}/dy/{name}:1"), env)
                    record(f"push {name} (pulled)", "dockyard",
                           run(dockyard(root, "push", "-q", f"{dst.host}/dy/{name}:1"), env))
                with fresh_registry(tmp) as dst:
                    record(f"push {name} (pulled)", "skopeo (from oci dir)", run(
                        ["skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false", f"oci:{out}:1",
                         f"docker://{dst.host}/sk/{name}:1"], env))
                if have_podman:
                    store = tmp / f"podman-{n}"
                    try:
                        with fresh_registry(tmp) as dst:
                            record(f"push {name} (pulled)", "podman", run(podman_cmd(
                                store, "push", "-q", "--tls-verify=false", ref, f"docker://{dst.host}/pm/{name}:1"),
                                env))
                    except RuntimeError as e:
                        print(f"podman push failed: {e}", file=sys.stderr)
                    drop_podman_store(store)
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(root, ignore_errors=True)
        # an imported (uncompressed) layer: first push compresses, later pushes reuse the gzip blob
        tarball = tmp / "big.tar"
        tarball.write_bytes(peers.tar_bytes(images["big"][0]))
        root = tmp / "dy-import"
        run(dockyard(root, "import", str(tarball), "bench/imported:1"), env)
        for r in range(a.runs):
            with fresh_registry(tmp) as dst:
                target = f"{dst.host}/imp/big:1"
                run(dockyard(root, "tag", "bench/imported:1", target), env)
                op = "push big (import, gzip)" if r == 0 else "push big (import, cached)"
                record(op, "dockyard", run(dockyard(root, "push", "-q", target), env))

        print()
        print(f"{'operation':<28} {'tool':<22} {'median s':>9} {'MB/s':>8} {'peak RSS MB':>12} "
              f"{'vs skopeo':>10}")
        for (op, tool), ms in results.items():
            secs = statistics.median(m[0] for m in ms)
            rss = max(m[1] for m in ms)
            mb = sizes["big" if "big" in op else "ten"]
            base = results.get((op, "skopeo (to oci dir)")) or results.get((op, "skopeo (from oci dir)"))
            ratio = f"{secs / statistics.median(m[0] for m in base):.2f}x" if base else "-"
            print(f"{op:<28} {tool:<22} {secs:9.2f} {mb / secs:8.1f} {rss:12.1f} {ratio:>10}")
    finally:
        src.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
