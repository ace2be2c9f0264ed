"""Devices beyond ``--device``: GPUs (``--gpus``, CDI device names) as edits to an OCI spec.

:class:`SpecEdits` is what a feature adds to a container's ``config.json`` (device nodes with their
cgroup rules, bind mounts, environment, hooks, extra groups); :func:`apply_edits` applies it.

GPUs are resolved the way Docker with the NVIDIA Container Toolkit does:

* with a CDI spec for ``nvidia.com/gpu`` in ``/etc/cdi`` or ``/var/run/cdi`` (``nvidia-ctk cdi
  generate``; JSON, or YAML with PyYAML installed), the spec's ``containerEdits`` for the requested
  devices are applied: ``--gpus all`` is the ``all`` device (or every device), ``--gpus 2`` the first
  two, ``--gpus device=0,1`` those names; ``--device nvidia.com/gpu=all`` names any CDI device
  (pass those as a ``DeviceRequest(driver="cdi", device_ids=...)``, as Docker does);
* without one, the driver is discovered as ``nvidia-container-cli`` does: ``/dev/nvidia[0-9]*``,
  ``nvidiactl``, ``nvidia-uvm``, ``nvidia-uvm-tools``, ``nvidia-modeset``, ``/dev/dri/renderD*``;
  the driver's libraries for the requested capabilities (``utility,compute`` by default), found
  through ``ldconfig -p`` and the usual library directories, bind-mounted read-only at the same
  paths, with ``nvidia-smi`` and friends; ``NVIDIA_VISIBLE_DEVICES`` set.

Nothing here needs a GPU to be tested: every host path is relative to ``driver_root``/``dev_root``.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence

from dockyard.errors import InvalidArgument, RuntimeFailure
from dockyard.records import MutableRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from dockyard.runtime.runopts import DeviceRequest
    from dockyard.runtime.spec import HostDevice

DEFAULT_CDI_DIRS = ("/etc/cdi", "/var/run/cdi")
NVIDIA_GPU_KIND = "nvidia.com/gpu"

#: nvidia-ctk's options for the driver files it mounts.
RO_BIND = ["ro", "nosuid", "nodev", "bind"]


class SpecEdits(MutableRecord):
    """What a feature adds to an OCI spec (a CDI ``containerEdits``, resolved against the host)."""

    env: list[str]
    devices: list[HostDevice]
    mounts: list[dict[str, Any]]
    hooks: dict[str, list[dict[str, Any]]]
    additional_gids: list[int]
    _fields = ("env", "devices", "mounts", "hooks", "additional_gids")

    def __init__(self, env: list[str] | None = None, devices: list[HostDevice] | None = None,
                 mounts: list[dict[str, Any]] | None = None, hooks: dict[str, list[dict[str, Any]]] | None = None,
                 additional_gids: list[int] | None = None) -> None:
        self.env = [] if env is None else env
        self.devices = [] if devices is None else devices
        self.mounts = [] if mounts is None else mounts
        self.hooks = {} if hooks is None else hooks
        self.additional_gids = [] if additional_gids is None else additional_gids

    def extend(self, other: SpecEdits) -> SpecEdits:
        self.env.extend(other.env)
        self.devices.extend(other.devices)
        self.mounts.extend(other.mounts)
        for phase, hooks in other.hooks.items():
            self.hooks.setdefault(phase, []).extend(hooks)
        self.additional_gids.extend(other.additional_gids)
        return self

    def __bool__(self) -> bool:
        return bool(self.env or self.devices or self.mounts or self.hooks or self.additional_gids)


def apply_edits(spec: dict[str, Any], edits: SpecEdits) -> None:
    """Apply ``edits`` to an OCI spec in place.

    Device nodes go to ``linux.devices`` (one per container path, the edit winning) with an allow
    rule each in ``linux.resources.devices``; mounts are appended (a mount on a destination the spec
    already mounts replaces it); env entries replace or append; hooks are appended per phase; gids
    are added to ``process.user.additionalGids``.
    """
    from dockyard.runtime.spec import replace_or_append_env

    process = spec.setdefault("process", {})
    if edits.env:
        process["env"] = replace_or_append_env(process.get("env") or [], edits.env)
    if edits.additional_gids:
        user = process.setdefault("user", {"uid": 0, "gid": 0})
        gids = list(user.get("additionalGids") or [])
        user["additionalGids"] = list(dict.fromkeys([*gids, *edits.additional_gids]))
    linux = spec.setdefault("linux", {})
    if edits.devices:
        new_paths = {d.path for d in edits.devices}
        devs = [d for d in linux.get("devices") or [] if d.get("path") not in new_paths]
        seen: set[str] = set()
        for d in edits.devices:
            if d.path in seen:
                continue
            seen.add(d.path)
            devs.append(d.to_oci())
        linux["devices"] = devs
        rules = linux.setdefault("resources", {}).setdefault("devices", [])
        for d in edits.devices:
            rule = d.cgroup_rule()
            if rule not in rules:
                rules.append(rule)
    if edits.mounts:
        dests = {os.path.normpath(m["destination"]) for m in edits.mounts}
        mounts = [m for m in spec.get("mounts") or [] if os.path.normpath(m.get("destination", "")) not in dests]
        seen_m: set[str] = set()
        for m in edits.mounts:
            d = os.path.normpath(m["destination"])
            if d not in seen_m:
                seen_m.add(d)
                mounts.append(dict(m))
        spec["mounts"] = mounts
    if edits.hooks:
        hooks = spec.setdefault("hooks", {})
        for phase, items in edits.hooks.items():
            hooks.setdefault(phase, []).extend(dict(h) for h in items)


# ---- host device nodes --------------------------------------------------------------------------
def host_device(host_path: str, container_path: str | None = None, permissions: str = "rwm") -> HostDevice:
    """The device node at ``host_path`` as it will appear at ``container_path`` (default: the same)."""
    from dockyard.runtime.spec import device_from_path

    try:
        dev = device_from_path(host_path, container_path or host_path, permissions)
    except OSError as e:
        raise RuntimeFailure(f"error gathering device information for {host_path}: {e.strerror or e}")
    if dev is None:
        raise RuntimeFailure(f"{host_path} is not a device node")
    return dev


def split_cdi_devices(values: Iterable[str]) -> tuple[list[str], list[str]]:
    """``--device`` values -> (plain ``HOST[:CONTAINER][:PERMS]`` values, CDI names ``vendor/class=name``)."""
    plain: list[str] = []
    cdi: list[str] = []
    for v in values:
        (cdi if is_cdi_name(v) else plain).append(v)
    return plain, cdi


_CDI_NAME = re.compile(r"([a-zA-Z0-9][a-zA-Z0-9.-]*/[a-zA-Z0-9][a-zA-Z0-9_.-]*)=([a-zA-Z0-9][a-zA-Z0-9_.:-]*)")


def is_cdi_name(value: str) -> bool:
    """A fully-qualified CDI device name (``nvidia.com/gpu=all``), as opposed to a device path."""
    return not value.startswith("/") and _CDI_NAME.fullmatch(value) is not None


# ---- CDI ----------------------------------------------------------------------------------------
class CdiSpec(MutableRecord):
    """One CDI spec file: its kind, top-level edits and named devices' edits (raw JSON objects)."""

    path: str
    kind: str
    version: str
    edits: dict[str, Any]
    devices: dict[str, dict[str, Any]]
    _fields = ("path", "kind", "version", "edits", "devices")

    def __init__(self, path: str, kind: str, version: str, edits: dict[str, Any],
                 devices: dict[str, dict[str, Any]]) -> None:
        self.path, self.kind, self.version, self.edits, self.devices = path, kind, version, edits, devices


