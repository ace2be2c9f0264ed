"""``docker run`` options -> an OCI runtime ``config.json``, as Docker would write it.

:func:`build_spec` is a pure function: everything it needs from the host or from the container's
filesystem (``/etc/passwd`` text, device numbers, the init binary's path, namespace paths of
another container...) is an argument.  It reproduces moby's ``oci.DefaultLinuxSpec()`` plus the
``With*`` options of ``daemon/oci_linux.go``, with the config merge of ``daemon/create.go`` and
``container.CreateDaemonEnvironment``.  The impure helpers the engine needs to fill those
arguments (reading ``/dev``, stat-ing ``--device`` paths) are at the end of this module.

Deliberate differences from moby's output, all without effect on what runs:

* zero values moby writes but runc treats as "unset" are left out (``cpu.shares: 0``,
  ``blockIO.weight: 0``, ``pids`` when unlimited, ``terminal: false`` is kept as a boolean);
* duplicate capabilities / additional gids are removed (the kernel sees the same sets);
* a host-network container has no ``network`` namespace entry (moby points it at the host's).
"""

from __future__ import annotations

import os
import stat

from dockyard.errors import InvalidArgument
from dockyard.records import MutableRecord, Record
from dockyard.runtime import seccomp_default
from dockyard.runtime.runopts import (
    ALL_CAPABILITIES,
    CAPABILITY_NAMES,
    CAPABILITY_NUMBERS,
    PROPAGATION_MODES,
    DeviceMapping,
    Mount,
    RunOptions,
    cgroup_rule_groups,
    cpus_to_cfs,
    is_go_int,
    parse_cap,
    parse_security_opt,
    validate_cgroupns_mode,
    validate_ipc_mode,
    validate_pid_mode,
    validate_tmpfs_options,
    validate_uts_mode,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

OCI_VERSION = "1.1.0"

#: PATH for containers whose image does not set one (moby's ``oci.DefaultPathEnv``).
DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Docker's default capability set (moby ``oci/caps/defaults.go``): CapEff 00000000a80425fb.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

#: Paths masked from the container (moby's ``oci.DefaultLinuxSpec``; ``HostConfig.MaskedPaths``).
DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

#: Paths made read-only in the container.
DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

#: Docker's default ``/dev/shm`` size (64 MiB).
DEFAULT_SHM_SIZE = 64 * 1024 * 1024

#: Smallest ``--memory`` the daemon accepts (6 MiB).
MIN_MEMORY = 6 * 1024 * 1024

#: Where ``--init`` puts docker-init inside the container.
INIT_PATH_IN_CONTAINER = "/sbin/docker-init"


def _default_mounts() -> list[dict[str, Any]]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["ro", "nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777"],
        },
    ]


