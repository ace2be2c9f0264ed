"""Dockerfile parser, matching BuildKit's ``frontend/dockerfile/parser`` line for line.

Why a faithful copy rather than a tidy grammar: Dockerfiles in the wild lean on every quirk of the
reference parser -- a ``#`` is a comment only at the start of a line, continuation lines keep their
leading blanks, an empty line inside a continuation is skipped, ``CMD ['x']`` (single quotes) is a
*shell* command, ``ENV a b c`` sets ``a`` to ``"b c"``. An image only builds the same here if each
of those reads the same, so the parser is checked against BuildKit's own fixtures via :func:`dump`,
which prints an instruction in exactly the format of BuildKit's ``Node.Dump``.

What this module adds on top of BuildKit's AST-level parser (which accepts any keyword):

* unknown instructions are an error at parse time, with a suggestion (``did you mean RUN?``);
* ``FROM`` must be ``image [AS name]``; when the extra words come from a trailing ``# comment``
  the error says that ``#`` after an instruction is not a comment;
* ONBUILD may not trigger ONBUILD, FROM or MAINTAINER;
* every error is a :class:`~dockyard.errors.BuildError` reading ``Dockerfile:3: message``.

Typed accessors for a builder: :func:`parse_flags`, :func:`parse_from`, :func:`key_value_pairs`,
:func:`arg_definitions`, :func:`parse_healthcheck` (also ``Instruction.healthcheck``); and
:func:`lint` for warnings (trailing ``#`` comments, empty continuation lines, deprecated
MAINTAINER, JSON-looking arguments that are not valid JSON).
"""

from __future__ import annotations

# Start-up time: no json, re or collections here (~8 ms of a cached build). ``re`` is imported only
# for the input that needs it (heredocs, HEALTHCHECK durations, odd directive lines), JSON arrays
# are read by json's own C scanner (``_json``), and ``_collections_abc`` is what
# ``collections.abc`` re-exports, already loaded by ``os``.
import _json
from _collections_abc import Mapping

from dockyard.build.shell import GO_SPACE_CHARS, ShellLexer, go_quote, go_quote_list, is_go_space
from dockyard.errors import BuildError
from dockyard.records import MutableRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Collection, Iterator
    from typing import Any

__all__ = [
    "INSTRUCTIONS",
    "Dockerfile",
    "FromSpec",
    "Heredoc",
    "Instruction",
    "ParsedFlags",
    "arg_definitions",
    "dump",
    "dump_file",
    "key_value_pairs",
    "lint",
    "parse",
    "parse_duration",
    "parse_flags",
    "parse_from",
    "parse_healthcheck",
    "trailing_comment_hint",
]

#: Every instruction keyword Docker knows (lower case).
INSTRUCTIONS = frozenset(
    {
        "add",
        "arg",
        "cmd",
        "copy",
        "entrypoint",
        "env",
        "expose",
        "from",
        "healthcheck",
        "label",
        "maintainer",
        "onbuild",
        "run",
        "shell",
        "stopsignal",
        "user",
        "volume",
        "workdir",
    }
)

# Instructions whose shell form may carry heredocs (<<EOF), and ONBUILD which may wrap them.
_HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})

# Instructions whose shell-form text is handed to a shell, which itself treats `# ...` as a comment;
# everywhere else a `#` after the keyword is literal text.
_SHELL_INSTRUCTIONS = frozenset({"run", "cmd", "entrypoint", "shell", "healthcheck"})

_COMMENT_HASH_HINT = (
    "a '#' after an instruction is not a comment in a Dockerfile; put comments on their own line"
)

# What BuildKit splits words on (its regexp ``[\t\v\f\r ]+``): see :func:`_split_blanks`.
_BLANKS = frozenset("\t\v\f\r ")
# Patterns needed only by some Dockerfiles: compiled on first use (re caches them), not at import.
_RE_DIRECTIVE = r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*\Z"  # only for lines starting with '#'
_RE_HEREDOC = r"^([0-9]*)<<(-?)([^<]*)\Z"
_RE_LEADING_TABS = r"^\t+"
# A stage name, BuildKit's ``^[a-z][a-z0-9-_.]*$``: see :func:`_valid_stage_name`.
_STAGE_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz")
_STAGE_NAME_REST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
_VALID_DIRECTIVES = ("syntax", "escape", "check")


# --------------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------------


class Heredoc(MutableRecord):
    """A ``<<EOF`` here-document attached to RUN/COPY/ADD.

    ``content`` is the raw body (every line with its newline, terminator excluded), as BuildKit
    stores it; ``expand`` is False when any part of the word was quoted (``<<'EOF'``, ``<<"EOF"``),
    meaning ``$VAR`` in the body must not be expanded; ``chomp`` is the ``<<-`` form, whose body
    loses leading tabs (see :attr:`text`).
    """

    name: str
    content: str
    expand: bool
    chomp: bool
    file_descriptor: int
    _fields = ("name", "content", "expand", "chomp", "file_descriptor")

    def __init__(self, name: str, content: str = "", expand: bool = True, chomp: bool = False,
                 file_descriptor: int = 0) -> None:
        self.name = name
        self.content = content
        self.expand = expand
        self.chomp = chomp
        self.file_descriptor = file_descriptor

    @property
    def text(self) -> str:
        """The body as the builder should use it: leading tabs removed for ``<<-``."""
        if not self.chomp:
            return self.content
        import re

        return re.sub(_RE_LEADING_TABS, "", self.content, flags=re.MULTILINE)


