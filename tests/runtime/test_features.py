"""Terminal (console socket), exec, pause/resume and the confinement the runtime owns."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rt_helpers import new_id

pytestmark = pytest.mark.root

DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
               "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
               "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]  # fmt: skip


def wait_for(pred, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def gone(pid: int) -> bool:
    """Exited (zombie or reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] in "ZX"
    except OSError:
        return True


def status_of(runner, cid: str) -> str:  # type: ignore[no-untyped-def]
    r = runner("state", cid)
    return json.loads(r.stdout)["status"] if r.returncode == 0 else "gone"


class ConsoleServer:
    """A console socket as conmon serves it: accept, receive the pty master, talk to the shell."""

    def __init__(self, path: Path, send: bytes) -> None:
        self.path = str(path)
        self.send = send
        self.name = b""
        self.output = b""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            msg, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        self.name = msg
        master = fds[0]
        os.write(master, self.send)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: every slave fd is closed, the shell is gone
                break
            if not data:
                break
            self.output += data
        os.close(master)

    def join(self) -> bytes:
        self.thread.join(timeout=30)
        self.sock.close()
        return self.output


def _terminal(cfg: dict[str, Any]) -> None:
    cfg["process"]["terminal"] = True
    cfg["process"]["consoleSize"] = {"height": 40, "width": 100}


