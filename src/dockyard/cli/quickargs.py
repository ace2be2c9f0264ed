"""Flags declared once, read two ways: by argparse (``Parser``), and by a quick reader for ordinary lines.

``dockyard run --rm busybox true`` is the product's headline benchmark, and argparse (with ``re``,
``gettext`` and building a parser of sixty flags) is ~3 ms of it. So the hot commands declare their
flags as a table (:data:`Flags`); :func:`add_to_parser` builds the argparse parser from it, and
:func:`parse` reads a command line with it -- the ordinary forms only, exactly as argparse would.
Whenever :func:`parse` is not sure (an unknown flag, ``--help``, a value that starts with ``-``, a
missing value, a bad int or choice, no IMAGE, ``INTROSPECT``...) it answers None, and the command
builds the argparse parser, which then decides (its errors, its exit status, its help). The two
cannot drift apart: the table is all either knows, and tests/unit/test_quickargs.py compares them.
"""

from __future__ import annotations

from dockyard.cli import common

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.argparser import Parser

    #: One flag or positional: ``(names, action, default, type, choices, help)``.
    #:   names: the option strings (``("-e", "--env")``), or a positional's dest alone (``("image",)``);
    #:   action: ``STORE`` (takes a value), ``STORE_TRUE``, ``APPEND`` (repeatable; its default, a tuple,
    #:     is given as a fresh list, as argparse's ``default=[]``); for positionals ``ONE`` (exactly one),
    #:     ``REST`` (argparse's REMAINDER: everything after the one before it, flags included), ``SOME``
    #:     (nargs "+") or ``OPT`` (nargs "?", default None);
    #:   type: None or ``"int"``; choices: None or the allowed values; help: the ``--help`` line.
    Flag = tuple[tuple[str, ...], str, object, str | None, tuple[str, ...] | None, str | None]
    Flags = tuple[Flag, ...]

STORE, STORE_TRUE, APPEND = "store", "store_true", "append"
ONE, REST, SOME, OPT = "one", "...", "+", "?"
_POSITIONAL = (ONE, REST, SOME, OPT)


class Namespace:
    """What ``parse_args`` returns, as the commands use it: one attribute per dest (``vars()`` too).
    Not ``argparse.Namespace``: importing argparse is what this module saves."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def __eq__(self, other: object) -> bool:
        return vars(self) == vars(other) if hasattr(other, "__dict__") else NotImplemented

    __hash__ = None  # type: ignore[assignment]  # as argparse.Namespace

    def __repr__(self) -> str:
        return "Namespace(" + ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()) + ")"

    def __getattr__(self, name: str) -> Any:  # for mypy: the attributes are the table's dests
        raise AttributeError(name)


def dest_of(names: tuple[str, ...]) -> str:
    """argparse's dest: the first ``--long`` name (else the first name) without dashes, ``-`` as ``_``."""
    for n in names:
        if n.startswith("--"):
            return n[2:].replace("-", "_")
    return names[0].lstrip("-").replace("-", "_")


def add_to_parser(p: Parser, flags: Flags, metavars: dict[str, str] | None = None) -> None:
    """Declare ``flags`` to argparse, in their order (``--help``, completion and docs/reference.md list them so);
    ``metavars``: a positional's name in the help, by dest (``build``'s ``PATH | URL | -``)."""
    for names, action, default, type_, choices, help_ in flags:
        kw: dict[str, Any] = {}
        if help_ is not None:
            kw["help"] = help_
        if metavars and names[0] in metavars:
            kw["metavar"] = metavars[names[0]]
        if action in _POSITIONAL:
            if action != ONE:
                kw["nargs"] = action
            p.add_argument(names[0], **kw)
            continue
        if action == APPEND:
            kw["default"] = list(default)  # type: ignore[call-overload]
        elif default is not (False if action == STORE_TRUE else None):
            kw["default"] = default
        if action != STORE:
            kw["action"] = action
        if type_ == "int":
            kw["type"] = int
        elif type_ is not None:
            raise ValueError(f"unknown type {type_!r} for {names}")
        if choices is not None:
            kw["choices"] = list(choices)
        p.add_argument(*names, **kw)


