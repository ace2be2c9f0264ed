"""Docker's default seccomp profile, and moby's rules for turning a Docker profile into OCI form.

The profile itself is data: ``seccomp_default.json`` beside this module is moby's
``profiles/seccomp/default.json`` (github.com/moby/profiles, ``seccomp/default.json`` at commit
02e898b137aed1024e232d59bcb05e6179b72177, the profile Docker Engine 29.x ships: io_uring blocked,
``socket`` limited to an allow-list of address families that excludes AF_ALG and AF_VSOCK,
``lsm_*`` behind CAP_SYS_ADMIN).  It is loaded lazily, once, the first time a spec needs it.

A Docker-format profile differs from the OCI ``linux.seccomp`` object: it has an ``archMap``
(expanded to the native architecture and its sub-architectures) and rules with ``includes`` /
``excludes`` conditions on capabilities, architectures and the kernel version.
:func:`setup_seccomp` applies those conditions exactly as moby's ``setupSeccomp`` does.
"""

from __future__ import annotations

import os

from dockyard import jsonc
from dockyard.atomic import write_atomic
from dockyard.errors import InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

# No re, json, functools or copy here: every ``run`` builds a spec through this module (the default
# profile's OCI form comes from a cache file), and those imports cost more than that whole step.

#: Python/uname machine names -> the libseccomp/Go arch names the profile's ``arches`` use.
_MACHINE_TO_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64",
    "mips64": "mips64",
}

#: libseccomp arch name -> ``SCMP_ARCH_*`` (moby's ``nativeToSeccomp``).
NATIVE_TO_SECCOMP = {
    "x86": "SCMP_ARCH_X86",
    "amd64": "SCMP_ARCH_X86_64",
    "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64",
    "loong64": "SCMP_ARCH_LOONGARCH64",
    "loongarch64": "SCMP_ARCH_LOONGARCH64",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mips3l64n32": "SCMP_ARCH_MIPSEL64N32",
    "mipsle": "SCMP_ARCH_MIPSEL",
    "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "riscv64": "SCMP_ARCH_RISCV64",
    "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
}

#: The fields of the OCI ``LinuxSeccomp`` object that a Docker profile passes through unchanged.
_PASSTHROUGH = (
    "defaultAction",
    "defaultErrnoRet",
    "architectures",
    "flags",
    "listenerPath",
    "listenerMetadata",
)


def native_arch(machine: str | None = None) -> str:
    """The running machine's arch in the profile's vocabulary (``amd64``, ``arm64``...)."""
    m = os.uname().machine if machine is None else machine
    return _MACHINE_TO_ARCH.get(m, m)


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """``"6.8.0-45-generic"`` -> ``(6, 8)`` (the running kernel's when ``release`` is None)."""
    rel = os.uname().release if release is None else release
    v = _major_minor(rel, whole=False)
    if v is None:
        raise ValueError(f"failed to parse kernel version {rel!r}")
    return v


def _major_minor(s: str, *, whole: bool) -> tuple[int, int] | None:
    r"""``re.fullmatch`` (``whole``) or ``re.match`` of ``(\d+)\.(\d+)`` on ``s``, as two ints.

    str methods for ASCII (there ``\d`` is ``[0-9]``); the regular expression for anything else."""
    if not s.isascii():
        import re

        m = (re.fullmatch if whole else re.match)(r"(\d+)\.(\d+)", s)
        return None if m is None else (int(m.group(1)), int(m.group(2)))
    major, dot, rest = s.partition(".")
    if whole:
        minor = rest
    else:
        n = 0
        while n < len(rest) and rest[n].isdigit():
            n += 1
        minor = rest[:n]
    if not (dot and major.isdigit() and minor.isdigit()):
        return None
    return int(major), int(minor)


