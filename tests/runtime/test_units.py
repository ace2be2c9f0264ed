"""Unit tests for the runtime's pieces that need no container: cgroup file writes (v2 against a temp
dir standing in for /sys/fs/cgroup), device rules, mount options, path resolution, seccomp, state."""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from pathlib import Path

import pytest

from dockyard.errors import (
    CommandNotExecutable,
    CommandNotFound,
    Conflict,
    ContainerNotFound,
    InvalidArgument,
    RuntimeFailure,
)
from dockyard.runtime import cgroups as CG
from dockyard.runtime import linux as L
from dockyard.runtime.builtin import BuiltinRuntime, _check_sysctls, _ns_plan, _parse_signal
from dockyard.runtime.external import _error_for
from dockyard.runtime.process import look_path
from dockyard.runtime.rootfs import parse_options, propagation_flag, secure_join
from dockyard.runtime.state import FIFO_FILE, OCIState, StateStore, validate_id


# --- cgroup v2 against a fake hierarchy -----------------------------------------------------------
@pytest.fixture
def fake_v2(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_v2_detect_and_create_enables_controllers(fake_v2: Path) -> None:
    assert CG.detect(str(fake_v2)) == 2
    cg = CG.for_container("/dockyard/abc", root=str(fake_v2))
    assert isinstance(cg, CG.CgroupV2) and cg.path == str(fake_v2 / "dockyard/abc")
    (fake_v2 / "dockyard").mkdir()
    (fake_v2 / "dockyard/cgroup.controllers").write_text("cpu memory pids\n")
    (fake_v2 / "dockyard/cgroup.subtree_control").write_text("memory\n")
    cg.create()
    assert (fake_v2 / "dockyard/abc").is_dir()
    assert (fake_v2 / "cgroup.subtree_control").read_text() == "+cpuset +cpu +io +memory +hugetlb +pids"
    assert (fake_v2 / "dockyard/cgroup.subtree_control").read_text() == "+cpu +pids"
    assert cg.procs_files() == [str(fake_v2 / "dockyard/abc/cgroup.procs")]
    assert CG.from_json(json.loads(json.dumps(cg.to_json()))).path == cg.path  # type: ignore[attr-defined]


def test_v2_apply_writes(fake_v2: Path) -> None:
    cg = CG.CgroupV2(str(fake_v2 / "c1"), str(fake_v2))
    cg.create()
    cg.apply({
        "memory": {"limit": 100 * 2**20, "swap": 150 * 2**20, "reservation": 50 * 2**20},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 64},
        "blockIO": {"weight": 500},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 2**21}],
        "unified": {"memory.high": "90000000"},
    })  # fmt: skip
    files = {p.name: p.read_text() for p in (fake_v2 / "c1").iterdir()}
    assert files == {
        "memory.max": str(100 * 2**20),
        "memory.swap.max": str(50 * 2**20),
        "memory.low": str(50 * 2**20),
        "cpu.weight": "39",  # runc's conversion of 1024 shares
        "cpu.max": "50000 100000",
        "cpuset.cpus": "0-1",
        "cpuset.mems": "0",
        "pids.max": "64",
        "io.weight": "4950",
        "hugetlb.2MB.max": str(2**21),
        "memory.high": "90000000",
    }
    cg.apply({"memory": {"limit": -1, "swap": -1}, "pids": {"limit": 0}, "cpu": {"quota": -1, "period": 20000}})
    assert (fake_v2 / "c1/memory.max").read_text() == "max"
    assert (fake_v2 / "c1/memory.swap.max").read_text() == "max"
    assert (fake_v2 / "c1/pids.max").read_text() == "max"
    assert (fake_v2 / "c1/cpu.max").read_text() == "max 20000"
    with pytest.raises(RuntimeFailure, match="without memory limit"):
        cg.apply({"memory": {"swap": 10}})
    with pytest.raises(RuntimeFailure, match="bigger than memory limit"):
        cg.apply({"memory": {"limit": 100, "swap": 50}})
    with pytest.raises(RuntimeFailure, match="invalid"):
        cg.apply({"unified": {"../escape": "1"}})


