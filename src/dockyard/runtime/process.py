"""Turning an OCI ``process`` object into the state of the calling (forked) process, then ``execve``.

Shared by the container init and by ``exec``.  The order is runc's and matters:

* rlimits before capabilities are dropped (raising a limit needs CAP_SYS_RESOURCE);
* the capability bounding set is reduced while we still have CAP_SETPCAP;
* ``PR_SET_KEEPCAPS`` across ``setgroups``/``setresgid``/``setresuid`` so a non-root user can still
  receive the configured capabilities, then ``capset`` and the ambient set;
* without ``noNewPrivileges`` the seccomp filter must be loaded *before* CAP_SYS_ADMIN is dropped;
  with it, as late as possible (right before ``execve``).
"""

from __future__ import annotations

import errno
import os
import stat

from ..errors import CommandNotExecutable, CommandNotFound, RuntimeFailure
from . import linux as L

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal  # the C module: ``signal`` wraps it in enums, and ``enum`` costs ~4 ms

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}  # fmt: skip


def apply_rlimits(rlimits: list[dict[str, object]]) -> None:
    if not rlimits:
        return
    for r in rlimits:
        name = str(r.get("type"))
        num = RLIMITS.get(name)
        if num is None:
            raise RuntimeFailure(f"invalid rlimit type {name}")
        soft = int(str(r.get("soft", 0)))
        hard = int(str(r.get("hard", 0)))
        soft = L.RLIM_INFINITY if soft >= 2**63 - 1 or soft < 0 else soft
        hard = L.RLIM_INFINITY if hard >= 2**63 - 1 or hard < 0 else hard
        try:
            L.setrlimit(num, (soft, hard))
        except (OSError, ValueError) as e:
            cur_hard = L.getrlimit(num)[1]
            why = e.strerror.lower() if isinstance(e, OSError) and e.strerror else str(e)
            hint = ""
            if isinstance(e, (OSError, ValueError)) and (hard == L.RLIM_INFINITY or hard > cur_hard):
                hint = f" (raising the hard limit above {cur_hard} needs CAP_SYS_RESOURCE)"
            raise RuntimeFailure(f"error setting rlimit type {name} (soft={soft}, hard={hard}): {why}{hint}")


def _passwd_entries(path: str) -> list[list[str]]:
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(user: dict[str, object]) -> tuple[int, int, list[int], str]:
    """(uid, gid, supplementary gids, home), as runc computes them for a numeric OCI user.

    Supplementary groups are exactly ``additionalGids`` (runc does not add /etc/group memberships for
    a numeric uid -- verified against runc 1.1); HOME comes from /etc/passwd, default ``/``.
    """
    uid = int(str(user.get("uid", 0)))
    gid = int(str(user.get("gid", 0)))
    home = "/"
    for ent in _passwd_entries("/etc/passwd"):
        if len(ent) >= 6 and ent[2] == str(uid):
            home = ent[5] or "/"
            break
    groups: list[int] = []
    for g in user.get("additionalGids") or []:  # type: ignore[attr-defined]
        if int(g) not in groups:
            groups.append(int(g))
    return uid, gid, groups, home


