"""``dockyard completion bash|zsh``: shell completion generated from the commands' own parsers.

Nothing here lists a flag by hand. ``commands()`` walks ``cli.main``'s ``COMMANDS`` and ``GROUPS``,
calls each command function with ``common.INTROSPECT`` set, so that its ``Parser`` hands itself over
(``IntrospectParser``) at the moment it would parse, and reads the options and positionals off it.
The same walk writes ``docs/reference.md`` (``scripts/gen-docs``), so the completion, the reference
and ``--help`` cannot disagree.

The generated scripts ask Dockyard itself, at completion time, for what exists: container names
(``dockyard ps -a --format '{{.Names}}'``, filtered by state where a command only makes sense for
running or stopped containers) and image names (``dockyard images --format
'{{.Repository}}:{{.Tag}}'``), with the same ``--root`` as the command line being completed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass, field
from typing import Any

from dockyard.cli.common import Parser

#: What a positional argument names, by its ``dest`` (overridden per command below).
_KIND_BY_DEST = {
    "container": "container", "containers": "container", "image": "image", "images": "image",
    "names": "object", "context": "directory", "source": "image", "target": "image", "reference": "image",
    "repository": "image", "src": "cp", "dest": "cp",
}
_KIND_OVERRIDES = {("dockyard.cli.images:import_", "source"): "file",
                   ("dockyard.cli.images:import_", "reference"): "none"}
#: Which containers a command can act on (``ps --filter status=...``); absent: all of them.
_CONTAINER_STATES = {
    "start": ("created", "exited"), "stop": ("running",), "kill": ("running",), "pause": ("running",),
    "exec_": ("running",), "attach": ("running",), "top": ("running",), "port": ("running",),
    "unpause": ("paused",),
}
#: Values offered after an option, by its ``dest`` (an option's own ``choices`` come first).
_VALUE_WORDS = {
    "network": ["bridge", "host", "none"],
    "runtime": ["builtin", "runc", "crun"],
    "gpus": ["all"],
    "ipc": ["private", "shareable", "host", "none"],
    "pid": ["host"],
    "uts": ["host"],
    "signal": ["SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGSTOP", "SIGCONT"],
    "platform": ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/riscv64"],
    "stop_signal": ["SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT"],
}
_FILE_DESTS = {"env_file", "file", "output", "input", "cidfile", "iidfile", "htpasswd", "tls_cert", "tls_key",
               "volume", "device"}
_DIR_DESTS = {"root"}

GLOBAL_OPTIONS = [
    (["--root"], "string", "Root of Dockyard's state (default \"/var/lib/dockyard\"; env DOCKYARD_ROOT)"),
    (["-D", "--debug"], "", "Show tracebacks for errors"),
    (["-v", "--version"], "", "Print version information and quit"),
    (["-h", "--help"], "", "Print usage"),
]


@dataclass
class Option:
    strings: list[str]
    takes_value: bool
    metavar: str          # "string", "list", "int", or the choices as "{a,b}"
    help: str
    repeat: bool          # may be given more than once
    default: Any
    value: str = ""       # how to complete the value: "words", "file", "dir" or ""
    words: list[str] = field(default_factory=list)


@dataclass
class Positional:
    dest: str
    metavar: str
    nargs: Any            # None, "?", "+", "*" or "..." (argparse.REMAINDER)
    kind: str             # container, image, object, file, directory, cp, choice, command or none
    states: tuple[str, ...] = ()  # container: the states it may be in; choice: the choices

    @property
    def repeats(self) -> bool:
        return self.nargs in ("+", "*")


@dataclass
class Command:
    names: list[str]      # every way to type it, the main one first: ["ps", "container ls", ...]
    target: str           # "module:function"
    description: str
    usage: str = ""
    options: list[Option] = field(default_factory=list)
    positionals: list[Positional] = field(default_factory=list)
    error: str = ""       # why its parser could not be read (a module that fails to import)

    @property
    def name(self) -> str:
        return self.names[0]


def commands() -> list[Command]:
    """Every command, top-level ones in ``COMMANDS`` order, then those only a group offers."""
    from dockyard.cli import main

    by_target: dict[str, Command] = {}
    order: list[str] = []
    for cmd, (target, desc) in main.COMMANDS.items():
        if target not in by_target:
            by_target[target] = Command([cmd], target, desc)
            order.append(target)
        else:
            by_target[target].names.append(cmd)
    for group, (_, subs) in main.GROUPS.items():
        for sub, ref in subs.items():
            target = ref if ":" in ref else main.COMMANDS[ref][0]
            if target not in by_target:
                by_target[target] = Command([f"{group} {sub}"], target, "")
                order.append(target)
            else:
                by_target[target].names.append(f"{group} {sub}")
    out = [by_target[t] for t in order]
    for c in out:
        _read_parser(c)
    return out


def groups() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(group, description, [(sub-command, its main name)]) for each management command."""
    from dockyard.cli import main

    out = []
    for group, (desc, subs) in main.GROUPS.items():
        out.append((group, desc, [(sub, f"{group} {sub}") for sub in subs]))
    return out