def test_v2_freeze_oom_pids_destroy(fake_v2: Path) -> None:
    cg = CG.CgroupV2(str(fake_v2 / "c2"), str(fake_v2))
    cg.create()
    d = fake_v2 / "c2"
    (d / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    cg.freeze()  # returns once cgroup.events says frozen
    assert (d / "cgroup.freeze").read_text() == "1" and cg.frozen()
    (d / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    cg.thaw()
    assert (d / "cgroup.freeze").read_text() == "0" and not cg.frozen()
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n")
    assert cg.oom_kills() == 2
    (d / "cgroup.procs").write_text("12\n13\n")
    assert cg.pids() == [12, 13]
    assert cg.devices_enforced is False
    for f in d.iterdir():
        f.unlink()
    cg.destroy()
    assert not d.exists()


def test_v1_apply_writes(tmp_path: Path) -> None:
    mnts = {name: tmp_path / name for name in ("memory", "cpu", "pids", "devices", "freezer", "cpuset")}
    paths = {str(m): str(m / "c") for m in mnts.values()}
    cg = CG.CgroupV1(paths, {str(m): [name] for name, m in mnts.items()})
    cg.create()
    for name in ("cpus", "mems"):
        (mnts["cpuset"] / f"cpuset.{name}").write_text("0-3\n")
    (mnts["cpuset"] / "c/cpuset.cpus").write_text("")
    (mnts["cpuset"] / "c/cpuset.mems").write_text("")
    cg.create()  # copies cpuset.cpus/mems down from the parent
    assert (mnts["cpuset"] / "c/cpuset.cpus").read_text() == "0-3"
    mem = mnts["memory"] / "c"
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (mem / "memory.memsw.limit_in_bytes").write_text("9223372036854771712\n")
    cg.apply({"memory": {"limit": 1000, "swap": 2000, "swappiness": 10, "disableOOMKiller": True},
              "cpu": {"shares": 256, "quota": 1000, "period": 10000}, "pids": {"limit": 5},
              "devices": [{"allow": False, "access": "rwm"}]})  # fmt: skip
    assert (mem / "memory.limit_in_bytes").read_text() == "1000"
    assert (mem / "memory.memsw.limit_in_bytes").read_text() == "2000"
    assert (mem / "memory.swappiness").read_text() == "10"
    assert (mem / "memory.oom_control").read_text() == "1"
    assert (mnts["cpu"] / "c/cpu.cfs_quota_us").read_text() == "1000"
    assert (mnts["pids"] / "c/pids.max").read_text() == "5"
    assert (mnts["devices"] / "c/devices.deny").read_text() == "a"
    assert cg.procs_files()[0].endswith("/tasks")
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    assert cg.oom_kills() == 3
    with pytest.raises(RuntimeFailure, match="cgroup v2"):
        cg.apply({"unified": {"memory.high": "1"}})


def test_device_program_matches_runc() -> None:
    default_allow, lines = CG.device_program([{"allow": False, "access": "rwm"}, *CG.DEFAULT_DEVICE_RULES])
    assert not default_allow
    assert lines == ["b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                     "c 5:0 rwm", "c 5:2 rwm", "c 10:200 rwm", "c 136:* rwm"]  # fmt: skip
    default_allow, lines = CG.device_program([{"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}])
    assert default_allow and lines == ["c 1:3 w"]
    sda = {"type": "b", "major": 8, "minor": 0}
    _, lines = CG.device_program([{"allow": False}, {"allow": True, **sda, "access": "rw"},
                                  {"allow": False, **sda, "access": "w"}])  # fmt: skip
    assert lines == ["b 8:0 r"]


# --- mounts and paths ---------------------------------------------------------------------------
def test_parse_options() -> None:
    flags, prop, data = parse_options(["rbind", "ro", "nosuid", "rslave", "mode=755", "size=1m", "rw", "noexec"])
    assert flags == L.MS_BIND | L.MS_REC | L.MS_NOSUID | L.MS_NOEXEC
    assert prop == [L.MS_SLAVE | L.MS_REC] and data == "mode=755,size=1m"
    assert propagation_flag(None) == L.MS_SLAVE | L.MS_REC
    assert propagation_flag("shared") == L.MS_SHARED
    with pytest.raises(RuntimeFailure):
        propagation_flag("sideways")


def test_secure_join_stays_inside(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "abs").symlink_to("/etc")
    (root / "escape").symlink_to("../../../../../../tmp")
    (root / "loop").symlink_to("loop")
    r = str(root)
    assert secure_join(r, "/abs/passwd") == f"{r}/etc/passwd"
    assert secure_join(r, "/escape/x") == f"{r}/tmp/x"
    assert secure_join(r, "/../../etc/./shadow") == f"{r}/etc/shadow"
    assert secure_join(r, "/") == r
    with pytest.raises(RuntimeFailure):
        secure_join(r, "/loop/x")


# --- process -------------------------------------------------------------------------------------
def test_look_path_errors(tmp_path: Path) -> None:
    exe = tmp_path / "tool"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    plain = tmp_path / "plain"
    plain.write_text("")
    env = {"PATH": f"/nonexistent:{tmp_path}"}
    assert look_path("tool", env) == str(exe)
    assert look_path(str(exe), {}) == str(exe)
    with pytest.raises(CommandNotFound, match=r'^exec: "nope": executable file not found in \$PATH$'):
        look_path("nope", env)
    with pytest.raises(CommandNotFound, match="no such file or directory"):
        look_path("/no/such", env)
    with pytest.raises(CommandNotExecutable, match="permission denied"):
        look_path(str(plain), env)
    with pytest.raises(CommandNotExecutable):
        look_path(str(tmp_path), env)
    assert CommandNotFound.exit_code == 127 and CommandNotExecutable.exit_code == 126


def test_signal_and_namespace_parsing() -> None:
    assert _parse_signal("TERM") == _parse_signal("SIGTERM") == _parse_signal("15") == signal.SIGTERM
    assert _parse_signal("kill") == 9 and _parse_signal(2) == 2
    with pytest.raises(InvalidArgument):
        _parse_signal("SIGNOPE")
    flags, joins, types = _ns_plan({"namespaces": [{"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"},
                                                   {"type": "user", "path": "/x"}, {"type": "mount"}]})  # fmt: skip
    assert flags == L.CLONE_NEWPID | L.CLONE_NEWNS
    assert joins == [("user", "/x"), ("network", "/proc/1/ns/net")]
    assert types == {"pid", "network", "user", "mount"}
    with pytest.raises(InvalidArgument, match="duplicated"):
        _ns_plan({"namespaces": [{"type": "pid"}, {"type": "pid"}]})
    with pytest.raises(InvalidArgument):
        _ns_plan({"namespaces": [{"type": "bogus"}]})
    _check_sysctls({"net.ipv4.ip_forward": "1", "kernel.shmmax": "1"}, {"network", "ipc"})
    with pytest.raises(RuntimeFailure, match="host's IPC namespace"):
        _check_sysctls({"fs.mqueue.msg_max": "1"}, {"network"})
    with pytest.raises(RuntimeFailure, match="not in a separate kernel namespace"):
        _check_sysctls({"vm.swappiness": "1"}, {"network", "ipc", "uts"})


def test_external_error_mapping() -> None:
    assert isinstance(_error_for("container does not exist"), ContainerNotFound)
    assert isinstance(_error_for("container with given ID already exists"), Conflict)
    assert isinstance(_error_for('exec: "x": executable file not found in $PATH'), CommandNotFound)
    assert isinstance(_error_for('exec: "/etc": permission denied'), CommandNotExecutable)
    assert isinstance(_error_for("cannot start an already running container"), Conflict)
    assert type(_error_for("mount failed")) is RuntimeFailure


# --- seccomp ------------------------------------------------------------------------------------
def _in_child(fn) -> int:  # type: ignore[no-untyped-def]
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = int(fn())
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_seccomp_filter_loads_and_denies(tmp_path: Path) -> None:
    from dockyard.runtime.seccomp import build

    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat", "not_a_real_syscall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},  # same as default: skipped, not an error
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 9, "op": "SCMP_CMP_EQ"}]},
        ],
    }  # fmt: skip

    def child() -> int:
        L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
        build(profile).load()
        try:
            os.mkdir(tmp_path / "d")
            return 1
        except PermissionError as e:
            if e.errno != errno.EACCES:
                return 2
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.personality(8) != -1 or libc.personality(9) != -1:
            return 3
        if libc.personality(0xFFFFFFFF) == -1:  # query: allowed
            return 4
        return 0 if os.getpid() > 0 else 5

    assert _in_child(child) == 0
    assert not (tmp_path / "d").exists()
    with pytest.raises(RuntimeFailure, match="invalid seccomp action"):
        build({"defaultAction": "SCMP_ACT_BOGUS"})
    with pytest.raises(RuntimeFailure, match="not supported"):
        build({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x"})
    with pytest.raises(RuntimeFailure, match="operator"):
        bad_op = {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "op": "SCMP_CMP_NOPE"}]}
        build({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [bad_op]})


