"""Settings: defaults, then ``/etc/dockyard/config.toml``, then the user's file, then the environment.

Precedence, lowest first (a later source replaces a whole value, lists included):

1. built-in defaults (``Settings()``);
2. the system file ``/etc/dockyard/config.toml``;
3. the user's file ``$XDG_CONFIG_HOME/dockyard/config.toml`` (``~/.config/dockyard/config.toml``);
4. environment variables (``DOCKYARD_ROOT``, ``DOCKYARD_RUNTIME``, ... see ``FIELDS``);
5. command-line flags (``--root``), which ``cli/main.py`` turns into environment variables first.

``DOCKYARD_CONFIG=PATH`` reads that one file instead of 2 and 3; ``DOCKYARD_CONFIG=`` (empty) reads
no file at all (tests use it to be independent of the machine's files).

The keys are those of Docker's ``daemon.json`` where Docker has one (``data-root``,
``registry-mirrors``, ``insecure-registries``, ``default-runtime``, ...), so a ``daemon.json`` turns
into a ``config.toml`` line by line; ``docs/config.sample.toml`` documents each.

The rest of Dockyard reads its settings from environment variables (``engine.default_root`` reads
``DOCKYARD_ROOT``, ``RegistryConfig.from_env`` reads ``DOCKYARD_REGISTRY_MIRRORS``...), so the CLI
makes files count by calling ``apply_to_environ(load())`` once, before a command runs: what a file
sets is exported under the variable that module already reads, and what the environment sets is
left alone.

Start-up time: this module is imported for every command, so it imports nothing but ``os`` at
import time, ``Settings`` is a plain class (``dataclasses`` costs ~12 ms to import), and ``tomllib``
is imported only when a configuration file exists.
"""

from __future__ import annotations

import os

from dockyard.errors import DockyardError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms at start-up
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, MutableMapping
    from typing import Any

SYSTEM_FILE = "/etc/dockyard/config.toml"

# attribute -> (file key, environment variable, kind). ``kind`` is how a value is checked and how it
# is written to the environment: "str", "path" (absolute), "list" (comma-separated), "map" (a table of
# strings; ``k=v,k2=v2`` in the environment), "int:LO:HI", or "choice:a|b|c".
FIELDS: dict[str, tuple[str, str, str]] = {
    "root": ("data-root", "DOCKYARD_ROOT", "path"),
    "run_root": ("exec-root", "DOCKYARD_RUN_ROOT", "path"),
    "runtime": ("default-runtime", "DOCKYARD_RUNTIME", "str"),
    "storage_driver": ("storage-driver", "DOCKYARD_SNAPSHOTTER", "choice:overlay|overlay2|copy|vfs"),
    "default_registry": ("default-registry", "DOCKYARD_DEFAULT_REGISTRY", "str"),
    "registry_mirrors": ("registry-mirrors", "DOCKYARD_REGISTRY_MIRRORS", "list"),
    "insecure_registries": ("insecure-registries", "DOCKYARD_INSECURE_REGISTRIES", "list"),
    "registry_endpoints": ("registry-endpoints", "DOCKYARD_REGISTRY_ENDPOINTS", "map"),
    "default_network": ("default-network", "DOCKYARD_DEFAULT_NETWORK", "str"),
    "log_level": ("log-level", "DOCKYARD_LOG_LEVEL", "choice:debug|info|warn|warning|error|fatal"),
    "max_concurrent_downloads": ("max-concurrent-downloads", "DOCKYARD_MAX_CONCURRENT_DOWNLOADS", "int:1:64"),
    "max_concurrent_uploads": ("max-concurrent-uploads", "DOCKYARD_MAX_CONCURRENT_UPLOADS", "int:1:64"),
}
_BY_KEY = {key: attr for attr, (key, _, _) in FIELDS.items()}


class ConfigError(DockyardError):
    """A configuration file or variable Dockyard cannot use; the message names the file and line."""


