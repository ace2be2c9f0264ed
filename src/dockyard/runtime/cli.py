"""``dockyard-runtime``: runc's command line over ``BuiltinRuntime``.

Why runc's exact surface: podman, conmon, containerd-shim and buildah drive an OCI runtime through
runc's flags, its console-socket protocol, its ``--log``/``--log-format json`` error records and its exit
codes.  Errors are one line (``time=... level=error msg=...`` on stderr, like runc's logrus output, or a
JSON record in ``--log`` plus the bare message on stderr); tracebacks only with ``--debug``.

Start-up time is most of what this command costs, so the hot path (``create``/``start``/``state``/
``delete``/``run``/``kill``/``exec``, as podman and conmon call them) imports no ``argparse``, ``json``,
``signal`` or ``re``: ``_fast_parse`` reads the usual argument shapes, and anything else -- ``--help``,
an abbreviated option, a malformed line -- goes to the full argparse parser, which gives the exact same
result or runc-like usage error.  JSON goes through ``state.json_loads``/``json_dumps``; ``ctypes`` is
only loaded when a namespace has to be made.
"""

from __future__ import annotations

import os
import sys

from .. import __version__
from ..errors import DockyardError, InvalidArgument, RuntimeFailure
from .state import OCI_VERSION, json_dumps, json_loads, rfc3339_now

DEFAULT_ROOT = "/run/dockyard-runtime"
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    import signal
    from argparse import Namespace as _Args

    from .builtin import BuiltinRuntime
else:
    import _signal as signal  # the C module: ``signal`` wraps it in enums, and ``enum`` costs ~4 ms

    class _Args:
        """What ``_fast_parse`` returns: the attributes argparse would have set."""

        def __init__(self, **values: object) -> None:
            self.__dict__.update(values)


def _logfmt(level: str, msg: str, fmt: str) -> str:
    if fmt == "json":
        return json_dumps({"level": level, "msg": msg, "time": rfc3339_now()})
    return f'time="{rfc3339_now()}" level={level} msg={json_dumps(msg)}'


class _Logger:
    """runc's error reporting: to --log (text or json) and stderr, one line each."""

    def __init__(self, path: str | None, fmt: str) -> None:
        self.path = path
        self.fmt = fmt

    def error(self, msg: str) -> None:
        msg = msg.replace("\n", " ")
        if self.path:
            try:
                with open(self.path, "a") as f:
                    f.write(_logfmt("error", msg, self.fmt) + "\n")
            except OSError:
                pass
            sys.stderr.write(msg + "\n")
        else:
            sys.stderr.write(_logfmt("error", msg, "text") + "\n")
        sys.stderr.flush()


def _formatter() -> type[argparse.HelpFormatter]:
    import argparse

    class _Formatter(argparse.HelpFormatter):
        """A fixed width: the default asks ``shutil`` for the terminal size, and importing shutil (with
        bz2/lzma) costs ~3 ms on every invocation, help or not."""

        def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                     width: int | None = None) -> None:  # fmt: skip
            super().__init__(prog, indent_increment, max_help_position, width or 100)

    return _Formatter


# --- the fast parser ---------------------------------------------------------------------------------
#: global options: option -> (dest, takes a value)
_GLOBAL_OPTS = {"--root": ("root", True), "--log": ("log", True), "--log-format": ("log_format", True),
                "--rootless": ("rootless", True), "--criu": ("criu", True), "--debug": ("debug", False),
                "--systemd-cgroup": ("systemd_cgroup", False)}  # fmt: skip
_GLOBAL_DEFAULTS = {"root": DEFAULT_ROOT, "log": None, "log_format": "text", "debug": False, "systemd_cgroup": False,
                    "rootless": None, "criu": None, "version": False}  # fmt: skip
_CREATE_OPTS = {"-b": ("bundle", "value"), "--bundle": ("bundle", "value"), "--pid-file": ("pid_file", "value"),
                "--console-socket": ("console_socket", "value"), "--no-pivot": ("no_pivot", "flag"),
                "--no-new-keyring": ("no_new_keyring", "flag"), "--preserve-fds": ("preserve_fds", "int")}  # fmt: skip