# --- state ----------------------------------------------------------------------------------------
def test_state_store_and_status_derivation(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "root")
    with pytest.raises(InvalidArgument):
        validate_id("../evil")
    d = store.reserve("c1")
    with pytest.raises(Conflict):
        store.reserve("c1")
    assert store.read("c1") is None  # reserved, not yet written: "creating"
    rt = BuiltinRuntime(tmp_path / "root")
    assert rt.state("c1").status == "creating"

    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    try:
        start = L.proc_start_time(pid)
        assert start is not None
        cg = CG.CgroupV2(str(tmp_path / "nocg"), str(tmp_path))
        data = {"id": "c1", "pid": pid, "start_time": start[0], "bundle": "/b", "cgroup": cg.to_json()}
        store.write("c1", data)  # type: ignore[arg-type]
        assert not any(n.startswith(".") for n in os.listdir(d))  # temp file renamed away
        os.mkfifo(os.path.join(d, FIFO_FILE))
        assert rt.state("c1").status == "created"
        os.unlink(os.path.join(d, FIFO_FILE))
        st = rt.state("c1")
        assert (st.status, st.pid, st.bundle) == ("running", pid, "/b")
        store.write("c1", {**data, "start_time": start[0] + 1})  # type: ignore[dict-item]
        assert rt.state("c1").status == "stopped"  # same pid, different process: never ours
        store.write("c1", data)  # type: ignore[arg-type]
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert rt.state("c1").status == "stopped"
    assert [s.id for s in rt.list()] == ["c1"]
    store.remove("c1")
    assert store.ids() == []
    with pytest.raises(ContainerNotFound):
        rt.state("c1")


