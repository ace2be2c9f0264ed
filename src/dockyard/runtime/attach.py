"""The client side of a monitor's attach socket: relay the user's terminal until the container ends.

The user's terminal goes raw for ``-t`` and is restored on every exit path; ``SIGWINCH`` is
forwarded as a resize; Ctrl-P Ctrl-Q detaches (the container keeps running).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import sys
import time
from pathlib import Path

from dockyard.runtime.monitor import EXIT, HEADER, RESIZE, STDERR, STDIN, STDIN_CLOSE, STDOUT, frame

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

DETACH_KEYS = b"\x10\x11"  # Ctrl-P Ctrl-Q
DETACHED = -1


def connect(path: Path, timeout: float = 10.0) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(path))
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
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        return rows, cols
    except OSError:
        return None


def relay(sock: socket.socket, *, tty: bool, stdin: bool, detach_keys: bytes = DETACH_KEYS) -> int:
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
            with contextlib.suppress(OSError):
                os.write(wake_w, b"w")

        old_winch = signal.signal(signal.SIGWINCH, on_winch)
        size = _winsize(in_fd)
        if size:
            sock.sendall(frame(RESIZE, struct.pack(">HH", *size)))
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
                        with contextlib.suppress(OSError):
                            sock.sendall(frame(RESIZE, struct.pack(">HH", *size)))
            if in_fd is not None and in_fd in ready:
                data = os.read(in_fd, 65536)
                if not data:
                    watch.remove(in_fd)
                    with contextlib.suppress(OSError):
                        sock.sendall(frame(STDIN_CLOSE, b""))
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
                while len(buf) >= HEADER.size:
                    kind, n = HEADER.unpack_from(buf)
                    if len(buf) < HEADER.size + n:
                        break
                    payload = buf[HEADER.size:HEADER.size + n]
                    buf = buf[HEADER.size + n:]
                    if kind == STDOUT:
                        out.write(payload)
                        out.flush()
                    elif kind == STDERR:
                        err.write(payload)
                        err.flush()
                    elif kind == EXIT:
                        return int(struct.unpack(">i", payload)[0])
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        os.close(wake_r)
        os.close(wake_w)
