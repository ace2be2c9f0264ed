"""The same containers through Dockyard's built-in runtime and through runc: one bundle, same results."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import CLI

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed"),
]

PROBE = ("grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; id; hostname | wc -c; "
         "cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /dev | sort | tr '\\n' ' '; echo; "
         "grep -E ' / | /proc | /sys | /dev/shm ' /proc/mounts | cut -d' ' -f2,3 | sort; "
         "cat /proc/self/uid_map | tr -s ' '; ulimit -n; echo $HOME $PATH")


@pytest.mark.parametrize("args", [
    [],
    ["-u", "nobody", "-w", "/tmp", "-e", "X=1"],
    ["--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "--read-only"],
    ["--privileged"],
])
def test_builtin_and_runc_observe_the_same_container(cli: CLI, busybox_image: str, args: list[str]) -> None:
    outs = {}
    for rt in ("builtin", "runc"):
        r = cli("run", "--rm", "--runtime", rt, *args, "busybox", "sh", "-c", PROBE, check=False)
        assert r.returncode == 0, (rt, r.stderr)
        outs[rt] = r.stdout
    assert outs["builtin"] == outs["runc"]


def test_exit_statuses_agree(cli: CLI, busybox_image: str) -> None:
    for rt in ("builtin", "runc"):
        assert cli("run", "--rm", "--runtime", rt, "busybox", "sh", "-c", "exit 42", check=False).returncode == 42
        assert cli("run", "--rm", "--runtime", rt, "busybox", "nosuch", check=False).returncode == 127