def _default_device_rules() -> list[dict[str, Any]]:
    """moby's default ``linux.resources.devices`` (the runtime appends runc's standard allow-list)."""

    def allow(major: int, minor: int) -> dict[str, Any]:
        return {"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}

    return [
        {"allow": False, "access": "rwm"},
        allow(1, 5),
        allow(1, 3),
        allow(1, 9),
        allow(1, 8),
        allow(5, 0),
        allow(5, 1),
        {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
    ]


# --- capabilities ---------------------------------------------------------------------------------


def all_capabilities(last_cap: int = 40) -> list[str]:
    """Every capability the kernel knows (``/proc/sys/kernel/cap_last_cap``), in number order."""
    return ["CAP_" + n for n in CAPABILITY_NAMES[: last_cap + 1]]


def tweak_capabilities(
    cap_add: Iterable[str] = (),
    cap_drop: Iterable[str] = (),
    *,
    privileged: bool = False,
    basics: Sequence[str] = DEFAULT_CAPABILITIES,
    last_cap: int = 40,
) -> list[str]:
    """moby's ``caps.TweakCapabilities``: the capability list of a container.

    ``--privileged`` gives every capability; ``--cap-add ALL`` gives every capability but the
    dropped ones; ``--cap-drop ALL`` gives exactly the added ones; otherwise the defaults minus
    the dropped plus the added.  Names are normalized (``net_admin`` -> ``CAP_NET_ADMIN``).
    """
    everything = all_capabilities(last_cap)
    if privileged:
        return everything
    adds, drops = list(cap_add), list(cap_drop)
    if not adds and not drops:
        return list(basics)

    def normalize(caps: list[str]) -> list[str]:
        out = []
        for c in caps:
            n = parse_cap(c)
            if n != ALL_CAPABILITIES and n not in everything:
                raise InvalidArgument(f'unknown capability: "{n}"')
            out.append(n)
        return out

    drop, add = normalize(drops), normalize(adds)
    if ALL_CAPABILITIES in add:
        caps = [c for c in everything if c not in drop]
    elif ALL_CAPABILITIES in drop:
        caps = [c for c in add if c != ALL_CAPABILITIES]
    else:
        caps = [c for c in basics if c not in drop] + add
    return list(dict.fromkeys(caps))


def capability_mask(caps: Iterable[str]) -> int:
    """The kernel bitmask of a capability list (``CapEff`` in ``/proc/PID/status``)."""
    mask = 0
    for c in caps:
        mask |= 1 << CAPABILITY_NUMBERS[c]
    return mask


# --- users ----------------------------------------------------------------------------------------

_MAX_ID = 2**31 - 1


def _atoi(s: str) -> int | None:
    """Go's ``strconv.Atoi``: optional sign and decimal digits only (no ``re``: run's path)."""
    return int(s) if is_go_int(s) else None


def _parse_db(text: str | None, nfields: int) -> list[list[str]]:
    rows = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line:
            continue
        parts = line.split(":")
        rows.append(parts + [""] * (nfields - len(parts)))
    return rows


def _int_field(s: str) -> int:
    v = _atoi(s)
    return v if v is not None else 0


def _range_error() -> InvalidArgument:
    return InvalidArgument(f"uids and gids must be in range 0-{_MAX_ID}")


def resolve_user(
    user_spec: str,
    passwd_text: str | None,
    group_text: str | None,
    group_add: Sequence[str] = (),
) -> tuple[int, int, list[int]]:
    """``--user`` -> ``(uid, gid, additional_gids)`` against the container's passwd/group files.

    runc's ``user.GetExecUser`` plus moby's ``getUser``: ``""`` is root; a name must exist in
    ``passwd_text`` (``None`` = no /etc/passwd); a number need not; ``user:group`` sets the primary
    group explicitly (then no supplementary groups are looked up), otherwise the user's groups
    from ``group_text`` are added.  ``additional_gids`` starts with the primary gid, as Docker's.
    """
    user_arg, _, group_arg = user_spec.partition(":")
    group_arg = group_arg.split(":", 1)[0]
    uid_arg, gid_arg = _atoi(user_arg), _atoi(group_arg)
    uid, gid = 0, 0
    sgids: list[int] = []

    users = [
        u
        for u in _parse_db(passwd_text, 7)
        if (
            _int_field(u[2]) == 0
            if user_arg == ""
            else (uid_arg == _int_field(u[2]) if uid_arg is not None else u[0] == user_arg)
        )
    ]
    matched_name = ""
    if users:
        matched_name = users[0][0]
        uid, gid = _int_field(users[0][2]), _int_field(users[0][3])
    elif user_arg != "":
        if uid_arg is None:
            raise InvalidArgument(f"unable to find user {user_arg}: no matching entries in passwd file")
        uid = uid_arg
        if not 0 <= uid <= _MAX_ID:
            raise _range_error()

    groups_db = _parse_db(group_text, 4)
    if group_arg != "" or matched_name != "":
        if group_arg == "":
            groups = [g for g in groups_db if matched_name in g[3].split(",")]
        elif gid_arg is not None:
            groups = [g for g in groups_db if _int_field(g[2]) == gid_arg]
        else:
            groups = [g for g in groups_db if g[0] == group_arg]
        if group_arg != "":
            if groups:
                gid = _int_field(groups[0][2])
            else:
                if gid_arg is None:
                    raise InvalidArgument(
                        f"unable to find group {group_arg}: no matching entries in group file"
                    )
                gid = gid_arg
                if not 0 <= gid <= _MAX_ID:
                    raise _range_error()
        else:
            sgids = [_int_field(g[2]) for g in groups]

    extra: list[int] = []
    for ag in group_add:
        found = [g for g in groups_db if g[0] == ag or str(_int_field(g[2])) == ag]
        if found:
            extra.append(_int_field(found[0][2]))
            continue
        n = _atoi(ag)
        if n is None:
            raise InvalidArgument(f"Unable to find group {ag}: no matching entries in group file")
        if not 0 <= n <= _MAX_ID:
            raise _range_error()
        extra.append(n)
    return uid, gid, list(dict.fromkeys([gid, *sgids, *extra]))


# --- config merge (daemon/create.go) --------------------------------------------------------------


def _env_key(e: str) -> str:
    return e.partition("=")[0]


def replace_or_append_env(defaults: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """moby's ``ReplaceOrAppendEnvValues``: ``K=V`` replaces or appends, a bare ``K`` removes."""
    env = list(defaults)
    index = {_env_key(e): i for i, e in enumerate(env)}
    for value in overrides:
        if "=" not in value:
            if value in index:
                env[index[value]] = ""
            continue
        key = _env_key(value)
        if key in index:
            env[index[key]] = value
        else:
            index[key] = len(env)
            env.append(value)
    return [e for e in env if e != ""]


def _merge_env(user_env: Sequence[str], image_env: Sequence[str]) -> list[str]:
    """daemon ``merge()``: the user's env, then the image's entries whose key the user did not name."""
    if not user_env:
        return list(image_env)
    keys = {_env_key(e) for e in user_env}
    return list(user_env) + [e for e in image_env if _env_key(e) not in keys]


def _str_list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    return [str(x) for x in v]


def _merge_command(img: Mapping[str, Any], opts: RunOptions) -> tuple[list[str], list[str]]:
    """daemon ``merge()`` + ``mergeAndVerifyConfig``: the effective ``(entrypoint, cmd)``."""
    entrypoint = None if opts.entrypoint is None else list(opts.entrypoint)
    cmd = list(opts.cmd)
    if not entrypoint:
        if not cmd:
            cmd = _str_list(img.get("Cmd"))
        if entrypoint is None:
            entrypoint = _str_list(img.get("Entrypoint"))
    if entrypoint == [""]:
        entrypoint = []
    return entrypoint, cmd


def command_args(image_config: Mapping[str, Any] | None, opts: RunOptions) -> list[str]:
    """Docker's entrypoint/cmd rules -> ``process.args`` (without ``--init``).

    ``--entrypoint`` replaces the image's ENTRYPOINT and drops the image's CMD; ``--entrypoint ""``
    (``[""]``) clears both; a command after the image replaces CMD.
    """
    entrypoint, cmd = _merge_command(image_config or {}, opts)
    if not entrypoint and not cmd:
        raise InvalidArgument("no command specified")
    return entrypoint + cmd


def container_hostname(opts: RunOptions, container_id: str, host_hostname: str | None = None) -> str:
    """``--hostname``, else the host's name for ``--network host``, else the id's first 12 chars."""
    if opts.hostname:
        return opts.hostname
    if opts.network == "host" and host_hostname:
        return host_hostname
    return container_id[:12]


def container_env(image_config: Mapping[str, Any] | None, opts: RunOptions, hostname: str) -> list[str]:
    """The process environment: ``PATH``, ``HOSTNAME``, ``TERM`` (with a tty), image and user env.

    As moby: the user's ``-e`` entries win over the image's; a bare ``K`` removes ``K``; entries
    for ``PATH``/``HOSTNAME``/``TERM`` replace the defaults in place, the rest follow in order.
    """
    config_env = _merge_env(opts.env, _str_list((image_config or {}).get("Env")))
    env = ["PATH=" + DEFAULT_PATH_ENV, "HOSTNAME=" + hostname]
    if opts.tty:
        env.append("TERM=xterm")
    return replace_or_append_env(env, config_env)


def working_dir(image_config: Mapping[str, Any] | None, opts: RunOptions) -> str:
    """``-w`` or the image's WorkingDir (must be absolute), cleaned; ``/`` when neither is set."""
    wd = opts.workdir or str((image_config or {}).get("WorkingDir") or "")
    if not wd:
        return "/"
    if not wd.startswith("/"):
        raise InvalidArgument(f"the working directory '{wd}' is invalid, it needs to be an absolute path")
    return os.path.normpath(wd)


def effective_config(
    image_config: Mapping[str, Any] | None,
    opts: RunOptions,
    *,
    container_id: str,
    host_hostname: str | None = None,
) -> dict[str, Any]:
    """The container's ``Config`` as ``docker inspect`` shows it (user options merged over the image)."""
    img = image_config or {}
    entrypoint, cmd = _merge_command(img, opts)
    labels = dict(img.get("Labels") or {})
    labels.update(opts.labels)
    exposed = dict(img.get("ExposedPorts") or {})
    for port, proto in opts.expose:
        exposed[f"{port}/{proto}"] = {}
    for p in opts.publish:
        exposed[f"{p.container_port}/{p.protocol}"] = {}
    volumes = dict(img.get("Volumes") or {})
    for m in opts.mounts:
        if m.type == "volume" and m.source == "":
            volumes[m.target] = {}
    return {
        "Hostname": container_hostname(opts, container_id, host_hostname),
        "Domainname": opts.domainname,
        "User": opts.user or str(img.get("User") or ""),
        "AttachStdin": not opts.detach and ("stdin" in opts.attach or opts.stdin_open),
        "AttachStdout": not opts.detach and (not opts.attach or "stdout" in opts.attach),
        "AttachStderr": not opts.detach and (not opts.attach or "stderr" in opts.attach),
        "ExposedPorts": exposed or None,
        "Tty": opts.tty,
        "OpenStdin": opts.stdin_open,
        "StdinOnce": opts.stdin_open and not opts.detach,
        "Env": _merge_env(opts.env, _str_list(img.get("Env"))),
        "Cmd": cmd or None,
        "Image": opts.image,
        "Volumes": volumes or None,
        "WorkingDir": opts.workdir or str(img.get("WorkingDir") or ""),
        "Entrypoint": entrypoint or None,
        "Labels": labels,
        "StopSignal": opts.stop_signal or img.get("StopSignal") or None,
        "StopTimeout": opts.stop_timeout,
    }


# --- devices --------------------------------------------------------------------------------------


class HostDevice(Record):
    """A device node to create in the container, with the cgroup access it is granted."""

    path: str  # path inside the container
    type: str  # "c", "b" or "p"
    major: int
    minor: int
    file_mode: int
    uid: int
    gid: int
    permissions: str
    _fields = ("path", "type", "major", "minor", "file_mode", "uid", "gid", "permissions")

    def __init__(self, path: str, type: str, major: int, minor: int, file_mode: int = 0o666, uid: int = 0,
                 gid: int = 0, permissions: str = "rwm") -> None:
        self.__dict__.update(path=path, type=type, major=major, minor=minor, file_mode=file_mode, uid=uid, gid=gid,
                             permissions=permissions)

    def to_oci(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "type": self.type,
            "major": self.major,
            "minor": self.minor,
            "fileMode": self.file_mode,
            "uid": self.uid,
            "gid": self.gid,
        }

    def cgroup_rule(self, permissions: str | None = None) -> dict[str, Any]:
        return {
            "allow": True,
            "type": self.type,
            "major": self.major,
            "minor": self.minor,
            "access": self.permissions if permissions is None else permissions,
        }


def device_cgroup_rules(rules: Iterable[str]) -> list[dict[str, Any]]:
    """``--device-cgroup-rule`` values -> OCI device cgroup entries (``*`` becomes -1)."""
    out = []
    for rule in rules:
        groups = cgroup_rule_groups(rule)
        if groups is None:
            raise InvalidArgument(f"invalid device cgroup rule format: '{rule}'")
        t, major, minor, access = groups
        out.append(
            {
                "allow": True,
                "type": t,
                "major": -1 if major == "*" else int(major),
                "minor": -1 if minor == "*" else int(minor),
                "access": access,
            }
        )
    return out


# --- mounts ---------------------------------------------------------------------------------------

#: tmpfs flags and the mount flag each one sets or clears (for merging, moby ``MergeTmpfsOptions``).
_MOUNT_FLAG_KEYS = {
    "ro": "rdonly", "rw": "rdonly", "suid": "nosuid", "nosuid": "nosuid", "dev": "nodev",
    "nodev": "nodev", "exec": "noexec", "noexec": "noexec", "sync": "sync", "async": "sync",
    "dirsync": "dirsync", "remount": "remount", "mand": "mand", "nomand": "mand",
    "atime": "noatime", "noatime": "noatime", "diratime": "nodiratime", "nodiratime": "nodiratime",
    "bind": "bind", "rbind": "rbind", "relatime": "relatime", "norelatime": "relatime",
    "strictatime": "strictatime", "nostrictatime": "strictatime",
    "unbindable": "propagation", "runbindable": "propagation", "private": "propagation",
    "rprivate": "propagation", "shared": "propagation", "rshared": "propagation",
    "slave": "propagation", "rslave": "propagation",
}  # fmt: skip


def merge_tmpfs_options(options: Sequence[str]) -> list[str]:
    """moby's ``mount.MergeTmpfsOptions``: later options win, one entry per flag or data key."""
    seen_flags: set[str] = set()
    seen_data: set[str] = set()
    out: list[str] = []
    for option in reversed(options):
        if option == "defaults" or option == "":
            continue
        if option in _MOUNT_FLAG_KEYS:
            key = _MOUNT_FLAG_KEYS[option]
            if key not in seen_flags:
                out.insert(0, option)
                seen_flags.add(key)
            continue
        name = option.split("=", 1)[0]
        if "=" not in option:
            raise InvalidArgument(f'invalid tmpfs option ["{option}"]')
        if name not in seen_data:
            out.insert(0, option)
            seen_data.add(name)
    return out


def _depth(dest: str) -> int:
    return len(os.path.normpath(dest).split("/"))


class _CMount(MutableRecord):
    """moby's ``container.Mount``: what the daemon mounts besides the defaults."""

    source: str
    destination: str
    writable: bool
    propagation: str
    non_recursive: bool
    data: str | None  # set for tmpfs
    ro_non_recursive: bool
    ro_force_recursive: bool
    _fields = ("source", "destination", "writable", "propagation", "non_recursive", "data", "ro_non_recursive",
               "ro_force_recursive")

    def __init__(self, source: str, destination: str, writable: bool = True, propagation: str = "",
                 non_recursive: bool = False, data: str | None = None, ro_non_recursive: bool = False,
                 ro_force_recursive: bool = False) -> None:
        self.source = source
        self.destination = destination
        self.writable = writable
        self.propagation = propagation
        self.non_recursive = non_recursive
        self.data = data
        self.ro_non_recursive = ro_non_recursive
        self.ro_force_recursive = ro_force_recursive


# --- the spec -------------------------------------------------------------------------------------


def _security(opts: RunOptions) -> dict[str, str]:
    sec: dict[str, str] = {}
    for key, val in (parse_security_opt(o) for o in opts.security_opt):
        if key == "label":
            sec["label"] = (sec["label"] + "," + val) if "label" in sec else val
        else:
            sec[key] = val
    return sec


def _validate(opts: RunOptions, *, host_cpus: int | None) -> None:
    if opts.memory and opts.memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if opts.memory > 0 and opts.memory_swap > 0 and opts.memory_swap < opts.memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    if opts.memory == 0 and opts.memory_swap > 0:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
    if opts.memory > 0 and opts.memory_reservation > 0 and opts.memory < opts.memory_reservation:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
    if opts.memory_swappiness != -1 and not 0 <= opts.memory_swappiness <= 100:
        raise InvalidArgument(
            f"invalid value: {opts.memory_swappiness}. Valid memory swappiness range is 0-100"
        )
    if opts.cpus > 0 and opts.cpu_period > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if opts.cpus > 0 and opts.cpu_quota > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    ncpu = host_cpus if host_cpus is not None else (os.cpu_count() or 1)
    if opts.cpus < 0 or (host_cpus is not None and opts.cpus > host_cpus * 1_000_000_000):
        raise InvalidArgument(
            f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )
    if opts.cpu_period != 0 and not 1000 <= opts.cpu_period <= 1_000_000:
        raise InvalidArgument(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    if 0 < opts.cpu_quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if opts.blkio_weight and not 10 <= opts.blkio_weight <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    if not -1000 <= opts.oom_score_adj <= 1000:
        raise InvalidArgument(f"Invalid value {opts.oom_score_adj}, range for oom score adj is [-1000, 1000]")
    if opts.shm_size < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    validate_ipc_mode(opts.ipc)
    validate_pid_mode(opts.pid)
    validate_uts_mode(opts.uts)
    validate_cgroupns_mode(opts.cgroupns)
    if opts.uts == "host" and opts.hostname:
        raise InvalidArgument("conflicting options: hostname and the UTS mode")
    if opts.network.startswith("container:"):
        if opts.hostname:
            raise InvalidArgument("conflicting options: hostname and the network mode")
        if opts.publish or opts.publish_all or opts.expose:
            raise InvalidArgument("conflicting options: port publishing and the container type network mode")
        if opts.dns or opts.dns_search or opts.dns_options:
            raise InvalidArgument("conflicting options: dns and the network mode")
        if opts.extra_hosts:
            raise InvalidArgument("conflicting options: custom host-to-IP mapping and the network mode")
        if opts.mac_address:
            raise InvalidArgument("conflicting options: mac-address and the network mode")
    if opts.network == "host":
        for key in opts.sysctls:
            if key.startswith("net."):
                raise InvalidArgument(f'sysctl "{key}" is not allowed in the hosts network namespace')
    if opts.ipc == "host":
        for key in opts.sysctls:
            if key.startswith(("kernel.msg", "kernel.sem", "kernel.shm", "fs.mqueue.")):
                raise InvalidArgument(f'sysctl "{key}" is not allowed in the hosts ipc namespace')
    seen: set[str] = set()
    for m in opts.mounts:
        if m.target in seen:
            raise InvalidArgument(f"Duplicate mount point: {m.target}")
        seen.add(m.target)
    for dest, data in opts.tmpfs.items():
        if not dest.startswith("/"):
            raise InvalidArgument(f"invalid mount path: '{dest}' mount path must be absolute")
        validate_tmpfs_options(data)
    if opts.auto_remove and opts.restart.name not in ("", "no"):
        raise InvalidArgument("conflicting options: cannot specify both --restart and --rm")


def _namespaces(opts: RunOptions, paths: Mapping[str, str]) -> list[dict[str, str]]:
    def joined(kind: str, mode: str) -> dict[str, str]:
        if kind not in paths:
            raise ValueError(f"build_spec: namespace_paths[{kind!r}] is required for {mode!r}")
        return {"type": kind, "path": paths[kind]}

    ns: list[dict[str, str]] = [{"type": "mount"}]
    if opts.network.startswith("container:"):
        ns.append(joined("network", opts.network))
    elif opts.network != "host":
        ns.append(
            {"type": "network", "path": paths["network"]} if "network" in paths else {"type": "network"}
        )
    if opts.uts != "host":
        ns.append({"type": "uts"})
    if opts.pid.startswith("container:"):
        ns.append(joined("pid", opts.pid))
    elif opts.pid != "host":
        ns.append({"type": "pid"})
    if opts.ipc.startswith("container:"):
        ns.append(joined("ipc", opts.ipc))
    elif opts.ipc != "host":
        ns.append({"type": "ipc"})
    if opts.cgroupns in ("", "private"):
        ns.append({"type": "cgroup"})
    return ns


def _resources(opts: RunOptions) -> dict[str, Any]:
    res: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    if opts.memory > 0:
        memory["limit"] = opts.memory
    if opts.memory_reservation > 0:
        memory["reservation"] = opts.memory_reservation
    swap = opts.memory_swap
    if opts.memory > 0 and swap == 0:
        swap = opts.memory * 2  # Docker's default: as much swap as memory
    if swap > 0:
        memory["swap"] = swap
    if 0 <= opts.memory_swappiness <= 100:
        memory["swappiness"] = opts.memory_swappiness
    if opts.oom_kill_disable:
        memory["disableOOMKiller"] = True
    if memory:
        res["memory"] = memory
    cpu: dict[str, Any] = {}
    if opts.cpu_shares > 0:
        cpu["shares"] = min(max(opts.cpu_shares, 2), 262144)
    if opts.cpus > 0:
        cpu["quota"], cpu["period"] = cpus_to_cfs(opts.cpus)
    if opts.cpu_period:
        cpu["period"] = opts.cpu_period
    if opts.cpu_quota:
        cpu["quota"] = opts.cpu_quota
    if opts.cpuset_cpus:
        cpu["cpus"] = opts.cpuset_cpus
    if opts.cpuset_mems:
        cpu["mems"] = opts.cpuset_mems
    if cpu:
        res["cpu"] = cpu
    if opts.pids_limit > 0:
        res["pids"] = {"limit": opts.pids_limit}
    if opts.blkio_weight:
        res["blockIO"] = {"weight": opts.blkio_weight}
    return res


def build_spec(
    image_config: Mapping[str, Any] | None,
    opts: RunOptions,
    *,
    container_id: str,
    rootfs: str,
    cgroups_path: str,
    hostname_path: str | None = None,
    hosts_path: str | None = None,
    resolv_conf_path: str | None = None,
    passwd_text: str | None = None,
    group_text: str | None = None,
    volume_paths: Mapping[str, str] | None = None,
    devices: Sequence[HostDevice] | None = None,
    host_devices: Sequence[HostDevice] = (),
    seccomp_profile: str | None = None,
    default_seccomp_profile: str | None = None,
    namespace_paths: Mapping[str, str] | None = None,
    shm_path: str | None = None,
    init_path: str | None = None,
    host_hostname: str | None = None,
    host_cpus: int | None = None,
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
    last_cap: int = 40,
    default_net_sysctls: bool = True,
    recursive_readonly: bool = False,
    apparmor_enabled: bool = False,
) -> dict[str, Any]:
    """The OCI runtime spec Docker would write for ``docker run`` with ``opts`` on this image.

    ``image_config`` is the image config's ``config`` object (``Env``, ``Cmd``, ``Entrypoint``,
    ``WorkingDir``, ``User``, ``Volumes``...).  Arguments that stand in for what moby reads from
    the host or the container:

    * ``hostname_path``/``hosts_path``/``resolv_conf_path``: files bind-mounted on ``/etc/...``
      (``None`` = not mounted); for ``--network container:X`` pass X's files.
    * ``passwd_text``/``group_text``: the container's ``/etc/passwd`` and ``/etc/group`` (None if
      absent), for :func:`resolve_user`.
    * ``volume_paths``: mount target -> host directory for every named or anonymous volume in
      ``opts.mounts`` and every image ``Volumes`` path not otherwise mounted.
    * ``devices``: ``opts.devices`` resolved with :func:`resolve_device` (required when there are
      any); ``host_devices``: :func:`list_host_devices` for ``--privileged``.
    * ``seccomp_profile``: the JSON text of ``--security-opt seccomp=FILE`` (the CLI reads it with
      :func:`~dockyard.runtime.runopts.read_seccomp_profile`); ``default_seccomp_profile``: a
      daemon-wide replacement for Docker's default profile.
    * ``namespace_paths``: ``{"network"|"pid"|"ipc": "/proc/PID/ns/..."}`` for ``container:X``
      modes (a ``network`` path is also used for bridge networks when given).
    * ``shm_path``: the host directory mounted on ``/dev/shm`` for ``--ipc shareable|host|container:X``.
    * ``init_path``: the host's docker-init binary for ``--init``.
    * ``host_hostname``: the host's name, used as hostname with ``--network host``.
    * ``host_cpus``, ``arch``, ``kernel``, ``last_cap``: host facts (``--cpus`` range check,
      seccomp arch/kernel conditions, the capability list of ``--privileged``/``ALL``).
    * ``default_net_sysctls``: set moby's ``net.ipv4.ping_group_range`` and
      ``ip_unprivileged_port_start`` in a private network namespace (the host has them).
    * ``recursive_readonly``: the runtime supports ``rro`` (read-only binds recursively read-only).
    * ``apparmor_enabled``: the host has AppArmor (then ``process.apparmorProfile`` is set).
    """
    _validate(opts, host_cpus=host_cpus)
    sec = _security(opts)
    img = image_config or {}
    ns_paths = dict(namespace_paths or {})
    vpaths = dict(volume_paths or {})

    # process
    hostname = container_hostname(opts, container_id, host_hostname)
    args = command_args(img, opts)
    pid_private = not (opts.pid == "host" or opts.pid.startswith("container:"))
    init_mount: dict[str, Any] | None = None
    if opts.init and pid_private:
        if not init_path:
            raise InvalidArgument('exec: "docker-init": executable file not found in $PATH')
        args = [INIT_PATH_IN_CONTAINER, "--", *args]
        init_mount = {
            "destination": INIT_PATH_IN_CONTAINER,
            "type": "bind",
            "source": init_path,
            "options": ["bind", "ro"],
        }
    user_spec = opts.user or str(img.get("User") or "")
    uid, gid, gids = resolve_user(user_spec, passwd_text, group_text, opts.group_add)
    caps = tweak_capabilities(opts.cap_add, opts.cap_drop, privileged=opts.privileged, last_cap=last_cap)
    process: dict[str, Any] = {
        "terminal": opts.tty,
        "user": {"uid": uid, "gid": gid, "additionalGids": gids},
        "args": args,
        "env": container_env(img, opts, hostname),
        "cwd": working_dir(img, opts),
        "capabilities": {"bounding": list(caps), "effective": list(caps), "permitted": list(caps)},
    }
    if opts.tty and opts.console_size and all(opts.console_size):
        process["consoleSize"] = {"height": opts.console_size[0], "width": opts.console_size[1]}
    ulimits = {u.name: u for u in opts.ulimits}
    if ulimits:
        process["rlimits"] = [
            {"type": "RLIMIT_" + u.name.upper(), "hard": u.hard & (2**64 - 1), "soft": u.soft & (2**64 - 1)}
            for u in sorted(ulimits.values(), key=lambda u: u.name)
        ]
    if sec.get("no-new-privileges") == "true":
        process["noNewPrivileges"] = True
    if apparmor_enabled:
        process["apparmorProfile"] = sec.get("apparmor") or (
            "unconfined" if opts.privileged else "docker-default"
        )
    process["oomScoreAdj"] = opts.oom_score_adj

    spec: dict[str, Any] = {"ociVersion": OCI_VERSION, "process": process}
    root: dict[str, Any] = {"path": rootfs}
    if opts.read_only:
        root["readonly"] = True
    spec["root"] = root
    if opts.uts != "host":
        spec["hostname"] = hostname
    spec["mounts"] = _mounts(
        img,
        opts,
        sec=sec,
        vpaths=vpaths,
        hostname_path=hostname_path,
        hosts_path=hosts_path,
        resolv_conf_path=resolv_conf_path,
        shm_path=shm_path,
        recursive_readonly=recursive_readonly,
    )
    if init_mount is not None:
        spec["mounts"].append(init_mount)

    # linux
    linux: dict[str, Any] = {}
    sysctl: dict[str, str] = {}
    if opts.domainname:
        sysctl["kernel.domainname"] = opts.domainname
    if default_net_sysctls and opts.network != "host" and not opts.network.startswith("container:"):
        sysctl["net.ipv4.ping_group_range"] = "0 2147483647"
        sysctl["net.ipv4.ip_unprivileged_port_start"] = "0"
    sysctl.update(opts.sysctls)
    if sysctl:
        linux["sysctl"] = sysctl

    resources = _resources(opts)
    linux_devices: list[dict[str, Any]] = []
    if opts.privileged:
        linux_devices = [d.to_oci() for d in host_devices]
        for d in devices or ():
            if d.path not in {h.path for h in host_devices}:
                linux_devices.append(d.to_oci())
        resources["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        if opts.devices and devices is None:
            raise ValueError("build_spec: opts.devices must be resolved into `devices` (resolve_device)")
        rules = _default_device_rules()
        for d in devices or ():
            linux_devices.append(d.to_oci())
            rules.append(d.cgroup_rule())
        rules.extend(device_cgroup_rules(opts.device_cgroup_rules))
        resources["devices"] = rules
    linux["resources"] = resources
    linux["cgroupsPath"] = cgroups_path
    linux["namespaces"] = _namespaces(opts, ns_paths)
    if linux_devices:
        linux["devices"] = linux_devices

    unconfined_paths = opts.privileged or sec.get("systempaths") == "unconfined"
    if not unconfined_paths:
        linux["maskedPaths"] = list(DEFAULT_MASKED_PATHS)
        linux["readonlyPaths"] = list(DEFAULT_READONLY_PATHS)

    seccomp = _seccomp(
        opts,
        sec,
        caps,
        seccomp_profile=seccomp_profile,
        default_seccomp_profile=default_seccomp_profile,
        arch=arch,
        kernel=kernel,
    )
    if seccomp is not None:
        linux["seccomp"] = seccomp
    propagation = _rootfs_propagation(opts)
    if propagation:
        linux["rootfsPropagation"] = propagation
    spec["linux"] = linux
    if opts.annotations:
        spec["annotations"] = dict(opts.annotations)
    return spec


def _seccomp(
    opts: RunOptions,
    sec: Mapping[str, str],
    caps: Sequence[str],
    *,
    seccomp_profile: str | None,
    default_seccomp_profile: str | None,
    arch: str | None,
    kernel: tuple[int, int] | None,
) -> dict[str, Any] | None:
    if opts.privileged:
        return None
    value = sec.get("seccomp", "")
    kwargs: dict[str, Any] = {"bounding_caps": caps, "arch": arch, "kernel": kernel}
    if value == "unconfined":
        return None
    if value in ("", "builtin"):
        if default_seccomp_profile is not None and value == "":
            return seccomp_default.load_profile(default_seccomp_profile, **kwargs)
        return seccomp_default.default_oci_seccomp(**kwargs)
    if value.lstrip().startswith("{"):
        return seccomp_default.load_profile(value, **kwargs)
    if seccomp_profile is None:
        raise InvalidArgument(f"opening seccomp profile ({value}) failed: the profile was not read")
    return seccomp_default.load_profile(seccomp_profile, **kwargs)


def _rootfs_propagation(opts: RunOptions) -> str:
    result = ""
    for m in opts.mounts:
        if m.type != "bind":
            continue
        if m.propagation in ("shared", "rshared"):
            result = "shared"
        elif m.propagation in ("slave", "rslave") and result != "shared":
            result = "rslave"
    return result


def _mounts(
    img: Mapping[str, Any],
    opts: RunOptions,
    *,
    sec: Mapping[str, str],
    vpaths: Mapping[str, str],
    hostname_path: str | None,
    hosts_path: str | None,
    resolv_conf_path: str | None,
    shm_path: str | None,
    recursive_readonly: bool,
) -> list[dict[str, Any]]:
    # daemon.setupMounts: user binds and volumes (later ones on the same target win)
    by_target: dict[str, Mount] = {}
    for m in opts.mounts:
        if m.type != "tmpfs":
            by_target[m.target] = m
    tmpfs: dict[str, str] = dict(opts.tmpfs)
    for m in opts.mounts:
        if m.type == "tmpfs":
            tmpfs[m.target] = m.tmpfs_options
    for vol in img.get("Volumes") or {}:
        dest = os.path.normpath(vol)
        if dest not in by_target and dest not in tmpfs:
            by_target[dest] = Mount(type="volume", source="", target=dest)

    user: list[_CMount] = []
    for dest, m in by_target.items():
        if dest in tmpfs:
            continue
        if m.type == "bind":
            source = m.source
        else:
            if dest not in vpaths:
                raise ValueError(f"build_spec: volume_paths has no host path for the volume on {dest}")
            source = vpaths[dest]
        user.append(
            _CMount(
                source=source,
                destination=dest,
                writable=not m.read_only,
                propagation=(m.propagation or "rprivate") if m.type == "bind" else "",
                non_recursive=m.non_recursive,
                ro_non_recursive=m.readonly_non_recursive,
                ro_force_recursive=m.readonly_force_recursive,
            )
        )
    user.sort(key=lambda c: _depth(c.destination))
    # network files, unless the user mounted something there
    for dest, path in (
        ("/etc/resolv.conf", resolv_conf_path),
        ("/etc/hostname", hostname_path),
        ("/etc/hosts", hosts_path),
    ):
        if path and dest not in by_target:
            user.append(
                _CMount(source=path, destination=dest, writable=not opts.read_only, propagation="rprivate")
            )
    ms = list(user)
    if opts.ipc not in ("", "private", "none") and shm_path and "/dev/shm" not in by_target:
        ms.append(_CMount(source=shm_path, destination="/dev/shm", propagation="rprivate"))
    for dest, data in tmpfs.items():
        ms.append(_CMount(source="tmpfs", destination=dest, data=data))
    ms.sort(key=lambda c: _depth(c.destination))

    user_dests = {c.destination for c in ms}
    mount_dev = "/dev" in user_dests
    shm_size = opts.shm_size or DEFAULT_SHM_SIZE
    out: list[dict[str, Any]] = []
    for dm in _default_mounts():
        dest = dm["destination"]
        if dest in user_dests or (mount_dev and dest.startswith("/dev/")):
            continue
        if dest == "/dev/shm":
            if opts.ipc == "none":
                continue
            dm["options"].append(f"size={shm_size}")
        out.append(dm)
    for c in ms:
        if c.data is not None:
            opts_list = ["noexec", "nosuid", "nodev", "rprivate"]
            if c.data:
                opts_list += c.data.split(",")
            out.append(
                {
                    "destination": c.destination,
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": merge_tmpfs_options(opts_list),
                }
            )
            continue
        options = ["bind" if c.non_recursive else "rbind"]
        if not c.writable:
            rro = recursive_readonly and not c.ro_non_recursive
            options.append("rro" if rro or c.ro_force_recursive else "ro")
        if c.propagation in PROPAGATION_MODES:
            options.append(c.propagation)
        out.append({"destination": c.destination, "type": "bind", "source": c.source, "options": options})

    if opts.read_only:
        for mnt in out:
            if mnt["destination"] in ("/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"):
                continue
            if mnt["destination"] not in user_dests and "ro" not in mnt["options"]:
                mnt["options"].append("ro")
    writable_cgroups = opts.privileged or sec.get("writable-cgroups") == "true"
    for mnt in out:
        if (opts.privileged and mnt["destination"] == "/sys") or (
            writable_cgroups and mnt["type"] == "cgroup"
        ):
            mnt["options"] = [o for o in mnt["options"] if o != "ro"]
    return out


# --- structural check -----------------------------------------------------------------------------

_NS_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


def validate_spec(spec: Mapping[str, Any]) -> list[str]:
    """Structural problems of an OCI spec (empty list when it is well-formed enough to run)."""
    from collections.abc import Mapping  # not at module level: it imports collections (run's path)

    problems: list[str] = []

    def need(cond: bool, msg: str) -> None:
        if not cond:
            problems.append(msg)

    need(isinstance(spec.get("ociVersion"), str) and bool(spec.get("ociVersion")), "ociVersion is required")
    root = spec.get("root")
    need(
        isinstance(root, Mapping) and isinstance(root.get("path"), str) and bool(root.get("path")),
        "root.path is required",
    )
    proc = spec.get("process")
    if not isinstance(proc, Mapping):
        problems.append("process is required")
    else:
        args = proc.get("args")
        need(
            isinstance(args, list) and bool(args) and all(isinstance(a, str) for a in args),
            "process.args must be a non-empty list of strings",
        )
        cwd = proc.get("cwd")
        need(isinstance(cwd, str) and cwd.startswith("/"), "process.cwd must be an absolute path")
        user = proc.get("user")
        need(
            isinstance(user, Mapping)
            and isinstance(user.get("uid"), int)
            and isinstance(user.get("gid"), int),
            "process.user.uid and process.user.gid are required",
        )
        env = proc.get("env", [])
        need(
            isinstance(env, list) and all(isinstance(e, str) and "=" in e for e in env),
            "process.env must be K=V strings",
        )
        for name, rl in enumerate(proc.get("rlimits") or []):
            need(
                isinstance(rl, Mapping) and str(rl.get("type", "")).startswith("RLIMIT_"),
                f"process.rlimits[{name}].type is invalid",
            )
    for i, m in enumerate(spec.get("mounts") or []):
        need(
            isinstance(m, Mapping) and str(m.get("destination", "")).startswith("/"),
            f"mounts[{i}].destination must be an absolute path",
        )
    linux = spec.get("linux")
    if isinstance(linux, Mapping):
        kinds = [n.get("type") for n in linux.get("namespaces") or []]
        need(all(k in _NS_TYPES for k in kinds), f"linux.namespaces has an unknown type: {kinds}")
        need(len(kinds) == len(set(kinds)), "linux.namespaces has a duplicate type")
        for i, d in enumerate((linux.get("resources") or {}).get("devices") or []):
            need(isinstance(d.get("allow"), bool), f"linux.resources.devices[{i}].allow must be a boolean")
    else:
        problems.append("linux is required")
    return problems


# --- impure helpers: the host's devices -----------------------------------------------------------


def device_from_path(
    path: str, container_path: str | None = None, permissions: str = "rwm"
) -> HostDevice | None:
    """The device node at ``path`` (``lstat``), or None if it is not a device (reads the host)."""
    st = os.lstat(path)
    if stat.S_ISBLK(st.st_mode):
        kind = "b"
    elif stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISFIFO(st.st_mode):
        kind = "p"
    else:
        return None
    return HostDevice(
        path=container_path or path,
        type=kind,
        major=os.major(st.st_rdev),
        minor=os.minor(st.st_rdev),
        file_mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        permissions=permissions,
    )


def resolve_device(mapping: DeviceMapping) -> list[HostDevice]:
    """moby's ``DevicesFromPath``: a ``--device`` -> its device node(s) (reads the host).

    A symlink is followed; a directory contributes every device below it (at the same relative
    path under the container path).
    """
    host = mapping.path_on_host
    if os.path.islink(host):
        host = os.path.realpath(host)
    try:
        dev = device_from_path(host, mapping.path_in_container, mapping.permissions)
    except OSError as e:
        raise InvalidArgument(
            f'error gathering device information while adding custom device "{mapping.path_on_host}": '
            f"{e.strerror or e}"
        )
    if dev is not None:
        return [dev]
    out: list[HostDevice] = []
    if os.path.isdir(host):
        for dirpath, dirnames, filenames in os.walk(host):
            dirnames.sort()
            for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                full = os.path.join(dirpath, name)
                try:
                    child = device_from_path(
                        full, full.replace(host, mapping.path_in_container, 1), mapping.permissions
                    )
                except OSError:
                    continue
                if child is not None:
                    out.append(child)
    if not out:
        raise InvalidArgument(
            f'error gathering device information while adding custom device "{mapping.path_on_host}": '
            "not a device node"
        )
    return out


def list_host_devices(root: str = "/dev") -> list[HostDevice]:
    """Every device node under ``/dev``, for ``--privileged`` (containerd's ``HostDevices``; impure)."""
    out: list[HostDevice] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return out
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name in ("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"):
                continue
            out.extend(list_host_devices(entry.path))
            continue
        if entry.name == "console":
            continue
        try:
            dev = device_from_path(entry.path)
        except OSError:
            continue
        if dev is not None:
            out.append(dev)
    return out
