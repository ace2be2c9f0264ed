"""OCI ``linux.seccomp`` -> a libseccomp filter, loaded as the last step before ``execve``.

Why a direct ctypes binding rather than ``import pyseccomp``: pyseccomp locates libseccomp with
``ctypes.util.find_library``, which runs ``ldconfig -p`` in a subprocess and imports ``typing``; the
import alone costs ~25 ms, half the runtime's budget for ``run``.  This module opens ``libseccomp.so.2``
by soname and calls the same C API pyseccomp wraps (``seccomp_init``, ``seccomp_rule_add_array``,
``seccomp_load``), so the behaviour is libseccomp's, only the loader differs.  The filter is built in
the runtime *before* ``fork`` (errors surface from ``create`` as ordinary exceptions) and loaded by the
container process after everything else that needs syscalls the profile may deny.

runc behaviours reproduced:

* unknown syscall names are skipped (profiles list syscalls of newer kernels);
* a rule whose action equals the default action is skipped (libseccomp rejects it);
* several conditions on the *same* argument become separate rules (ORed), as libseccomp cannot AND
  them; conditions on distinct arguments form one rule (ANDed);
* ``SCMP_ACT_ERRNO``/``SCMP_ACT_TRACE`` without ``errnoRet`` use EPERM;
* libseccomp's own "set no_new_privs on load" is turned off: ``process.noNewPrivileges`` decides.
"""

from __future__ import annotations

import errno as _errno

from ..errors import RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes

_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
_OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}
_ARCHES = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel",
    "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc",
    "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc",
    "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
}
# enum scmp_filter_attr
_ATTR_CTL_NNP = 3
_ATTR_CTL_TSYNC = 4
_ATTR_CTL_LOG = 6
_ATTR_CTL_SSB = 7
_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": _ATTR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": _ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _ATTR_CTL_SSB,
}

SUPPORTED_ACTIONS = sorted(k for k in _ACTIONS if k != "SCMP_ACT_KILL_THREAD") + ["SCMP_ACT_KILL_THREAD"]
SUPPORTED_OPERATORS = sorted(_OPS)
SUPPORTED_ARCHES = sorted(_ARCHES)


def _arg_cmp() -> type[ctypes.Structure]:
    """struct scmp_arg_cmp (made on first use: ``ctypes`` is only imported to compile a profile)."""
    global _ArgCmp
    if _ArgCmp is None:
        import ctypes

        class ArgCmp(ctypes.Structure):
            _fields_ = [
                ("arg", ctypes.c_uint),
                ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64),
            ]

        _ArgCmp = ArgCmp
    return _ArgCmp


_ArgCmp: type[ctypes.Structure] | None = None


def _lib() -> ctypes.CDLL:
    import ctypes

    _arg_cmp()
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        raise RuntimeFailure("seccomp is configured but libseccomp.so.2 is not installed")
    lib.seccomp_init.argtypes = (ctypes.c_uint32,)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_release.argtypes = (ctypes.c_void_p,)
    lib.seccomp_release.restype = None
    lib.seccomp_load.argtypes = (ctypes.c_void_p,)
    lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
    lib.seccomp_attr_set.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32)
    lib.seccomp_arch_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
    lib.seccomp_arch_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_rule_add_array.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_arg_cmp()),
    )
    return lib


