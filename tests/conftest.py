"""Fixtures shared by the whole suite: base image tars, a private engine root, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IMAGE_CACHE = Path(os.environ.get("DOCKYARD_IMAGE_CACHE", "/var/cache/dockyard-test-images"))
DOCKYARD_BIN = Path(sys.executable).with_name("dockyard")


def base_image_tar(name: str) -> Path:
    """Build (once, cached) and return a base rootfs tar: ``busybox`` or ``debian``."""
    target = IMAGE_CACHE / ("busybox.tar" if name == "busybox" else "debian-bookworm.tar")
    if not target.exists():
        subprocess.run([str(REPO / "scripts" / "make-base-images"), name], check=True,
                       stdout=subprocess.DEVNULL)
    return target


@pytest.fixture(scope="session")
def busybox_tar() -> Path:
    return base_image_tar("busybox")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class CLI:
    """Runs the installed ``dockyard`` console script against a private root, as a user would."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, *args: str, input: bytes | str | None = None, check: bool = True,
                 timeout: float = 120, env: dict[str, str] | None = None) -> Result:
        cmd = [str(DOCKYARD_BIN), "--root", str(self.root), *args]
        full_env = {**os.environ, **(env or {})}
        p = subprocess.run(cmd, input=input.encode() if isinstance(input, str) else input,
                           capture_output=True, timeout=timeout, env=full_env)
        r = Result(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
        return r


@pytest.fixture
def cli(root: Path) -> CLI:
    return CLI(root)


@pytest.fixture
def busybox_image(cli: CLI, busybox_tar: Path) -> str:
    """A busybox image imported as ``busybox:latest``; returns its ID."""
    return cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest").stdout.strip()


def assert_one_line_error(r: Result) -> None:
    """What a user must see for bad input: a non-zero status and one plain line, no traceback."""
    assert r.returncode != 0, r
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, r.stderr  # the message (and at most a "See --help" hint)


def run_in_pty(argv: list[str], script: list[tuple[bytes, bytes]], *, env: dict[str, str] | None = None,
               timeout: float = 30) -> tuple[int, bytes]:
    """Run ``argv`` on a real pseudo-terminal, as a user at a terminal would.

    ``script`` is a list of (keys to type, output to wait for); returns (exit status, everything shown).
    """
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, {**os.environ, **(env or {})})
    out = b""

    def read_until(token: bytes, limit: float) -> None:
        nonlocal out
        end = time.time() + limit
        while time.time() < end and token not in out:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    return

    for send, wait_for in script:
        if send:
            os.write(fd, send)
        read_until(wait_for, timeout)
    read_until(b"\0", 3)  # the rest, until the program closes the terminal
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def remove_cgroup_tree(parent: str) -> None:
    """Remove ``/sys/fs/cgroup/*/parent`` and its children (what tests' containers left), where empty."""
    for ctrl in Path("/sys/fs/cgroup").iterdir():
        p = ctrl / parent
        if p.is_dir():
            for child in p.iterdir():
                if child.is_dir():
                    try:
                        child.rmdir()
                    except OSError:
                        pass
            try:
                p.rmdir()
            except OSError:
                pass
