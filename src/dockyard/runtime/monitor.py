"""The per-container monitor (what conmon is to podman), forked from the CLI, no new interpreter.

It owns the container's stdio (pipes, or the pty master), writes the json-file log, serves an attach
socket, starts the container through any ``Runtime``, reaps it as a child subreaper and reports the
exit through a callback. The CLI that forked it can exit at once (``run -d``) or attach to the
socket (foreground ``run``, ``start -a``, ``attach``): one code path for all three.

Frames on the attach socket (both directions) are Docker's stdcopy header: one byte of stream type,
three zero bytes, a big-endian 32-bit length, then the payload. Monitor -> client: 1 stdout,
2 stderr, 3 exit (4-byte signed status). Client -> monitor: 0 stdin data, 4 resize (rows, cols as
two 16-bit numbers), 5 stdin closed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import signal
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

STDIN, STDOUT, STDERR, EXIT, RESIZE, STDIN_CLOSE = 0, 1, 2, 3, 4, 5
HEADER = struct.Struct(">BxxxI")
PR_SET_CHILD_SUBREAPER = 36


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def rfc3339_ns(ts: float) -> str:
    t = time.gmtime(ts)
    ns = int((ts % 1) * 1e9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ns:09d}Z"


class MonitorConfig:
    """What the monitor runs (a plain class: ``dataclasses`` is not worth its import time here)."""

    def __init__(self, container_id: str, bundle: Path, log_path: Path, attach_path: Path, tty: bool = False,
                 open_stdin: bool = False, stdin_once: bool = False, wait_attach: bool = False,
                 on_created: Callable[[int], None] | None = None) -> None:
        self.container_id = container_id
        self.bundle = bundle
        self.log_path = log_path
        self.attach_path = attach_path
        self.tty = tty
        self.open_stdin = open_stdin
        self.stdin_once = stdin_once
        self.wait_attach = wait_attach  # foreground: start only once the first client has attached
        # Called with the init's pid after create, before start (network plumbing).
        self.on_created = on_created


class JsonLog:
    """Docker's json-file log: one ``{"log": ..., "stream": ..., "time": ...}`` object per line."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the monitor
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        buf = self._partial[stream] + data
        *lines, rest = buf.split(b"\n")
        now = time.time()
        out = []
        for line in lines:
            out.append(json.dumps({"log": line.decode("utf-8", "replace") + "\n", "stream": stream,
                                   "time": rfc3339_ns(now)}).encode() + b"\n")
        if len(rest) > 16384:  # Docker splits long lines at 16K
            out.append(json.dumps({"log": rest.decode("utf-8", "replace"), "stream": stream,
                                   "time": rfc3339_ns(now)}).encode() + b"\n")
            rest = b""
        self._partial[stream] = rest
        if out:
            self._f.write(b"".join(out))

    def close(self) -> None:
        for stream, rest in self._partial.items():
            if rest:
                self._f.write(json.dumps({"log": rest.decode("utf-8", "replace"), "stream": stream,
                                          "time": rfc3339_ns(time.time())}).encode() + b"\n")
        self._f.close()


def _recv_fd(sock: socket.socket) -> int:
    msg, ancdata, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(4))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            return struct.unpack("i", data[:4])[0]
    raise OSError("no file descriptor received on the console socket")


class _Client:
    def __init__(self, sock: socket.socket) -> None:
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
        with contextlib.suppress(OSError):
            os.write(ready_fd, (json.dumps({"error": f"{e}", "exit_code": getattr(e, "exit_code", 125)})
                                + "\n").encode())
        code = 125
    os._exit(code)