class Settings:
    """Every setting, with where each came from (``origin``: "default", a file path, or "env").

    A plain class with ``__slots__`` rather than a ``@dataclass``: see the module's docstring.
    """

    __slots__ = ("root", "run_root", "runtime", "storage_driver", "default_registry", "registry_mirrors",
                 "insecure_registries", "registry_endpoints", "default_network", "log_level",
                 "max_concurrent_downloads", "max_concurrent_uploads", "origin", "files")

    def __init__(self, *, root: str = "/var/lib/dockyard", run_root: str = "/run/dockyard",
                 runtime: str = "builtin", storage_driver: str = "overlay", default_registry: str = "docker.io",
                 registry_mirrors: list[str] | None = None, insecure_registries: list[str] | None = None,
                 registry_endpoints: dict[str, str] | None = None, default_network: str = "bridge",
                 log_level: str = "info", max_concurrent_downloads: int = 3, max_concurrent_uploads: int = 5) -> None:
        self.root = root                                  # Docker: data-root
        self.run_root = run_root                          # Docker: exec-root
        self.runtime = runtime                            # builtin, runc, crun, or a path
        self.storage_driver = storage_driver              # overlay (Docker's overlay2) or copy
        self.default_registry = default_registry          # where `busybox` comes from
        self.registry_mirrors: list[str] = list(registry_mirrors or [])
        self.insecure_registries: list[str] = list(insecure_registries or [])
        self.registry_endpoints: dict[str, str] = dict(registry_endpoints or {})  # registry -> base URL
        self.default_network = default_network           # bridge, host or none
        self.log_level = log_level
        self.max_concurrent_downloads = max_concurrent_downloads
        self.max_concurrent_uploads = max_concurrent_uploads
        self.origin: dict[str, str] = dict.fromkeys(FIELDS, "default")
        self.files: list[str] = []                        # the files read, in order

    def values(self) -> dict[str, Any]:
        return {attr: getattr(self, attr) for attr in FIELDS}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self.values() == other.values()

    def __repr__(self) -> str:
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in self.values().items()) + ")"


