"""Config-only Dockerfile instructions applied to an image config.

``docker import -c``, ``docker commit -c`` and the builder all change an image's ``config`` the
same way; this module is that one way. Instructions that need a container (RUN, COPY, ADD) are
not here.
"""

from __future__ import annotations

from dockyard.errors import BuildError, InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Mapping  # (it imports collections: annotations only)
    from typing import Any

# What `docker commit -c` / `docker import -c` accept (moby's validCommitCommands).
CHANGE_COMMANDS = {"cmd", "entrypoint", "env", "expose", "label", "onbuild", "stopsignal", "user",
                   "volume", "workdir"}
DEFAULT_SHELL = ["/bin/sh", "-c"]


def _env_map(config: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in config.get("Env") or []:
        k, _, v = e.partition("=")
        out[k] = v
    return out


def _set_env(config: dict[str, Any], key: str, value: str) -> None:
    env = [e for e in (config.get("Env") or []) if e.partition("=")[0] != key]
    env.append(f"{key}={value}")
    config["Env"] = env


def _command_form(instr: Any, config: Mapping[str, Any]) -> list[str]:
    if instr.json_form:
        return list(instr.args)
    shell = list(config.get("Shell") or DEFAULT_SHELL)
    return [*shell, " ".join(instr.args)]


def apply_instruction(config: dict[str, Any], instr: Any, *, expand_env: Mapping[str, str] | None = None,
                      where: str = "") -> None:
    """Apply one parsed instruction (``dockyard.build.dockerfile.Instruction``) to ``config`` in place.

    ``expand_env`` holds the variables available for ``$VAR`` expansion (the build args and the
    config's own ``Env``); words are expanded as Docker does for that instruction.
    """
    from dockyard.build.shell import expand

    env = dict(_env_map(config))
    if expand_env:
        env = {**expand_env, **env}

    def x(word: str) -> str:
        return expand(word, env)

    cmd = instr.cmd
    if cmd == "cmd":
        config["Cmd"] = _command_form(instr, config)
    elif cmd == "entrypoint":
        config["Entrypoint"] = _command_form(instr, config)
        # Docker resets the Cmd the base image set when ENTRYPOINT changes (a later CMD sets it again).
        config["Cmd"] = None
    elif cmd in ("env", "label"):
        args = list(instr.args)
        if len(args) % 3:
            raise BuildError(f"{where}{cmd.upper()} needs key=value pairs")
        for i in range(0, len(args), 3):
            key, value = x(args[i]), x(args[i + 1])
            if cmd == "env":
                _set_env(config, key, value)
                env[key] = value
            else:
                labels = dict(config.get("Labels") or {})
                labels[key] = value
                config["Labels"] = labels
    elif cmd == "workdir":
        if not instr.args:
            raise BuildError(f"{where}WORKDIR requires exactly one argument")
        path = x(instr.args[0])
        if not path.startswith("/"):
            path = (config.get("WorkingDir") or "/").rstrip("/") + "/" + path
        config["WorkingDir"] = path
    elif cmd == "user":
        if len(instr.args) != 1:
            raise BuildError(f"{where}USER requires exactly one argument")
        config["User"] = x(instr.args[0])
    elif cmd == "expose":
        ports = dict(config.get("ExposedPorts") or {})
        for word in instr.args:
            for p in x(word).split():
                proto = "tcp"
                if "/" in p:
                    p, proto = p.split("/", 1)
                    proto = proto.lower()
                if not p.replace("-", "").isdigit():
                    raise BuildError(f"{where}invalid containerPort: {p}")
                ports[f"{p}/{proto}"] = {}
        config["ExposedPorts"] = ports
    elif cmd == "volume":
        vols = dict(config.get("Volumes") or {})
        for v in instr.args:
            v = x(v)
            if not v:
                raise BuildError(f"{where}VOLUME specified can not be an empty string")
            vols[v] = {}
        config["Volumes"] = vols
    elif cmd == "stopsignal":
        config["StopSignal"] = x(instr.args[0]) if instr.args else ""
    elif cmd == "onbuild":
        if not instr.args:
            raise BuildError(f"{where}ONBUILD requires at least one argument")
        config["OnBuild"] = [*(config.get("OnBuild") or []), instr.args[0]]
    elif cmd == "shell":
        if not instr.json_form:
            raise BuildError(f"{where}SHELL requires the arguments to be in JSON form")
        config["Shell"] = list(instr.args)
    elif cmd == "healthcheck":
        config["Healthcheck"] = getattr(instr, "healthcheck", None) or {"Test": ["NONE"]}
    elif cmd == "maintainer":
        pass  # recorded as the image's author by the builder
    else:
        raise BuildError(f"{where}{cmd.upper()} cannot be applied to a config")


def apply_changes(config: Mapping[str, Any], changes: list[str]) -> dict[str, Any]:
    """``-c 'CMD ["sh"]'`` strings, as ``docker import``/``commit`` take them; returns a new config."""
    import copy

    from dockyard.build.dockerfile import parse

    out = copy.deepcopy(dict(config))
    for change in changes:
        try:
            parsed = parse(change, filename="change")
        except BuildError as e:
            raise InvalidArgument(f"invalid change {change!r}: {e}")
        for instr in parsed.instructions:
            if instr.cmd not in CHANGE_COMMANDS:
                raise InvalidArgument(f"{instr.cmd.upper()} is not a valid change command")
            try:
                apply_instruction(out, instr)
            except BuildError as e:
                raise InvalidArgument(f"invalid change {change!r}: {e}")
    return out
