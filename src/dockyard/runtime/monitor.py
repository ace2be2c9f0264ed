"""The per-container monitor (what conmon is to podman), forked from the CLI, no new interpreter.

It owns the container's stdio (pipes, or the pty master), writes the json-file log, serves an attach
socket, starts the container through any ``Runtime``, reaps it as a child subreaper and reports the
exit through a callback. The CLI that forked it can exit at once (``run -d``) or attach to the
socket (foreground ``run``, ``start -a``, ``attach``): one code path for all three.

Frames on the attach socket (both directions) are Docker's stdcopy header: one byte of stream type,
three zero bytes, a big-endian 32-bit length, then the payload. Monitor -> client: 1 stdout,
2 stderr, 3 exit (4-byte signed status). Client -> monitor: 0 stdin data, 4 resize (rows, cols as
two 16-bit numbers), 5 stdin closed.

Everything this module imports is paid by every ``dockyard run`` (the CLI imports it to fork the
monitor), so it uses the C modules under the stdlib wrappers: ``_socket`` (``socket`` builds a dozen
IntEnums), ``select.epoll`` (``selectors`` pulls in ``collections`` and ``math``), ``_signal``,
``dockyard.jsonc`` (``json`` pulls in ``re``), ``os.path`` on strings (``pathlib`` pulls in
``urllib.parse`` and ``ipaddress``) and int.to_bytes for the frame headers.
"""

from __future__ import annotations

import _socket
import errno
import os
import select
import sys
import time

from dockyard.jsonc import dumps as json_dumps
from dockyard.timestamps import rfc3339_ns

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
    from typing import Any
else:
    import _signal as signal  # the C module: ``signal`` wraps it in enums, and ``enum`` costs ~4 ms

STDIN, STDOUT, STDERR, EXIT, RESIZE, STDIN_CLOSE = 0, 1, 2, 3, 4, 5
HEADER_SIZE = 8  # ">BxxxI": kind, three zero bytes, big-endian payload length
PR_SET_CHILD_SUBREAPER = 36


def frame(kind: int, payload: bytes) -> bytes:
    return bytes((kind, 0, 0, 0)) + len(payload).to_bytes(4, "big") + payload


def parse_header(buf: bytes) -> tuple[int, int]:
    """(kind, payload length) of the frame at the start of ``buf`` (at least HEADER_SIZE bytes)."""
    return buf[0], int.from_bytes(buf[4:8], "big")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class MonitorConfig:
    """What the monitor runs (a plain class: ``dataclasses`` is not worth its import time here).

    The paths may be ``str`` or ``os.PathLike`` (a ``Path``): they are kept as given.
    """

    def __init__(self, container_id: str, bundle: str | os.PathLike[str], log_path: str | os.PathLike[str],
                 attach_path: Any, tty: bool = False, open_stdin: bool = False, stdin_once: bool = False,
                 wait_attach: bool = False, on_created: Callable[[int], None] | None = None) -> None:
        self.container_id = container_id
        self.bundle = bundle
        self.log_path = log_path
        self.attach_path = attach_path  # str or Path: the caller gets back what it gave
        self.tty = tty
        self.open_stdin = open_stdin
        self.stdin_once = stdin_once
        self.wait_attach = wait_attach  # foreground: start only once the first client has attached
        # Called with the init's pid after create, before start (network plumbing).
        self.on_created = on_created


