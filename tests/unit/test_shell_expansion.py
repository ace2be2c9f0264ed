"""Shell-word expansion against BuildKit's fixtures, plus the behaviours the fixtures don't cover.

The fixture files are read in place from ``../shared/conformance/buildkit-dockerfile`` beside the
checkout (or ``$DOCKYARD_CONFORMANCE_DIR``); every line is its own test case and none is skipped:
``A``/``U`` lines run as Linux, ``W`` lines (Windows-only behaviour: case-insensitive variable
names) run with ``platform="windows"``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.build.shell import (
    ShellLexer,
    env_from_list,
    expand,
    go_quote,
    go_quote_list,
    split_words,
)
from dockyard.errors import BuildError


def _conformance_dir() -> Path:
    override = os.environ.get("DOCKYARD_CONFORMANCE_DIR")
    if override:
        base = Path(override)
        return base / "buildkit-dockerfile" if (base / "buildkit-dockerfile").is_dir() else base
    return Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "buildkit-dockerfile"


CONFORMANCE = _conformance_dir()

# The environment BuildKit's own test gives the envVar cases (see the fixture README).
ENVVAR_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _envvar_cases() -> list[tuple[int, str, str, str]]:
    """(line number, kind, input, expected) for every case line of shell-envVarTest."""
    text = (CONFORMANCE / "shell-envVarTest").read_text(encoding="utf-8")
    cases = []
    for number, raw in enumerate(text.split("\n"), 1):
        if raw.startswith("#"):
            continue
        line = raw.strip()
        if not line:
            continue
        fields = line.split("|")
        assert len(fields) == 3, f"line {number}: {raw!r}"
        kind, source, expected = (f.strip() for f in fields)
        assert kind in ("A", "U", "W"), f"line {number}: bad platform tag {kind!r}"
        cases.append((number, kind, source, expected))
    return cases


def _words_cases() -> list[tuple[int, str, dict[str, str], list[str]]]:
    """(line number, input, environment so far, expected words) for shell-wordsTest."""
    text = (CONFORMANCE / "shell-wordsTest").read_text(encoding="utf-8")
    envs: list[str] = []
    cases = []
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("#") or line == "":
            continue
        if line.startswith("ENV "):
            envs.append(line[3:].lstrip(" "))
            continue
        fields = line.split("|")
        assert len(fields) == 2, f"line {number}: {line!r}"
        expected = fields[1].lstrip(" ").split(",")
        cases.append((number, fields[0].strip(), env_from_list(envs), expected))
    return cases


ENVVAR_CASES = _envvar_cases()
WORDS_CASES = _words_cases()


def test_fixture_counts() -> None:
    # Guards against the loader silently dropping cases: the files hold 230 and 24 cases.
    assert len(ENVVAR_CASES) == 230
    assert sum(1 for c in ENVVAR_CASES if c[1] in ("A", "U")) == 228
    assert sum(1 for c in ENVVAR_CASES if c[1] == "W") == 2
    assert len(WORDS_CASES) == 24


@pytest.mark.parametrize(
    ("number", "kind", "source", "expected"),
    ENVVAR_CASES,
    ids=[f"L{c[0]}-{c[1]}" for c in ENVVAR_CASES],
)
def test_envvar_conformance(number: int, kind: str, source: str, expected: str) -> None:
    platform = "windows" if kind == "W" else "linux"
    if expected == "error":
        with pytest.raises(BuildError):
            expand(source, ENVVAR_ENV, platform=platform)
    else:
        assert expand(source, ENVVAR_ENV, platform=platform) == expected


@pytest.mark.parametrize(
    ("number", "source", "env", "expected"),
    WORDS_CASES,
    ids=[f"L{c[0]}" for c in WORDS_CASES],
)
def test_words_conformance(number: int, source: str, env: dict[str, str], expected: list[str]) -> None:
    try:
        result = split_words(source, env)
    except BuildError:
        result = ["error"]
    assert result == expected


# ---------------------------------------------------------------------------------------------
# Behaviour beyond the fixture files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "env", "expected"),
    [
        ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc"),
        ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx bbb ccc"),
        ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb "),
        ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  "),
        ("${BAR?bbb}", {"BAR": ""}, ""),
        ("${FOO:?aaa}", {"FOO": "xxx"}, "xxx"),
        # prefix / suffix removal; shortest for #/%, longest for ##/%%
        ("${FOO#*x*y}", {"FOO": "xxyy"}, "y"),
        ("${FOO#*}", {"FOO": "xxyy"}, "xxyy"),
        ("${FOO##*x}", {"FOO": "xxyy"}, "yy"),
        ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy"),
        ("${FOO#}", {"FOO": "xxyy"}, "xxyy"),
        ("${FOO#?\\?}", {"FOO": "???y"}, "?y"),
        ("${FOO%%\\**}", {"FOO": "xx**"}, "xx"),
        ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a"),
        ("${FOO%x}", {"FOO": "xxyyx"}, "xxyy"),
        ("${FOO%%y*}", {"FOO": "xxyyx"}, "xx"),
        ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy."),
        ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x"),
        ("${TAG%-*}", {"TAG": "1.2.3-alpine"}, "1.2.3"),
        ("${P##*/}", {"P": "/usr/local/bin/tool"}, "tool"),
        # substitution: first match, or every match with //
        (
            "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
            {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"},
            "/foo.*/*.txt - /foo..*.txt",
        ),
        (
            "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
            {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"},
            "/tmp/bar.txt - /bar.txt",
        ),
        (
            "${FOO/$N/$R} - ${FOO//$N/$R}",
            {"FOO": "/a/foo/b/c.txt", "N": "/?/", "R": "/"},
            "/foo/b/c.txt - /foo/c.txt",
        ),
        ("${FOO/$N/$R}", {"FOO": "http://google.de", "N": "http://", "R": "https://"}, "https://google.de"),
        ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt"),
        ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy"),
        ("${FOO///}", {"FOO": "xxyy"}, "xxyy"),
        ("${FOO///}", {}, ""),
        # `$$` in the replacement is the special parameter $$ (empty) ...
        ("${FOO//x/$$}", {"FOO": "axbx"}, "ab"),
        # ... but a `$$` coming from a value reaches Go's ReplaceAllString, which reads it as `$`
        ("${FOO//x/$D}", {"FOO": "axbx", "D": "$$"}, "a$b$"),
        ("${FOO/x/$D}", {"FOO": "axbx", "D": "$$"}, "a$$bx"),
        # unset / special / positional parameters are empty
        ("a$1b$@c${#}d", {}, "abcd"),
        ("${TARGETVARIANT:+-${TARGETVARIANT}}", {"TARGETVARIANT": "v7"}, "-v7"),
        ("${TARGETVARIANT:+-${TARGETVARIANT}}", {}, ""),
    ],
)
def test_expand_operators(word: str, env: dict[str, str], expected: str) -> None:
    assert expand(word, env) == expected


@pytest.mark.parametrize(
    ("word", "env", "message"),
    [
        ("${BAZ?ccc}", {}, "BAZ: ccc"),
        ("${BAR:?bbb}", {"BAR": ""}, "BAR: bbb"),
        ("${BAZ:?}", {}, "BAZ: is not allowed to be unset"),
        ("${BAR:?}", {"BAR": ""}, "BAR: is not allowed to be empty"),
        ("${VAR:?message here$ARG}", {"ARG": "x"}, "message herex"),
        ("${FOO=aaa}", {"FOO": "x"}, "unsupported modifier (=) in substitution"),
        ("${FOO=:aaa}", {"FOO": "x"}, "unsupported modifier"),
        ("${FOO//ww}", {"FOO": "xxyy"}, "missing '/' in ${}"),
        ("${FOO//}", {"FOO": "xxyy"}, "missing '/' in ${}"),
        ("${FOO#\\x}", {"FOO": "x"}, "invalid escape"),
        ("${FOO", {}, "missing '}'"),
        ("${}", {}, "bad substitution"),
        ('"abc', {}, "matching double-quote"),
        ("'abc", {}, "matching single-quote"),
    ],
)
def test_expand_errors(word: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(BuildError) as info:
        expand(word, env)
    assert message in str(info.value)
    assert str(info.value).startswith("failed to process " + go_quote(word))


def test_mandatory_variables_allow_set_values() -> None:
    assert expand("${VAR:?message}", {"VAR": "plain"}) == "plain"
    assert expand("${VAR?message}", {"VAR": "plain"}) == "plain"
    assert expand("${VAR?message}", {"VAR": ""}) == ""


def test_backtick_escape_token() -> None:
    # With `# escape=\``, a backslash is an ordinary character (Windows paths) and ` escapes.
    assert expand("C:\\path\\$X", {"X": "y"}, escape="`") == "C:\\path\\y"
    assert expand("`$X", {"X": "y"}, escape="`") == "$X"
    assert split_words("a` b c", {}, escape="`") == ["a b", "c"]


def test_windows_platform_is_case_insensitive_and_prefers_exact_match() -> None:
    assert expand("$path", {"PATH": "/bin"}, platform="windows") == "/bin"
    assert expand("$path", {"PATH": "/bin"}) == ""
    assert expand("$Path", {"PATH": "/bin", "Path": "exact"}, platform="windows") == "exact"


def test_split_words_blanks_from_values_split_but_quoted_do_not() -> None:
    env = {"x": "a  b"}
    assert split_words("$x", env) == ["a", "b"]
    assert split_words('"$x"', env) == ["a  b"]
    assert split_words("pre$x post", env) == ["prea", "b", "post"]
    assert split_words('""', env) == []
    assert split_words("", env) == []


def test_lexer_reports_matched_and_unmatched() -> None:
    result = ShellLexer().process("x ${FOO} ${UNUSED:-d} $BAR", {"FOO": "y", "BAR": "z"})
    assert result.result == "x y d z"
    assert result.words == ["x", "y", "d", "z"]
    assert result.matched == {"FOO", "BAR"}
    assert result.unmatched == {"UNUSED"}


def test_lexer_skip_unset_and_raw_quotes() -> None:
    lexer = ShellLexer(skip_unset_env=True, raw_quotes=True)
    result = lexer.process("""'$A' "$B" $C ${D} ${E:-x} ${F/a/b}""", {"B": "bee"})
    assert result.result == """'$A' "bee" $C ${D} ${E:-x} ${F/a/b}"""


def test_lexer_raw_escapes() -> None:
    assert ShellLexer(raw_escapes=True).process("a\\ b", {}).result == "a\\ b"
    assert ShellLexer().process("a\\ b", {}).result == "a b"


def test_lexer_rejects_bad_escape_token() -> None:
    with pytest.raises(BuildError):
        ShellLexer(escape="").process("x", {})


def test_env_from_list_last_wins() -> None:
    assert env_from_list(["foo=bar", "car=hat", "car=bike", "flag", "eq=a=b"]) == {
        "foo": "bar",
        "car": "bike",
        "flag": "",
        "eq": "a=b",
    }


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", '"plain"'),
        ('q"b\\s', '"q\\"b\\\\s"'),
        ("\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'),
        ("\x00\x1f\x7f", '"\\x00\\x1f\\x7f"'),
        ("♥ 한국어 😀", '"♥ 한국어 😀"'),
        ("\u00a0\u200b\u2028", '"\\u00a0\\u200b\\u2028"'),
        ("\U000e0001", '"\\U000e0001"'),
        ("bad\udcff", '"bad\\xff"'),
    ],
)
def test_go_quote(value: str, quoted: str) -> None:
    assert go_quote(value) == quoted


def test_go_quote_list() -> None:
    assert go_quote_list(["--from=x", "a b"]) == '["--from=x" "a b"]'
    assert go_quote_list([]) == "[]"