def _load_yaml(text: str, path: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise InvalidArgument(
            f"failed to load CDI spec {path}: reading YAML needs PyYAML (pip install PyYAML), "
            "or generate the spec as JSON (nvidia-ctk cdi generate --format=json)"
        )
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidArgument(f"failed to load CDI spec {path}: {e}")


def parse_cdi_spec(text: str, path: str = "<cdi>") -> CdiSpec:
    """A CDI spec from its JSON or YAML text (YAML is tried only if the text is not JSON)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = _load_yaml(text, path)
    if not isinstance(data, dict):
        raise InvalidArgument(f"failed to load CDI spec {path}: not an object")
    version = str(data.get("cdiVersion") or "")
    kind = str(data.get("kind") or "")
    if not version:
        raise InvalidArgument(f"failed to load CDI spec {path}: missing cdiVersion")
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9.-]*/[a-zA-Z0-9][a-zA-Z0-9_.-]*", kind):
        raise InvalidArgument(f"failed to load CDI spec {path}: invalid kind {kind!r}")
    devices: dict[str, dict[str, Any]] = {}
    for d in data.get("devices") or []:
        name = str((d or {}).get("name") or "")
        if not name:
            raise InvalidArgument(f"failed to load CDI spec {path}: a device has no name")
        devices[name] = dict(d.get("containerEdits") or {})
    if not devices:
        raise InvalidArgument(f"failed to load CDI spec {path}: no devices defined")
    return CdiSpec(path, kind, version, dict(data.get("containerEdits") or {}), devices)


def load_cdi_specs(dirs: Sequence[str] = DEFAULT_CDI_DIRS) -> dict[str, list[CdiSpec]]:
    """Every readable spec in ``dirs`` (``*.json``, ``*.yaml``, ``*.yml``), by kind.

    Later directories take priority (``/var/run/cdi`` over ``/etc/cdi``), as in the CDI registry: a
    device defined in several specs resolves to the last one.  A broken file is skipped.
    """
    out: dict[str, list[CdiSpec]] = {}
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names:
            if not n.endswith((".json", ".yaml", ".yml")):
                continue
            p = os.path.join(d, n)
            try:
                with open(p, encoding="utf-8") as f:
                    spec = parse_cdi_spec(f.read(), p)
            except (OSError, InvalidArgument):
                continue
            out.setdefault(spec.kind, []).append(spec)
    return out


def _natural(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.isdigit() else (1, name)


def _cdi_device(specs: dict[str, list[CdiSpec]], kind: str, name: str) -> tuple[CdiSpec, dict[str, Any]] | None:
    for spec in reversed(specs.get(kind, [])):
        if name in spec.devices:
            return spec, spec.devices[name]
    return None


def cdi_edits(names: Sequence[str], *, cdi_dirs: Sequence[str] = DEFAULT_CDI_DIRS,
              specs: dict[str, list[CdiSpec]] | None = None) -> SpecEdits:
    """The edits for fully-qualified CDI device names (``nvidia.com/gpu=0``); each spec's top-level
    edits are applied once, before its devices'."""
    specs = load_cdi_specs(cdi_dirs) if specs is None else specs
    missing = []
    chosen: list[tuple[CdiSpec, dict[str, Any]]] = []
    for n in names:
        m = _CDI_NAME.fullmatch(n)
        found = _cdi_device(specs, m.group(1), m.group(2)) if m else None
        if found is None:
            missing.append(n)
        else:
            chosen.append(found)
    if missing:
        raise RuntimeFailure(f"unresolvable CDI devices {', '.join(missing)}")
    out = SpecEdits()
    done: set[str] = set()
    for spec, _ in chosen:
        if spec.path not in done:
            done.add(spec.path)
            out.extend(_from_container_edits(spec.edits, spec.path))
    for spec, dev_edits in chosen:
        out.extend(_from_container_edits(dev_edits, spec.path))
    return out


def _from_container_edits(ce: Mapping[str, Any], origin: str) -> SpecEdits:
    """CDI ``containerEdits`` -> :class:`SpecEdits` (device nodes completed from the host)."""
    from dockyard.runtime.spec import HostDevice

    out = SpecEdits()
    out.env = [str(e) for e in ce.get("env") or []]
    for dn in ce.get("deviceNodes") or []:
        path = str(dn.get("path") or "")
        if not path.startswith("/"):
            raise InvalidArgument(f"CDI spec {origin}: invalid device node path {path!r}")
        host = str(dn.get("hostPath") or path)
        kind, major, minor = dn.get("type"), dn.get("major"), dn.get("minor")
        mode, uid, gid = dn.get("fileMode"), dn.get("uid"), dn.get("gid")
        try:
            st = os.stat(host)
        except OSError as e:
            if kind is None or major is None:
                raise RuntimeFailure(f"CDI spec {origin}: failed to stat CDI host device {host!r}: "
                                     f"{e.strerror or e}")
        else:
            host_kind = "b" if stat.S_ISBLK(st.st_mode) else "c" if stat.S_ISCHR(st.st_mode) else (
                "p" if stat.S_ISFIFO(st.st_mode) else "")
            if not host_kind:
                raise RuntimeFailure(f"CDI spec {origin}: {host} is not a device node")
            if kind not in (None, "", host_kind) and not (kind == "u" and host_kind == "c"):
                raise RuntimeFailure(f"CDI spec {origin}: CDI device ({path}, {host}): type {kind} != {host_kind}")
            kind = kind or host_kind
            if host_kind != "p":
                major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
            if mode is None:
                mode = stat.S_IMODE(st.st_mode)
        out.devices.append(HostDevice(
            path=path, type=str(kind), major=int(major or 0), minor=int(minor or 0),
            file_mode=int(mode) if mode is not None else 0o666, uid=int(uid or 0), gid=int(gid or 0),
            permissions=str(dn.get("permissions") or "rwm")))
    for m in ce.get("mounts") or []:
        options = [str(o) for o in m.get("options") or []]
        mtype = str(m.get("type") or "")
        if not mtype and (not options or any(o in ("bind", "rbind") for o in options)):
            mtype = "bind"
        if mtype == "bind" and not any(o in ("bind", "rbind") for o in options):
            options.append("rbind")
        out.mounts.append({"destination": str(m["containerPath"]), "type": mtype,
                           "source": str(m["hostPath"]), "options": options})
    for h in ce.get("hooks") or []:
        phase = str(h.get("hookName") or "")
        if phase not in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                         "poststop"):
            raise InvalidArgument(f"CDI spec {origin}: invalid hook name {phase!r}")
        hook: dict[str, Any] = {"path": str(h["path"])}
        for k in ("args", "env", "timeout"):
            if h.get(k) is not None:
                hook[k] = h[k]
        out.hooks.setdefault(phase, []).append(hook)
    out.additional_gids = [int(g) for g in ce.get("additionalGids") or ce.get("additionalGIDs") or []]
    return out