def _read_parser(cmd: Command) -> None:
    from dockyard.cli import common

    module_name, func_name = cmd.target.split(":")
    parser: Parser | None = None
    common.INTROSPECT = True
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        func(cmd.name, [])
        cmd.error = "the command did not build a parser"
    except common.IntrospectParser as e:
        parser = e.parser
    except Exception as e:  # a module another engineer is halfway through: keep the rest going
        cmd.error = f"{type(e).__name__}: {e}"
    finally:
        common.INTROSPECT = False
    if parser is None:
        return
    cmd.usage = parser.usage or parser.prog
    if not cmd.description:
        cmd.description = parser.description or ""
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        help_text = _expand_help(formatter, action)
        if action.option_strings:
            cmd.options.append(_option(action, help_text))
        else:
            kind = _KIND_OVERRIDES.get((cmd.target, action.dest)) or _KIND_BY_DEST.get(action.dest, "none")
            if action.nargs == argparse.REMAINDER:
                kind = "command"
            states = _CONTAINER_STATES.get(func_name, ()) if kind == "container" else ()
            if action.choices:
                kind, states = "choice", tuple(str(c) for c in action.choices)
            metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
            cmd.positionals.append(Positional(action.dest, metavar, action.nargs, kind, states))


def _expand_help(formatter: argparse.HelpFormatter, action: argparse.Action) -> str:
    if not action.help:
        return ""
    try:
        text = formatter._expand_help(action)
    except (KeyError, TypeError, ValueError):
        text = action.help
    return " ".join(text.split())


def _option(action: argparse.Action, help_text: str) -> Option:
    takes_value = action.nargs != 0
    repeat = isinstance(action, (argparse._AppendAction, argparse._CountAction))
    if action.choices:
        metavar = "{" + ",".join(str(c) for c in action.choices) + "}"
    elif isinstance(action.metavar, str):
        metavar = action.metavar
    elif not takes_value:
        metavar = ""
    elif isinstance(action, argparse._AppendAction):
        metavar = "list"
    elif action.type is int:
        metavar = "int"
    else:
        metavar = "string"
    opt = Option(list(action.option_strings), takes_value, metavar, help_text, repeat, action.default)
    if not takes_value:
        return opt
    if action.choices:
        opt.value, opt.words = "words", [str(c) for c in action.choices]
    elif action.dest in _VALUE_WORDS:
        opt.value, opt.words = "words", list(_VALUE_WORDS[action.dest])
    elif action.dest in _DIR_DESTS:
        opt.value = "dir"
    elif action.dest in _FILE_DESTS or (isinstance(action.metavar, str) and action.metavar in ("FILE", "PATH")):
        opt.value = "file"
    return opt


