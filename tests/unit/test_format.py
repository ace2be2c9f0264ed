import pytest

from dockyard.cli.format import human_duration, human_size, parse_rfc3339, rfc3339, table


@pytest.mark.parametrize("size, text", [
    (0, "0B"), (999, "999B"), (1000, "1kB"), (4264, "4.26kB"), (1_990_000, "1.99MB"),
    (869_000_000, "869MB"), (869_400_000, "869MB"), (1_234_567_890, "1.23GB"), (2_140_160, "2.14MB"),
])
def test_sizes_as_docker_prints_them(size: int, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize("seconds, text", [
    (0.2, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (59 * 60, "59 minutes"), (3600, "About an hour"),
    (2 * 3600, "2 hours"), (47 * 3600, "47 hours"), (2 * 86400, "2 days"), (13 * 86400, "13 days"),
    (14 * 86400, "2 weeks"), (60 * 86400, "2 months"), (800 * 86400, "2 years"),
])
def test_durations_as_docker_prints_them(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_rfc3339_round_trip_with_nanoseconds() -> None:
    ts = 1716324721.123456
    s = rfc3339(ts)
    assert s.endswith("Z") and len(s.split(".")[1]) == 10
    assert abs(parse_rfc3339(s) - ts) < 1e-5  # type: ignore[operator]
    assert parse_rfc3339("2024-05-21T20:52:01.123456789Z") == pytest.approx(1716324721.123456)
    assert parse_rfc3339("garbage") is None


def test_table_uses_dockers_tabwriter_padding() -> None:
    out = table(["REPOSITORY", "TAG", "IMAGE ID"], [["busybox", "latest", "0123456789ab"]])
    lines = out.splitlines()
    assert lines[0] == "REPOSITORY   TAG       IMAGE ID"
    assert lines[1] == "busybox      latest    0123456789ab"
