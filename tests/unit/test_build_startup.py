"""What keeps a cached ``dockyard build`` quick: the build modules load little, and the hand-written
stand-ins for regular expressions, ``copy.deepcopy`` and ``hashlib`` give exactly what they replace."""

from __future__ import annotations

import copy
import hashlib
import itertools
import re
import subprocess
import sys

import pytest

from dockyard.build.builder import _deepcopy, cache_key
from dockyard.build.dockerfile import _Directives, _split_blanks, parse
from dockyard.build.shell import ShellLexer, expand
from dockyard.digest import sha256_small


def test_importing_the_builder_loads_no_heavy_modules() -> None:
    code = ("import sys, dockyard.build.builder, dockyard.build.context\n"
            "heavy = ('dataclasses', 'inspect', 'copy', 'hashlib', 'shutil', 'tarfile', 'dockyard.build.executor',\n"
            "         'dockyard.store.layers', 'dockyard.runtime.builtin')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


WORDS = ["", " ", "\t", "\v", "\f", "\r", "\n", "a", "bc", "\\", "`", "\xa0", "x y"]


@pytest.mark.parametrize("maxsplit", [0, 1, 2])
def test_split_blanks_is_the_regular_expression_split(maxsplit: int) -> None:
    for n in range(4):
        for parts in itertools.product(WORDS, repeat=n):
            text = "".join(parts)
            assert _split_blanks(text, maxsplit) == re.split(r"[\t\v\f\r ]+", text, maxsplit=maxsplit), repr(text)


@pytest.mark.parametrize("token", ["\\", "`"])
def test_trim_continuation_is_buildkits_regular_expression(token: str) -> None:
    t = re.escape(token)
    regex = re.compile(rf"([^{t}]){t}[ \t]*\Z|^{t}[ \t]*\Z")
    d = _Directives()
    d.set_escape(token)
    pieces = ["", " ", "\t", "a", "\\", "`", "\n", "\\\\"]
    for n in range(5):
        for parts in itertools.product(pieces, repeat=n):
            line = "".join(parts)
            m = regex.search(line)
            want = (line, True) if m is None else (line[:m.start()] + (m.group(1) or ""), False)
            assert d.trim_continuation(line) == want, repr(line)


def test_directives_still_parse() -> None:
    df = parse("# escape=`\n#syntax = docker/dockerfile:1\nFROM a\nRUN x `\n  y\n")
    assert df.directives == {"escape": "`", "syntax": "docker/dockerfile:1"}
    assert df.instructions[1].args == ["x   y"]
    assert parse("  # escape=`\nFROM a\n").escape == "`"  # leading blanks are allowed
    assert parse("#x\n# escape=`\nFROM a\n").escape == "\\"  # not after another comment


@pytest.mark.parametrize("escape", ["\\", "`"])
def test_expand_without_anything_to_expand_is_the_lexers_result(escape: str) -> None:
    env = {"A": "1", "B": "two words"}
    pieces = ["a", " ", "$A", "${B}", "'", '"', "\\", "`", "x", "\t"]
    for n in range(4):
        for parts in itertools.product(pieces, repeat=n):
            word = "".join(parts)
            try:
                want: object = ShellLexer(escape=escape).process(word, env).result
            except Exception as e:  # noqa: BLE001 - the same error either way
                want = str(e)
            try:
                got: object = expand(word, env, escape=escape)
            except Exception as e:  # noqa: BLE001
                got = str(e)
            assert got == want, repr(word)
    with pytest.raises(Exception, match="invalid escape token"):
        expand("plain", {}, escape="")


def test_deepcopy_of_a_config() -> None:
    config = {"config": {"Env": ["A=1"], "Cmd": None, "ExposedPorts": {"80/tcp": {}}}, "n": 1, "f": 1.5,
              "b": True, "history": [{"created_by": "x", "empty_layer": True}], "t": (1, [2])}
    out = _deepcopy(config)
    assert out == copy.deepcopy(config)
    assert out["config"] is not config["config"] and out["history"][0] is not config["history"][0]
    assert out["t"][1] is not config["t"][1]  # anything else goes through copy.deepcopy


def test_cache_keys_are_sha256() -> None:
    assert sha256_small(b"abc") == hashlib.sha256(b"abc").hexdigest()
    material = b'["dockyard-build-1","sha256:p",["run","x"]]'
    assert cache_key("sha256:p", ["run", "x"]) == "sha256:" + hashlib.sha256(material).hexdigest()
