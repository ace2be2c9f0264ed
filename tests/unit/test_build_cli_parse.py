"""``dockyard build``'s quick argument reader agrees with its argparse parser wherever it answers."""

from __future__ import annotations

import itertools

import pytest

from dockyard.cli import build as cli_build

CASES = [
    ["."],
    ["-q", "--network", "none", "-t", "bb:1", "/tmp/ctx"],
    ["/ctx", "-t", "a:1", "--tag", "b:2", "--tag=c:3"],
    ["-f", "-", "."],
    ["--file=Dockerfile.x", "--no-cache", "--pull", "."],
    ["--build-arg", "A=1", "--build-arg=B=2", "--label", "x=y", "--label=k=v=w", "."],
    ["--target", "stage", "--platform", "linux/amd64", "--iidfile", "/tmp/iid", "ctx"],
    ["--progress", "plain", "."],
    ["--progress=rawjson", "--rm", "--force-rm", "--cache-from", "x", "."],
    ["--secret", "id=a,src=/x", "--quiet", "-"],
    ["--network=host", ""],
    ["."] + ["-t", "x"] * 3,
]
FALLBACK = [
    [],
    [".", "other"],
    ["--help"],
    ["-h", "."],
    ["-qt", "x", "."],
    ["-tx", "."],
    ["-t=x", "."],
    ["-t", "."],
    ["-t", "--pull", "."],
    ["--progress", "bogus", "."],
    ["--progress"],
    ["--", "."],
    ["--pull=yes", "."],
    ["--no-such", "."],
    ["--no-cach", "."],
    ["-1"],
    ["--build-arg", "-x y", "."],
]


def _argparse(argv: list[str]) -> dict[str, object]:
    return vars(cli_build._parser("build").parse_args(argv))


@pytest.mark.parametrize("argv", CASES)
def test_quick_parse_matches_argparse(argv: list[str]) -> None:
    quick = cli_build.quick_parse(argv)
    assert quick is not None
    expected = _argparse(argv)
    assert {k: getattr(quick, k) for k in expected} == expected


def test_quick_parse_orders() -> None:
    flags = [["-q"], ["--network", "none"], ["-t", "a:1"], ["--tag=b:2"], ["."]]
    for perm in itertools.permutations(flags):
        argv = [x for part in perm for x in part]
        quick = cli_build.quick_parse(argv)
        assert quick is not None
        expected = _argparse(argv)
        assert {k: getattr(quick, k) for k in expected} == expected


@pytest.mark.parametrize("argv", FALLBACK)
def test_quick_parse_leaves_the_rest_to_argparse(argv: list[str]) -> None:
    assert cli_build.quick_parse(argv) is None