_CREATE_DEFAULTS: dict[str, object] = {
    "bundle": ".", "pid_file": None, "console_socket": None, "no_pivot": False, "no_new_keyring": False,
    "preserve_fds": 0,
}  # fmt: skip
_EXEC_OPTS = {"-p": ("process", "value"), "--process": ("process", "value"), "-t": ("tty", "flag"),
              "--tty": ("tty", "flag"), "--console-socket": ("console_socket", "value"), "--cwd": ("cwd", "value"),
              "-e": ("env", "append"), "--env": ("env", "append"), "-u": ("user", "value"),
              "--user": ("user", "value"), "--additional-gids": ("additional_gids", "append"),
              "-g": ("additional_gids", "append"), "-c": ("cap", "append"), "--cap": ("cap", "append"),
              "--no-new-privs": ("no_new_privs", "flag"), "-d": ("detach", "flag"), "--detach": ("detach", "flag"),
              "--pid-file": ("pid_file", "value"), "--preserve-fds": ("preserve_fds", "int")}  # fmt: skip
_EXEC_DEFAULTS: dict[str, object] = {
    "process": None, "tty": False, "console_socket": None, "cwd": None, "env": [], "user": None,
    "additional_gids": [], "cap": [], "no_new_privs": False, "detach": False, "pid_file": None, "preserve_fds": 0,
}  # fmt: skip
#: command -> (options, defaults, positionals; a positional with a default is optional)
_FAST: dict[str, tuple[dict[str, tuple[str, str]], dict[str, object], tuple[str, ...]]] = {
    "create": (_CREATE_OPTS, _CREATE_DEFAULTS, ("id",)),
    "run": ({**_CREATE_OPTS, "-d": ("detach", "flag"), "--detach": ("detach", "flag"), "--keep": ("keep", "flag")},
            {**_CREATE_DEFAULTS, "detach": False, "keep": False}, ("id",)),
    "start": ({}, {}, ("id",)),
    "state": ({}, {}, ("id",)),
    "pause": ({}, {}, ("id",)),
    "resume": ({}, {}, ("id",)),
    "kill": ({"-a": ("all", "flag"), "--all": ("all", "flag")}, {"signal": "SIGTERM", "all": False}, ("id", "signal")),
    "delete": ({"-f": ("force", "flag"), "--force": ("force", "flag")}, {"force": False}, ("id",)),
    "exec": (_EXEC_OPTS, _EXEC_DEFAULTS, ("id",)),
}  # fmt: skip


def _option_value(argv: list[str], i: int, eq: str, value: str) -> tuple[str, int] | None:
    """The value of the option at ``argv[i]`` (``--opt=value``, or the next word when it does not start
    with ``-``) and the index of the option's last word; None where argparse must decide."""
    if eq:
        return value, i
    if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
        return None
    return argv[i + 1], i + 1


