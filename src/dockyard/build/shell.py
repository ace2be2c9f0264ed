"""Shell-word expansion for Dockerfile instructions, matching BuildKit's ``shell.Lex``.

A Dockerfile is not run through a real shell when the builder expands ``$VAR`` in ``ENV``, ``COPY``,
``WORKDIR``... BuildKit has its own small lexer for that, with its own quirks (``\\t`` outside quotes
is just ``t``; ``${VAR:=x}`` is an error; an unset ``$1`` is empty; ``${VAR%%pat}`` patterns are
converted to regular expressions). Images built by Docker depend on those quirks, so this module
reproduces them one for one rather than calling ``shlex`` or ``os.path.expandvars``, and is checked
against BuildKit's own fixture files (``shell-envVarTest``, ``shell-wordsTest``).

Public API:

* :func:`expand` -- BuildKit's ``ProcessWord``: expansion and quote removal, one string out.
* :func:`split_words` -- BuildKit's ``ProcessWords``: expansion then splitting on unquoted blanks.
* :class:`ShellLexer` -- the lexer with every BuildKit option (raw quotes / raw escapes / keep unset
  variables), returning which variables matched, for builders and linters that need more.
* :func:`env_from_list` -- ``["K=V", ...]`` to a mapping the way BuildKit does it (last one wins).
* :func:`go_quote` / :func:`go_quote_list` -- Go's ``%q`` formatting, used by messages and the parse
  dump so that they read exactly like BuildKit's.

Everything is pure: no I/O, no global state. Errors are :class:`dockyard.errors.BuildError`.
"""

from __future__ import annotations

from dockyard.errors import BuildError
from dockyard.records import MutableRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import re
    from collections.abc import Iterable, Mapping

__all__ = [
    "GO_SPACE_CHARS",
    "ProcessResult",
    "ShellLexer",
    "env_from_list",
    "expand",
    "go_quote",
    "go_quote_list",
    "is_go_space",
    "split_words",
]

# Go's unicode.IsSpace: what BuildKit treats as a blank. Python's str.isspace() also accepts
# \x1c-\x1f, which Go does not, so the set is spelled out.
GO_SPACE_CHARS = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_GO_SPACES = frozenset(GO_SPACE_CHARS)

# POSIX special parameters ($@, $*, $#, ...). Docker never sets them, so they expand to "".
_SPECIAL_PARAMS = frozenset("@*#?-$!0")

_EOF = ""  # what the scanner returns past the end; never equal to a real character


def is_go_space(ch: str) -> bool:
    """Whether ``ch`` is a blank to Go's ``unicode.IsSpace`` (and so to BuildKit)."""
    return ch in _GO_SPACES


def _is_digit(ch: str) -> bool:
    # Go's unicode.IsDigit is category Nd, which is what str.isdecimal() tests.
    return ch != _EOF and ch.isdecimal()


def _is_name_char(ch: str) -> bool:
    return ch != _EOF and (ch.isalpha() or ch.isdecimal() or ch == "_")


# --------------------------------------------------------------------------------------------
# Go's %q, so that errors and the parse dump read exactly like BuildKit's.
# --------------------------------------------------------------------------------------------

