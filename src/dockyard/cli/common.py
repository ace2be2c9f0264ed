"""Pieces every command uses: the argument parser with Docker's error style (lazily), the engine."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from dockyard.cli.argparser import Parser as Parser
    from dockyard.engine import Engine


def __getattr__(name: str) -> object:
    """``Parser``, imported when first asked for: it is argparse (with ``re`` and ``gettext``, ~2 ms),
    which the hot commands skip when ``dockyard.cli.quickargs`` can read their command line."""
    if name == "Parser":
        from dockyard.cli.argparser import Parser

        globals()["Parser"] = Parser  # asked for once
        return Parser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    from dockyard import jsonc

    sys.stdout.write(jsonc.dumps(obj, indent=4) + "\n")


def report(err: BaseException) -> None:
    """Print one error of several (``rmi a b c`` goes on after a failure), as main() would."""
    if os.environ.get("DOCKYARD_DEBUG"):
        import traceback

        traceback.print_exception(err)
    sys.stderr.write(f"Error: {err}\n")
