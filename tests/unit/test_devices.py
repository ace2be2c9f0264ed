"""GPU discovery without CDI (a fake driver tree), spec edits, CDI device names."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dockyard.errors import RuntimeFailure
from dockyard.runtime import devices
from dockyard.runtime.devices import SpecEdits, apply_edits, gpu_edits
from dockyard.runtime.runopts import DeviceRequest, parse_gpus
from dockyard.runtime.spec import HostDevice

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
LIB = "usr/lib/x86_64-linux-gnu"


def mknod(path: Path, mode: int, major: int, minor: int) -> None:
    """A character device node with exactly ``mode`` (whatever the umask)."""
    os.mknod(path, mode | stat.S_IFCHR, os.makedev(major, minor))
    os.chmod(path, mode)


def make_fake_driver(root: Path, *, gpus: int = 2, libs: bool = True) -> Path:
    """A driver tree: dev/ with nvidia nodes, libraries (versioned files + soname links), nvidia-smi."""
    dev = root / "dev"
    (dev / "dri").mkdir(parents=True)
    for i in range(gpus):
        mknod(dev / f"nvidia{i}", 0o666, 195, i)
    mknod(dev / "nvidiactl", 0o666, 195, 255)
    mknod(dev / "nvidia-uvm", 0o666, 508, 0)
    mknod(dev / "nvidia-uvm-tools", 0o666, 508, 1)
    mknod(dev / "dri" / "renderD128", 0o660, 226, 128)
    os.chown(dev / "dri" / "renderD128", 0, 109)
    (dev / "nvidia-caps").mkdir()
    (dev / "notnvidia0").touch()
    if libs:
        lib = root / LIB
        lib.mkdir(parents=True)
        for base in ("libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so", "libnvidia-nvvm.so",
                     "libcudadebugger.so"):
            real = lib / f"{base}.550.54.14"
            real.write_text(f"fake {base}\n")
            (lib / f"{base}.1").symlink_to(real.name)
        (lib / "libcuda.so").symlink_to("libcuda.so.1")
        (lib / "libcudart.so.12").write_text("not a driver library\n")
        (lib / "libnvidia-glcore.so.550.54.14").write_text("graphics\n")
        (root / "lib").symlink_to("usr/lib")  # merged /usr: the same directory twice
        (root / "usr" / "bin").mkdir(parents=True)
        smi = root / "usr" / "bin" / "nvidia-smi"
        smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI 550.54.14 (fake)'\n")
        smi.chmod(0o755)
        dd = root / "usr" / "bin" / "nvidia-debugdump"
        dd.write_text("#!/bin/sh\n")
        dd.chmod(0o755)
    return root


def edits_for(root: Path, value: str, **kw: object) -> SpecEdits:
    return gpu_edits([parse_gpus(value)], cdi_dirs=[str(root / "no-cdi")], driver_root=str(root),
                     dev_root=str(root / "dev"), ldconfig=None, **kw)  # type: ignore[arg-type]


@needs_root
def test_all_gpus_without_cdi_inject_nodes_libraries_binaries_and_env(tmp_path: Path) -> None:
    root = make_fake_driver(tmp_path / "drv")
    e = edits_for(root, "all")
    nodes = {d.path: (d.type, d.major, d.minor, d.file_mode, d.permissions) for d in e.devices}
    assert nodes == {
        "/dev/nvidia0": ("c", 195, 0, 0o666, "rwm"),
        "/dev/nvidia1": ("c", 195, 1, 0o666, "rwm"),
        "/dev/nvidiactl": ("c", 195, 255, 0o666, "rwm"),
        "/dev/nvidia-uvm": ("c", 508, 0, 0o666, "rwm"),
        "/dev/nvidia-uvm-tools": ("c", 508, 1, 0o666, "rwm"),
        "/dev/dri/renderD128": ("c", 226, 128, 0o660, "rwm"),
    }
    mounts = {m["destination"]: m for m in e.mounts}
    real = os.path.realpath(root / LIB)
    expected = {f"/{LIB}/{base}{suffix}" for base in ("libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so",
                                                     "libnvidia-nvvm.so", "libcudadebugger.so")
                for suffix in (".1", ".550.54.14")} | {f"/{LIB}/libcuda.so", "/usr/bin/nvidia-smi",
                                                        "/usr/bin/nvidia-debugdump"}
    assert set(mounts) == expected
    for m in mounts.values():
        assert m["type"] == "bind" and "ro" in m["options"] and "bind" in m["options"], m
        assert os.path.isfile(m["source"])
    # a soname link is mounted from the file it points to, so the container sees the content at that name
    assert mounts[f"/{LIB}/libcuda.so.1"]["source"] == f"{real}/libcuda.so.550.54.14"
    assert mounts[f"/{LIB}/libcuda.so"]["source"] == f"{real}/libcuda.so.550.54.14"
    assert e.env == ["NVIDIA_VISIBLE_DEVICES=all"]


@needs_root
@pytest.mark.parametrize("value, gpus, visible", [
    ("1", ["/dev/nvidia0"], "0"),
    ("2", ["/dev/nvidia0", "/dev/nvidia1"], "0,1"),
    ('"device=1"', ["/dev/nvidia1"], "1"),
    ('"device=1,0"', ["/dev/nvidia1", "/dev/nvidia0"], "1,0"),
])
def test_gpu_selection(tmp_path: Path, value: str, gpus: list[str], visible: str) -> None:
    e = edits_for(make_fake_driver(tmp_path / "drv"), value)
    assert [d.path for d in e.devices if d.path[-1].isdigit() and "nvidia" in d.path and "uvm" not in d.path] == gpus
    assert "/dev/nvidiactl" in devices.device_paths(e)
    assert e.env == [f"NVIDIA_VISIBLE_DEVICES={visible}"]


@needs_root
@pytest.mark.parametrize("value, message", [
    ("3", "nvidia-container-cli: device error: 2: unknown device"),
    ("device=7", "nvidia-container-cli: device error: 7: unknown device"),
])
def test_missing_gpu_is_an_error(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(RuntimeFailure) as ei:
        edits_for(make_fake_driver(tmp_path / "drv"), value)
    assert str(ei.value) == message and ei.value.exit_code == 125


@needs_root
def test_capabilities_choose_the_libraries(tmp_path: Path) -> None:
    root = make_fake_driver(tmp_path / "drv")
    util = {m["destination"] for m in edits_for(root, "all,capabilities=utility").mounts}
    assert util == {f"/{LIB}/libnvidia-ml.so.1", f"/{LIB}/libnvidia-ml.so.550.54.14", "/usr/bin/nvidia-smi",
                    "/usr/bin/nvidia-debugdump"}
    compute = {m["destination"] for m in edits_for(root, "all,capabilities=compute").mounts}
    assert f"/{LIB}/libcuda.so.1" in compute and "/usr/bin/nvidia-smi" not in compute
    # the image's NVIDIA_DRIVER_CAPABILITIES is the default when --gpus names none
    env = ["NVIDIA_DRIVER_CAPABILITIES=utility"]
    from_env = {m["destination"] for m in edits_for(root, "all", image_env=env).mounts}
    assert from_env == util
    everything = {m["destination"] for m in edits_for(root, "all,capabilities=all").mounts}
    assert f"/{LIB}/libnvidia-glcore.so.550.54.14" in everything


def test_no_gpu_gives_dockers_error(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    with pytest.raises(RuntimeFailure) as ei:
        edits_for(tmp_path, "all")
    assert str(ei.value) == 'could not select device driver "" with capabilities: [[gpu]]'
    assert ei.value.exit_code == 125
    with pytest.raises(RuntimeFailure, match=r'could not select device driver "" with capabilities: '
                                             r"\[\[utility gpu\]\]"):
        edits_for(tmp_path, "all,capabilities=utility")


@needs_root
def test_nodes_without_a_driver_library_or_another_driver_are_errors(tmp_path: Path) -> None:
    root = make_fake_driver(tmp_path / "drv", libs=False)
    with pytest.raises(RuntimeFailure, match="could not select device driver"):
        edits_for(root, "all")
    root2 = make_fake_driver(tmp_path / "drv2")
    with pytest.raises(RuntimeFailure, match='could not select device driver "amd" with capabilities'):
        edits_for(root2, "driver=amd,count=1")


def test_no_request_no_edits(tmp_path: Path) -> None:
    assert not gpu_edits([], driver_root=str(tmp_path))


@needs_root
def test_ldconfig_output_finds_libraries_outside_the_usual_dirs(tmp_path: Path) -> None:
    root = make_fake_driver(tmp_path / "drv", libs=False)
    libdir = root / "opt" / "nvidia" / "lib"
    libdir.mkdir(parents=True)
    (libdir / "libcuda.so.1").write_text("cuda\n")
    (libdir / "libnvidia-ml.so.1").write_text("nvml\n")
    fake_ldconfig = tmp_path / "ldconfig"
    fake_ldconfig.write_text(
        "#!/bin/sh\n"
        "echo '3 libs found in cache'\n"
        "echo '\tlibcuda.so.1 (libc6,x86-64) => /opt/nvidia/lib/libcuda.so.1'\n"
        "echo '\tlibnvidia-ml.so.1 (libc6,x86-64) => /opt/nvidia/lib/libnvidia-ml.so.1'\n"
        "echo '\tlibcuda.so.1 (libc6) => /opt/nvidia/lib32/libcuda.so.1'\n")
    fake_ldconfig.chmod(0o755)
    e = gpu_edits([parse_gpus("all")], cdi_dirs=[], driver_root=str(root), ldconfig=str(fake_ldconfig))
    assert {m["destination"] for m in e.mounts} == {"/opt/nvidia/lib/libcuda.so.1", "/opt/nvidia/lib/libnvidia-ml.so.1"}


def test_apply_edits_to_a_spec() -> None:
    spec = {
        "process": {"env": ["PATH=/bin", "A=1"], "user": {"uid": 0, "gid": 0, "additionalGids": [0]}},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/x", "type": "bind", "source": "/old", "options": ["rbind"]}],
        "linux": {"resources": {"devices": [{"allow": False, "access": "rwm"}]},
                  "devices": [{"path": "/dev/nvidia0", "type": "c", "major": 1, "minor": 1}]},
    }
    e = SpecEdits(
        env=["A=2", "NVIDIA_VISIBLE_DEVICES=all"],
        devices=[HostDevice("/dev/nvidia0", "c", 195, 0, 0o666), HostDevice("/dev/nvidiactl", "c", 195, 255, 0o666,
                                                                           permissions="rw")],
        mounts=[{"destination": "/x", "type": "bind", "source": "/new", "options": ["bind", "ro"]},
                {"destination": "/usr/lib/libcuda.so.1", "type": "bind", "source": "/l", "options": ["bind", "ro"]}],
        hooks={"createContainer": [{"path": "/bin/true"}]},
        additional_gids=[44, 0],
    )
    apply_edits(spec, e)
    assert spec["process"]["env"] == ["PATH=/bin", "A=2", "NVIDIA_VISIBLE_DEVICES=all"]
    assert spec["process"]["user"]["additionalGids"] == [0, 44]
    assert spec["linux"]["devices"] == [
        {"path": "/dev/nvidia0", "type": "c", "major": 195, "minor": 0, "fileMode": 0o666, "uid": 0, "gid": 0},
        {"path": "/dev/nvidiactl", "type": "c", "major": 195, "minor": 255, "fileMode": 0o666, "uid": 0, "gid": 0},
    ]
    assert spec["linux"]["resources"]["devices"][1:] == [
        {"allow": True, "type": "c", "major": 195, "minor": 0, "access": "rwm"},
        {"allow": True, "type": "c", "major": 195, "minor": 255, "access": "rw"},
    ]
    assert [(m["destination"], m["source"]) for m in spec["mounts"]] == [
        ("/proc", "proc"), ("/x", "/new"), ("/usr/lib/libcuda.so.1", "/l")]
    assert spec["hooks"] == {"createContainer": [{"path": "/bin/true"}]}
    apply_edits(spec, SpecEdits(devices=[HostDevice("/dev/nvidia0", "c", 195, 0, 0o666)]))  # idempotent
    assert len(spec["linux"]["devices"]) == 2 and len(spec["linux"]["resources"]["devices"]) == 3


def test_cdi_names_are_told_from_device_paths() -> None:
    plain, cdi = devices.split_cdi_devices(["/dev/null:/dev/x:r", "nvidia.com/gpu=all", "vendor.com/class=dev:0",
                                            "/dev/sda", "relative"])
    assert plain == ["/dev/null:/dev/x:r", "/dev/sda", "relative"]
    assert cdi == ["nvidia.com/gpu=all", "vendor.com/class=dev:0"]
    req = devices.cdi_request(cdi)
    assert req == DeviceRequest(driver="cdi", count=0, device_ids=("nvidia.com/gpu=all", "vendor.com/class=dev:0"),
                                capabilities=())