# ---- bash -----------------------------------------------------------------------------------
def bash_script(cmds: list[Command] | None = None) -> str:
    cmds = commands() if cmds is None else cmds
    from dockyard.cli import main

    top = [*main.GROUPS, *main.COMMANDS]
    L: list[str] = [
        "# bash completion for dockyard, generated by `dockyard completion bash` from the CLI's own parsers.",
        "# Install: dockyard completion bash > /etc/bash_completion.d/dockyard",
        "#      or: echo 'source <(dockyard completion bash)' >> ~/.bashrc",
        "",
        "_dockyard_query() {  # ask the dockyard being completed (same binary, same --root)",
        '    "${_dockyard_bin:-dockyard}" "${_dockyard_root[@]}" "$@" 2>/dev/null',
        "}",
        "",
        "_dockyard_containers() {  # [STATUS...]: container names, only those in one of STATUS if given",
        "    local s filters=()",
        '    for s in "$@"; do filters+=(--filter "status=$s"); done',
        "    _dockyard_query ps -a \"${filters[@]}\" --format '{{.Names}}'",
        "}",
        "",
        "_dockyard_images() {",
        "    _dockyard_query images --format '{{.Repository}}:{{.Tag}}' | grep -v '<none>'",
        "}",
        "",
        "_dockyard_words() {  # words/cword/cur/prev with `name:tag` kept as one word (COMP_WORDBREAKS has ':')",
        "    words=() cword=0",
        "    local i w join=0",
        "    for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do",
        '        w="${COMP_WORDS[i]}"',
        '        if ((${#words[@]} > 0)) && { [[ "$w" == : ]] || ((join)); } && ((i <= COMP_CWORD)); then',
        '            words[${#words[@]}-1]+="$w"',
        "        else",
        '            words+=("$w")',
        "        fi",
        '        if [[ "$w" == : ]]; then join=1; else join=0; fi',
        "        ((i == COMP_CWORD)) && cword=$((${#words[@]} - 1))",
        "    done",
        '    cur="${words[cword]}" prev=""',
        '    ((cword > 0)) && prev="${words[cword-1]}"',
        '    if [[ "$prev" == "=" ]] && ((cword > 1)); then prev="${words[cword-2]}"; fi',
        "    return 0",
        "}",
        "",
        "_dockyard_reply() {  # WORDS...: offer those matching $cur (as bash would split them)",
        '    local IFS=$\'\\n\'',
        "    COMPREPLY+=($(compgen -W \"$*\" -- \"$cur\"))",
        "}",
        "",
        "_dockyard_files() {",
        '    local IFS=$\'\\n\'',
        '    compopt -o filenames 2>/dev/null',
        "    COMPREPLY+=($(compgen \"${1:--f}\" -- \"$cur\"))",
        "}",
        "",
        "_dockyard_trim_colon() {  # bash replaces only the part of the word after the last ':'",
        '    if [[ "$cur" == *:* && "$COMP_WORDBREAKS" == *:* ]]; then',
        '        local prefix="${cur%"${cur##*:}"}" i=${#COMPREPLY[@]}',
        '        while ((i-- > 0)); do COMPREPLY[i]="${COMPREPLY[i]#"$prefix"}"; done',
        "    fi",
        "}",
        "",
        "_dockyard_spec() {  # COMMAND: sets opts (every flag), valopts (flags taking a value), args (positionals)",
        '    opts="" valopts="" args=""',
        '    case "$1" in',
    ]
    for c in cmds:
        if c.error:
            continue
        pattern = "|".join(_bash_quote(n) for n in c.names)
        opts = " ".join(s for o in c.options for s in o.strings)
        valopts = " ".join(s for o in c.options if o.takes_value for s in o.strings)
        args = " ".join(_bash_arg(p) for p in c.positionals)
        L.append(f"        {pattern})")
        L.append(f'            opts="{opts}"')
        if valopts:
            L.append(f'            valopts="{valopts}"')
        if args:
            L.append(f'            args="{args}"')
        L.append("            ;;")
    L += [
        "        *) return 1 ;;",
        "    esac",
        "}",
        "",
        "_dockyard_value() {  # COMMAND OPTION: complete the value of an option",
        '    case "$1 $2" in',
    ]
    for c in cmds:
        for o in c.options:
            if not o.takes_value or not o.value:
                continue
            pattern = "|".join(_bash_quote(f"{n} {s}") for n in c.names for s in o.strings)
            if o.value == "words":
                action = "_dockyard_reply " + " ".join(_shell_word(w) for w in o.words)
            elif o.value == "dir":
                action = "_dockyard_files -d"
            else:
                action = "_dockyard_files"
            L.append(f"        {pattern}) {action} ;;")
    L += [
        "    esac",
        "}",
        "",
        "_dockyard_positional() {  # KIND[:STATUS,...]: complete a positional argument",
        '    local kind="${1%%:*}" states=""',
        '    [[ "$1" == *:* ]] && states="${1#*:}"',
        '    case "$kind" in',
        "        container) _dockyard_reply \"$(_dockyard_containers ${states//,/ })\" ;;",
        "        image) _dockyard_reply \"$(_dockyard_images)\"; _dockyard_trim_colon ;;",
        "        object) _dockyard_reply \"$(_dockyard_containers)\" \"$(_dockyard_images)\"; _dockyard_trim_colon ;;",
        "        cp) _dockyard_reply \"$(_dockyard_containers | sed 's/$/:/')\"; _dockyard_files;"
        " compopt -o nospace 2>/dev/null; _dockyard_trim_colon ;;",
        "        choice) _dockyard_reply ${states//,/ } ;;",
        "        file) _dockyard_files ;;",
        "        directory) _dockyard_files -d ;;",
        "        command) ;;  # a command for inside the container: host commands mean nothing there",
        "    esac",
        "}",
        "",
        "_dockyard() {",
        "    local words cword cur prev opts valopts args",
        "    local _dockyard_bin _dockyard_root=() key=\"\" group=\"\" npos=0 rest=0 i w",
        "    _dockyard_words",
        '    _dockyard_bin="${words[0]}"',
        "    COMPREPLY=()",
        "    for ((i = 1; i < cword; i++)); do",
        '        w="${words[i]}"',
        '        if [[ -z "$key" ]]; then',
        '            case "$w" in',
        "                --root)",
        '                    if [[ "${words[i+1]}" == = ]]; then ((i++)); fi',
        '                    _dockyard_root=(--root "${words[i+1]}"); ((i++)); continue ;;',
        '                --root=*) _dockyard_root=("$w"); continue ;;',
        "                -*) continue ;;",
        "            esac",
        '            if [[ -n "$group" ]]; then key="$group $w"',
        f'            elif [[ " {" ".join(main.GROUPS)} " == *" $w "* ]]; then group="$w"; continue',
        '            else key="$w"',
        "            fi",
        '            _dockyard_spec "$key" || return 0',
        "            continue",
        "        fi",
        "        ((rest)) && continue",
        '        case "$w" in',
        "            -*=*) ;;",
        "            -*)",
        '                if [[ " $valopts " == *" $w "* ]]; then',
        '                    [[ "${words[i+1]}" == = ]] && ((i++))',
        "                    ((i++))",
        "                fi",
        "                ;;",
        "            *)",
        "                ((npos++))",
        '                local kinds=($args)',
        '                local k="${kinds[npos-1]:-${kinds[${#kinds[@]}-1]}}"',
        '                [[ "$k" == command* ]] && rest=1',
        "                ;;",
        "        esac",
        "    done",
        '    if [[ -z "$key" ]]; then',
        '        if [[ -n "$group" ]]; then',
        '            case "$group" in',
    ]
    for group, _, subs in groups():
        L.append(f'                {group}) _dockyard_reply {" ".join(s for s, _ in subs)} ;;')
    L += [
        "            esac",
        '        elif [[ "$prev" == --root ]]; then _dockyard_files -d',
        '        elif [[ "$cur" == -* ]]; then _dockyard_reply '
        + " ".join(s for strings, _, _ in GLOBAL_OPTIONS for s in strings),
        f"        else _dockyard_reply {' '.join(top)}",
        "        fi",
        "        return 0",
        "    fi",
        "    ((rest)) && return 0  # the container's command line: bash's default (file names)",
        '    if [[ -n "$valopts" && " $valopts " == *" $prev "* ]]; then',
        '        _dockyard_value "$key" "$prev"',
        "        return 0",
        "    fi",
        '    local kinds=($args) k=""',
        "    if ((${#kinds[@]})); then",
        '        k="${kinds[npos]:-}"',
        '        if [[ -z "$k" ]]; then',
        '            k="${kinds[${#kinds[@]}-1]}"',
        '            [[ "$k" == *+ ]] || k=""',
        "        fi",
        "    fi",
        '    if [[ "$cur" == -* && "$k" != command* ]]; then',
        "        _dockyard_reply $opts",
        "        return 0",
        "    fi",
        '    [[ -n "$k" ]] && _dockyard_positional "${k%+}"',
        "    return 0",
        "}",
        "",
        "complete -o default -F _dockyard dockyard",
        "",
    ]
    return "\n".join(L)