def _monitor(cfg: MonitorConfig, runtime: Any, ready_fd: int,
             on_started: Callable[[int], None],
             on_exited: Callable[[int, bool], Callable[[], None] | None]) -> int:
    import ctypes

    os.setsid()
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)

    with contextlib.suppress(FileNotFoundError):
        cfg.attach_path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(cfg.attach_path))
    listener.listen(8)

    master: int | None = None
    stdin_w: int | None = None
    outs: dict[int, str] = {}
    if cfg.tty:
        console_path = cfg.attach_path.with_suffix(".console")
        with contextlib.suppress(FileNotFoundError):
            console_path.unlink()
        console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        console.bind(str(console_path))
        console.listen(1)
        pid = runtime.create(cfg.container_id, cfg.bundle, console_socket=str(console_path))
        console.settimeout(10)
        conn, _ = console.accept()
        master = _recv_fd(conn)
        conn.close()
        console.close()
        with contextlib.suppress(FileNotFoundError):
            console_path.unlink()
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
        os.write(ready_fd, (json.dumps({"pid": pid}) + "\n").encode())
        os.close(ready_fd)

    if cfg.wait_attach:
        report_ready()  # the CLI attaches next; the container starts once it has

    log = JsonLog(cfg.log_path)
    sel = selectors.DefaultSelector()
    clients: list[_Client] = []

    def accept() -> None:
        sock, _ = listener.accept()
        c = _Client(sock)
        clients.append(c)
        sel.register(sock, selectors.EVENT_READ, ("client", c))

    if cfg.wait_attach:
        listener.settimeout(30)
        with contextlib.suppress(TimeoutError):
            accept()
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, ("listen", None))
    for fd in outs:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ, ("out", fd))

    runtime.start(cfg.container_id)
    on_started(pid)
    if not cfg.wait_attach:
        report_ready()  # `run -d` returns once `ps` shows the container running
    pidfd = os.pidfd_open(pid)
    sel.register(pidfd, selectors.EVENT_READ, ("exit", None))

    exited: int | None = None
    deadline: float | None = None

    def drop(c: _Client) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(c.sock)
        with contextlib.suppress(ValueError):
            clients.remove(c)
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
        while len(c.buf) >= HEADER.size:
            kind, n = HEADER.unpack_from(c.buf)
            if len(c.buf) < HEADER.size + n:
                break
            payload = c.buf[HEADER.size:HEADER.size + n]
            c.buf = c.buf[HEADER.size + n:]
            if kind == STDIN:
                target = master if master is not None else stdin_w
                if target is not None:
                    with contextlib.suppress(OSError):
                        _write_all(target, payload)
            elif kind == RESIZE and master is not None and len(payload) == 4:
                import fcntl
                import termios

                rows, cols = struct.unpack(">HH", payload)
                with contextlib.suppress(OSError):
                    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            elif kind == STDIN_CLOSE and stdin_w is not None and cfg.stdin_once:
                os.close(stdin_w)
                stdin_w = None

    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        events = sel.select(timeout)
        if not events and deadline is not None:
            break
        for key, _mask in events:
            kind, obj = key.data
            if kind == "listen":
                with contextlib.suppress(BlockingIOError):
                    accept()
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
                sel.unregister(pidfd)
                _, status = os.waitpid(pid, 0)
                exited = os.waitstatus_to_exitcode(status)
                if exited < 0:
                    exited = 128 - exited
                deadline = time.monotonic() + 2.0  # drain what is left in the pipes, briefly
        if exited is not None and not outs:
            break
    # Reap anything else that was reparented to us.
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    log.close()
    oom = False
    with contextlib.suppress(Exception):
        oom = runtime.cgroup(cfg.container_id).oom_kills() > 0
    assert exited is not None
    after: Callable[[], None] | None = None
    try:
        # Record the exit (for --rm: drop the row) first, answer the attached CLI, then clean up
        # the filesystem: the user's prompt comes back without waiting for the unmount and rmtree.
        after = on_exited(exited, oom)
    finally:
        broadcast(EXIT, struct.pack(">i", exited))
        for c in list(clients):
            drop(c)
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            cfg.attach_path.unlink()
    if after is not None:
        after()
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            import select

            select.select([], [fd], [], 1.0)
            continue
        view = view[n:]
