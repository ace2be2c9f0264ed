"""Dockyard's built-in OCI runtime: runc's lifecycle, implemented with ``os.fork`` and ctypes.

Process layout of ``create`` (no interpreter is ever re-executed)::

    caller (engine or dockyard-runtime CLI)          -- validates, builds seccomp; after the fork,
      │                                                 creates the cgroup, says "cgroup", copies the
      │                                                 config, pre-writes state.json
      └─ fork: intermediate                          -- joins ``path`` namespaces, unshares user ns
           │                                            (caller writes the id maps), unshares the rest,
           │                                            joins a new session keyring, brings ``lo`` up
           │                                            in a new netns, joins the cgroup, forks,
           │                                            reports the pid, exits
           └─ fork: init (pid 1 of a new pid ns)     -- mounts, devices, pivot_root, sysctl, console,
                                                        masks, rlimits, user, caps; reports "ready";
                                                        blocks opening ``exec.fifo`` for write

When there is no user namespace, no namespace joined by path and no time namespace -- Docker's default
container -- there is no intermediate: the caller unshares the pid namespace for its next child only,
forks the init directly (which takes the intermediate's steps itself) and returns to its own pid
namespace (``_fork_direct``).

The caller makes the cgroup while the intermediate makes the namespaces -- they take about as long --
unless the intermediate has to join it first thing (a new cgroup namespace, a user namespace, a joined
mount namespace): then the cgroup is made before the fork, as runc does.  The intermediate always
joins by writing "0" (see ``Cgroup.join``), so the init is in the cgroup from its first instruction.

Because the intermediate exits, the init is re-parented to the caller's nearest child subreaper (the
engine's monitor sets ``PR_SET_CHILD_SUBREAPER``), never to a long-lived runtime.  ``start`` opens the
fifo for reading, which releases the init; the init writes ``0``, runs startContainer hooks, loads
seccomp and ``execve``s.  The init holds a write end of the fifo from before "ready" to its execve, all
close-on-exec, so ``start`` just reads until EOF: extra bytes mean the exec failed and carry the error,
which ``start`` raises -- an exact "did it exec?" answer, with no polling.

Messages from children to the caller travel over a pipe as ``<kind> <payload>\\n`` lines (each under
PIPE_BUF, so lines from the two children never interleave): ``pid N``, ``usermap``, ``hooks``,
``ready``, ``error {"type":..., "msg":...}``.  The caller answers ``cgroup``/``ok``/``fail`` on a
second pipe.
"""

from __future__ import annotations

import os

from ..cpus import elsewhere
from ..errors import (
    CommandNotExecutable,
    CommandNotFound,
    Conflict,
    ContainerNotFound,
    DockyardError,
    InvalidArgument,
    RuntimeFailure,
)
from . import cgroups as CG
from . import linux as L
from .hooks import hooks_of, run_hooks, warn
from .state import (
    CONFIG_FILE,
    FIFO_FILE,
    OCI_VERSION,
    OCIState,
    StateStore,
    json_dumps,
    json_loads,
    pid_alive,
    proc_start_time,
    rfc3339_now,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from typing import NoReturn
else:
    import _signal as signal  # the C module: ``signal`` wraps it in enums, and ``enum`` costs ~4 ms

DEFAULT_ROOT = "/run/dockyard/runtime"
_NS_ORDER = ("user", "mount")  # user first (it owns the others), mount last (paths above stay valid)


# --- child <-> caller messages -----------------------------------------------------------------------
class _Channel:
    """Line-oriented reader over a pipe fd."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def recv(self) -> tuple[str, str] | None:
        while b"\n" not in self.buf:
            try:
                chunk = os.read(self.fd, 65536)
            except InterruptedError:
                continue
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        kind, _, payload = line.decode(errors="replace").partition(" ")
        return kind, payload


def _send(fd: int, kind: str, payload: str = "") -> None:
    os.write(fd, f"{kind} {payload}\n".encode())


def _error_payload(exc: BaseException) -> str:
    if isinstance(exc, CommandNotFound):
        kind = "notfound"
    elif isinstance(exc, CommandNotExecutable):
        kind = "notexec"
    elif isinstance(exc, DockyardError):
        kind = "failure"
    elif isinstance(exc, OSError):
        kind = "failure"
        exc = RuntimeFailure(f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}")
    else:
        kind = "failure"
        exc = RuntimeFailure(f"{type(exc).__name__}: {exc}")
    return json_dumps({"type": kind, "msg": str(exc)[:3500]})


def _raise_payload(payload: str) -> NoReturn:
    try:
        data = json_loads(payload)
        kind, msg = data["type"], data["msg"]
    except (ValueError, KeyError, TypeError):
        kind, msg = "failure", payload
    if kind == "notfound":
        raise CommandNotFound(msg)
    if kind == "notexec":
        raise CommandNotExecutable(msg)
    raise RuntimeFailure(msg)


# --- config helpers ----------------------------------------------------------------------------------
def load_config(bundle: str) -> dict[str, object]:
    return _load_config(bundle)[0]


def _load_config(bundle: str) -> tuple[dict[str, object], bytes]:
    """(parsed config, raw bytes): the raw bytes are copied into the state dir as they are."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        cfg = json_loads(raw)
    except FileNotFoundError:
        raise InvalidArgument(f"JSON specification file {path} not found")
    except ValueError as e:
        raise InvalidArgument(f"invalid JSON in {path}: {e}")
    if not isinstance(cfg, dict):
        raise InvalidArgument(f"{path}: the configuration must be a JSON object")
    proc = cfg.get("process")
    if not isinstance(proc, dict) or not proc.get("args"):
        raise InvalidArgument(f"{path}: process.args must be a non-empty list")
    root = cfg.get("root")
    if not isinstance(root, dict) or not root.get("path"):
        raise InvalidArgument(f"{path}: root.path is required")
    return cfg, raw


def _linux(cfg: dict[str, object]) -> dict[str, object]:
    linux = cfg.get("linux")
    return linux if isinstance(linux, dict) else {}


def _ns_plan(linux: dict[str, object]) -> tuple[int, list[tuple[str, str]], set[str]]:
    """(clone flags to unshare, [(type, path) to setns], all types) from linux.namespaces."""
    flags = 0
    joins: list[tuple[str, str]] = []
    types: set[str] = set()
    for ns in linux.get("namespaces") or []:  # type: ignore[attr-defined]
        t = str(ns.get("type"))
        if t not in L.NAMESPACES:
            raise InvalidArgument(f"namespace type {t!r} is not supported")
        if t in types:
            raise InvalidArgument(f"malformed spec: duplicated namespace {t!r}")
        types.add(t)
        if ns.get("path"):
            joins.append((t, str(ns["path"])))
        else:
            flags |= L.NAMESPACES[t][0]
    joins.sort(key=lambda j: (0 if j[0] == "user" else 2 if j[0] == "mount" else 1))
    return flags, joins, types


def _parse_signal(sig: int | str) -> int:
    if isinstance(sig, int):
        return sig
    s = sig.strip().upper()
    if s.isdigit():
        return int(s)
    if not s.startswith("SIG"):
        s = "SIG" + s
    try:
        return int(getattr(signal, s))
    except AttributeError:
        raise InvalidArgument(f"unknown signal {sig!r}")


def _write_pid_file(path: str, pid: int) -> None:
    from ..atomic import write_atomic

    write_atomic(os.path.abspath(path), str(pid))


def _wait_gone(pid: int, start_time: int | None, timeout: float) -> None:
    """Wait (at most ``timeout`` s) until ``pid`` -- not our child -- has exited: woken by its pidfd
    rather than by polling /proc every few milliseconds, where the kernel has pidfds."""
    if not pid_alive(pid, start_time):
        return
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (OSError, AttributeError):
        fd = -1
    import time

    deadline = time.monotonic() + timeout
    try:
        if fd >= 0 and pid_alive(pid, start_time):  # still the same process: the pidfd is its own
            import select

            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.poll(int(timeout * 1000))  # readable once it has exited
        while pid_alive(pid, start_time) and time.monotonic() < deadline:
            time.sleep(0.002)
    finally:
        if fd >= 0:
            os.close(fd)


def _connect_console(path: str) -> int:
    import _socket  # the C module: ``socket`` builds a dozen IntEnums on import

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise RuntimeFailure(f"failed to connect to console socket {path}: {e.strerror}")
    return s.detach()


def _write_id_maps(pid: int, linux: dict[str, object]) -> None:
    for key, name in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
        maps = linux.get(key) or []
        text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)  # type: ignore[attr-defined]
        if not text:
            raise RuntimeFailure(f"a new user namespace needs linux.{key}")
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        except OSError as e:
            raise RuntimeFailure(f"failed to write {name} for the container: {e.strerror}")


