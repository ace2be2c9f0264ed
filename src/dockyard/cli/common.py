"""Pieces every command uses: the argument parser with Docker's error style, the engine."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from dockyard.engine import Engine


def _untranslated(message: str) -> str:
    return message


# argparse asks gettext for every caption it builds; Python ships no catalogue for it, and each lookup
# imports ``locale`` and probes the disk for .mo files (~2 ms of every command). Dockyard's messages are
# English, as Docker's are.
argparse._ = _untranslated  # type: ignore[attr-defined]
argparse.ngettext = lambda singular, plural, n: singular if n == 1 else plural  # type: ignore[attr-defined]


class Parser(argparse.ArgumentParser):
    """argparse with Docker's wording and exit status (125) for flag errors."""

    def __init__(self, name: str, usage: str, description: str) -> None:
        super().__init__(prog=f"dockyard {name}", usage=f"dockyard {name} {usage}", description=description,
                         allow_abbrev=False, add_help=False)
        self.add_argument("--help", action="help", help="Print usage")
        self._name = name

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse makes a formatter for every add_argument, and HelpFormatter imports shutil (with
        # bz2, lzma...) for the terminal width: the same width (shutil.get_terminal_size's), found here.
        return self.formatter_class(prog=self.prog, width=_terminal_columns() - 2)  # type: ignore[call-arg]

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments: "):
            message = "unknown flag: " + message.split(": ", 1)[1].split()[0]
        sys.stderr.write(f"dockyard {self._name}: {message}\nSee 'dockyard {self._name} --help'.\n")
        raise SystemExit(125)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        if INTROSPECT:
            raise IntrospectParser(self)
        return super().parse_known_args(args, namespace)


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``: $COLUMNS, else the terminal's (stdout's), else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return columns


#: Set (by ``dockyard.cli.completion``) to make a command hand over its parser instead of running:
#: completion scripts and ``docs/reference.md`` are generated from the commands' own definitions.
INTROSPECT = False


class IntrospectParser(BaseException):
    """Raised by ``Parser.parse_known_args`` (and so ``parse_args``) while ``INTROSPECT`` is set."""

    def __init__(self, parser: Parser) -> None:
        super().__init__(parser.prog)
        self.parser = parser


def parse_filters(values: list[str], allowed: tuple[str, ...] | None = None) -> dict[str, list[str]]:
    """``--filter key=value`` flags (repeatable) as Docker reads them: keys lower-cased, values kept."""
    from dockyard.errors import InvalidArgument

    out: dict[str, list[str]] = {}
    for v in values:
        if "=" not in v:
            raise InvalidArgument(f"bad format of filter (expected name=value): {v!r}")
        k, _, val = v.partition("=")
        k = k.strip().lower()
        if allowed is not None and k not in allowed:
            raise InvalidArgument(f"invalid filter '{k}'")
        out.setdefault(k, []).append(val.strip())
    return out


def engine() -> Engine:
    from dockyard.engine import Engine

    return Engine()


def print_json(obj: object) -> None:
    import json

    sys.stdout.write(json.dumps(obj, indent=4) + "\n")


def report(err: BaseException) -> None:
    """Print one error of several (``rmi a b c`` goes on after a failure), as main() would."""
    import os

    if os.environ.get("DOCKYARD_DEBUG"):
        import traceback

        traceback.print_exception(err)
    sys.stderr.write(f"Error: {err}\n")
