"""CDI specs (JSON and YAML, as nvidia-ctk writes them) resolved into spec edits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument, RuntimeFailure
from dockyard.runtime import devices
from dockyard.runtime.runopts import parse_gpus
from tests.unit.test_devices import mknod

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")


def nvidia_ctk_yaml(dev: Path, lib: Path) -> str:
    """A spec shaped like ``nvidia-ctk cdi generate --dev-root``'s output, pointing at fake nodes."""
    return f"""---
cdiVersion: 0.5.0
containerEdits:
  deviceNodes:
  - path: /dev/nvidiactl
    hostPath: {dev}/nvidiactl
  - path: /dev/nvidia-uvm
    hostPath: {dev}/nvidia-uvm
  env:
  - NVIDIA_VISIBLE_DEVICES=void
  hooks:
  - args:
    - nvidia-ctk
    - hook
    - update-ldcache
    hookName: createContainer
    path: /usr/bin/nvidia-ctk
  mounts:
  - containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14
    hostPath: {lib}/libcuda.so.550.54.14
    options:
    - ro
    - nosuid
    - nodev
    - bind
devices:
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: {dev}/nvidia0
  name: "0"
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia1
      hostPath: {dev}/nvidia1
  name: "1"
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: {dev}/nvidia0
  name: GPU-6bd7e3b1-5d7b-3b0d-6c1c-1a2b3c4d5e6f
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: {dev}/nvidia0
    - path: /dev/nvidia1
      hostPath: {dev}/nvidia1
  name: all
kind: nvidia.com/gpu
"""


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, Path, Path]:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    dev, lib, cdi = tmp_path / "dev", tmp_path / "lib", tmp_path / "cdi"
    for d in (dev, lib, cdi):
        d.mkdir()
    mknod(dev / "nvidia0", 0o666, 195, 0)
    mknod(dev / "nvidia1", 0o660, 195, 1)
    mknod(dev / "nvidiactl", 0o666, 195, 255)
    mknod(dev / "nvidia-uvm", 0o666, 508, 0)
    (lib / "libcuda.so.550.54.14").write_text("cuda\n")
    return dev, lib, cdi


def test_yaml_spec_as_nvidia_ctk_writes_it(fake: tuple[Path, Path, Path]) -> None:
    pytest.importorskip("yaml")
    dev, lib, cdi = fake
    spec = devices.parse_cdi_spec(nvidia_ctk_yaml(dev, lib), "nvidia.yaml")
    assert (spec.kind, spec.version) == ("nvidia.com/gpu", "0.5.0")
    assert list(spec.devices) == ["0", "1", "GPU-6bd7e3b1-5d7b-3b0d-6c1c-1a2b3c4d5e6f", "all"]
    (cdi / "nvidia.yaml").write_text(nvidia_ctk_yaml(dev, lib))
    e = devices.gpu_edits([parse_gpus("all")], cdi_dirs=[str(cdi)])
    nodes = {d.path: (d.type, d.major, d.minor, d.file_mode, d.permissions) for d in e.devices}
    assert nodes == {"/dev/nvidiactl": ("c", 195, 255, 0o666, "rwm"), "/dev/nvidia-uvm": ("c", 508, 0, 0o666, "rwm"),
                     "/dev/nvidia0": ("c", 195, 0, 0o666, "rwm"), "/dev/nvidia1": ("c", 195, 1, 0o660, "rwm")}
    assert e.mounts == [{"destination": "/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14", "type": "bind",
                         "source": f"{lib}/libcuda.so.550.54.14", "options": ["ro", "nosuid", "nodev", "bind"]}]
    assert e.env == ["NVIDIA_VISIBLE_DEVICES=void"]
    assert e.hooks == {"createContainer": [{"path": "/usr/bin/nvidia-ctk",
                                            "args": ["nvidia-ctk", "hook", "update-ldcache"]}]}


def json_spec(dev: Path, **extra: object) -> dict[str, object]:
    return {
        "cdiVersion": "0.6.0",
        "kind": "nvidia.com/gpu",
        "containerEdits": {"env": ["FROM_SPEC=1"]},
        "devices": [
            {"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0", "hostPath": f"{dev}/nvidia0"}],
                                             "env": ["GPU0=yes"]}},
            {"name": "1", "containerEdits": {"deviceNodes": [{"path": "/dev/gpu-one", "hostPath": f"{dev}/nvidia1",
                                                              "permissions": "rw", "fileMode": 0o600, "gid": 44}]}},
        ],
        **extra,
    }


@pytest.mark.parametrize("value, names", [
    ("all", ["/dev/nvidia0", "/dev/gpu-one"]),  # no "all" device: every device
    ("1", ["/dev/nvidia0"]),
    ('"device=1"', ["/dev/gpu-one"]),
    ('"device=1,0"', ["/dev/gpu-one", "/dev/nvidia0"]),
])
def test_gpus_select_cdi_devices(fake: tuple[Path, Path, Path], value: str, names: list[str]) -> None:
    dev, _, cdi = fake
    (cdi / "nvidia.json").write_text(json.dumps(json_spec(dev)))
    e = devices.gpu_edits([parse_gpus(value)], cdi_dirs=[str(cdi)])
    assert [d.path for d in e.devices] == names
    assert e.env[0] == "FROM_SPEC=1"  # the spec-wide edits once, before the devices'
    assert e.env.count("FROM_SPEC=1") == 1