def test_terminal_console_socket(dy, make_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = make_bundle(["sh"], _terminal)
    server = ConsoleServer(tmp_path / "console.sock", b"stty size; tty; echo hi; exit 3\n")
    r = dy("run", "--console-socket", server.path, "--bundle", str(bundle), new_id(), timeout=30)
    out = server.join().decode(errors="replace")
    assert r.returncode == 3, r.stderr
    assert server.name.startswith(b"/dev/pts/")
    assert "40 100" in out and "hi\r\n" in out and "/dev/console" in out or "/dev/pts/" in out


def test_terminal_console_socket_runc_parity(runc, dy, make_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Detached run with a console socket, as podman/conmon drive it, under both runtimes."""
    outputs = {}
    for name, runner in (("runc", runc), ("dockyard", dy)):
        bundle = make_bundle(["sh"], _terminal)
        server = ConsoleServer(tmp_path / f"{name}.sock", b"stty size; id -u; exit 0\n")
        cid = new_id()
        runner("run", "-d", "--console-socket", server.path, "--bundle", str(bundle), cid,
               detached_io=True, check=True)  # fmt: skip
        out = server.join().decode(errors="replace")
        assert wait_for(lambda runner=runner, cid=cid: status_of(runner, cid) == "stopped")
        runner("delete", cid, check=True)
        outputs[name] = out.replace("\r", "").splitlines()[-2:]
    assert outputs["dockyard"] == outputs["runc"] == ["40 100", "0"]


def test_terminal_without_console_socket_is_proxied(dy, make_bundle) -> None:  # type: ignore[no-untyped-def]
    r = dy("run", "--bundle", str(make_bundle(["sh"], _terminal)), new_id(), input="echo proxied; exit 4\n")
    assert r.returncode == 4 and "proxied" in r.stdout


def test_terminal_detached_needs_console_socket(dy, make_bundle) -> None:  # type: ignore[no-untyped-def]
    r = dy("create", "--bundle", str(make_bundle(["sh"], _terminal)), new_id(), detached_io=True)
    assert r.returncode != 0 and "console socket" in r.stderr


def test_exec_joins_namespaces_and_cgroup(dy, runc, make_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    results = {}
    for name, runner in (("runc", runc), ("dockyard", dy)):
        cid = new_id()
        runner("run", "-d", "--bundle", str(make_bundle(["sleep", "100"])), cid, detached_io=True, check=True)
        init_pid = json.loads(runner("state", cid, check=True).stdout)["pid"]
        got = runner("exec", cid, "sh", "-c", "hostname; cat /proc/1/cmdline; echo; id; echo $$; "
                     "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
                     "for n in pid mnt net uts ipc; do readlink /proc/self/ns/$n; done", check=True).stdout  # fmt: skip
        ns = [os.readlink(f"/proc/{init_pid}/ns/{n}") for n in ("pid", "mnt", "net", "uts", "ipc")]
        assert got.splitlines()[-5:] == ns
        cg_init = Path(f"/proc/{init_pid}/cgroup").read_text()
        cg_exec = runner("exec", cid, "cat", "/proc/self/cgroup", check=True).stdout
        assert {ln.split(":", 1)[1] for ln in cg_exec.splitlines()} >= {
            ln.split(":", 1)[1] for ln in cg_init.splitlines() if "memory" in ln or "pids" in ln
        }
        assert runner("exec", cid, "sh", "-c", "exit 5").returncode == 5
        missing = runner("exec", cid, "nosuchcmd")
        assert missing.returncode != 0 and "executable file not found" in missing.stderr
        proc = {"args": ["sh", "-c", "echo $FOO; pwd; id"], "env": ["FOO=bar", "PATH=/bin"], "cwd": "/tmp",
                "user": {"uid": 1000, "gid": 1000}}  # fmt: skip
        (tmp_path / f"{name}-process.json").write_text(json.dumps(proc))
        by_file = runner("exec", "--process", str(tmp_path / f"{name}-process.json"), cid, check=True).stdout
        runner("delete", "--force", cid, check=True)
        lines = got.splitlines()[:-5]
        assert int(lines.pop(3)) > 1  # our pid in the container's namespace: not the init, else varies
        results[name] = (lines, by_file)
    assert results["dockyard"] == results["runc"]
    assert results["dockyard"][0][:3] == ["bundle", "sleep\x00100\x00", "uid=0 gid=0"]


def test_exec_python_api(rt, make_bundle) -> None:  # type: ignore[no-untyped-def]
    cid = new_id()
    init = rt.create(cid, make_bundle(["sleep", "100"]))
    rt.start(cid)
    r, w = os.pipe()
    code = rt.exec(cid, {"args": ["sh", "-c", "cat /proc/1/cmdline; exit 9"], "cwd": "/", "env": ["PATH=/bin"]},
                   stdio=(0, w, w), detach=False)  # fmt: skip
    os.close(w)
    assert code == 9
    assert os.read(r, 100) == b"sleep\x00100\x00"
    os.close(r)
    pid = rt.exec(cid, {"args": ["/bin/sleep", "5"], "cwd": "/"}, detach=True)
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")
    rt.delete(cid, force=True)
    assert wait_for(lambda: gone(pid))


def test_pause_resume(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = False

    for runner in (dy, runc):
        bundle = make_bundle(["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/c; sleep 0.01; done"], edit)
        counter = bundle / "rootfs" / "tmp" / "c"
        cid = new_id()
        runner("run", "-d", "--bundle", str(bundle), cid, detached_io=True, check=True)
        assert wait_for(counter.exists)
        assert runner("resume", cid).returncode != 0  # not paused
        runner("pause", cid, check=True)
        assert status_of(runner, cid) == "paused"
        assert runner("pause", cid).returncode != 0  # already paused
        before = counter.read_text()
        time.sleep(0.2)
        assert counter.read_text() == before
        runner("resume", cid, check=True)
        assert status_of(runner, cid) == "running"
        assert wait_for(lambda counter=counter, before=before: counter.read_text() != before)
        runner("pause", cid, check=True)
        pids = json.loads(runner("ps", "--format", "json", cid, check=True).stdout)
        assert len(pids) >= 1
        t0 = time.monotonic()
        runner("delete", "--force", cid, check=True)  # must thaw to let SIGKILL land
        assert time.monotonic() - t0 < 3
        assert status_of(runner, cid) == "gone"
        assert wait_for(lambda pids=pids: all(gone(p) for p in pids))


def test_kill_all(dy, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:  # no pid namespace: processes do not die with the init
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "pid"]

    cid = new_id()
    dy("run", "-d", "--bundle", str(make_bundle(["sh", "-c", "sleep 100 & sleep 100 & wait"], edit)), cid,
       detached_io=True, check=True)  # fmt: skip
    time.sleep(0.2)
    pids = json.loads(dy("ps", "--format", "json", cid, check=True).stdout)
    assert len(pids) == 3
    assert "sleep 100" in dy("ps", cid, check=True).stdout
    dy("kill", "--all", cid, "KILL", check=True)
    assert wait_for(lambda: all(gone(p) for p in pids))
    dy("delete", cid, check=True)


def test_docker_default_confinement(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["capabilities"] = {k: DOCKER_CAPS for k in ("bounding", "effective", "permitted")}
        cfg["process"]["noNewPrivileges"] = False
        cfg["root"]["readonly"] = False

    script = ("grep CapEff /proc/self/status; mount -t tmpfs none /mnt 2>/dev/null || echo mount-denied; "
              "hostname foo 2>/dev/null || echo hostname-denied; "
              "mknod /tmp/sda b 8 0 && (head -c1 /tmp/sda 2>/dev/null || echo blockdev-denied); "
              "mknod /tmp/null c 1 3 && echo mknod-null-ok; "
              "echo 1 > /proc/sys/kernel/shmmax 2>/dev/null || echo sysctl-ro; "
              "wc -c < /proc/kcore; echo x > /sys/fs/cgroup/pids/pids.max 2>/dev/null || echo cgroup-ro; "
              "ip link add dummy0 type dummy 2>/dev/null || echo netadmin-denied; "
              "chroot / true && echo chroot-ok; hostname")  # fmt: skip
    outs = {}
    for name, runner in (("runc", runc), ("dockyard", dy)):
        r = runner("run", "--bundle", str(make_bundle(["sh", "-c", script], edit)), new_id())
        outs[name] = (r.returncode, r.stdout)
    assert outs["dockyard"] == outs["runc"]
    out = outs["dockyard"][1]
    assert "CapEff:\t00000000a80425fb" in out
    for word in ("mount-denied", "hostname-denied", "blockdev-denied", "mknod-null-ok", "sysctl-ro", "cgroup-ro",
                 "netadmin-denied", "chroot-ok"):  # fmt: skip
        assert word in out, word
    assert out.splitlines()[-1] == "bundle"


def test_no_pivot(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    outs = {}
    for name, runner in (("runc", runc), ("dockyard", dy)):
        r = runner("run", "--no-pivot", "--bundle", str(make_bundle(["sh", "-c", "ls /; cat /proc/1/cmdline"])),
                   new_id())  # fmt: skip
        outs[name] = (r.returncode, r.stdout)
    assert outs["dockyard"] == outs["runc"]


def test_exec_under_seccomp_and_nnp(dy, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = False
        deny_mkdir = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}
        cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [deny_mkdir]}

    cid = new_id()
    dy("run", "-d", "--bundle", str(make_bundle(["sleep", "100"], edit)), cid, detached_io=True, check=True)
    out = dy("exec", cid, "sh", "-c", "mkdir /tmp/x 2>&1; grep -E '^(Seccomp|NoNewPrivs)' /proc/self/status",
             check=True).stdout  # fmt: skip
    assert "Operation not permitted" in out and "Seccomp:\t2" in out and "NoNewPrivs:\t1" in out
    dy("delete", "-f", cid, check=True)


def test_preserve_fds_and_stdio_swap(rt, dy, make_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    extra = tmp_path / "extra.txt"
    extra.write_text("passed along\n")
    cmd = [*dy.argv, "--root", str(dy.root), "run", "--preserve-fds", "1", "--bundle",
           str(make_bundle(["sh", "-c", "cat <&3; ls /proc/self/fd"])), new_id()]
    # a shell opens the file as fd 3 and execs the runtime, as systemd or a parent would pass it
    r = subprocess.run(["/bin/sh", "-c", 'exec 3<"$0"; exec "$@"', str(extra), *cmd], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["passed along", "0", "1", "2", "3", "4"]  # 4: ls reading the directory
    # stdio given as (stdout-pipe, ...) in swapped positions still lands on the right numbers
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    cid = new_id()
    rt.create(cid, make_bundle(["sh", "-c", "echo to-out; echo to-err >&2"]), stdio=(0, err_w, out_w))
    rt.start(cid)
    os.close(out_w)
    os.close(err_w)
    assert os.read(out_r, 100) == b"to-err\n" and os.read(err_r, 100) == b"to-out\n"
    os.close(out_r)
    os.close(err_r)


def test_oom_kill_is_detected(rt, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["resources"]["memory"] = {"limit": 16 * 2**20, "swap": 16 * 2**20}

    cid = new_id()
    devnull = os.open(os.devnull, os.O_RDWR)
    pid = rt.create(cid, make_bundle(["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"], edit),
                    stdio=(devnull, devnull, devnull))  # fmt: skip
    os.close(devnull)
    assert rt.cgroup(cid).oom_kills() == 0
    rt.start(cid)
    assert wait_for(lambda: gone(pid), timeout=10)
    assert rt.cgroup(cid).oom_kills() >= 1
    rt.delete(cid)
