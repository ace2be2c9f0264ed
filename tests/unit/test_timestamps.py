"""RFC 3339 timestamps as Docker writes them, without datetime."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from dockyard.timestamps import rfc3339


def test_agrees_with_datetime_on_whole_microseconds() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        ts = rng.randrange(0, 4_000_000_000) + rng.randrange(0, 1_000_000) / 1e6
        want = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        assert rfc3339(ts)[:19] == want


@pytest.mark.parametrize(("ts", "text"), [
    (0, "1970-01-01T00:00:00.000000000Z"),
    (1.5, "1970-01-01T00:00:01.500000000Z"),
    (10.9999999, "1970-01-01T00:00:10.999999900Z"),  # datetime rounds this second up to :11
    (59.9999999999, "1970-01-01T00:01:00.000000000Z"),  # nanoseconds that round to a whole second carry
    (1795911649.25, "2026-11-29T00:20:49.250000000Z"),
])
def test_docker_format_with_nanoseconds(ts: float, text: str) -> None:
    assert rfc3339(ts) == text


def test_integer_nanoseconds_are_written_exactly() -> None:
    from dockyard.timestamps import rfc3339_ns

    assert rfc3339_ns(0) == "1970-01-01T00:00:00.000000000Z"
    assert rfc3339_ns(1_795_911_649_123_456_789) == "2026-11-29T00:20:49.123456789Z"
    assert rfc3339_ns(59_999_999_999) == "1970-01-01T00:00:59.999999999Z"
