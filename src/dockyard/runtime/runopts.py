"""The values of ``docker run`` flags, parsed the way Docker parses them.

Every ``parse_*`` function takes the raw string a user typed after a flag and returns a small
value (or raises :class:`~dockyard.errors.InvalidArgument` with Docker's wording, naming the bad
value).  They are pure: none touches the filesystem or the environment unless it says so
(``parse_env_file`` and ``read_seccomp_profile`` read files; ``parse_env`` takes the environment
as an argument).  :class:`RunOptions` collects everything ``docker run`` accepts; the CLI fills it
and :func:`dockyard.runtime.spec.build_spec` turns it into an OCI ``config.json``.

Sources of truth: docker/cli ``opts/`` and ``cli/command/container/opts.go`` (client-side checks),
moby ``volume/mounts/linux_parser.go`` and ``daemon/`` (the checks the daemon makes on the same
values), docker/go-units (sizes, ulimits), docker/go-connections ``nat`` (ports).
"""

from __future__ import annotations

import os

from dockyard.errors import InvalidArgument
from dockyard.records import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

# --- simple syntax checks without ``re`` ------------------------------------------------------------
# ``re`` (with enum, functools and collections behind it) costs ~6 ms of every ``run``, and these
# checks run on ``run``'s path. Each one below answers exactly as its regular expression for ASCII
# input (where ``\d`` is ``[0-9]``); anything else is handed to the expression itself, the authority.


def _re_fullmatch(pattern: str, s: str) -> bool:
    import re

    return re.fullmatch(pattern, s) is not None


def is_go_int(s: str) -> bool:
    r"""``re.fullmatch(r"[+-]?\d+", s)``: Go's ``strconv.Atoi`` syntax."""
    if not s.isascii():
        return _re_fullmatch(r"[+-]?\d+", s)
    return (s[1:] if s[:1] in ("+", "-") else s).isdigit()


def _is_go_float(num: str) -> bool:
    r"""``re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", num)``."""
    if not num.isascii():
        return _re_fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", num)
    s = num[1:] if num[:1] in ("+", "-") else num
    e = min((i for i in (s.find("e"), s.find("E")) if i >= 0), default=-1)
    mantissa, exponent = (s, None) if e < 0 else (s[:e], s[e + 1:])
    whole, dot, frac = mantissa.partition(".")
    if not ((whole.isdigit() and (not frac or frac.isdigit())) or (not whole and dot and frac.isdigit())):
        return False
    if exponent is None:
        return True
    return (exponent[1:] if exponent[:1] in ("+", "-") else exponent).isdigit()


_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.-")


def is_local_name(name: str) -> bool:
    """``re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name)`` (a local volume's name)."""
    if not name.isascii():
        return _re_fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name)
    return len(name) > 1 and name[0] in _NAME_FIRST and _NAME_REST.issuperset(name)


_CGROUP_RULE = r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})"


def cgroup_rule_groups(rule: str) -> tuple[str, str, str, str] | None:
    r"""The groups of ``re.fullmatch(r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})", rule)``, or None."""
    if not rule.isascii():
        import re

        m = re.fullmatch(_CGROUP_RULE, rule)
        return None if m is None else (m.group(1), m.group(2), m.group(3), m.group(4))
    parts = rule.split(" ")
    if len(parts) != 3:
        return None
    kind, numbers, access = parts
    major, colon, minor = numbers.partition(":")
    if kind not in ("a", "b", "c") or not colon or not 1 <= len(access) <= 3 or not set(access) <= set("rwm"):
        return None
    if not all(n == "*" or n.isdigit() for n in (major, minor)):
        return None
    return kind, major, minor, access

# --- capabilities ---------------------------------------------------------------------------------

#: Linux capability names (without ``CAP_``) indexed by their number.
CAPABILITY_NAMES: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip

#: Number of each ``CAP_*`` name.
CAPABILITY_NUMBERS: dict[str, int] = {"CAP_" + n: i for i, n in enumerate(CAPABILITY_NAMES)}

#: The magic value of ``--cap-add``/``--cap-drop`` meaning every capability.
ALL_CAPABILITIES = "ALL"


def parse_cap(value: str) -> str:
    """``NET_ADMIN`` / ``cap_net_admin`` / ``ALL`` -> ``CAP_NET_ADMIN`` / ``ALL`` (moby's rules)."""
    cap = value.strip().upper()
    if cap == ALL_CAPABILITIES:
        return cap
    if not cap.startswith("CAP_"):
        cap = "CAP_" + cap
    if cap not in CAPABILITY_NUMBERS:
        raise InvalidArgument(f'unknown capability: "{cap}"')
    return cap


# --- sizes ----------------------------------------------------------------------------------------

_BINARY_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def _go_parse_float(num: str) -> float | None:
    # strconv.ParseFloat accepts what Python's float() accepts minus "nan"/"inf" words with signs we
    # do not care about here; restrict to plain decimal numbers like Go's size parser sees them.
    if not _is_go_float(num):
        return None
    return float(num)


def parse_size(value: str) -> int:
    """Docker's ``RAMInBytes``: ``512m``, ``1.5g``, ``512mb``, ``2KiB``, ``1024`` -> bytes.

    Units b, k, m, g, t, p are powers of 1024 and case-insensitive; a trailing ``b`` or ``ib`` is
    optional; one space may separate number and unit.
    """
    sep = max(value.rfind(c) for c in "0123456789. ")
    if sep == -1:
        raise InvalidArgument(f"invalid size: '{value}'")
    if value[sep] != " ":
        num, sfx = value[: sep + 1], value[sep + 1 :]
    else:
        num, sfx = value[:sep], value[sep + 1 :]
    size = _go_parse_float(num)
    if size is None or size < 0:
        raise InvalidArgument(f"invalid size: '{value}'")
    if not sfx:
        return int(size)
    low = sfx.lower()
    if len(low) > 3:
        raise InvalidArgument(f"invalid suffix: '{low}'")
    if low[0] == "b":
        if len(low) > 1:
            raise InvalidArgument(f"invalid suffix: '{low}'")
        return int(size)
    mul = _BINARY_UNITS.get(low[0])
    if mul is None or (len(low) == 2 and low[1] != "b") or (len(low) == 3 and low[1:] != "ib"):
        raise InvalidArgument(f"invalid suffix: '{low}'")
    return int(size * mul)


