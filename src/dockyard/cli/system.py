"""System commands: ``version``, ``info`` and ``system prune``, in Docker's layout.

What they show is read from the same places the engine reads (``DOCKYARD_ROOT``, ``DOCKYARD_RUNTIME``,
``DOCKYARD_SNAPSHOTTER``, ``RegistryConfig.from_env``), so with a configuration file exported into
the environment by ``dockyard.config.apply_to_environ`` they show what a command would really use.
``--format`` takes Go templates over the JSON of Docker's API (``/version``, ``/info``), so templates
written for Docker (``{{.Server.Version}}``, ``{{.CgroupVersion}}``, ``{{json .}}``) work unchanged.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dockyard import __version__
from dockyard.cli.common import Parser, engine
from dockyard.cli.format import bytes_size, human_size

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

API_VERSION = "1.43"
MIN_API_VERSION = "1.12"
#: OCI runtimes ``--runtime`` can name besides the built-in one, when installed.
EXTERNAL_RUNTIMES = ("runc", "crun")
_GO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
            "armv6l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
            "riscv64": "riscv64"}


# ---- version --------------------------------------------------------------------------------
def version(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "Show the Dockyard version information")
    p.add_argument("-f", "--format", help="Format output using a Go template ('json' for the JSON)")
    a = p.parse_args(argv)
    data = version_data()
    if a.format:
        return _print_format(a.format, data)
    c, s = data["Client"], data["Server"]
    lines = [f"Client: {c['Platform']['Name']}"]
    lines += _kv(1, [("Version", c["Version"]), ("API version", c["ApiVersion"]),
                     ("Python version", c["PythonVersion"]), ("Git commit", c["GitCommit"]),
                     ("Built", c["BuildTime"]), ("OS/Arch", f"{c['Os']}/{c['Arch']}"),
                     ("Context", c["Context"])], width=19)
    lines += ["", f"Server: {s['Platform']['Name']}"]
    for comp in s["Components"]:
        lines.append(f" {comp['Name']}:")
        d = comp["Details"]
        if comp["Name"] == "Engine":
            pairs = [("Version", comp["Version"]),
                     ("API version", f"{d['ApiVersion']} (minimum version {d['MinAPIVersion']})"),
                     ("Python version", d["PythonVersion"]), ("Git commit", d["GitCommit"]),
                     ("Built", d["BuildTime"]), ("OS/Arch", f"{d['Os']}/{d['Arch']}"),
                     ("Experimental", d["Experimental"])]
        else:
            pairs = [("Version", comp["Version"]), *((k, v) for k, v in d.items())]
        lines += _kv(2, pairs, width=18)
    print("\n".join(lines))
    return 0


def version_data() -> dict[str, Any]:
    """Docker's ``GET /version`` shape (``Client`` added, as ``docker version --format`` sees it)."""
    commit, built = _build_info()
    py = platform.python_version()
    os_name, arch = "linux" if sys.platform.startswith("linux") else sys.platform, _go_arch()
    client = {"Platform": {"Name": "Dockyard"}, "Version": __version__, "ApiVersion": API_VERSION,
              "DefaultAPIVersion": API_VERSION, "PythonVersion": py, "GitCommit": commit, "BuildTime": built,
              "Os": os_name, "Arch": arch, "Context": "default"}
    components: list[dict[str, Any]] = [{
        "Name": "Engine", "Version": __version__,
        "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "PythonVersion": py,
                    "GitCommit": commit, "BuildTime": built, "Os": os_name, "Arch": arch,
                    "KernelVersion": platform.release(), "Experimental": "false"},
    }]
    default = default_runtime()
    for rt in [default, *(r for r in available_runtimes() if r != default)]:
        ver, rt_commit = runtime_version(rt)
        if ver:
            components.append({"Name": _runtime_component(rt), "Version": ver, "Details": {"GitCommit": rt_commit}})
    server = {"Platform": {"Name": "Dockyard"}, "Components": components, "Version": __version__,
              "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "PythonVersion": py,
              "GitCommit": commit, "Os": os_name, "Arch": arch, "KernelVersion": platform.release(),
              "Experimental": False, "BuildTime": built, "DefaultRuntime": default}
    return {"Client": client, "Server": server}


def _runtime_component(rt: str) -> str:
    return "dockyard-runtime (builtin)" if rt in ("builtin", "dockyard") else os.path.basename(rt)


def default_runtime() -> str:
    return os.environ.get("DOCKYARD_RUNTIME") or "builtin"