# ---- discovery without CDI (nvidia-container-cli's way) ----------------------------------------
#: Driver libraries per NVIDIA_DRIVER_CAPABILITIES value (nvidia-container-cli's lists).
DRIVER_LIBRARIES: dict[str, tuple[str, ...]] = {
    "utility": ("libnvidia-ml.so", "libnvidia-cfg.so"),
    "compute": ("libcuda.so", "libcudadebugger.so", "libnvidia-opencl.so", "libnvidia-gpucomp.so",
                "libnvidia-ptxjitcompiler.so", "libnvidia-fatbinaryloader.so", "libnvidia-allocator.so",
                "libnvidia-compiler.so", "libnvidia-nvvm.so", "libnvidia-pkcs11.so",
                "libnvidia-pkcs11-openssl3.so"),
    "video": ("libvdpau_nvidia.so", "libnvidia-encode.so", "libnvidia-opticalflow.so", "libnvcuvid.so"),
    "graphics": ("libnvidia-eglcore.so", "libnvidia-glcore.so", "libnvidia-tls.so", "libnvidia-glsi.so",
                 "libnvidia-fbc.so", "libnvidia-ifr.so", "libnvidia-rtcore.so", "libnvoptix.so",
                 "libGLX_nvidia.so", "libEGL_nvidia.so", "libGLESv2_nvidia.so", "libGLESv1_CM_nvidia.so",
                 "libnvidia-glvkspirv.so", "libnvidia-egl-gbm.so", "libnvidia-egl-wayland.so"),
    "ngx": ("libnvidia-ngx.so",),
    "display": (),
    "compat32": (),
}
DRIVER_BINARIES: dict[str, tuple[str, ...]] = {
    "utility": ("nvidia-smi", "nvidia-debugdump", "nvidia-persistenced"),
    "compute": ("nvidia-cuda-mps-control", "nvidia-cuda-mps-server"),
}
DEFAULT_CAPABILITIES = ("utility", "compute")
_CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
_BIN_DIRS = ("usr/bin", "usr/sbin", "bin", "sbin", "usr/local/bin", "usr/local/sbin")