def parse_memory(value: str) -> int:
    """``--memory`` / ``--memory-reservation``: a size in bytes."""
    return parse_size(value)


def parse_memory_swap(value: str) -> int:
    """``--memory-swap``: a size in bytes, or ``-1`` for unlimited swap."""
    if value == "-1":
        return -1
    return parse_size(value)


def parse_shm_size(value: str) -> int:
    """``--shm-size``: the size of ``/dev/shm`` in bytes."""
    return parse_size(value)


# --- CPUs -----------------------------------------------------------------------------------------

#: The CFS period Docker uses with ``--cpus`` (100ms, in microseconds).
CFS_PERIOD_US = 100_000


def parse_cpus(value: str) -> int:
    """``--cpus 1.5`` -> NanoCPUs (1_500_000_000), as docker/cli's ``ParseCPUs`` (a rational)."""
    try:
        from fractions import Fraction

        cpus = Fraction(value.strip())
    except (ValueError, ZeroDivisionError):
        raise InvalidArgument(f"failed to parse {value} as a rational number")
    nano = cpus * 1_000_000_000
    if nano.denominator != 1:
        raise InvalidArgument("value is too precise")
    return int(nano)


def cpus_to_cfs(nano_cpus: int) -> tuple[int, int]:
    """NanoCPUs -> ``(quota_us, period_us)`` exactly as moby's ``getCPUResources``."""
    return nano_cpus * CFS_PERIOD_US // 1_000_000_000, CFS_PERIOD_US


# --- user, env, labels, sysctls -------------------------------------------------------------------


def parse_user(value: str) -> tuple[str, str | None]:
    """``--user name|uid[:group|gid]`` -> ``(user, group or None)``; resolution happens later."""
    user, sep, group = value.partition(":")
    return user, (group if sep else None)


