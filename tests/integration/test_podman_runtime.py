"""Issue 8's proof: podman drives `dockyard-runtime` as it drives runc (run, run -it, exec, stop, ps)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import CLI, run_in_pty

RUNTIME = str(Path(sys.executable).with_name("dockyard-runtime"))
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
]


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(["podman", "--runtime", RUNTIME, *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {p.returncode}: {p.stderr}")
    return p


@pytest.fixture(scope="module")
def podman_busybox(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The busybox base, imported by dockyard and handed to podman through a docker-archive."""
    from tests.conftest import base_image_tar

    root = tmp_path_factory.mktemp("pdroot")
    cli = CLI(root)
    tag = f"localhost/dyrt-busybox:{uuid.uuid4().hex[:8]}"
    cli("import", "-c", 'CMD ["sh"]', str(base_image_tar("busybox")), tag)
    archive = root / "bb.tar"
    cli("save", "-o", str(archive), tag)
    subprocess.run(["podman", "load", "-q", "-i", str(archive)], check=True, capture_output=True)
    yield tag
    subprocess.run(["podman", "rmi", "-f", tag], capture_output=True)


def test_podman_run_exec_stop_ps_with_dockyard_runtime(podman_busybox: str) -> None:
    r = podman("run", "--rm", "--net=none", podman_busybox, "sh", "-c", "echo hello; exit 3", check=False)
    assert (r.returncode, r.stdout) == (3, "hello\n")
    name = f"dyrt-{uuid.uuid4().hex[:8]}"
    podman("run", "-d", "--name", name, "--net=none", podman_busybox, "sleep", "100")
    try:
        assert name in podman("ps").stdout
        out = podman("exec", name, "sh", "-c", "cat /proc/1/cmdline; echo; echo exec-ok").stdout
        assert out.splitlines() == ["sleep100", "exec-ok"] or out.splitlines()[-1] == "exec-ok"
        podman("stop", "-t", "1", name)
        ps = podman("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}").stdout
        assert ps.startswith("Exited (137)")
    finally:
        podman("rm", "-f", name, check=False)


def test_podman_run_it_through_the_console_socket(podman_busybox: str) -> None:
    code, out = run_in_pty(["podman", "--runtime", RUNTIME, "run", "--rm", "-it", "--net=none", podman_busybox, "sh"],
                           [(b"", b"# "), (b"tty; exit 5\r", b"exit 5")])
    assert b"/dev/pts/0" in out
    assert code == 5