def test_oci_state_dicts() -> None:
    st = OCIState("1.1.0", "x", "running", 42, "/b", {"a": "b"}, "/b/rootfs", "2024-01-01T00:00:00Z")
    assert st.to_dict()["rootfs"] == "/b/rootfs"
    assert st.spec_dict() == {"ociVersion": "1.1.0", "id": "x", "status": "running", "pid": 42, "bundle": "/b",
                              "annotations": {"a": "b"}}  # fmt: skip
    assert "pid" not in OCIState("1.1.0", "x", "stopped", 0, "/b").spec_dict()
    assert st == OCIState("1.1.0", "x", "running", 42, "/b", {"a": "b"}, "/b/rootfs", "2024-01-01T00:00:00Z")


@pytest.mark.root
def test_v2_on_the_real_unified_hierarchy() -> None:
    """The hybrid host's cgroup2 mount has no controllers, but freezing and membership are core v2."""
    unified = "/sys/fs/cgroup/unified"
    if os.geteuid() != 0 or CG.detect(unified) != 2:
        pytest.skip("needs root and a cgroup2 mount at /sys/fs/cgroup/unified")
    cg = CG.for_container(f"/dockyard-test-v2/{os.getpid()}", root=unified)
    cg.create()
    pid = os.fork()
    if pid == 0:
        try:
            cg.join(0)
            time.sleep(30)
        finally:
            os._exit(0)
    try:
        deadline = time.monotonic() + 5
        while pid not in cg.pids() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert cg.pids() == [pid]
        cg.freeze()
        assert cg.frozen()
        assert Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] in "SD"
        cg.thaw()
        assert not cg.frozen()
        assert cg.oom_kills() == 0
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    cg.destroy()
    os.rmdir(os.path.dirname(cg.path))  # type: ignore[attr-defined]
    assert not os.path.exists(cg.path)  # type: ignore[attr-defined]