def parse_env(values: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """``-e K=V`` / ``-e K`` values, in order, as docker/cli's ``ValidateEnv``.

    A bare ``K`` takes the host's value (from ``environ``) when it is set.  When it is not set the
    bare ``K`` is kept: Docker sends it to the daemon, where it *unsets* ``K`` (an image's ``K`` is
    dropped from the container's environment); :func:`~dockyard.runtime.spec.build_spec` applies
    that rule.
    """
    out = []
    for val in values:
        key, eq, _ = val.partition("=")
        if key == "":
            raise InvalidArgument(f"invalid environment variable: {val}")
        if eq:
            out.append(val)
        elif key in environ:
            out.append(f"{key}={environ[key]}")
        else:
            out.append(val)
    return out


def _parse_kv_text(text: str, lookup: Mapping[str, str] | None) -> list[str]:
    """docker/cli ``kvfile``: one ``KEY[=VALUE]`` per line, ``#`` comments, leading blanks trimmed."""
    out = []
    if text.startswith("\ufeff"):
        text = text[1:]
    for raw in text.splitlines():
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, _ = line.partition("=")
        if not key:
            raise InvalidArgument(f"no variable name on line '{line}'")
        if " " in key or "\t" in key:
            raise InvalidArgument(f"variable '{key}' contains whitespaces")
        if eq:
            out.append(line)
        elif lookup is not None and line in lookup:
            out.append(f"{key}={lookup[line]}")
    return out


def parse_env_text(text: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The pure half of :func:`parse_env_file`: parse an env file's text."""
    return _parse_kv_text(text, environ)


def parse_env_file(path: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """``--env-file PATH``: read and parse it (reads the file; ``environ`` defaults to ``os.environ``)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InvalidArgument(f"open {path}: no such file or directory")
    except OSError as e:
        raise InvalidArgument(f"open {path}: {(e.strerror or str(e)).lower()}")
    for lineno, line in enumerate(data.split(b"\n"), 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument(f"invalid env file ({path}): invalid utf8 bytes at line {lineno}")
    try:
        return _parse_kv_text(data.decode("utf-8"), os.environ if environ is None else environ)
    except InvalidArgument as e:
        raise InvalidArgument(f"invalid env file ({path}): {e.message}")


def parse_label(value: str) -> tuple[str, str]:
    """``--label k=v`` (or bare ``k``, an empty value) -> ``(k, v)``, as ``ValidateLabel``."""
    key, _, val = value.partition("=")
    key = key.lstrip(" \t")
    if key == "":
        raise InvalidArgument(f"invalid label '{value}': empty name")
    if " " in key or "\t" in key:
        raise InvalidArgument(f"label '{key}' contains whitespaces")
    return key, val


_SYSCTL_NAMES = {
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
}  # fmt: skip


def parse_sysctl(value: str) -> tuple[str, str]:
    """``--sysctl k=v`` -> ``(k, v)``; only namespaced sysctls are allowed (``ValidateSysctl``)."""
    key, eq, val = value.partition("=")
    if eq and key and (key in _SYSCTL_NAMES or key.startswith(("net.", "fs.mqueue."))):
        return key, val
    raise InvalidArgument(f"sysctl '{value}' is not allowed")


# --- mounts ---------------------------------------------------------------------------------------

PROPAGATION_MODES = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_RW_MODES = ("rw", "ro", "ro-non-recursive", "ro-force-recursive", "rro")
_LABEL_MODES = ("z", "Z")
_COPY_MODES = ("nocopy",)
_CONSISTENCY_MODES = ("consistent", "cached", "delegated")


class Mount(Record):
    """One ``-v`` or ``--mount`` entry (moby's ``mount.Mount`` plus what ``-v`` modes carry).

    ``type`` is ``bind`` (``source`` is an absolute host path), ``volume`` (``source`` is a volume
    name, ``""`` for an anonymous volume) or ``tmpfs`` (``tmpfs_options`` holds the mount data,
    e.g. ``"size=64m,mode=1777"``).
    """

    type: str
    source: str
    target: str
    read_only: bool
    propagation: str  # bind only; "" means Docker's default (rprivate)
    nocopy: bool  # volume only: do not copy the image's content into a new volume
    relabel: str  # "z" or "Z" (SELinux); accepted, not acted upon
    consistency: str
    non_recursive: bool  # bind-recursive=disabled: "bind" instead of "rbind"
    readonly_non_recursive: bool
    readonly_force_recursive: bool
    volume_driver: str
    volume_subpath: str
    volume_labels: Mapping[str, str]
    volume_options: Mapping[str, str]
    tmpfs_options: str
    mode: str  # the raw mode string of a -v spec ("ro,Z"), for `docker inspect`
    _fields = ("type", "source", "target", "read_only", "propagation", "nocopy", "relabel", "consistency",
               "non_recursive", "readonly_non_recursive", "readonly_force_recursive", "volume_driver",
               "volume_subpath", "volume_labels", "volume_options", "tmpfs_options", "mode")

    def __init__(self, type: str, source: str, target: str, read_only: bool = False, propagation: str = "",
                 nocopy: bool = False, relabel: str = "", consistency: str = "", non_recursive: bool = False,
                 readonly_non_recursive: bool = False, readonly_force_recursive: bool = False,
                 volume_driver: str = "", volume_subpath: str = "", volume_labels: Mapping[str, str] | None = None,
                 volume_options: Mapping[str, str] | None = None, tmpfs_options: str = "", mode: str = "") -> None:
        self.__dict__.update(
            type=type, source=source, target=target, read_only=read_only, propagation=propagation,
            nocopy=nocopy, relabel=relabel, consistency=consistency, non_recursive=non_recursive,
            readonly_non_recursive=readonly_non_recursive, readonly_force_recursive=readonly_force_recursive,
            volume_driver=volume_driver, volume_subpath=volume_subpath,
            volume_labels={} if volume_labels is None else volume_labels,
            volume_options={} if volume_options is None else volume_options,
            tmpfs_options=tmpfs_options, mode=mode)

    def replace(self, **changes: Any) -> Mount:
        """A copy with ``changes`` applied (what ``dataclasses.replace`` gave)."""
        return Mount(**{**{n: self.__dict__[n] for n in self._fields}, **changes})


def _valid_mount_mode(mode: str) -> bool:
    """moby's ``linuxValidMountMode``: at most one option of each kind, nothing unknown."""
    if mode == "":
        return True
    counts = [0, 0, 0, 0, 0]
    for o in mode.split(","):
        if o in _RW_MODES:
            counts[0] += 1
        elif o in _LABEL_MODES:
            counts[1] += 1
        elif o in PROPAGATION_MODES:
            counts[2] += 1
        elif o in _COPY_MODES:
            counts[3] += 1
        elif o in _CONSISTENCY_MODES:
            counts[4] += 1
        else:
            return False
    return max(counts) <= 1


def _mount_config_error(mtype: str, msg: str) -> str:
    return f'invalid mount config for type "{mtype}": {msg}'


def _check_target(mtype: str, target: str) -> str | None:
    if target == "":
        return _mount_config_error(mtype, "field Target must not be empty")
    t = target.replace("\\", "/")
    if os.path.normpath(t) == "/" or t == "/":
        return _mount_config_error(mtype, "invalid specification: destination can't be '/'")
    if not t.startswith("/"):
        return _mount_config_error(mtype, f"invalid mount path: '{t}' mount path must be absolute")
    return None


def _check_volume_name(name: str) -> None:
    if name and not is_local_name(name):
        raise InvalidArgument(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            f'"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
            "use absolute path"
        )


def _abspath(path: str, cwd: str | None) -> str:
    return os.path.normpath(os.path.join(os.getcwd() if cwd is None else cwd, path))


def _cli_volumespec_check(spec: str) -> None:
    """The client-side parse docker/cli runs first (compose's ``volumespec.Parse``)."""
    if spec == "":
        raise InvalidArgument("invalid empty volume spec")
    if len(spec) <= 2:
        return
    parts = spec.split(":")
    for i, part in enumerate(parts):
        if part == "":
            raise InvalidArgument(f"invalid spec: {spec}: empty section between colons")
        if i == 2 and len(parts) > 3:
            raise InvalidArgument(f"invalid spec: {spec}: too many colons")


def parse_volume(spec: str, *, cwd: str | None = None) -> Mount:
    """``-v SRC:DST[:OPTS]`` / ``-v DST`` -> :class:`Mount`.

    ``SRC`` that is absolute (or starts with ``.``, made absolute against ``cwd``, default the
    process's working directory) is a bind mount; anything else names a volume; no ``SRC`` is an
    anonymous volume.  ``OPTS`` is a comma list of ``ro``/``rw``, ``z``/``Z``, one propagation mode,
    ``nocopy`` and a consistency mode.
    """
    _cli_volumespec_check(spec)
    arr = spec.split(":", 3)
    if arr[0] == "" or len(arr) > 3:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    source, mode = "", ""
    if len(arr) == 1:
        target = arr[0]
    elif len(arr) == 2:
        if _valid_mount_mode(arr[1]):
            raise InvalidArgument(f"invalid volume specification: '{spec}'")
        source, target = arr
    else:
        source, target, mode = arr
    if source.startswith(".") and not source.startswith("/"):
        source = _abspath(source, cwd)
    if not _valid_mount_mode(mode):
        raise InvalidArgument(f"invalid mode: {mode}")
    mtype = "bind" if source.startswith("/") else "volume"
    opts = mode.split(",") if mode else []
    propagation = next((o for o in opts if o in PROPAGATION_MODES), "")
    read_only = any(o == "ro" or o.startswith("ro-") or o == "rro" for o in opts)
    nocopy = "nocopy" in opts
    for o in opts:
        if (o.startswith("ro-") or o == "rro") and mtype != "bind":
            raise InvalidArgument(
                f"mount mode \"{mode}\" requires a bind mount: invalid volume specification: '{spec}'"
            )
    err = _check_target(mtype, target)
    if err is None and mtype == "volume" and propagation:
        err = _mount_config_error(mtype, "field BindOptions must not be specified")
    if err is None and mtype == "bind" and nocopy:
        err = _mount_config_error(mtype, "field VolumeOptions must not be specified")
    if err is not None:
        raise InvalidArgument(f"invalid volume specification: '{spec}': {err}")
    if mtype == "volume":
        _check_volume_name(source)
    return Mount(
        type=mtype,
        source=os.path.normpath(source) if mtype == "bind" else source,
        target=os.path.normpath(target),
        read_only=read_only,
        propagation=propagation,
        nocopy=nocopy,
        relabel=next((o for o in opts if o in _LABEL_MODES), ""),
        consistency=next((o for o in opts if o in _CONSISTENCY_MODES), ""),
        readonly_non_recursive="ro-non-recursive" in opts,
        readonly_force_recursive="ro-force-recursive" in opts or "rro" in opts,
        mode=mode,
    )


def _parse_bool(val: str) -> bool | None:
    """Go's ``strconv.ParseBool``."""
    if val in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if val in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def _csv_fields(value: str) -> list[str]:
    try:
        import csv
        import io

        rows = list(csv.reader(io.StringIO(value)))
    except csv.Error as e:
        raise InvalidArgument(f"parse error: {e}")
    return rows[0] if rows else []


def tmpfs_data(size: int | None, mode: int | None, read_only: bool = False) -> str:
    """moby's ``ConvertTmpfsOptions``: ``--mount type=tmpfs`` settings -> tmpfs mount data."""
    raw = ["ro"] if read_only else []
    if mode:
        raw.append(f"mode={mode:o}")
    if size:
        for suffix, div in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % div == 0:
                raw.append(f"size={size // div}{suffix}")
                break
        else:
            raw.append(f"size={size}")
    return ",".join(raw)


def parse_mount(value: str, *, cwd: str | None = None) -> Mount:
    """``--mount type=bind|volume|tmpfs,source=..,target=..,readonly,...`` -> :class:`Mount`."""
    mtype = "volume"
    source = target = consistency = ""
    read_only = False
    bind: dict[str, object] = {}
    vol: dict[str, object] = {}
    tmpfs: dict[str, int] = {}
    labels: dict[str, str] = {}
    vopts: dict[str, str] = {}
    for fld in _csv_fields(value):
        key, eq, val = fld.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                read_only = True
            elif key == "volume-nocopy":
                vol["nocopy"] = True
            elif key == "bind-nonrecursive":
                bind["non_recursive"] = True
            else:
                raise InvalidArgument(f"invalid field '{fld}' must be a key=value pair")
            continue
        if key == "type":
            mtype = val.lower()
        elif key in ("source", "src"):
            source = val
            if val == "." or val.startswith("./"):
                source = _abspath(val, cwd)
        elif key in ("target", "dst", "destination"):
            target = val
        elif key in ("readonly", "ro"):
            b = _parse_bool(val)
            if b is None:
                raise InvalidArgument(f"invalid value for {key}: {val}")
            read_only = b
        elif key == "consistency":
            consistency = val.lower()
        elif key == "bind-propagation":
            bind["propagation"] = val.lower()
        elif key == "bind-nonrecursive":
            b = _parse_bool(val)
            if b is None:
                raise InvalidArgument(f"invalid value for {key}: {val}")
            bind["non_recursive"] = b
        elif key == "bind-recursive":
            if val == "enabled":
                bind.setdefault("non_recursive", False)
            elif val == "disabled":
                bind["non_recursive"] = True
            elif val == "writable":
                bind["ro_non_recursive"] = True
            elif val == "readonly":
                bind["ro_force_recursive"] = True
            else:
                raise InvalidArgument(
                    f'invalid value for {key}: {val} (must be "enabled", "disabled", "writable", '
                    'or "readonly")'
                )
        elif key == "volume-subpath":
            vol["subpath"] = val
        elif key == "volume-nocopy":
            b = _parse_bool(val)
            if b is None:
                raise InvalidArgument(f"invalid value for volume-nocopy: {val}")
            vol["nocopy"] = b
        elif key == "volume-label":
            vol.setdefault("labels", True)
            k, _, v = val.partition("=")
            if k:
                labels[k] = v
        elif key == "volume-driver":
            vol["driver"] = val
        elif key == "volume-opt":
            vol.setdefault("opts", True)
            k, _, v = val.partition("=")
            if k:
                vopts[k] = v
        elif key == "tmpfs-size":
            try:
                tmpfs["size"] = parse_size(val)
            except InvalidArgument:
                raise InvalidArgument(f"invalid value for {key}: {val}")
        elif key == "tmpfs-mode":
            try:
                tmpfs["mode"] = int(val, 8)
            except ValueError:
                raise InvalidArgument(f"invalid value for {key}: {val}")
            if not 0 <= tmpfs["mode"] < 1 << 32:
                raise InvalidArgument(f"invalid value for {key}: {val}")
        else:
            raise InvalidArgument(f"unexpected key '{key}' in '{fld}'")

    if mtype == "":
        raise InvalidArgument("type is required")
    if target == "":
        raise InvalidArgument("target is required")
    if vol and mtype != "volume":
        raise InvalidArgument(f"cannot mix 'volume-*' options with mount type '{mtype}'")
    if bind and mtype != "bind":
        raise InvalidArgument(f"cannot mix 'bind-*' options with mount type '{mtype}'")
    if tmpfs and mtype != "tmpfs":
        raise InvalidArgument(f"cannot mix 'tmpfs-*' options with mount type '{mtype}'")
    if bind.get("ro_non_recursive") and not read_only:
        raise InvalidArgument(
            "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction"
        )
    if bind.get("ro_force_recursive"):
        if not read_only:
            raise InvalidArgument(
                "option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction"
            )
        if bind.get("propagation") != "rprivate":
            raise InvalidArgument(
                "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be "
                "specified in conjunction"
            )

    # the daemon's validateMountConfig
    if mtype not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(_mount_config_error(mtype, "mount type unknown"))
    err = _check_target(mtype, target)
    if err is None and mtype == "bind":
        prop = str(bind.get("propagation", ""))
        if source == "":
            err = _mount_config_error(mtype, "field Source must not be empty")
        elif prop and prop not in PROPAGATION_MODES:
            err = _mount_config_error(mtype, f"invalid propagation mode: {prop}")
        elif not source.replace("\\", "/").startswith("/"):
            err = _mount_config_error(mtype, f"invalid mount path: '{source}' mount path must be absolute")
    if err is None and mtype == "volume" and source == "" and read_only:
        err = _mount_config_error(mtype, "must not set ReadOnly mode when using anonymous volumes")
    if err is None and mtype == "tmpfs" and source != "":
        err = _mount_config_error(mtype, "field Source must not be specified")
    if err is not None:
        raise InvalidArgument(err)
    if mtype == "volume":
        _check_volume_name(source)
    return Mount(
        type=mtype,
        source=os.path.normpath(source) if mtype == "bind" else source,
        target=os.path.normpath(target),
        read_only=read_only,
        propagation=str(bind.get("propagation", "")),
        nocopy=bool(vol.get("nocopy", False)),
        consistency=consistency,
        non_recursive=bool(bind.get("non_recursive", False)),
        readonly_non_recursive=bool(bind.get("ro_non_recursive", False)),
        readonly_force_recursive=bool(bind.get("ro_force_recursive", False)),
        volume_driver=str(vol.get("driver", "")),
        volume_subpath=str(vol.get("subpath", "")),
        volume_labels=labels,
        volume_options=vopts,
        tmpfs_options=tmpfs_data(tmpfs.get("size"), tmpfs.get("mode"), read_only) if mtype == "tmpfs" else "",
    )


#: tmpfs mount flags moby's ``mount.ParseTmpfsOptions`` understands (data keys are below).
TMPFS_FLAGS = (
    "defaults", "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec", "sync", "async",
    "dirsync", "remount", "mand", "nomand", "atime", "noatime", "diratime", "nodiratime", "bind",
    "rbind", "unbindable", "runbindable", "private", "rprivate", "shared", "rshared", "slave",
    "rslave", "relatime", "norelatime", "strictatime", "nostrictatime",
)  # fmt: skip
#: tmpfs data options (``key=value``) moby accepts.
TMPFS_DATA_KEYS = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol")


def _go_quote_list(items: Sequence[str]) -> str:
    return "[" + " ".join('"' + i.replace("\\", "\\\\").replace('"', '\\"') + '"' for i in items) + "]"


def validate_tmpfs_options(data: str) -> None:
    """moby's ``mount.ParseTmpfsOptions``: every option is a mount flag or a known ``key=value``."""
    if data == "":
        return
    for o in data.split(","):
        if o in TMPFS_FLAGS:
            continue
        opt = o.split("=", 1)
        if opt[0] not in TMPFS_DATA_KEYS:
            raise InvalidArgument(f"invalid tmpfs option {_go_quote_list(opt)}")


def parse_tmpfs(value: str) -> tuple[str, str]:
    """``--tmpfs /run[:rw,size=64m]`` -> ``("/run", "rw,size=64m")``."""
    dest, _, data = value.partition(":")
    err = _check_target("tmpfs", dest)
    if err is not None:
        raise InvalidArgument(err.split(": ", 1)[1])
    validate_tmpfs_options(data)
    return os.path.normpath(dest), data


# --- ports ----------------------------------------------------------------------------------------


class PortBinding(Record):
    """One published port: container ``port/protocol`` bound to ``host_ip:host_port``.

    ``host_port`` is ``""`` for a random port, a number, or a range ``"8000-8010"`` when a single
    container port may take any free port of that range.
    """

    container_port: int
    protocol: str
    host_ip: str
    host_port: str
    _fields = ("container_port", "protocol", "host_ip", "host_port")

    def __init__(self, container_port: int, protocol: str = "tcp", host_ip: str = "", host_port: str = "") -> None:
        self.__dict__.update(container_port=container_port, protocol=protocol, host_ip=host_ip, host_port=host_port)


def _parse_port_range(ports: str) -> tuple[int, int]:
    def one(s: str) -> int:
        if not s.isdigit() or int(s) > 65535:
            raise ValueError(s)
        return int(s)

    if ports == "":
        raise ValueError("empty string specified for ports")
    if "-" not in ports:
        p = one(ports)
        return p, p
    parts = ports.split("-")
    start, end = one(parts[0]), one(parts[1])
    if end < start:
        raise ValueError(f"invalid range specified for port: {ports}")
    return start, end


def _is_ip(s: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def _long_publish_syntax(value: str) -> str:
    params = {"protocol": "tcp"}
    for param in value.split(","):
        k, eq, v = param.partition("=")
        if not eq or k == "":
            raise InvalidArgument(f"invalid publish opts format (should be name=value but got '{param}')")
        params[k] = v
    return f"{params.get('published', '')}:{params.get('target', '')}/{params['protocol']}"


def parse_port(value: str) -> list[PortBinding]:
    """``-p [ip:][host[-host]:]ctr[-ctr][/proto]`` (or ``published=..,target=..``) -> bindings.

    ``"80"``, ``"8080:80"``, ``"127.0.0.1:8080:80/udp"``, ``"[::1]:8080:80"``, ``"127.0.0.1::80"``,
    ``"8000-8010:80-90"``; ranges must have equal lengths unless the container side is one port.
    """
    raw = _long_publish_syntax(value) if "=" in value else value
    parts = raw.split(":")
    ctr = parts[-1]
    if len(parts) == 1:
        ip, host = "", ""
    elif len(parts) == 2:
        ip, host = "", parts[0]
    else:
        ip, host = ":".join(parts[:-2]), parts[-2]
    # SplitProtoPort
    pp = ctr.split("/")
    if ctr == "" or pp[0] == "":
        proto, ctr = "", ""
    elif len(pp) == 1 or pp[1] == "":
        proto, ctr = "tcp", pp[0]
    else:
        proto, ctr = pp[1], pp[0]
    if ip.startswith("["):
        if not ip.endswith("]"):
            raise InvalidArgument(f"invalid IP address {ip}: missing ']' in address")
        ip = ip[1:-1]
    if ip and not _is_ip(ip):
        raise InvalidArgument(f"invalid IP address: {ip}")
    if ctr == "":
        raise InvalidArgument(f"no port specified: {value}<empty>")
    try:
        start, end = _parse_port_range(ctr)
    except ValueError:
        raise InvalidArgument(f"invalid containerPort: {ctr}")
    hstart = hend = 0
    if host:
        try:
            hstart, hend = _parse_port_range(host)
        except ValueError:
            raise InvalidArgument(f"invalid hostPort: {host}")
        if end - start != hend - hstart and end != start:
            raise InvalidArgument(f"invalid ranges specified for container and host Ports: {ctr} and {host}")
    proto = proto.lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    out = []
    for i in range(end - start + 1):
        hp = str(hstart + i) if host else ""
        if start == end and hstart != hend:
            hp = f"{hp}-{hend}"
        out.append(PortBinding(start + i, proto, ip, hp))
    return out


def parse_expose(value: str) -> list[tuple[int, str]]:
    """``--expose 80[-90][/proto]`` -> ``[(port, proto), ...]``."""
    port, _, proto = value.partition("/")
    proto = (proto or "tcp").lower()
    try:
        start, end = _parse_port_range(port)
    except ValueError as e:
        raise InvalidArgument(f"invalid range format for --expose: {e}")
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid range format for --expose: invalid proto: {proto}")
    return [(p, proto) for p in range(start, end + 1)]


# --- ulimits, devices, restart, gpus --------------------------------------------------------------

ULIMIT_NAMES = (
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
    "rss", "rtprio", "rttime", "sigpending", "stack",
)  # fmt: skip


class Ulimit(Record):
    name: str
    soft: int
    hard: int
    _fields = ("name", "soft", "hard")

    def __init__(self, name: str, soft: int, hard: int) -> None:
        self.__dict__.update(name=name, soft=soft, hard=hard)


def _go_atoi64(s: str) -> int:
    if not is_go_int(s):
        raise InvalidArgument(f'strconv.ParseInt: parsing "{s}": invalid syntax')
    n = int(s)
    if not -(1 << 63) <= n < 1 << 63:
        raise InvalidArgument(f'strconv.ParseInt: parsing "{s}": value out of range')
    return n


def parse_ulimit(value: str) -> Ulimit:
    """``--ulimit nofile=1024[:2048]`` -> :class:`Ulimit` (go-units ``ParseUlimit``)."""
    name, eq, limits = value.partition("=")
    if not eq:
        raise InvalidArgument(f"invalid ulimit argument: {value}")
    if name not in ULIMIT_NAMES:
        raise InvalidArgument(f"invalid ulimit type: {name}")
    vals = limits.split(":")
    if len(vals) > 2:
        raise InvalidArgument(
            f"too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
        )
    soft = _go_atoi64(vals[0])
    hard = _go_atoi64(vals[1]) if len(vals) == 2 else soft
    if hard != -1 and soft > hard:
        raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return Ulimit(name, soft, hard)


class DeviceMapping(Record):
    """``--device HOST[:CONTAINER][:PERMS]``."""

    path_on_host: str
    path_in_container: str
    permissions: str
    _fields = ("path_on_host", "path_in_container", "permissions")

    def __init__(self, path_on_host: str, path_in_container: str, permissions: str = "rwm") -> None:
        self.__dict__.update(path_on_host=path_on_host, path_in_container=path_in_container, permissions=permissions)


def _valid_device_mode(mode: str) -> bool:
    return mode != "" and all(c in "rwm" for c in mode) and len(set(mode)) == len(mode)


def parse_device(value: str) -> DeviceMapping:
    """``--device /dev/x[:/dev/y][:rwm]`` -> :class:`DeviceMapping` (docker/cli's checks)."""
    if value.count(":") > 2:
        raise InvalidArgument(f"bad format for path: {value}")
    split = value.split(":", 2)
    if split[0] == "":
        raise InvalidArgument(f"bad format for path: {value}")
    # validateLinuxPath: checks the container path and cleans it
    if len(split) == 1:
        container_path = split[0]
        split = [os.path.normpath(container_path)]
    elif len(split) == 2:
        if _valid_device_mode(split[1]):
            container_path = split[0]
            split = [os.path.normpath(container_path), split[1]]
        else:
            container_path = split[1]
            split = [split[0], os.path.normpath(container_path)]
    else:
        container_path = split[1]
        if not _valid_device_mode(split[2]):
            raise InvalidArgument(f"bad mode specified: {split[2]}")
    if not container_path.startswith("/"):
        raise InvalidArgument(f"{container_path} is not an absolute path")
    # parseLinuxDevice
    src, dst, perms = split[0], "", "rwm"
    if len(split) == 3:
        perms = split[2]
    if len(split) >= 2:
        if _valid_device_mode(split[1]):
            perms = split[1]
        else:
            dst = split[1]
    return DeviceMapping(src, dst or src, perms)




def parse_device_cgroup_rule(value: str) -> str:
    """``--device-cgroup-rule 'c 1:3 rwm'`` (validated, returned as is)."""
    if cgroup_rule_groups(value) is None:
        raise InvalidArgument(f"invalid device cgroup format '{value}'")
    return value


class RestartPolicy(Record):
    name: str
    maximum_retry_count: int
    _fields = ("name", "maximum_retry_count")

    def __init__(self, name: str = "no", maximum_retry_count: int = 0) -> None:
        self.__dict__.update(name=name, maximum_retry_count=maximum_retry_count)


RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")


def parse_restart(value: str) -> RestartPolicy:
    """``--restart no|always|unless-stopped|on-failure[:N]`` -> :class:`RestartPolicy`."""
    if value == "":
        return RestartPolicy()
    name, colon, count = value.partition(":")
    if colon and name == "":
        raise InvalidArgument("invalid restart policy format: no policy provided before colon")
    retries = 0
    if count != "":
        if not is_go_int(count):
            raise InvalidArgument("invalid restart policy format: maximum retry count must be an integer")
        retries = int(count)
    if name not in RESTART_POLICIES:
        raise InvalidArgument(
            f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
            "'on-failure', or 'unless-stopped'"
        )
    if retries and name != "on-failure":
        raise InvalidArgument(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        )
    if retries < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    return RestartPolicy(name, retries)


class DeviceRequest(Record):
    """``--gpus`` (moby's ``container.DeviceRequest``); ``count == -1`` means all."""

    driver: str
    count: int
    device_ids: tuple[str, ...]
    capabilities: tuple[tuple[str, ...], ...]
    options: Mapping[str, str]
    _fields = ("driver", "count", "device_ids", "capabilities", "options")

    def __init__(self, driver: str = "", count: int = 0, device_ids: tuple[str, ...] = (),
                 capabilities: tuple[tuple[str, ...], ...] = (("gpu",),),
                 options: Mapping[str, str] | None = None) -> None:
        self.__dict__.update(driver=driver, count=count, device_ids=device_ids, capabilities=capabilities,
                             options={} if options is None else options)


def _gpu_count(s: str) -> int:
    if s == "all":
        return -1
    if not is_go_int(s):
        raise InvalidArgument(f'count must be an integer: strconv.Atoi: parsing "{s}": invalid syntax')
    return int(s)


def parse_gpus(value: str) -> DeviceRequest:
    """``--gpus all`` / ``2`` / ``'"device=0,1"'`` / ``count=2,capabilities=utility`` -> request."""
    fields = _csv_fields(value)
    seen: set[str] = set()
    driver, count, ids = "", 0, None
    caps: tuple[tuple[str, ...], ...] | None = None
    options: dict[str, str] = {}
    for fld in fields:
        key, eq, val = fld.partition("=")
        if key in seen:
            raise InvalidArgument(f"gpu request key '{key}' can be specified only once")
        seen.add(key)
        if not eq:
            seen.add("count")
            count = _gpu_count(key)
            continue
        if key == "driver":
            driver = val
        elif key == "count":
            count = _gpu_count(val)
        elif key == "device":
            ids = tuple(val.split(","))
        elif key == "capabilities":
            caps = ((*val.split(","), "gpu"),)
        elif key == "options":
            for kv in _csv_fields(val):
                k, _, v = kv.partition("=")
                options[k] = v
        else:
            raise InvalidArgument(f"unexpected key '{key}' in '{fld}'")
    if "count" not in seen and ids is None:
        count = 1
    return DeviceRequest(driver, count, ids or (), caps or (("gpu",),), options)


# --- security options, namespace modes ------------------------------------------------------------

SECURITY_OPT_KEYS = ("label", "apparmor", "seccomp", "no-new-privileges", "systempaths", "writable-cgroups")


def parse_security_opt(value: str) -> tuple[str, str]:
    """``--security-opt`` -> normalized ``(key, value)``.

    ``no-new-privileges`` -> ``("no-new-privileges", "true")``; ``no-new-privileges:false`` ->
    ``(.., "false")``; ``seccomp=unconfined|builtin|/path.json`` (a path is returned as is; the
    CLI reads it, see :func:`read_seccomp_profile`); ``apparmor=PROFILE``; ``label=...``;
    ``systempaths=unconfined``; ``writable-cgroups=true``.
    """
    if value in ("no-new-privileges", "disable"):
        return (value, "true") if value == "no-new-privileges" else ("label", "disable")
    if "=" in value:
        key, _, val = value.partition("=")
    elif ":" in value:
        key, _, val = value.partition(":")
    else:
        raise InvalidArgument(f'invalid --security-opt: "{value}"')
    if val == "":
        raise InvalidArgument(f'invalid --security-opt: "{value}"')
    if key in ("no-new-privileges", "writable-cgroups"):
        b = _parse_bool(val)
        if b is None:
            raise InvalidArgument(f'invalid --security-opt 2: "{value}"')
        return key, "true" if b else "false"
    if key == "systempaths":
        if val != "unconfined":
            raise InvalidArgument(f'invalid --security-opt 2: "{value}"')
        return key, val
    if key not in ("label", "apparmor", "seccomp"):
        raise InvalidArgument(f'invalid --security-opt 2: "{value}"')
    return key, val


def read_seccomp_profile(path: str) -> str:
    """Read a ``--security-opt seccomp=PATH`` file and return its JSON compacted (reads a file)."""
    from dockyard import jsonc

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise InvalidArgument(
            f"opening seccomp profile ({path}) failed: open {path}: {(e.strerror or str(e)).lower()}"
        )
    try:
        return jsonc.dumps(jsonc.loads(text), separators=(",", ":"))
    except ValueError as e:
        raise InvalidArgument(f"compacting json for seccomp profile ({path}) failed: {e}")


def parse_network_mode(value: str) -> str:
    """``--network``: ``bridge`` (default), ``host``, ``none``, ``container:NAME`` or a network name."""
    if value == "":
        return "bridge"
    if value == "default":
        return "bridge"
    if value.startswith("container:") and value.partition(":")[2] == "":
        raise InvalidArgument("--network: invalid container format container:<name|id>")
    return value


def _valid_ns_mode(value: str, allowed: Sequence[str], *, container: bool) -> bool:
    if value in allowed:
        return True
    return container and value.startswith("container:") and value.partition(":")[2] != ""


def validate_ipc_mode(value: str) -> str:
    if not _valid_ns_mode(value, ("", "none", "private", "shareable", "host"), container=True):
        raise InvalidArgument(f"invalid IPC mode: {value}")
    return value


def validate_pid_mode(value: str) -> str:
    if not _valid_ns_mode(value, ("", "host"), container=True):
        raise InvalidArgument("--pid: invalid PID mode")
    return value


def validate_uts_mode(value: str) -> str:
    if not _valid_ns_mode(value, ("", "host"), container=False):
        raise InvalidArgument("--uts: invalid UTS mode")
    return value


def validate_cgroupns_mode(value: str) -> str:
    if value not in ("", "host", "private"):
        raise InvalidArgument("--cgroupns: invalid CGROUP mode")
    return value


_SIGNALS = {
    "ABRT": 6, "ALRM": 14, "BUS": 7, "CHLD": 17, "CLD": 17, "CONT": 18, "FPE": 8, "HUP": 1,
    "ILL": 4, "INT": 2, "IO": 29, "IOT": 6, "KILL": 9, "PIPE": 13, "POLL": 29, "PROF": 27,
    "PWR": 30, "QUIT": 3, "SEGV": 11, "STKFLT": 16, "STOP": 19, "SYS": 31, "TERM": 15,
    "TRAP": 5, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "USR1": 10, "USR2": 12,
    "VTALRM": 26, "WINCH": 28, "XCPU": 24, "XFSZ": 25,
}  # fmt: skip


def parse_signal(value: str) -> int:
    """``--stop-signal`` / ``docker kill -s``: ``SIGTERM``, ``TERM``, ``15``, ``RTMIN+3`` -> number."""
    if value.isdigit():
        n = int(value)
        if n == 0 or n > 64:
            raise InvalidArgument(f"invalid signal: {value}")
        return n
    name = value.upper()
    name = name[3:] if name.startswith("SIG") else name
    if name in _SIGNALS:
        return _SIGNALS[name]
    if name.startswith(("RTMIN", "RTMAX")):
        offset = name[5:]
        if offset == "" or (offset[0] in ("+", "-") and is_go_int(offset)):  # r"RTM(IN|AX)([+-]\d+)?"
            n = (34 if name[3:5] == "IN" else 64) + int(offset or 0)
            if 34 <= n <= 64:
                return n
    raise InvalidArgument(f"invalid signal: {value}")


# --- everything `docker run` takes ----------------------------------------------------------------


# RunOptions' fields with their defaults, in order; a list or dict default is copied for each instance.
_RUN_OPTION_DEFAULTS: dict[str, Any] = {
    "image": "",
    "cmd": [],
    "entrypoint": None,
    "env": [],
    "workdir": "",
    "user": "",
    "group_add": [],
    "hostname": "",
    "domainname": "",
    "tty": False,
    "stdin_open": False,
    "attach": [],
    "name": "",
    "labels": {},
    "annotations": {},
    "mounts": [],
    "tmpfs": {},
    "volumes_from": [],
    "read_only": False,
    "network": "bridge",
    "network_aliases": [],
    "publish": [],
    "publish_all": False,
    "expose": [],
    "dns": [],
    "dns_search": [],
    "dns_options": [],
    "extra_hosts": [],
    "mac_address": "",
    "ip": "",
    "ip6": "",
    "memory": 0,
    "memory_swap": 0,
    "memory_reservation": 0,
    "memory_swappiness": -1,
    "oom_kill_disable": False,
    "cpus": 0,
    "cpu_shares": 0,
    "cpu_period": 0,
    "cpu_quota": 0,
    "cpuset_cpus": "",
    "cpuset_mems": "",
    "blkio_weight": 0,
    "pids_limit": 0,
    "shm_size": 0,
    "ulimits": [],
    "devices": [],
    "device_cgroup_rules": [],
    "gpus": [],
    "cgroup_parent": "",
    "privileged": False,
    "cap_add": [],
    "cap_drop": [],
    "security_opt": [],
    "sysctls": {},
    "ipc": "",
    "pid": "",
    "uts": "",
    "cgroupns": "",
    "userns": "",
    "init": None,
    "stop_signal": "",
    "stop_timeout": None,
    "restart": RestartPolicy(),
    "auto_remove": False,
    "detach": False,
    "oom_score_adj": 0,
    "runtime": "",
    "x11": False,
    "platform": "",
    "pull": "missing",
    "log_driver": "",
    "log_opts": {},
    "health_cmd": "",
    "no_healthcheck": False,
    "console_size": None,
}


class RunOptions:
    """What ``docker run`` / ``docker create`` was asked for, after flag parsing.

    Field names follow the flags.  ``None`` means "not given" wherever Docker distinguishes that
    from an empty value (``entrypoint``: ``None`` keeps the image's, ``[""]`` clears it;
    ``stop_timeout``; ``init``).  ``env`` holds ``K=V`` (or bare ``K`` to unset) in flag order,
    env-file entries first as Docker does.

    A plain class with ``__slots__`` rather than a ``@dataclass``: building its ~90-field methods
    at import costs ~5 ms on every ``run``. Keyword construction, equality and :meth:`to_dict`
    (``dataclasses.asdict``) behave as the dataclass did.
    """

    __slots__ = tuple(_RUN_OPTION_DEFAULTS)

    image: str
    cmd: list[str]
    entrypoint: list[str] | None
    env: list[str]
    workdir: str
    user: str
    group_add: list[str]
    hostname: str
    domainname: str
    tty: bool
    stdin_open: bool
    attach: list[str]
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    # storage
    mounts: list[Mount]  # -v and --mount, in order
    tmpfs: dict[str, str]  # --tmpfs DEST -> mount data
    volumes_from: list[str]
    read_only: bool
    # network
    network: str  # none | host | bridge | container:X | a network name
    network_aliases: list[str]
    publish: list[PortBinding]
    publish_all: bool
    expose: list[tuple[int, str]]
    dns: list[str]
    dns_search: list[str]
    dns_options: list[str]
    extra_hosts: list[str]
    mac_address: str
    ip: str
    ip6: str
    # resources
    memory: int
    memory_swap: int  # 0 = Docker's default (twice --memory), -1 = unlimited
    memory_reservation: int
    memory_swappiness: int
    oom_kill_disable: bool
    cpus: int  # NanoCPUs
    cpu_shares: int
    cpu_period: int
    cpu_quota: int
    cpuset_cpus: str
    cpuset_mems: str
    blkio_weight: int
    pids_limit: int  # 0 or negative = unlimited
    shm_size: int  # 0 = Docker's default, 64 MiB
    ulimits: list[Ulimit]
    devices: list[DeviceMapping]
    device_cgroup_rules: list[str]
    gpus: list[DeviceRequest]
    cgroup_parent: str
    # security
    privileged: bool
    cap_add: list[str]
    cap_drop: list[str]
    security_opt: list[str]
    sysctls: dict[str, str]
    # namespaces
    ipc: str  # "" (private) | none | private | shareable | host | container:X
    pid: str  # "" | host | container:X
    uts: str  # "" | host
    cgroupns: str  # "" (private) | private | host
    userns: str
    # lifecycle
    init: bool | None
    stop_signal: str
    stop_timeout: int | None
    restart: RestartPolicy
    auto_remove: bool
    detach: bool
    oom_score_adj: int
    runtime: str
    x11: bool  # Dockyard's own: the host's X11 (and Wayland) display, usable inside
    platform: str
    pull: str
    log_driver: str
    log_opts: dict[str, str]
    health_cmd: str
    no_healthcheck: bool
    console_size: tuple[int, int] | None  # (height, width) for --tty

    def __init__(self, **kw: Any) -> None:
        for name, default in _RUN_OPTION_DEFAULTS.items():
            if name in kw:
                value = kw.pop(name)
            elif type(default) is list or type(default) is dict:
                value = default.copy()
            else:
                value = default
            object.__setattr__(self, name, value)
        if kw:
            raise TypeError(f"RunOptions.__init__() got an unexpected keyword argument '{next(iter(kw))}'")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass was

    def __repr__(self) -> str:
        return "RunOptions(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"

    def to_dict(self) -> dict[str, Any]:
        """Every field, nested dataclasses as dicts: what ``dataclasses.asdict`` gave."""
        def conv(v: Any) -> Any:
            if isinstance(v, Record):
                return {n: conv(getattr(v, n)) for n in v._fields}
            if isinstance(v, (list, tuple)):
                return type(v)(conv(x) for x in v)
            if isinstance(v, dict):
                return type(v)((conv(k), conv(x)) for k, x in v.items())
            return v

        return {n: conv(getattr(self, n)) for n in self.__slots__}

    def security_options(self) -> list[tuple[str, str]]:
        """Every ``--security-opt`` parsed (see :func:`parse_security_opt`)."""
        return [parse_security_opt(o) for o in self.security_opt]