def _fast_parse(argv: list[str]) -> _Args | None:
    """argparse's result for the common shapes of a hot command line, or None to let argparse decide.

    Accepted: exact option names (``--opt value``, ``--opt=value``, ``-o value``), values that do not
    start with ``-``, positionals in one run.  Everything else (abbreviations, ``-ovalue``, ``--``,
    ``-h``, errors) is argparse's to handle, so this never changes what a command line means.
    """
    if "--" in argv:
        return None
    ns: dict[str, object] = dict(_GLOBAL_DEFAULTS)
    n = len(argv)
    i = 0
    while i < n and argv[i].startswith("-"):
        name, eq, value = argv[i].partition("=")
        opt = _GLOBAL_OPTS.get(name)
        if opt is None or not name.startswith("--"):
            return None
        if not opt[1]:
            if eq:
                return None
            ns[opt[0]] = True
        else:
            got = _option_value(argv, i, eq, value)
            if got is None:
                return None
            ns[opt[0]], i = got
        i += 1
    if ns["log_format"] not in ("text", "json") or i >= n or argv[i] not in _FAST:
        return None
    cmd = ns["command"] = argv[i]
    opts, defaults, names = _FAST[cmd]
    for k, v in defaults.items():
        ns[k] = list(v) if isinstance(v, list) else v
    positionals: list[str] = []
    last_positional = -1
    i += 1
    while i < n:
        a = argv[i]
        if not a.startswith("-"):
            if cmd == "exec":  # ID, then the command: argparse.REMAINDER takes the rest as it is
                ns["id"], ns["cmd"] = a, argv[i + 1 :]
                return _Args(**ns)
            if positionals and last_positional != i - 1:
                return None  # argparse fills positionals from one run of words
            positionals.append(a)
            last_positional = i
            i += 1
            continue
        if a.startswith("--"):
            name, eq, value = a.partition("=")
        elif len(a) == 2:
            name, eq, value = a, "", ""
        else:
            return None
        opt2 = opts.get(name)
        if opt2 is None:
            return None
        dest, kind = opt2
        if kind == "flag":
            if eq:
                return None
            ns[dest] = True
        else:
            got = _option_value(argv, i, eq, value)
            if got is None:
                return None
            value, i = got
            if kind == "int":
                try:
                    ns[dest] = int(value)
                except ValueError:
                    return None
            elif kind == "append":
                ns[dest].append(value)  # type: ignore[attr-defined]
            else:
                ns[dest] = value
        i += 1
    if cmd == "exec" or len(positionals) > len(names):
        return None
    for k, v in zip(names, positionals, strict=False):
        ns[k] = v
    if any(k not in ns for k in names):
        return None
    return _Args(**ns)


_GLOBAL_WITH_VALUE = {"--root", "--log", "--log-format", "--rootless", "--criu"}
COMMANDS = ("create", "run", "start", "state", "kill", "delete", "exec", "list", "ps", "pause", "resume",
            "features", "spec")  # fmt: skip


def _command_of(argv: list[str]) -> str | None:
    """The subcommand in ``argv`` (first word after the global options), so only its parser is built."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return None
        if a.startswith("-"):
            if a in _GLOBAL_WITH_VALUE:
                i += 1
            i += 1
            continue
        return a if a in COMMANDS else None
    return None


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """runc's command line.  With ``only``, just that subcommand is defined (argparse is slow to build:
    every argument costs a formatter and gettext lookups, ~5 ms for the full tree)."""
    import argparse

    _Formatter = _formatter()
    p = argparse.ArgumentParser(prog="dockyard-runtime", description="Dockyard's OCI runtime (runc-compatible CLI)",
                                formatter_class=_Formatter)  # fmt: skip
    p.add_argument("--root", default=DEFAULT_ROOT, help="state directory (default %(default)s)")
    p.add_argument("--log", default=None, help="log file for errors")
    p.add_argument("--log-format", default="text", choices=("text", "json"))
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--systemd-cgroup", action="store_true", help="use the systemd cgroup driver (unsupported)")
    p.add_argument("--rootless", default=None, help="accepted for compatibility; ignored")
    p.add_argument("--criu", default=None, help=argparse.SUPPRESS)
    p.add_argument("-v", "--version", action="store_true")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help: str, with_id: bool = True) -> argparse.ArgumentParser | None:
        if only is not None and name != only:
            return None
        sp = sub.add_parser(name, help=help, formatter_class=_Formatter)
        if with_id:
            sp.add_argument("id", metavar="ID")
        return sp

    for name in ("create", "run"):
        sp = add(name, "create a container" if name == "create" else "create, start and wait for a container")
        if sp is None:
            continue
        sp.add_argument("-b", "--bundle", default=".")
        sp.add_argument("--pid-file")
        sp.add_argument("--console-socket")
        sp.add_argument("--no-pivot", action="store_true")
        sp.add_argument("--no-new-keyring", action="store_true")
        sp.add_argument("--preserve-fds", type=int, default=0)
        if name == "run":
            sp.add_argument("-d", "--detach", action="store_true")
            sp.add_argument("--keep", action="store_true", help="do not delete the container after it exits")
    add("start", "start a created container")
    add("state", "print the state of a container as JSON")
    if sp := add("kill", "send a signal to the container's init"):
        sp.add_argument("signal", nargs="?", default="SIGTERM")
        sp.add_argument("-a", "--all", action="store_true")
    if sp := add("delete", "delete a stopped container"):
        sp.add_argument("-f", "--force", action="store_true")
    if sp := add("exec", "run a process in a running container", with_id=False):
        sp.add_argument("-p", "--process")
        sp.add_argument("-t", "--tty", action="store_true")
        sp.add_argument("--console-socket")
        sp.add_argument("--cwd")
        sp.add_argument("-e", "--env", action="append", default=[])
        sp.add_argument("-u", "--user")
        sp.add_argument("--additional-gids", "-g", action="append", default=[])
        sp.add_argument("-c", "--cap", action="append", default=[])
        sp.add_argument("--no-new-privs", action="store_true")
        sp.add_argument("-d", "--detach", action="store_true")
        sp.add_argument("--pid-file")
        sp.add_argument("--preserve-fds", type=int, default=0)
        sp.add_argument("id", metavar="ID")
        sp.add_argument("cmd", nargs=argparse.REMAINDER)
    if sp := add("list", "list containers", with_id=False):
        sp.add_argument("-f", "--format", default="table", choices=("table", "json"))
        sp.add_argument("-q", "--quiet", action="store_true")
    if sp := add("ps", "show the processes of a container"):
        sp.add_argument("-f", "--format", default="table", choices=("table", "json"))
    add("pause", "freeze all processes of a container")
    add("resume", "thaw a paused container")
    add("features", "print the runtime's features as JSON", with_id=False)
    if sp := add("spec", "write a default config.json", with_id=False):
        sp.add_argument("-b", "--bundle", default=".")
        sp.add_argument("--rootless", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point.  As the console script (``argv`` None) it leaves with ``os._exit`` after flushing:
    tearing the interpreter down costs a few milliseconds that a runtime called per container should
    not pay.  Called with ``argv`` (tests, the engine) it returns the exit code."""
    code = _main(sys.argv[1:] if argv is None else argv)
    if argv is None:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    return code


