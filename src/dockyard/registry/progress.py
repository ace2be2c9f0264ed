"""Docker-style progress for pull and push: one line per layer, redrawn in place on a terminal.

On a TTY each layer keeps its line (``abc123def456: Downloading [=====>   ]  12.3MB/50MB``) and is
updated with ANSI cursor moves, as ``docker pull`` does. Elsewhere (a pipe, a log) only status
changes are printed, one plain line each, and byte counts are left out, again as Docker does.
``quiet`` prints nothing. Updates may come from several threads.
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import TextIO

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")
BAR_WIDTH = 50


def human_size(n: float) -> str:
    """Docker's units.HumanSize: decimal units, 4 significant digits (``12.35MB``)."""
    i = 0
    while n >= 1000 and i < len(_UNITS) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.4g}{_UNITS[i]}"


def progress_bar(current: int, total: int | None) -> str:
    """``[=====>     ]  12.35MB/50MB`` (or just the count when the total is unknown)."""
    if not total or total <= 0:
        return f"{human_size(current):>8}"
    current = min(current, total)
    n = int(current * 100 / total / 2)
    if n >= BAR_WIDTH:
        bar = "[" + "=" * BAR_WIDTH + ">]"
    else:
        bar = "[" + "=" * n + ">" + " " * (BAR_WIDTH - n - 1) + "]"
    return f"{bar} {human_size(current):>8}/{human_size(total)}"


class Progress:
    """Per-item status lines (``id: status``) plus free lines, for one pull or push."""

    def __init__(self, out: TextIO | None = None, *, quiet: bool = False, tty: bool | None = None,
                 min_interval: float = 0.1) -> None:
        self.out = out if out is not None else sys.stdout
        self.quiet = quiet
        if tty is None:
            try:
                tty = self.out.isatty()
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty
        self.min_interval = min_interval
        self._order: list[str] = []
        self._text: dict[str, str] = {}
        self._last_draw: dict[str, float] = {}
        from _thread import allocate_lock  # threading's Lock, without importing threading

        self._lock = allocate_lock()

    def _write(self, s: str) -> None:
        self.out.write(s)
        self.out.flush()

    def line(self, text: str) -> None:
        """A line of its own (``latest: Pulling from library/busybox``); later items go below it."""
        if self.quiet:
            return
        with self._lock:
            self._write(text + "\n")
            if self.tty:
                self._order.clear()  # lines above are no longer redrawn

    def update(self, item: str, status: str, current: int | None = None, total: int | None = None) -> None:
        """Set ``item``'s line; ``current``/``total`` make it a progress bar (terminal only)."""
        if self.quiet:
            return
        has_bar = current is not None
        if not self.tty:
            if has_bar:
                return
            with self._lock:
                if self._text.get(item) == status:
                    return
                self._text[item] = status
                self._write(f"{item}: {status}\n")
            return
        text = f"{item}: {status}"
        if has_bar:
            text += " " + progress_bar(current or 0, total)
        now = time.monotonic()
        with self._lock:
            if has_bar and item in self._text and now - self._last_draw.get(item, 0) < self.min_interval \
                    and (total is None or (current or 0) < total):
                return
            if self._text.get(item) == text and item in self._order:
                return
            self._text[item] = text
            self._last_draw[item] = now
            if item not in self._order:
                self._order.append(item)
                self._write(f"\x1b[2K\r{text}\n")
                return
            up = len(self._order) - self._order.index(item)
            self._write(f"\x1b[{up}A\x1b[2K\r{text}\x1b[{up}B\r")
