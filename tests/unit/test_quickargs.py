"""The quick argument reader (``dockyard.cli.quickargs``) agrees with the argparse parser built from the same
flag table wherever it answers, and leaves to argparse whatever it is not sure of."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.cli import build as cli_build
from dockyard.cli import common, quickargs
from dockyard.cli import containers as cli_containers
from dockyard.cli import images as cli_images
from dockyard.cli.argparser import Parser
from tests.conftest import CLI, DOCKYARD_BIN

RUN = cli_containers.RUN_FLAGS
START = cli_containers.START_FLAGS
PS = cli_containers.PS_FLAGS
EXEC = cli_containers.EXEC_FLAGS
LOGS = cli_containers.LOGS_FLAGS
STOP = cli_containers.STOP_FLAGS
RESTART = cli_containers.RESTART_FLAGS
KILL = cli_containers.KILL_FLAGS
RM = cli_containers.RM_FLAGS
EACH = cli_containers.EACH_FLAGS
IMAGES = cli_images.IMAGES_FLAGS
RMI = cli_images.RMI_FLAGS
BUILD = cli_build.BUILD_FLAGS
#: Every table, by command (``each``: wait, pause and unpause).
TABLES = {"run": RUN, "start": START, "ps": PS, "exec": EXEC, "logs": LOGS, "stop": STOP, "restart": RESTART,
          "kill": KILL, "rm": RM, "each": EACH, "images": IMAGES, "rmi": RMI, "build": BUILD}
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

# exec: flags, then CONTAINER, then COMMAND [ARG...] (everything after CONTAINER, flags included).
EXEC_CASES = [
    ["c1", "true"],
    ["c1"],  # no COMMAND: argparse reads it (exec_ then says it needs 2 arguments)
    ["-it", "c1", "sh"],
    ["-ti", "c1", "sh"],
    ["-dit", "c1", "sh"],
    ["-d", "c1", "sleep", "30"],
    ["-i", "-t", "c1", "sh", "-c", "echo $A"],
    ["-e", "A=1", "-eB=2", "--env=C=3", "-e=D", "-e", "E", "c1", "env"],
    ["-w", "/tmp", "-u", "nobody", "c1", "pwd"],
    ["-w/tmp", "-u0", "c1", "id"],
    ["--workdir=/x", "--user=1000:1000", "--privileged", "c1", "id"],
    ["--workdir", "", "--user=", "c1", "id"],
    ["-diw", "/tmp", "c1", "ls"],
    ["c1", "ls", "-la"],
    ["c1", "-e", "A=1"],
    ["c1", "--help"],
    ["c1", "--privileged", "-d"],
    ["c1", "ls", "--", "x"],
    ["--", "c1", "true"],
    ["-e", "A", "--", "c1", "ls", "-l"],
    ["-", "x"],
    ["", "x"],
    ["-e", "A B", "c1", "env"],
    ["-e A=1", "c1", "env"],
    ["-e", "A=1", "-e", "A=2", "-u", "a", "-u", "b", "c1", "env"],
]
EXEC_FALLBACK = [
    [], ["-it"], ["--help"], ["--help", "c1", "sh"], ["-h", "c1", "sh"], ["--detach-keys", "x", "c1", "sh"],
    ["--no-such", "c1", "sh"], ["--priv", "c1", "sh"], ["--privileged=1", "c1", "sh"], ["-d=", "c1", "sh"],
    ["-dx", "c1", "sh"], ["-w"], ["-w", "-x", "c1", "sh"], ["-u", "--", "c1", "sh"], ["c1", "--", "sh"],
    ["--", "c1", "--", "sh"], ["--", "-d", "c1"], ["--"], ["-i", "--"], ["-1", "c1"],
]

# logs: CONTAINER, alone, anywhere among the flags.
LOGS_CASES = [
    ["c1"],
    ["-f", "c1"],
    ["c1", "-f"],
    ["-ft", "c1"],
    ["-tf", "c1"],
    ["-n", "5", "c1"],
    ["-n5", "c1", "-t"],
    ["--tail=all", "c1"],
    ["--tail", "0", "c1", "--details"],
    ["-fn", "10", "c1"],
    ["-fn10", "c1"],
    ["-n=3", "c1"],
    ["--since", "1m", "--until=2024-01-01T00:00:00Z", "c1"],
    ["--since=", "c1"],
    ["c1", "--since", "42m", "-n", "x"],
    ["-n", "1", "-n", "2", "c1"],
    ["-"],
    [""],
]
LOGS_FALLBACK = [
    [], ["-f"], ["c1", "c2"], ["c1", "-f", "c2"], ["--", "c1"], ["c1", "--"], ["--help", "c1"], ["c1", "-h"],
    ["-n", "-1", "c1"], ["-n"], ["c1", "-n"], ["--follow=1", "c1"], ["-fx", "c1"], ["--tai", "3", "c1"],
    ["-1", "c1"],
]

# stop, restart, kill, rm, wait (and pause, unpause): CONTAINER... (contiguous, as argparse wants them).
STOP_CASES = [
    ["c1"], ["c1", "c2", "c3"], ["-t", "5", "c1"], ["--time=0", "c1"], ["--timeout", "3", "c1", "c2"],
    ["-t5", "-s", "SIGINT", "c1"], ["-t-1", "c1"], ["-t=7", "c1"], ["c1", "c2", "-t", "1"], ["--signal=", "c1"],
    ["-t", "1_0", "c1"], ["-t", " 4", "c1"], ["-s", "TERM", "-s", "INT", "c1"], ["-"], ["", "c1"],
]
STOP_FALLBACK = [
    [], ["-t", "5"], ["-t", "five", "c1"], ["-t", "1.5", "c1"], ["-t", "-1", "c1"], ["-t", "c1"], ["-t="],
    ["--time=", "c1"], ["--tim", "1", "c1"], ["c1", "-t", "1", "c2"], ["--", "c1"], ["--help"], ["-h", "c1"],
    ["-ts", "c1"], ["-f", "c1"],
]
RESTART_CASES = [["c1"], ["-t", "0", "c1", "c2"], ["--time=10", "c1"], ["c1", "-t3"]]
RESTART_FALLBACK = [[], ["--timeout", "3", "c1"], ["-s", "KILL", "c1"], ["-t", "x", "c1"], ["c1", "-t", "1", "c2"]]
KILL_CASES = [["c1"], ["-s", "HUP", "c1"], ["--signal=9", "c1", "c2"], ["-sTERM", "c1"], ["c1", "-s", "USR1"],
              ["-s", "", "c1"]]
KILL_FALLBACK = [[], ["-s"], ["-s", "-9", "c1"], ["--signal"], ["c1", "-s", "1", "c2"], ["-t", "1", "c1"]]
RM_CASES = [
    ["c1"], ["c1", "c2"], ["-f", "c1"], ["-fv", "c1"], ["-vf", "c1", "c2"], ["-fvl", "c1"], ["--force", "c1"],
    ["--volumes", "--link", "c1"], ["c1", "c2", "-f"], ["c1", "-f", "-v"], ["-f", "-f", "c1"], ["-"], [""],
]
RM_FALLBACK = [
    [], ["-f"], ["--force=true", "c1"], ["-f=", "c1"], ["-fx", "c1"], ["-x", "c1"], ["c1", "-f", "c2"],
    ["--", "c1"], ["c1", "--", "c2"], ["--help", "c1"], ["-h"], ["--forc", "c1"], ["-1"],
]
EACH_CASES = [["c1"], ["c1", "c2", "c3"], ["-"], [""]]
EACH_FALLBACK = [[], ["-t", "c1"], ["--", "c1"], ["c1", "--help"], ["-1"]]

# images: an optional REPOSITORY[:TAG], anywhere among the flags; rmi: IMAGE...
IMAGES_CASES = [
    [],
    ["busybox"],
    ["busybox:latest"],
    ["-a"],
    ["-aq"],
    ["-qa", "busybox"],
    ["busybox", "-q"],
    ["-q", "busybox", "--no-trunc"],
    ["--digests", "--no-trunc", "--all", "--quiet"],
    ["-f", "dangling=true"],
    ["-fdangling=false", "--filter=label=a=b", "-f=reference=b*"],
    ["--filter", "reference=busy*", "busybox"],
    ["--format", "{{.Repository}}:{{.Tag}}"],
    ["--format={{.ID}}", "busybox"],
    ["busybox", "--format", "table {{.ID}}"],
    ["-af", "dangling=true"],
    ["--format", "", "x"],
    ["-"],
    [""],
]
IMAGES_FALLBACK = [
    ["a", "b"], ["a", "-q", "b"], ["--", "busybox"], ["busybox", "--"], ["--"], ["--help"], ["-h", "busybox"],
    ["-f"], ["--format"], ["-f", "-x"], ["--format", "-x"], ["-ax"], ["--all=1"], ["--digest"], ["-1"],
]
RMI_CASES = [["busybox"], ["a", "b:1"], ["-f", "a"], ["--force", "--no-prune", "a", "b"], ["a", "-f"], ["-"]]
RMI_FALLBACK = [[], ["-f"], ["a", "-f", "b"], ["--", "a"], ["--no-prune=1", "a"], ["--help", "a"], ["-q", "a"]]

#: Per table: the lines read as argparse reads them, and the doubtful ones left to it.
SAMPLES = {
    "exec": (EXEC_CASES, EXEC_FALLBACK), "logs": (LOGS_CASES, LOGS_FALLBACK), "stop": (STOP_CASES, STOP_FALLBACK),
    "restart": (RESTART_CASES, RESTART_FALLBACK), "kill": (KILL_CASES, KILL_FALLBACK), "rm": (RM_CASES, RM_FALLBACK),
    "each": (EACH_CASES, EACH_FALLBACK), "images": (IMAGES_CASES, IMAGES_FALLBACK), "rmi": (RMI_CASES, RMI_FALLBACK),
}


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


@pytest.mark.parametrize("command, argv", [(c, a) for c, (cases, _) in SAMPLES.items() for a in cases])
def test_more_commands_flags_read_as_argparse_reads_them(command: str, argv: list[str]) -> None:
    _assert_same(TABLES[command], argv)


@pytest.mark.parametrize("command, argv", [(c, a) for c, (_, doubtful) in SAMPLES.items() for a in doubtful])
def test_more_commands_doubtful_lines_are_left_to_argparse(command: str, argv: list[str]) -> None:
    assert quickargs.parse(TABLES[command], argv) is None


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


def test_more_commands_defaults_are_argparses() -> None:
    """A line of nothing but the positionals: every default as argparse gives it (fresh lists, ints, None)."""
    lines = {"exec": ["c1", "true"], "logs": ["c1"], "stop": ["c1"], "restart": ["c1"], "kill": ["c1"], "rm": ["c1"],
             "each": ["c1"], "images": [], "rmi": ["busybox"]}
    for command, argv in lines.items():
        quick = quickargs.parse(TABLES[command], argv)
        assert quick is not None and vars(quick) == _argparse(TABLES[command], argv), command
    a = quickargs.parse(EXEC, ["c1", "true"])
    assert a is not None and a.env == [] and a.workdir == "" and a.user == "" and a.command == ["true"]
    a.env.append("X=1")
    assert quickargs.parse(EXEC, ["c1", "true"]).env == []  # type: ignore[union-attr]
    assert quickargs.parse(STOP, ["c1"]).time is None  # type: ignore[union-attr]
    assert quickargs.parse(KILL, ["c1"]).signal == "KILL"  # type: ignore[union-attr]
    assert quickargs.parse(LOGS, ["c1"]).tail == "all"  # type: ignore[union-attr]
    assert quickargs.parse(IMAGES, []).repository is None  # type: ignore[union-attr]


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


@pytest.mark.parametrize("module, command, argv, message", [
    (cli_containers, "rm", [], "the following arguments are required: containers"),
    (cli_containers, "rm", ["c1", "-f", "c2"], "unknown flag: c2"),
    (cli_containers, "stop", ["-t", "five", "c1"], "argument -t/--time/--timeout: invalid int value: 'five'"),
    (cli_containers, "kill", ["-t", "1", "c1"], "unknown flag: -t"),
    (cli_containers, "logs", ["c1", "c2"], "unknown flag: c2"),
    (cli_containers, "exec_", ["--detach-keys", "x", "c1", "sh"], "unknown flag: --detach-keys"),
    (cli_containers, "exec_", [], "the following arguments are required: container, command"),
    (cli_images, "images", ["a", "b"], "unknown flag: b"),
    (cli_images, "rmi", ["-q", "a"], "unknown flag: -q"),
])
def test_argparse_still_answers_what_the_quick_reader_leaves_for_more_commands(
        capsys: pytest.CaptureFixture[str], module: object, command: str, argv: list[str], message: str) -> None:
    name = command.rstrip("_")
    with pytest.raises(SystemExit) as e:
        getattr(module, command)(name, argv)
    assert e.value.code == 125
    assert capsys.readouterr().err == f"dockyard {name}: {message}\nSee 'dockyard {name} --help'.\n"


@pytest.mark.parametrize("module, command", [(cli_containers, c) for c in
                                             ("exec_", "logs", "stop", "restart", "kill", "rm", "wait", "pause")]
                         + [(cli_images, "images"), (cli_images, "rmi")])
def test_introspection_gets_the_parser_of_more_commands(monkeypatch: pytest.MonkeyPatch, module: object,
                                                        command: str) -> None:
    monkeypatch.setattr(common, "INTROSPECT", True)
    with pytest.raises(common.IntrospectParser) as e:
        getattr(module, command)(command.rstrip("_"), ["c1", "true"])
    assert e.value.parser.prog == "dockyard " + command.rstrip("_")


_TOKENS = ["busybox", "sh", "-c", "true", "--rm", "-d", "-i", "-t", "-it", "-dit", "-e", "A=1", "-eB=2",
           "--env=C", "--name", "x", "--name=y", "-p", "80:80", "-dp", "--pull", "never", "bogus", "--init",
           "--stop-timeout", "5", "-5", "--", "-", "", "--network", "none", "-h", "--help", "-x", "-l", "k=v",
           "--cpu-shares=2", "-c3", "-dP", "-e=", "--rm=1", "-ti", "-q"]


@pytest.mark.parametrize("flags", [RUN, START, PS], ids=["run", "start", "ps"])
def test_random_lines_agree_with_argparse(flags: quickargs.Flags) -> None:
    """Wherever the quick reader answers, argparse answers the same; wherever argparse fails, it does not."""
    assert _agreeing_lines(flags, _TOKENS, random.Random(4321)) > 100


def _agreeing_lines(flags: quickargs.Flags, words: list[str], rng: random.Random) -> int:
    """Check 3000 random lines of ``words``: the quick reader's answer is argparse's, and it has none
    where argparse fails. Returns how many lines it answered (the rest it left to argparse)."""
    parser = _parser(flags)
    answered = 0
    for _ in range(3000):
        argv = [rng.choice(words) for _ in range(rng.randint(0, 7))]
        quick = quickargs.parse(flags, argv)
        try:
            expected = vars(parser.parse_args(argv))
        except SystemExit:
            assert quick is None, argv
            continue
        if quick is not None:
            answered += 1
            assert vars(quick) == expected, argv
    return answered


def _tokens(flags: quickargs.Flags) -> list[str]:
    """Words for random lines over ``flags``: positionals, ``--``, strangers, and each flag in its forms."""
    words = ["c1", "c2", "sh", "true", "5", "A=1", "x y", "", "-", "--", "-x", "--help", "-h", "-5", "--x=1"]
    switches = ""
    for names, action, _default, _type, _choices, _help in flags:
        if action in quickargs._POSITIONAL:
            continue
        for n in names:
            words.append(n)
            if action == quickargs.STORE_TRUE:
                words.append(n + "=1")
                switches += n[1] if n[1] != "-" else ""
            else:
                words.append(n + ("=3" if n[1] == "-" else "3"))
    if switches:
        words += ["-" + switches, "-" + switches[::-1], "-" + switches[:1] + "x"]
    return words


@pytest.mark.parametrize("command", [c for c in TABLES if c not in ("run", "start", "ps")])
def test_random_lines_agree_with_argparse_for_more_commands(command: str) -> None:
    """As above, over each table's own flags (in all their forms), positionals and strangers."""
    flags = TABLES[command]
    assert _agreeing_lines(flags, _tokens(flags), random.Random(sum(map(ord, command)))) > 100


