"""The same bundle through ``runc run`` and ``dockyard-runtime run``: the process must see the same world.

Each case builds one config, runs it under both runtimes, and compares what the container printed
(and its exit status).  Only values that legitimately differ between two runs are normalised.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rt_helpers import new_id

pytestmark = [pytest.mark.root, pytest.mark.peers]

Edit = Callable[[dict[str, Any]], None]


def both(dy, runc, make_bundle, script: str, edit: Edit | None = None,  # type: ignore[no-untyped-def]
         normalise: Callable[[str], str] = lambda s: s) -> str:  # fmt: skip
    """Run ``sh -c script`` under both runtimes; assert identical output and status; return the output."""
    bundle = make_bundle(["sh", "-c", script], edit)
    got = {}
    for name, runner in (("runc", runc), ("dockyard", dy)):
        r = runner("run", "--bundle", str(bundle), new_id(), timeout=60)
        got[name] = (r.returncode, normalise(r.stdout), normalise(r.stderr))
    assert got["dockyard"] == got["runc"], f"\nrunc:     {got['runc']}\ndockyard: {got['dockyard']}"
    return got["runc"][1]


def test_namespaces_and_identity(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    script = ("hostname; echo pid=$$; cat /proc/1/cmdline; echo; "
              "grep -E '^(Cap|NoNewPrivs|Seccomp|Uid|Gid|Groups)' /proc/self/status; ls /dev; umask; pwd; env")
    out = both(dy, runc, make_bundle, script)
    assert "bundle\npid=1\n" in out
    assert "CapEff:\t0000000020000420" in out


@pytest.mark.parametrize("user", ["root", "unprivileged"])
def test_loopback_up_in_a_new_network_namespace(dy, runc, make_bundle, user: str) -> None:  # type: ignore[no-untyped-def]
    """A new network namespace starts with ``lo`` down; runc's init brings it up (libcontainer's
    "loopback" network), before dropping privileges -- so must ours, whatever the process's user."""

    def edit(cfg: dict[str, Any]) -> None:
        assert {"type": "network"} in cfg["linux"]["namespaces"]  # new, not joined by path
        if user == "unprivileged":
            cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
            cfg["process"]["capabilities"] = {k: [] for k in ("bounding", "effective", "permitted", "ambient")}

    out = both(dy, runc, make_bundle, "cat /sys/class/net/lo/operstate /sys/class/net/lo/flags; ip link show lo", edit)
    assert out.split()[:2] == ["unknown", "0x9"]  # IFF_UP | IFF_LOOPBACK
    assert "<LOOPBACK,UP,LOWER_UP>" in out