def _main(argv: list[str]) -> int:
    args = _fast_parse(argv)
    if args is None:
        parser = _parser(_command_of(argv))
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:
            return int(e.code or 0) if not isinstance(e.code, str) else 1
    log = _Logger(args.log, args.log_format)
    if args.version:
        print(f"dockyard-runtime version {__version__}\nspec: {OCI_VERSION}")
        return 0
    if not args.command:
        _parser().print_help(sys.stderr)
        return 1
    try:
        if args.systemd_cgroup:
            if not os.path.isdir("/run/systemd/system"):
                raise InvalidArgument("systemd cgroup flag passed, but systemd support for managing cgroups is "
                                      "not available: systemd is not running (no /run/systemd/system)")  # fmt: skip
            raise InvalidArgument("--systemd-cgroup is not supported by dockyard-runtime; use the cgroupfs driver")
        return int(_dispatch(args) or 0)
    except DockyardError as e:
        if args.debug:
            import traceback

            traceback.print_exc()
        log.error(str(e))
        return e.exit_code
    except OSError as e:
        if args.debug:
            import traceback

            traceback.print_exc()
        log.error(f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}")
        return 1
    except KeyboardInterrupt:
        return 130


def _runtime(args: argparse.Namespace) -> BuiltinRuntime:
    from .builtin import BuiltinRuntime

    return BuiltinRuntime(args.root)


def _dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "features":
        print(json_dumps(features(), indent=2))
        return 0
    if cmd == "spec":
        return _spec(args.bundle)
    rt = _runtime(args)
    if cmd == "create":
        loaded = _load(args.bundle)
        _check_console_flags(loaded[0], args.console_socket, detached=True)
        rt.create(args.id, args.bundle, console_socket=args.console_socket, pid_file=args.pid_file,
                  no_pivot=args.no_pivot, no_new_keyring=args.no_new_keyring,
                  preserve_fds=args.preserve_fds, _loaded=loaded)  # fmt: skip
        return 0
    if cmd == "run":
        return _run(rt, args)
    if cmd == "start":
        rt.start(args.id)
        return 0
    if cmd == "state":
        print(json_dumps(rt.state(args.id).to_dict(), indent=2))
        return 0
    if cmd == "kill":
        rt.kill(args.id, args.signal, all=args.all)
        return 0
    if cmd == "delete":
        rt.delete(args.id, force=args.force)
        return 0
    if cmd == "pause":
        rt.pause(args.id)
        return 0
    if cmd == "resume":
        rt.resume(args.id)
        return 0
    if cmd == "list":
        return _list(rt, args)
    if cmd == "ps":
        return _ps(rt, args)
    if cmd == "exec":
        return _exec(rt, args)
    raise InvalidArgument(f"unknown command {cmd!r}")