def parse(flags: Flags, argv: list[str]) -> Namespace | None:
    """``argv`` read as the parser :func:`add_to_parser` builds from ``flags`` would read it; None where
    this reader is not sure it would (the parser then decides). Read: ``--flag value``, ``--flag=value``,
    ``-f value``, ``-fvalue``, ``-f=value``, clustered switches (``-dit``, ``-dp 80:80``, ``-dp80:80``),
    ``--`` before the first positional, and the positionals the table declares: none, ``ONE`` then
    ``REST`` (``IMAGE [COMMAND...]``: everything after IMAGE is the command's, flags included),
    ``SOME`` (contiguous, as argparse wants them), ``ONE`` alone or ``OPT`` alone (one positional, or
    none for ``OPT``, anywhere among the flags)."""
    if common.INTROSPECT:  # completion and docs want the parser itself
        return None
    by_name: dict[str, tuple[str, str, str | None, tuple[str, ...] | None]] = {}
    values: dict[str, Any] = {}
    positionals: list[tuple[str, str]] = []
    for names, action, default, type_, choices, _help in flags:
        dest = dest_of(names)
        if action in _POSITIONAL:
            positionals.append((dest, action))
            values[dest] = None
            continue
        for opt in names:
            if opt[1] != "-" and len(opt) != 2:  # argparse's prefix matching of "-abc" options: not here
                raise ValueError(f"{opt}: single-dash options of one letter only")
            by_name[opt] = (dest, action, type_, choices)
        if action == APPEND:
            values[dest] = list(default)  # type: ignore[call-overload]
        elif type_ == "int" and isinstance(default, str):
            values[dest] = int(default)  # argparse converts a string default with the type
        else:
            values[dest] = default
    kinds = tuple(k for _, k in positionals)
    if kinds not in ((), (ONE, REST), (SOME,), (ONE,), (OPT,)):
        raise ValueError(f"positionals {kinds} are not read here")

    def take(spec: tuple[str, str, str | None, tuple[str, ...] | None], value: str) -> bool:
        dest, action, type_, choices = spec
        v: Any = value
        if type_ == "int":
            try:
                v = int(value)
            except ValueError:
                return False
        if choices is not None and v not in choices:
            return False
        if action == APPEND:
            values[dest].append(v)
        else:
            values[dest] = v
        return True

    given: list[str] = []  # the positionals
    after_positionals = False  # a flag came after SOME's positionals: another would be argparse's error
    i, n = 0, len(argv)
    while i < n:
        arg = argv[i]
        i += 1
        if arg == "--":  # the rest are positionals: IMAGE [COMMAND...] only, the plain way
            if kinds != (ONE, REST) or i >= n or argv[i][:1] == "-" or argv[i + 1:i + 2] == ["--"]:
                return None
            given = argv[i:]
            break
        if arg[:1] != "-" or arg == "-":  # a positional ("" and "-" too, as argparse)
            if kinds == (ONE, REST):
                if argv[i:i + 1] == ["--"]:  # argparse drops it, or not, by Python version
                    return None
                given = argv[i - 1:]
                break
            if not kinds or after_positionals:
                return None
            given.append(arg)
            continue
        if given:
            after_positionals = True
        explicit: str | None
        if arg[1] == "-":  # --flag, --flag=value
            name, eq, value = arg.partition("=")
            spec = by_name.get(name)
            explicit = value if eq else None
        elif arg in by_name:  # -f
            spec, explicit = by_name[arg], None
        else:  # -f=value, -fvalue, -abc, -abvalue: argparse's order of trying them
            head, eq, value = arg.partition("=")
            if eq and head in by_name:
                spec, explicit = by_name[head], value
            else:
                spec, explicit = by_name.get(arg[:2]), arg[2:]
            while spec is not None and spec[1] == STORE_TRUE and explicit is not None:  # -dit
                if not explicit:
                    return None  # -d= : argparse's "ignored explicit argument"
                values[spec[0]] = True
                spec, explicit = by_name.get("-" + explicit[0]), explicit[1:] or None
        if spec is None:
            return None  # not a flag of this command (or --help): argparse's error or help
        if spec[1] == STORE_TRUE:
            if explicit is not None:
                return None  # --rm=true: argparse's error
            values[spec[0]] = True
            continue
        if explicit is None:
            if i >= n or (argv[i][:1] == "-" and argv[i] != "-"):
                return None  # no value, or one that argparse may take for a flag or a negative number
            explicit = argv[i]
            i += 1
        if not take(spec, explicit):
            return None
    if kinds == (ONE, REST):
        if not given:
            return None
        values[positionals[0][0]] = given[0]
        values[positionals[1][0]] = given[1:]
    elif kinds == (SOME,):
        if not given:
            return None
        values[positionals[0][0]] = given
    elif kinds:  # ONE or OPT, alone: a second positional is argparse's "unrecognized arguments"
        if len(given) > 1 or (not given and kinds == (ONE,)):
            return None
        if given:
            values[positionals[0][0]] = given[0]
    return Namespace(values)


def read(name: str, argv: list[str], usage: str, description: str, flags: Flags,
         metavars: dict[str, str] | None = None) -> Any:
    """A command's arguments: ``argv`` read by :func:`parse` (no argparse), or, when it is not sure, by
    the argparse parser (``common.Parser(name, usage, description)``) built from the same table: its
    errors, its ``--help``, and the parser itself for introspection."""
    a: Any = parse(flags, argv)
    if a is None:
        p = common.Parser(name, usage, description)
        add_to_parser(p, flags, metavars)
        a = p.parse_args(argv)
    return a