def _bash_arg(p: Positional) -> str:
    """A positional for the bash script: ``kind[:state,state][+]`` (``+``: may repeat)."""
    word = p.kind + (":" + ",".join(p.states) if p.states else "")
    return word + ("+" if p.repeats else "")


def _bash_quote(s: str) -> str:
    return f'"{s}"' if " " in s else s


def _shell_word(s: str) -> str:
    import shlex

    return shlex.quote(s)


# ---- zsh ------------------------------------------------------------------------------------
def zsh_script(cmds: list[Command] | None = None) -> str:
    cmds = commands() if cmds is None else cmds
    from dockyard.cli import main

    by_name = {n: c for c in cmds for n in c.names}
    L: list[str] = [
        "#compdef dockyard",
        "# zsh completion for dockyard, generated by `dockyard completion zsh` from the CLI's own parsers.",
        "# Install: dockyard completion zsh > \"${fpath[1]}/_dockyard\"   (then start a new shell)",
        "#      or: source <(dockyard completion zsh)   (after compinit)",
        "",
        "__dockyard_query() {",
        "  local -a root",
        "  [[ -n $__dockyard_root ]] && root=(--root $__dockyard_root)",
        "  _call_program dockyard ${__dockyard_bin:-dockyard} $root \"$@\" 2>/dev/null",
        "}",
        "",
        "__dockyard_containers() {  # [status=STATUS...] among the options _arguments passes",
        "  local -a names filters",
        "  local a",
        "  for a in \"$@\"; do [[ $a == status=* ]] && filters+=(--filter $a); done",
        "  names=(${(f)\"$(__dockyard_query ps -a $filters --format '{{.Names}}')\"})",
        "  _wanted containers expl container compadd -a names",
        "}",
        "",
        "__dockyard_images() {",
        "  local -a imgs",
        "  imgs=(${(f)\"$(__dockyard_query images --format '{{.Repository}}:{{.Tag}}')\"})",
        "  imgs=(${imgs:#*<none>*})",
        "  _wanted images expl image compadd -a imgs",
        "}",
        "",
        "__dockyard_objects() { __dockyard_containers; __dockyard_images }",
        "",
        "__dockyard_cp() {",
        "  local -a names",
        "  names=(${(f)\"$(__dockyard_query ps -a --format '{{.Names}}')\"})",
        "  _alternative 'containers:container:compadd -S : -a names' 'files:file:_files'",
        "}",
        "",
    ]
    for c in cmds:
        if c.error:
            continue
        L.append(f"{_zsh_func(c)}() {{")
        specs = [s for o in c.options for s in _zsh_option(o)]
        specs += _zsh_positionals(c.positionals)
        L.append("  _arguments -s -S \\")
        for s in specs:
            L.append(f"    {s} \\")
        L.append("    && return 0")
        L.append("  return 1")
        L.append("}")
        L.append("")
    for group, _desc, subs in groups():
        L.append(f"__dockyard_group_{group}() {{")
        L.append("  local -a subcommands")
        L.append("  subcommands=(")
        for sub, full in subs:
            sc = by_name.get(full)
            L.append(f"    {_zsh_quote(sub + ':' + _zsh_describe_text(sc.description if sc else ''))}")
        L.append("  )")
        L.append("  if (( CURRENT == 2 )); then")
        L.append(f"    _describe -t commands {_zsh_quote('dockyard ' + group + ' command')} subcommands")
        L.append("    return")
        L.append("  fi")
        L.append("  shift words; (( CURRENT-- ))")
        L.append("  curcontext=\"${curcontext%:*}-$words[1]:\"")
        L.append("  case $words[1] in")
        for sub, full in subs:
            sc = by_name.get(full)
            if sc is not None and not sc.error:
                L.append(f"    ({sub}) {_zsh_func(sc)} ;;")
        L.append("  esac")
        L.append("}")
        L.append("")
    L += [
        "_dockyard() {",
        "  local curcontext=\"$curcontext\" state line expl ret=1",
        "  local __dockyard_bin=$words[1] __dockyard_root=''",
        "  local i",
        "  for (( i = 2; i < CURRENT; i++ )); do",
        "    case $words[i] in",
        "      --root) __dockyard_root=$words[i+1] ;;",
        "      --root=*) __dockyard_root=${words[i]#--root=} ;;",
        "    esac",
        "  done",
        "  local -a commands",
        "  commands=(",
    ]
    for group, (desc, _) in main.GROUPS.items():
        L.append(f"    {_zsh_quote(group + ':' + _zsh_describe_text(desc))}")
    for name, (_, desc) in main.COMMANDS.items():
        L.append(f"    {_zsh_quote(name + ':' + _zsh_describe_text(desc))}")
    L += [
        "  )",
        "  _arguments -C \\",
        "    '--root=[Root of the state of Dockyard]:directory:_files -/' \\",
        "    '(-D --debug)'{-D,--debug}'[Show tracebacks for errors]' \\",
        "    '(- *)'{-v,--version}'[Print version information and quit]' \\",
        "    '(- *)'{-h,--help}'[Print usage]' \\",
        "    '1: :->command' \\",
        "    '*:: :->args' && ret=0",
        "  case $state in",
        "    (command) _describe -t commands 'dockyard command' commands && ret=0 ;;",
        "    (args)",
        "      curcontext=\"${curcontext%:*:*}:dockyard-$words[1]:\"",
        "      case $words[1] in",
    ]
    for group in main.GROUPS:
        L.append(f"        ({group}) __dockyard_group_{group} && ret=0 ;;")
    for name in main.COMMANDS:
        tc = by_name.get(name)
        if tc is not None and not tc.error:
            L.append(f"        ({name}) {_zsh_func(tc)} && ret=0 ;;")
    L += [
        "      esac ;;",
        "  esac",
        "  return ret",
        "}",
        "",
        'if [[ $zsh_eval_context[-1] == loadautofunc ]]; then',
        '  _dockyard "$@"',
        "else",
        "  compdef _dockyard dockyard",
        "fi",
        "",
    ]
    return "\n".join(L)