def _host_id(maps: list[dict[str, int]], cid: int) -> int:
    for m in maps:
        if m["containerID"] <= cid < m["containerID"] + m["size"]:
            return m["hostID"] + cid - m["containerID"]
    return cid


_SYSCTL_NS = (
    ("kernel.msgmax", "ipc"), ("kernel.msgmnb", "ipc"), ("kernel.msgmni", "ipc"), ("kernel.sem", "ipc"),
    ("kernel.shmall", "ipc"), ("kernel.shmmax", "ipc"), ("kernel.shmmni", "ipc"),
    ("kernel.shm_rmid_forced", "ipc"), ("fs.mqueue.", "ipc"), ("net.", "network"),
    ("kernel.hostname", "uts"), ("kernel.domainname", "uts"),
)  # fmt: skip


def _check_sysctls(sysctl: dict[str, str], types: set[str]) -> None:
    """runc's validation: a sysctl is only allowed if the namespace it belongs to is the container's."""
    for key in sysctl:
        for prefix, ns in _SYSCTL_NS:
            if key == prefix or (prefix.endswith(".") and key.startswith(prefix)):
                if ns not in types:
                    where = {"ipc": "IPC", "network": "network", "uts": "UTS"}[ns]
                    raise RuntimeFailure(f"sysctl {key!r} is not allowed in the host's {where} namespace")
                break
        else:
            raise RuntimeFailure(f"sysctl {key!r} is not in a separate kernel namespace")


def preload(config: dict[str, object], process: dict[str, object], stdio: bool = False) -> None:
    """Import, before fork, every module the children import lazily.

    After ``pivot_root`` the container cannot see the host's Python standard library, so a lazy import
    there fails with ModuleNotFoundError.  Only what this config needs is loaded (socket and subprocess
    cost milliseconds).
    """
    if process.get("terminal") or stdio:
        import fcntl  # noqa: F401
    if process.get("terminal"):
        import _socket  # noqa: F401
        import _struct  # noqa: F401
    if isinstance(config.get("hooks"), dict) and config["hooks"]:
        import subprocess  # noqa: F401
    from . import process as _process  # noqa: F401
    from . import rootfs  # noqa: F401

    L._libc()  # the ctypes sliver