def test_cdi_node_fields_from_the_spec_win_over_the_host(fake: tuple[Path, Path, Path]) -> None:
    dev, _, cdi = fake
    (cdi / "nvidia.json").write_text(json.dumps(json_spec(dev)))
    (node,) = devices.cdi_edits(["nvidia.com/gpu=1"], cdi_dirs=[str(cdi)]).devices
    assert (node.path, node.type, node.major, node.minor, node.file_mode, node.gid, node.permissions) == (
        "/dev/gpu-one", "c", 195, 1, 0o600, 44, "rw")
    assert node.cgroup_rule() == {"allow": True, "type": "c", "major": 195, "minor": 1, "access": "rw"}


def test_cdi_device_names_and_unknown_ones(fake: tuple[Path, Path, Path]) -> None:
    dev, _, cdi = fake
    (cdi / "nvidia.json").write_text(json.dumps(json_spec(dev)))
    e = devices.gpu_edits([devices.cdi_request(["nvidia.com/gpu=0"])], cdi_dirs=[str(cdi)])
    assert [d.path for d in e.devices] == ["/dev/nvidia0"] and "GPU0=yes" in e.env
    with pytest.raises(RuntimeFailure, match=r"unresolvable CDI devices nvidia.com/gpu=7, vendor.com/x=y"):
        devices.gpu_edits([devices.cdi_request(["nvidia.com/gpu=7", "vendor.com/x=y"])], cdi_dirs=[str(cdi)])
    with pytest.raises(RuntimeFailure, match="unresolvable CDI devices nvidia.com/gpu=9"):
        devices.gpu_edits([parse_gpus('"device=9"')], cdi_dirs=[str(cdi)])
    with pytest.raises(RuntimeFailure, match="unresolvable CDI devices"):
        devices.gpu_edits([parse_gpus("3")], cdi_dirs=[str(cdi)])


def test_later_cdi_dirs_win_and_broken_files_are_skipped(fake: tuple[Path, Path, Path], tmp_path: Path) -> None:
    dev, _, etc_cdi = fake
    run_cdi = tmp_path / "run-cdi"
    run_cdi.mkdir()
    (etc_cdi / "a.json").write_text(json.dumps(json_spec(dev)))
    override = json_spec(dev)
    override["devices"] = [{"name": "0", "containerEdits": {"env": ["OVERRIDDEN=1"]}}]
    override["containerEdits"] = {}
    (run_cdi / "b.json").write_text(json.dumps(override))
    (run_cdi / "broken.json").write_text("{not json")
    (run_cdi / "notes.txt").write_text("ignored")
    e = devices.cdi_edits(["nvidia.com/gpu=0", "nvidia.com/gpu=1"], cdi_dirs=[str(etc_cdi), str(run_cdi)])
    assert "OVERRIDDEN=1" in e.env and "GPU0=yes" not in e.env
    assert [d.path for d in e.devices] == ["/dev/gpu-one"]


@needs_root
def test_mounts_hooks_and_gids_conversion(tmp_path: Path) -> None:
    ce = {
        "mounts": [{"hostPath": "/h", "containerPath": "/c"},
                   {"hostPath": "tmpfs", "containerPath": "/t", "type": "tmpfs", "options": ["size=1m"]}],
        "hooks": [{"hookName": "prestart", "path": "/bin/hook", "args": ["hook", "x"], "env": ["A=1"], "timeout": 5}],
        "additionalGids": [33],
        "deviceNodes": [{"path": "/dev/fake", "type": "c", "major": 10, "minor": 200}],  # no host node: as given
    }
    spec = {"cdiVersion": "0.7.0", "kind": "example.com/thing", "devices": [{"name": "x", "containerEdits": ce}]}
    (tmp_path / "x.json").write_text(json.dumps(spec))
    e = devices.cdi_edits(["example.com/thing=x"], cdi_dirs=[str(tmp_path)])
    assert e.mounts == [{"destination": "/c", "type": "bind", "source": "/h", "options": ["rbind"]},
                        {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}]
    assert e.hooks == {"prestart": [{"path": "/bin/hook", "args": ["hook", "x"], "env": ["A=1"], "timeout": 5}]}
    assert e.additional_gids == [33]
    assert [(d.path, d.major, d.minor, d.file_mode) for d in e.devices] == [("/dev/fake", 10, 200, 0o666)]


def test_invalid_specs() -> None:
    with pytest.raises(InvalidArgument, match="missing cdiVersion"):
        devices.parse_cdi_spec(json.dumps({"kind": "a.com/b", "devices": [{"name": "x"}]}))
    with pytest.raises(InvalidArgument, match="invalid kind"):
        devices.parse_cdi_spec(json.dumps({"cdiVersion": "0.5.0", "kind": "nokind", "devices": [{"name": "x"}]}))
    with pytest.raises(InvalidArgument, match="no devices"):
        devices.parse_cdi_spec(json.dumps({"cdiVersion": "0.5.0", "kind": "a.com/b", "devices": []}))


def test_a_missing_host_node_without_its_numbers_is_an_error(tmp_path: Path) -> None:
    spec = {"cdiVersion": "0.5.0", "kind": "a.com/b",
            "devices": [{"name": "x", "containerEdits": {"deviceNodes": [{"path": "/dev/nope",
                                                                          "hostPath": str(tmp_path / "nope")}]}}]}
    (tmp_path / "s.json").write_text(json.dumps(spec))
    with pytest.raises(RuntimeFailure, match="failed to stat CDI host device"):
        devices.cdi_edits(["a.com/b=x"], cdi_dirs=[str(tmp_path)])
