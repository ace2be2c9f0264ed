"""Containers end to end: real namespaces, overlayfs, cgroups, through the installed `dockyard` command."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, DOCKYARD_BIN, assert_one_line_error, run_in_pty

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(autouse=True)
def _cleanup(cli: CLI):  # type: ignore[no-untyped-def]
    yield
    ids = cli("ps", "-aq", check=False).stdout.split()
    if ids:
        cli("rm", "-f", *ids, check=False)


def mounts_under(root: Path) -> list[str]:
    return [line.split()[4] for line in open("/proc/self/mountinfo") if line.split()[4].startswith(str(root))]


def test_run_prints_output_and_exits_with_the_containers_status(cli: CLI, busybox_image: str) -> None:
    r = cli("run", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert cli("run", "--rm", "busybox", "true").returncode == 0


@pytest.mark.parametrize("args, code, words", [
    (["busybox", "nosuchcmd"], 127, 'exec: "nosuchcmd": executable file not found in $PATH'),
    (["busybox", "/etc/passwd"], 126, "permission denied"),
    (["nosuch/image:1"], 125, "nosuch/image:1"),
    (["-u", "nobodyatall", "busybox", "true"], 125, "nobodyatall"),
    (["-v", "relative:/x:zz", "busybox", "true"], 125, "invalid"),
    (["-v", "/no/such/dir:/x", "busybox", "true"], 125, "/no/such/dir"),
    (["--memory", "lots", "busybox", "true"], 125, "lots"),
])
def test_run_failures_use_dockers_exit_statuses(cli: CLI, busybox_image: str, args: list[str], code: int,
                                                 words: str, root: Path) -> None:
    r = cli("run", "--rm", "--name", "failing-run", *args, check=False)
    assert r.returncode == code, r
    assert words in r.stderr, r.stderr
    if args[0] == "nosuch/image:1":  # as Docker: "Unable to find image ... locally", then why the pull failed
        assert r.stderr.startswith("Unable to find image 'nosuch/image:1' locally\n")
        assert "Traceback" not in r.stderr
    else:
        assert_one_line_error(r)
    assert cli("ps", "-aq").stdout.strip() == ""
    assert mounts_under(root) == []
    # Nor a monitor: `run` forks it before it creates the container; it must not outlive a failure.
    deadline = time.monotonic() + 2
    while _processes_with_arg("failing-run") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _processes_with_arg("failing-run") == []


def _processes_with_arg(arg: str) -> list[int]:
    found = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and arg.encode() in Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0"):
                found.append(int(d))
        except OSError:
            pass
    return found


def test_detached_container_ps_logs_stop_rm(cli: CLI, busybox_image: str, root: Path) -> None:
    cid = cli("run", "-d", "busybox", "sh", "-c", "echo started; trap 'echo bye; exit 0' TERM; "
              "while true; do sleep 0.1; done").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    lines = cli("ps").stdout.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    row = lines[1]
    assert row.startswith(cid[:12]) and "busybox" in row and "Up " in row
    name = row.split()[-1]
    assert re.fullmatch(r"[a-z]+_[a-z]+\d*", name)
    deadline = time.time() + 5
    while "started" not in cli("logs", name).stdout and time.time() < deadline:
        time.sleep(0.05)
    assert cli("logs", cid[:6]).stdout == "started\n"
    log = json.loads(Path(json.loads(cli("inspect", name).stdout)[0]["LogPath"]).read_text().splitlines()[0])
    assert log["log"] == "started\n" and log["stream"] == "stdout" and log["time"].endswith("Z")
    assert cli("stop", name).stdout.strip() == name
    assert "bye" in cli("logs", "--tail", "1", name).stdout
    info = json.loads(cli("container", "inspect", name).stdout)[0]
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 0
    assert "Exited (0)" in cli("ps", "-a").stdout
    assert cli("ps", "-q").stdout.strip() == ""
    cli("rm", name)
    assert cli("ps", "-aq").stdout.strip() == ""
    assert mounts_under(root) == []
    assert not (root / "containers" / cid).exists()


def test_stopped_container_keeps_its_files_and_start_runs_again(cli: CLI, busybox_image: str) -> None:
    """The seed's story: new_file vanishes in a fresh container, survives in the stopped one."""
    cli("run", "--name", "merry_manatee", "busybox", "sh", "-c", "touch /new_file && ls /new_file")
    r = cli("run", "--rm", "busybox", "ls", "/new_file", check=False)
    assert r.returncode != 0
    out = cli("start", "-a", "merry_manatee").stdout
    assert out == "/new_file\n"
    assert "Exited (0)" in cli("container", "ls", "-a").stdout


