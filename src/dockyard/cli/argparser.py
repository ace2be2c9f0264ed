"""``Parser``: argparse with Docker's error style and exit status.

A module of its own, imported only when a command builds its parser (``dockyard.cli.common``
hands ``Parser`` out lazily): argparse imports ``re`` and ``gettext``, ~2 ms that the common container and
image commands (``run``, ``create``, ``start``, ``ps``, ``exec``, ``logs``, ``stop``, ``rm``, ``images``...)
skip whenever ``dockyard.cli.quickargs`` reads their command line alone.
"""

from __future__ import annotations

import argparse
import os
import sys

from dockyard.cli import common

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn


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
        words = message.split(": ", 1)[1].split() if message.startswith("unrecognized arguments: ") else []
        if words:  # none for an empty argument (``ps ""``): argparse's own words then
            message = "unknown flag: " + words[0]
        sys.stderr.write(f"dockyard {self._name}: {message}\nSee 'dockyard {self._name} --help'.\n")
        raise SystemExit(125)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        if common.INTROSPECT:
            raise common.IntrospectParser(self)
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