def _zsh_func(c: Command) -> str:
    return "__dockyard_cmd_" + c.target.split(":")[1].rstrip("_")


def _zsh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def _zsh_describe_text(s: str) -> str:
    return s.replace("\\", "\\\\").replace(":", "\\:")


def _zsh_help(s: str) -> str:
    return s.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def _zsh_value_action(o: Option) -> str:
    message = (o.metavar.strip("{}") if o.value != "words" else "value") or "value"
    message = message.replace(":", " ").replace(",", " ") if o.value != "words" else message
    if o.value == "words":
        action = "(" + " ".join(w.replace(" ", "\\ ").replace(":", "\\:") for w in o.words) + ")"
    elif o.value == "file":
        action = "_files"
    elif o.value == "dir":
        action = "_files -/"
    else:
        action = " "
    return f":{message}:{action}"


def _zsh_option(o: Option) -> list[str]:
    """One ``_arguments`` spec per option string; those of one option exclude each other."""
    out = []
    exclusion = "" if o.repeat else "(" + " ".join(o.strings) + ")"
    for s in o.strings:
        head = ("*" if o.repeat else exclusion) + s
        if o.takes_value:
            head += "=" if s.startswith("--") else "+"
        spec = head + (f"[{_zsh_help(o.help)}]" if o.help else "")
        if o.takes_value:
            spec += _zsh_value_action(o)
        out.append(_zsh_quote(spec))
    return out


