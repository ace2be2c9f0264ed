"""Thin ctypes wrappers for the Linux system calls the runtime needs.

Why ctypes rather than a helper binary or a C extension: the container init is a forked copy of the
runtime process, and it must call ``unshare``/``setns``/``mount``/``pivot_root``/``capset`` itself
*before* ``execve``.  Python 3.11 exposes none of these, and re-executing an interpreter or a helper on
the hot path would cost tens of milliseconds.  libc's functions are resolved from the already loaded
libc (``dlopen(NULL)``), never through ``ldconfig``.

What is used of ctypes -- four integer types, char buffers, errno and libc's functions -- is made from
``_ctypes``, the C extension that ``ctypes`` wraps, exactly as ``ctypes/__init__.py`` makes it: the whole
``ctypes`` package costs ~2 ms to import (dozens of classes, ``struct``, ``types``, size checks), a tenth
of a ``dockyard-runtime run``.  Should ``_ctypes`` ever lack a piece, ``ctypes`` itself is used.  Nothing
is loaded until a wrapper is first called: ``start``/``state``/``kill``/``delete`` never need it.

Every wrapper raises ``OSError`` with the real errno, so callers can turn failures into runc-like
messages (``mount ... : operation not permitted``).
"""

from __future__ import annotations

import os

from ..libc import _b as _b
from ..libc import ct as _libc_types
from ..libc import libc as _libc_funcs
from ..libc import mount as mount  # re-exported: the runtime's callers use linux.mount
from .state import proc_start_time as proc_start_time  # re-exported: it used to live here

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# libc through the _ctypes sliver (see dockyard.libc), under the names this module always used.
_ct = _libc_types
_libc = _libc_funcs


# --- namespaces -----------------------------------------------------------------------------------
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