def test_hooks_timeout_failure_and_stdin(tmp_path: Path) -> None:
    from dockyard.runtime.hooks import run_hooks

    out = tmp_path / "state.json"
    run_hooks([{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}; echo $HOOKVAR >> {out}"],
                "env": ["HOOKVAR=set"]}], "prestart", b'{"id": "x"}')  # fmt: skip
    assert out.read_text() == '{"id": "x"}set\n'
    t0 = time.monotonic()
    with pytest.raises(RuntimeFailure, match="error running poststart hook #0: timeout after 1s"):
        run_hooks([{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}], "poststart", b"{}")
    assert time.monotonic() - t0 < 5
    with pytest.raises(RuntimeFailure, match="hook #1: exit status 2, stdout: o, stderr: e"):
        run_hooks([{"path": "/bin/true"}, {"path": "/bin/sh", "args": ["sh", "-c", "printf o; printf e >&2; exit 2"]}],
                  "createRuntime", b"{}")  # fmt: skip
    with pytest.raises(RuntimeFailure, match="fork/exec /no/such/hook"):
        run_hooks([{"path": "/no/such/hook"}], "poststop", b"{}")


# --- the CLI's fast paths: argparse's and json's results, without importing them -----------------------
_ARGV_CASES = [
    ["run", "ID"], ["run", "-b", "/b", "ID"], ["run", "--bundle", "/b", "ID"], ["run", "--bundle=/b", "ID"],
    ["run", "ID", "-b", "/b", "-d"], ["run", "--detach", "--keep", "--pid-file", "/p", "ID"],
    ["--root", "/r", "--log", "/l", "--log-format", "json", "run", "-b", "b", "ID"],
    ["--root=/r", "--debug", "--systemd-cgroup", "create", "--console-socket", "/s", "ID"],
    ["--rootless", "false", "--criu", "x", "create", "ID", "--no-pivot", "--no-new-keyring"],
    ["create", "--preserve-fds", "3", "ID"], ["create", "--preserve-fds=2", "ID"],
    ["create", "--preserve-fds", "x", "ID"],
    ["create", "--preserve-fds", "-1", "ID"], ["create", "ID", "ID2"], ["create"], ["create", "-b"],
    ["create", "-b", "--pid-file", "p", "ID"], ["create", "--bun", "/b", "ID"], ["create", "-b/b", "ID"],
    ["create", "--no-pivot=1", "ID"], ["create", "--", "ID"], ["create", "-h"], ["--help"], ["-v"], ["--version"],
    ["--log-format", "xml", "create", "ID"], ["create", "ID", "--root", "/r"], ["--unknown", "create", "ID"],
    ["start", "ID"], ["state", "ID"], ["pause", "ID"], ["resume", "ID"], ["state"], ["state", "-x", "ID"],
    ["kill", "ID"], ["kill", "ID", "KILL"], ["kill", "-a", "ID", "9"], ["kill", "ID", "9", "--all"],
    ["kill", "ID", "-a", "KILL"], ["kill", "ID", "-9"], ["kill", "ID", "SIGTERM", "extra"],
    ["delete", "ID"], ["delete", "-f", "ID"], ["delete", "ID", "--force"], ["delete", "--force=yes", "ID"],
    ["exec", "ID", "sh", "-c", "echo hi"], ["exec", "-t", "--cwd", "/", "-e", "A=1", "-e", "B=2", "ID", "ls", "-l"],
    ["exec", "--process", "/p.json", "-d", "--pid-file", "/p", "--console-socket", "/s", "ID"],
    ["exec", "-u", "1000:1000", "-g", "10", "--additional-gids", "20", "-c", "CAP_KILL", "--no-new-privs", "ID", "id"],
    ["exec", "ID", "--", "ls"], ["exec", "--preserve-fds", "2", "ID", "-t"], ["exec", "-d"], ["exec", "-p"],
    ["list"], ["list", "-q"], ["ps", "ID"], ["features"], ["spec", "-b", "/x"], [], ["nosuchcommand", "ID"],
    ["run", "", "-b", "/b"], ["run", "-d", "-b", "x y", "ID"],
]  # fmt: skip


@pytest.mark.parametrize("argv", _ARGV_CASES, ids=lambda a: " ".join(a) or "<empty>")
def test_fast_parse_agrees_with_argparse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Whatever ``_fast_parse`` accepts, argparse parses to exactly the same values; the rest is argparse's."""
    from dockyard.runtime.cli import _command_of, _fast_parse, _parser

    fast = _fast_parse(argv)
    if fast is None:
        return
    expected = vars(_parser(_command_of(argv)).parse_args(argv))
    assert vars(fast) == expected


_HEAVY = ("argparse", "json", "re", "enum", "signal", "ctypes", "typing", "dataclasses", "select", "socket",
          "subprocess", "resource", "fcntl", "struct", "hashlib")  # fmt: skip