def test_mounts(dy, runc, make_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello").write_text("from the host\n")
    hostfile = tmp_path / "file.txt"
    hostfile.write_text("a file\n")

    def edit(cfg: dict[str, Any]) -> None:
        cfg["mounts"] += [
            {"destination": "/mnt/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "size=1m", "mode=1770"]},
            {"destination": "/mnt/ro", "type": "bind", "source": str(shared), "options": ["rbind", "ro"]},
            {"destination": "/mnt/rw", "type": "none", "source": str(shared), "options": ["bind", "rprivate"]},
            {"destination": "/etc/file.txt", "type": "bind", "source": str(hostfile), "options": ["bind", "ro"]},
        ]  # fmt: skip
        cfg["linux"]["maskedPaths"] += ["/proc/cpuinfo"]
        cfg["linux"]["readonlyPaths"] += ["/proc/meminfo"]

    script = ("cat /proc/mounts; stat -c '%a %U' /mnt/tmp; cat /mnt/ro/hello /etc/file.txt; "
              "touch /mnt/ro/x 2>/dev/null || echo ro-refused; cat /proc/cpuinfo | wc -c; "
              "echo 1 > /proc/meminfo 2>/dev/null || echo meminfo-ro; ls /proc/kcore; ls /sys/firmware | wc -l; "
              "touch /mnt/rw/x && echo rw-ok; rm /mnt/rw/x")  # fmt: skip
    out = both(dy, runc, make_bundle, script, edit)
    assert "ro-refused" in out and "rw-ok" in out and "meminfo-ro" in out
    assert "tmpfs /mnt/tmp tmpfs rw,nosuid,nodev,relatime,size=1024k,mode=1770" in out


def test_user_and_groups(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20, 1000]}
        cfg["root"]["readonly"] = False

    both(dy, runc, make_bundle, "id; grep -E '^(Cap|Uid|Gid|Groups)' /proc/self/status; echo home=$HOME; "
         "touch /tmp/f && stat -c '%u:%g %a' /tmp/f", edit)  # fmt: skip


def test_user_from_etc_files(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}

    bundle_edit = edit
    out = both(dy, runc, _with_etc(make_bundle), "id; echo home=$HOME", bundle_edit)
    assert "home=/home/alice" in out


def _with_etc(make_bundle):  # type: ignore[no-untyped-def]
    def factory(args: list[str], edit: Edit | None = None) -> Path:
        bundle = make_bundle(args, edit)
        (bundle / "rootfs/etc/passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
        )
        (bundle / "rootfs/etc/group").write_text("root:x:0:\nwheel:x:10:alice\nusers:x:100:bob,alice\nalice:x:1000:\n")
        return bundle

    return factory


def test_reduced_capabilities_and_nnp(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        caps = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SETUID"]
        cfg["process"]["capabilities"] = {"bounding": caps, "effective": caps[:2], "permitted": caps,
                                          "inheritable": ["CAP_CHOWN"], "ambient": ["CAP_CHOWN"]}  # fmt: skip
        cfg["process"]["noNewPrivileges"] = False

    out = both(dy, runc, make_bundle, "grep -E '^(Cap|NoNewPrivs)' /proc/self/status", edit)
    assert "NoNewPrivs:\t0" in out


def test_rlimits(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
                                     {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                                     {"type": "RLIMIT_NPROC", "soft": 1000, "hard": 2000}]  # fmt: skip

    out = both(dy, runc, make_bundle, "ulimit -n; ulimit -Hn; ulimit -c; ulimit -u; ulimit -Hu", edit)
    assert out.split()[:2] == ["256", "512"]


def test_rlimit_above_hard_limit_is_a_clear_error(dy, make_bundle) -> None:  # type: ignore[no-untyped-def]
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("hard limit is unlimited here")

    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": hard * 2, "hard": hard * 2}]

    r = dy("run", "--bundle", str(make_bundle(["true"], edit)), new_id())
    have_sys_resource = _has_cap(24)
    if have_sys_resource:
        assert r.returncode == 0
    else:
        assert r.returncode != 0 and "RLIMIT_NOFILE" in r.stderr and "CAP_SYS_RESOURCE" in r.stderr


def _has_cap(n: int) -> bool:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << n))
    return False


def test_no_new_privileges(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    out = both(dy, runc, make_bundle, "grep NoNewPrivs /proc/self/status")
    assert out == "NoNewPrivs:\t1\n"


def test_sysctl(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789",
                                  "net.core.somaxconn": "1024"}  # fmt: skip

    out = both(dy, runc, make_bundle, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax "
               "/proc/sys/net/core/somaxconn", edit)  # fmt: skip
    assert out.split() == ["1", "123456789", "1024"]


def test_sysctl_in_host_namespace_refused(dy, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "network"]
        cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}

    r = dy("run", "--bundle", str(make_bundle(["true"], edit)), new_id())
    assert r.returncode != 0 and "not allowed in the host's network namespace" in r.stderr


def test_cgroup_limits_visible(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["resources"].update({
            "memory": {"limit": 64 * 1024 * 1024, "reservation": 32 * 1024 * 1024},
            "pids": {"limit": 77},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        })  # fmt: skip

    script = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.soft_limit_in_bytes "
              "/sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us; "
              "ls /sys/fs/cgroup; cat /sys/fs/cgroup/devices/devices.list")  # fmt: skip
    out = both(dy, runc, make_bundle, script, edit)
    assert out.split()[:5] == [str(64 * 1024 * 1024), str(32 * 1024 * 1024), "77", "512", "50000"]


def test_cgroup_namespace(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "cgroup"})

    out = both(dy, runc, make_bundle, "cat /proc/self/cgroup; grep cgroup /proc/mounts; "
               "cat /sys/fs/cgroup/pids/cgroup.procs", edit)  # fmt: skip
    assert "4:memory:/\n" in out or ":memory:/\n" in out


def test_devices(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                    "fileMode": 0o640, "uid": 0, "gid": 5}]  # fmt: skip
        cfg["linux"]["resources"]["devices"].append({"allow": True, "type": "c", "major": 10, "minor": 229,
                                                     "access": "rwm"})  # fmt: skip

    out = both(dy, runc, make_bundle, "ls -ln /dev | sed 's/ [A-Z][a-z][a-z] .*:[0-9][0-9] / DATE /'; "
               "head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null-ok", edit)  # fmt: skip
    assert "null-ok" in out