def available_runtimes() -> list[str]:
    """``builtin`` and the external OCI runtimes on ``PATH`` (and the default one, wherever it is)."""
    out = ["builtin"] + [r for r in EXTERNAL_RUNTIMES if shutil.which(r)]
    default = default_runtime()
    if default not in out and default != "dockyard":
        out.append(default)
    return sorted(out)


def runtime_version(rt: str) -> tuple[str, str]:
    """(version, commit) of a runtime: ours, or what ``runc --version`` / ``crun --version`` say."""
    if rt in ("builtin", "dockyard"):
        return __version__, _build_info()[0]
    binary = shutil.which(rt)
    if not binary:
        return "", ""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return "", ""
    ver = commit = ""
    for line in out.splitlines():
        head, _, rest = line.partition(" version ")
        if rest and not ver and " " not in head.strip():
            ver = rest.strip()
        elif line.startswith("commit:"):
            commit = line.split(":", 1)[1].strip()
    return ver, commit


_BUILD_INFO: tuple[str, str] | None = None


def _build_info() -> tuple[str, str]:
    """(short commit, build time) of this Dockyard: from git for a checkout, else the files' date."""
    global _BUILD_INFO
    if _BUILD_INFO is not None:
        return _BUILD_INFO
    import dockyard

    pkg = Path(dockyard.__file__).resolve().parent
    commit, ts = "unknown", pkg.joinpath("__init__.py").stat().st_mtime
    repo = pkg.parent.parent  # src/dockyard -> the checkout of an editable install
    if (repo / ".git").exists() and shutil.which("git"):
        try:
            r = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%h %ct"],
                               capture_output=True, text=True, timeout=5)
            if r.returncode == 0 and r.stdout.strip():
                commit, _, when = r.stdout.strip().partition(" ")
                ts = float(when or ts)
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    _BUILD_INFO = (commit, time.asctime(time.localtime(ts)))
    return _BUILD_INFO


def _go_arch() -> str:
    m = platform.machine()
    return _GO_ARCH.get(m, m)


# ---- info -----------------------------------------------------------------------------------
def info(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "Display system-wide information")
    p.add_argument("-f", "--format", help="Format output using a Go template ('json' for the JSON)")
    a = p.parse_args(argv)
    data = info_data()
    if a.format:
        return _print_format(a.format, data)
    d = data
    lines = ["Client:"]
    lines += _kv(1, [("Version", __version__), ("Context", "default"),
                     ("Debug Mode", _bool(bool(os.environ.get("DOCKYARD_DEBUG"))))])
    lines += ["", "Server:",
              f" Containers: {d['Containers']}",
              f"  Running: {d['ContainersRunning']}",
              f"  Paused: {d['ContainersPaused']}",
              f"  Stopped: {d['ContainersStopped']}",
              f" Images: {d['Images']}",
              f" Server Version: {d['ServerVersion']}",
              f" Storage Driver: {d['Driver']}"]
    lines += [f"  {k}: {v}" for k, v in d["DriverStatus"]]
    lines += [f" Logging Driver: {d['LoggingDriver']}",
              f" Cgroup Driver: {d['CgroupDriver']}",
              f" Cgroup Version: {d['CgroupVersion']}",
              f" Runtimes: {' '.join(d['Runtimes'])}",
              f" Default Runtime: {d['DefaultRuntime']}"]
    for rt in d["Runtimes"]:
        if rt in EXTERNAL_RUNTIMES and d["RuntimeVersions"].get(rt):
            lines.append(f" {rt} version: {d['RuntimeVersions'][rt]}")
    lines.append(" Security Options:")
    for opt in d["SecurityOptions"]:
        fields = dict(x.split("=", 1) for x in opt.split(","))
        lines.append(f"  {fields.pop('name', opt)}")
        lines += [f"   {k.title()}: {v}" for k, v in fields.items()]
    lines += [f" Kernel Version: {d['KernelVersion']}",
              f" Operating System: {d['OperatingSystem']}",
              f" OSType: {d['OSType']}",
              f" Architecture: {d['Architecture']}",
              f" CPUs: {d['NCPU']}",
              f" Total Memory: {bytes_size(d['MemTotal'])}",
              f" Name: {d['Name']}",
              f" Dockyard Root Dir: {d['DockyardRootDir']}",
              f" Debug Mode: {_bool(d['Debug'])}",
              f" Registry: {d['IndexServerAddress']}",
              f" Experimental: {_bool(d['ExperimentalBuild'])}",
              " Insecure Registries:"]
    lines += [f"  {r}" for r in d["RegistryConfig"]["InsecureRegistryCIDRs"]]
    lines += [f"  {r}" for r in d["RegistryConfig"]["InsecureRegistries"]]
    if d["RegistryConfig"]["Mirrors"]:
        lines.append(" Registry Mirrors:")
        lines += [f"  {m}" for m in d["RegistryConfig"]["Mirrors"]]
    lines.append(f" Live Restore Enabled: {_bool(d['LiveRestoreEnabled'])}")
    print("\n".join(lines))
    for w in d["Warnings"]:
        sys.stderr.write(w + "\n")
    return 0


