"""--gpus in real containers, against a fake NVIDIA driver tree and a fake CDI spec (no GPU needed).

The fake driver (``tests/unit/test_devices.make_fake_driver``) has device nodes with NVIDIA's
numbers (195:N, nvidiactl 195:255) that no driver answers, so opening one proves the device cgroup
let it through (ENXIO) rather than refused it (EPERM).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dockyard.errors import RuntimeFailure
from dockyard.runtime.devices import apply_edits, cdi_request, gpu_edits
from dockyard.runtime.runopts import parse_gpus
from tests.integration import test_volumes
from tests.integration.test_volumes import Bundles, sh
from tests.unit.test_devices import LIB, make_fake_driver, mknod

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers and mknod need root")
# the fixtures that build and run bundles
bundles = test_volumes.bundles
busybox_rootfs_template = test_volumes.busybox_rootfs_template

PROBE = ("ls -l /dev/nvidia0 /dev/nvidia1 /dev/nvidiactl 2>&1 | awk '{print $1, $5, $6, $NF}'",
         "true < /dev/nvidia0",
         f"cat /{LIB}/libcuda.so.1",
         "nvidia-smi",
         f"touch /{LIB}/libcuda.so.1",
         "echo NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES")


def test_gpus_all_without_cdi(bundles: Bundles, tmp_path: Path) -> None:
    drv = make_fake_driver(tmp_path / "drv")
    edits = gpu_edits([parse_gpus("all")], cdi_dirs=[str(tmp_path / "none")], driver_root=str(drv), ldconfig=None)
    spec = bundles.spec(sh(*PROBE))
    apply_edits(spec, edits)
    rules = spec["linux"]["resources"]["devices"]
    for minor in (0, 1, 255):
        assert {"allow": True, "type": "c", "major": 195, "minor": minor, "access": "rwm"} in rules
    lib_mounts = [m for m in spec["mounts"] if m["destination"].startswith(f"/{LIB}/")]
    assert lib_mounts and all("ro" in m["options"] for m in lib_mounts)
    r = bundles.run(spec)
    lines = r.stdout.splitlines()
    assert lines[:3] == ["crw-rw-rw- 195, 0 /dev/nvidia0", "crw-rw-rw- 195, 1 /dev/nvidia1",
                         "crw-rw-rw- 195, 255 /dev/nvidiactl"], r
    assert lines[3:] == ["fake libcuda.so", "NVIDIA-SMI 550.54.14 (fake)", "NVIDIA_VISIBLE_DEVICES=all"], r
    assert "can't open /dev/nvidia0: No such device or address" in r.stderr  # the cgroup allowed it
    assert "Read-only file system" in r.stderr


def test_one_gpu_by_index_gets_only_that_node(bundles: Bundles, tmp_path: Path) -> None:
    drv = make_fake_driver(tmp_path / "drv")
    edits = gpu_edits([parse_gpus('"device=1"')], cdi_dirs=[], driver_root=str(drv), ldconfig=None)
    spec = bundles.spec(sh("ls /dev | grep nvidia", "echo $NVIDIA_VISIBLE_DEVICES"))
    apply_edits(spec, edits)
    assert bundles.run(spec).stdout.split() == ["nvidia-uvm", "nvidia-uvm-tools", "nvidia1", "nvidiactl", "1"]


def test_no_gpu_is_exit_125_with_dockers_words(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    with pytest.raises(RuntimeFailure) as ei:
        gpu_edits([parse_gpus("all")], cdi_dirs=[], driver_root=str(tmp_path), ldconfig=None)
    assert (ei.value.exit_code, str(ei.value)) == (125, 'could not select device driver "" with capabilities: [[gpu]]')


def _cdi(tmp_path: Path) -> tuple[Path, Path]:
    dev, cdi = tmp_path / "dev", tmp_path / "cdi"
    dev.mkdir()
    cdi.mkdir()
    mknod(dev / "nvidia0", 0o666, 195, 0)
    mknod(dev / "nvidiactl", 0o666, 195, 255)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libcuda.so.1").write_text("cdi libcuda\n")
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ncat > {tmp_path}/hook-state.json\necho \"$@\" > {tmp_path}/hook-args\n")
    hook.chmod(0o755)
    spec = {
        "cdiVersion": "0.6.0",
        "kind": "nvidia.com/gpu",
        "containerEdits": {
            "env": ["NVIDIA_VISIBLE_DEVICES=void", "FROM_CDI=yes"],
            "deviceNodes": [{"path": "/dev/nvidiactl", "hostPath": str(dev / "nvidiactl")}],
            "mounts": [{"hostPath": str(lib / "libcuda.so.1"), "containerPath": f"/{LIB}/libcuda.so.1",
                        "options": ["ro", "nosuid", "nodev", "bind"]}],
            "hooks": [{"hookName": "createContainer", "path": str(hook), "args": ["hook.sh", "update-ldcache"]}],
        },
        "devices": [{"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0",
                                                                      "hostPath": str(dev / "nvidia0")}]}},
                    {"name": "all", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0",
                                                                        "hostPath": str(dev / "nvidia0")}]}}],
    }
    (cdi / "nvidia.json").write_text(json.dumps(spec))
    return cdi, dev


@pytest.mark.parametrize("request_kind", ["gpus", "device"])
def test_cdi_spec_edits_in_a_real_container(bundles: Bundles, tmp_path: Path, request_kind: str) -> None:
    cdi, _ = _cdi(tmp_path)
    req = parse_gpus("all") if request_kind == "gpus" else cdi_request(["nvidia.com/gpu=all"])
    edits = gpu_edits([req], cdi_dirs=[str(cdi)], driver_root=str(tmp_path / "unused"))
    spec = bundles.spec(sh("ls -l /dev/nvidia0 /dev/nvidiactl | awk '{print $1, $5, $6}'",
                           f"cat /{LIB}/libcuda.so.1", "echo $FROM_CDI $NVIDIA_VISIBLE_DEVICES",
                           f"echo x > /{LIB}/libcuda.so.1"))
    apply_edits(spec, edits)
    r = bundles.run(spec)
    assert r.stdout.splitlines() == ["crw-rw-rw- 195, 0", "crw-rw-rw- 195, 255", "cdi libcuda", "yes void"], r
    assert "Read-only file system" in r.stderr
    state = json.loads((tmp_path / "hook-state.json").read_text())
    assert state["status"] == "creating" and state["bundle"]  # as OCI says for createContainer
    assert (tmp_path / "hook-args").read_text() == "update-ldcache\n"