def _load(bundle: str) -> tuple[dict[str, object], bytes]:
    """The bundle's config, read once for the console checks and for ``create`` (which would raise the
    same errors first thing)."""
    from .builtin import _load_config

    return _load_config(os.path.abspath(bundle))


def _check_console_flags(cfg: dict[str, object], console_socket: str | None, *, detached: bool) -> bool:
    """runc's rules: a terminal needs a console socket when detached; a socket needs a terminal."""
    process = cfg.get("process")
    terminal = bool(process.get("terminal")) if isinstance(process, dict) else False
    if terminal and detached and not console_socket:
        raise InvalidArgument("cannot allocate tty if dockyard-runtime will detach without setting console socket")
    if not terminal and console_socket:
        raise InvalidArgument("cannot use console socket if dockyard-runtime will not detach or allocate tty")
    return terminal


def _console_pair() -> tuple[int, int]:
    import _socket  # not socket: it builds enums at import (~3 ms)

    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    return a.detach(), b.detach()


def _recv_master(fd: int) -> int:
    import _socket

    from .linux import recv_fds

    sock = _socket.socket(fileno=fd)
    try:
        _, fds, _, _ = recv_fds(sock, 4096, 1)
    finally:
        sock.close()
    if not fds:
        raise RuntimeFailure("the container did not send its console")
    return fds[0]


def _forward_signals(pid: int) -> None:
    def handler(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, handler)


def _wait(pid: int, master: int | None) -> int:
    """Reap children (we are a subreaper) until ``pid`` exits, pumping the pty if there is one."""
    if master is not None:
        _pump(master)
    from .state import proc_start_time

    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            # Not re-parented to us (a subreaper above was nearer?): poll until it is gone.
            import time

            while proc_start_time(pid) not in (None,) and proc_start_time(pid)[1] not in ("Z", "X"):  # type: ignore[index]
                time.sleep(0.01)
            return 0
        if got == pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


def _pump(master: int) -> None:
    """Copy stdin -> pty master and master -> stdout until the container side closes."""
    from .ptyrelay import relay

    relay(master)


def _run(rt: BuiltinRuntime, args: argparse.Namespace) -> int:
    from . import linux as L

    loaded = _load(args.bundle)
    terminal = _check_console_flags(loaded[0], args.console_socket, detached=args.detach)
    console_fd = master_end = None
    if terminal and not args.console_socket:
        console_fd, master_end = _console_pair()
    if not args.detach:
        L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
    try:
        pid = rt.create(args.id, args.bundle, console_socket=args.console_socket, pid_file=args.pid_file,
                        no_pivot=args.no_pivot, console_fd=console_fd, no_new_keyring=args.no_new_keyring,
                        preserve_fds=args.preserve_fds, _loaded=loaded)  # fmt: skip
    finally:
        if console_fd is not None:
            os.close(console_fd)
    master = _recv_master(master_end) if master_end is not None else None
    try:
        if not args.detach:
            _forward_signals(pid)
        rt.start(args.id)
    except BaseException:
        rt.delete(args.id, force=True)
        raise
    if args.detach:
        return 0
    code = _wait(pid, master)
    if not args.keep:
        rt.delete(args.id, force=True)
    return code