class Instruction(MutableRecord):
    """One instruction, with its arguments split the way BuildKit's parser splits them.

    ``args`` by instruction:

    * RUN/CMD/ENTRYPOINT/SHELL: ``json_form`` -> the JSON strings; else ``[shell text]`` (or ``[]``).
    * COPY/ADD/VOLUME: JSON strings, or the words split on blanks (quotes kept).
    * ENV/LABEL: flat triples ``[key, value, sep, ...]``; sep ``"="`` for ``k=v`` words, ``""`` for
      the legacy ``ENV key value`` form. Values are raw (quotes/escapes/``$`` still there): pass
      them through :func:`dockyard.build.shell.expand`. See :func:`key_value_pairs`.
    * ARG: the words (``name`` or ``name=default``), see :func:`arg_definitions`.
    * FROM/EXPOSE: words split on blanks.
    * HEALTHCHECK: ``[type, *command]`` where the command is JSON strings or one shell string.
    * USER/WORKDIR/STOPSIGNAL/MAINTAINER: ``[text]``.
    * ONBUILD: ``[trigger text]``, and the parsed trigger in :attr:`trigger`.

    ``original`` is the logical line (continuations joined), which is what Docker records in the
    image history; ``start_line``/``end_line`` are 1-based and cover continuations and heredoc
    bodies. ``flags`` are the ``--name=value`` words before the arguments, quotes removed.
    """

    cmd: str
    original: str
    start_line: int
    end_line: int
    flags: list[str]
    args: list[str]
    json_form: bool
    heredocs: list[Heredoc]
    trigger: Instruction | None
    comments: list[str]
    keyword: str
    filename: str
    _fields = ("cmd", "original", "start_line", "end_line", "flags", "args", "json_form", "heredocs",
               "trigger", "comments", "keyword", "filename")

    def __init__(self, cmd: str, original: str, start_line: int, end_line: int,
                 flags: list[str] | None = None, args: list[str] | None = None, json_form: bool = False,
                 heredocs: list[Heredoc] | None = None, trigger: Instruction | None = None,
                 comments: list[str] | None = None, keyword: str = "", filename: str = "Dockerfile") -> None:
        self.cmd = cmd
        self.original = original
        self.start_line = start_line
        self.end_line = end_line
        self.flags = [] if flags is None else flags
        self.args = [] if args is None else args
        self.json_form = json_form
        self.heredocs = [] if heredocs is None else heredocs
        self.trigger = trigger
        self.comments = [] if comments is None else comments
        self.keyword = keyword
        self.filename = filename

    def location(self) -> str:
        """``Dockerfile:3`` -- the prefix every error about this instruction starts with."""
        return f"{self.filename}:{self.start_line}"

    def error(self, message: str) -> BuildError:
        """A BuildError located at this instruction (``Dockerfile:3: message``)."""
        return BuildError(f"{self.location()}: {message}")

    @property
    def healthcheck(self) -> dict[str, Any] | None:
        """For HEALTHCHECK, the image config's ``Healthcheck`` (see :func:`parse_healthcheck`); else None."""
        return parse_healthcheck(self) if self.cmd == "healthcheck" else None


class Dockerfile(MutableRecord):
    """A parsed Dockerfile.

    ``directives`` holds only the parser directives present (``syntax``, ``escape``, ``check``),
    keys lower case; use :attr:`escape` for the escape token with its default. ``warnings`` are
    BuildKit's parse-time warnings (empty continuation lines); :func:`lint` adds more.
    ``source_lines`` are the file's lines, for showing context around an error.
    """

    instructions: list[Instruction]
    directives: dict[str, str]
    warnings: list[str]
    filename: str
    source_lines: list[str]
    _fields = ("instructions", "directives", "warnings", "filename", "source_lines")

    def __init__(self, instructions: list[Instruction], directives: dict[str, str] | None = None,
                 warnings: list[str] | None = None, filename: str = "Dockerfile",
                 source_lines: list[str] | None = None) -> None:
        self.instructions = instructions
        self.directives = {} if directives is None else directives
        self.warnings = [] if warnings is None else warnings
        self.filename = filename
        self.source_lines = [] if source_lines is None else source_lines

    @property
    def escape(self) -> str:
        """The escape token (``\\`` unless ``# escape=`` says otherwise); also the shell lexer's."""
        return self.directives.get("escape", "\\")

    def __iter__(self) -> Iterator[Instruction]:
        return iter(self.instructions)

    def __len__(self) -> int:
        return len(self.instructions)


# --------------------------------------------------------------------------------------------
# Small helpers mirroring Go's string functions
# --------------------------------------------------------------------------------------------


