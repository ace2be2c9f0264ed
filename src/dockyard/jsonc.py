"""``json.loads`` / ``json.dumps`` through the C accelerator alone, without ``import json``.

``json`` imports ``re`` (and with it enum, functools, collections) and compiles half a dozen regexes:
~8 ms on a small VM, an eighth of ``dockyard run``.  The work is done by the same C accelerator
``json`` itself uses (``_json``); anything out of the ordinary -- an error, a BOM, UTF-16, a type the
C encoder refuses, a ``default`` hook -- is handed to ``json`` so results and error messages stay
exactly ``json``'s.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _ScanContext:
    """The attributes ``_json.make_scanner`` reads (``json.JSONDecoder``'s defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_scan = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]
_encode_ascii = _json.encode_basestring_ascii
_encode_utf8 = _json.encode_basestring
_WS = " \t\n\r"


def loads(raw: bytes | str) -> Any:
    """``json.loads(raw)``."""
    try:
        if isinstance(raw, str):
            s = raw
        else:
            if raw[:3] == b"\xef\xbb\xbf" or b"\x00" in raw[:4]:
                raise ValueError  # BOM or UTF-16/32: json's encoding detection
            s = raw.decode("utf-8", "surrogatepass")
        if s[:1] == "\ufeff":
            raise ValueError
        s = s.lstrip(_WS)
        obj, end = _scan(s, 0)
        if s[end:].strip(_WS):
            raise ValueError
        return obj
    except (ValueError, StopIteration, RecursionError):
        pass
    import json

    return json.loads(raw)


def _refuse(_o: object) -> object:
    raise TypeError


_ENCODERS: dict[tuple[str, str, bool, bool], Callable[[object, int], Any]] = {}


def _encoder(key_sep: str, item_sep: str, sort_keys: bool, ensure_ascii: bool) -> Callable[[object, int], Any]:
    key = (key_sep, item_sep, sort_keys, ensure_ascii)
    enc = _ENCODERS.get(key)
    if enc is None:
        enc = _ENCODERS[key] = _json.make_encoder(
            None, _refuse, _encode_ascii if ensure_ascii else _encode_utf8, None, key_sep, item_sep,
            sort_keys, False, True)
    return enc


def _pretty(o: object, indent: str, level: int, out: list[str], enc: Callable[[object, int], Any],
            encode_str: Callable[[str], str]) -> None:
    if isinstance(o, dict):
        if not o:
            out.append("{}")
            return
        inner = "\n" + indent * (level + 1)
        sep = "{"
        for k, v in o.items():
            if not isinstance(k, str):
                raise TypeError
            out.append(sep + inner + encode_str(k) + ": ")
            sep = ","
            _pretty(v, indent, level + 1, out, enc, encode_str)
        out.append("\n" + indent * level + "}")
    elif isinstance(o, (list, tuple)):
        if not o:
            out.append("[]")
            return
        inner = "\n" + indent * (level + 1)
        sep = "["
        for v in o:
            out.append(sep + inner)
            sep = ","
            _pretty(v, indent, level + 1, out, enc, encode_str)
        out.append("\n" + indent * level + "]")
    else:
        out.extend(enc(o, 0))


def dumps(obj: object, *, indent: int | None = None, sort_keys: bool = False,
          separators: tuple[str, str] | None = None, ensure_ascii: bool = True,
          default: Callable[[Any], Any] | None = None) -> str:
    """``json.dumps`` with these keyword arguments (``sort_keys`` and ``separators`` only without
    ``indent``; ``default`` always goes to ``json``)."""
    try:
        if default is not None or (indent is not None and (sort_keys or separators is not None)):
            raise TypeError
        encode_str = _encode_ascii if ensure_ascii else _encode_utf8
        if isinstance(obj, str):
            return str(encode_str(obj))
        item_sep, key_sep = separators or (", ", ": ")
        out: list[str] = []
        if indent is None:
            out.extend(_encoder(key_sep, item_sep, sort_keys, ensure_ascii)(obj, 0))
        else:
            _pretty(obj, " " * indent, 0, out, _encoder(": ", ", ", False, ensure_ascii), encode_str)
        return "".join(out)
    except (TypeError, ValueError, RecursionError):
        pass
    import json

    return json.dumps(obj, indent=indent, sort_keys=sort_keys, separators=separators, ensure_ascii=ensure_ascii,
                      default=default)