def test_the_table_declares_every_flag_argparse_knows() -> None:
    """Both readers come from the table: the parser holds exactly its flags, in its order."""
    for flags in TABLES.values():
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


def test_more_commands_read_their_flags_without_argparse(tmp_path: Path) -> None:
    """``exec``, ``logs``, ``stop``, ``restart``, ``kill``, ``rm``, ``wait``, ``images`` and ``rmi``, run
    through ``main`` (against an empty root: no such container or image), never import argparse."""
    lines = [["exec", "-it", "-e", "A=1", "-w", "/tmp", "c1", "sh", "-c", "true"], ["logs", "-f", "-n", "5", "c1"],
             ["stop", "-t", "1", "c1"], ["restart", "--time=0", "c1"], ["kill", "-s", "HUP", "c1"],
             ["rm", "-fv", "c1", "c2"], ["wait", "c1"], ["images", "-a", "busybox"], ["images", "-q"],
             ["rmi", "-f", "busybox"], ["container", "rm", "-f", "c1"], ["image", "ls", "--format", "{{.ID}}"]]
    code = ("import sys, json; from dockyard.cli.main import main\n"
            "for argv in json.loads(sys.argv[1]):\n"
            f"    main(['--root', {str(tmp_path / 'root')!r}, *argv])\n"
            "    print('imported by', argv[0], sorted(m for m in ('argparse', 'gettext') if m in sys.modules))\n")
    import json

    r = subprocess.run([sys.executable, "-c", code, json.dumps(lines)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")})
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stdout.splitlines() if line.startswith("imported by ")]
    assert said == [f"imported by {argv[0]} []" for argv in lines], r.stdout
    assert "No such container: c1" in r.stderr  # they did run: rm, stop... reported the missing container
    code = ("import sys; from dockyard.cli import containers, images, quickargs; "
            "a = quickargs.parse(containers.RM_FLAGS, ['-f', 'c1']); b = quickargs.parse(images.IMAGES_FLAGS, ['-q']); "
            "assert a is not None and b is not None; "
            "print(sorted(m for m in ('argparse', 'gettext', 'json', 're') if m in sys.modules))")
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