def build_env(process: dict[str, object], home: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in process.get("env") or []:  # type: ignore[attr-defined]
        k, sep, v = str(item).partition("=")
        if sep:
            env[k] = v
    env.setdefault("HOME", home)
    return env


def look_path(name: str, env: dict[str, str]) -> str:
    """Go's exec.LookPath with the container's PATH, with runc's error wording (and Docker's codes)."""
    if not name:
        raise CommandNotFound('exec: "": executable file not found in $PATH')
    if "/" in name:
        try:
            st = os.stat(name)
        except OSError as e:
            raise CommandNotFound(f'exec: "{name}": stat {name}: {(e.strerror or "").lower()}')
        if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
            raise CommandNotExecutable(f'exec: "{name}": permission denied')
        return name
    for d in env.get("PATH", "").split(":"):
        candidate = os.path.join(d or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) and st.st_mode & 0o111:
            return candidate
    raise CommandNotFound(f'exec: "{name}": executable file not found in $PATH')


def chdir_cwd(cwd: str) -> None:
    try:
        os.chdir(cwd or "/")
    except OSError as e:
        raise RuntimeFailure(f'chdir to cwd ("{cwd}") set in config.json failed: {(e.strerror or "").lower()}')


def drop_bounding(caps: dict[str, list[str]] | None, last: int) -> None:
    if caps is None:
        return
    keep = L.cap_mask(caps.get("bounding"), last)
    for n in range(last + 1):
        if not keep & (1 << n):
            try:
                L.prctl(L.PR_CAPBSET_DROP, n)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise RuntimeFailure(f"unable to drop capability {L.CAPABILITIES[n]} from bounding set: {e}")


def switch_user(uid: int, gid: int, groups: list[int], *, set_groups: bool = True) -> None:
    try:
        if set_groups:
            os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise RuntimeFailure(f"unable to set user {uid}:{gid} (groups {groups}): {e.strerror}")


def apply_caps(caps: dict[str, list[str]] | None, last: int) -> None:
    if caps is None:
        return
    eff = L.cap_mask(caps.get("effective"), last)
    perm = L.cap_mask(caps.get("permitted"), last)
    inh = L.cap_mask(caps.get("inheritable"), last)
    amb = L.cap_mask(caps.get("ambient"), last)
    try:
        L.capset(eff, perm, inh)
    except OSError as e:
        raise RuntimeFailure(f"unable to apply capabilities: {e}")
    try:
        L.prctl(L.PR_CAP_AMBIENT, L.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        return  # kernel without ambient capabilities
    for n in range(last + 1):
        if amb & (1 << n):
            try:
                L.prctl(L.PR_CAP_AMBIENT, L.PR_CAP_AMBIENT_RAISE, n)
            except OSError:
                pass  # not in permitted+inheritable: the kernel refuses, runc ignores it too


def finalize_identity(process: dict[str, object], *, userns_setgroups: bool = True) -> None:
    """Bounding set, user switch with KEEPCAPS, capabilities (and umask)."""
    caps = process.get("capabilities")
    caps_d = caps if isinstance(caps, dict) else None
    last = L.last_cap()
    user = process.get("user")
    uid, gid, groups, _home = resolve_user(user if isinstance(user, dict) else {})
    drop_bounding(caps_d, last)
    L.prctl(L.PR_SET_KEEPCAPS, 1)
    switch_user(uid, gid, groups, set_groups=userns_setgroups)
    L.prctl(L.PR_SET_KEEPCAPS, 0)
    apply_caps(caps_d, last)


def reset_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ (and the caller may have inherited other ignored signals);
    ignored dispositions survive execve, so reset those to the default.  Caught signals need nothing:
    execve resets them itself.  ``getsignal`` is Python's record of every disposition (read from the
    kernel at start-up, updated by ``signal.signal``), so this costs a sigaction per ignored signal
    rather than one per signal."""
    ign = signal.SIG_IGN
    for sig in range(1, signal.NSIG):
        try:
            if signal.getsignal(sig) == ign:
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def setup_console(sock_fd: int, process: dict[str, object], mount_console: bool) -> int:
    """Open a pty in the container's devpts, send the master over the console socket; return the slave.

    The master travels with SCM_RIGHTS and the pty's path as the message body -- exactly runc's
    protocol, which is what conmon and ``recvtty`` expect.
    """
    # These three are preloaded by the caller before pivot_root (see builtin.preload): the C modules
    # under ``socket`` and ``struct``, whose wrappers cost milliseconds (``socket`` builds IntEnums).
    import _socket
    import _struct
    import fcntl

    try:
        master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeFailure(f"failed to open /dev/ptmx in the container: {e.strerror}")
    fcntl.ioctl(master, L.TIOCSPTLCK, _struct.pack("i", 0))
    n = _struct.unpack("I", fcntl.ioctl(master, L.TIOCGPTN, _struct.pack("I", 0)))[0]
    slave_path = f"/dev/pts/{n}"
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    size = process.get("consoleSize")
    if isinstance(size, dict):
        winsize = _struct.pack("HHHH", int(size.get("height", 0)), int(size.get("width", 0)), 0, 0)
        fcntl.ioctl(slave, L.TIOCSWINSZ, winsize)
    if mount_console:
        try:
            if not os.path.lexists("/dev/console"):
                os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
            L.mount(slave_path, "/dev/console", None, L.MS_BIND)
        except OSError:
            pass  # a read-only /dev: the console is a convenience, not a requirement
    sock = _socket.socket(fileno=sock_fd)
    try:
        L.send_fds(sock, [slave_path.encode()], [master])
    except OSError as e:
        raise RuntimeFailure(f"failed to send the console master over the console socket: {e.strerror}")
    finally:
        sock.close()
        os.close(master)
    return slave


def take_console(slave: int) -> None:
    """Make the pty slave stdin/stdout/stderr and our controlling terminal (we are a session leader)."""
    import fcntl  # preloaded
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    fcntl.ioctl(0, L.TIOCSCTTY, 0)


def exec_error(path: str, e: OSError) -> tuple[str, str]:
    """(kind, message) for a failed execve, with the same kinds as look_path."""
    msg = (e.strerror or str(e)).lower()
    kind = "notexec" if e.errno in (errno.EACCES, errno.EPERM, errno.ENOEXEC, errno.EISDIR) else "notfound"
    return kind, f'exec: "{path}": {msg}'
