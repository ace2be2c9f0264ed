"""Time ``dockyard-runtime run`` against ``runc run`` on the same busybox bundle (median of N).

Not a test: a number to watch.  Needs root, busybox-static and runc.  Usage::

    sudo .venv/bin/python bench/runtime_bench.py [-n 20] [--cmd true]

Both runtimes get the same config.json (runc's default ``spec`` with terminal off and a cgroupsPath),
so the comparison covers namespaces, mounts, devices, masked/readonly paths, caps, rlimits and the
cgroup.  ``dockyard-runtime`` runs through a tiny launcher equivalent to the console script, so its
number includes interpreter start-up -- the cost a caller of the command really pays.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "src"))

from dockyard.runtime.cli import default_spec  # noqa: E402


def make_bundle(root: str, cmd: list[str]) -> str:
    bundle = os.path.join(root, "bundle")
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy2(busybox, os.path.join(rootfs, "bin", "busybox"))
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", os.path.join(rootfs, "bin", a))
    cfg = default_spec()
    cfg["process"]["terminal"] = False  # type: ignore[index]
    cfg["process"]["args"] = cmd  # type: ignore[index]
    cfg["linux"]["cgroupsPath"] = "/dockyard-bench"  # type: ignore[index]
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    return bundle


def launcher(root: str) -> str:
    path = os.path.join(root, "dockyard-runtime")
    with open(path, "w") as f:
        f.write(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {os.path.join(REPO, 'src')!r})\n"
                "from dockyard.runtime.cli import main\nsys.exit(main())\n")
    os.chmod(path, 0o755)
    return path


def time_runs(argv_for: object, n: int) -> list[float]:
    out = []
    for i in range(n):
        argv = argv_for(f"bench{i}")  # type: ignore[operator]
        t0 = time.perf_counter()
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        out.append((time.perf_counter() - t0) * 1000)
        if proc.returncode != 0:
            raise SystemExit(f"{argv[0]} failed: {proc.stderr.decode()}")
    return out


def time_api(bundle: str, root: str, n: int) -> list[float]:
    """In-process BuiltinRuntime create+start+wait+delete: what the engine's monitor pays per container."""
    from dockyard.runtime import linux as L
    from dockyard.runtime.builtin import BuiltinRuntime

    L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
    rt = BuiltinRuntime(root)
    devnull = os.open(os.devnull, os.O_RDWR)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        pid = rt.create(f"api{i}", bundle, stdio=(devnull, devnull, devnull))
        rt.start(f"api{i}")
        os.waitpid(pid, 0)
        rt.delete(f"api{i}")
        out.append((time.perf_counter() - t0) * 1000)
    os.close(devnull)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--cmd", default="true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(tmp, args.cmd.split())
        dy = launcher(tmp)
        runs = {
            "python -c pass": time_runs(lambda _i: [sys.executable, "-c", "pass"], args.n),
            "runc run": time_runs(lambda i: ["runc", "--root", f"{tmp}/runc", "run", "-b", bundle, i], args.n),
            "dockyard-runtime run": time_runs(
                lambda i: [dy, "--root", f"{tmp}/dy", "run", "-b", bundle, i], args.n
            ),
            "BuiltinRuntime (API)": time_api(bundle, f"{tmp}/api", args.n),
        }
        for d in ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd"):
            try:
                os.rmdir(f"/sys/fs/cgroup/{d}/dockyard-bench")
            except OSError:
                pass
    print(f"{'command':<24}{'median ms':>10}{'min ms':>10}{'max ms':>10}   (N={args.n}, process: {args.cmd})")
    for name, xs in runs.items():
        print(f"{name:<24}{statistics.median(xs):>10.1f}{min(xs):>10.1f}{max(xs):>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