def _zsh_positionals(ps: list[Positional]) -> list[str]:
    out = []
    actions = {"container": "__dockyard_containers", "image": "__dockyard_images",
               "object": "__dockyard_objects", "file": "_files", "directory": "_files -/", "cp": "__dockyard_cp",
               "none": " "}
    for i, p in enumerate(ps, 1):
        message = p.metavar.lower().replace(":", " ").replace("|", " or ") or p.dest
        if p.kind == "command":
            out.append(_zsh_quote("*::command line in the container:_default"))
            break
        action = actions.get(p.kind, " ")
        if p.kind == "choice":
            action = "(" + " ".join(p.states) + ")"
        if p.kind == "container" and p.states:
            action += " " + " ".join(f"status={x}" for x in p.states)
        if p.repeats:
            out.append(_zsh_quote(f"*:{message}:{action}"))
            break
        optional = ":" if p.nargs == "?" else ""
        out.append(_zsh_quote(f"{i}:{optional}{message}:{action}"))
    return out


# ---- the command ----------------------------------------------------------------------------
SHELLS = {"bash": bash_script, "zsh": zsh_script}


def completion(name: str, argv: list[str]) -> int:
    p = Parser(name, "bash|zsh", "Generate the shell completion script for bash or zsh")
    p.add_argument("shell", choices=sorted(SHELLS), help="The shell to generate the script for")
    a = p.parse_args(argv)
    sys.stdout.write(SHELLS[a.shell]())
    return 0


if __name__ == "__main__":  # python -m dockyard.cli.completion bash|zsh
    raise SystemExit(completion("completion", sys.argv[1:]))
