"""A small Go ``text/template`` subset for ``--format``: the forms people paste from Docker's docs.

Supported: ``{{.Field}}``, nested ``{{.Config.Env}}``, ``{{json .}}``, ``{{json .Field}}``,
``{{index .Labels "key"}}``, ``{{lower .X}}``, ``{{upper .X}}``, ``{{join .X ","}}``,
``{{range .X}}...{{end}}`` (with ``{{.}}`` inside), and a leading ``table`` that adds a header row.
"""

from __future__ import annotations

import json
import re
import shlex

from dockyard.errors import InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)


def _lookup(obj: Any, path: str) -> Any:
    if path in (".", ""):
        return obj
    cur = obj
    for part in path.strip(".").split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, dict):
            lowered = {k.lower(): v for k, v in cur.items()}
            if part.lower() in lowered:
                cur = lowered[part.lower()]
            else:
                raise InvalidArgument(f"template: can't evaluate field {part}")
        else:
            raise InvalidArgument(f"template: can't evaluate field {part} in {type(cur).__name__}")
    return cur


def _go_str(v: Any) -> str:
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + " ".join(_go_str(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_go_str(x)}" for k, x in sorted(v.items())) + "]"
    return str(v)


def _eval(expr: str, obj: Any) -> Any:
    try:
        words = shlex.split(expr)
    except ValueError as e:
        raise InvalidArgument(f"template: {e}")
    if not words:
        return ""
    fn, args = words[0], words[1:]
    if fn.startswith("."):
        return _lookup(obj, fn)
    if fn == "json":
        return json.dumps(_lookup(obj, args[0] if args else "."))
    if fn == "index":
        container = _lookup(obj, args[0])
        key: Any = args[1]
        if isinstance(container, list):
            key = int(key)
        try:
            return container[key] if container is not None else None
        except (KeyError, IndexError, TypeError):
            return None
    if fn in ("lower", "upper", "title"):
        s = _go_str(_lookup(obj, args[0]))
        return getattr(s, fn)()
    if fn == "join":
        return args[1].join(_go_str(x) for x in (_lookup(obj, args[0]) or []))
    if fn == "len":
        return len(_lookup(obj, args[0]) or [])
    raise InvalidArgument(f'template: function "{fn}" not defined')


def render(template: str, obj: Any) -> str:
    out: list[str] = []
    pos = 0
    stack: list[tuple[int, Any, list[str]]] = []
    tokens = list(_ACTION.finditer(template))
    i = 0

    def emit(s: str) -> None:
        out.append(s)

    # A tiny interpreter with {{range}} support via recursion on the substring.
    while i < len(tokens):
        m = tokens[i]
        emit(template[pos:m.start()])
        expr = m.group(1)
        if expr.startswith("range "):
            depth, j = 1, i + 1
            while j < len(tokens) and depth:
                e = tokens[j].group(1)
                if e.startswith(("range ", "if ", "with ")):
                    depth += 1
                elif e == "end":
                    depth -= 1
                j += 1
            body = template[m.end():tokens[j - 1].start()]
            for item in (_lookup(obj, expr.split(None, 1)[1]) or []):
                emit(render(body, item))
            pos = tokens[j - 1].end()
            i = j
            continue
        emit(_go_str(_eval(expr, obj)))
        pos = m.end()
        i += 1
    del stack
    emit(template[pos:])
    return "".join(out)


def format_rows(fmt: str, rows: list[dict[str, Any]], headers: dict[str, str]) -> str:
    """``--format``: ``table ...`` adds a header row and aligns columns as Docker's tabwriter does."""
    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
    if fmt.startswith("table"):
        body = fmt[len("table"):].strip() or "\t".join("{{." + k + "}}" for k in headers)
        head = _ACTION.sub(lambda m: headers.get(m.group(1).lstrip("."), m.group(1).lstrip(".").upper()), body)
        from dockyard.cli.format import table

        lines = [render(body, r) for r in rows]
        cells = [line.split("\t") for line in lines]
        return table(head.split("\t"), cells)
    return "\n".join(render(fmt, r) for r in rows)
