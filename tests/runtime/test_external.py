"""``ExternalRuntime`` drives runc through the same Python interface as ``BuiltinRuntime``."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from rt_helpers import delete_all, new_id

from dockyard.errors import CommandNotFound, Conflict, ContainerNotFound
from dockyard.runtime.external import ExternalRuntime

pytestmark = [pytest.mark.root, pytest.mark.peers]


@pytest.fixture
def ext(tmp_path: Path):  # type: ignore[no-untyped-def]
    if shutil.which("runc") is None:
        pytest.skip("needs runc")
    runtime = ExternalRuntime("runc", root=tmp_path / "ext-root")
    yield runtime
    delete_all(runtime)


def test_external_lifecycle(ext, make_bundle) -> None:  # type: ignore[no-untyped-def]
    cid = new_id()
    devnull = os.open(os.devnull, os.O_RDWR)
    pid = ext.create(cid, make_bundle(["sleep", "100"]), stdio=(devnull, devnull, devnull))
    os.close(devnull)
    st = ext.state(cid)
    assert (st.status, st.pid) == ("created", pid)
    with pytest.raises(Conflict):
        ext.create(cid, make_bundle(["true"]))
    ext.start(cid)
    assert ext.state(cid).status == "running"
    code = ext.exec(cid, {"args": ["sh", "-c", "exit 4"], "cwd": "/", "env": ["PATH=/bin"]}, detach=False)
    assert code == 4
    ext.pause(cid)
    assert ext.state(cid).status == "paused"
    ext.resume(cid)
    assert [s.id for s in ext.list()] == [cid]
    ext.kill(cid, "KILL")
    deadline = time.monotonic() + 5
    while ext.state(cid).status != "stopped" and time.monotonic() < deadline:
        time.sleep(0.01)
    ext.delete(cid)
    with pytest.raises(ContainerNotFound):
        ext.state(cid)
    with pytest.raises(CommandNotFound):
        ext.create(new_id(), make_bundle(["nosuchcmd"]))