def test_hooks_receive_state(dy, runc, make_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hook = tmp_path / "hook.sh"
    hook.write_text("#!/bin/sh\ncat > \"$1\"\n")
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    out_dir = tmp_path / "hooks-out"
    phases = ("prestart", "createRuntime", "poststart", "poststop")

    def run_with(runner, tag: str) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
        def edit(cfg: dict[str, Any]) -> None:
            cfg["hooks"] = {p: [{"path": str(hook), "args": ["hook.sh", str(out_dir / f"{tag}-{p}.json")],
                                 "timeout": 10}] for p in phases}  # fmt: skip

        cid = new_id()
        r = runner("run", "--bundle", str(make_bundle(["true"], edit)), cid)
        assert r.returncode == 0, r.stderr
        states = {}
        for p in phases:
            st = json.loads((out_dir / f"{tag}-{p}.json").read_text())
            assert st["id"] == cid
            assert st.get("pid", 0) > 0 or p == "poststop"
            states[p] = {k: v for k, v in st.items() if k not in ("id", "pid", "bundle", "ociVersion")}
            states[p]["keys"] = sorted(st)
        return states

    out_dir.mkdir()
    ours, theirs = run_with(dy, "dy"), run_with(runc, "runc")
    # The one deliberate difference: runc 1.1 hands poststart hooks status "created" (the state it
    # read before starting); the spec runs poststart after the process started, so we say "running".
    assert theirs["poststart"]["status"] in ("created", "running")
    theirs["poststart"]["status"] = "running"
    assert ours == theirs
    assert [ours[p]["status"] for p in phases] == ["creating", "creating", "running", "stopped"]


def test_failing_prestart_hook_aborts(dy, make_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        cfg["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]}

    cid = new_id()
    r = dy("run", "--bundle", str(make_bundle(["true"], edit)), cid)
    assert r.returncode != 0 and "prestart" in r.stderr and "exit status 3" in r.stderr
    assert dy("list", "-q").stdout == ""


def test_seccomp(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = False
        cfg["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO"},
                # chmod to exactly 0o600 is refused; other modes pass
                {"names": ["fchmodat", "chmod"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 2, "value": 0o600, "op": "SCMP_CMP_EQ"}]},
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 0o600, "op": "SCMP_CMP_EQ"}]},
                {"names": ["getcwd"], "action": "SCMP_ACT_ALLOW"},
            ],
        }  # fmt: skip

    out = both(dy, runc, make_bundle, "mkdir /tmp/d 2>&1; echo rc=$?; touch /tmp/f; chmod 600 /tmp/f 2>&1; "
               "echo rc=$?; chmod 644 /tmp/f && echo ok; grep Seccomp: /proc/self/status", edit)  # fmt: skip
    assert "rc=1" in out and "ok" in out and "Seccomp:\t2" in out


def test_user_namespace(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        # sysfs and cgroup need ownership we do not have in a fresh user namespace
        cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
        cfg["linux"]["maskedPaths"] = [p for p in cfg["linux"]["maskedPaths"] if not p.startswith("/sys")]
        cfg["linux"]["resources"] = {}

    def chown_rootfs(factory):  # type: ignore[no-untyped-def]
        def inner(args: list[str], edit: Edit | None = None) -> Path:
            bundle = factory(args, edit)
            for dirpath, dirnames, filenames in os.walk(bundle / "rootfs"):
                for name in [*dirnames, *filenames]:
                    os.lchown(os.path.join(dirpath, name), 100000, 100000)
            os.chown(bundle / "rootfs", 100000, 100000)
            return bundle

        return inner

    out = both(dy, runc, chown_rootfs(make_bundle), "id; cat /proc/self/uid_map /proc/self/gid_map; "
               "grep CapEff /proc/self/status; ls -ln /dev/null | cut -c1-30", edit,
               normalise=lambda s: re.sub(r"\s+", " ", s))  # fmt: skip
    assert "0 100000 65536" in out


@pytest.mark.parametrize("nnp", [False, True])
def test_docker_default_seccomp_profile(dy, runc, make_bundle, nnp: bool) -> None:  # type: ignore[no-untyped-def]
    """Docker's real default profile (converted by the engine's seccomp_default), both load orders."""
    seccomp_default = pytest.importorskip("dockyard.runtime.seccomp_default")
    caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
            "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
            "CAP_AUDIT_WRITE"]  # fmt: skip
    profile = seccomp_default.default_oci_seccomp(bounding_caps=caps)

    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        cfg["process"]["noNewPrivileges"] = nnp
        cfg["linux"]["seccomp"] = profile
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10]}

    out = both(dy, runc, make_bundle, "grep -E '^(Seccomp|NoNewPrivs|CapEff)' /proc/self/status; id; "
               "unshare -U true 2>&1 | head -c 40; echo; ls /proc/self/fd | wc -l", edit)  # fmt: skip
    assert "Seccomp:\t2" in out


def test_in_container_hooks(dy, runc, make_bundle) -> None:  # type: ignore[no-untyped-def]
    """createContainer (container namespaces, before pivot_root) and startContainer (inside the
    container) hooks: both see the container's UTS namespace and only startContainer its rootfs."""
    outs = {}
    for name, runner in (("runc", runc), ("dockyard", dy)):
        def edit(cfg: dict[str, Any], name: str = name) -> None:
            cfg["root"]["readonly"] = False
            start_script = ("cat > /tmp/sc.json; echo >> /tmp/sc.json; hostname >> /tmp/sc.json; "
                            "ls /bin/busybox >> /tmp/sc.json")
            cfg["hooks"] = {
                "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > /tmp/dy-cc-{name}.json"]}],
                "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", start_script]}],
            }

        bundle = make_bundle(["true"], edit)
        cid = new_id()
        r = runner("run", "--bundle", str(bundle), cid)
        assert r.returncode == 0, r.stderr
        cc = json.loads(Path(f"/tmp/dy-cc-{name}.json").read_text())
        os.unlink(f"/tmp/dy-cc-{name}.json")
        sc_state, *rest = (bundle / "rootfs/tmp/sc.json").read_text().splitlines()
        sc = json.loads(sc_state)
        assert cc["id"] == sc["id"] == cid
        outs[name] = (cc["status"], sc["status"], rest)
    assert outs["dockyard"] == outs["runc"]