def _split_blanks(text: str, maxsplit: int = 0) -> list[str]:
    """``re.split(r"[\\t\\v\\f\\r ]+", text, maxsplit)``, without compiling a regex on every run."""
    out: list[str] = []
    start = i = 0
    n = len(text)
    while i < n:
        if text[i] in _BLANKS:
            j = i + 1
            while j < n and text[j] in _BLANKS:
                j += 1
            out.append(text[start:i])
            start = i = j
            if maxsplit and len(out) == maxsplit:
                break
        else:
            i += 1
    out.append(text[start:])
    return out


def _go_trim(text: str) -> str:
    return text.strip(GO_SPACE_CHARS)


def _go_trim_left(text: str) -> str:
    return text.lstrip(GO_SPACE_CHARS)


def _scan_lines(text: str) -> list[str]:
    """Split on ``\\n`` only, keeping the line endings (heredoc bodies need them)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return _go_trim_left(line).startswith("#")


def _is_empty_continuation_line(line: str) -> bool:
    return _go_trim_left(_trim_newline(line)) == ""


def _has_hash_word(text: str, escape: str = "\\") -> bool:
    """Whether ``text`` has a word starting with ``#`` outside quotes (a would-be comment)."""
    quote = ""
    prev_blank = True
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == escape and quote == '"':
                i += 2
                prev_blank = False
                continue
            if ch == quote:
                quote = ""
        elif ch == escape:
            i += 2
            prev_blank = False
            continue
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "#" and prev_blank:
            return True
        prev_blank = not quote and is_go_space(ch)
        i += 1
    return False


class _ParseError(Exception):
    """Internal: a message to be located at the instruction being parsed."""

    def __init__(self, message: str, *, hash_hint: bool = True) -> None:
        super().__init__(message)
        self.hash_hint = hash_hint


# --------------------------------------------------------------------------------------------
# Directives and line continuation
# --------------------------------------------------------------------------------------------


_ASCII_SPACE = " \t\n\r\f\v"  # \s with re.ASCII
_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ASCII_ALNUM = _ASCII_LETTERS | frozenset("0123456789")


def _match_directive(line: str) -> tuple[str, str] | None:
    """``re.match(_RE_DIRECTIVE, line, re.ASCII)`` as ``(name, value)``, or None.

    Hand-written because ``# syntax=...`` tops many Dockerfiles and importing ``re`` costs every
    such build ~4 ms. The regex's backtracking gives a value made only of blanks as its last blank.
    """
    if "\n" in line:  # (never, once lines are split; the regex's "." would not match it)
        import re

        m = re.match(_RE_DIRECTIVE, line, re.ASCII)
        return None if m is None else (m.group(1), m.group(2))
    if not line.startswith("#"):
        return None
    rest = line[1:].lstrip(_ASCII_SPACE)
    if rest[:1] not in _ASCII_LETTERS:
        return None
    i = 1
    while i < len(rest) and rest[i] in _ASCII_ALNUM:
        i += 1
    after = rest[i:].lstrip(_ASCII_SPACE)
    if not after.startswith("="):
        return None
    after = after[1:]
    value = after.strip(_ASCII_SPACE)
    if not value:
        if not after:
            return None
        value = after[-1]
    return rest[:i], value