def test_commit_snapshots_changes_with_whiteouts_and_history(cli: CLI, busybox_image: str) -> None:
    cli("run", "--name", "shady_giraffe", "busybox", "sh", "-c", "touch /new_file1; rm /bin/vi; echo hi > /etc/motd")
    assert sorted(cli("diff", "shady_giraffe").stdout.splitlines()) == [
        "A /etc/motd", "A /new_file1", "C /bin", "C /etc", "D /bin/vi"]
    image_id = cli("commit", "-m", "fork Daphne's duck", "-c", "ENV MOOD=happy", "shady_giraffe",
                   "your/duck:v2").stdout.strip()
    assert image_id.startswith("sha256:")
    out = cli("run", "--rm", "your/duck:v2", "sh", "-c", "ls /new_file1 && cat /etc/motd && echo $MOOD; "
              "ls /bin/vi", check=False)
    assert out.stdout == "/new_file1\nhi\nhappy\n" and out.returncode != 0
    hist = cli("history", "your/duck:v2").stdout.splitlines()
    assert "fork Daphne's duck" in hist[1]
    info = json.loads(cli("inspect", "your/duck:v2").stdout)[0]
    assert len(info["RootFS"]["Layers"]) == 2
    rows = [r.split() for r in cli("images").stdout.splitlines()[1:]]
    assert ["your/duck", "v2", image_id[7:19]] in [r[:3] for r in rows]


def test_running_container_is_paused_for_commit_and_keeps_running(cli: CLI, busybox_image: str) -> None:
    cli("run", "-d", "--name", "busy", "busybox", "sh", "-c", "echo a > /a; sleep 30")
    time.sleep(0.3)
    cli("commit", "busy", "snap:1")
    assert "Up " in cli("ps", "--filter", "name=busy").stdout
    assert cli("run", "--rm", "snap:1", "cat", "/a").stdout == "a\n"


def test_default_security_matches_docker(cli: CLI, busybox_image: str) -> None:
    cid = cli("run", "-d", "busybox", "sleep", "30").stdout.strip()
    r = cli("exec", cid, "sh", "-c", "grep CapEff /proc/self/status; hostname; cat /etc/hostname; "
            "ls /dev; cat /proc/1/cmdline; echo; df -k /dev/shm | tail -1", check=False)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["CapEff:", "00000000a80425fb"]
    assert lines[1] == cid[:12] and lines[2] == cid[:12]
    devs = set(" ".join(lines[3:-2]).split())
    assert {"null", "zero", "random", "urandom", "tty", "pts", "shm", "mqueue"} <= devs
    assert lines[-2] == "sleep30" or lines[-2].startswith("sleep")
    assert lines[-1].split()[1] == "65536"  # a 64 MB /dev/shm
    assert cli("exec", cid, "mount", "-t", "tmpfs", "none", "/tmp", check=False).returncode != 0
    assert cli("exec", cid, "hostname", "evil", check=False).returncode != 0
    assert cli("exec", cid, "sh", "-c", "echo 1 > /proc/sys/kernel/panic", check=False).returncode != 0
    assert cli("exec", cid, "ls", "/root/../../work", check=False).returncode != 0
    assert os.uname().nodename != "evil"
    # --privileged lifts it
    r = cli("run", "--rm", "--privileged", "busybox", "sh", "-c",
            "grep CapEff /proc/self/status; mount -t tmpfs none /tmp && echo mounted")
    status = Path("/proc/self/status").read_text().splitlines()
    host_bnd = next(line for line in status if line.startswith("CapBnd:")).split()[1]
    assert r.stdout.splitlines() == [f"CapEff:\t{host_bnd}", "mounted"]


