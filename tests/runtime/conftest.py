"""Fixtures for the OCI runtime tests: busybox bundles, and runners for dockyard-runtime and runc.

Real kernel, real runc: these tests need root (namespaces, mounts, cgroups), ``busybox`` and ``runc``;
they skip otherwise.  Bundles are built in the test from ``default_spec()`` (runc's ``spec`` defaults),
never from ``dockyard.runtime.spec``, so the runtime is tested against plain OCI configs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rt_helpers import CGROUP_PARENT, base_config, delete_all

from tests.conftest import remove_cgroup_tree

SRC = str(Path(__file__).resolve().parents[2] / "src")
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not os.path.exists(BUSYBOX):
        return "needs busybox"
    return None


@pytest.fixture(autouse=True)
def _needs_root(request: pytest.FixtureRequest) -> None:
    """Tests marked ``root`` need a real kernel as root; the unit tests run anywhere."""
    if request.node.get_closest_marker("root") is None:
        return
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A template rootfs: bin/busybox plus a symlink per applet (``busybox --install -s``)."""
    root = tmp_path_factory.mktemp("busybox-template")
    root.chmod(0o755)
    (root / "bin").mkdir()
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for name in applets:
        if name != "busybox" and not (root / "bin" / name).exists():
            (root / "bin" / name).symlink_to("busybox")
    for d in ("proc", "sys", "dev", "tmp", "etc", "mnt"):
        (root / d).mkdir()
    (root / "tmp").chmod(0o1777)
    return root


BundleFactory = Callable[..., Path]


@pytest.fixture
def make_bundle(busybox_rootfs: Path) -> Iterator[BundleFactory]:
    """make_bundle(args, edit=None) -> bundle dir; ``edit(cfg)`` may change the config in place.

    Bundles live in a world-traversable directory (pytest's tmp_path is 0700), so containers running
    as a non-root uid or in a user namespace can reach their rootfs, as they would in real use.
    """
    base = Path(tempfile.mkdtemp(prefix="dockyard-rt-"))
    base.chmod(0o755)
    counter = iter(range(1000))

    def factory(args: list[str], edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
        bundle = base / f"bundle{next(counter)}"
        shutil.copytree(busybox_rootfs, bundle / "rootfs", symlinks=True)
        cfg = base_config(args)
        if edit is not None:
            edit(cfg)
        (bundle / "config.json").write_text(json.dumps(cfg, indent=1))
        return bundle

    yield factory
    shutil.rmtree(base, ignore_errors=True)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class Runner:
    """Runs a runc-compatible CLI with a private ``--root``; remembers ids to force-delete later."""

    def __init__(self, argv: list[str], root: Path) -> None:
        self.argv = argv
        self.root = root
        self.ids: set[str] = set()

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60, check: bool = False,
                 detached_io: bool = False) -> Result:  # fmt: skip
        """``detached_io``: the container keeps our stdio (create/run -d), so don't capture to EOF."""
        cmd = [*self.argv, "--root", str(self.root), *args]
        for a in args:
            if a.startswith("t-"):
                self.ids.add(a)
        if detached_io:
            errf = self.root.parent / f"stderr-{uuid.uuid4().hex[:8]}"
            with open(errf, "w+b") as err:
                p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                   timeout=timeout)  # fmt: skip
                err.seek(0)
                r = Result(p.returncode, "", err.read().decode(errors="replace"))
        else:
            p = subprocess.run(cmd, input=input.encode() if input is not None else None, capture_output=True,
                               timeout=timeout)  # fmt: skip
            r = Result(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def cleanup(self) -> None:
        for cid in self.ids:
            subprocess.run([*self.argv, "--root", str(self.root), "delete", "--force", cid],
                           capture_output=True, timeout=30)  # fmt: skip


def _cleanup_cgroups() -> None:
    remove_cgroup_tree(CGROUP_PARENT)


@pytest.fixture
def dy(tmp_path: Path) -> Iterator[Runner]:
    """``dockyard-runtime`` (the package's CLI, run like the console script)."""
    launcher = f"import sys; sys.path.insert(0, {SRC!r}); from dockyard.runtime.cli import main; main()"
    r = Runner([sys.executable, "-c", launcher], tmp_path / "dy-root")
    yield r
    r.cleanup()
    _cleanup_cgroups()


@pytest.fixture
def runc(tmp_path: Path) -> Iterator[Runner]:
    if shutil.which("runc") is None:
        pytest.skip("needs runc")
    r = Runner(["runc"], tmp_path / "runc-root")
    yield r
    r.cleanup()
    _cleanup_cgroups()


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Any]:
    """A BuiltinRuntime with a private root (Python interface)."""
    from dockyard.runtime.builtin import BuiltinRuntime

    runtime = BuiltinRuntime(tmp_path / "api-root")
    yield runtime
    delete_all(runtime)
    _cleanup_cgroups()