def user_file(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return os.path.join(base, "dockyard", "config.toml")


def config_files(environ: Mapping[str, str] | None = None) -> list[str]:
    """The files ``load`` reads, lowest precedence first (whether or not they exist)."""
    env = os.environ if environ is None else environ
    if "DOCKYARD_CONFIG" in env:
        chosen = env["DOCKYARD_CONFIG"]
        return [chosen] if chosen else []
    return [SYSTEM_FILE, user_file(env)]


def load(environ: Mapping[str, str] | None = None, files: list[str] | None = None) -> Settings:
    """Settings from the files (those of ``config_files`` unless given) and the environment.

    Cheap when no file exists: a stat per file and a few dictionary lookups.
    """
    env = os.environ if environ is None else environ
    s = Settings()
    explicit = files is None and bool(env.get("DOCKYARD_CONFIG"))
    for path in config_files(env) if files is None else files:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            if explicit:
                raise ConfigError(f"{path}: configuration file not found (DOCKYARD_CONFIG)")
            continue
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a directory, not a configuration file")
        except PermissionError:
            continue  # another user's file (the system file is 0600 root's): not ours to read
        _apply_file(s, path, data)
        s.files.append(path)
    for attr, (_, var, kind) in FIELDS.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        setattr(s, attr, _from_env(var, raw, kind))
        s.origin[attr] = "env"
    return s


def apply_to_environ(settings: Settings, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Export what the files set, as the variables the rest of Dockyard reads; returns their names.

    A variable already in the environment is never replaced: the environment beats the files.
    """
    env = os.environ if environ is None else environ
    exported: list[str] = []
    for attr, (_, var, kind) in FIELDS.items():
        if settings.origin.get(attr) in ("default", "env") or env.get(var):
            continue
        env[var] = _to_env(getattr(settings, attr), kind)
        exported.append(var)
    return exported


def describe(settings: Settings) -> Iterator[tuple[str, str, str]]:
    """(file key, value as the environment would hold it, origin) for each setting."""
    for attr, (key, _, kind) in FIELDS.items():
        yield key, _to_env(getattr(settings, attr), kind), settings.origin[attr]


# ---- parsing --------------------------------------------------------------------------------
def _apply_file(s: Settings, path: str, data: bytes) -> None:
    import tomllib

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(_decode_error(path, str(e), text))
    for key, value in doc.items():
        attr = _BY_KEY.get(key)
        line = _line_of(text, key)
        if attr is None:
            raise ConfigError(f"{path}:{line}: unknown setting {key!r}{_did_you_mean(key)}")
        _, _, kind = FIELDS[attr]
        try:
            setattr(s, attr, _check(value, kind))
        except ValueError as e:
            raise ConfigError(f"{path}:{line}: {key}: {e}")
        s.origin[attr] = path


def _decode_error(path: str, msg: str, text: str) -> str:
    """``path:3:8: invalid TOML: invalid value`` from tomllib's ``Invalid value (at line 3, column 8)``."""
    head, sep, where = msg.rpartition(" (at ")
    what = head[:1].lower() + head[1:]
    if sep and where.startswith("line "):
        nums = [w.strip(",)") for w in where.split() if w.strip(",)").isdigit()]
        return f"{path}:{':'.join(nums[:2])}: invalid TOML: {what}"
    if sep and where.startswith("end of document"):
        return f"{path}:{len(text.splitlines()) or 1}: invalid TOML: {what} at the end of the file"
    return f"{path}: invalid TOML: {msg}"


def _line_of(text: str, key: str) -> int:
    """The line on which a top-level ``key = ...`` is written (bare or quoted), else 1."""
    for i, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        for form in (key, f'"{key}"', f"'{key}'"):
            if stripped.startswith(form) and stripped[len(form):].lstrip().startswith("="):
                return i
            if stripped.startswith(f"[{form}]") or stripped.startswith(f"[{form}."):
                return i
    return 1


def _did_you_mean(key: str) -> str:
    import difflib

    norm = key.replace("_", "-").lower()
    if norm in _BY_KEY:
        return f" (did you mean {norm!r}?)"
    close = difflib.get_close_matches(norm, list(_BY_KEY), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known settings: {', '.join(_BY_KEY)})"


def _check(value: Any, kind: str) -> Any:
    """A file's value, checked against its kind; ValueError says what was expected."""
    if kind == "list":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(x, str) and x.strip() for x in value):
            raise ValueError(f"expected a list of strings, like [\"a\", \"b\"], not {_show(value)}")
        return [x.strip() for x in value]
    if kind == "map":
        if not isinstance(value, dict) or not all(isinstance(v, str) and v.strip() for v in value.values()):
            raise ValueError('expected a table of strings, like { "docker.io" = "http://127.0.0.1:5000" }, '
                             f"not {_show(value)}")
        return {str(k).strip(): v.strip() for k, v in value.items()}
    if kind.startswith("int:"):
        lo, hi = (int(x) for x in kind.split(":")[1:])
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"expected a whole number from {lo} to {hi}, not {_show(value)}")
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, not {_show(value)}")
    value = value.strip()
    if kind == "path" and not value.startswith("/"):
        raise ValueError(f"expected an absolute path, not {value!r}")
    if kind.startswith("choice:"):
        choices = kind.split(":", 1)[1].split("|")
        if value.lower() not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, not {value!r}")
        value = value.lower()
        if value in ("overlay2",):
            value = "overlay"
        elif value == "vfs":
            value = "copy"
    return value


def _from_env(var: str, raw: str, kind: str) -> Any:
    if kind == "list":
        return [x.strip() for x in raw.split(",") if x.strip()]
    if kind == "map":
        pairs = (x.partition("=") for x in raw.split(",") if x.strip())
        return {k.strip(): v.strip() for k, _, v in pairs if v.strip()}
    if kind.startswith("int:"):
        try:
            return _check(int(raw.strip()), kind)
        except ValueError:
            lo, hi = kind.split(":")[1:]
            raise ConfigError(f"{var}={raw!r}: expected a whole number from {lo} to {hi}")
    if kind == "path":
        return os.path.abspath(raw)
    if kind.startswith("choice:"):
        try:
            return _check(raw, kind)
        except ValueError as e:
            raise ConfigError(f"{var}={raw!r}: {e}")
    return raw


def _to_env(value: Any, kind: str) -> str:
    if kind == "list":
        return ",".join(value)
    if kind == "map":
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _show(value: Any) -> str:
    kind = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)
    return f"{kind} ({value!r})" if not isinstance(value, dict) else kind
