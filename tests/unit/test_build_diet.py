"""The build modules' import diet: a cached ``dockyard build`` loads no re, json, collections,
contextlib or pathlib, and the hand-written stand-ins give exactly what the stdlib code they replace
gave."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys

import pytest

from dockyard.build.builder import Vertex, _ExitStack, cache_key
from dockyard.build.dockerfile import (
    _RE_DIRECTIVE,
    _match_directive,
    _parse_json,
    _reject_constant,
    _valid_stage_name,
    parse,
)
from dockyard.errors import BuildError

HEAVY = ("re", "json", "collections", "contextlib", "pathlib", "enum", "functools", "typing", "copy",
         "hashlib", "shutil", "tarfile", "datetime", "urllib.parse")

DOCKERFILE = """# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM $BASE AS build-stage
ENV A=1 B="two words"
LABEL x=y
RUN [ -f /x ] || echo hi
RUN ["echo", "json"]
COPY a b /dst/
WORKDIR /app
FROM build-stage
USER 0
CMD ["cat", "/app/last"]
"""


def test_a_cached_builds_modules_load_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "import dockyard.build.builder as b, dockyard.build.context as c, dockyard.build.changes\n"
        "import dockyard.cli.build, dockyard.build.executor\n"
        "from dockyard.build.dockerfile import parse, lint\n"
        f"df = parse({DOCKERFILE!r})\n"
        "lint(df)\n"
        "b.plan(df, build_args={'BASE': 'busybox'})\n"
        "b.cache_key('sha256:p', ['run', ('a', 'b')], None, True, 1.5, {'k': [1]})\n"
        "c.IgnoreMatcher([])\n"
        "v = b.Progress(sys.stdout, quiet=True).vertex('x'); v.output(b'a\\nb'); v.done()\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _regex_directive(line: str) -> tuple[str, str] | None:
    m = re.match(_RE_DIRECTIVE, line, re.ASCII)
    return None if m is None else (m.group(1), m.group(2))


def test_directive_matcher_is_the_regular_expression() -> None:
    pieces = ["#", " ", "\t", "\r", "\f", "a", "Z", "9", "=", "x", "\xa0", "é", "_"]
    for n in range(6):
        for parts in itertools.product(pieces, repeat=n):
            line = "#" + "".join(parts)
            assert _match_directive(line) == _regex_directive(line), repr(line)
    for line in ["# syntax=docker/dockerfile:1", "#escape=`", "# escape = ` ", "# check=skip=all;error=true",
                 "#  syntax =  a b  ", "# 1x=y", "# x=", "# x= ", "# x= \t", "#x\n=y", "#x=y\nz", "# ké=v"]:
        assert _match_directive(line) == _regex_directive(line), repr(line)


def test_stage_names_are_checked_as_the_regular_expression_did() -> None:
    regex = re.compile(r"^[a-z][a-z0-9\-_.]*\Z")
    chars = ["a", "z", "0", "-", "_", ".", "A", "é", " ", "/", "\n", "ı"]
    for n in range(4):
        for parts in itertools.product(chars, repeat=n):
            name = "".join(parts)
            assert _valid_stage_name(name) == (regex.match(name) is not None), repr(name)


def _json_parse(rest: str) -> list[str] | None:
    """What ``_parse_json`` did with ``json.loads``."""
    text = rest.lstrip("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                       "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if any(not isinstance(v, str) for v in value):
        return ["<error>"]
    return value


@pytest.mark.parametrize("rest", [
    '["a", "b"]', '[ "a" ]  ', '["a"] x', '["a",]', "['a']", '[]', ' \t["a"]\n', '["a\\u00e9\\n"]',
    '["a"]\r\n', '["a"]\xa0', '[NaN]', '["NaN", "Infinity"]', '[-Infinity]', '[1]', '["a", 1.5e3]',
    '[true]', '[null]', '[[]]', '["a" "b"]', '[ -f /x ] || echo', '[', '["unterminated', '["\x01"]',
    "[" * 5000 + "]" * 5000, '["a"]]', '{"a": 1}', '"a"', '["\\ud800"]', '["a"]  # c',
])
def test_json_arrays_are_read_as_json_read_them(rest: str) -> None:
    try:
        got: object = _parse_json(rest)
    except Exception as e:  # noqa: BLE001 - "arrays must be comprised of strings only"
        got = ["<error>"] if "strings only" in str(e) else e
    assert got == _json_parse(rest)


def test_shell_form_that_looks_like_json_loads_no_json() -> None:
    code = ("import sys\nfrom dockyard.build.dockerfile import parse\n"
            "df = parse('FROM a\\nRUN [ -f /x ] && echo [1, NaN]\\nCMD [\"a\", \"b\"]\\nCMD [\\'a\\']\\n')\n"
            "assert [i.json_form for i in df.instructions] == [False, False, True, False]\n"
            "print('json' in sys.modules, 're' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_directives_heredocs_and_healthchecks_still_parse() -> None:
    df = parse("# syntax=x\n# escape=`\nFROM a AS b-1.x_\nRUN <<-EOF\n\tone\nEOF\n"
               "HEALTHCHECK --interval=1m30s --retries=3 CMD true\n")
    assert df.directives == {"syntax": "x", "escape": "`"}
    assert df.instructions[1].heredocs[0].text == "one\n"
    assert df.instructions[2].healthcheck == {"Test": ["CMD-SHELL", "true"], "Interval": 90_000_000_000,
                                              "Retries": 3}
    with pytest.raises(BuildError, match="invalid name for build stage"):
        from dockyard.build.dockerfile import parse_from

        parse_from(parse("FROM a AS 1x\n").instructions[0])


def test_cache_key_of_something_json_cannot_write_uses_str() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    assert cache_key("p", Odd()) == cache_key("p", "odd")
    assert cache_key("p", {"b": 1, "a": (1, 2)}) == cache_key("p", {"a": [1, 2], "b": 1})


def test_vertex_keeps_the_last_200_lines() -> None:
    import io

    from dockyard.build.builder import Progress

    v = Progress(io.StringIO()).vertex("x")
    assert isinstance(v, Vertex)
    for i in range(450):
        v.log(str(i))
    assert v.tail == [str(i) for i in range(250, 450)]


class _CM:
    def __init__(self, log: list[str], name: str, fail: bool = False, suppress: bool = False) -> None:
        self.log, self.name, self.fail, self.suppress = log, name, fail, suppress

    def __enter__(self) -> str:
        self.log.append("enter " + self.name)
        return self.name

    def __exit__(self, *exc: object) -> bool:
        self.log.append(f"exit {self.name} {exc[0].__name__ if isinstance(exc[0], type) else None}")
        if self.fail:
            raise RuntimeError(self.name)
        return self.suppress


def test_exit_stack_runs_every_exit_last_in_first_out() -> None:
    log: list[str] = []
    with _ExitStack() as stack:
        assert stack.enter_context(_CM(log, "a")) == "a"
        stack.enter_context(_CM(log, "b"))
    assert log == ["enter a", "enter b", "exit b None", "exit a None"]

    log.clear()
    with pytest.raises(RuntimeError, match="b"), _ExitStack() as stack:
        stack.enter_context(_CM(log, "a"))
        stack.enter_context(_CM(log, "b", fail=True))
        stack.enter_context(_CM(log, "c", fail=True))
    # as contextlib.ExitStack: each exit sees the failure before it, and the last one is raised
    assert log[3:] == ["exit c None", "exit b RuntimeError", "exit a RuntimeError"]

    log.clear()
    with pytest.raises(KeyError), _ExitStack() as stack:
        stack.enter_context(_CM(log, "a"))
        raise KeyError("x")
    assert log == ["enter a", "exit a KeyError"]

    log.clear()
    with _ExitStack() as stack:
        stack.enter_context(_CM(log, "a"))
        stack.enter_context(_CM(log, "b", suppress=True))
        raise KeyError("x")
    assert log == ["enter a", "enter b", "exit b KeyError", "exit a None"]

    log.clear()
    stack = _ExitStack()
    stack.enter_context(_CM(log, "a"))
    stack.close()
    stack.close()
    assert log == ["enter a", "exit a None"]
