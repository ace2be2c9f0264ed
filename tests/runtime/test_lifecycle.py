"""Lifecycle per the runtime spec, through the Python interface and the runc-compatible CLI."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from rt_helpers import new_id

from dockyard.errors import CommandNotExecutable, CommandNotFound, Conflict, ContainerNotFound, RuntimeFailure

pytestmark = pytest.mark.root


def wait_status(get, want: str, timeout: float = 5.0) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        status = get()
        if status == want or time.monotonic() > deadline:
            return status
        time.sleep(0.01)


def test_api_lifecycle(rt, make_bundle) -> None:  # type: ignore[no-untyped-def]
    bundle = make_bundle(["sh", "-c", "read x; exit 0"])  # waits for stdin: we control when it exits
    cid = new_id()
    r, w = os.pipe()
    devnull = os.open(os.devnull, os.O_WRONLY)
    pid = rt.create(cid, bundle, stdio=(r, devnull, devnull))
    os.close(r)
    os.close(devnull)
    st = rt.state(cid)
    assert (st.status, st.pid, st.bundle, st.id) == ("created", pid, str(bundle), cid)
    assert os.path.exists(f"/proc/{pid}")

    with pytest.raises(Conflict):
        rt.delete(cid)  # not stopped
    with pytest.raises(Conflict):
        rt.create(cid, bundle)  # duplicate id

    rt.start(cid)
    assert rt.state(cid).status == "running"
    with pytest.raises(Conflict):
        rt.start(cid)  # already running
    with pytest.raises(Conflict):
        rt.delete(cid)

    os.write(w, b"go\n")
    os.close(w)
    assert wait_status(lambda: rt.state(cid).status, "stopped") == "stopped"
    with pytest.raises(Conflict):
        rt.start(cid)  # stopped
    with pytest.raises(Conflict):
        rt.kill(cid, "KILL")  # stopped: neither created nor running
    rt.delete(cid)
    with pytest.raises(ContainerNotFound):
        rt.state(cid)
    with pytest.raises(ContainerNotFound):
        rt.delete(cid)
    assert rt.list() == []


def test_api_kill_created_and_force_delete(rt, make_bundle) -> None:  # type: ignore[no-untyped-def]
    a, b = new_id(), new_id()
    rt.create(a, make_bundle(["sleep", "100"]))
    rt.create(b, make_bundle(["sleep", "100"]))
    assert sorted(s.id for s in rt.list()) == sorted([a, b])
    rt.kill(a, "SIGTERM")  # a created container's init dies of SIGTERM too (as runc's does)
    assert wait_status(lambda: rt.state(a).status, "stopped") == "stopped"
    rt.delete(a)
    rt.start(b)
    rt.delete(b, force=True)
    assert rt.list() == []


def test_api_create_errors(rt, make_bundle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandNotFound, match=r'exec: "nosuchcmd": executable file not found in \$PATH'):
        rt.create(new_id(), make_bundle(["nosuchcmd"]))
    with pytest.raises(CommandNotFound, match="no such file or directory"):
        rt.create(new_id(), make_bundle(["/nope/cmd"]))
    with pytest.raises(CommandNotExecutable, match="permission denied"):
        rt.create(new_id(), make_bundle(["/etc"]))

    def bad_cwd(cfg: dict) -> None:  # type: ignore[type-arg]
        cfg["process"]["cwd"] = "/does/not/exist"

    with pytest.raises(RuntimeFailure, match=r'chdir to cwd \("/does/not/exist"\) set in config.json failed'):
        rt.create(new_id(), make_bundle(["true"], bad_cwd))

    def bad_mount(cfg: dict) -> None:  # type: ignore[type-arg]
        cfg["mounts"].append({"destination": "/mnt/x", "type": "bind", "source": "/no/such/source",
                              "options": ["rbind"]})  # fmt: skip

    with pytest.raises(RuntimeFailure, match="/no/such/source"):
        rt.create(new_id(), make_bundle(["true"], bad_mount))

    # fails in the intermediate, while the caller is making the cgroup
    def bad_netns(cfg: dict) -> None:  # type: ignore[type-arg]
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "network"]
        cfg["linux"]["namespaces"].append({"type": "network", "path": "/no/such/netns"})

    bundle = make_bundle(["true"], bad_netns)
    for _ in range(5):
        with pytest.raises(RuntimeFailure, match="failed to open network namespace /no/such/netns"):
            rt.create(new_id(), bundle)

    # fails in the caller's cgroup setup, after the fork
    def bad_limit(cfg: dict) -> None:  # type: ignore[type-arg]
        cfg["linux"]["resources"]["pids"] = {"limit": "lots"}

    with pytest.raises((RuntimeFailure, ValueError)):
        rt.create(new_id(), make_bundle(["true"], bad_limit))
    # failed creates leave nothing behind, cgroups included
    assert rt.list() == []
    assert not [p for p in Path("/sys/fs/cgroup").glob("*/dockyard-test/*") if p.is_dir()]


def test_api_direct_init_leaves_the_callers_pid_namespace_alone(rt, make_bundle) -> None:  # type: ignore[no-untyped-def]
    """Without a user namespace or joined ones, the caller forks the init itself into the new pid namespace
    (no intermediate): the init is pid 1 there and the caller's child, and the caller's own later
    children are born in its own pid namespace again."""
    bundle = make_bundle(["sh", "-c", "echo $$; read x"])
    cid = new_id()
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    pid = rt.create(cid, bundle, stdio=(r, out_w, out_w))
    os.close(r)
    os.close(out_w)
    try:
        assert os.readlink("/proc/self/ns/pid_for_children") == os.readlink("/proc/self/ns/pid")
        assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert ppid == os.getpid()
        child = os.fork()
        if child == 0:
            os._exit(0 if os.readlink("/proc/self/ns/pid") == os.readlink(f"/proc/{os.getppid()}/ns/pid") else 1)
        assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
        rt.start(cid)
        assert os.read(out_r, 100) == b"1\n"
    finally:
        os.write(w, b"\n")
        os.close(w)
        os.close(out_r)
        assert wait_status(lambda: rt.state(cid).status, "stopped") == "stopped"
        os.waitpid(pid, 0)
        rt.delete(cid)


def test_api_exit_status_through_subreaper(tmp_path: Path, make_bundle) -> None:  # type: ignore[no-untyped-def]
    """The init is re-parented to the nearest subreaper, which reaps it and sees its exit status."""
    from dockyard.runtime import linux as L
    from dockyard.runtime.builtin import BuiltinRuntime

    bundle = make_bundle(["sh", "-c", "exit 7"])
    pid = os.fork()
    if pid == 0:  # a monitor-like subreaper
        code = 1
        try:
            L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
            runtime = BuiltinRuntime(tmp_path / "sub-root")
            init = runtime.create("t-sub", bundle)
            runtime.start("t-sub")
            _, status = os.waitpid(init, 0)
            runtime.delete("t-sub")
            code = os.waitstatus_to_exitcode(status)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 7


def test_cli_lifecycle(dy, make_bundle) -> None:  # type: ignore[no-untyped-def]
    bundle = make_bundle(["sleep", "100"])
    cid = new_id()

    def status() -> str:
        return json.loads(dy("state", cid, check=True).stdout)["status"]

    dy("create", "--bundle", str(bundle), "--pid-file", str(bundle / "pid"), cid, detached_io=True, check=True)
    state = json.loads(dy("state", cid, check=True).stdout)
    assert state["status"] == "created"
    assert state["pid"] == int((bundle / "pid").read_text())
    assert set(state) >= {"ociVersion", "id", "pid", "status", "bundle"}

    dup = dy("create", "--bundle", str(bundle), cid, detached_io=True)
    assert dup.returncode != 0 and "already exists" in dup.stderr
    assert "Traceback" not in dup.stderr and len(dup.stderr.strip().splitlines()) == 1

    assert dy("delete", cid).returncode != 0
    dy("start", cid, check=True)
    assert status() == "running"
    assert dy("start", cid).returncode != 0
    listing = dy("list", "--format", "json", check=True).stdout
    assert [c["id"] for c in json.loads(listing)] == [cid]
    assert dy("list", "-q", check=True).stdout.split() == [cid]
    assert cid in dy("list", check=True).stdout

    dy("kill", cid, "KILL", check=True)
    assert wait_status(status, "stopped") == "stopped"
    assert dy("kill", cid, "9").returncode != 0
    dy("delete", cid, check=True)

    missing = dy("state", cid)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    for cmd in (["start", cid], ["kill", cid], ["delete", cid], ["pause", cid], ["resume", cid], ["ps", cid]):
        r = dy(*cmd)
        assert r.returncode != 0 and "does not exist" in r.stderr, (cmd, r)


def test_cli_kill_signal_names(dy, make_bundle) -> None:  # type: ignore[no-untyped-def]
    bundle = make_bundle(["sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.05; done"])
    for sig in ("TERM", "SIGTERM", "15"):
        cid = new_id()
        dy("run", "-d", "--bundle", str(bundle), cid, detached_io=True, check=True)
        time.sleep(0.1)
        dy("kill", cid, sig, check=True)
        assert wait_status(lambda cid=cid: json.loads(dy("state", cid).stdout)["status"], "stopped") == "stopped"
        dy("delete", cid, check=True)
    bad = dy("kill", "whatever", "SIGNOPE")
    assert bad.returncode != 0


def test_cli_run_exit_code_and_errors(dy, make_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = dy("run", "--bundle", str(make_bundle(["sh", "-c", "echo out; echo err >&2; exit 3"])), new_id())
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    cid = new_id()
    proc = subprocess.Popen([*dy.argv, "--root", str(dy.root), "run", "--bundle", str(make_bundle(["sleep", "100"])),
                             cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    dy.ids.add(cid)
    wait_status(lambda: json.loads(dy("state", cid).stdout or "{}").get("status"), "running")
    dy("kill", cid, "KILL", check=True)
    assert proc.wait(timeout=10) == 137
    r = dy("run", "--bundle", str(make_bundle(["nosuchcmd"])), new_id())
    assert r.returncode == 127 and 'exec: \\"nosuchcmd\\": executable file not found in $PATH' in r.stderr
    log = tmp_path / "log.json"
    r = dy("--log", str(log), "--log-format", "json", "run", "--bundle", str(make_bundle(["/etc"])), new_id())
    assert r.returncode == 126
    rec = json.loads(log.read_text().splitlines()[-1])
    assert rec["level"] == "error" and "permission denied" in rec["msg"] and rec["time"]
    assert r.stderr.strip() == rec["msg"]
    # nothing is left behind after run
    assert dy("list", "-q", check=True).stdout == ""


def test_cli_misc_commands(dy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    features = json.loads(dy("features", check=True).stdout)
    assert "CAP_SYS_ADMIN" in features["linux"]["capabilities"]
    assert "SCMP_ACT_ERRNO" in features["linux"]["seccomp"]["actions"]
    (tmp_path / "specdir").mkdir()
    r = dy("spec", "--bundle", str(tmp_path / "specdir"), check=True)
    cfg = json.loads((tmp_path / "specdir" / "config.json").read_text())
    assert cfg["process"]["args"] == ["sh"] and cfg["root"]["path"] == "rootfs"
    r = dy("spec", "--bundle", str(tmp_path / "specdir"))
    assert r.returncode != 0 and "exists" in r.stderr
    assert "dockyard-runtime version" in dy("--version", check=True).stdout
    r = dy("--systemd-cgroup", "list")
    if not os.path.isdir("/run/systemd/system"):
        assert r.returncode != 0 and "systemd is not running" in r.stderr
    r = dy("--debug", "state", "nope")
    assert r.returncode != 0