class JsonLog:
    """Docker's json-file log: one ``{"log": ..., "stream": ..., "time": ...}`` object per line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._f = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the monitor
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        buf = self._partial[stream] + data
        *lines, rest = buf.split(b"\n")
        now = rfc3339_ns(time.time_ns())  # one stamp for the lines of one read
        out = []
        for line in lines:
            out.append(json_dumps({"log": line.decode("utf-8", "replace") + "\n", "stream": stream,
                                   "time": now}).encode() + b"\n")
        if len(rest) > 16384:  # Docker splits long lines at 16K
            out.append(json_dumps({"log": rest.decode("utf-8", "replace"), "stream": stream,
                                   "time": now}).encode() + b"\n")
            rest = b""
        self._partial[stream] = rest
        if out:
            self._f.write(b"".join(out))

    def close(self) -> None:
        for stream, rest in self._partial.items():
            if rest:
                self._f.write(json_dumps({"log": rest.decode("utf-8", "replace"), "stream": stream,
                                          "time": rfc3339_ns(time.time_ns())}).encode() + b"\n")
        self._f.close()


def _recv_fd(sock: _socket.socket) -> int:
    """The first fd of an SCM_RIGHTS message on ``sock`` (any socket object: ``_socket`` or ``socket``)."""
    msg, ancdata, _flags, _addr = sock.recvmsg(4096, _socket.CMSG_SPACE(4))
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            return int.from_bytes(data[:4], sys.byteorder, signed=True)
    raise OSError("no file descriptor received on the console socket")


def _accept(listener: _socket.socket) -> _socket.socket:
    """``socket.accept`` on the C socket object: accept4(SOCK_CLOEXEC), a blocking socket back."""
    fd, _addr = listener._accept()  # type: ignore[attr-defined]  # the C method socket.accept wraps
    return _socket.socket(listener.family, listener.type, listener.proto, fd)


class _Client:
    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buf = b""


def run_monitor(cfg: MonitorConfig, runtime: Any, ready_fd: int,
                on_started: Callable[[int], None],
                on_exited: Callable[[int, bool], Callable[[], None] | None]) -> None:
    """Body of the forked monitor process. Never returns normally: ends with ``os._exit``.

    ``ready_fd`` gets one JSON line once the container is created (or why it could not be), so the
    CLI can report errors such as a missing command with Docker's exit status.
    """
    code = 0
    try:
        code = _monitor(cfg, runtime, ready_fd, on_started, on_exited)
    except BaseException as e:  # the CLI must hear of any failure, and the monitor must not linger
        try:
            os.write(ready_fd, (json_dumps({"error": f"{e}", "exit_code": getattr(e, "exit_code", 125)})
                                + "\n").encode())
        except OSError:
            pass
        code = 125
    os._exit(code)


class _Poller:
    """What the loop used of ``selectors.DefaultSelector``, on ``select.epoll`` directly: fds with a
    tag, ``select(timeout)`` -> [(fd, tag)] (an fd unregistered meanwhile is skipped, as there)."""

    def __init__(self) -> None:
        self._ep = select.epoll()
        self._tags: dict[int, tuple[str, Any]] = {}

    def register(self, fd: int, tag: tuple[str, Any]) -> None:
        self._ep.register(fd, select.EPOLLIN)
        self._tags[fd] = tag

    def unregister(self, fd: int) -> None:
        if self._tags.pop(fd, None) is not None:
            try:
                self._ep.unregister(fd)
            except OSError:  # already closed: the kernel dropped it
                pass

    def select(self, timeout: float | None) -> list[tuple[int, tuple[str, Any]]]:
        if timeout is None:
            wait = -1.0
        elif timeout <= 0:
            wait = 0.0
        else:
            wait = -(-timeout * 1e3 // 1) * 1e-3  # whole milliseconds, rounded up (as selectors does)
        try:
            ready = self._ep.poll(wait, max(len(self._tags), 1))
        except InterruptedError:
            return []
        return [(fd, self._tags[fd]) for fd, _events in ready if fd in self._tags]


def _monitor(cfg: MonitorConfig, runtime: Any, ready_fd: int,
             on_started: Callable[[int], None],
             on_exited: Callable[[int, bool], Callable[[], None] | None]) -> int:
    from . import linux as L

    os.setsid()
    try:
        L.prctl(PR_SET_CHILD_SUBREAPER, 1)
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)

    attach_path = os.fspath(cfg.attach_path)
    _unlink(attach_path)
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    listener.bind(attach_path)
    listener.listen(8)

    master: int | None = None
    stdin_w: int | None = None
    outs: dict[int, str] = {}
    if cfg.tty:
        console_path = os.path.splitext(attach_path)[0] + ".console"  # Path.with_suffix(".console")
        _unlink(console_path)
        console = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        console.bind(console_path)
        console.listen(1)
        pid = runtime.create(cfg.container_id, cfg.bundle, console_socket=console_path)
        console.settimeout(10)
        conn = _accept(console)
        master = _recv_fd(conn)
        conn.close()
        console.close()
        _unlink(console_path)
        outs[master] = "stdout"
    else:
        in_r, in_w = os.pipe() if cfg.open_stdin else (devnull, None)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = runtime.create(cfg.container_id, cfg.bundle, stdio=(in_r, out_w, err_w))
        for fd in (out_w, err_w, *((in_r,) if in_w is not None else ())):
            os.close(fd)
        stdin_w = in_w
        outs[out_r] = "stdout"
        outs[err_r] = "stderr"

    if cfg.on_created is not None:
        cfg.on_created(pid)

    def report_ready() -> None:
        os.write(ready_fd, (json_dumps({"pid": pid}) + "\n").encode())
        os.close(ready_fd)

    if cfg.wait_attach:
        report_ready()  # the CLI attaches next; the container starts once it has

    log = JsonLog(cfg.log_path)
    sel = _Poller()
    clients: list[_Client] = []

    def accept() -> None:
        sock = _accept(listener)
        c = _Client(sock)
        clients.append(c)
        sel.register(sock.fileno(), ("client", c))

    if cfg.wait_attach:
        listener.settimeout(30)
        try:
            accept()
        except TimeoutError:
            pass
    listener.setblocking(False)
    sel.register(listener.fileno(), ("listen", None))
    for fd in outs:
        os.set_blocking(fd, False)
        sel.register(fd, ("out", fd))

    runtime.start(cfg.container_id)
    on_started(pid)
    if not cfg.wait_attach:
        report_ready()  # `run -d` returns once `ps` shows the container running
    pidfd = os.pidfd_open(pid)
    sel.register(pidfd, ("exit", None))

    exited: int | None = None
    deadline: float | None = None

    def drop(c: _Client) -> None:
        fd = c.sock.fileno()
        if fd >= 0:
            sel.unregister(fd)
        try:
            clients.remove(c)
        except ValueError:
            pass
        c.sock.close()

    def broadcast(kind: int, data: bytes) -> None:
        msg = frame(kind, data)
        for c in list(clients):
            try:
                c.sock.setblocking(True)
                c.sock.sendall(msg)
            except OSError:
                drop(c)

    def handle_client(c: _Client) -> None:
        nonlocal stdin_w
        try:
            data = c.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            drop(c)
            return
        c.buf += data
        while len(c.buf) >= HEADER_SIZE:
            kind, n = parse_header(c.buf)
            if len(c.buf) < HEADER_SIZE + n:
                break
            payload = c.buf[HEADER_SIZE:HEADER_SIZE + n]
            c.buf = c.buf[HEADER_SIZE + n:]
            if kind == STDIN:
                target = master if master is not None else stdin_w
                if target is not None:
                    try:
                        _write_all(target, payload)
                    except OSError:
                        pass
            elif kind == RESIZE and master is not None and len(payload) == 4:
                import fcntl
                import termios

                rows, cols = int.from_bytes(payload[:2], "big"), int.from_bytes(payload[2:], "big")
                winsize = b"".join(v.to_bytes(2, sys.byteorder) for v in (rows, cols, 0, 0))  # struct winsize
                try:
                    fcntl.ioctl(master, termios.TIOCSWINSZ, winsize)
                except OSError:
                    pass
            elif kind == STDIN_CLOSE and stdin_w is not None and cfg.stdin_once:
                os.close(stdin_w)
                stdin_w = None

    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        events = sel.select(timeout)
        if not events and deadline is not None:
            break
        for fd, (kind, obj) in events:
            if kind == "listen":
                try:
                    accept()
                except BlockingIOError:
                    pass
            elif kind == "client":
                handle_client(obj)
            elif kind == "out":
                try:
                    data = os.read(obj, 65536)
                except OSError as e:
                    data = b"" if e.errno in (errno.EIO, errno.EBADF) else b""
                if not data:
                    sel.unregister(obj)
                    os.close(obj)
                    del outs[obj]
                    continue
                stream = outs[obj]
                log.write(stream, data)
                broadcast(STDOUT if stream == "stdout" else STDERR, data)
            elif kind == "exit":
                sel.unregister(fd)
                _, status = os.waitpid(pid, 0)
                exited = os.waitstatus_to_exitcode(status)
                if exited < 0:
                    exited = 128 - exited
                deadline = time.monotonic() + 2.0  # drain what is left in the pipes, briefly
        if exited is not None and not outs:
            break
    # Reap anything else that was reparented to us.
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    log.close()
    oom = False
    try:
        oom = runtime.cgroup(cfg.container_id).oom_kills() > 0
    except Exception:
        pass
    assert exited is not None
    after: Callable[[], None] | None = None
    try:
        # Record the exit (for --rm: drop the row) first, answer the attached CLI, then clean up
        # the filesystem: the user's prompt comes back without waiting for the unmount and rmtree.
        after = on_exited(exited, oom)
    finally:
        broadcast(EXIT, exited.to_bytes(4, "big", signed=True))
        for c in list(clients):
            drop(c)
        listener.close()
        _unlink(attach_path)
    if after is not None:
        after()
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        view = view[n:]