#: OCI namespace type -> (clone flag, name of the file under /proc/<pid>/ns)
NAMESPACES: dict[str, tuple[int, str]] = {
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "mount": (CLONE_NEWNS, "mnt"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "user": (CLONE_NEWUSER, "user"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}

# --- mount(2) -------------------------------------------------------------------------------------
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MS_PROPAGATION = MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE
MNT_DETACH = 2

# --- prctl(2) -------------------------------------------------------------------------------------
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# --- ttys -----------------------------------------------------------------------------------------
TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431

CLOSE_RANGE_CLOEXEC = 1 << 2

# --- network interfaces ---------------------------------------------------------------------------
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

_SYSCALLS = {
    # machine: numbers of the syscalls glibc has no wrapper for
    "x86_64": {"pivot_root": 155, "keyctl": 250},
    "aarch64": {"pivot_root": 41, "keyctl": 219},
    "riscv64": {"pivot_root": 41, "keyctl": 219},
    "ppc64le": {"pivot_root": 203, "keyctl": 271},
    "s390x": {"pivot_root": 217, "keyctl": 280},
}
KEYCTL_JOIN_SESSION_KEYRING = 1
KEYCTL_SETPERM = 5

#: Capability names in kernel bit order (include/uapi/linux/capability.h).
CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
CAP_BY_NAME: dict[str, int] = {name: i for i, name in enumerate(CAPABILITIES)}

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _raise(what: str, path: str | None = None) -> None:
    err = _ct().get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}" if path is None else os.strerror(err), path)


def umount2(target: str, flags: int = 0) -> None:
    ctypes = _ct()
    if _libc().umount2(_b(target), ctypes.c_int(flags)) != 0:
        _raise("umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    nr = _SYSCALLS.get(os.uname().machine, {}).get("pivot_root")
    if nr is None:
        raise OSError(38, f"pivot_root: unsupported machine {os.uname().machine}")
    ctypes = _ct()
    if _libc().syscall(ctypes.c_long(nr), _b(new_root), _b(put_old)) != 0:
        _raise("pivot_root")


def join_session_keyring(name: str) -> int:
    """A new session keyring named ``name`` (runc gives each container one: "_ses.<id>"), so the
    container does not share the caller's session keyring.  Returns its serial."""
    nr = _SYSCALLS.get(os.uname().machine, {}).get("keyctl")
    if nr is None:
        raise OSError(38, "keyctl: unsupported machine")
    ctypes = _ct()
    ret = _libc().syscall(ctypes.c_long(nr), ctypes.c_int(KEYCTL_JOIN_SESSION_KEYRING), _b(name))
    if ret < 0:
        _raise("keyctl(JOIN_SESSION_KEYRING)")
    return int(ret)


def set_key_perm(serial: int, perm: int) -> None:
    ctypes = _ct()
    nr = _SYSCALLS[os.uname().machine]["keyctl"]
    if _libc().syscall(ctypes.c_long(nr), ctypes.c_int(KEYCTL_SETPERM), ctypes.c_int(serial), ctypes.c_uint(perm)) < 0:
        _raise("keyctl(SETPERM)")


def unshare(flags: int) -> None:
    ctypes = _ct()
    if _libc().unshare(ctypes.c_int(flags)) != 0:
        _raise("unshare")


def setns(fd: int, nstype: int = 0) -> None:
    ctypes = _ct()
    if _libc().setns(ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
        _raise("setns")


def sethostname(name: str) -> None:
    ctypes = _ct()
    raw = name.encode()
    if _libc().sethostname(raw, ctypes.c_size_t(len(raw))) != 0:
        _raise("sethostname")


def setdomainname(name: str) -> None:
    ctypes = _ct()
    raw = name.encode()
    if _libc().setdomainname(raw, ctypes.c_size_t(len(raw))) != 0:
        _raise("setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    ctypes = _ct()
    ret = _libc().prctl(
        ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)
    )
    if ret < 0:
        _raise(f"prctl({option})")
    return int(ret)


def close_range_cloexec(first: int) -> None:
    """Mark every fd >= ``first`` close-on-exec, so nothing of the runtime leaks into the container."""
    ctypes = _ct()
    if _libc().close_range(ctypes.c_uint(first), ctypes.c_uint(0xFFFFFFFF), ctypes.c_int(CLOSE_RANGE_CLOEXEC)) != 0:
        # Kernels before 5.11: fall back to walking /proc/self/fd.
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd >= first:
                try:
                    os.set_inheritable(fd, False)  # sets FD_CLOEXEC
                except OSError:
                    pass


def loopback_up() -> None:
    """Bring ``lo`` up in the caller's network namespace (a new one starts with it down), as runc's
    init does for a new network namespace: SIOCGIFFLAGS/SIOCSIFFLAGS on a plain AF_INET socket."""
    import sys

    ctypes = _ct()
    libc = _libc()
    fd = libc.socket(ctypes.c_int(2), ctypes.c_int(2 | 0o2000000), ctypes.c_int(0))  # AF_INET, SOCK_DGRAM|CLOEXEC
    if fd < 0:
        _raise("socket")
    try:
        ifr = ctypes.create_string_buffer(b"lo", 40)  # struct ifreq: name[16], then ifr_flags (short)
        if libc.ioctl(ctypes.c_int(fd), ctypes.c_ulong(SIOCGIFFLAGS), ifr) != 0:
            _raise("ioctl(SIOCGIFFLAGS)")
        flags = int.from_bytes(ifr.raw[16:18], sys.byteorder)
        if not flags & IFF_UP:
            ifr = ctypes.create_string_buffer(b"lo".ljust(16, b"\0") + (flags | IFF_UP).to_bytes(2, sys.byteorder), 40)
            if libc.ioctl(ctypes.c_int(fd), ctypes.c_ulong(SIOCSIFFLAGS), ifr) != 0:
                _raise("ioctl(SIOCSIFFLAGS)")
    finally:
        os.close(fd)


RLIM_INFINITY = -1  # an unlimited value, as Python's ``resource`` reports it
_RLIM_MASK = (1 << 64) - 1


def setrlimit(resource: int, limits: tuple[int, int]) -> None:
    """``resource.setrlimit`` -- same values (-1: unlimited), same errors -- via prlimit(2): the
    ``resource`` extension is one more shared object to load on every container start."""
    import sys

    ctypes = _ct()
    new = b"".join((v & _RLIM_MASK).to_bytes(8, sys.byteorder) for v in limits)
    if _libc().prlimit(ctypes.c_int(0), ctypes.c_int(resource), new, None) != 0:
        err = ctypes.get_errno()
        if err == 22:  # EINVAL
            raise ValueError("current limit exceeds maximum limit")
        if err == 1:  # EPERM
            raise ValueError("not allowed to raise maximum limit")
        raise OSError(err, os.strerror(err))


def getrlimit(resource: int) -> tuple[int, int]:
    """``resource.getrlimit``: (soft, hard), -1 for unlimited."""
    import sys

    ctypes = _ct()
    old = ctypes.create_string_buffer(16)
    if _libc().prlimit(ctypes.c_int(0), ctypes.c_int(resource), None, old) != 0:
        _raise("getrlimit")
    raw = old.raw
    soft, hard = (int.from_bytes(raw[i : i + 8], sys.byteorder, signed=True) for i in (0, 8))
    return soft, hard


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except OSError:
        return len(CAPABILITIES) - 1


def cap_mask(names: list[str] | None, last: int) -> int:
    """Bit mask for capability names; unknown or too-new names are ignored, as runc does (with a warning)."""
    mask = 0
    for name in names or ():
        n = CAP_BY_NAME.get(name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper())
        if n is not None and n <= last:
            mask |= 1 << n
    return mask


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of the calling thread."""
    import sys

    ctypes = _ct()
    hdr = _LINUX_CAPABILITY_VERSION_3.to_bytes(4, sys.byteorder) + bytes(4)  # {version, pid 0}
    data = ctypes.create_string_buffer(24)  # struct __user_cap_data_struct[2]
    if _libc().capget(hdr, data) != 0:
        _raise("capget")
    raw = data.raw
    e0, p0, i0, e1, p1, i1 = (int.from_bytes(raw[i : i + 4], sys.byteorder) for i in range(0, 24, 4))
    return e0 | e1 << 32, p0 | p1 << 32, i0 | i1 << 32


def capset(effective: int, permitted: int, inheritable: int) -> None:
    import sys

    hdr = _LINUX_CAPABILITY_VERSION_3.to_bytes(4, sys.byteorder) + bytes(4)
    m = 0xFFFFFFFF
    words = (effective & m, permitted & m, inheritable & m, effective >> 32 & m, permitted >> 32 & m,
             inheritable >> 32 & m)  # fmt: skip
    if _libc().capset(hdr, b"".join(w.to_bytes(4, sys.byteorder) for w in words)) != 0:
        _raise("capset")


# --- file descriptors over unix sockets (SCM_RIGHTS) ------------------------------------------------
# ``socket.send_fds``/``recv_fds`` are thin wrappers over sendmsg/recvmsg; they live in ``socket``, whose
# import builds a dozen IntEnums (~3 ms with ``enum``).  These work on any socket object, the C
# ``_socket.socket`` included, and pack the fds as native ints exactly as the ``array("i")`` there does.
def send_fds(sock: Any, buffers: list[bytes], fds: list[int], flags: int = 0, address: Any = None) -> int:
    """``socket.send_fds``: send ``buffers`` with ``fds`` attached as one SCM_RIGHTS message."""
    import _socket
    import sys

    data = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
    ancillary = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, data)]
    if address is None:
        return int(sock.sendmsg(buffers, ancillary, flags))
    return int(sock.sendmsg(buffers, ancillary, flags, address))


def recv_fds(sock: Any, bufsize: int, maxfds: int, flags: int = 0) -> tuple[bytes, list[int], int, Any]:
    """``socket.recv_fds``: (data, fds, message flags, address), up to ``maxfds`` descriptors."""
    import _socket
    import sys

    msg, ancdata, msg_flags, addr = sock.recvmsg(bufsize, _socket.CMSG_LEN(maxfds * 4), flags)
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(int.from_bytes(data[i:i + 4], sys.byteorder, signed=True) for i in range(0, usable, 4))
    return msg, fds, msg_flags, addr
