"""The client side of a monitor's attach socket: relay the user's terminal until the container ends.

The user's terminal goes raw for ``-t`` and is restored on every exit path; ``SIGWINCH`` is
forwarded as a resize; Ctrl-P Ctrl-Q detaches (the container keeps running).

Imported by every foreground ``run``: C modules only (``_socket``, ``select``, ``_signal``) and
int.to_bytes for the frames, since ``socket``/``signal``/``struct``/``contextlib``/``pathlib`` would
cost milliseconds of each run (``socket`` and ``signal`` build enums).
"""

from __future__ import annotations

import _socket
import os
import select
import sys
import time

from dockyard.runtime.monitor import EXIT, HEADER_SIZE, RESIZE, STDERR, STDIN, STDIN_CLOSE, STDOUT, frame, parse_header

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import signal
    from typing import Any
else:
    import _signal as signal  # the C module: ``signal`` wraps it in enums, and ``enum`` costs ~4 ms

DETACH_KEYS = b"\x10\x11"  # Ctrl-P Ctrl-Q
DETACHED = -1


def connect(path: str | os.PathLike[str], timeout: float = 10.0) -> _socket.socket:
    """A connected socket (the C ``_socket.socket``: ``sendall``, ``recv``, ``close``, ``fileno``)."""
    address = os.fspath(path)
    deadline = time.monotonic() + timeout
    while True:
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            s.connect(address)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _winsize(fd: int) -> tuple[int, int] | None:
    import fcntl
    import termios

    try:
        raw = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    return int.from_bytes(raw[0:2], sys.byteorder), int.from_bytes(raw[2:4], sys.byteorder)  # ws_row, ws_col


def _resize_frame(size: tuple[int, int]) -> bytes:
    return frame(RESIZE, size[0].to_bytes(2, "big") + size[1].to_bytes(2, "big"))


def relay(sock: _socket.socket, *, tty: bool, stdin: bool, detach_keys: bytes = DETACH_KEYS) -> int:
    """Relay until the exit frame; returns the container's exit status, or DETACHED."""
    in_fd = sys.stdin.fileno() if stdin else None
    out = sys.stdout.buffer
    err = sys.stderr.buffer
    saved = None
    if tty and in_fd is not None and os.isatty(in_fd):
        import termios
        import tty as _tty

        saved = termios.tcgetattr(in_fd)
        _tty.setraw(in_fd)
    wake_r, wake_w = os.pipe()
    old_winch = None
    if tty and in_fd is not None and os.isatty(in_fd):
        def on_winch(_sig: int, _frame: object) -> None:
            try:
                os.write(wake_w, b"w")
            except OSError:
                pass

        old_winch = signal.signal(signal.SIGWINCH, on_winch)
        size = _winsize(in_fd)
        if size:
            sock.sendall(_resize_frame(size))
    try:
        buf = b""
        pending_detach = b""
        watch: list[Any] = [sock, wake_r] + ([in_fd] if in_fd is not None else [])
        while True:
            try:
                ready, _, _ = select.select(watch, [], [])
            except InterruptedError:
                continue
            if wake_r in ready:
                os.read(wake_r, 64)
                if in_fd is not None:
                    size = _winsize(in_fd)
                    if size:
                        try:
                            sock.sendall(_resize_frame(size))
                        except OSError:
                            pass
            if in_fd is not None and in_fd in ready:
                data = os.read(in_fd, 65536)
                if not data:
                    watch.remove(in_fd)
                    try:
                        sock.sendall(frame(STDIN_CLOSE, b""))
                    except OSError:
                        pass
                    in_fd = None
                elif tty:
                    data = pending_detach + data
                    pending_detach = b""
                    i = data.find(detach_keys)
                    if i >= 0:
                        if i:
                            sock.sendall(frame(STDIN, data[:i]))
                        return DETACHED
                    if data.endswith(detach_keys[:1]):
                        pending_detach, data = data[-1:], data[:-1]
                    if data:
                        sock.sendall(frame(STDIN, data))
                else:
                    sock.sendall(frame(STDIN, data))
            if sock in ready:
                chunk = sock.recv(65536)
                if not chunk:
                    return 255  # monitor went away without an exit status
                buf += chunk
                while len(buf) >= HEADER_SIZE:
                    kind, n = parse_header(buf)
                    if len(buf) < HEADER_SIZE + n:
                        break
                    payload = buf[HEADER_SIZE:HEADER_SIZE + n]
                    buf = buf[HEADER_SIZE + n:]
                    if kind == STDOUT:
                        out.write(payload)
                        out.flush()
                    elif kind == STDERR:
                        err.write(payload)
                        err.flush()
                    elif kind == EXIT:
                        return int.from_bytes(payload[:4], "big", signed=True)
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        os.close(wake_r)
        os.close(wake_w)