def _action(name: str, errno_ret: int | None) -> int:
    base = _ACTIONS.get(name)
    if base is None:
        if name == "SCMP_ACT_NOTIFY":
            raise RuntimeFailure("seccomp action SCMP_ACT_NOTIFY is not supported by dockyard-runtime")
        raise RuntimeFailure(f"invalid seccomp action {name!r}")
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        return base | ((_errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    return base


class SeccompFilter:
    """A built (not yet loaded) libseccomp filter context."""

    def __init__(self, lib: ctypes.CDLL, ctx: int) -> None:
        self._lib = lib
        self._ctx = ctx

    def load(self) -> None:
        rc = self._lib.seccomp_load(self._ctx)
        if rc < 0:
            raise RuntimeFailure(f"error loading seccomp filter into kernel: {_errno_str(-rc)}")

    def release(self) -> None:
        if self._ctx:
            self._lib.seccomp_release(self._ctx)
            self._ctx = 0


def _errno_str(code: int) -> str:
    import os

    return os.strerror(code)


class CompiledFilter:
    """A filter already compiled to BPF, loaded with one ``prctl``: no libseccomp work in the child.

    libseccomp compiles a profile the size of Docker's default in ~25 ms, on every container start;
    the same profile always compiles to the same program, so the program is cached by the profile's
    digest (``seccomp_export_bpf`` writes exactly what ``seccomp_load`` would install).  Loading it
    needs no more of ctypes than ``linux`` already has.
    """

    def __init__(self, program: bytes) -> None:
        import sys

        from . import linux as L

        self._program = program
        c = L._ct()
        self._buf = c.create_string_buffer(program, len(program))
        # struct sock_fprog {unsigned short len; (padding;) struct sock_filter *filter;}
        count = (len(program) // 8).to_bytes(2, sys.byteorder)
        self._fprog = count + bytes(6) + c.addressof(self._buf).to_bytes(8, sys.byteorder)

    def load(self) -> None:
        from . import linux as L

        c = L._ct()
        pr_set_seccomp, seccomp_mode_filter = 22, 2
        if L._libc().prctl(c.c_int(pr_set_seccomp), c.c_ulong(seccomp_mode_filter), self._fprog, c.c_ulong(0),
                           c.c_ulong(0)) != 0:  # fmt: skip
            raise RuntimeFailure(f"error loading seccomp filter into kernel: {_errno_str(c.get_errno())}")

    def release(self) -> None:
        pass


def _cache_dir() -> str:
    import os

    return os.environ.get("DOCKYARD_SECCOMP_CACHE", "/run/dockyard/seccomp")


def build(config: dict[str, object]) -> SeccompFilter | CompiledFilter:
    """A loadable filter for OCI ``linux.seccomp``: from the BPF cache, or compiled and cached.

    Profiles with flags (TSYNC, LOG, SPEC_ALLOW...) go through libseccomp each time, since the
    flags are arguments of the load, not part of the program.
    """
    if config.get("flags") or config.get("listenerPath"):
        return build_libseccomp(config)
    import os

    # CPython's own sha256 and state.json_dumps rather than hashlib and json: the same digest of the
    # same text, without importing OpenSSL bindings and ``re`` (~5 ms) on every container start.
    from dockyard.digest import sha256_small

    from .state import json_dumps

    key = sha256_small(json_dumps(config, sort_keys=True).encode())
    path = os.path.join(_cache_dir(), key + ".bpf")
    try:
        with open(path, "rb") as f:
            program = f.read()
        if program and len(program) % 8 == 0:
            return CompiledFilter(program)
    except OSError:
        pass
    filt = build_libseccomp(config)
    try:
        os.makedirs(_cache_dir(), mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            rc = filt._lib.seccomp_export_bpf(filt._ctx, fd)
        finally:
            os.close(fd)
        if rc < 0:
            os.unlink(tmp)
            return filt
        with open(tmp, "rb") as f:
            program = f.read()
        os.rename(tmp, path)
    except OSError:
        return filt
    filt.release()
    return CompiledFilter(program)


def build_libseccomp(config: dict[str, object]) -> SeccompFilter:
    """Translate OCI ``linux.seccomp`` into a libseccomp context, without loading it."""
    if config.get("listenerPath"):
        raise RuntimeFailure("seccomp listenerPath (SCMP_ACT_NOTIFY) is not supported by dockyard-runtime")
    lib = _lib()
    default_name = str(config.get("defaultAction") or "")
    default_errno = config.get("defaultErrnoRet")
    default = _action(default_name, int(str(default_errno)) if default_errno is not None else None)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise RuntimeFailure(f"failed to initialise seccomp filter with default action {default_name}")
    filt = SeccompFilter(lib, ctx)
    try:
        if lib.seccomp_attr_set(ctx, _ATTR_CTL_NNP, 0) < 0:
            raise RuntimeFailure("failed to disable libseccomp's no_new_privs attribute")
        for flag in config.get("flags") or []:  # type: ignore[attr-defined]
            attr = _FLAGS.get(str(flag))
            if attr is None:
                raise RuntimeFailure(f"seccomp flag {flag!r} is not supported")
            if lib.seccomp_attr_set(ctx, attr, 1) < 0:
                raise RuntimeFailure(f"seccomp flag {flag!r} is not supported by libseccomp/kernel")
        for arch in config.get("architectures") or []:  # type: ignore[attr-defined]
            name = _ARCHES.get(str(arch))
            if name is None:
                raise RuntimeFailure(f"invalid seccomp architecture {arch!r}")
            token = lib.seccomp_arch_resolve_name(name.encode())
            if token == 0:
                continue
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and -rc != _errno.EEXIST:
                raise RuntimeFailure(f"error adding seccomp architecture {arch}: {_errno_str(-rc)}")
        for rule in config.get("syscalls") or []:  # type: ignore[attr-defined]
            _add_rule(lib, ctx, rule, default)
    except BaseException:
        filt.release()
        raise
    return filt


def _add_rule(lib: ctypes.CDLL, ctx: int, rule: dict[str, object], default: int) -> None:
    errno_ret = rule.get("errnoRet")
    action = _action(str(rule.get("action") or ""), int(str(errno_ret)) if errno_ret is not None else None)
    if action == default:
        return
    arg_cmp = _arg_cmp()
    raw_args = rule.get("args") or []
    assert isinstance(raw_args, list)
    conds = []
    for a in raw_args:
        op = _OPS.get(str(a.get("op")))
        if op is None:
            raise RuntimeFailure(f"invalid seccomp operator {a.get('op')!r}")
        conds.append(arg_cmp(int(a.get("index", 0)), op, int(a.get("value", 0)), int(a.get("valueTwo", 0))))
    indexes = [c.arg for c in conds]
    if len(set(indexes)) == len(indexes):
        groups = [conds]
    else:
        groups = [[c] for c in conds]
    names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
    assert isinstance(names, list)
    for name in names:
        nr = lib.seccomp_syscall_resolve_name(str(name).encode())
        if nr < 0:
            continue  # unknown on this kernel/arch: ignored, as runc does
        for group in groups:
            arr = (arg_cmp * max(1, len(group)))(*group)
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), arr)
            if rc == -_errno.EEXIST:
                continue  # the same rule twice (podman's profile has such duplicates): the first stands
            if rc < 0:
                raise RuntimeFailure(f"failed to add seccomp rule for syscall {name}: {_errno_str(-rc)}")
