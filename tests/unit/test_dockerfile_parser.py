"""The Dockerfile parser against BuildKit's fixtures, plus the checks Dockyard adds on top.

Fixtures are read in place from ``../shared/conformance/buildkit-dockerfile`` beside the checkout
(or ``$DOCKYARD_CONFORMANCE_DIR``): each ``testfiles/<case>`` must dump exactly as BuildKit's
``result`` file, each ``testfiles-negative/<case>`` must be rejected. Nothing is skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.build.dockerfile import (
    Dockerfile,
    FromSpec,
    arg_definitions,
    dump,
    dump_file,
    key_value_pairs,
    lint,
    parse,
    parse_duration,
    parse_flags,
    parse_from,
    parse_healthcheck,
    trailing_comment_hint,
)
from dockyard.errors import BuildError


def _conformance_dir() -> Path:
    override = os.environ.get("DOCKYARD_CONFORMANCE_DIR")
    if override:
        base = Path(override)
        return base / "buildkit-dockerfile" if (base / "buildkit-dockerfile").is_dir() else base
    return Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "buildkit-dockerfile"


CONFORMANCE = _conformance_dir()
POSITIVE = sorted(p.name for p in (CONFORMANCE / "testfiles").iterdir() if p.is_dir())
NEGATIVE = sorted(p.name for p in (CONFORMANCE / "testfiles-negative").iterdir() if p.is_dir())


def _read(path: Path) -> str:
    # Bytes as Go reads them: no newline translation, invalid UTF-8 kept visible.
    return path.read_bytes().decode("utf-8", "surrogateescape")


def test_fixture_counts() -> None:
    assert len(POSITIVE) == 33
    assert len(NEGATIVE) == 4


@pytest.mark.parametrize("case", POSITIVE)
def test_parse_conformance(case: str) -> None:
    directory = CONFORMANCE / "testfiles" / case
    parsed = parse(_read(directory / "Dockerfile"))
    assert dump_file(parsed) == _read(directory / "result")


@pytest.mark.parametrize("case", NEGATIVE)
def test_parse_conformance_negative(case: str) -> None:
    with pytest.raises(BuildError) as info:
        parse(_read(CONFORMANCE / "testfiles-negative" / case / "Dockerfile"))
    assert str(info.value).startswith("Dockerfile:")


# ---------------------------------------------------------------------------------------------
# Structure, line numbers, directives
# ---------------------------------------------------------------------------------------------


def test_instruction_fields() -> None:
    df = parse('FROM alpine\nRUN echo a \\\n    b\nCOPY --from=x --chown=1:1 a /b\nCMD ["sh"]\n')
    assert isinstance(df, Dockerfile)
    run, copy, cmd = df.instructions[1:]
    assert (run.cmd, run.start_line, run.end_line) == ("run", 2, 3)
    assert run.args == ["echo a     b"]
    assert run.original == "RUN echo a     b"
    assert not run.json_form
    assert copy.flags == ["--from=x", "--chown=1:1"]
    assert copy.args == ["a", "/b"]
    assert cmd.json_form and cmd.args == ["sh"]
    assert dump(copy) == '(copy ["--from=x" "--chown=1:1"] "a" "/b")'
    assert df.source_lines[1] == "RUN echo a \\"


def test_keywords_are_case_insensitive() -> None:
    df = parse("from alpine\nRun echo hi\n")
    assert [i.cmd for i in df] == ["from", "run"]
    assert df.instructions[1].keyword == "Run"


def test_directives() -> None:
    df = parse("# syntax=docker/dockerfile:1\n# CHECK = skip=all\n#escape=`\nFROM a\nRUN x `\n  y\n")
    assert df.directives == {"syntax": "docker/dockerfile:1", "check": "skip=all", "escape": "`"}
    assert df.escape == "`"
    assert df.instructions[1].args == ["x   y"]


def test_directive_after_comment_or_blank_is_a_comment() -> None:
    assert parse("# hello\n# escape=`\nFROM a\n").directives == {}
    assert parse("\n# escape=`\nFROM a\n").escape == "\\"
    assert parse("# unknown=1\n# escape=`\nFROM a\n").directives == {}


def test_directive_errors_name_the_line() -> None:
    with pytest.raises(BuildError, match=r"^Dockerfile:2: only one escape parser directive"):
        parse("# escape=`\n# escape=\\\nFROM a\n")
    with pytest.raises(BuildError, match=r"^Dockerfile:1: invalid escape token 'x'"):
        parse("# escape=x\nFROM a\n")


def test_comments_are_only_at_line_start() -> None:
    df = parse("FROM a\n  # indented comment\nRUN echo hi # not a comment to Docker\n")
    assert len(df) == 2
    assert df.instructions[1].args == ["echo hi # not a comment to Docker"]
    assert df.instructions[1].comments == ["indented comment"]


def test_comment_inside_continuation_is_dropped() -> None:
    df = parse("FROM a\nRUN a \\\n# note\n  b\n")
    assert df.instructions[1].args == ["a   b"]
    assert df.instructions[1].end_line == 4


def test_empty_continuation_line_warns() -> None:
    df = parse("FROM a\nRUN a \\\n\n  b\n")
    assert df.instructions[1].args == ["a   b"]
    assert len(df.warnings) == 1 and df.warnings[0].startswith("Dockerfile:2: empty continuation line")


def test_bom_and_crlf() -> None:
    df = parse("\ufeffFROM a\r\nRUN x \\\r\n  y\r\n")
    assert [dump(i) for i in df] == ['(from "a")', '(run "x   y")']


def test_filename_in_errors() -> None:
    with pytest.raises(BuildError, match=r"^app\.Dockerfile:2: unknown instruction: FOO"):
        parse("FROM a\nFOO bar\n", filename="app.Dockerfile")


# ---------------------------------------------------------------------------------------------
# Errors Dockyard adds
# ---------------------------------------------------------------------------------------------


def test_unknown_instruction() -> None:
    with pytest.raises(BuildError, match=r"^Dockerfile:3: unknown instruction: FOO$"):
        parse("FROM a\nRUN x\nFOO bar\n")
    with pytest.raises(BuildError, match=r"unknown instruction: RUNN \(did you mean RUN\?\)"):
        parse("FROM a\nRUNN x\n")


def test_no_instructions() -> None:
    for text in ("", "\n\n", "# only\n# comments\n"):
        with pytest.raises(BuildError, match="file with no instructions"):
            parse(text)


@pytest.mark.parametrize(
    "text", ["FROM image   # comment\n", "FROM image AS build # comment\n", "FROM a #c\n"]
)
def test_from_with_trailing_comment(text: str) -> None:
    with pytest.raises(BuildError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith("Dockerfile:1: ")
    assert "a '#' after an instruction is not a comment in a Dockerfile" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM\n", "FROM requires either one or three arguments"),
        ("FROM a b\n", "FROM requires either one or three arguments"),
        ("FROM a to b\n", 'the second argument must be "AS"'),
    ],
)
def test_from_shape(text: str, message: str) -> None:
    with pytest.raises(BuildError, match=message):
        parse(text)


def test_hash_hint_on_other_parse_errors() -> None:
    with pytest.raises(BuildError) as info:
        parse("FROM a\nENV A=1 # one\n")
    assert str(info.value).startswith('Dockerfile:2: Syntax error - can\'t find = in "#"')
    assert "not a comment" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM a\nONBUILD ONBUILD RUN x\n", "Chaining ONBUILD"),
        ("FROM a\nONBUILD FROM b\n", "FROM isn't allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD MAINTAINER me\n", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD BOGUS x\n", "unknown instruction: BOGUS"),
        ("FROM a\nENV\tPATH\n", "ENV must have two arguments"),
        ("FROM a\nLABEL x\n", "LABEL must have two arguments"),
        ('FROM a\nRUN ["a", 1]\n', "arrays must be comprised of strings only"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(BuildError, match=r"^Dockerfile:2: ") as info:
        parse(text)
    assert message in str(info.value)


# ---------------------------------------------------------------------------------------------
# Argument forms
# ---------------------------------------------------------------------------------------------


def test_json_and_shell_forms() -> None:
    df = parse('FROM a\nCMD [\'a\']\nENTRYPOINT ["a", "b"]\nRUN []\nSHELL ["/bin/bash", "-c"]\nCMD [NaN]\n')
    cmd, entry, run, shell, nan = df.instructions[1:]
    assert (cmd.json_form, cmd.args) == (False, ["['a']"])
    assert (entry.json_form, entry.args) == (True, ["a", "b"])
    assert (run.json_form, run.args) == (True, [])
    assert shell.args == ["/bin/bash", "-c"]
    assert (nan.json_form, nan.args) == (False, ["[NaN]"])


def test_env_and_label_pairs() -> None:
    df = parse('FROM a\nENV A b c\nENV X=1 Y="two words" Z=\nLABEL "com.x"="y" k=v\n')
    assert key_value_pairs(df.instructions[1]) == [("A", "b c")]
    assert key_value_pairs(df.instructions[2]) == [("X", "1"), ("Y", '"two words"'), ("Z", "")]
    assert key_value_pairs(df.instructions[3]) == [('"com.x"', '"y"'), ("k", "v")]
    with pytest.raises(BuildError, match="expected ENV or LABEL"):
        key_value_pairs(df.instructions[0])


def test_arg_definitions() -> None:
    df = parse('ARG a b=1 c= d="x y"\nFROM x\n')
    assert arg_definitions(df.instructions[0]) == [("a", None), ("b", "1"), ("c", ""), ("d", '"x y"')]
    with pytest.raises(BuildError, match="ARG names can not be blank"):
        arg_definitions(parse("ARG =x\nFROM x\n").instructions[0])


def test_healthcheck_forms() -> None:
    df = parse("FROM a\nHEALTHCHECK NONE\nHEALTHCHECK --interval=5s CMD curl -f http://x/ || exit 1\n")
    none, check = df.instructions[1:]
    assert none.args == ["NONE"]
    assert check.flags == ["--interval=5s"]
    assert check.args == ["CMD", "curl -f http://x/ || exit 1"]


def test_onbuild_trigger() -> None:
    df = parse("FROM a\nONBUILD COPY --chown=1 . /app\n")
    onbuild = df.instructions[1]
    assert onbuild.args == ["COPY --chown=1 . /app"]
    assert onbuild.trigger is not None
    assert onbuild.trigger.cmd == "copy"
    assert onbuild.trigger.flags == ["--chown=1"]
    assert dump(onbuild) == '(onbuild (copy ["--chown=1"] "." "/app"))'


def test_flags_quotes_and_double_dash() -> None:
    df = parse(
        'FROM a\nCOPY --chown="a b" -- --weird /dst\nRUN --mount=type=cache,target=/c --network=none make\n'
    )
    copy, run = df.instructions[1:]
    assert copy.flags == ["--chown=a b"]
    assert copy.args == ["--weird", "/dst"]
    assert run.flags == ["--mount=type=cache,target=/c", "--network=none"]
    assert run.args == ["make"]


# ---------------------------------------------------------------------------------------------
# Heredocs
# ---------------------------------------------------------------------------------------------


def test_heredocs() -> None:
    text = (
        "FROM a\n"
        "RUN <<EOF\n"
        "echo $HOME\n"
        "EOF\n"
        'COPY <<-"END" /x\n'
        "\t\thello\n"
        "\tEND\n"
        "RUN 3<<A cat <<'B' && true\n"
        "a\n"
        "A\n"
        "b\n"
        "B\n"
        'CMD ["<<EOF"]\n'
    )
    df = parse(text)
    run, copy, multi, cmd = df.instructions[1:]
    assert (run.start_line, run.end_line) == (2, 4)
    [doc] = run.heredocs
    assert (doc.name, doc.content, doc.expand, doc.chomp) == ("EOF", "echo $HOME\n", True, False)
    [doc] = copy.heredocs
    assert (doc.name, doc.expand, doc.chomp) == ("END", False, True)
    assert doc.content == "\t\thello\n"
    assert doc.text == "hello\n"
    assert [(d.name, d.file_descriptor, d.content, d.expand) for d in multi.heredocs] == [
        ("A", 3, "a\n", True),
        ("B", 0, "b\n", False),
    ]
    assert multi.end_line == 12
    assert cmd.heredocs == [] and cmd.args == ["<<EOF"]


def test_heredoc_in_onbuild_and_unterminated() -> None:
    df = parse("FROM a\nONBUILD RUN <<X\nbody\nX\nRUN after\n")
    assert df.instructions[1].heredocs[0].content == "body\n"
    assert df.instructions[1].trigger is not None
    assert df.instructions[1].trigger.heredocs[0].name == "X"
    assert df.instructions[2].start_line == 5
    with pytest.raises(BuildError, match=r"^Dockerfile:2: unterminated heredoc"):
        parse("FROM a\nRUN <<EOF\nbody\n")


def test_heredoc_not_for_other_instructions() -> None:
    df = parse("FROM a\nENV A <<EOF\nRUN x\n")
    assert df.instructions[1].heredocs == []
    assert df.instructions[2].cmd == "run"


# ---------------------------------------------------------------------------------------------
# Accessors
# ---------------------------------------------------------------------------------------------


def test_parse_from() -> None:
    df = parse("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\nFROM scratch\n")
    assert parse_from(df.instructions[0]) == FromSpec("golang:1.22", "build", "$BUILDPLATFORM")
    assert parse_from(df.instructions[1]) == ("scratch", None, None)
    with pytest.raises(BuildError, match="invalid name for build stage"):
        parse_from(parse("FROM a AS 1x\n").instructions[0])
    with pytest.raises(BuildError, match=r"^Dockerfile:1: unknown flag: --plat$"):
        parse_from(parse("FROM --plat=x a\n").instructions[0])


def test_parse_flags() -> None:
    df = parse(
        "FROM a\n"
        "COPY --from=b --link --chmod=644 x y\n"
        "RUN --mount=type=cache,target=/a --mount=type=tmpfs,target=/b true\n"
        "COPY --from=a --from=b x y\n"
        "COPY --from x y\n"
        "COPY --link=maybe x y\n"
    )
    flags = parse_flags(df.instructions[1], {"from", "chmod", "chown"}, booleans={"link"})
    assert flags["from"] == "b"
    assert flags.get("chown") is None
    assert flags.get_bool("link") is True
    assert dict(flags) == {"from": "b", "link": "true", "chmod": "644"}
    mounts = parse_flags(df.instructions[2], {"--network"}, repeatable={"mount"})
    assert mounts.all("mount") == ["type=cache,target=/a", "type=tmpfs,target=/b"]
    with pytest.raises(BuildError, match=r"^Dockerfile:2: unknown flag: --link$"):
        parse_flags(df.instructions[1], {"from", "chmod"})
    with pytest.raises(BuildError, match=r"^Dockerfile:4: duplicate flag specified: --from"):
        parse_flags(df.instructions[3], {"from"})
    # `--from x` (no `=`): BuildKit's flag splitter stops at the first word not starting with --
    assert df.instructions[4].flags == ["--from"]
    with pytest.raises(BuildError, match="missing a value on flag: --from"):
        parse_flags(df.instructions[4], {"from"})
    with pytest.raises(BuildError, match="expecting boolean value for flag --link"):
        parse_flags(df.instructions[5], (), booleans={"link"})


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("0", 0),
        ("300ms", 300_000_000),
        ("1m30s", 90_000_000_000),
        ("1.5h", 5_400_000_000_000),
        (".5s", 500_000_000),
        ("2µs", 2_000),
        ("-1s", -1_000_000_000),
        ("1h2m3s4ms5us6ns", 3_723_004_005_006),
    ],
)
def test_parse_duration(text: str, nanos: int) -> None:
    assert parse_duration(text) == nanos


@pytest.mark.parametrize(
    ("text", "message"), [("", "invalid"), ("1", "missing unit"), ("1d", "unknown unit")]
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_parse_healthcheck() -> None:
    df = parse(
        "FROM a\n"
        "HEALTHCHECK NONE\n"
        "HEALTHCHECK --interval=5s --timeout=0s --start-period=1m --retries=3 CMD curl -f x || exit 1\n"
        'HEALTHCHECK CMD ["curl", "x"]\n'
    )
    assert df.instructions[0].healthcheck is None
    assert df.instructions[1].healthcheck == {"Test": ["NONE"]}
    assert parse_healthcheck(df.instructions[2]) == {
        "Test": ["CMD-SHELL", "curl -f x || exit 1"],
        "Interval": 5_000_000_000,
        "StartPeriod": 60_000_000_000,
        "Retries": 3,
    }
    assert df.instructions[3].healthcheck == {"Test": ["CMD", "curl", "x"]}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("HEALTHCHECK CONNECT TCP 7000", 'Unknown type "CONNECT" in HEALTHCHECK'),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK", "requires at least one argument"),
        ("HEALTHCHECK --interval=1us CMD x", 'Interval "interval" cannot be less than 1ms'),
        ("HEALTHCHECK --interval=5 CMD x", "missing unit"),
        ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative"),
        ("HEALTHCHECK --retries=x CMD x", "invalid --retries value"),
        ("HEALTHCHECK --bogus=1 CMD x", "unknown flag: --bogus"),
    ],
)
def test_parse_healthcheck_errors(line: str, message: str) -> None:
    instr = parse(f"FROM a\n{line}\n").instructions[1]
    with pytest.raises(BuildError, match=r"^Dockerfile:2: ") as info:
        parse_healthcheck(instr)
    assert message in str(info.value)


# ---------------------------------------------------------------------------------------------
# Lint
# ---------------------------------------------------------------------------------------------


def test_trailing_comment_hint() -> None:
    df = parse(
        "FROM a\n"
        "ENV A b # note\n"
        "COPY a b # note\n"
        'LABEL x="issue #5"\n'
        "RUN echo # a real shell comment\n"
        'CMD ["echo", "#"]\n'
        "EXPOSE 80 #http\n"
        "WORKDIR /app#1\n"
    )
    hints = [trailing_comment_hint(i) for i in df]
    assert [h is not None for h in hints] == [False, True, True, False, False, False, True, False]
    assert "not a comment in a Dockerfile" in (hints[1] or "")


def test_lint() -> None:
    df = parse("FROM a\nENV A b # note\nMAINTAINER me\nCMD ['a']\nRUN a \\\n\n b\nONBUILD ADD x y # c\n")
    warnings = lint(df)
    assert [w.split(":", 2)[1] for w in warnings] == ["2", "3", "4", "5", "8"]
    assert "MAINTAINER is deprecated" in warnings[1]
    assert "not valid JSON" in warnings[2]
    assert "empty continuation line" in warnings[3]
    assert "not a comment" in warnings[4]
    assert lint(parse("FROM a\nRUN echo hi\n")) == []