def test_names_prefixes_and_ambiguity(cli: CLI, busybox_image: str) -> None:
    ids = [cli("create", "busybox", "true").stdout.strip() for _ in range(12)]
    names = [json.loads(cli("inspect", i).stdout)[0]["Name"] for i in ids]
    assert len(set(names)) == 12
    cli("create", "--name", "dup", "busybox", "true")
    r = cli("create", "--name", "dup", "busybox", "true", check=False)
    assert r.returncode == 125 and 'The container name "/dup" is already in use' in r.stderr
    # some single hex digit is shared by at least two of 13 ids' first characters
    firsts = [i[0] for i in ids]
    shared = next(c for c in firsts if firsts.count(c) > 1) if len(set(firsts)) < len(firsts) else None
    if shared:
        r = cli("rm", shared, check=False)
        assert r.returncode == 1 and "multiple containers" in r.stderr
    cli("rename", "dup", "dup2")
    assert cli("ps", "-a", "--filter", "name=dup2", "-q").stdout.strip() != ""


def test_interactive_tty_ctrl_c_and_exit_130_then_start_ai(cli: CLI, busybox_image: str) -> None:
    env = {"DOCKYARD_ROOT": str(cli.root)}

    def drive(argv: list[str], script: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
        return run_in_pty([str(DOCKYARD_BIN), *argv], script, env=env)

    code, out = drive(["run", "-it", "--name", "tty1", "busybox", "sh"], [
        (b"", b"# "),
        (b"touch new_file && ls new_file && tty\r", b"/dev/pts/0"),
        (b"sleep 30\r", b"sleep 30"),
        (b"\x03", b"# "),
        (b"exit\r", b"exit"),
    ])
    assert b"new_file" in out and b"/dev/pts/0" in out
    assert code == 130
    assert "Exited (130)" in cli("ps", "-a", "--filter", "name=tty1").stdout
    code, out = drive(["start", "-ai", "tty1"], [(b"", b"# "), (b"ls new_file; exit 7\r", b"exit")])
    assert b"new_file" in out and code == 7


def test_twenty_detached_runs_at_once(cli: CLI, busybox_image: str) -> None:
    results: list[subprocess.CompletedProcess[bytes]] = []

    def one(i: int) -> None:
        results.append(subprocess.run([str(DOCKYARD_BIN), "--root", str(cli.root), "run", "-d", "--name",
                                       f"par{i}", "busybox", "sleep", "20"], capture_output=True))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    rows = cli("ps", "--format", "{{.ID}} {{.Names}}").stdout.splitlines()
    assert len(rows) == 20
    by_name = {r.split()[1]: r.split()[0] for r in rows}
    for r in results:
        cid = r.stdout.decode().strip()
        name = json.loads(cli("inspect", cid).stdout)[0]["Name"].lstrip("/")
        assert by_name[name] == cid[:12]


def test_killed_monitor_is_reported_truthfully(cli: CLI, busybox_image: str, root: Path) -> None:
    cid = cli("run", "-d", "busybox", "sleep", "60").stdout.strip()
    row = json.loads(subprocess.run(["sqlite3", "-json", str(root / "dockyard.db"),
                                     f"select state from containers where id='{cid}'"],
                                    capture_output=True, text=True).stdout or "[]") if False else None
    del row
    import sqlite3

    state = json.loads(sqlite3.connect(root / "dockyard.db").execute(
        "select state from containers where id=?", (cid,)).fetchone()[0])
    os.kill(state["monitor_pid"], signal.SIGKILL)
    time.sleep(0.2)
    assert cli("ps", "-q").stdout.strip() == ""
    assert "Exited (255)" in cli("ps", "-a").stdout
    cli("rm", cid)
    assert mounts_under(root) == []


def test_memory_limit_oom_kills_and_pids_limit_stops_a_fork_bomb(cli: CLI, busybox_image: str) -> None:
    r = cli("run", "--name", "hog", "--memory", "32m", "busybox", "sh", "-c",
            "x=a; while true; do x=$x$x$x$x; done", check=False, timeout=60)
    assert r.returncode == 137
    info = json.loads(cli("inspect", "hog").stdout)[0]
    assert info["State"]["OOMKilled"] is True
    assert "Exited (137)" in cli("ps", "-a", "--filter", "name=hog").stdout
    cid = cli("run", "-d", "--pids-limit", "10", "busybox", "sleep", "60").stdout.strip()
    started = sum(cli("exec", "-d", cid, "sleep", "60", check=False).returncode == 0 for _ in range(15))
    # The init and eight or nine more (an exec briefly needs a second pid in the cgroup to join it).
    assert 8 <= started <= 9
    procs = cli("top", cid).stdout.splitlines()[1:]  # counted from the host
    assert len(procs) == started + 1 <= 10, procs


def test_env_workdir_user_entrypoint_hostname_mounts(cli: CLI, busybox_image: str, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("from host\n")
    tmp_path.chmod(0o755)  # readable by the container's "nobody"
    r = cli("run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "-h", "robot", "-v",
            f"{tmp_path}:/data:ro", "--tmpfs", "/scratch", "--entrypoint", "sh", "busybox", "-c",
            "echo $A $(pwd) $(id -u) $(hostname); cat /data/data.txt; touch /data/x 2>/dev/null || echo ro;"
            " grep /scratch /proc/mounts | cut -d' ' -f3")
    assert r.stdout.splitlines() == ["1 /tmp 65534 robot", "from host", "ro", "tmpfs"]
    r = cli("run", "--rm", "--read-only", "busybox", "touch", "/x", check=False)
    assert r.returncode != 0


def test_rm_and_prune_leave_no_mounts(cli: CLI, busybox_image: str, root: Path) -> None:
    for _ in range(3):
        cli("run", "busybox", "true")
    cli("run", "-d", "busybox", "sleep", "30")
    out = cli("container", "prune", "-f").stdout
    assert out.startswith("Deleted Containers:")
    assert len(cli("ps", "-aq").stdout.split()) == 1
    cli("rm", "-f", cli("ps", "-q").stdout.strip())
    assert mounts_under(root) == []
    assert list((root / "containers").iterdir()) == []


def test_rmi_refuses_an_image_a_container_uses(cli: CLI, busybox_image: str) -> None:
    cli("run", "--name", "user1", "busybox", "true")
    r = cli("rmi", "busybox", check=False)
    assert r.returncode == 1 and "is using its referenced image" in r.stderr
    cli("rm", "user1")
    assert "Deleted:" in cli("rmi", "busybox").stdout


def test_export_is_a_tar_that_import_takes_back(cli: CLI, busybox_image: str, tmp_path: Path) -> None:
    cli("run", "--name", "exp", "busybox", "sh", "-c", "echo kept > /kept")
    cli("export", "-o", str(tmp_path / "fs.tar"), "exp")
    cli("import", str(tmp_path / "fs.tar"), "exported:1")
    assert cli("run", "--rm", "exported:1", "/bin/cat", "/kept").stdout == "kept\n"


def test_export_right_after_exit_is_not_cut_short_by_the_monitors_unmount(cli: CLI, busybox_image: str,
                                                                         tmp_path: Path) -> None:
    """`run` returns when the container exits, while its monitor is still about to unmount the rootfs;
    an `export` (or `cp`) at once must not walk a tree that vanishes under it (4 in 40 failed before
    export took the container's lock)."""
    for i in range(15):
        cli("run", "--name", f"x{i}", "busybox", "sh", "-c", "echo kept > /kept")
        cli("export", "-o", str(tmp_path / "fs.tar"), f"x{i}")
    with tarfile.open(tmp_path / "fs.tar") as tf:
        assert tf.extractfile("kept").read() == b"kept\n"  # type: ignore[union-attr]


def test_cp_both_directions(cli: CLI, busybox_image: str, tmp_path: Path) -> None:
    cli("create", "--name", "cpc", "busybox", "cat", "/in.txt")
    (tmp_path / "in.txt").write_text("copied in\n")
    cli("cp", str(tmp_path / "in.txt"), "cpc:/in.txt")
    assert cli("start", "-a", "cpc").stdout == "copied in\n"
    cli("cp", "cpc:/etc/passwd", str(tmp_path / "passwd"))
    assert (tmp_path / "passwd").read_text().startswith("root:")


def test_pause_unpause_restart_logs_follow_and_wait(cli: CLI, busybox_image: str) -> None:
    cid = cli("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
              "i=0; while [ $i -lt 40 ]; do echo tick$i; i=$((i+1)); sleep 0.05; done").stdout.strip()
    cli("pause", "ticker")
    assert "(Paused)" in cli("ps", "--filter", "name=ticker").stdout
    assert json.loads(cli("inspect", "ticker").stdout)[0]["State"]["Paused"] is True
    frozen = cli("logs", "ticker").stdout
    time.sleep(0.4)
    assert cli("logs", "ticker").stdout == frozen  # nothing runs while paused
    cli("unpause", "ticker")
    follow = cli("logs", "-f", "ticker", timeout=60).stdout  # returns when the container ends
    assert follow.splitlines()[-1] == "tick39"
    assert cli("wait", cid).stdout.strip() == "0"
    cli("restart", "ticker")
    assert cli("wait", "ticker").stdout.strip() == "0"
    assert cli("logs", "ticker").stdout.count("tick0\n") == 2
    stamped = cli("logs", "-t", "--tail", "1", "ticker").stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z tick39\n", stamped)


def test_attach_to_a_running_container_sees_its_output(cli: CLI, busybox_image: str) -> None:
    cli("run", "-d", "--name", "talker", "busybox", "sh", "-c", "sleep 0.5; echo spoken; exit 4")
    r = cli("attach", "talker", check=False)
    assert (r.returncode, r.stdout) == (4, "spoken\n")
    r = cli("attach", "talker", check=False)
    assert r.returncode == 1 and "start it first" in r.stderr


def test_containers_and_their_monitor_may_use_every_cpu(cli: CLI, busybox_image: str) -> None:
    """`run` forks its monitor early and keeps it off the command's CPU meanwhile (ops.containers.
    prefork_monitor): neither the container nor the monitor may keep that narrower affinity."""
    allowed = os.sched_getaffinity(0)
    out = cli("run", "--rm", "busybox", "grep", "Cpus_allowed_list", "/proc/self/status").stdout
    assert _cpu_list(out.split(":")[1].strip()) == allowed
    cid = cli("run", "-d", "busybox", "sleep", "30").stdout.strip()
    state = json.loads(cli("inspect", cid).stdout)[0]["State"]
    assert os.sched_getaffinity(state["Pid"]) == allowed
    monitor = int(Path(f"/proc/{state['Pid']}/stat").read_text().rsplit(")", 1)[1].split()[1])  # its parent
    assert os.sched_getaffinity(monitor) == allowed
    cli("rm", "-f", cid)


def _cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def test_cpus_and_memory_limits_reach_the_cgroup(cli: CLI, busybox_image: str) -> None:
    cid = cli("run", "-d", "--cpus", "0.5", "--memory", "64m", "busybox", "sleep", "30").stdout.strip()
    pid = json.loads(cli("inspect", cid).stdout)[0]["State"]["Pid"]
    cgroups = dict(line.split(":", 2)[1:] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    if "memory" in cgroups:  # cgroup v1
        mem = Path("/sys/fs/cgroup/memory" + cgroups["memory"], "memory.limit_in_bytes").read_text()
        cpu = Path("/sys/fs/cgroup/cpu" + cgroups.get("cpu,cpuacct", cgroups.get("cpu", "")), "cpu.cfs_quota_us")
        assert int(mem) == 64 * 1024 * 1024 and int(cpu.read_text()) == 50000
    else:  # cgroup v2
        base = Path("/sys/fs/cgroup" + cgroups[""])
        assert int((base / "memory.max").read_text()) == 64 * 1024 * 1024
        assert (base / "cpu.max").read_text().split() == ["50000", "100000"]


def test_cgroup_namespace_is_dockers_default_for_the_host(cli: CLI, busybox_image: str) -> None:
    """docker's default-cgroupns-mode: the host's namespace on cgroup v1 (the container sees its own
    /docker/<id>-like paths, here /dockyard/<id>), a private one on v2 (it sees ``0::/``). Either way
    /sys/fs/cgroup shows the container's own cgroup, read-only, with its limits."""
    out = cli("run", "--rm", "--name", "cgns", "-m", "48m", "busybox", "sh", "-c",
              "cat /proc/self/cgroup; echo ---; cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
              "/sys/fs/cgroup/memory.max 2>/dev/null;"
              "mkdir /sys/fs/cgroup/memory/x 2>&1 || mkdir /sys/fs/cgroup/x 2>&1 || true").stdout
    lines, rest = out.split("---\n")
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        assert lines == "0::/\n"
    else:
        paths = dict(line.split(":", 2)[1:] for line in lines.splitlines())
        assert re.fullmatch(r"/dockyard/[0-9a-f]{64}", paths["memory"]), paths
        assert len({v for k, v in paths.items() if k}) == 1  # every hierarchy: the same container cgroup
    assert rest.splitlines()[0] == str(48 * 1024 * 1024)
    assert "Read-only file system" in rest


def test_exec_it_gives_a_terminal_and_the_exit_status(cli: CLI, busybox_image: str) -> None:
    cid = cli("run", "-d", "busybox", "sleep", "30").stdout.strip()
    code, out = run_in_pty([str(DOCKYARD_BIN), "exec", "-it", cid, "sh"],
                           [(b"", b"# "), (b"tty; exit 6\r", b"exit 6")], env={"DOCKYARD_ROOT": str(cli.root)})
    assert b"/dev/pts/" in out and code == 6


def test_run_loads_only_what_it_needs(cli: CLI, busybox_image: str) -> None:
    """`run --rm` is the hot path: none of the heavy standard modules it once paid for at start-up
    (typing ~4 ms, dataclasses ~10 ms, subprocess ~6 ms, hashlib's OpenSSL ~3 ms on this VM), nor the
    chain that re, json, argparse and pathlib bring (collections, functools, enum...: ~20 ms in all)."""
    heavy = ("typing", "dataclasses", "inspect", "subprocess", "hashlib", "secrets", "threading", "locale",
             "re", "json", "argparse", "gettext", "pathlib", "collections", "functools", "enum", "contextlib",
             "socket", "selectors", "signal", "ipaddress", "urllib.parse", "tarfile", "shutil", "datetime")
    # The runtime itself is loaded by the monitor, forked before the container is created, while the
    # command creates it (ops.containers.prefork_monitor): not by the command, nor only after.
    runtime = ("dockyard.runtime.builtin", "dockyard.runtime.cgroups", "dockyard.runtime.seccomp",
               "dockyard.runtime.rootfs", "dockyard.runtime.process", "dockyard.cli.format")
    code = ("import sys; from dockyard.cli.main import main; "
            f"rc = main(['--root', {str(cli.root)!r}, 'run', '--rm', '--network', 'none', 'busybox', 'true']); "
            f"print(sorted(m for m in {heavy + runtime!r} if m in sys.modules)); sys.exit(rc)")
    py = Path(DOCKYARD_BIN).with_name("python")
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_a_root_whose_path_has_a_space_leaves_no_mount_behind(tmp_path: Path, busybox_tar: Path) -> None:
    """mountinfo writes the space as ``\\040``: the unmount must still recognise the container's mount."""
    cli = CLI(tmp_path / "dockyard root")
    cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    assert cli("run", "--rm", "busybox", "echo", "hi").stdout == "hi\n"
    cli("run", "--name", "kept", "busybox", "true")
    cli("rm", "kept")
    deadline = time.monotonic() + 5
    while "dockyard\\040root" in Path("/proc/self/mountinfo").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # the monitor unmounts just after the CLI returns
    assert "dockyard\\040root" not in Path("/proc/self/mountinfo").read_text()