class _Directives:
    """Parser directives state: they are only read before the first instruction or comment."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.done = False
        self.escape = "\\"

    def set_escape(self, token: str) -> None:
        if token not in ("`", "\\"):
            raise _ParseError(f"invalid escape token '{token}' does not match ` or \\", hash_hint=False)
        self.escape = token

    def possible_directive(self, line: str) -> bool:
        """Record ``line`` if it is a directive; return whether it was one."""
        if self.done:
            return False
        match = _match_directive(line) if line.startswith("#") else None
        if match is None:
            self.done = True
            return False
        key = match[0].lower()
        if key not in _VALID_DIRECTIVES:
            self.done = True
            return False
        if key in self.values:
            raise _ParseError(f"only one {key} parser directive can be used", hash_hint=False)
        value = match[1]
        if key == "escape":
            self.set_escape(value)
        self.values[key] = value
        return True

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """Strip a trailing continuation token; return (line, is_end_of_line).

        BuildKit's regexp ``([^T])T[ \\t]*$|^T[ \\t]*$`` (T the escape token): the token as the last
        character before trailing blanks continues the line, unless it is itself escaped; a line
        holding only the token continues too.
        """
        t = self.escape
        stripped = line.rstrip(" \t")
        if not stripped.endswith(t):
            return line, True
        if len(stripped) == 1:
            return "", False
        if stripped[-2] != t:
            return stripped[:-1], False
        return line, True


# --------------------------------------------------------------------------------------------
# Argument parsers, one per instruction (BuildKit's line_parsers.go)
# --------------------------------------------------------------------------------------------


class _Parsed:
    __slots__ = ("args", "json_form", "trigger")

    def __init__(self, args: list[str], json_form: bool = False, trigger: Instruction | None = None) -> None:
        self.args = args
        self.json_form = json_form
        self.trigger = trigger


def _split_command(line: str) -> tuple[str, list[str], str]:
    """(keyword, flags, rest) -- the flags are leading ``--x`` words, ``--`` ends them."""
    parts = _split_blanks(_go_trim(line), maxsplit=1)
    rest = ""
    flags: list[str] = []
    if len(parts) == 2:
        rest, flags = _extract_flags(parts[1])
    return parts[0], flags, _go_trim(rest)


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """Take ``--flag[=value]`` words off the front of ``line``; return (rest, flags).

    Quotes group and are removed, backslash escapes (always ``\\`` here, whatever the escape
    directive says -- as in BuildKit). A lone ``--`` ends the flags and is dropped.
    """
    in_spaces, in_word, in_quote = 0, 1, 2
    words: list[str] = []
    phase = in_spaces
    word: list[str] = []
    quote = ""
    blank_ok = False
    n = len(line)
    pos = 0
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if is_go_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = in_word
        if pos == n:
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)
            break
        if phase == in_word:
            if is_go_space(ch):
                phase = in_spaces
                text = "".join(word)
                if text == "--":
                    return line[pos:], words
                if blank_ok or text:
                    words.append(text)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


def _parse_words(rest: str, escape: str) -> list[str]:
    """Split on blanks keeping quotes and escapes in the words (ENV/LABEL/ARG)."""
    in_spaces, in_word, in_quote = 0, 1, 2
    words: list[str] = []
    phase = in_spaces
    quote = ""
    blank_ok = False
    buf: list[str] = []
    n = len(rest)
    pos = 0
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if is_go_space(ch):
                pos += 1
                continue
            phase = in_word
        if pos == n:
            if blank_ok or buf:
                words.append("".join(buf))
            break
        if phase == in_word:
            if is_go_space(ch):
                phase = in_spaces
                if blank_ok or buf:
                    words.append("".join(buf))
                buf = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue  # an escape token at the very end is dropped
                # outside quotes the escape and the next character are both kept, even a quote
                buf.append(ch)
                pos += 1
                ch = rest[pos]
            buf.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            buf.append(ch)
            ch = rest[pos]
        buf.append(ch)
        pos += 1
    return words


def _parse_name_val(rest: str, key: str, escape: str) -> _Parsed:
    """ENV/LABEL: ``key value`` (legacy, one pair) or ``k=v k2=v2 ...``."""
    words = _parse_words(rest, escape)
    if not words:
        return _Parsed([])
    if "=" not in words[0]:
        parts = _split_blanks(rest, maxsplit=1)
        if len(parts) < 2:
            raise _ParseError(f"{key} must have two arguments")
        return _Parsed([parts[0], parts[1], ""])
    args: list[str] = []
    for word in words:
        if "=" not in word:
            raise _ParseError(
                f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value"
            )
        name, _, value = word.partition("=")
        args += [name, value, "="]
    return _Parsed(args)


def _parse_name_or_name_val(rest: str, escape: str) -> _Parsed:
    return _Parsed(_parse_words(rest, escape))


def _parse_whitespace_delimited(rest: str) -> _Parsed:
    if rest == "":
        return _Parsed([])
    return _Parsed(_split_blanks(rest))


def _parse_string(rest: str) -> _Parsed:
    return _Parsed([rest] if rest else [])


def _reject_constant(name: str) -> object:
    raise ValueError(name)  # NaN/Infinity are not JSON to Go


class _JSONScanContext:
    """What ``json.JSONDecoder(parse_constant=_reject_constant)`` hands its C scanner."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_reject_constant)


# ``json.loads(text, parse_constant=_reject_constant)`` for a text starting with ``[``, through the
# C scanner json itself uses: same values, and a shell-form ``RUN [ -f x ] && ...`` (not JSON) is
# told apart without importing json (and re) for its error message.
_scan_json = _json.make_scanner(_JSONScanContext())  # type: ignore[arg-type]