def _modules_after(argv: list[str]) -> str:
    import subprocess
    import sys

    code = (f"import sys; from dockyard.runtime.cli import main; code = main({argv!r}); "
            f"print(code, sorted(m for m in {_HEAVY!r} if m in sys.modules))")  # fmt: skip
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_hot_commands_import_none_of_the_heavy_modules(tmp_path: Path) -> None:
    """The start-up budget of ``dockyard-runtime state/start/delete``: no argparse, json, ctypes..."""
    for cmd in ("state", "start", "delete", "kill"):
        assert _modules_after(["--root", str(tmp_path), cmd, "nope"]) == "1 []"


@pytest.mark.root
def test_run_imports_none_of_the_heavy_modules(tmp_path: Path, make_bundle) -> None:  # type: ignore[no-untyped-def]
    bundle = make_bundle(["true"])
    assert _modules_after(["--root", str(tmp_path), "run", "-b", str(bundle), "t-heavy"]) == "0 []"


@pytest.mark.parametrize("doc", [
    b'{"a": [1, 2.5, -3e10, true, false, null, "x\\u00e9\\n"], "b": {}}', b"  [1, 2]\n", b'"s"', b"NaN",
    "{\"k\": \"\u00e9\"}".encode(), b"", b"{", b"[1,]", b"{} x", b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00", b"\xc3(",
])  # fmt: skip
def test_json_loads_is_json(doc: bytes) -> None:
    from dockyard.runtime.state import json_loads

    for arg in (doc, doc.decode("utf-8", "replace")):
        try:
            want: object = ("ok", json.loads(arg))
        except ValueError as e:
            want = (type(e), str(e))
        try:
            got: object = ("ok", json_loads(arg))
        except ValueError as e:
            got = (type(e), str(e))
        assert repr(got) == repr(want)  # repr: NaN != NaN


def test_json_dumps_is_json() -> None:
    from dockyard.runtime.state import json_dumps

    docs: list[object] = [{"a": 1, "b": [1, 2, {"c": None}], "d": True, "e": 1.5, "f": "é\n\"", "g": [], "h": {}},
                          [], {}, "x", 1, None, [float("nan"), float("inf")], {"k": (1, 2)},
                          {"z": 1, "a": {"y": 2, "b": 3}}]  # fmt: skip
    for doc in docs:
        assert json_dumps(doc) == json.dumps(doc)
        assert json_dumps(doc, indent=2) == json.dumps(doc, indent=2)
        assert json_dumps(doc, sort_keys=True) == json.dumps(doc, sort_keys=True)
    assert json_dumps({1: 2}, indent=2) == json.dumps({1: 2}, indent=2)  # non-str keys: handed to json
    with pytest.raises(TypeError):
        json_dumps({"x": object()})


@pytest.mark.root
def test_rlimits_through_prlimit_behave_like_resource() -> None:
    """``linux.setrlimit``/``getrlimit`` (prlimit via ctypes) give ``resource``'s values and errors."""
    import resource

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a child, to lower limits and drop CAP_SYS_RESOURCE freely
        os.close(r)
        out: list[object] = []
        try:
            num = resource.RLIMIT_NOFILE
            out.append(L.getrlimit(num) == resource.getrlimit(num))
            L.setrlimit(num, (100, 200))
            out.append(resource.getrlimit(num))
            resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            out.append(L.getrlimit(resource.RLIMIT_CORE))
            eff, perm, inh = L.capget()
            L.capset(eff & ~(1 << 24), perm, inh)  # no CAP_SYS_RESOURCE: raising the hard limit is refused
            for limits in ((300, 100), (100, 400), (L.RLIM_INFINITY, L.RLIM_INFINITY)):
                for setter in (resource.setrlimit, L.setrlimit):
                    try:
                        setter(num, limits)
                        out.append("ok")
                    except (OSError, ValueError) as e:
                        out.append(f"{type(e).__name__}: {e}")
        finally:
            os.write(w, repr(out).encode())
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        got = f.read()
    os.waitpid(pid, 0)
    exceeds = "ValueError: current limit exceeds maximum limit"
    refused = "ValueError: not allowed to raise maximum limit"
    assert got == repr([True, (100, 200), (-1, -1), exceeds, exceeds, refused, refused, refused, refused])
