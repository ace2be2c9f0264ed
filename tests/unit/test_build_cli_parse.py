"""``dockyard build``'s flags read by the quick reader (dockyard.cli.quickargs) agree with its argparse parser
wherever the reader answers."""

from __future__ import annotations

import itertools

import pytest

from dockyard.cli import build as cli_build
from dockyard.cli import quickargs

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
    # forms the build command's own reader used to leave to argparse; the shared reader takes them as it does
    ["-qt", "x", "."],
    ["-tx", "."],
    ["-t=x", "."],
]
FALLBACK = [
    [],
    [".", "other"],
    ["--help"],
    ["-h", "."],
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


def quick_parse(argv: list[str]) -> quickargs.Namespace | None:
    return quickargs.parse(cli_build.BUILD_FLAGS, argv)


def _argparse(argv: list[str]) -> dict[str, object]:
    return vars(cli_build._parser("build").parse_args(argv))


@pytest.mark.parametrize("argv", CASES)
def test_quick_parse_matches_argparse(argv: list[str]) -> None:
    quick = quick_parse(argv)
    assert quick is not None
    expected = _argparse(argv)
    assert {k: getattr(quick, k) for k in expected} == expected


def test_quick_parse_orders() -> None:
    flags = [["-q"], ["--network", "none"], ["-t", "a:1"], ["--tag=b:2"], ["."]]
    for perm in itertools.permutations(flags):
        argv = [x for part in perm for x in part]
        quick = quick_parse(argv)
        assert quick is not None
        expected = _argparse(argv)
        assert {k: getattr(quick, k) for k in expected} == expected


@pytest.mark.parametrize("argv", FALLBACK)
def test_quick_parse_leaves_the_rest_to_argparse(argv: list[str]) -> None:
    assert quick_parse(argv) is None