_GO_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(s: str) -> str:
    """Format ``s`` as Go's ``strconv.Quote`` does (``%q``).

    Why not ``json.dumps`` or ``repr``: BuildKit's dump format and its error messages use Go
    quoting, which keeps printable non-ASCII characters, writes control characters as ``\\x00``
    and other unprintables as ``\\u00a0``; comparing against BuildKit's output needs the same bytes.
    Lone surrogates from ``surrogateescape`` decoding stand for invalid UTF-8 bytes and are written
    as ``\\xNN`` like Go writes the invalid byte.
    """
    out = ['"']
    for ch in s:
        simple = _GO_SIMPLE_ESCAPES.get(ch)
        if simple is not None:
            out.append(simple)
            continue
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape'd invalid byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():  # Python's isprintable == Go's IsPrint (L, M, N, P, S and U+0020)
            out.append(ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_quote_list(items: Iterable[str]) -> str:
    """Format a list of strings as Go's ``fmt.Sprintf("%q", []string{...})``: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(item) for item in items) + "]"


# --------------------------------------------------------------------------------------------
# The lexer
# --------------------------------------------------------------------------------------------


class _LexError(Exception):
    """Internal: a lexing error before it is wrapped with the source word."""


class ProcessResult(MutableRecord):
    """Everything one pass of the lexer found.

    ``result`` is the expanded word (``ProcessWord``), ``words`` the same text split on unquoted
    blanks (``ProcessWords``); ``matched``/``unmatched`` name the variables that were/weren't found,
    which a builder uses to warn about undefined variables.
    """

    result: str
    words: list[str]
    matched: set[str]
    unmatched: set[str]
    _fields = ("result", "words", "matched", "unmatched")

    def __init__(self, result: str, words: list[str], matched: set[str] | None = None,
                 unmatched: set[str] | None = None) -> None:
        self.result = result
        self.words = words
        self.matched = set() if matched is None else matched
        self.unmatched = set() if unmatched is None else unmatched


class _Words:
    """Collects words while processing; mirrors BuildKit's ``wordsStruct`` exactly.

    The quirks matter: an empty quoted string (``""``) starts a word but an empty word is never
    emitted, and blanks that come from a variable's value split words while quoted blanks do not.
    """

    def __init__(self) -> None:
        self.word: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch in _GO_SPACES:
            if self.in_word and self.word:
                self.words.append("".join(self.word))
                self.word = []
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word.append(ch)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        if text:  # keep `word` free of empty pieces so that its truthiness means "has text"
            self.word.append(text)
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.word:
            self.words.append("".join(self.word))
            self.word = []
            self.in_word = False
        return self.words


class _State:
    """One run of the lexer over one source string (BuildKit's ``shellWord``)."""

    def __init__(self, lexer: ShellLexer, source: str, env: Mapping[str, str]) -> None:
        self.lexer = lexer
        self.text = source
        self.pos = 0
        self.env = env
        self.raw_escapes = lexer.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()
        self.folded: dict[str, str] | None = None
        if lexer.case_insensitive_env:
            self.folded = {}
            for key, value in env.items():
                self.folded[key.upper()] = value

    # -- scanner (Go's text/scanner Peek/Next over runes) --

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        if self.pos >= len(self.text):
            return _EOF
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    # -- environment --

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        if self.folded is not None:
            value = self.folded.get(name.upper())
            if value is not None:
                self.matched.add(name)
                return value, True
        self.unmatched.add(name)
        return "", False

    # -- processing --

    def stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        """Process until ``stop`` (consumed) or the end of input when ``stop`` is EOF."""
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        lexer = self.lexer
        escape = lexer.escape
        process_quotes = not lexer.skip_process_quotes
        result: list[str] = []
        words = _Words()
        while (ch := self.peek()) != _EOF:
            if stop != _EOF and ch == stop:
                self.next()
                return "".join(result), words.get_words()
            if ch == "$":
                tmp = self.process_dollar()
                result.append(tmp)
                words.add_string(tmp)
            elif process_quotes and ch == "'":
                tmp = self.process_single_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            elif process_quotes and ch == '"':
                tmp = self.process_double_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            else:
                ch = self.next()
                if ch == escape:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    # the escape token escapes the next character, except at the very end
                    ch = self.next()
                    if ch == _EOF:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop != _EOF:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get_words()

    def process_single_quote(self) -> str:
        # Everything up to the next ' is literal; a ' cannot be escaped inside.
        raw = self.lexer.raw_quotes
        out: list[str] = []
        ch = self.next()
        if raw:
            out.append(ch)
        while True:
            ch = self.next()
            if ch == _EOF:
                raise _LexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if raw:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def process_double_quote(self) -> str:
        # Literal except $ (expanded) and the escape token, which escapes only " $ and itself.
        raw = self.lexer.raw_quotes
        escape = self.lexer.escape
        out: list[str] = []
        ch = self.next()
        if raw:
            out.append(ch)
        while True:
            nxt = self.peek()
            if nxt == _EOF:
                raise _LexError("unexpected end of statement while looking for matching double-quote")
            if nxt == '"':
                ch = self.next()
                if raw:
                    out.append(ch)
                return "".join(out)
            if nxt == "$":
                out.append(self.process_dollar())
                continue
            ch = self.next()
            if ch == escape:
                if self.raw_escapes:
                    out.append(ch)
                after = self.peek()
                if after == _EOF:
                    continue  # a trailing escape is dropped (and the missing " reported next)
                if after in ('"', "$", escape):
                    ch = self.next()
            out.append(ch)

    def process_name(self) -> str:
        """Read a variable name: letters/digits/_, or all leading digits, or one special param."""
        name: list[str] = []
        while (ch := self.peek()) != _EOF:
            if not name and _is_digit(ch):
                while _is_digit(self.peek()):
                    name.append(self.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return self.next()
            if not _is_name_char(ch):
                break
            name.append(self.next())
        return "".join(name)

    def process_dollar(self) -> str:
        self.next()  # the $
        skip_unset = self.lexer.skip_unset_env

        if self.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and skip_unset:
                return "$" + name
            return value

        self.next()  # the {
        first = self.peek()
        if first == _EOF:
            raise _LexError("syntax error: missing '}'")
        if first in ("{", "}", ":"):
            raise _LexError("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        if ch == _EOF:
            # (BuildKit reports an unprintable "unsupported modifier" here; this says what's wrong)
            raise _LexError("syntax error: missing '}'")
        modifier = ch

        if ch == "}":
            value, found = self.get_env(name)
            if not found and skip_unset:
                return "${" + name + "}"
            return value

        if ch in (":", "+", "-", "?", "#", "%"):
            null_is_unset = False
            if ch == ":":
                null_is_unset = True
                ch = self.next()
                modifier += ch
            try:
                word, _ = self.stop_on("}", ch in ("#", "%"))
            except _LexError:
                if self.peek() == _EOF:
                    raise _LexError("syntax error: missing '}'") from None
                raise
            value, is_set = self.get_env(name)
            if skip_unset and not is_set:
                return "${" + name + modifier + word + "}"
            if ch == "-":
                if not is_set or (null_is_unset and value == ""):
                    return word
                return value
            if ch == "+":
                if not is_set or (null_is_unset and value == ""):
                    return ""
                return word
            if ch == "?":
                if not is_set:
                    raise _LexError(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise _LexError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            if ch in ("#", "%"):
                # # and % remove the shortest match, ## and %% the longest
                greedy = False
                if word[:1] == ch:
                    greedy = True
                    word = word[1:]
                if ch == "%":
                    return _trim_suffix(word, value, greedy)
                return _trim_prefix(word, value, greedy)
            raise _LexError(f"unsupported modifier ({modifier}) in substitution")

        if ch == "/":
            replace_all = self.peek() == "/"
            if replace_all:
                self.next()
            try:
                pattern, _ = self.stop_on("/", True)
            except _LexError:
                if self.peek() == _EOF:
                    raise _LexError("syntax error: missing '/' in ${}") from None
                raise
            try:
                replacement, _ = self.stop_on("}", True)
            except _LexError:
                if self.peek() == _EOF:
                    raise _LexError("syntax error: missing '}'") from None
                raise
            value, is_set = self.get_env(name)
            if skip_unset and not is_set:
                return "${" + name + "/" + pattern + "/" + replacement + "}"
            regex = _shell_pattern_to_regex(pattern, greedy=True, anchored=False)
            if replace_all:
                return regex.sub(lambda m: _go_expand_template(replacement, m), value)
            match = regex.search(value)
            if match is not None:
                value = value[: match.start()] + replacement + value[match.end() :]
            return value

        raise _LexError(f"unsupported modifier ({modifier}) in substitution")


class ShellLexer(MutableRecord):
    """BuildKit's ``shell.Lex`` with its options.

    * ``escape``: the Dockerfile's escape token (``\\`` or `````).
    * ``raw_quotes``: keep quote characters in the output (used to detect quoted heredoc words).
    * ``raw_escapes``: keep escape characters in the output.
    * ``skip_process_quotes``: treat quotes as ordinary characters.
    * ``skip_unset_env``: leave references to unset variables as written instead of expanding to "".
    * ``case_insensitive_env``: look names up ignoring case, as Docker does on Windows.
    """

    escape: str
    raw_quotes: bool
    raw_escapes: bool
    skip_process_quotes: bool
    skip_unset_env: bool
    case_insensitive_env: bool
    _fields = ("escape", "raw_quotes", "raw_escapes", "skip_process_quotes", "skip_unset_env",
               "case_insensitive_env")

    def __init__(self, escape: str = "\\", raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_process_quotes: bool = False, skip_unset_env: bool = False,
                 case_insensitive_env: bool = False) -> None:
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_process_quotes = skip_process_quotes
        self.skip_unset_env = skip_unset_env
        self.case_insensitive_env = case_insensitive_env

    def process(self, word: str, env: Mapping[str, str]) -> ProcessResult:
        """Expand ``word`` against ``env``; raise BuildError naming the word on a syntax error."""
        if len(self.escape) != 1:
            raise BuildError(f"invalid escape token {go_quote(self.escape)}: must be one character")
        state = _State(self, word, env)
        try:
            result, words = state.stop_on(_EOF, state.raw_escapes)
        except _LexError as exc:
            raise BuildError(f"failed to process {go_quote(word)}: {exc}") from None
        return ProcessResult(result, words, state.matched, state.unmatched)


def _lexer_for(escape: str, platform: str) -> ShellLexer:
    return ShellLexer(escape=escape, case_insensitive_env=platform.lower().startswith("windows"))


def expand(word: str, env: Mapping[str, str], *, escape: str = "\\", platform: str = "linux") -> str:
    """Expand variables and remove quotes in ``word`` as BuildKit's ``ProcessWord`` does.

    Used for ENV/ARG/LABEL values, WORKDIR, USER, COPY/ADD sources... Supports ``$VAR``,
    ``${VAR}``, ``${VAR:-x}``, ``${VAR-x}``, ``${VAR:+x}``, ``${VAR+x}``, ``${VAR:?msg}``,
    ``${VAR?msg}``, ``${VAR#pat}``, ``${VAR##pat}``, ``${VAR%pat}``, ``${VAR%%pat}``,
    ``${VAR/pat/repl}`` and ``${VAR//pat/repl}``. ``platform="windows"`` looks variable names up
    case-insensitively, as Docker on Windows does. Raises BuildError on a syntax error.
    """
    if "$" not in word and "'" not in word and '"' not in word and escape not in word and len(escape) == 1:
        return word  # nothing to expand, unquote or unescape: the lexer would copy it character by character
    return _lexer_for(escape, platform).process(word, env).result


def split_words(
    text: str, env: Mapping[str, str], *, escape: str = "\\", platform: str = "linux"
) -> list[str]:
    """Expand ``text`` and split it into words as BuildKit's ``ProcessWords`` does.

    Blanks inside quotes or escaped with the escape token do not split; blanks that come from a
    variable's value do (``ENV x="a b"`` then ``$x`` is two words, ``"$x"`` one).
    """
    return _lexer_for(escape, platform).process(text, env).words


def env_from_list(entries: Iterable[str]) -> dict[str, str]:
    """``["K=V", "FLAG"]`` -> ``{"K": "V", "FLAG": ""}``; a later duplicate wins (BuildKit's BuildEnvs)."""
    env: dict[str, str] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        env[key] = value if sep else ""
    return env


# --------------------------------------------------------------------------------------------
# ${VAR#pattern} and friends: shell patterns as regular expressions, BuildKit style
# --------------------------------------------------------------------------------------------

_REGEX_SPECIAL = frozenset("[]{}.+()|^$")


def _shell_pattern_to_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """``*`` and ``?`` wildcards (no bracket expressions) to a regex, as BuildKit converts them.

    ``\\`` escapes ``*``, ``?`` and itself; before ``}`` or ``/`` it only protected the character
    from ending the ``${...}`` and is dropped; any other escape is an error. (``re`` is imported
    here, for the few words with ``${VAR%pat}`` and friends: at module level it, and enum,
    functools and collections with it, would cost every build ~4 ms.)
    """
    import re

    out: list[str] = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    n = len(pattern)
    while i < n:
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            nxt = pattern[i] if i < n else _EOF
            if nxt in ("}", "/"):
                continue
            if nxt not in ("*", "?", "\\"):
                shown = nxt if nxt != _EOF else "\ufffd"
                raise _LexError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'")
            out.append("\\" + nxt)
            i += 1
            continue
        if tok in _REGEX_SPECIAL:
            out.append("\\" + tok)
        else:
            out.append(tok)
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    regex = _shell_pattern_to_regex(pattern, greedy=greedy, anchored=True)
    match = regex.search(value)
    if match is not None:
        return value[match.end() :]
    return value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern keeping ``\\x`` pairs in order (``a\\*c`` -> ``c\\*a``)."""
    chars = list(pattern)
    out = [""] * len(chars)
    last = len(chars) - 1
    i = 0
    while i <= last:
        tok = chars[i]
        out_idx = last - i
        if tok == "\\" and i != last:
            out[out_idx - 1] = tok
            out[out_idx] = chars[i + 1]
            i += 2
        else:
            out[out_idx] = tok
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # A regex can't find the shortest rightmost match, so reverse both and trim a prefix.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


_TEMPLATE_NAME = r"[A-Za-z0-9_]+"  # compiled on first use (re caches it): not at import


def _go_expand_template(template: str, match: re.Match[str]) -> str:
    """Go's ``Regexp.Expand`` for ``ReplaceAllString``: ``$$`` is ``$``, ``$0`` the match.

    BuildKit's ``${VAR//pat/repl}`` goes through Go's ``ReplaceAllString``, which treats ``$name``
    in the replacement as a group reference. The converted pattern has no groups, so every other
    reference is empty; a ``$`` that starts no reference stays literal.
    """
    import re  # only for ${VAR//pat/repl} (see _shell_pattern_to_regex)

    name_re = re.compile(_TEMPLATE_NAME)
    out: list[str] = []
    i = 0
    n = len(template)
    while i < n:
        ch = template[i]
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        if i + 1 < n and template[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        name: str | None = None
        end = i + 1
        if i + 1 < n and template[i + 1] == "{":
            close = template.find("}", i + 2)
            candidate = template[i + 2 : close] if close >= 0 else ""
            if close >= 0 and name_re.fullmatch(candidate):
                name = candidate
                end = close + 1
        else:
            m = name_re.match(template, i + 1)
            if m is not None:
                name = m.group(0)
                end = m.end()
        if name is None:
            out.append("$")
            i += 1
            continue
        if name.isdigit() and len(name) < 9 and int(name) == 0:
            out.append(match.group(0))
        i = end
    return "".join(out)
