"""The builder's pure parts: stage graph, ARG scoping, cache keys, RUN --mount, history strings."""

from __future__ import annotations

import pytest

from dockyard.build.builder import (
    PLATFORM_ARGS,
    _go_duration,
    _healthcheck_history,
    _run_command_string,
    cache_key,
    parse_build_args,
    plan,
    platform_args,
    resolve_arg,
)
from dockyard.build.dockerfile import parse
from dockyard.build.executor import parse_run_mount
from dockyard.errors import BuildError
from dockyard.image.oci import Platform

MULTI = """\
ARG BASE=busybox
ARG TAG
FROM ${BASE}:${TAG:-latest} AS build
RUN make

FROM busybox AS unused
RUN false

FROM build AS test
RUN make test

FROM alpine
COPY --from=build /out /out
COPY --from=1 /x /x
RUN --mount=type=bind,from=test,target=/t true
COPY --from=nginx:latest /etc/nginx /etc/nginx
"""


def test_stages_and_default_target() -> None:
    p = plan(parse(MULTI))
    assert [s.name for s in p.stages] == ["build", "unused", "test", None]
    assert [s.label for s in p.stages] == ["build", "unused", "test", "stage-3"]
    assert p.stages[0].base == "busybox:latest"
    assert p.stages[2].base_stage == 0
    assert p.target == 3
    last = p.stages[3]
    assert sorted(last.deps) == [0, 1, 2]
    assert last.images == ["nginx:latest"]
    assert p.order == [0, 1, 2, 3]


def test_target_builds_only_what_it_needs() -> None:
    p = plan(parse(MULTI), target="test")
    assert p.target == 2
    assert p.order == [0, 2]  # "unused" (which would fail) is not built
    p = plan(parse(MULTI), target="BUILD")
    assert p.order == [0]


def test_unknown_target() -> None:
    with pytest.raises(BuildError, match='target stage "nope" could not be found'):
        plan(parse(MULTI), target="nope")


def test_global_args_are_for_from_lines_and_build_args_override() -> None:
    p = plan(parse(MULTI), build_args={"BASE": "debian", "TAG": "12"})
    assert p.stages[0].base == "debian:12"
    assert p.meta_args["BASE"] == "debian"
    assert p.meta_declared == ["BASE", "TAG"]


def test_global_arg_defaults_expand_earlier_ones() -> None:
    df = parse("ARG A=x\nARG B=${A}y\nFROM img:$B\n")
    assert plan(df).stages[0].base == "img:xy"


def test_platform_args_in_global_scope() -> None:
    df = parse("FROM img-$TARGETARCH AS a\nFROM --platform=$BUILDPLATFORM img\n")
    p = plan(df, platform=Platform("linux", "arm64", "v8"))
    assert p.stages[0].base == "img-arm64"
    assert p.stages[1].platform == p.meta_args["BUILDPLATFORM"]
    assert p.meta_args["TARGETPLATFORM"] == "linux/arm64/v8"
    assert set(PLATFORM_ARGS) <= set(p.meta_args)


def test_platform_args_values() -> None:
    args = platform_args(Platform("linux", "arm", "v7"), Platform("linux", "amd64"))
    assert args == {"TARGETPLATFORM": "linux/arm/v7", "TARGETOS": "linux", "TARGETARCH": "arm",
                    "TARGETVARIANT": "v7", "BUILDPLATFORM": "linux/amd64", "BUILDOS": "linux",
                    "BUILDARCH": "amd64", "BUILDVARIANT": ""}


def test_blank_base_is_an_error() -> None:
    with pytest.raises(BuildError, match=r"Dockerfile:2: base name \(\$\{NOPE\}\) should not be blank"):
        plan(parse("ARG X=1\nFROM ${NOPE}\n"))


def test_instruction_before_from() -> None:
    with pytest.raises(BuildError, match="Dockerfile:1: no build stage in current context"):
        plan(parse("RUN true\nFROM busybox\n"))


def test_only_args_is_no_stage() -> None:
    with pytest.raises(BuildError, match="needs a FROM"):
        plan(parse("ARG A=1\n"))


def test_duplicate_stage_names() -> None:
    with pytest.raises(BuildError, match='duplicate stage name "a"'):
        plan(parse("FROM busybox AS a\nFROM busybox AS A\n"))


def test_from_index_must_be_earlier() -> None:
    with pytest.raises(BuildError, match="Dockerfile:2: invalid from flag value 1"):
        plan(parse("FROM busybox\nCOPY --from=1 /a /b\nFROM busybox\n"))


def test_from_flag_expands_stage_args() -> None:
    df = parse("FROM busybox AS one\nFROM busybox\nARG SRC=one\nCOPY --from=$SRC /a /b\n")
    assert plan(df).stages[1].deps == [0]


def test_later_stage_name_is_an_image() -> None:
    df = parse("FROM later\nFROM busybox AS later\n")
    p = plan(df, target=None)
    assert p.stages[0].base_stage is None


