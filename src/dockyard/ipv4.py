"""IPv4 dotted quads as ints, by ``ipaddress``'s rules, without importing ``ipaddress`` (it brings
functools and collections: ~3 ms that every ``run`` on the default bridge would pay).

The one parser for the address arithmetic of the run path (leases in ``ops.networks``, veths and
routes in ``runtime.netlink``); anything it does not take, valid or not, is left to ``ipaddress``.
"""

from __future__ import annotations


def parse(s: str) -> int | None:
    """``int(ipaddress.IPv4Address(s))`` for a dotted quad ipaddress accepts (same rules: four
    decimal octets, no leading zeros, none above 255); None for anything else (ask ipaddress)."""
    parts = s.split(".")
    if len(parts) != 4:
        return None
    n = 0
    for p in parts:
        if not (p.isascii() and p.isdigit()) or len(p) > 3 or (p[0] == "0" and p != "0"):
            return None
        v = int(p)
        if v > 255:
            return None
        n = n << 8 | v
    return n


def text(n: int) -> str:
    """``str(ipaddress.IPv4Address(n))``."""
    return f"{n >> 24}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