class _Once:
    """The profile's text, read on first use (``functools.lru_cache(maxsize=1)``'s behaviour and
    ``cache_info``/``cache_clear``, without importing functools)."""

    def __init__(self, load: Callable[[], str]) -> None:
        self._load = load
        self._value: str | None = None
        self._hits = self._misses = 0

    def __call__(self) -> str:
        if self._value is None:
            self._misses += 1
            self._value = self._load()
        else:
            self._hits += 1
        return self._value

    def cache_info(self) -> _CacheInfo:
        return _CacheInfo(self._hits, self._misses, 1, 0 if self._value is None else 1)

    def cache_clear(self) -> None:
        self._value = None
        self._hits = self._misses = 0


class _CacheInfo:
    def __init__(self, hits: int, misses: int, maxsize: int, currsize: int) -> None:
        self.hits, self.misses, self.maxsize, self.currsize = hits, misses, maxsize, currsize

    def __repr__(self) -> str:
        return f"CacheInfo(hits={self.hits}, misses={self.misses}, maxsize={self.maxsize}, currsize={self.currsize})"


def _read_default_profile_text() -> str:
    try:  # a plain file beside this module (importlib.resources costs ~4 ms to import)
        with open(os.path.join(os.path.dirname(__file__), "seccomp_default.json"), encoding="utf-8") as f:
            return f.read()
    except OSError:  # e.g. imported from a zip
        from importlib import resources

        return resources.files("dockyard.runtime").joinpath("seccomp_default.json").read_text(encoding="utf-8")


_default_profile_text = _Once(_read_default_profile_text)


def default_profile() -> dict[str, Any]:
    """Docker's default profile, in Docker (not OCI) form; a fresh copy each call."""
    return jsonc.loads(_default_profile_text())


def _parse_min_kernel(value: object) -> tuple[int, int]:
    v = _major_minor(str(value), whole=True)
    if v is None or v == (0, 0):
        raise InvalidArgument(f'invalid kernel version: "{value}", expected "<kernel>.<major>"')
    return v


def _copy_json(v: Any) -> Any:
    """``copy.deepcopy`` of a profile's JSON values (dicts, lists, scalars) without importing copy."""
    if isinstance(v, dict):
        return {k: _copy_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy_json(x) for x in v]
    if v is None or isinstance(v, (str, int, float)):
        return v
    import copy

    return copy.deepcopy(v)


def setup_seccomp(
    profile: Mapping[str, Any],
    *,
    bounding_caps: Iterable[str],
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict[str, Any] | None:
    """A Docker-format profile -> the OCI ``linux.seccomp`` object (moby's ``setupSeccomp``).

    Rules whose ``excludes`` match (arch, any capability in ``bounding_caps``, kernel at least
    ``minKernel``) or whose ``includes`` do not (arch, every capability, kernel) are dropped.
    Returns ``None`` for an empty profile (no default action and no rules: seccomp disabled).
    """
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidArgument(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, use either "
            "'architectures' or 'archMap'"
        )
    native = native_arch() if arch is None else arch
    caps = set(bounding_caps)
    kern: tuple[int, int] | None = kernel

    def kernel_at_least(v: object) -> bool:
        nonlocal kern
        want = _parse_min_kernel(v)
        if kern is None:
            kern = kernel_version()
        return kern >= want

    out: dict[str, Any] = {k: _copy_json(profile[k]) for k in _PASSTHROUGH if profile.get(k)}
    scmp_arch = NATIVE_TO_SECCOMP.get(native)
    if scmp_arch is not None:
        for entry in profile.get("archMap") or ():
            if entry.get("architecture") == scmp_arch:
                out.setdefault("architectures", [])
                out["architectures"] = [
                    *out["architectures"],
                    scmp_arch,
                    *(entry.get("subArchitectures") or ()),
                ]
                break

    syscalls = []
    for call in profile.get("syscalls") or ():
        names = list(call.get("names") or ())
        if call.get("name"):
            if names:
                raise InvalidArgument(
                    "both 'name' and 'names' are specified in the seccomp profile, use either "
                    "'name' or 'names'"
                )
            names = [call["name"]]
        exc = call.get("excludes") or {}
        if exc.get("arches") and native in exc["arches"]:
            continue
        if exc.get("caps") and any(c in caps for c in exc["caps"]):
            continue
        if exc.get("minKernel") and kernel_at_least(exc["minKernel"]):
            continue
        inc = call.get("includes") or {}
        if inc.get("arches") and native not in inc["arches"]:
            continue
        if inc.get("caps") and not all(c in caps for c in inc["caps"]):
            continue
        if inc.get("minKernel") and not kernel_at_least(inc["minKernel"]):
            continue
        rule: dict[str, Any] = {"names": names, "action": call.get("action", "")}
        if call.get("errnoRet") is not None:
            rule["errnoRet"] = call["errnoRet"]
        args = []
        for a in call.get("args") or ():
            arg = {"index": a.get("index", 0), "value": a.get("value", 0), "op": a.get("op", "")}
            if a.get("valueTwo"):
                arg["valueTwo"] = a["valueTwo"]
            args.append(arg)
        if args:
            rule["args"] = args
        syscalls.append(rule)
    if syscalls:
        out["syscalls"] = syscalls
    return out


def load_profile(text: str, **kwargs: Any) -> dict[str, Any] | None:
    """A Docker-format profile given as JSON text -> OCI form (moby's ``LoadProfile``)."""
    try:
        profile = jsonc.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"Decoding seccomp profile failed: {e}")
    if not isinstance(profile, dict):
        raise InvalidArgument("Decoding seccomp profile failed: not a JSON object")
    return setup_seccomp(profile, **kwargs)


