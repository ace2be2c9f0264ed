"""The quick argument reader (``dockyard.cli.quickargs``) agrees with the argparse parser built from the same
flag table wherever it answers, and leaves to argparse whatever it is not sure of."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.cli import common, quickargs
from dockyard.cli import containers as cli_containers
from dockyard.cli.argparser import Parser
from tests.conftest import CLI, DOCKYARD_BIN

RUN = cli_containers.RUN_FLAGS
START = cli_containers.START_FLAGS
PS = cli_containers.PS_FLAGS
_PARSERS: dict[int, Parser] = {}


def _parser(flags: quickargs.Flags) -> Parser:
    if id(flags) not in _PARSERS:
        p = Parser("test", "[OPTIONS]", "test")
        quickargs.add_to_parser(p, flags)
        _PARSERS[id(flags)] = p
    return _PARSERS[id(flags)]


def _argparse(flags: quickargs.Flags, argv: list[str]) -> dict[str, object]:
    return vars(_parser(flags).parse_args(argv))


RUN_CASES = [
    ["busybox"],
    ["busybox", "true"],
    ["--rm", "busybox", "true"],
    ["--rm", "--network", "none", "busybox", "true"],
    ["--rm", "--network=none", "busybox", "true"],
    ["--net", "bridge", "busybox"],
    ["--net=host", "busybox"],
    ["-d", "busybox", "sleep", "30"],
    ["-it", "busybox", "sh"],
    ["-ti", "busybox", "sh"],
    ["-dit", "busybox", "sh"],
    ["-itd", "--name", "x", "busybox"],
    ["-i", "-t", "-d", "busybox"],
    ["-dp", "80:80", "busybox"],
    ["-dp80:80", "busybox"],
    ["-dP", "busybox"],
    ["-p", "8080:80", "-p", "53:53/udp", "busybox"],
    ["--publish=1:2", "-p3:4", "-p=5:6", "busybox"],
    ["-e", "A=1", "-eB=2", "busybox", "env"],
    ["--env", "A=1", "--env=B=2", "-e=C=3", "-e", "D", "busybox"],
    ["--env-file", "/tmp/e1", "--env-file=/tmp/e2", "busybox"],
    ["--name=x", "busybox"],
    ["--name", "", "busybox"],
    ["--name=", "busybox"],
    ["--pull", "never", "busybox"],
    ["--pull=always", "-q", "busybox"],
    ["--pull", "missing", "busybox"],
    ["--init", "busybox"],
    ["--stop-timeout", "5", "busybox"],
    ["--stop-timeout=0", "--stop-signal", "SIGINT", "busybox"],
    ["--cpu-shares", "512", "-c", "256", "busybox"],
    ["-c1024", "busybox"],
    ["--pids-limit", "10", "busybox"],
    ["--pids-limit=-1", "busybox"],
    ["--oom-score-adj=-500", "busybox"],
    ["--oom-score-adj", "1_000", "busybox"],
    ["-m", "512m", "--memory-swap", "1g", "--cpus", "0.5", "--cpuset-cpus", "0-1", "busybox"],
    ["--memory=64m", "-m32m", "busybox"],
    ["--shm-size", "64m", "--read-only", "--privileged", "busybox"],
    ["--cap-add", "NET_ADMIN", "--cap-add=SYS_TIME", "--cap-drop", "ALL", "busybox"],
    ["--security-opt", "no-new-privileges", "--sysctl", "net.ipv4.ip_forward=1", "busybox"],
    ["--ulimit", "nofile=1024:2048", "--device", "/dev/null", "--device-cgroup-rule", "c 1:3 rwm", "busybox"],
    ["--gpus", "all", "--ipc", "host", "--pid=host", "--uts", "host", "busybox"],
    ["-l", "a=b", "--label", "c=d", "-le=f", "busybox"],
    ["--cidfile", "/tmp/cid", "--runtime", "runc", "--platform", "linux/amd64", "busybox"],
    ["-a", "stdout", "-a", "stderr", "--detach-keys", "ctrl-x", "busybox"],
    ["--add-host", "h:1.2.3.4", "--dns", "8.8.8.8", "--volumes-from", "c1", "busybox"],
    ["--x11", "--expose", "80", "--network-alias", "web", "--ip", "10.0.0.2", "busybox"],
    ["-w", "/tmp", "-u", "nobody", "-h", "robot", "busybox", "pwd"],
    ["--workdir=/x", "--user=1000:1000", "--hostname=h", "--group-add", "wheel", "busybox"],
    ["--entrypoint", "", "busybox"],
    ["--entrypoint=/bin/sh", "busybox", "-c", "echo hi"],
    ["-v", "/a:/b", "-v/c:/d:ro", "--volume=/e:/f", "--mount", "type=tmpfs,dst=/t", "--tmpfs", "/run", "busybox"],
    ["busybox", "ls", "-la"],
    ["busybox", "sh", "-c", "echo $A; exit 3"],
    ["--rm", "busybox", "--rm", "-d", "--name", "x"],
    ["busybox", "-e", "A=1"],
    ["busybox", "--help"],
    ["busybox", "ls", "--", "x"],
    ["--", "busybox", "true"],
    ["--rm", "--", "busybox", "ls", "-l"],
    ["-e", "X", "--", "busybox"],
    ["-e", "-", "busybox"],
    ["-", "x"],
    ["", "x"],
    ["-e", "", "busybox"],
    ["-e", "A B", "busybox"],
    ["-e A=1", "busybox"],
    ["-d=t", "busybox"],
    ["-di", "-e", "A", "-tp", "1:1", "busybox", "top", "-b"],
    ["busybox:1.36", "echo", "-n", "hi"],
    ["--rm", "-e", "A=1", "-e", "A=2", "--name", "first", "--name", "second", "busybox"],
]

RUN_FALLBACK = [
    [],
    ["--rm"],
    ["--help"],
    ["--help", "busybox"],
    ["-h"],
    ["--no-such", "busybox"],
    ["--nam", "x", "busybox"],
    ["--rm=true", "busybox"],
    ["--rm=", "busybox"],
    ["-d=", "busybox"],
    ["-dx", "busybox"],
    ["-xd", "busybox"],
    ["-1", "busybox"],
    ["--name"],
    ["--name", "--rm", "busybox"],
    ["--name", "-x", "busybox"],
    ["-e", "-x", "busybox"],
    ["-e", "--", "busybox"],
    ["-e"],
    ["busybox", "--", "true"],
    ["--", "busybox", "--", "true"],
    ["--", "--rm", "busybox"],
    ["--"],
    ["--rm", "--"],
    ["--pull", "bogus", "busybox"],
    ["--pull=", "busybox"],
    ["--stop-timeout", "five", "busybox"],
    ["--stop-timeout", "-1", "busybox"],
    ["--pids-limit", "-1", "busybox"],
    ["--cpu-shares", "0x10", "busybox"],
    ["--cpu-shares=", "busybox"],
    ["-c", "1.5", "busybox"],
    ["---rm", "busybox"],
    ["-d", "-x y", "busybox"],
]

START_CASES = [
    ["c1"],
    ["c1", "c2", "c3"],
    ["-a", "c1"],
    ["-ai", "c1"],
    ["c1", "-a"],
    ["c1", "c2", "-i", "--detach-keys", "ctrl-p"],
    ["--attach", "--interactive", "--detach-keys=x", "c1"],
]
START_FALLBACK = [[], ["-a"], ["c1", "-a", "c2"], ["--", "c1"], ["c1", "--", "c2"], ["--help", "c1"], ["-t", "c1"]]

PS_CASES = [
    [],
    ["-a"],
    ["-aq"],
    ["-qa"],
    ["--all", "--quiet"],
    ["-n", "3"],
    ["-n3", "-s"],
    ["--last=2", "--no-trunc"],
    ["-l"],
    ["-f", "status=exited", "--filter", "name=x", "-fid=abc"],
    ["--format", "{{.Names}}"],
    ["--format={{.ID}} {{.Status}}", "-a"],
    ["-as", "--format", "table {{.Names}}"],
]
PS_FALLBACK = [["x"], ["-n", "-1"], ["-n", "x"], ["--help"], ["-h"], ["--"], ["-ax"], ["--format"], ["-aqn"]]


def _assert_same(flags: quickargs.Flags, argv: list[str]) -> None:
    quick = quickargs.parse(flags, argv)
    assert quick is not None, argv
    assert vars(quick) == _argparse(flags, argv), argv
    assert quick == _parser(flags).parse_args(argv)


@pytest.mark.parametrize("argv", RUN_CASES)
def test_run_flags_read_as_argparse_reads_them(argv: list[str]) -> None:
    _assert_same(RUN, argv)


@pytest.mark.parametrize("argv", START_CASES)
def test_start_flags_read_as_argparse_reads_them(argv: list[str]) -> None:
    _assert_same(START, argv)


@pytest.mark.parametrize("argv", PS_CASES)
def test_ps_flags_read_as_argparse_reads_them(argv: list[str]) -> None:
    _assert_same(PS, argv)


@pytest.mark.parametrize("flags, argv", [(RUN, a) for a in RUN_FALLBACK] + [(START, a) for a in START_FALLBACK]
                         + [(PS, a) for a in PS_FALLBACK])
def test_doubtful_lines_are_left_to_argparse(flags: quickargs.Flags, argv: list[str]) -> None:
    assert quickargs.parse(flags, argv) is None


def test_defaults_are_argparses_and_lists_are_fresh() -> None:
    a = quickargs.parse(RUN, ["busybox"])
    b = quickargs.parse(RUN, ["busybox"])
    assert a is not None and b is not None
    assert a.init is None and a.stop_timeout is None and a.entrypoint is None and a.name is None
    assert a.pull == "missing" and a.cpu_shares == 0 and a.command == []
    a.env.append("X=1")
    assert b.env == [] and quickargs.parse(RUN, ["busybox"]).env == []  # type: ignore[union-attr]
    assert vars(quickargs.parse(PS, [])) == _argparse(PS, [])  # type: ignore[arg-type]


def test_introspection_always_gets_the_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "INTROSPECT", True)
    assert quickargs.parse(RUN, ["busybox"]) is None
    with pytest.raises(common.IntrospectParser) as e:
        cli_containers.run("run", ["busybox"])
    assert e.value.parser.prog == "dockyard run"


def test_argparse_still_answers_what_the_quick_reader_leaves(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli_containers.run("run", ["--pull", "bogus", "busybox"])
    assert e.value.code == 125
    err = capsys.readouterr().err
    assert err.startswith("dockyard run: argument --pull: invalid choice: 'bogus'")
    assert err.endswith("See 'dockyard run --help'.\n")
    with pytest.raises(SystemExit) as e:
        cli_containers.ps("ps", ["--no-such"])
    assert e.value.code == 125
    assert capsys.readouterr().err == "dockyard ps: unknown flag: --no-such\nSee 'dockyard ps --help'.\n"


_TOKENS = ["busybox", "sh", "-c", "true", "--rm", "-d", "-i", "-t", "-it", "-dit", "-e", "A=1", "-eB=2",
           "--env=C", "--name", "x", "--name=y", "-p", "80:80", "-dp", "--pull", "never", "bogus", "--init",
           "--stop-timeout", "5", "-5", "--", "-", "", "--network", "none", "-h", "--help", "-x", "-l", "k=v",
           "--cpu-shares=2", "-c3", "-dP", "-e=", "--rm=1", "-ti", "-q"]


@pytest.mark.parametrize("flags", [RUN, START, PS], ids=["run", "start", "ps"])
def test_random_lines_agree_with_argparse(flags: quickargs.Flags) -> None:
    """Wherever the quick reader answers, argparse answers the same; wherever argparse fails, it does not."""
    rng = random.Random(4321)
    parser = _parser(flags)
    answered = 0
    for _ in range(3000):
        argv = [rng.choice(_TOKENS) for _ in range(rng.randint(0, 7))]
        quick = quickargs.parse(flags, argv)
        try:
            expected = vars(parser.parse_args(argv))
        except SystemExit:
            assert quick is None, argv
            continue
        if quick is not None:
            answered += 1
            assert vars(quick) == expected, argv
    assert answered > 100


def test_the_table_declares_every_flag_argparse_knows() -> None:
    """Both readers come from the table: the parser holds exactly its flags, in its order."""
    for flags in (RUN, START, PS):
        actions = [a for a in _parser(flags)._actions if a.dest != "help"]
        assert [tuple(a.option_strings) or (a.dest,) for a in actions] == [f[0] for f in flags]
        assert [a.dest for a in actions] == [quickargs.dest_of(f[0]) for f in flags]


def test_the_run_path_imports_no_argparse_json_or_collections() -> None:
    code = ("import sys; from dockyard.cli import containers, quickargs; "
            "a = quickargs.parse(containers.RUN_FLAGS, ['--rm', '--network', 'none', 'busybox', 'true']); "
            "assert a is not None and a.image == 'busybox'; "
            "print(sorted(m for m in ('argparse', 'gettext', 'json', 're', 'collections') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.root
def test_run_rm_end_to_end_reads_its_flags_without_argparse(cli: CLI, busybox_image: str) -> None:
    r = cli("run", "--rm", "--network", "none", "-e", "A=1", "-eB=2", "--env=C=3", "-w", "/tmp", "--name=quick",
            "busybox", "sh", "-c", "echo $A$B$C $(pwd)")
    assert r.stdout == "123 /tmp\n"
    assert cli("ps", "-aq").stdout == ""  # --rm removed it, ps read quickly too
    assert cli("run", "--rm", "busybox", "ls", "-d", "/tmp").stdout == "/tmp\n"  # the command's own flags
    r = cli("run", "--rm", "--pull", "bogus", "busybox", check=False)  # argparse's error, as before
    assert r.returncode == 125 and "invalid choice: 'bogus'" in r.stderr
    code = ("import sys; from dockyard.cli.main import main; "
            f"rc = main(['--root', {str(cli.root)!r}, 'run', '--rm', '-i', 'busybox', 'true']); "
            "print(sorted(m for m in ('argparse', 'gettext') if m in sys.modules)); sys.exit(rc)")
    r2 = subprocess.run([str(Path(DOCKYARD_BIN).with_name("python")), "-c", code], capture_output=True, text=True,
                        timeout=60)
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout.strip().splitlines()[-1] == "[]"
