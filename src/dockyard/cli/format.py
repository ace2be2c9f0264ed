"""Docker's human-readable words for sizes, durations and tables (go-units semantics)."""

from __future__ import annotations

import math
import time

from dockyard.timestamps import rfc3339 as rfc3339  # re-exported: the CLI formats with the rest

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Sequence  # imports collections: ~2 ms of every command at run time

_DECIMAL = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
_BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]


def human_size(size: float, precision: int = 3) -> str:
    """``869MB``, ``1.99MB``, ``4.1kB``: Docker's ``units.HumanSizeWithPrecision(size, 3)``."""
    i = 0
    while size >= 1000.0 and i < len(_DECIMAL) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.{precision}g}{_DECIMAL[i]}"


def bytes_size(size: float) -> str:
    """``1.5GiB``: Docker's ``units.BytesSize`` (binary units), used by ``info``."""
    i = 0
    while size >= 1024.0 and i < len(_BINARY) - 1:
        size /= 1024.0
        i += 1
    return f"{size:.4g}{_BINARY[i]}"


def human_duration(seconds: float) -> str:
    """``About a minute``, ``5 minutes``, ``2 days``: go-units ``HumanDuration``."""
    if seconds < 1:
        return "Less than a second"
    s = int(seconds)
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(math.floor(seconds / 3600 + 0.5))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600 / 24 / 365)} years"


def ago(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "N/A"
    now = time.time() if now is None else now
    return human_duration(max(0.0, now - ts)) + " ago"


def parse_rfc3339(value: str | None) -> float | None:
    """Docker writes nanosecond timestamps (``2024-05-21T20:52:01.123456789Z``); Python takes micro."""
    if not value:
        return None
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    if "." in v:
        head, _, rest = v.partition(".")
        frac = ""
        while rest and rest[0].isdigit():
            frac += rest[0]
            rest = rest[1:]
        v = f"{head}.{frac[:6].ljust(6, '0')}{rest}"
    try:
        import datetime as _dt

        return _dt.datetime.fromisoformat(v).timestamp()
    except ValueError:
        return None


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Docker's ``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``: cells padded by 3, at least 10 wide."""
    widths = [len(h) for h in headers]
    for r in rows:
        for i, cell in enumerate(r):
            widths[i] = max(widths[i], len(cell))
    widths = [max(10, w + 3) for w in widths]
    lines = []
    for r in [list(headers), *rows]:
        parts = [cell.ljust(widths[i]) if i < len(r) - 1 else cell for i, cell in enumerate(r)]
        lines.append("".join(parts).rstrip())
    return "\n".join(lines)


def short_id(image_or_container_id: str) -> str:
    return image_or_container_id.removeprefix("sha256:")[:12]