def _cache_dir() -> str:
    return os.path.join(os.environ.get("DOCKYARD_RUN_ROOT", "/run/dockyard"), "seccomp-oci")


def _cache_key(bounding_caps: Iterable[str], arch: str | None = None, kernel: tuple[int, int] | None = None) -> str:
    """A file name for the inputs: no hashing, since reading and hashing the profile (and loading
    OpenSSL for it) would cost a good part of what the cache saves. The profile file is named by its
    size and modification time; capabilities by a bit mask (names the kernel does not number are spelt)."""
    from dockyard.runtime.runopts import CAPABILITY_NAMES

    st = os.stat(os.path.join(os.path.dirname(__file__), "seccomp_default.json"))
    mask, other = 0, []
    for cap in sorted(set(bounding_caps)):
        name = cap.removeprefix("CAP_")
        if name in CAPABILITY_NAMES:
            mask |= 1 << CAPABILITY_NAMES.index(name)
        else:
            other.append("".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name))
    k = kernel_version() if kernel is None else kernel
    return "-".join([native_arch() if arch is None else arch, f"{k[0]}.{k[1]}", f"{mask:x}", *other,
                     f"{st.st_size}", f"{st.st_mtime_ns}"])


def default_oci_seccomp(**kwargs: Any) -> dict[str, Any] | None:
    """Docker's default profile in OCI form for the given capabilities/arch/kernel.

    The result is cached per (capabilities, arch, kernel, profile) under ``/run/dockyard/seccomp-oci``:
    parsing and filtering the profile on every ``run`` costs more than reading back its result.
    """
    try:
        key = _cache_key(**kwargs)
    except (TypeError, ValueError, OSError):
        return setup_seccomp(default_profile(), **kwargs)
    path = os.path.join(_cache_dir(), key + ".json")
    try:
        with open(path, encoding="utf-8") as f:
            cached = jsonc.loads(f.read())
        if cached is None or isinstance(cached, dict):
            return cached
    except (OSError, ValueError):
        pass
    out = setup_seccomp(default_profile(), **kwargs)
    try:
        os.makedirs(_cache_dir(), mode=0o700, exist_ok=True)
        write_atomic(path, jsonc.dumps(out))
    except OSError:
        pass
    return out


def allowed_syscalls(oci_seccomp: Mapping[str, Any]) -> set[str]:
    """Names an OCI seccomp object allows unconditionally (an ALLOW rule without ``args``)."""
    return {
        n
        for rule in oci_seccomp.get("syscalls", ())
        if rule.get("action") == "SCMP_ACT_ALLOW" and not rule.get("args")
        for n in rule.get("names", ())
    }