def _lib_dirs() -> tuple[str, ...]:
    import platform

    machine = platform.machine()
    triplet = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu",
               "ppc64le": "powerpc64le-linux-gnu"}.get(machine, f"{machine}-linux-gnu")
    return (f"usr/lib/{triplet}", f"usr/lib/{triplet}/nvidia/current", f"lib/{triplet}", "usr/lib64", "lib64",
            "usr/lib", "lib", "usr/local/nvidia/lib64", "usr/local/lib")


def _format_caps(caps: Sequence[Sequence[str]]) -> str:
    return "[" + " ".join("[" + " ".join(c) + "]" for c in caps) + "]"


def no_driver_error(req: DeviceRequest) -> RuntimeFailure:
    return RuntimeFailure(f'could not select device driver "{req.driver}" with capabilities: '
                          f"{_format_caps(req.capabilities)}")


def _under(root: str, path: str) -> str:
    """``path`` (a host path under ``root``) as the path the container sees."""
    return "/" + os.path.relpath(path, root) if root not in ("", "/") else path


def _ldconfig_dirs(driver_root: str, ldconfig: str | None, prefixes: Sequence[str]) -> list[str]:
    if not ldconfig:
        return []
    import shutil
    import subprocess

    ldconfig = shutil.which(ldconfig) or next(
        (p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.access(p, os.X_OK)), ldconfig)
    cmd = [ldconfig, "-p"] if driver_root in ("", "/") else [ldconfig, "-r", driver_root, "-p"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    dirs: list[str] = []
    for line in out.splitlines():
        name, arrow, path = line.strip().partition(" => ")
        flags = name.partition("(")[2].partition(")")[0]
        if not arrow or flags == "libc6":  # a 32-bit library on a 64-bit host
            continue
        base = os.path.basename(path)
        if any(base == p or base.startswith(p + ".") for p in prefixes):
            d = os.path.dirname(path)
            if driver_root not in ("", "/"):
                d = os.path.join(driver_root, d.lstrip("/"))
            if d not in dirs:
                dirs.append(d)
    return dirs


def find_driver_files(prefixes: Sequence[str], *, driver_root: str = "/",
                      ldconfig: str | None = "ldconfig") -> list[tuple[str, str]]:
    """The driver's library files (every ``NAME.so*`` entry, links included) as (host source, container path).

    Directories come from ``ldconfig -p`` and the usual library directories under ``driver_root``;
    a directory reached twice (``/lib`` -> ``/usr/lib``) is searched once.  The source is the file a
    link resolves to, so the container gets the content at every name.
    """
    root = os.path.realpath(driver_root or "/")
    dirs = _ldconfig_dirs(root, ldconfig, prefixes) + [os.path.join(root, d) for d in _lib_dirs()]
    seen_dirs: set[str] = set()
    out: list[tuple[str, str]] = []
    seen_dest: set[str] = set()
    for d in dirs:
        real = os.path.realpath(d)
        inside = real == root or real.startswith(root.rstrip("/") + "/")
        if real in seen_dirs or not inside or not os.path.isdir(real):
            continue
        seen_dirs.add(real)
        try:
            names = sorted(os.listdir(real))
        except OSError:
            continue
        for n in names:
            if not any(n == p or n.startswith(p + ".") for p in prefixes):
                continue
            p = os.path.join(real, n)
            src = os.path.realpath(p)
            if not os.path.isfile(src):
                continue
            dest = _under(root, p)
            if dest not in seen_dest:
                seen_dest.add(dest)
                out.append((src, dest))
    return out


def find_driver_binaries(names: Sequence[str], *, driver_root: str = "/") -> list[tuple[str, str]]:
    root = os.path.realpath(driver_root or "/")
    out: list[tuple[str, str]] = []
    for n in names:
        for d in _BIN_DIRS:
            p = os.path.join(root, d, n)
            if os.path.isfile(p) and os.access(p, os.X_OK):
                out.append((os.path.realpath(p), _under(root, p)))
                break
    return out


def _gpu_nodes(dev_root: str) -> dict[int, str]:
    out: dict[int, str] = {}
    try:
        names = os.listdir(dev_root)
    except OSError:
        return out
    for n in names:
        m = re.fullmatch(r"nvidia(\d+)", n)
        if m and stat.S_ISCHR(os.stat(os.path.join(dev_root, n)).st_mode):
            out[int(m.group(1))] = os.path.join(dev_root, n)
    return dict(sorted(out.items()))


def _uuid_indices(driver_root: str) -> dict[str, int]:
    """GPU UUID -> index, from the driver's nvidia-smi (empty when it cannot be asked)."""
    import subprocess

    found = find_driver_binaries(["nvidia-smi"], driver_root=driver_root)
    if not found:
        return {}
    try:
        out = subprocess.run([found[0][0], "--query-gpu=index,uuid", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    res = {}
    for line in out.splitlines():
        idx, _, uuid = line.partition(",")
        if idx.strip().isdigit():
            res[uuid.strip()] = int(idx)
    return res


def _capabilities(req: DeviceRequest, image_env: Sequence[str]) -> list[str]:
    caps = {c for group in req.capabilities for c in group} - {"gpu"}
    if not caps:
        for e in image_env:
            k, _, v = e.partition("=")
            if k == "NVIDIA_DRIVER_CAPABILITIES" and v:
                caps = {c.strip() for c in v.split(",") if c.strip()}
    if not caps:
        caps = set(DEFAULT_CAPABILITIES)
    if "all" in caps:
        caps = set(DRIVER_LIBRARIES)
    return sorted(caps)


def _discover(req: DeviceRequest, *, driver_root: str, dev_root: str, ldconfig: str | None,
              image_env: Sequence[str]) -> SpecEdits:
    gpus = _gpu_nodes(dev_root)
    ctl = os.path.join(dev_root, "nvidiactl")
    if not gpus or not os.path.exists(ctl):
        raise no_driver_error(req)
    if req.device_ids:
        uuids: dict[str, int] | None = None
        indices = []
        for i in req.device_ids:
            if i.isdigit():
                idx = int(i)
            else:
                uuids = _uuid_indices(driver_root) if uuids is None else uuids
                if i not in uuids:
                    raise RuntimeFailure(f"nvidia-container-cli: device error: {i}: unknown device")
                idx = uuids[i]
            if idx not in gpus:
                raise RuntimeFailure(f"nvidia-container-cli: device error: {i}: unknown device")
            indices.append(idx)
        visible = ",".join(req.device_ids)
    elif req.count < 0:
        indices = list(gpus)
        visible = "all"
    else:
        indices = list(range(req.count))
        for idx in indices:
            if idx not in gpus:
                raise RuntimeFailure(f"nvidia-container-cli: device error: {idx}: unknown device")
        visible = ",".join(str(i) for i in indices)
    caps = _capabilities(req, image_env)
    prefixes = [p for c in caps for p in DRIVER_LIBRARIES.get(c, ())]
    libs = find_driver_files(prefixes, driver_root=driver_root, ldconfig=ldconfig) if prefixes else []
    if not find_driver_files(("libnvidia-ml.so", "libcuda.so"), driver_root=driver_root, ldconfig=ldconfig):
        raise no_driver_error(req)

    out = SpecEdits()
    nodes = [gpus[i] for i in dict.fromkeys(indices)]
    nodes += [os.path.join(dev_root, n) for n in _CONTROL_NODES if os.path.exists(os.path.join(dev_root, n))]
    dri = os.path.join(dev_root, "dri")
    if os.path.isdir(dri):
        nodes += sorted(os.path.join(dri, n) for n in os.listdir(dri) if n.startswith("renderD"))
    for host in nodes:
        out.devices.append(host_device(host, "/dev/" + os.path.relpath(host, dev_root)))
    for src, dest in libs:
        out.mounts.append({"destination": dest, "type": "bind", "source": src, "options": list(RO_BIND)})
    bins = [b for c in caps for b in DRIVER_BINARIES.get(c, ())]
    for src, dest in find_driver_binaries(bins, driver_root=driver_root):
        out.mounts.append({"destination": dest, "type": "bind", "source": src, "options": list(RO_BIND)})
    if "utility" in caps:
        sock = os.path.join(os.path.realpath(driver_root or "/"), "run/nvidia-persistenced/socket")
        if os.path.exists(sock):
            out.mounts.append({"destination": "/run/nvidia-persistenced/socket", "type": "bind", "source": sock,
                               "options": ["ro", "nosuid", "nodev", "bind", "noexec"]})
    out.env.append(f"NVIDIA_VISIBLE_DEVICES={visible}")
    return out


def _cdi_names_for(req: DeviceRequest, specs: dict[str, list[CdiSpec]]) -> list[str] | None:
    """A ``--gpus`` request as names of the ``nvidia.com/gpu`` CDI kind (None when there is no such spec)."""
    defined: dict[str, None] = {}
    for spec in specs.get(NVIDIA_GPU_KIND, []):
        defined.update(dict.fromkeys(spec.devices))
    if not defined:
        return None
    if req.device_ids:
        names = list(req.device_ids)
    elif req.count < 0:
        names = ["all"] if "all" in defined else sorted((n for n in defined if n != "all"), key=_natural)
    else:
        indexed = sorted((n for n in defined if n.isdigit()), key=_natural) or sorted(
            (n for n in defined if n != "all"), key=_natural)
        if req.count > len(indexed):
            raise RuntimeFailure(f"unresolvable CDI devices {NVIDIA_GPU_KIND}={len(indexed)}")
        names = indexed[: req.count]
    return [f"{NVIDIA_GPU_KIND}={n}" for n in names]


def gpu_edits(requests: Sequence[DeviceRequest], *, cdi_dirs: Sequence[str] = DEFAULT_CDI_DIRS,
              driver_root: str = "/", dev_root: str | None = None, ldconfig: str | None = "ldconfig",
              image_env: Sequence[str] = ()) -> SpecEdits:
    """``--gpus`` (and CDI ``--device`` names as ``DeviceRequest(driver="cdi")``) -> spec edits.

    ``dev_root`` defaults to ``driver_root``/dev; ``image_env`` is the container's environment, read
    for ``NVIDIA_DRIVER_CAPABILITIES``.  Raises ``RuntimeFailure`` (exit 125) with Docker's
    ``could not select device driver "" with capabilities: [[gpu]]`` when there is no GPU.
    """
    out = SpecEdits()
    if not requests:
        return out
    specs = load_cdi_specs(cdi_dirs)
    dev_root = dev_root or os.path.join(driver_root or "/", "dev")
    for req in requests:
        if req.driver == "cdi":
            out.extend(cdi_edits(list(req.device_ids), specs=specs))
            continue
        if req.driver not in ("", "nvidia"):
            raise no_driver_error(req)
        names = _cdi_names_for(req, specs)
        if names is not None:
            out.extend(cdi_edits(names, specs=specs))
        else:
            out.extend(_discover(req, driver_root=driver_root, dev_root=dev_root, ldconfig=ldconfig,
                                 image_env=image_env))
    _dedupe(out)
    return out


def _dedupe(e: SpecEdits) -> None:
    seen_d: set[str] = set()
    devs = []
    for d in e.devices:
        if d.path not in seen_d:
            seen_d.add(d.path)
            devs.append(d)
    e.devices = devs
    seen_m: set[str] = set()
    mounts = []
    for m in e.mounts:
        if m["destination"] not in seen_m:
            seen_m.add(m["destination"])
            mounts.append(m)
    e.mounts = mounts


def cdi_request(names: Sequence[str]) -> DeviceRequest:
    """CDI ``--device`` names as the ``DeviceRequest`` Docker makes of them."""
    from dockyard.runtime.runopts import DeviceRequest

    return DeviceRequest(driver="cdi", count=0, device_ids=tuple(names), capabilities=())


def device_paths(edits: SpecEdits) -> list[str]:
    """The container paths of the nodes an edit adds (for messages and tests)."""
    return [d.path for d in edits.devices]
