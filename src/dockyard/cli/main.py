"""Entry point: global flags, then one command, whose module is imported only when it runs.

Start-up time is a feature: ``dockyard --version`` imports nothing but this module, and a command
builds the argument parser for itself alone.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import NoReturn

# name -> (module, description). Group commands map to a dict of sub-commands.
COMMANDS: dict[str, tuple[str, str]] = {
    "images": ("dockyard.cli.images:images", "List images"),
    "import": ("dockyard.cli.images:import_", "Import the contents from a tarball to create a filesystem image"),
    "tag": ("dockyard.cli.images:tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "rmi": ("dockyard.cli.images:rmi", "Remove one or more images"),
    "history": ("dockyard.cli.images:history", "Show the history of an image"),
    "save": ("dockyard.cli.images:save", "Save one or more images to a tar archive"),
    "load": ("dockyard.cli.images:load", "Load an image from a tar archive or STDIN"),
    "inspect": ("dockyard.cli.images:inspect", "Return low-level information on Dockyard objects"),
    "run": ("dockyard.cli.containers:run", "Create and run a new container from an image"),
    "create": ("dockyard.cli.containers:create", "Create a new container"),
    "start": ("dockyard.cli.containers:start", "Start one or more stopped containers"),
    "ps": ("dockyard.cli.containers:ps", "List containers"),
    "stop": ("dockyard.cli.containers:stop", "Stop one or more running containers"),
    "restart": ("dockyard.cli.containers:restart", "Restart one or more containers"),
    "kill": ("dockyard.cli.containers:kill", "Kill one or more running containers"),
    "rm": ("dockyard.cli.containers:rm", "Remove one or more containers"),
    "wait": ("dockyard.cli.containers:wait", "Block until one or more containers stop, then print their exit codes"),
    "logs": ("dockyard.cli.containers:logs", "Fetch the logs of a container"),
    "exec": ("dockyard.cli.containers:exec_", "Execute a command in a running container"),
    "attach": ("dockyard.cli.containers:attach", "Attach to a running container"),
    "commit": ("dockyard.cli.containers:commit", "Create a new image from a container's changes"),
    "pause": ("dockyard.cli.containers:pause", "Pause all processes within one or more containers"),
    "unpause": ("dockyard.cli.containers:unpause", "Unpause all processes within one or more containers"),
    "rename": ("dockyard.cli.containers:rename", "Rename a container"),
    "top": ("dockyard.cli.containers:top", "Display the running processes of a container"),
    "diff": ("dockyard.cli.containers:diff", "Inspect changes to files or directories on a container's filesystem"),
    "cp": ("dockyard.cli.containers:cp", "Copy files/folders between a container and the local filesystem"),
    "export": ("dockyard.cli.containers:export", "Export a container's filesystem as a tar archive"),
    "port": ("dockyard.cli.port:port", "List port mappings or a specific mapping for the container"),
    "pull": ("dockyard.cli.registry:pull", "Download an image from a registry"),
    "push": ("dockyard.cli.registry:push", "Upload an image to a registry"),
    "login": ("dockyard.cli.registry:login", "Log in to a registry"),
    "logout": ("dockyard.cli.registry:logout", "Log out from a registry"),
    "search": ("dockyard.cli.registry:search", "Search a registry for images"),
    "build": ("dockyard.cli.build:build", "Build an image from a Dockerfile"),
    "version": ("dockyard.cli.system:version", "Show the Dockyard version information"),
    "info": ("dockyard.cli.system:info", "Display system-wide information"),
    "completion": ("dockyard.cli.completion:completion", "Generate the autocompletion script for the specified shell"),
}
GROUPS: dict[str, tuple[str, dict[str, str]]] = {
    "image": ("Manage images", {
        "ls": "images", "list": "images", "import": "import", "tag": "tag", "rm": "rmi", "remove": "rmi",
        "history": "history", "save": "save", "load": "load", "inspect": "dockyard.cli.images:image_inspect",
        "prune": "dockyard.cli.images:image_prune", "pull": "pull", "push": "push", "build": "build"}),
    "container": ("Manage containers", {
        "ls": "ps", "list": "ps", "ps": "ps", "run": "run", "create": "create", "start": "start", "stop": "stop",
        "restart": "restart", "kill": "kill", "rm": "rm", "remove": "rm", "wait": "wait", "logs": "logs",
        "exec": "exec", "attach": "attach", "commit": "commit", "pause": "pause", "unpause": "unpause",
        "rename": "rename", "top": "top", "diff": "diff", "cp": "cp", "export": "export", "port": "port",
        "inspect": "dockyard.cli.containers:container_inspect",
        "prune": "dockyard.cli.containers:container_prune"}),
    "system": ("Manage Dockyard", {
        "df": "dockyard.cli.images:system_df", "info": "info",
        "prune": "dockyard.cli.system:system_prune"}),
    "registry": ("Run Dockyard's registry server", {"serve": "dockyard.cli.registry:serve"}),
    "network": ("Manage networks", {
        "create": "dockyard.cli.networks:create", "ls": "dockyard.cli.networks:ls", "list": "dockyard.cli.networks:ls",
        "inspect": "dockyard.cli.networks:inspect", "rm": "dockyard.cli.networks:rm",
        "remove": "dockyard.cli.networks:rm", "connect": "dockyard.cli.networks:connect",
        "disconnect": "dockyard.cli.networks:disconnect", "prune": "dockyard.cli.networks:prune"}),
    "volume": ("Manage volumes", {
        "create": "dockyard.cli.volumes:create", "ls": "dockyard.cli.volumes:ls", "list": "dockyard.cli.volumes:ls",
        "inspect": "dockyard.cli.volumes:inspect", "rm": "dockyard.cli.volumes:rm",
        "remove": "dockyard.cli.volumes:rm", "prune": "dockyard.cli.volumes:prune"}),
}


def _usage() -> str:
    lines = ["Usage:  dockyard [OPTIONS] COMMAND", "",
             "A Docker-compatible container engine, with no daemon", "",
             "Options:",
             "      --root string   Root of Dockyard's state (default \"/var/lib/dockyard\"; env DOCKYARD_ROOT)",
             "  -D, --debug         Show tracebacks for errors",
             "  -v, --version       Print version information and quit", "",
             "Management Commands:"]
    lines += [f"  {g:<11} {d}" for g, (d, _) in GROUPS.items()]
    lines += ["", "Commands:"]
    lines += [f"  {c:<11} {d}" for c, (_, d) in COMMANDS.items()]
    lines += ["", "Run 'dockyard COMMAND --help' for more information on a command."]
    return "\n".join(lines)


def _resolve(argv: list[str]) -> tuple[str, str, list[str]]:
    """(display name, "module:function", remaining args) for the command in ``argv``."""
    name, rest = argv[0], argv[1:]
    if name in GROUPS:
        desc, subs = GROUPS[name]
        if not rest or rest[0] in ("-h", "--help"):
            print(f"Usage:  dockyard {name} COMMAND\n\n{desc}\n\nCommands:")
            for s, target in subs.items():
                print(f"  {s:<10} {COMMANDS[target][1] if target in COMMANDS else ''}".rstrip())
            raise SystemExit(0 if rest else 1)
        sub = rest[0]
        if sub not in subs:
            _die(f"dockyard {name}: '{sub}' is not a dockyard {name} command.\n"
                 f"See 'dockyard {name} --help'", 1)
        target = subs[sub]
        if ":" in target:
            return f"{name} {sub}", target, rest[1:]
        return f"{name} {sub}", COMMANDS[target][0], rest[1:]
    if name not in COMMANDS:
        _die(f"dockyard: '{name}' is not a dockyard command.\nSee 'dockyard --help'", 1)
    return name, COMMANDS[name][0], rest


def _die(msg: str, code: int) -> None:
    sys.stderr.write(msg + "\n")
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the process's entry point (not a test calling in)
        import gc

        # A short-lived process: collect garbage every 100k allocations rather than 700 (imports alone make
        # ~100k objects), and skip the full collection over every module's objects at exit.
        gc.set_threshold(100_000)
        try:
            code = _main(argv)
        except SystemExit as e:
            if not isinstance(e.code, int | None):
                raise  # a message: Python prints it
            code = e.code or 0
        finally:
            gc.freeze()
        _exit_now(code)
    return _main(argv)


def _exit_now(code: int) -> NoReturn:
    """End the process without the interpreter's teardown (~3 ms of freeing every module) when
    nothing is left for it to do: no atexit callbacks (``weakref.finalize``, ``logging``, temp
    directories register one) and no other thread to wait for."""
    import atexit

    pending = getattr(atexit, "_ncallbacks", None)  # CPython's; elsewhere, the ordinary exit
    threading = sys.modules.get("threading")
    if pending is None or pending() or (threading is not None and threading.active_count() > 1):
        raise SystemExit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:  # None once a closed pipe has been dealt with
                stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)


def _main(argv: list[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = False
    root: str | None = None
    while args and args[0].startswith("-"):
        a = args.pop(0)
        if a in ("-v", "--version"):
            from dockyard import __version__

            print(f"Dockyard version {__version__}")
            return 0
        if a in ("-D", "--debug"):
            debug = True
        elif a == "--root" and args:
            root = args.pop(0)
        elif a.startswith("--root="):
            root = a.split("=", 1)[1]
        elif a in ("-h", "--help"):
            print(_usage())
            return 0
        else:
            _die(f"unknown flag: {a}\nSee 'dockyard --help'.", 125)
    if not args:
        print(_usage())
        return 0
    if root:
        os.environ["DOCKYARD_ROOT"] = os.path.abspath(root)
    if debug:
        os.environ["DOCKYARD_DEBUG"] = "1"
    from dockyard import config

    try:
        config.apply_to_environ(config.load())
    except config.ConfigError as e:
        _die(f"Error: {e}", 1)
    name, target, rest = _resolve(args)
    module_name, func_name = target.split(":")
    from dockyard.errors import DockyardError

    try:
        # __import__ rather than importlib.import_module: the importlib package (with warnings) is
        # ~0.5 ms of every command, for the same import
        __import__(module_name)
        command = getattr(sys.modules[module_name], func_name)
        return int(command(name, rest) or 0)
    except DockyardError as e:
        if debug:
            import traceback

            traceback.print_exc()
        msg = str(e)
        if e.hint:
            msg += f"\n{e.hint}"
        sys.stderr.write(f"Error: {msg}\n")
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = None
        finally:
            return 0  # noqa: B012 - `dockyard images | head` is not an error
    except Exception as e:  # a bug: one line unless --debug
        if debug:
            raise
        sys.stderr.write(f"Error: internal error: {type(e).__name__}: {e} (run with --debug for details)\n")
        return 1