def info_data() -> dict[str, Any]:
    """Docker's ``GET /info`` fields that mean something here, with Docker's names."""
    from dockyard.ops import containers as ops
    from dockyard.registry.config import DOCKER_HUB_DOMAIN, RegistryConfig
    from dockyard.runtime import cgroups
    from dockyard.store.snapshots import default_driver

    with engine() as eng:
        conts = ops.list_containers(eng)
        n_images = len(eng.db.images())
        root = str(eng.root)
    states = [c["state"].get("status") for c in conts]
    running = sum(1 for s in states if s in ("running", "restarting"))
    paused = states.count("paused")
    driver = "copy" if default_driver() == "copy" else "overlay2"
    backing = backing_filesystem(root)
    cg_version = cgroups.detect()
    reg = RegistryConfig.from_env()
    default_registry = os.environ.get("DOCKYARD_DEFAULT_REGISTRY") or DOCKER_HUB_DOMAIN
    index = "https://index.docker.io/v1/" if default_registry in (DOCKER_HUB_DOMAIN, "index.docker.io") \
        else f"https://{default_registry}/v1/"
    runtimes = available_runtimes()
    versions = {rt: runtime_version(rt)[0] for rt in runtimes if rt in EXTERNAL_RUNTIMES}
    uname = os.uname()
    warnings: list[str] = []
    if cg_version == 1 and not os.path.exists(os.path.join(cgroups.CGROUP_ROOT, "memory",
                                                           "memory.memsw.limit_in_bytes")):
        warnings.append("WARNING: No swap limit support")
    if cg_version == 2 and not getattr(cgroups.CgroupV2, "devices_enforced", True):
        warnings.append("WARNING: cgroup v2: device access rules (--device, --device-cgroup-rule) are not enforced")
    return {
        "ID": "", "Containers": len(conts), "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": len(conts) - running - paused, "Images": n_images,
        "Driver": driver, "DriverStatus": [["Backing Filesystem", backing]],
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": str(cg_version),
        "Runtimes": runtimes, "DefaultRuntime": default_runtime(), "RuntimeVersions": versions,
        "SecurityOptions": ["name=seccomp,profile=builtin", *(["name=cgroupns"] if cg_version == 2 else [])],
        "KernelVersion": uname.release, "OperatingSystem": operating_system(), "OSVersion": _os_release("VERSION_ID"),
        "OSType": "linux", "Architecture": uname.machine, "NCPU": _ncpu(), "MemTotal": mem_total(),
        "Name": uname.nodename, "DockerRootDir": root, "DockyardRootDir": root,
        "Debug": bool(os.environ.get("DOCKYARD_DEBUG")), "IndexServerAddress": index,
        "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"],
                           "InsecureRegistries": list(reg.insecure_registries),
                           "Mirrors": [m if "://" in m else "https://" + m for m in reg.mirrors]},
        "ExperimentalBuild": False, "LiveRestoreEnabled": False, "ServerVersion": __version__,
        "Warnings": warnings,
    }


def backing_filesystem(path: str) -> str:
    """The filesystem under ``path`` as Docker names it (``extfs``, ``xfs``, ``btrfs``, ``tmpfs``...)."""
    fstype = _mount_fstype(path)
    return {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs"}.get(fstype, fstype or "<unknown>")


def _mount_fstype(path: str) -> str:
    from dockyard.rootpath import decode_mount_point

    target = os.path.realpath(path)
    best, fstype = -1, ""
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.readlines()
    except OSError:
        return ""
    for line in lines:
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        mnt = decode_mount_point(pre.split()[4])
        # The longest mount point above the path; of mounts on one point, the later one is on top.
        if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= best:
            best, fstype = len(mnt), post.split()[0]
    return fstype


def _os_release(key: str) -> str:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path) as f:
                for line in f:
                    k, _, v = line.strip().partition("=")
                    if k == key:
                        return v.strip().strip('"').strip("'")
        except OSError:
            continue
    return ""