def test_arg_scoping_rules() -> None:
    meta = {"GLOBAL": "g", "TARGETARCH": "amd64"}
    assert resolve_arg("GLOBAL", None, {}, meta) == "g"  # redeclared: inherits the global value
    assert resolve_arg("GLOBAL", "own", {}, meta) == "own"  # its own default wins over the global one
    assert resolve_arg("GLOBAL", "own", {"GLOBAL": "cli"}, meta) == "cli"  # --build-arg wins over all
    assert resolve_arg("TARGETARCH", None, {}, meta) == "amd64"
    assert resolve_arg("OTHER", None, {}, meta) is None  # declared, unset


def test_parse_build_args() -> None:
    assert parse_build_args(["A=1", "B=", "C=x=y", "HOME", "UNSET_VAR_XYZ"], {"HOME": "/root"}) == {
        "A": "1", "B": "", "C": "x=y", "HOME": "/root"}
    with pytest.raises(BuildError):
        parse_build_args(["=1"], {})


# ---- cache keys --------------------------------------------------------------------------


def test_cache_key_is_deterministic_and_sensitive() -> None:
    k = cache_key("sha256:aaa", "run", "RUN /bin/sh -c make # buildkit", [("A", "1")])
    assert k == cache_key("sha256:aaa", "run", "RUN /bin/sh -c make # buildkit", [("A", "1")])
    assert k.startswith("sha256:") and len(k) == 71
    assert k != cache_key("sha256:bbb", "run", "RUN /bin/sh -c make # buildkit", [("A", "1")])
    assert k != cache_key("sha256:aaa", "run", "RUN /bin/sh -c make2 # buildkit", [("A", "1")])
    assert k != cache_key("sha256:aaa", "run", "RUN /bin/sh -c make # buildkit", [("A", "2")])


# ---- history strings -----------------------------------------------------------------------


def test_run_command_string_like_buildkit() -> None:
    argv = ["/bin/sh", "-c", "echo $A"]
    assert _run_command_string(argv, [], {}) == "/bin/sh -c echo $A"
    args = [("A", "1"), ("B", None), ("A", "2")]
    assert _run_command_string(argv, args, {"A": "3"}) == "|2 A=3 B= /bin/sh -c echo $A"


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (3_000_000_000, "3s"), (300_000_000_000, "5m0s"), (90_500_000_000, "1m30.5s"),
    (3_600_000_000_000, "1h0m0s"), (1_500_000, "1.5ms"), (250, "250ns"),
])
def test_go_duration(ns: int, text: str) -> None:
    assert _go_duration(ns) == text


def test_healthcheck_history() -> None:
    hc = {"Test": ["CMD-SHELL", "curl -f http://localhost/"], "Interval": 300_000_000_000,
          "Timeout": 3_000_000_000, "Retries": 3}
    assert _healthcheck_history(hc) == (
        'HEALTHCHECK &{["CMD-SHELL" "curl -f http://localhost/"] "5m0s" "3s" "0s" "0s" \'\\x03\'}')


# ---- RUN --mount ---------------------------------------------------------------------------


def test_parse_cache_mount() -> None:
    m = parse_run_mount("type=cache,target=/root/.cache,sharing=locked")
    assert (m.type, m.target, m.id, m.sharing, m.readonly) == ("cache", "/root/.cache", "/root/.cache",
                                                               "locked", False)
    m = parse_run_mount("type=cache,id=pip,dst=/c,mode=0700,uid=1,gid=2")
    assert (m.id, m.target, m.mode, m.uid, m.gid) == ("pip", "/c", 0o700, 1, 2)


def test_parse_bind_mount_defaults() -> None:
    m = parse_run_mount("target=/src")
    assert (m.type, m.target, m.readonly, m.source) == ("bind", "/src", True, "")
    m = parse_run_mount("type=bind,from=build,source=/out,target=/o,rw")
    assert (m.from_, m.source, m.readonly) == ("build", "/out", False)


def test_parse_secret_and_tmpfs_mounts() -> None:
    m = parse_run_mount("type=secret,id=tok")
    assert (m.target, m.readonly) == ("/run/secrets/tok", True)
    m = parse_run_mount("type=secret,id=tok,env=TOKEN")
    assert (m.target, m.env) == ("", "TOKEN")
    m = parse_run_mount("type=tmpfs,target=/t,size=1m")
    assert (m.type, m.size) == ("tmpfs", "1m")


def test_parse_mount_expands_values() -> None:
    m = parse_run_mount("type=cache,target=$DIR", expand=lambda s: s.replace("$DIR", "/x"))
    assert m.target == "/x"


@pytest.mark.parametrize(("value", "message"), [
    ("type=volume,target=/x", "unsupported mount type"),
    ("type=cache", "target"),
    ("type=cache,target=/x,sharing=maybe", "sharing"),
    ("type=bind,target=/x,bogus=1", "unexpected key"),
    ("type=bind,target=/x,oops", "key=value"),
    ("type=cache,target=/x,ro=perhaps", "invalid value"),
])
def test_parse_mount_errors(value: str, message: str) -> None:
    with pytest.raises(BuildError, match=message):
        parse_run_mount(value)
