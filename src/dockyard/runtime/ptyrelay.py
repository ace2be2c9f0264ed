"""Relay the user's terminal to a pty master: raw mode, window size, restored on every exit path.

Used wherever the caller itself holds the master (``dockyard exec -t``, ``dockyard-runtime run/exec -t``
without a console socket); a container's own tty goes through its monitor instead (runtime/attach.py).
No ``signal`` or ``contextlib`` here: ``exec -t`` would pay for their imports (``signal`` builds enums).
"""

from __future__ import annotations

import os
import select

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal  # the C module: ``signal`` wraps it in enums, and ``enum`` costs ~4 ms


def relay(master: int, *, stdin: bool = True, pid: int | None = None) -> None:
    """Copy stdin -> master and master -> stdout until the pty closes, or until ``pid`` has exited.

    With ``pid``, the relay ends when that process does (then drains what it wrote last), even if
    something it started still holds the pty open. ``master`` is closed on return.
    """
    restore = None
    old_winch = None
    tty_in = os.isatty(0)
    if tty_in:
        import fcntl
        import termios
        import tty

        def resize(_signum: int = 0, _frame: object = None) -> None:
            try:
                fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
            except OSError:
                pass

        resize()
        old_winch = signal.signal(signal.SIGWINCH, resize)
        restore = termios.tcgetattr(0)
        tty.setraw(0)
    pidfd = os.pidfd_open(pid) if pid is not None else None
    watch = [master] + ([0] if stdin else []) + ([pidfd] if pidfd is not None else [])
    try:
        while master in watch:
            try:
                ready, _, _ = select.select(watch, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave end is closed
                    data = b""
                if data:
                    os.write(1, data)
                else:
                    watch.remove(master)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    watch.remove(0)
            if pidfd is not None and pidfd in ready:
                try:  # what the process wrote just before it ended
                    while select.select([master], [], [], 0.05)[0]:
                        data = os.read(master, 65536)
                        if not data:
                            break
                        os.write(1, data)
                except OSError:
                    pass
                return
    finally:
        if restore is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, restore)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        if pidfd is not None:
            os.close(pidfd)
        os.close(master)