# --- the forked children ---------------------------------------------------------------------------
class _Child:
    """Everything the two forked children need; built by the caller before ``fork``."""

    def __init__(self, **kw: object) -> None:
        self.config: dict[str, object] = kw["config"]  # type: ignore[assignment]
        self.linux = _linux(self.config)
        self.process: dict[str, object] = kw["process"]  # type: ignore[assignment]
        self.bundle = str(kw.get("bundle") or "")
        self.rootfs = str(kw.get("rootfs") or "")
        self.cg: CG.Cgroup = kw["cg"]  # type: ignore[assignment]
        self.seccomp = kw.get("seccomp")
        self.new_flags = int(kw.get("new_flags") or 0)  # type: ignore[call-overload]
        self.joins: list[tuple[str, str]] = kw.get("joins") or []  # type: ignore[assignment]
        self.types: set[str] = kw.get("types") or set()  # type: ignore[assignment]
        self.c2p = int(kw["c2p"])  # type: ignore[call-overload]
        self.p2c = int(kw["p2c"])  # type: ignore[call-overload]
        self.stdio: tuple[int, int, int] | None = kw.get("stdio")  # type: ignore[assignment]
        self.console_fd: int | None = kw.get("console_fd")  # type: ignore[assignment]
        self.no_pivot = bool(kw.get("no_pivot"))
        #: O_PATH fd of exec.fifo, opened by the caller: the init may not be able to reach the state dir
        self.fifo_fd = int(kw.get("fifo_fd", -1))  # type: ignore[call-overload]
        self.sync_hooks = bool(kw.get("sync_hooks"))
        #: "_ses.<id>" for a new session keyring, or "" (--no-new-keyring, exec)
        self.keyring = str(kw.get("keyring") or "")
        #: fds 3 .. 3+N-1 of the caller are passed on to the process (runc's --preserve-fds)
        self.preserve_fds = int(kw.get("preserve_fds") or 0)  # type: ignore[call-overload]
        self.wait_child = bool(kw.get("wait_child"))
        #: the caller makes the cgroup after the fork and says "cgroup" when the intermediate may join it
        self.late_cgroup = bool(kw.get("late_cgroup"))
        #: every CPU the caller may use, to take back on "cgroup" when the caller moved us off its own
        self.cpus: set[int] | None = kw.get("cpus")  # type: ignore[assignment]
        #: the init's exec.fifo write ends: close-on-exec, even inside the --preserve-fds range
        self.own_fds: set[int] = set()

    # intermediate -------------------------------------------------------------------------------
    def intermediate(self, is_exec: bool) -> NoReturn:
        code = 1
        try:
            self._enter_namespaces(is_exec, self.new_flags)
            pid = os.fork()
            if pid == 0:
                if is_exec:
                    self.exec_child()
                self.init()
            _send(self.c2p, "pid", str(pid))
            code = 0
            if self.wait_child:
                os.close(self.c2p)
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
                code = 128 - code if code < 0 else code
        except BaseException as e:
            try:
                _send(self.c2p, "error", _error_payload(e))
            except OSError:
                pass
        finally:
            os._exit(code)
        raise AssertionError("unreachable")

    def direct_init(self) -> NoReturn:
        """The init forked by the caller itself, which made the pid namespace (``_fork_direct``): the
        intermediate's steps for the other namespaces, in the same order, then the init's."""
        try:
            self._enter_namespaces(False, self.new_flags & ~L.CLONE_NEWPID)
        except BaseException as e:
            try:
                _send(self.c2p, "error", _error_payload(e))
            except OSError:
                pass
            os._exit(1)
        self.init()

    def _enter_namespaces(self, is_exec: bool, new_flags: int) -> None:
        """Cgroup, oom_score_adj, joined and new namespaces, keyring, loopback: what precedes the init."""
        if not self.late_cgroup:
            self.cg.join(0)
        if not is_exec and self.process.get("oomScoreAdj") is not None:
            try:
                with open("/proc/self/oom_score_adj", "w") as f:
                    f.write(str(self.process["oomScoreAdj"]))
            except OSError as e:
                raise RuntimeFailure(
                    f"failed to set oomScoreAdj to {self.process['oomScoreAdj']}: {e.strerror}"
                    + (" (lowering it needs CAP_SYS_RESOURCE)" if e.errno == 13 else "")
                )
        fds = []
        for t, path in self.joins:
            try:
                fds.append((t, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
            except OSError as e:
                raise RuntimeFailure(f"failed to open {t} namespace {path}: {e.strerror}")
        for t, fd in fds:
            try:
                L.setns(fd, L.NAMESPACES[t][0])
            except OSError as e:
                raise RuntimeFailure(f"failed to join {t} namespace: {e.strerror}")
            os.close(fd)
        if new_flags & L.CLONE_NEWUSER:
            L.unshare(L.CLONE_NEWUSER)
            _send(self.c2p, "usermap")
            reply = _Channel(self.p2c).recv()
            if reply is None or reply[0] != "ok":
                os._exit(1)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        rest = new_flags & ~L.CLONE_NEWUSER
        if rest:
            try:
                L.unshare(rest)
            except OSError as e:
                raise RuntimeFailure(f"failed to create namespaces: {e.strerror}")
        # Done here rather than in the init (which inherits both), while the caller is still making
        # the cgroup: runc's init joins a new session keyring and, for a new network namespace,
        # brings "lo" up (it starts down; libcontainer's "loopback" network).
        self._new_keyring()
        if rest & L.CLONE_NEWNET:
            try:
                L.loopback_up()
            except OSError as e:
                raise RuntimeFailure(f"unable to bring up the loopback interface: {e.strerror}")
        if self.late_cgroup:
            reply = _Channel(self.p2c).recv()
            if reply is None or reply[0] != "cgroup":
                os._exit(1)  # the caller failed to set the cgroup up, and reports it
            if self.cpus is not None:
                os.sched_setaffinity(0, self.cpus)
            self.cg.join(0)  # "0", not our pid from the caller: see Cgroup.join
        if rest & L.CLONE_NEWTIME:
            self._time_offsets()

    def _time_offsets(self) -> None:
        offsets = self.linux.get("timeOffsets")
        if not isinstance(offsets, dict):
            return
        lines = "".join(
            f"{clock} {int(v.get('secs', 0))} {int(v.get('nanosecs', 0))}\n" for clock, v in offsets.items()
        )
        with open("/proc/self/timens_offsets", "w") as f:
            f.write(lines)

    # container init -------------------------------------------------------------------------------
    def init(self) -> NoReturn:
        from .process import setup_console  # preloaded
        from .rootfs import RootfsSetup

        ready = False
        wfd = -1
        try:
            os.setsid()
            self._die_on_signals()
            self._dup_stdio()
            fifo_path_fd = self.fifo_fd
            cgroupns = bool(self.new_flags & L.CLONE_NEWCGROUP)
            sources = [(name, path, self._controllers(name)) for name, path in self.cg.bind_sources()]
            rs = RootfsSetup(self.config, self.bundle, self.rootfs, userns="user" in self.types,
                             cgroupns=cgroupns, cgroup_sources=sources)  # fmt: skip
            rs.prepare()
            if not rs.mount_all():
                rs.create_devices()
            state_json = b""
            if self.sync_hooks:
                _send(self.c2p, "hooks")
                reply = _Channel(self.p2c).recv()
                if reply is None or reply[0] != "ok":
                    os._exit(1)
                state_json = reply[1].encode()
                run_hooks(hooks_of(self.config, "createContainer"), "createContainer", state_json)
            rs.pivot(self.no_pivot)
            self._uts()
            sysctl = self.linux.get("sysctl")
            if isinstance(sysctl, dict):
                for key, value in sysctl.items():
                    try:
                        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                            f.write(str(value))
                    except OSError as e:
                        raise RuntimeFailure(f"failed to set sysctl {key}={value}: {e.strerror}")
            slave = -1
            if self.process.get("terminal"):
                if self.console_fd is None:
                    raise RuntimeFailure("process.terminal is set but no console socket was given")
                slave = setup_console(self.console_fd, self.process, mount_console=True)
            rs.mask_and_protect()
            root = self.config.get("root")
            if isinstance(root, dict) and root.get("readonly"):
                rs.readonly_root()
            # Hold a write end of exec.fifo from before "ready" until execve (or death): then `start` can
            # simply block reading it, sure to get our "0" and EOF, never an EOF from before we opened it.
            # Opening a write end without blocking needs a reader: be that reader for a moment -- now,
            # while still root (the fifo is 0622).
            fifo = f"/proc/self/fd/{fifo_path_fd}"
            rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self.own_fds.add(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
            os.close(rfd)
            path, args, env = self._prepare_process(slave)
            _send(self.c2p, "ready")
            os.close(self.c2p)
            os.close(self.p2c)
            ready = True
            # Blocks until `start` opens the fifo for reading.
            wfd = os.open(fifo, os.O_WRONLY | os.O_CLOEXEC)
            self.own_fds.add(wfd)
            os.close(fifo_path_fd)
            os.write(wfd, b"0")
            start_hooks = hooks_of(self.config, "startContainer")
            if start_hooks:
                state = json_loads(state_json)
                state["status"] = "created"  # start was called; the process has not been executed yet
                run_hooks(start_hooks, "startContainer", json_dumps(state).encode())
            self._exec(path, args, env)
        except BaseException as e:
            payload = _error_payload(e)
            try:
                if not ready:
                    _send(self.c2p, "error", payload)
                elif wfd >= 0:
                    os.write(wfd, payload.encode())
                else:
                    os.write(2, f"dockyard-runtime init: {json_loads(payload)['msg']}\n".encode())
            except OSError:
                pass
            os._exit(127 if '"notfound"' in payload else 126 if '"notexec"' in payload else 1)
        raise AssertionError("unreachable")

    @staticmethod
    def _die_on_signals() -> None:
        """Until execve, terminating signals end the init.  As pid 1 of its namespace it would ignore
        them (the kernel drops default-action signals to a namespace init), so a created container
        could not be stopped with SIGTERM -- unlike runc's, whose Go init has handlers."""

        def die(signum: int, _frame: object) -> None:
            os._exit(128 + signum)

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, die)

    def _new_keyring(self) -> None:
        """runc's session keyring per container: possessor gets all, user/group/other only view."""
        if not self.keyring:
            return
        try:
            serial = L.join_session_keyring(self.keyring)
        except OSError as e:
            if e.errno in (38, 1, 13):  # ENOSYS/EPERM/EACCES: keyrings unavailable here; best effort
                return
            raise RuntimeFailure(f"unable to join session keyring: {e.strerror}")
        try:
            L.set_key_perm(serial, 0x3F1F0000 | 0x00080000 | 0x00000800 | 0x00000008)
        except OSError:
            pass

    def _controllers(self, name: str) -> list[str]:
        controllers = getattr(self.cg, "controllers", {})
        for mnt, ctrls in controllers.items():
            if os.path.basename(mnt) == name:
                return list(ctrls)
        return [name]

    def _dup_stdio(self) -> None:
        """Install the caller's stdio as 0/1/2 -- via high copies, so (1, 0, 2)-like swaps work."""
        if self.stdio is None:
            return
        import fcntl

        copies = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in self.stdio]
        for target, fd in enumerate(copies):
            os.dup2(fd, target)
            os.close(fd)

    def _uts(self) -> None:
        for key, setter in (("hostname", L.sethostname), ("domainname", L.setdomainname)):
            value = self.config.get(key)
            if not value:
                continue
            if "uts" not in self.types:
                raise RuntimeFailure(f"unable to set {key} without a private UTS namespace")
            try:
                setter(str(value))
            except OSError as e:
                raise RuntimeFailure(f"failed to set {key}: {e.strerror}")

    def _prepare_process(self, slave: int) -> tuple[str, list[str], dict[str, str]]:
        """Everything up to (not including) execve, in runc's order; returns what to exec."""
        from .process import (  # preloaded
            apply_rlimits,
            build_env,
            chdir_cwd,
            finalize_identity,
            look_path,
            resolve_user,
            take_console,
        )

        proc = self.process
        user = proc.get("user") if isinstance(proc.get("user"), dict) else {}
        assert isinstance(user, dict)
        umask = user.get("umask")
        os.umask(int(str(umask)) if umask is not None else 0o022)
        apply_rlimits(proc.get("rlimits") or [])  # type: ignore[arg-type]
        if proc.get("noNewPrivileges"):
            L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
        cwd = str(proc.get("cwd") or "/")
        chdir_cwd(cwd)
        _, _, _, home = resolve_user(user)
        env = build_env(proc, home)
        args = [str(a) for a in proc.get("args") or []]  # type: ignore[attr-defined]
        path = look_path(args[0], env)
        if slave >= 0:
            take_console(slave)
        if self.seccomp is not None and not proc.get("noNewPrivileges"):
            self.seccomp.load()  # type: ignore[attr-defined]
        setgroups_ok = True
        if "user" in self.types:
            try:
                with open("/proc/self/setgroups") as f:
                    setgroups_ok = f.read().strip() != "deny"
            except OSError:
                pass
        finalize_identity(proc, userns_setgroups=setgroups_ok)
        chdir_cwd(cwd)
        return path, args, env

    def _exec(self, path: str, args: list[str], env: dict[str, str]) -> NoReturn:
        from .process import exec_error, reset_signals  # preloaded

        if self.seccomp is not None and self.process.get("noNewPrivileges"):
            self.seccomp.load()  # type: ignore[attr-defined]
        reset_signals()
        for fd in range(3, 3 + self.preserve_fds):
            if fd in self.own_fds:
                continue  # a hole in the caller's range, filled by our exec.fifo: never the container's
            try:
                os.set_inheritable(fd, True)
            except OSError:
                pass
        L.close_range_cloexec(3 + self.preserve_fds)
        try:
            os.execve(path, args, env)
        except OSError as e:
            kind, msg = exec_error(args[0], e)
            raise (CommandNotExecutable if kind == "notexec" else CommandNotFound)(msg)

    # exec'd process --------------------------------------------------------------------------------
    def exec_child(self) -> NoReturn:
        from .process import setup_console  # preloaded

        try:
            os.setsid()
            self._dup_stdio()
            slave = -1
            if self.process.get("terminal"):
                if self.console_fd is None:
                    raise RuntimeFailure("process.terminal is set but no console socket was given")
                slave = setup_console(self.console_fd, self.process, mount_console=False)
            path, args, env = self._prepare_process(slave)
            self._exec(path, args, env)
        except BaseException as e:
            try:
                _send(self.c2p, "error", _error_payload(e))
            except OSError:
                pass
            os._exit(127 if isinstance(e, CommandNotFound) else 126 if isinstance(e, CommandNotExecutable) else 1)
        raise AssertionError("unreachable")


def _fork_direct(child: _Child, c2p_r: int, p2c_w: int) -> int:
    """Fork the init straight into a new pid namespace, made by this process for its next child only.

    unshare(CLONE_NEWPID) moves only the caller's future children, so runc (and the intermediate here)
    fork twice. When nothing else needs the intermediate (no user namespace, no namespace joined by path,
    no time namespace), the caller unshares it, forks the init as pid 1, and goes straight back to its
    own pid namespace for any later child: one process and one fork fewer per container. (A fork from
    another thread of the caller in between would land in the new namespace: the engine's monitor and
    the CLI have no other thread while they create.)
    """
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        L.unshare(L.CLONE_NEWPID)
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(c2p_r)
                    os.close(p2c_w)
                    child.direct_init()
                finally:
                    os._exit(1)
        finally:
            L.setns(own, L.CLONE_NEWPID)
    finally:
        os.close(own)
    return pid


def _fork_intermediate(child: _Child, c2p_r: int, p2c_w: int, *, is_exec: bool) -> int:
    """Fork the intermediate process; in the child, drop the parent's pipe ends and never return."""
    a_pid = os.fork()
    if a_pid == 0:  # never return into the caller's stack from a child
        try:
            os.close(c2p_r)
            os.close(p2c_w)
            child.intermediate(is_exec=is_exec)
        finally:
            os._exit(1)
    return a_pid


# --- the runtime -----------------------------------------------------------------------------------
class BuiltinRuntime:
    """The ``Runtime`` interface (see ``dockyard.runtime``) implemented in-process."""

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_ROOT) -> None:
        self.store = StateStore(root)

    # create -----------------------------------------------------------------------------------------
    def create(
        self,
        id: str,
        bundle: str | os.PathLike[str],
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: str | None = None,
        pid_file: str | None = None,
        no_pivot: bool = False,
        console_fd: int | None = None,
        no_new_keyring: bool = False,
        preserve_fds: int = 0,
        _loaded: tuple[dict[str, object], bytes] | None = None,
    ) -> int:
        """Set the container up and leave its init waiting for ``start``; return the init's host pid.

        ``console_fd`` (instead of ``console_socket``) is an already connected socket; the CLI uses it to
        proxy a terminal for ``run`` without a console socket.  ``_loaded``: ``_load_config(bundle)``,
        when the caller (the CLI) has already read it.
        """
        bundle_s = os.path.abspath(os.fspath(bundle))
        cfg, raw = _loaded if _loaded is not None else _load_config(bundle_s)
        state_dir = self.store.reserve(id)
        ctx: dict[str, object] = {}
        try:
            return self._create(id, bundle_s, cfg, raw, state_dir, ctx, stdio, console_socket, console_fd,
                                pid_file, no_pivot, no_new_keyring, preserve_fds)  # fmt: skip
        except BaseException:
            self._abort(ctx)
            self.store.remove(id)
            raise

    def _abort(self, ctx: dict[str, object]) -> None:
        init_pid = ctx.get("init_pid")
        if isinstance(init_pid, int):
            try:
                os.kill(init_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            # Our child only when forked directly (reap it); otherwise poll until it is gone, or its
            # cgroup cannot be removed yet.
            import time

            if ctx.get("direct"):
                try:
                    os.waitpid(init_pid, 0)
                except ChildProcessError:
                    pass
            deadline = time.monotonic() + 2
            while pid_alive(init_pid, None) and time.monotonic() < deadline:
                time.sleep(0.001)
        a_pid = ctx.get("a_pid")
        if isinstance(a_pid, int):
            try:
                os.waitpid(a_pid, 0)
            except ChildProcessError:
                pass
        cg = ctx.get("cg")
        if isinstance(cg, CG.Cgroup):
            try:
                for pid in cg.pids():
                    os.kill(pid, signal.SIGKILL)
                cg.destroy()
            except (OSError, RuntimeFailure):
                pass

    def _create(self, id: str, bundle: str, cfg: dict[str, object], raw: bytes, state_dir: str, ctx: dict[str, object],
                stdio: tuple[int, int, int] | None, console_socket: str | None, console_fd: int | None,
                pid_file: str | None, no_pivot: bool, no_new_keyring: bool, preserve_fds: int) -> int:  # fmt: skip
        linux = _linux(cfg)
        proc = cfg["process"]
        assert isinstance(proc, dict)
        root = cfg["root"]
        assert isinstance(root, dict)
        rootfs = os.path.realpath(os.path.join(bundle, str(root["path"])))
        if not os.path.isdir(rootfs):
            raise RuntimeFailure(f"rootfs ({rootfs}) does not exist")
        new_flags, joins, types = _ns_plan(linux)
        if "mount" not in types:
            raise RuntimeFailure("dockyard-runtime needs a mount namespace (linux.namespaces has no 'mount')")
        sysctl = linux.get("sysctl")
        if isinstance(sysctl, dict):
            _check_sysctls(sysctl, types)
        if proc.get("terminal") and console_socket is None and console_fd is None:
            raise InvalidArgument("process.terminal is set: a console socket is required")

        cg = CG.for_container(str(linux.get("cgroupsPath") or id))
        ctx["cg"] = cg
        resources = linux.get("resources")
        # Usually the cgroup is made after the fork, while the intermediate makes the namespaces (the
        # two take about as long); told "cgroup", the intermediate joins it and only then forks the init,
        # so the init is in the cgroup from its first instruction.
        # Not when the intermediate must join first thing: a new cgroup namespace is rooted at the
        # cgroup current at unshare, and inside a user or another mount namespace the host's cgroupfs
        # may be out of reach.
        late_cgroup = not new_flags & (L.CLONE_NEWUSER | L.CLONE_NEWCGROUP) and not any(
            t in ("user", "mount") for t, _ in joins
        )
        if not late_cgroup:
            cg.create()
            if isinstance(resources, dict):
                cg.apply(resources)
        seccomp = None
        if isinstance(linux.get("seccomp"), dict):
            from .seccomp import build

            seccomp = build(linux["seccomp"])  # type: ignore[arg-type]
        fifo = os.path.join(state_dir, FIFO_FILE)
        old_umask = os.umask(0)  # 0622 exactly: a non-root container user must be able to open it
        try:
            os.mkfifo(fifo, 0o622)
        finally:
            os.umask(old_umask)
        if "user" in types and new_flags & L.CLONE_NEWUSER:
            os.chown(
                fifo,
                _host_id(linux.get("uidMappings") or [], 0),  # type: ignore[arg-type]
                _host_id(linux.get("gidMappings") or [], 0),  # type: ignore[arg-type]
            )
        if console_socket is not None and proc.get("terminal"):
            console_fd = _connect_console(console_socket)
            ctx["console_fd"] = console_fd
        sync_hooks = any(hooks_of(cfg, p) for p in ("prestart", "createRuntime", "createContainer", "startContainer"))
        created = rfc3339_now()
        annotations = cfg.get("annotations") if isinstance(cfg.get("annotations"), dict) else {}

        preload(cfg, proc, stdio is not None)
        fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        c2p_r, c2p_w = os.pipe2(os.O_CLOEXEC)
        p2c_r, p2c_w = os.pipe2(os.O_CLOEXEC)
        direct = bool(new_flags & L.CLONE_NEWPID) and not new_flags & (L.CLONE_NEWUSER | L.CLONE_NEWTIME) and not joins
        # The init makes its namespaces while we make its cgroup, on another CPU (see dockyard.cpus),
        # until "cgroup": then it takes every CPU back, before it joins the cgroup.
        cpus = elsewhere() if direct and late_cgroup else None
        child = _Child(config=cfg, process=proc, bundle=bundle, rootfs=rootfs, cg=cg, seccomp=seccomp,
                       new_flags=new_flags, joins=joins, types=types, c2p=c2p_w, p2c=p2c_r, stdio=stdio,
                       console_fd=console_fd, no_pivot=no_pivot, fifo_fd=fifo_fd, sync_hooks=sync_hooks,
                       keyring="" if no_new_keyring else f"_ses.{id}", preserve_fds=preserve_fds,
                       late_cgroup=late_cgroup, cpus=cpus[0] if cpus is not None else None)  # fmt: skip
        try:
            if direct:
                a_pid = _fork_direct(child, c2p_r, p2c_w)  # the init itself
                ctx["init_pid"], ctx["direct"] = a_pid, True
                if cpus is not None:
                    try:
                        os.sched_setaffinity(a_pid, cpus[1])
                    except OSError:
                        pass
            else:
                a_pid = _fork_intermediate(child, c2p_r, p2c_w, is_exec=False)
                ctx["a_pid"] = a_pid
        finally:
            os.close(c2p_w)
            os.close(p2c_r)
            if seccomp is not None:
                seccomp.release()
            if ctx.get("console_fd") is not None:
                os.close(int(ctx["console_fd"]))  # type: ignore[call-overload]
            os.close(fifo_fd)
        # From here on the children work on their own (another CPU, usually): do the parent's work
        # meanwhile -- the cgroup and the config copy now, state.json (to a temp name) once the init's pid
        # is known -- so that "ready" only costs a rename.
        hooks = cfg.get("hooks") if isinstance(cfg.get("hooks"), dict) else {}
        state_tmp = ""
        ch = _Channel(c2p_r)
        try:
            if late_cgroup:
                cg.create()
                if isinstance(resources, dict):
                    cg.apply(resources)
                try:
                    _send(p2c_w, "cgroup")
                except BrokenPipeError:
                    pass  # the intermediate failed meanwhile: its own report (or EOF) is what the loop reads
            with open(os.path.join(state_dir, CONFIG_FILE), "wb") as f:
                f.write(raw)
            init_pid = None
            hooks_pending = False
            while True:
                if direct and init_pid is None:  # no intermediate to tell us
                    msg: tuple[str, str] | None = ("pid", str(a_pid))
                else:
                    msg = ch.recv()
                if msg is None:
                    raise RuntimeFailure("container init exited before reporting ready")
                kind, payload = msg
                if kind == "error":
                    _raise_payload(payload)
                elif kind == "pid":
                    init_pid = int(payload)
                    ctx["init_pid"] = init_pid
                    info = proc_start_time(init_pid)
                    if info is not None:
                        state_tmp = self.store.write_tmp(id, {
                            "ociVersion": OCI_VERSION, "id": id, "pid": init_pid, "start_time": info[0],
                            "bundle": bundle, "rootfs": rootfs, "created": created, "owner": "",
                            "annotations": annotations, "cgroup": cg.to_json(), "namespaces": sorted(types),
                            "hooks": hooks,
                            "new_namespaces": sorted(t for t, (flag, _) in L.NAMESPACES.items() if new_flags & flag),
                        })  # fmt: skip
                elif kind == "usermap":
                    _write_id_maps(a_pid, linux)
                    _send(p2c_w, "ok")
                elif kind == "hooks":
                    hooks_pending = True
                elif kind == "ready":
                    break
                if hooks_pending and init_pid is not None:
                    hooks_pending = False
                    st = OCIState(OCI_VERSION, id, "creating", init_pid, bundle, annotations, rootfs, created)  # type: ignore[arg-type]
                    state_json = json_dumps(st.spec_dict())
                    try:
                        run_hooks(hooks_of(cfg, "prestart"), "prestart", state_json.encode())
                        run_hooks(hooks_of(cfg, "createRuntime"), "createRuntime", state_json.encode())
                    except BaseException:
                        _send(p2c_w, "fail")
                        raise
                    _send(p2c_w, "ok", state_json)
        finally:
            os.close(c2p_r)
            os.close(p2c_w)
        if not direct:
            os.waitpid(a_pid, 0)
            ctx.pop("a_pid", None)
        assert init_pid is not None
        if not state_tmp or proc_start_time(init_pid) is None:
            raise RuntimeFailure("container init exited during create")
        self.store.commit_tmp(id, state_tmp)
        if pid_file:
            _write_pid_file(pid_file, init_pid)
        return init_pid

    # state ------------------------------------------------------------------------------------------
    def _load(self, id: str) -> tuple[dict[str, object] | None, str]:
        data = self.store.read(id)
        return data, self._status(id, data)

    def _status(self, id: str, data: dict[str, object] | None) -> str:
        if data is None:
            return "creating"
        if not pid_alive(int(str(data["pid"])), data.get("start_time")):  # type: ignore[arg-type]
            return "stopped"
        try:
            if CG.from_json(data["cgroup"]).frozen():  # type: ignore[arg-type]
                return "paused"
        except (OSError, KeyError, AssertionError):
            pass
        if os.path.exists(os.path.join(self.store.dir(id), FIFO_FILE)):
            return "created"
        return "running"

    def _to_state(self, id: str, data: dict[str, object] | None, status: str) -> OCIState:
        if data is None:
            return OCIState(OCI_VERSION, id, status, 0, "")
        return OCIState(
            str(data.get("ociVersion") or OCI_VERSION),
            id,
            status,
            0 if status == "stopped" else int(str(data["pid"])),
            str(data.get("bundle") or ""),
            data.get("annotations") or {},  # type: ignore[arg-type]
            str(data.get("rootfs") or ""),
            str(data.get("created") or ""),
            str(data.get("owner") or ""),
        )

    def state(self, id: str) -> OCIState:
        data, status = self._load(id)
        return self._to_state(id, data, status)

    def list(self) -> list[OCIState]:
        out = []
        for cid in self.store.ids():
            try:
                out.append(self.state(cid))
            except (ContainerNotFound, InvalidArgument):
                continue
        return out

    def cgroup(self, id: str) -> CG.Cgroup:
        """The container's cgroup (for stats and ``oom_kills()``)."""
        data = self.store.read(id)
        if data is None:
            raise Conflict(f"container {id} is still being created")
        return CG.from_json(data["cgroup"])  # type: ignore[arg-type]

    # start ------------------------------------------------------------------------------------------
    def start(self, id: str) -> None:
        data, status = self._load(id)
        if status != "created" or data is None:
            what = {"stopped": "cannot start a container that has stopped",
                    "running": "cannot start an already running container",
                    "paused": "cannot start a paused container",
                    "creating": "cannot start a container that is still being created"}[status]  # fmt: skip
            raise Conflict(f"{what} ({id})")
        fifo = os.path.join(self.store.dir(id), FIFO_FILE)
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise Conflict(f"cannot start an already running container ({id})")
        buf = b""
        pid, start_time = int(str(data["pid"])), data.get("start_time")
        try:
            # The init holds a write end from before it reported ready until its execve or death (see
            # init), so a blocking read gets its "0" and then EOF -- no poll loop, no ``select``.  EOF
            # with nothing read and the init alive can only be an init of an older version, which opened
            # the fifo only when about to wait: poll for it, as those versions did.
            os.set_blocking(fd, True)
            while chunk := os.read(fd, 65536):
                buf += chunk
            if not buf and pid_alive(pid, start_time):  # type: ignore[arg-type]
                os.set_blocking(fd, False)
                buf = self._await_fifo(fd, pid, start_time)  # type: ignore[arg-type]
        finally:
            os.close(fd)
        if not buf.startswith(b"0"):
            raise RuntimeFailure(f"container {id}: init exited before it could be started")
        try:
            os.unlink(fifo)
        except FileNotFoundError:
            pass
        if len(buf) > 1:
            _raise_payload(buf[1:].decode(errors="replace"))
        self._run_hooks_warning(id, data, "poststart", "running")

    def _run_hooks_warning(self, id: str, data: dict[str, object], phase: str, status: str) -> None:
        """``poststart``/``poststop`` hooks: the runtime spec makes their failure a warning, not an error."""
        hooks = hooks_of(data, phase)
        if hooks:
            st = self._to_state(id, data, status)
            try:
                run_hooks(hooks, phase, json_dumps(st.spec_dict()).encode())
            except RuntimeFailure as e:
                warn(str(e))

    @staticmethod
    def _await_fifo(fd: int, pid: int, start_time: int | None) -> bytes:
        import select

        buf = b""
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        while True:
            if not poller.poll(100):
                if not pid_alive(pid, start_time) and not buf:
                    break
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                break
            buf += chunk
        return buf

    # kill / pause / resume -----------------------------------------------------------------------------
    def kill(self, id: str, sig: int | str = "SIGTERM", *, all: bool = False) -> None:
        signum = _parse_signal(sig)
        data, status = self._load(id)
        if data is None or status not in ("created", "running", "paused"):
            raise Conflict(f"container {id} is not running (status: {status})")
        if all:
            self._signal_all(data, signum)
            return
        try:
            os.kill(int(str(data["pid"])), signum)
        except ProcessLookupError:
            raise Conflict(f"container {id} is not running")

    def _signal_all(self, data: dict[str, object], signum: int) -> None:
        cg = CG.from_json(data["cgroup"])  # type: ignore[arg-type]
        frozen_here = False
        if not cg.frozen():
            try:
                cg.freeze()
                frozen_here = True
            except RuntimeFailure:
                pass
        try:
            for pid in cg.pids():
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
        finally:
            if frozen_here or signum == signal.SIGKILL:
                try:
                    cg.thaw()
                except RuntimeFailure:
                    pass

    def pause(self, id: str) -> None:
        data, status = self._load(id)
        if data is None or status != "running":
            raise Conflict(f"container {id} is not running (status: {status})")
        CG.from_json(data["cgroup"]).freeze()  # type: ignore[arg-type]

    def resume(self, id: str) -> None:
        data, status = self._load(id)
        if data is None or status != "paused":
            raise Conflict(f"container {id} is not paused (status: {status})")
        CG.from_json(data["cgroup"]).thaw()  # type: ignore[arg-type]

    # delete -----------------------------------------------------------------------------------------
    def delete(self, id: str, *, force: bool = False) -> None:
        data, status = self._load(id)
        if data is None:
            if not force:
                raise Conflict(f"cannot delete container {id} that is not stopped: creating")
            self.store.remove(id)
            return
        if status != "stopped" and not force:
            raise Conflict(f"cannot delete container {id} that is not stopped: {status}")
        cg = CG.from_json(data["cgroup"])  # type: ignore[arg-type]
        pid = int(str(data["pid"]))
        if status != "stopped":
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if status == "paused":
                try:
                    cg.thaw()  # frozen tasks do not act on SIGKILL until thawed
                except RuntimeFailure:
                    pass
        # Without its own pid namespace the container's processes do not die with its init: kill
        # what is left in its cgroup (runc does the same).  With one, the kernel already did.
        if "pid" not in (data.get("new_namespaces") or []) and cg.pids():  # type: ignore[operator]
            self._signal_all(data, signal.SIGKILL)
        _wait_gone(pid, data.get("start_time"), 10)  # type: ignore[arg-type]
        try:
            cg.destroy()
        except RuntimeFailure as e:
            warn(str(e))
        self._run_hooks_warning(id, data, "poststop", "stopped")
        self.store.remove(id)

    # exec -------------------------------------------------------------------------------------------
    def exec(
        self,
        id: str,
        process: dict[str, object],
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: str | None = None,
        pid_file: str | None = None,
        detach: bool = True,
        console_fd: int | None = None,
        preserve_fds: int = 0,
    ) -> int:
        """Run ``process`` (an OCI process object) inside the container.

        Joins every namespace of the init plus its cgroup, applies the container's seccomp profile and
        the process's own user/caps/rlimits/NNP/env/cwd.  Returns once ``execve`` succeeded (errors such
        as a missing executable are raised).  ``detach=True``: returns the new process's host pid (it is
        re-parented to the caller's nearest child subreaper).  ``detach=False``: waits for the process and
        returns its exit status (128+N when killed by signal N).
        """
        data, status = self._load(id)
        if data is None or status not in ("created", "running"):
            raise Conflict(f"cannot exec in a {status} container ({id})")
        if not process.get("args"):
            raise InvalidArgument("exec: process.args must not be empty")
        cfg_path = os.path.join(self.store.dir(id), CONFIG_FILE)
        with open(cfg_path, "rb") as f:
            cfg = json_loads(f.read())
        assert isinstance(cfg, dict)
        linux = _linux(cfg)
        pid = int(str(data["pid"]))
        types = {str(t) for t in data.get("namespaces") or []}  # type: ignore[attr-defined]
        joins = [(t, f"/proc/{pid}/ns/{L.NAMESPACES[t][1]}") for t in types]
        joins.sort(key=lambda j: (0 if j[0] == "user" else 2 if j[0] == "mount" else 1))
        if "user" in types:
            # Joining our own user namespace is EINVAL: skip it when it is the host's (path-joined to ours).
            try:
                if os.stat(joins[0][1]).st_ino == os.stat("/proc/self/ns/user").st_ino:
                    joins.pop(0)
            except OSError:
                pass
        cg = CG.from_json(data["cgroup"])  # type: ignore[arg-type]
        if process.get("terminal") and console_socket is None and console_fd is None:
            raise InvalidArgument("process.terminal is set: a console socket is required")
        seccomp = None
        if isinstance(linux.get("seccomp"), dict):
            from .seccomp import build

            seccomp = build(linux["seccomp"])  # type: ignore[arg-type]
        own_console = None
        if console_socket is not None and process.get("terminal"):
            console_fd = own_console = _connect_console(console_socket)
        preload(cfg, process, stdio is not None)
        c2p_r, c2p_w = os.pipe2(os.O_CLOEXEC)
        p2c_r, p2c_w = os.pipe2(os.O_CLOEXEC)
        child = _Child(config=cfg, process=process, cg=cg, seccomp=seccomp, joins=joins, types=types,
                       c2p=c2p_w, p2c=p2c_r, stdio=stdio, console_fd=console_fd,
                       wait_child=not detach, preserve_fds=preserve_fds)  # fmt: skip
        try:
            a_pid = _fork_intermediate(child, c2p_r, p2c_w, is_exec=True)
        finally:
            os.close(c2p_w)
            os.close(p2c_r)
            os.close(p2c_w)
            if seccomp is not None:
                seccomp.release()
            if own_console is not None:
                os.close(own_console)
        ch = _Channel(c2p_r)
        exec_pid = None
        try:
            while True:
                msg = ch.recv()
                if msg is None:
                    break
                kind, payload = msg
                if kind == "pid":
                    exec_pid = int(payload)
                    if pid_file:
                        _write_pid_file(pid_file, exec_pid)
                elif kind == "error":
                    try:
                        os.waitpid(a_pid, 0)
                    except ChildProcessError:
                        pass
                    _raise_payload(payload)
        finally:
            os.close(c2p_r)
        _, wstatus = os.waitpid(a_pid, 0)
        if exec_pid is None:
            raise RuntimeFailure(f"exec in container {id} failed before the process started")
        if detach:
            return exec_pid
        return os.waitstatus_to_exitcode(wstatus)