def operating_system() -> str:
    return _os_release("PRETTY_NAME") or "Linux"


def mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _ncpu() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ---- system prune ---------------------------------------------------------------------------
#: BuildKit's default: cache unused for 48 hours goes in a plain prune (all of it with ``-a``).
BUILD_CACHE_KEEP_SECONDS = 48 * 3600


def system_prune(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "Remove unused data")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--volumes", action="store_true", help="Prune anonymous volumes")
    a = p.parse_args(argv)
    from dockyard.ops import containers as ops

    networks_mod = _optional_module("dockyard.ops.networks")
    if not a.force and sys.stdin.isatty():
        what = ["all stopped containers"]
        if networks_mod is not None:
            what.append("all networks not used by at least one container")
        if a.volumes:
            what.append("all anonymous volumes not used by at least one container")
        what.append("all images without at least one container associated to them" if a.all
                    else "all dangling images")
        what.append("all build cache" if a.all else "unused build cache")
        sys.stdout.write("WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in what)
                         + "\nAre you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    reclaimed = 0
    with engine() as eng:
        removed_containers: list[str] = []
        for c in ops.list_containers(eng):
            if c["state"].get("status") in ("exited", "created", "dead"):
                size = _tree_size(ops.container_dir(eng, c["id"]))
                ops.remove(eng, c)
                removed_containers.append(c["id"])
                reclaimed += size
        networks: list[str] = []
        if networks_mod is not None:
            if hasattr(networks_mod, "prune_networks"):
                networks = [str(n) for n in networks_mod.prune_networks(eng)]
            if hasattr(networks_mod, "sweep"):
                networks_mod.sweep(eng)  # what crashed containers left: endpoints, leases, NAT rules, veths
        volumes: list[str] = []
        if a.volumes:
            volumes_mod = _optional_module("dockyard.ops.volumes")
            if volumes_mod is not None:
                volumes, volume_bytes = volumes_mod.prune(eng)  # anonymous ones, as Docker since API 1.42
                reclaimed += volume_bytes
        cache_keys = prune_build_cache(eng, a.all)
        image_lines, image_bytes = eng.prune_images(a.all)
        reclaimed += image_bytes
    sections = [("Deleted Containers:", removed_containers), ("Deleted Networks:", networks),
                ("Deleted Volumes:", volumes), ("Deleted Images:", [f"{verb}: {what}" for verb, what in image_lines]),
                ("Deleted build cache objects:", cache_keys)]
    for title, items in sections:
        if items:
            print(title)
            print("\n".join(items))
            print()
    print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0


def _optional_module(name: str) -> Any:
    """``dockyard.ops.networks`` (``prune_networks``, ``sweep``) or ``dockyard.ops.volumes``
    (``prune``) where this build has them; None where it does not."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def prune_build_cache(eng: Any, everything: bool) -> list[str]:
    """Delete build cache rows: all (``-a``), else those older than 48 hours or naming a gone image."""
    return list(eng.db.prune_build_cache(None if everything else time.time() - BUILD_CACHE_KEEP_SECONDS))


def _tree_size(path: Path) -> int:
    """Bytes in the regular files under ``path``, not crossing into other filesystems (mounts)."""
    total = 0
    try:
        dev = os.lstat(path).st_dev
    except OSError:
        return 0
    for dirpath, dirnames, filenames in os.walk(path):
        keep = []
        for d in dirnames:
            try:
                if os.lstat(os.path.join(dirpath, d)).st_dev == dev:
                    keep.append(d)
            except OSError:
                pass
        dirnames[:] = keep
        for fn in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, fn))
            except OSError:
                continue
            if st.st_dev == dev and not os.path.islink(os.path.join(dirpath, fn)):
                total += st.st_size
    return total


# ---- helpers --------------------------------------------------------------------------------
def _kv(indent: int, pairs: list[tuple[str, Any]], width: int = 0) -> list[str]:
    """``Key:   value`` lines, values aligned as Docker's tabwriter does (at least ``width``)."""
    w = max([width - 1, *(len(k) + 1 for k, _ in pairs)])
    return [" " * indent + f"{k + ':':<{w}} {v}".rstrip() for k, v in pairs]


def _bool(v: bool) -> str:
    return "true" if v else "false"


def _print_format(fmt: str, data: dict[str, Any]) -> int:
    if fmt == "json":
        import json

        print(json.dumps(data))
        return 0
    from dockyard.cli.template import render

    print(render(fmt.replace("\\n", "\n").replace("\\t", "\t"), data))
    return 0

