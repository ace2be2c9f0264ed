"""Time ``dockyard-runtime run`` against ``runc run`` on the same busybox bundle (median of N).

Not a test: a number to watch.  Needs root, busybox-static and runc.  Usage::

    sudo .venv/bin/python bench/runtime_bench.py [-n 20] [--cmd true]

Both runtimes get the same config.json (runc's default ``spec`` with terminal off and a cgroupsPath),
so the comparison covers namespaces, mounts, devices, masked/readonly paths, caps, rlimits and the
cgroup.  ``dockyard-runtime`` runs through a tiny launcher equivalent to the console script, so its
number includes interpreter start-up -- the cost a caller of the command really pays.  The
create+start+delete rows are podman's sequence of separate invocations.  Rows are interleaved per
iteration, so background load skews them alike; compare medians and minimums across rows.
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


def time_cmds(argvs_for: object, i: int, err: object) -> float:
    """Wall time of running the command lines ``argvs_for(id)`` one after the other.

    stderr goes to a file, not a pipe: after ``create`` the container's init keeps its stdio, and
    waiting for EOF on a pipe would wait for ``start``."""
    t0 = time.perf_counter()
    for argv in argvs_for(f"bench{i}"):  # type: ignore[operator]
        err.seek(0)  # type: ignore[attr-defined]
        err.truncate()  # type: ignore[attr-defined]
        code = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)  # type: ignore[arg-type]
        if code != 0:
            err.seek(0)  # type: ignore[attr-defined]
            raise SystemExit(f"{' '.join(argv)} failed: {err.read().decode()}")  # type: ignore[attr-defined]
    return (time.perf_counter() - t0) * 1000


def api_runner(bundle: str, root: str) -> object:
    """In-process BuiltinRuntime create+start+wait+delete: what the engine's monitor pays per container."""
    from dockyard.runtime import linux as L
    from dockyard.runtime.builtin import BuiltinRuntime

    L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
    rt = BuiltinRuntime(root)
    devnull = os.open(os.devnull, os.O_RDWR)

    def run(i: int) -> float:
        t0 = time.perf_counter()
        pid = rt.create(f"api{i}", bundle, stdio=(devnull, devnull, devnull))
        rt.start(f"api{i}")
        os.waitpid(pid, 0)
        rt.delete(f"api{i}")
        return (time.perf_counter() - t0) * 1000

    return run


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--cmd", default="true")
    ap.add_argument("--blocks", action="store_true",
                    help="run each row N times in a row instead of interleaving the rows (runc gains from it: "
                         "back-to-back cgroup.procs writes skip an RCU grace period)")  # fmt: skip
    ap.add_argument("--pause", type=float, default=0.0,
                    help="seconds to sleep (untimed) before each measured row: every run then stands alone, as "
                         "an occasional container start does, with no help from the run before it")  # fmt: skip
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(tmp, args.cmd.split())
        dy = launcher(tmp)

        def runc(*a: str) -> list[str]:
            return ["runc", "--root", f"{tmp}/runc", *a]

        def dyr(*a: str) -> list[str]:
            return [dy, "--root", f"{tmp}/dy", *a]

        cases = {
            "python -c pass": lambda i: [[sys.executable, "-c", "pass"]],
            "runc run": lambda i: [runc("run", "-b", bundle, i)],
            "dockyard-runtime run": lambda i: [dyr("run", "-b", bundle, i)],
            # crun refuses this VM's hybrid cgroup layout unless /sys/fs/cgroup/unified is out of sight:
            # a private mount namespace without it (the wrapper's own cost is the next row)
            **({"crun run (wrapped)": lambda i: [["unshare", "-m", "sh", "-c",
                                                  "umount /sys/fs/cgroup/unified 2>/dev/null; exec crun --root "
                                                  f"{tmp}/crun run -b {bundle} {i}"]],
                "the wrapper alone": lambda i: [["unshare", "-m", "sh", "-c",
                                                 "umount /sys/fs/cgroup/unified 2>/dev/null; exec true"]]}
               if shutil.which("crun") and shutil.which("unshare") else {}),
            # podman's sequence: separate create, start and delete invocations
            "runc create+start+delete": lambda i: [runc("create", "-b", bundle, i), runc("start", i),
                                                   runc("delete", "-f", i)],
            "dockyard create+start+delete": lambda i: [dyr("create", "-b", bundle, i), dyr("start", i),
                                                       dyr("delete", "-f", i)],
        }  # fmt: skip
        api = api_runner(bundle, f"{tmp}/api")
        runs: dict[str, list[float]] = {name: [] for name in [*cases, "BuiltinRuntime (API)"]}
        # Interleaved, so that whatever else the machine does weighs on every row alike.
        order = [(i, name) for name in runs for i in range(args.n)] if args.blocks else \
            [(i, name) for i in range(args.n) for name in runs]  # fmt: skip
        with tempfile.TemporaryFile() as err:
            for i, name in order:
                if args.pause:
                    time.sleep(args.pause)
                if name in cases:
                    runs[name].append(time_cmds(cases[name], i, err))
                else:
                    runs[name].append(api(i))  # type: ignore[operator]
        for d in ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", ""):
            try:
                os.rmdir(f"/sys/fs/cgroup/{d}/dockyard-bench".replace("//", "/"))
            except OSError:
                pass
    mode = ("in blocks" if args.blocks else "interleaved") + (f", {args.pause:g} s apart" if args.pause else "")
    print(f"{'command':<30}{'median ms':>10}{'min ms':>10}{'max ms':>10}   (N={args.n} {mode}, process: {args.cmd})")
    for name, xs in runs.items():
        print(f"{name:<30}{statistics.median(xs):>10.1f}{min(xs):>10.1f}{max(xs):>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