def _exec(rt: BuiltinRuntime, args: argparse.Namespace) -> int:
    from . import linux as L
    from .state import CONFIG_FILE

    if args.process:
        with open(args.process, "rb") as f:
            process = json_loads(f.read())
    else:
        if not args.cmd:
            raise InvalidArgument("exec: a command (or --process) is required")
        with open(os.path.join(rt.store.dir(args.id), CONFIG_FILE), "rb") as f:
            process = dict(json_loads(f.read()).get("process") or {})
        process["args"] = list(args.cmd)
        process["terminal"] = bool(args.tty)
        process.pop("consoleSize", None)
    if args.cwd:
        process["cwd"] = args.cwd
    if args.env:
        process["env"] = list(process.get("env") or []) + list(args.env)
    if args.user:
        uid, _, gid = args.user.partition(":")
        process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if args.additional_gids:
        process.setdefault("user", {})["additionalGids"] = [int(g) for g in args.additional_gids]
    if args.cap:
        caps = dict(process.get("capabilities") or {})
        for kind in ("bounding", "effective", "permitted", "ambient"):
            caps[kind] = list(caps.get(kind) or []) + list(args.cap)
        process["capabilities"] = caps
    if args.no_new_privs:
        process["noNewPrivileges"] = True
    terminal = bool(process.get("terminal"))
    if terminal and args.detach and not args.console_socket:
        raise InvalidArgument("cannot allocate tty if dockyard-runtime will detach without setting console socket")
    console_fd = master_end = None
    if terminal and not args.console_socket:
        console_fd, master_end = _console_pair()
    if not args.detach:
        L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
    try:
        pid = rt.exec(args.id, process, console_socket=args.console_socket, pid_file=args.pid_file,
                      detach=True, console_fd=console_fd, preserve_fds=args.preserve_fds)  # fmt: skip
    finally:
        if console_fd is not None:
            os.close(console_fd)
    master = _recv_master(master_end) if master_end is not None else None
    if args.detach:
        return 0
    _forward_signals(pid)
    return _wait(pid, master)


def _list(rt: BuiltinRuntime, args: argparse.Namespace) -> int:
    states = rt.list()
    if args.quiet:
        for st in states:
            print(st.id)
        return 0
    if args.format == "json":
        print(json_dumps([st.to_dict() for st in states]))
        return 0
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(st.id, str(st.pid), st.status, st.bundle, st.created, st.owner) for st in states]
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(6)]
    for r in rows:
        print("".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + r[-1])
    return 0


def _ps(rt: BuiltinRuntime, args: argparse.Namespace) -> int:
    st = rt.state(args.id)
    if st.status == "stopped":
        raise InvalidArgument(f"container {args.id} is not running")
    pids = sorted(rt.cgroup(args.id).pids())
    if args.format == "json":
        print(json_dumps(pids))
        return 0
    import subprocess

    try:
        out = subprocess.run(["ps", "-ef"], capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        print("PID")
        for pid in pids:
            print(pid)
        return 0
    header = out[0]
    col = header.split().index("PID") if "PID" in header.split() else 1
    print(header)
    wanted = {str(p) for p in pids}
    for line in out[1:]:
        fields = line.split()
        if len(fields) > col and fields[col] in wanted:
            print(line)
    return 0


def features() -> dict[str, object]:
    """What this runtime supports, in the schema of runc's ``features`` command."""
    from .linux import CAPABILITIES, NAMESPACES
    from .rootfs import _FLAGS, _PROPAGATION
    from .seccomp import SUPPORTED_ACTIONS, SUPPORTED_ARCHES, SUPPORTED_OPERATORS

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted([*_FLAGS, *_PROPAGATION]),
        "linux": {
            "namespaces": sorted(NAMESPACES),
            "capabilities": list(CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {
                "enabled": True,
                "actions": SUPPORTED_ACTIONS,
                "operators": SUPPORTED_OPERATORS,
                "archs": SUPPORTED_ARCHES,
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"org.dockyard.runtime.version": __version__},
    }


def default_spec() -> dict[str, object]:
    """The same starting point ``runc spec`` writes."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "dockyard",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }  # fmt: skip


def _spec(bundle: str) -> int:
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise InvalidArgument("File config.json exists. Remove it first")
    import json

    with open(path, "w") as f:
        json.dump(default_spec(), f, indent="\t")
    return 0


if __name__ == "__main__":
    main()