def _parse_json(rest: str) -> list[str] | None:
    """The JSON array's strings; None if ``rest`` is not a JSON array (so it is shell form)."""
    text = _go_trim_left(rest)
    if not text.startswith("["):
        return None
    try:
        value, end = _scan_json(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return None
    if text[end:].strip(" \t\n\r"):  # json's trailing whitespace, then nothing ("Extra data")
        return None
    if not isinstance(value, list):
        return None
    for item in value:
        if not isinstance(item, str):
            raise _ParseError("when using JSON array syntax, arrays must be comprised of strings only")
    return value


def _parse_maybe_json(rest: str) -> _Parsed:
    if rest == "":
        return _Parsed([])
    items = _parse_json(rest)
    if items is not None:
        return _Parsed(items, True)
    return _Parsed([rest])


def _parse_maybe_json_to_list(rest: str) -> _Parsed:
    items = _parse_json(rest)
    if items is not None:
        return _Parsed(items, True)
    return _parse_whitespace_delimited(rest)


def _parse_health_config(rest: str) -> _Parsed:
    sep = 0
    while sep < len(rest) and not is_go_space(rest[sep]):
        sep += 1
    nxt = sep
    while nxt < len(rest) and is_go_space(rest[nxt]):
        nxt += 1
    if sep == 0:
        return _Parsed([])
    command = _parse_maybe_json(rest[nxt:])
    return _Parsed([rest[:sep], *command.args], command.json_form)


# --------------------------------------------------------------------------------------------
# Instructions
# --------------------------------------------------------------------------------------------


def _unknown_instruction(keyword: str) -> _ParseError:
    message = f"unknown instruction: {keyword}"
    import difflib

    close = difflib.get_close_matches(keyword.lower(), sorted(INSTRUCTIONS), n=1, cutoff=0.6)
    if close:
        message += f" (did you mean {close[0].upper()}?)"
    return _ParseError(message, hash_hint=False)


def _check_from_args(args: list[str]) -> None:
    """FROM takes ``image`` or ``image AS name``; anything else is an error."""
    if len(args) == 1 or (len(args) == 3 and args[1].lower() == "as"):
        return
    if any(arg.startswith("#") for arg in args[1:]):
        raise _ParseError(f"FROM takes 'image [AS name]' but got {len(args)} words: {_COMMENT_HASH_HINT}")
    if len(args) == 3:
        raise _ParseError('When using FROM with three arguments, the second argument must be "AS"')
    raise _ParseError("FROM requires either one or three arguments")


def _new_instruction(
    line: str, escape: str, start: int, end: int, filename: str, comments: list[str]
) -> Instruction:
    keyword, flags, rest = _split_command(line)
    cmd = keyword.lower()
    if cmd not in INSTRUCTIONS:
        raise _unknown_instruction(keyword)
    parsed: _Parsed
    if cmd in ("add", "copy", "volume"):
        parsed = _parse_maybe_json_to_list(rest)
    elif cmd in ("cmd", "entrypoint", "run", "shell"):
        parsed = _parse_maybe_json(rest)
    elif cmd in ("env", "label"):
        parsed = _parse_name_val(rest, cmd.upper(), escape)
    elif cmd == "arg":
        parsed = _parse_name_or_name_val(rest, escape)
    elif cmd in ("expose", "from"):
        parsed = _parse_whitespace_delimited(rest)
        if cmd == "from":
            _check_from_args(parsed.args)
    elif cmd == "healthcheck":
        parsed = _parse_health_config(rest)
    elif cmd == "onbuild":
        trigger = None
        if rest:
            trigger = _new_instruction(rest, escape, start, end, filename, [])
            if trigger.cmd == "onbuild":
                raise _ParseError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", hash_hint=False)
            if trigger.cmd in ("from", "maintainer"):
                raise _ParseError(
                    f"{trigger.cmd.upper()} isn't allowed as an ONBUILD trigger", hash_hint=False
                )
        parsed = _Parsed([rest] if rest else [], False, trigger)
    else:  # maintainer, stopsignal, user, workdir
        parsed = _parse_string(rest)
    return Instruction(
        cmd=cmd,
        original=line,
        start_line=start,
        end_line=end,
        flags=flags,
        args=parsed.args,
        json_form=parsed.json_form,
        trigger=parsed.trigger,
        comments=list(comments),
        keyword=keyword,
        filename=filename,
    )


def _can_contain_heredoc(instr: Instruction) -> bool:
    node = instr.trigger if instr.cmd == "onbuild" and instr.trigger is not None else instr
    return node.cmd in _HEREDOC_INSTRUCTIONS and not node.json_form


def _heredoc_from_word(word: str) -> Heredoc | None:
    """A Heredoc if ``word`` looks like ``[n]<<[-]NAME``; the name's quoting decides ``expand``."""
    if "<<" not in word:
        return None
    import re  # only for a line with a heredoc

    match = re.match(_RE_HEREDOC, word)
    if match is None:
        return None
    fd = int(match.group(1)) if match.group(1) else 0
    chomp = match.group(2) == "-"
    rest = match.group(3)
    if not rest:
        return None
    # Lex the word with and without quotes kept: if they differ, part of it was quoted.
    words = ShellLexer(skip_unset_env=True).process(rest, {}).words
    if len(words) != 1:
        return None
    raw_words = ShellLexer(skip_unset_env=True, raw_quotes=True).process(rest, {}).words
    if len(raw_words) != len(words):
        raise _ParseError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name = words[0]
    raw = raw_words[0]
    expand = name.count("'") + name.count('"') == raw.count("'") + raw.count('"')
    return Heredoc(name=name, expand=expand, chomp=chomp, file_descriptor=fd)


def _heredocs_from_line(line: str) -> list[Heredoc]:
    lexer = ShellLexer(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    try:
        words = lexer.process(line, {}).words
    except BuildError:
        words = []
    docs: list[Heredoc] = []
    for word in words:
        heredoc = _heredoc_from_word(word)
        if heredoc is not None:
            docs.append(heredoc)
    return docs


# --------------------------------------------------------------------------------------------
# parse()
# --------------------------------------------------------------------------------------------


def parse(text: str, *, filename: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile ``text``; raise BuildError (``Dockerfile:N: ...``) if it is invalid.

    ``filename`` only appears in messages. The text should be the file decoded as UTF-8 (a BOM is
    ignored; ``errors="surrogateescape"`` keeps invalid bytes visible in dumps).
    """
    lines = _scan_lines(text)
    directives = _Directives()
    instructions: list[Instruction] = []
    warnings: list[str] = []
    comments: list[str] = []
    current = 0
    index = 0

    def fail(message: str, line: int) -> BuildError:
        return BuildError(f"{filename}:{line}: {message}")

    def process_line(raw: str, strip_left: bool) -> tuple[str, bool]:
        token = _trim_newline(raw)
        if strip_left:
            token = _go_trim_left(token)
        try:
            is_directive = directives.possible_directive(token)
        except _ParseError as exc:
            raise fail(str(exc), current + 1) from None
        return ("" if _is_comment(token) else token), is_directive

    while index < len(lines):
        raw = lines[index]
        index += 1
        if current == 0:
            raw = raw.removeprefix("\ufeff")
        if _is_comment(raw):
            comment = _go_trim_left(raw)[1:].strip(GO_SPACE_CHARS)
            if comment:
                comments.append(comment)
            else:
                comments = []
        token, is_directive = process_line(raw, True)
        if is_directive and comments:
            comments.pop()
        current += 1
        start = current

        line, end_of_line = directives.trim_continuation(token)
        if end_of_line and line == "":
            continue
        parts = [line]
        has_empty_continuation = False
        while not end_of_line and index < len(lines):
            raw = lines[index]
            index += 1
            token, _ = process_line(raw, False)
            current += 1
            if _is_comment(raw):
                continue  # a comment line inside a continuation is dropped
            if _is_empty_continuation_line(token):
                has_empty_continuation = True
                continue
            token, end_of_line = directives.trim_continuation(token)
            parts.append(token)
        line = "".join(parts)

        if has_empty_continuation:
            warnings.append(
                f"{filename}:{start}: empty continuation line found in: {line} "
                "(empty continuation lines will become errors in a future release)"
            )

        try:
            instr = _new_instruction(line, directives.escape, start, current, filename, comments)
        except _ParseError as exc:
            message = str(exc)
            if (
                exc.hash_hint
                and _COMMENT_HASH_HINT not in message
                and _has_hash_word(line, directives.escape)
            ):
                message += f" (note: {_COMMENT_HASH_HINT})"
            raise fail(message, start) from None

        if _can_contain_heredoc(instr) and "<<" in line:
            try:
                heredocs = _heredocs_from_line(line)
            except (_ParseError, BuildError) as exc:
                raise fail(str(exc), start) from None
            for heredoc in heredocs:
                body: list[str] = []
                terminated = False
                while index < len(lines):
                    raw = lines[index]
                    index += 1
                    current += 1
                    candidate = _trim_newline(raw)
                    if heredoc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == heredoc.name:
                        terminated = True
                        break
                    body.append(raw)
                if not terminated:
                    raise fail(f"unterminated heredoc {heredoc.name}", start)
                heredoc.content = "".join(body)
                instr.heredocs.append(heredoc)
            instr.end_line = current
            if instr.trigger is not None:
                instr.trigger.heredocs = instr.heredocs
                instr.trigger.end_line = current

        instructions.append(instr)
        comments = []

    if not instructions:
        raise BuildError(f"{filename}: file with no instructions")

    return Dockerfile(
        instructions=instructions,
        directives=dict(directives.values),
        warnings=warnings,
        filename=filename,
        source_lines=[_trim_newline(raw) for raw in lines],
    )


# --------------------------------------------------------------------------------------------
# Dump (BuildKit's Node.Dump)
# --------------------------------------------------------------------------------------------


def _dump_inner(instr: Instruction) -> str:
    text = instr.cmd
    if instr.flags:
        text += " " + go_quote_list(instr.flags)
    if instr.cmd == "onbuild":
        if instr.trigger is not None:
            text += " (" + _dump_inner(instr.trigger) + ")"
    else:
        for arg in instr.args:
            text += " " + go_quote(arg)
    return text


def dump(instr: Instruction) -> str:
    """One instruction in BuildKit's dump format: ``(copy ["--from=x"] "a" "/b")``."""
    return "(" + _dump_inner(instr) + ")"


def dump_file(dockerfile: Dockerfile) -> str:
    """The whole file as BuildKit's parser tests print it: one :func:`dump` per line."""
    return "".join(dump(instr) + "\n" for instr in dockerfile.instructions)


# --------------------------------------------------------------------------------------------
# Typed accessors for a builder
# --------------------------------------------------------------------------------------------


class ParsedFlags(Mapping[str, str]):
    """Flags of one instruction: ``flags["from"]`` is the (last) value of ``--from``.

    Names are without the leading ``--``. :meth:`all` gives every value of a repeatable flag
    (``--mount``), :meth:`get_bool` a boolean flag (``--link``; given without a value it is true).
    """

    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    def __getitem__(self, name: str) -> str:
        return self._values[name][-1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def all(self, name: str) -> list[str]:
        return list(self._values.get(name, []))

    def get_bool(self, name: str, default: bool = False) -> bool:
        if name not in self._values:
            return default
        return self[name] == "true"

    def __repr__(self) -> str:
        return f"ParsedFlags({self._values!r})"


def parse_flags(
    instr: Instruction,
    allowed: Collection[str],
    *,
    booleans: Collection[str] = (),
    repeatable: Collection[str] = (),
) -> ParsedFlags:
    """Check ``instr.flags`` against the flags the instruction accepts, and parse them.

    ``allowed`` lists every accepted name (with or without ``--``), ``booleans`` those that are
    true/false switches, ``repeatable`` those that may be given more than once. Raises BuildError
    ``Dockerfile:N: unknown flag: --foo`` (and for duplicates, missing or non-boolean values).
    """

    def bare(name: str) -> str:
        return name[2:] if name.startswith("--") else name

    allowed_set = {bare(n) for n in allowed} | {bare(n) for n in booleans} | {bare(n) for n in repeatable}
    bool_set = {bare(n) for n in booleans}
    multi_set = {bare(n) for n in repeatable}
    values: dict[str, list[str]] = {}
    for flag in instr.flags:
        if not flag.startswith("--"):
            raise instr.error(f"flag should start with --: {flag}")
        name, has_value, value = flag[2:].partition("=")
        if name not in allowed_set:
            raise instr.error(f"unknown flag: --{name}")
        if name in values and name not in multi_set:
            raise instr.error(f"duplicate flag specified: --{name}")
        if name in bool_set:
            if not has_value:
                value = "true"
            value = value.lower()
            if value not in ("true", "false"):
                raise instr.error(f"expecting boolean value for flag --{name}, not: {value}")
        elif not has_value:
            raise instr.error(f"missing a value on flag: --{name}")
        values.setdefault(name, []).append(value)
    return ParsedFlags(values)


class FromSpec(tuple[str, "str | None", "str | None"]):
    """``FROM [--platform=p] image [AS name]``, still unexpanded (ARGs may appear in all three).

    A tuple ``(image, stage_name, platform)`` with named fields, as a ``NamedTuple`` would be (whose
    class is built with ``exec`` at import).
    """

    __slots__ = ()

    def __new__(cls, image: str, stage_name: str | None, platform: str | None) -> FromSpec:
        return tuple.__new__(cls, (image, stage_name, platform))

    @property
    def image(self) -> str:
        return self[0]

    @property
    def stage_name(self) -> str | None:
        return self[1]

    @property
    def platform(self) -> str | None:
        return self[2]

    def __repr__(self) -> str:
        return f"FromSpec(image={self[0]!r}, stage_name={self[1]!r}, platform={self[2]!r})"


def parse_from(instr: Instruction) -> FromSpec:
    """Split a FROM instruction; the stage name is lower-cased and must be a valid name."""
    if instr.cmd != "from":
        raise instr.error(f"expected FROM, got {instr.cmd.upper()}")
    flags = parse_flags(instr, {"platform"})
    try:
        _check_from_args(instr.args)
    except _ParseError as exc:
        raise instr.error(str(exc)) from None
    stage: str | None = None
    if len(instr.args) == 3:
        stage = instr.args[2].lower()
        if not _valid_stage_name(stage):
            raise instr.error(
                f"invalid name for build stage: {go_quote(instr.args[2])}, "
                "name can't start with a number or contain symbols"
            )
    return FromSpec(instr.args[0], stage, flags.get("platform"))


def _valid_stage_name(name: str) -> bool:
    """``re.match(r"^[a-z][a-z0-9\\-_.]*\\Z", name)``, without ``re`` (every multi-stage build)."""
    return name[:1] in _STAGE_NAME_FIRST and _STAGE_NAME_REST.issuperset(name)


def key_value_pairs(instr: Instruction) -> list[tuple[str, str]]:
    """ENV/LABEL as ``[(key, raw value), ...]``; expand both with :func:`shell.expand`.

    The legacy ``ENV key value words`` form gives one pair whose value is all the words.
    """
    if instr.cmd not in ("env", "label"):
        raise instr.error(f"expected ENV or LABEL, got {instr.cmd.upper()}")
    if not instr.args:
        raise instr.error(f"{instr.cmd.upper()} requires at least one argument")
    args = instr.args
    return [(args[i], args[i + 1]) for i in range(0, len(args) - 2, 3)]


def arg_definitions(instr: Instruction) -> list[tuple[str, str | None]]:
    """ARG as ``[(name, raw default or None), ...]``; ``ARG a=`` has default ``""``."""
    if instr.cmd != "arg":
        raise instr.error(f"expected ARG, got {instr.cmd.upper()}")
    if not instr.args:
        raise instr.error("ARG requires at least one argument")
    out: list[tuple[str, str | None]] = []
    for word in instr.args:
        name, has_value, value = word.partition("=")
        if not name:
            raise instr.error(f"ARG names can not be blank: {go_quote(word)}")
        out.append((name, value if has_value else None))
    return out


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # µs (micro sign)
    "\u03bcs": 1_000,  # μs (Greek mu)
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_RE_DURATION_PART = r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)"
_MAX_DURATION = 2**63 - 1


def parse_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` (``1m30s``, ``1.5h``, ``300ms``, ``0``) in nanoseconds.

    HEALTHCHECK intervals are written in Go's syntax, not ISO 8601 or seconds, so a Go-compatible
    reader is needed; raises ValueError with Go's message on bad input.
    """
    quoted = go_quote(text)
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if rest == "":
        raise ValueError(f"time: invalid duration {quoted}")
    import re
    from fractions import Fraction

    total = Fraction(0)
    pos = 0
    part = re.compile(_RE_DURATION_PART)
    while pos < len(rest):
        match = part.match(rest, pos)
        assert match is not None  # the pattern can match the empty string
        number, unit = match.group(1), match.group(2)
        if number in ("", "."):
            raise ValueError(f"time: invalid duration {quoted}")
        if unit == "":
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _DURATION_UNITS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {quoted}")
        total += Fraction(number) * _DURATION_UNITS[unit]
        pos = match.end()
    nanos = int(total)
    if nanos > _MAX_DURATION:
        raise ValueError(f"time: invalid duration {quoted}")
    return -nanos if negative else nanos


def parse_healthcheck(instr: Instruction) -> dict[str, Any]:
    """HEALTHCHECK as the image config's ``Healthcheck`` object, checked like BuildKit does.

    ``NONE`` gives ``{"Test": ["NONE"]}``; ``CMD x`` gives ``{"Test": ["CMD-SHELL", "x"]}`` and the
    JSON form ``{"Test": ["CMD", ...]}``. Durations are nanoseconds and, like ``Retries``, left out
    when zero (Docker's ``omitempty``), so a zero means "inherit the default".
    """
    if instr.cmd != "healthcheck":
        raise instr.error(f"expected HEALTHCHECK, got {instr.cmd.upper()}")
    if not instr.args:
        raise instr.error("HEALTHCHECK requires at least one argument")
    kind = instr.args[0].upper()
    rest = instr.args[1:]
    if kind == "NONE":
        if rest:
            raise instr.error("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    durations = ("interval", "timeout", "start-period", "start-interval")
    flags = parse_flags(instr, (*durations, "retries"))
    if kind != "CMD":
        raise instr.error(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)")
    if not rest:
        raise instr.error("Missing command after HEALTHCHECK CMD")
    config: dict[str, Any] = {"Test": ["CMD" if instr.json_form else "CMD-SHELL", *rest]}
    for name, key in zip(durations, ("Interval", "Timeout", "StartPeriod", "StartInterval"), strict=True):
        value = flags.get(name, "")
        if not value:
            continue
        try:
            nanos = parse_duration(value)
        except ValueError as exc:
            raise instr.error(str(exc)) from None
        if nanos == 0:
            continue
        if nanos < 1_000_000:
            raise instr.error(f"Interval {go_quote(name)} cannot be less than 1ms")
        config[key] = nanos
    retries = flags.get("retries", "")
    if retries:
        import re

        if not re.fullmatch(r"[+-]?[0-9]+", retries):
            raise instr.error(f"invalid --retries value: {go_quote(retries)}")
        count = int(retries)
        if count < 0:
            raise instr.error(f"--retries cannot be negative ({count})")
        if count >= 2**31:
            raise instr.error(f"invalid --retries value: {go_quote(retries)} (out of range)")
        if count:
            config["Retries"] = count
    return config


# --------------------------------------------------------------------------------------------
# Lint
# --------------------------------------------------------------------------------------------


def trailing_comment_hint(instr: Instruction, escape: str = "\\") -> str | None:
    """A warning if a ``#`` after the keyword was probably meant as a comment, else None.

    In RUN/CMD/ENTRYPOINT/HEALTHCHECK shell form the shell treats ``#`` as a comment itself, and
    in JSON form it is plainly literal, so those never warn; elsewhere (``ENV A b  # note``,
    ``COPY a b # note``) the ``#`` and everything after it silently become part of the arguments.
    """
    node = instr.trigger if instr.cmd == "onbuild" and instr.trigger is not None else instr
    if node.cmd in _SHELL_INSTRUCTIONS or node.json_form:
        return None
    _, _, rest = _split_command(node.original)
    if not _has_hash_word(rest, escape):
        return None
    return (
        f"{node.cmd.upper()}: the '#' and the words after it are part of the instruction's arguments: "
        f"{_COMMENT_HASH_HINT}"
    )


def lint(dockerfile: Dockerfile) -> list[str]:
    """Warnings for a parsed Dockerfile, each ``Dockerfile:N: message``, in line order."""
    found: list[tuple[int, str]] = []
    for warning in dockerfile.warnings:
        try:
            line = int(warning.split(":", 2)[1])
        except (IndexError, ValueError):
            line = 0
        found.append((line, warning))
    for instr in dockerfile.instructions:
        where = instr.location()
        hint = trailing_comment_hint(instr, dockerfile.escape)
        if hint:
            found.append((instr.start_line, f"{where}: {hint}"))
        node = instr.trigger if instr.cmd == "onbuild" and instr.trigger is not None else instr
        if node.cmd == "maintainer":
            found.append((instr.start_line, f"{where}: MAINTAINER is deprecated; use LABEL maintainer=..."))
        if (
            node.cmd in ("run", "cmd", "entrypoint", "shell", "copy", "add", "volume")
            and not node.json_form
            and node.args
            and node.args[0].lstrip().startswith("[")
        ):
            found.append(
                (
                    instr.start_line,
                    f"{where}: {node.cmd.upper()} arguments look like a JSON array but are not valid JSON "
                    "(use double quotes); they are used in shell form",
                )
            )
    found.sort(key=lambda item: item[0])
    return [message for _, message in found]
