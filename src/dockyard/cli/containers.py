"""Container commands: run, create, start, ps, stop, kill, rm, wait, logs, exec, commit, and friends."""

from __future__ import annotations

import os
import sys
import time

from dockyard import jsonc
from dockyard.cli import common, quickargs
from dockyard.cli.common import engine, print_json, report
from dockyard.cli.quickargs import APPEND, ONE, REST, SOME, STORE, STORE_TRUE
from dockyard.errors import DockyardError, InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.quickargs import Flags


# ---- run / create ---------------------------------------------------------------------------
#: ``run`` and ``create``'s flags, read by argparse and by ``quickargs.parse`` alike (see quickargs.Flag):
#: (option strings, action, default, type, choices, help).
RUN_FLAGS: Flags = (
    (("-d", "--detach"), STORE_TRUE, False, None, None, "Run container in background and print container ID"),
    (("-i", "--interactive"), STORE_TRUE, False, None, None, "Keep STDIN open even if not attached"),
    (("-t", "--tty"), STORE_TRUE, False, None, None, "Allocate a pseudo-TTY"),
    (("--rm",), STORE_TRUE, False, None, None, "Automatically remove the container when it exits"),
    (("--name",), STORE, None, None, None, "Assign a name to the container"),
    (("-e", "--env"), APPEND, (), None, None, "Set environment variables"),
    (("--env-file",), APPEND, (), None, None, "Read in a file of environment variables"),
    (("-w", "--workdir"), STORE, "", None, None, "Working directory inside the container"),
    (("-u", "--user"), STORE, "", None, None, "Username or UID (format: <name|uid>[:<group|gid>])"),
    (("--group-add",), APPEND, (), None, None, "Add additional groups to join"),
    (("--entrypoint",), STORE, None, None, None, "Overwrite the default ENTRYPOINT of the image"),
    (("-h", "--hostname"), STORE, "", None, None, "Container host name"),
    (("-v", "--volume"), APPEND, (), None, None, "Bind mount a volume"),
    (("--mount",), APPEND, (), None, None, "Attach a filesystem mount to the container"),
    (("--tmpfs",), APPEND, (), None, None, "Mount a tmpfs directory"),
    (("--network", "--net"), STORE, "", None, None, "Connect a container to a network"),
    (("-p", "--publish"), APPEND, (), None, None, "Publish a container's port(s) to the host"),
    (("-P", "--publish-all"), STORE_TRUE, False, None, None, "Publish all exposed ports to random ports"),
    (("--memory", "-m"), STORE, "", None, None, "Memory limit"),
    (("--memory-swap",), STORE, "", None, None, "Swap limit equal to memory plus swap: -1 for unlimited"),
    (("--cpus",), STORE, "", None, None, "Number of CPUs"),
    (("--cpu-shares", "-c"), STORE, 0, "int", None, "CPU shares (relative weight)"),
    (("--cpuset-cpus",), STORE, "", None, None, "CPUs in which to allow execution (0-3, 0,1)"),
    (("--pids-limit",), STORE, 0, "int", None, "Tune container pids limit (set -1 for unlimited)"),
    (("--shm-size",), STORE, "", None, None, "Size of /dev/shm"),
    (("--read-only",), STORE_TRUE, False, None, None, "Mount the container's root filesystem as read only"),
    (("--privileged",), STORE_TRUE, False, None, None, "Give extended privileges to this container"),
    (("--cap-add",), APPEND, (), None, None, "Add Linux capabilities"),
    (("--cap-drop",), APPEND, (), None, None, "Drop Linux capabilities"),
    (("--security-opt",), APPEND, (), None, None, "Security Options"),
    (("--sysctl",), APPEND, (), None, None, "Sysctl options"),
    (("--ulimit",), APPEND, (), None, None, "Ulimit options"),
    (("--device",), APPEND, (), None, None, "Add a host device to the container"),
    (("--device-cgroup-rule",), APPEND, (), None, None, "Add a rule to the cgroup allowed devices list"),
    (("--gpus",), APPEND, (), None, None, "GPU devices to add to the container ('all' to pass all GPUs)"),
    (("--ipc",), STORE, "", None, None, "IPC mode to use"),
    (("--pid",), STORE, "", None, None, "PID namespace to use"),
    (("--uts",), STORE, "", None, None, "UTS namespace to use"),
    (("--init",), STORE_TRUE, None, None, None, "Run an init inside the container"),
    (("--label", "-l"), APPEND, (), None, None, "Set meta data on a container"),
    (("--cidfile",), STORE, "", None, None, "Write the container ID to the file"),
    (("--stop-signal",), STORE, "", None, None, "Signal to stop the container"),
    (("--stop-timeout",), STORE, None, "int", None, "Timeout (in seconds) to stop a container"),
    (("--oom-score-adj",), STORE, 0, "int", None, "Tune host's OOM preferences (-1000 to 1000)"),
    (("--runtime",), STORE, "", None, None, "Runtime to use for this container (builtin, runc, crun)"),
    (("--platform",), STORE, "", None, None, "Set platform if server is multi-platform capable"),
    (("--pull",), STORE, "missing", None, ("always", "missing", "never"), "Pull image before running"),
    (("-a", "--attach"), APPEND, (), None, None, "Attach to STDIN, STDOUT or STDERR"),
    (("--detach-keys",), STORE, "", None, None, "Override the key sequence for detaching a container"),
    (("--add-host",), APPEND, (), None, None, "Add a custom host-to-IP mapping (host:ip)"),
    (("--dns",), APPEND, (), None, None, "Set custom DNS servers"),
    (("-q", "--quiet"), STORE_TRUE, False, None, None, "Suppress the pull output"),
    (("--volumes-from",), APPEND, (), None, None, "Mount volumes from the specified container(s)"),
    (("--x11",), STORE_TRUE, False, None, None, "Share the host's X11/Wayland display (socket, cookie, render nodes)"),
    (("--expose",), APPEND, (), None, None, "Expose a port or a range of ports"),
    (("--network-alias",), APPEND, (), None, None, "Add network-scoped alias for the container"),
    (("--ip",), STORE, "", None, None, "IPv4 address (e.g., 172.30.100.104)"),
    (("image",), ONE, None, None, None, None),
    (("command",), REST, None, None, None, None),
)


#: ``start``'s.
START_FLAGS: Flags = (
    (("containers",), SOME, None, None, None, None),
    (("-a", "--attach"), STORE_TRUE, False, None, None, "Attach STDOUT/STDERR and forward signals"),
    (("-i", "--interactive"), STORE_TRUE, False, None, None, "Attach container's STDIN"),
    (("--detach-keys",), STORE, "", None, None, None),
)

#: ``ps``'s.
PS_FLAGS: Flags = (
    (("-a", "--all"), STORE_TRUE, False, None, None, "Show all containers (default shows just running)"),
    (("-q", "--quiet"), STORE_TRUE, False, None, None, "Only display container IDs"),
    (("-l", "--latest"), STORE_TRUE, False, None, None, "Show the latest created container"),
    (("-n", "--last"), STORE, -1, "int", None, "Show n last created containers"),
    (("--no-trunc",), STORE_TRUE, False, None, None, "Don't truncate output"),
    (("-s", "--size"), STORE_TRUE, False, None, None, "Display total file sizes"),
    (("-f", "--filter"), APPEND, (), None, None, "Filter output based on conditions provided"),
    (("--format",), STORE, None, None, None, "Format output using a Go template"),
)


def _args(name: str, argv: list[str], usage: str, description: str, flags: Flags) -> Any:
    """``argv`` read by ``quickargs`` (no argparse: ~3 ms of ``run``), or by the argparse parser built
    from the same table when the quick reader is not sure: its errors, ``--help`` and introspection."""
    return quickargs.read(name, argv, usage, description, flags)

def _options(a: Any) -> Any:
    from dockyard.runtime import runopts as ro

    opts = ro.RunOptions()
    opts.image = a.image
    opts.cmd = list(a.command)
    if a.entrypoint is not None:
        opts.entrypoint = [a.entrypoint] if a.entrypoint else [""]
    env: list[str] = []
    for f in a.env_file:
        env += ro.parse_env_file(f, os.environ)
    env += ro.parse_env(a.env, os.environ)
    opts.env = env
    opts.workdir = a.workdir
    if a.workdir and not a.workdir.startswith("/"):
        raise InvalidArgument(f"the working directory '{a.workdir}' is invalid, it needs to be an absolute path")
    opts.user = a.user
    opts.group_add = list(a.group_add)
    opts.hostname = a.hostname
    opts.tty = a.tty
    opts.stdin_open = a.interactive
    opts.name = a.name or ""
    opts.labels = dict(ro.parse_label(x) for x in a.label)
    opts.mounts = [ro.parse_volume(v, cwd=os.getcwd()) for v in a.volume] + [
        ro.parse_mount(m, cwd=os.getcwd()) for m in a.mount]
    for m in opts.mounts:
        if m.type == "bind" and not os.path.exists(m.source):
            raise InvalidArgument(
                f'invalid mount config for type "bind": bind source path does not exist: {m.source}')
    opts.volumes_from = list(a.volumes_from)
    opts.x11 = a.x11
    opts.tmpfs = dict(ro.parse_tmpfs(t) for t in a.tmpfs)
    opts.read_only = a.read_only
    opts.network = ro.parse_network_mode(a.network or os.environ.get("DOCKYARD_DEFAULT_NETWORK", ""))
    opts.publish = [b for p in a.publish for b in ro.parse_port(p)]
    opts.publish_all = a.publish_all
    opts.expose = [e for x in a.expose for e in ro.parse_expose(x)]
    opts.network_aliases = list(a.network_alias)
    opts.ip = a.ip
    opts.memory = ro.parse_memory(a.memory) if a.memory else 0
    opts.memory_swap = ro.parse_memory_swap(a.memory_swap) if a.memory_swap else 0
    opts.cpus = ro.parse_cpus(a.cpus) if a.cpus else 0
    opts.cpu_shares = a.cpu_shares
    opts.cpuset_cpus = a.cpuset_cpus
    opts.pids_limit = a.pids_limit
    opts.shm_size = ro.parse_shm_size(a.shm_size) if a.shm_size else 0
    opts.privileged = a.privileged
    opts.cap_add = [ro.parse_cap(c) for c in a.cap_add]
    opts.cap_drop = [ro.parse_cap(c) for c in a.cap_drop]
    opts.security_opt = list(a.security_opt)
    for s in a.security_opt:
        ro.parse_security_opt(s)
    opts.sysctls = dict(ro.parse_sysctl(s) for s in a.sysctl)
    opts.ulimits = [ro.parse_ulimit(u) for u in a.ulimit]
    plain: list[str] = []
    cdi: list[str] = []
    if a.device:  # dockyard.runtime.devices is not worth importing for nothing
        from dockyard.runtime import devices

        plain, cdi = devices.split_cdi_devices(a.device)
    opts.devices = [ro.parse_device(d) for d in plain]
    opts.device_cgroup_rules = [ro.parse_device_cgroup_rule(r) for r in a.device_cgroup_rule]
    opts.gpus = [ro.parse_gpus(g) for g in a.gpus]
    if cdi:
        from dockyard.runtime import devices

        opts.gpus.append(devices.cdi_request(cdi))
    opts.ipc = ro.validate_ipc_mode(a.ipc) if a.ipc else ""
    opts.pid = ro.validate_pid_mode(a.pid) if a.pid else ""
    opts.uts = ro.validate_uts_mode(a.uts) if a.uts else ""
    opts.init = a.init
    opts.stop_signal = a.stop_signal
    opts.stop_timeout = a.stop_timeout
    opts.auto_remove = a.rm
    opts.detach = a.detach
    opts.extra_hosts = list(a.add_host)
    opts.dns = list(a.dns)
    if a.oom_score_adj:
        opts.oom_score_adj = a.oom_score_adj
    if a.runtime:
        opts.runtime = a.runtime
    return opts


def _create(eng: Any, a: Any) -> str:
    from dockyard.ops import containers as ops

    opts = _options(a)
    if a.pull == "always":
        from dockyard.ops.pull import pull

        pull(eng, a.image, quiet=a.quiet, out=sys.stderr)
    if a.pull == "never":
        eng.resolve_image(a.image)
    cid = ops.create(eng, a.image, opts, name=a.name, out=sys.stderr)
    if a.cidfile:
        if os.path.exists(a.cidfile):
            raise InvalidArgument(f"container ID file found, make sure the other container isn't running or "
                                  f"delete {a.cidfile}")
        with open(a.cidfile, "w") as f:
            f.write(cid)
    return cid


def run(name: str, argv: list[str]) -> int:
    a = _args(name, argv, "[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a new container from an image",
              RUN_FLAGS)
    from dockyard.ops import containers as ops

    # The monitor is forked first, before the database is opened: it loads the runtime while the
    # container is created (see ops.containers.prefork_monitor).
    pf = ops.prefork_monitor()
    try:
        with engine() as eng:
            try:
                cid = _create(eng, a)
                if a.detach:
                    try:
                        ops.start(eng, cid, prefork=pf)
                    except DockyardError:
                        if a.rm:
                            ops.remove(eng, ops.resolve(eng, cid), force=True)
                        raise
                    print(cid)
                    return 0
                try:
                    sock_path = ops.start(eng, cid, wait_attach=True, prefork=pf)
                except DockyardError:
                    if a.rm:
                        ops.remove(eng, ops.resolve(eng, cid), force=True)
                    raise
            except DockyardError as e:
                if e.exit_code == 1:
                    e.exit_code = 125  # `docker run` itself failing
                raise
    finally:
        if pf is not None:
            pf.close()
    return _attach_and_wait(sock_path, tty=a.tty, stdin=a.interactive)


def _attach_and_wait(sock_path: Any, *, tty: bool, stdin: bool) -> int:
    from dockyard.runtime import attach

    sock = attach.connect(sock_path)
    try:
        code = attach.relay(sock, tty=tty, stdin=stdin)
    finally:
        sock.close()
    if code == attach.DETACHED:
        return 0
    return code


def create(name: str, argv: list[str]) -> int:
    a = _args(name, argv, "[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container", RUN_FLAGS)
    try:
        with engine() as eng:
            print(_create(eng, a))
    except DockyardError as e:
        if e.exit_code == 1:
            e.exit_code = 125
        raise
    return 0


def start(name: str, argv: list[str]) -> int:
    a = _args(name, argv, "[OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers", START_FLAGS)
    from dockyard.ops import containers as ops

    if (a.attach or a.interactive) and len(a.containers) > 1:
        raise InvalidArgument("you cannot start and attach multiple containers at once")
    status = 0
    with engine() as eng:
        for n in a.containers:
            try:
                c = ops.resolve(eng, n)
                if a.attach or a.interactive:
                    sock_path = ops.start(eng, c["id"], wait_attach=True)
                    return _attach_and_wait(sock_path, tty=c["config"].get("tty", False),
                                            stdin=a.interactive and c["config"].get("open_stdin", False))
                ops.start(eng, c["id"])
                print(n)
            except DockyardError as e:
                report(e)
                status = 1
    return status


def _status_text(c: dict[str, Any], now: float) -> str:
    from dockyard.cli.format import ago, human_duration  # not at import: `run` never formats (math, ~0.3 ms)

    st = c["state"]
    s = st.get("status")
    if s == "running":
        return "Up " + human_duration(now - (st.get("started_at") or now))
    if s == "paused":
        return "Up " + human_duration(now - (st.get("started_at") or now)) + " (Paused)"
    if s == "exited":
        return f"Exited ({st.get('exit_code', 0)}) " + ago(st.get("finished_at"), now)
    if s == "dead":
        return "Dead"
    return "Created"


def _ports_text(c: dict[str, Any]) -> str:
    """``0.0.0.0:8080->80/tcp, 443/tcp``: Docker's PORTS column from the container's NetworkSettings."""
    ports = ((c["state"].get("network") or {}).get("Ports")) or {}
    parts = []
    for key in sorted(ports, key=lambda k: (int(k.split("/")[0].split("-")[0]), k)):
        binds = ports[key]
        if not binds:
            parts.append(key)
            continue
        for b in binds:
            host = f"[{b['HostIp']}]" if ":" in b.get("HostIp", "") else b.get("HostIp", "")
            parts.append(f"{host}:{b['HostPort']}->{key}")
    return ", ".join(parts)


def _command_text(c: dict[str, Any], no_trunc: bool) -> str:
    args = c["config"].get("args", [])
    text = " ".join(args)
    if not no_trunc and len(text) > 20:
        text = text[:19] + "…"
    return jsonc.dumps(text, ensure_ascii=False)


def ps(name: str, argv: list[str]) -> int:
    a = _args(name, argv, "[OPTIONS]", "List containers", PS_FLAGS)
    from dockyard.cli.format import ago, table
    from dockyard.ops import containers as ops

    filters: dict[str, list[str]] = {}
    for f in a.filter:
        k, eq, v = f.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {f!r}")
        if k not in ("status", "name", "id", "ancestor", "label", "exited"):
            raise InvalidArgument(f"invalid filter '{k}'")
        filters.setdefault(k, []).append(v)
    now = time.time()
    with engine() as eng:
        cs = ops.list_containers(eng)
        show_all = a.all or a.latest or a.last >= 0 or "status" in filters or "exited" in filters
        if not show_all:
            cs = [c for c in cs if c["state"].get("status") in ("running", "paused")]
        if a.latest:
            cs = cs[:1]
        elif a.last >= 0:
            cs = cs[:a.last]
        out = []
        for c in cs:
            if "status" in filters and c["state"].get("status") not in filters["status"]:
                continue
            if "exited" in filters and not (c["state"].get("status") == "exited"
                                            and str(c["state"].get("exit_code")) in filters["exited"]):
                continue
            if "name" in filters and not any(x in c["name"] for x in filters["name"]):
                continue
            if "id" in filters and not any(c["id"].startswith(x) for x in filters["id"]):
                continue
            if "ancestor" in filters:
                try:
                    wanted = {eng.resolve_image(x) for x in filters["ancestor"]}
                except DockyardError:
                    wanted = set()
                if c["image_id"] not in wanted:
                    continue
            if "label" in filters:
                labels = c["config"].get("opts", {}).get("labels") or {}
                if not all((f.partition("=")[0] in labels) and (not f.partition("=")[1]
                           or labels[f.partition("=")[0]] == f.partition("=")[2]) for f in filters["label"]):
                    continue
            size = ""
            if a.size:
                from dockyard.cli.format import human_size
                from dockyard.store.layers import dir_size

                size = human_size(dir_size(ops.container_dir(eng, c["id"]) / "fs" / "upper"))
            out.append({
                "ID": c["id"] if a.no_trunc else c["id"][:12], "Image": c["image_ref"],
                "Command": _command_text(c, a.no_trunc), "CreatedAt": str(c["created"]),
                "RunningFor": ago(c["created"], now), "Status": _status_text(c, now),
                "Ports": _ports_text(c) if c["state"].get("status") in ("running", "paused") else "",
                "Names": c["name"], "Size": size, "State": c["state"].get("status", ""),
                "Labels": ",".join(f"{k}={v}" for k, v in (c["config"].get("opts", {}).get("labels") or {}).items()),
            })
    if a.quiet:
        text = "\n".join(r["ID"] for r in out)
    elif a.format:
        from dockyard.cli.template import format_rows

        text = format_rows(a.format, out, {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
                                           "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS",
                                           "Names": "NAMES", "Size": "SIZE", "State": "STATE"})
    else:
        headers = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
        rows = [[r["ID"], r["Image"], r["Command"], r["RunningFor"], r["Status"], r["Ports"], r["Names"]]
                for r in out]
        if a.size:
            headers.append("SIZE")
            for row, r in zip(rows, out, strict=True):
                row.append(r["Size"])
        text = table(headers, rows)
    if text:
        print(text)
    return 0


#: The flags of the commands that act on each of their CONTAINER arguments (``_each``): CONTAINER... first.
_CONTAINERS: Flags = ((("containers",), SOME, None, None, None, None),)
STOP_FLAGS: Flags = (
    *_CONTAINERS,
    (("-t", "--time", "--timeout"), STORE, None, "int", None, "Seconds to wait before killing"),
    (("-s", "--signal"), STORE, "", None, None, "Signal to send to the container"),
)
RESTART_FLAGS: Flags = (
    *_CONTAINERS,
    (("-t", "--time"), STORE, None, "int", None, "Seconds to wait before killing"),
)
KILL_FLAGS: Flags = (
    *_CONTAINERS,
    (("-s", "--signal"), STORE, "KILL", None, None, "Signal to send to the container"),
)
RM_FLAGS: Flags = (
    *_CONTAINERS,
    (("-f", "--force"), STORE_TRUE, False, None, None, "Force the removal of a running container"),
    (("-v", "--volumes"), STORE_TRUE, False, None, None, "Remove anonymous volumes"),
    (("-l", "--link"), STORE_TRUE, False, None, None, None),
)
#: ``wait``, ``pause`` and ``unpause``'s: CONTAINER... alone.
EACH_FLAGS: Flags = _CONTAINERS


def _each(name: str, argv: list[str], usage: str, desc: str, action: Any, flags: Flags = EACH_FLAGS,
          echo: bool = True) -> int:
    a = _args(name, argv, usage, desc, flags)
    from dockyard.ops import containers as ops

    status = 0
    with engine() as eng:
        for n in a.containers:
            try:
                result = action(eng, ops.resolve(eng, n), a)
                if echo:
                    print(n if result is None else result)
            except DockyardError as e:
                report(e)
                status = 1
    return status


def stop(name: str, argv: list[str]) -> int:
    from dockyard.ops import containers as ops

    return _each(name, argv, "[OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers",
                 lambda eng, c, a: ops.stop(eng, c, a.time), STOP_FLAGS)


def restart(name: str, argv: list[str]) -> int:
    from dockyard.ops import containers as ops

    def act(eng: Any, c: dict[str, Any], a: Any) -> None:
        ops.stop(eng, c, a.time)
        ops.start(eng, c["id"])

    return _each(name, argv, "[OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers", act,
                 RESTART_FLAGS)


def kill(name: str, argv: list[str]) -> int:
    from dockyard.ops import containers as ops

    return _each(name, argv, "[OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers",
                 lambda eng, c, a: ops.kill(eng, c, a.signal), KILL_FLAGS)


def rm(name: str, argv: list[str]) -> int:
    from dockyard.ops import containers as ops

    return _each(name, argv, "[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers",
                 lambda eng, c, a: ops.remove(eng, c, force=a.force, remove_volumes=a.volumes), RM_FLAGS)


def wait(name: str, argv: list[str]) -> int:
    from dockyard.ops import containers as ops

    return _each(name, argv, "CONTAINER [CONTAINER...]", "Block until containers stop, then print their exit codes",
                 lambda eng, c, a: ops.wait(eng, c))


def pause(name: str, argv: list[str]) -> int:
    from dockyard.ops import containers as ops

    return _each(name, argv, "CONTAINER [CONTAINER...]", "Pause all processes within one or more containers",
                 lambda eng, c, a: ops.pause(eng, c))


def unpause(name: str, argv: list[str]) -> int:
    from dockyard.ops import containers as ops

    return _each(name, argv, "CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers",
                 lambda eng, c, a: ops.unpause(eng, c))


def rename(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "CONTAINER NEW_NAME", "Rename a container")
    p.add_argument("container")
    p.add_argument("new_name")
    a = p.parse_args(argv)
    from dockyard.ops import containers as ops

    with engine() as eng:
        ops.rename(eng, ops.resolve(eng, a.container), a.new_name)
    return 0


#: ``logs``'s.
LOGS_FLAGS: Flags = (
    (("container",), ONE, None, None, None, None),
    (("-f", "--follow"), STORE_TRUE, False, None, None, "Follow log output"),
    (("-n", "--tail"), STORE, "all", None, None, "Number of lines to show from the end of the logs"),
    (("-t", "--timestamps"), STORE_TRUE, False, None, None, "Show timestamps"),
    (("--since",), STORE, "", None, None, "Show logs since timestamp or relative (e.g. 42m)"),
    (("--until",), STORE, "", None, None, "Show logs before a timestamp or relative"),
    (("--details",), STORE_TRUE, False, None, None, None),
)


def logs(name: str, argv: list[str]) -> int:
    a = _args(name, argv, "[OPTIONS] CONTAINER", "Fetch the logs of a container", LOGS_FLAGS)
    from dockyard.cli.format import parse_rfc3339
    from dockyard.ops import containers as ops

    with engine() as eng:
        c = ops.resolve(eng, a.container)
        path = ops.log_path(eng, c)
        since = _time_arg(a.since) if a.since else None
        until = _time_arg(a.until) if a.until else None
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            lines = []
        if a.tail != "all":
            try:
                n = int(a.tail)
            except ValueError:
                raise InvalidArgument(f"invalid value for --tail: {a.tail!r}")
            lines = lines[-n:] if n > 0 else []
        pos = path.stat().st_size if path.exists() else 0

        def emit(raw: bytes) -> None:
            try:
                rec = jsonc.loads(raw)
            except ValueError:
                return
            ts = parse_rfc3339(rec.get("time"))
            if since is not None and ts is not None and ts < since:
                return
            if until is not None and ts is not None and ts > until:
                return
            text = rec.get("log", "")
            if a.timestamps:
                text = f"{rec.get('time')} {text}"
            stream = sys.stdout if rec.get("stream") == "stdout" else sys.stderr
            stream.write(text)
            stream.flush()

        for raw in lines:
            emit(raw)
        if a.follow:
            buf = b""
            while True:
                c = ops.refresh(eng, ops.resolve(eng, c["id"]))
                try:
                    with open(path, "rb") as f:
                        f.seek(pos)
                        chunk = f.read()
                        pos += len(chunk)
                except FileNotFoundError:
                    chunk = b""
                buf += chunk
                *done, buf = buf.split(b"\n")
                for raw in done:
                    emit(raw)
                if c["state"].get("status") not in ("running", "paused") and not chunk:
                    break
                time.sleep(0.1)
    return 0


def _time_arg(value: str) -> float:
    from dockyard.cli.format import parse_rfc3339

    units = {"s": 1, "m": 60, "h": 3600}
    if value[-1:] in units and value[:-1].replace(".", "").isdigit():
        return time.time() - float(value[:-1]) * units[value[-1]]
    if value.replace(".", "").isdigit():
        return float(value)
    ts = parse_rfc3339(value)
    if ts is None:
        raise InvalidArgument(f"invalid time value: {value!r}")
    return ts


def attach(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "[OPTIONS] CONTAINER",
               "Attach local standard input, output, and error streams to a running container")
    p.add_argument("container")
    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    p.add_argument("--detach-keys", default="")
    p.add_argument("--sig-proxy", default="true")
    a = p.parse_args(argv)
    from dockyard.ops import containers as ops

    with engine() as eng:
        c = ops.refresh(eng, ops.resolve(eng, a.container))
        if c["state"].get("status") not in ("running", "paused"):
            raise InvalidArgument("You cannot attach to a stopped container, start it first")
        sock_path = ops.attach_socket(c["id"])
    return _attach_and_wait(sock_path, tty=c["config"].get("tty", False),
                            stdin=not a.no_stdin and c["config"].get("open_stdin", False))


def commit(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", "Create a new image from a container's changes")
    p.add_argument("container")
    p.add_argument("reference", nargs="?")
    p.add_argument("-m", "--message", default="", help="Commit message")
    p.add_argument("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.add_argument("-c", "--change", action="append", default=[],
                   help="Apply Dockerfile instruction to the created image")
    p.add_argument("-p", "--pause", default="true", help="Pause container during commit")
    a = p.parse_args(argv)
    from dockyard.ops import containers as ops

    with engine() as eng:
        image_id = ops.commit(eng, ops.resolve(eng, a.container), a.reference, message=a.message,
                              author=a.author, changes=a.change,
                              pause_it=str(a.pause).lower() not in ("false", "0"))
    print(image_id)
    return 0


def container_inspect(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "[OPTIONS] CONTAINER [CONTAINER...]",
                      "Display detailed information on one or more containers")
    p.add_argument("containers", nargs="+")
    p.add_argument("-f", "--format")
    p.add_argument("-s", "--size", action="store_true")
    a = p.parse_args(argv)
    from dockyard.ops import containers as ops

    results = []
    status = 0
    with engine() as eng:
        for n in a.containers:
            try:
                results.append(ops.inspect(eng, ops.resolve(eng, n)))
            except DockyardError as e:
                report(e)
                status = 1
    if a.format:
        from dockyard.cli.template import render

        for r in results:
            print(render(a.format, r))
    else:
        print_json(results)
    return status


def container_prune(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "[OPTIONS]", "Remove all stopped containers")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[])
    a = p.parse_args(argv)
    from dockyard.ops import containers as ops

    if not a.force and sys.stdin.isatty():
        sys.stdout.write("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    removed = []
    with engine() as eng:
        for c in ops.list_containers(eng):
            if c["state"].get("status") in ("exited", "created", "dead"):
                ops.remove(eng, c)
                removed.append(c["id"])
    if removed:
        print("Deleted Containers:")
        print("\n".join(removed))
        print()
    print("Total reclaimed space: 0B")
    return 0


#: ``exec``'s: CONTAINER, then COMMAND [ARG...] (all that follows CONTAINER, flags included).
EXEC_FLAGS: Flags = (
    (("-d", "--detach"), STORE_TRUE, False, None, None, "Detached mode: run command in the background"),
    (("-i", "--interactive"), STORE_TRUE, False, None, None, "Keep STDIN open even if not attached"),
    (("-t", "--tty"), STORE_TRUE, False, None, None, "Allocate a pseudo-TTY"),
    (("-e", "--env"), APPEND, (), None, None, "Set environment variables"),
    (("-w", "--workdir"), STORE, "", None, None, "Working directory inside the container"),
    (("-u", "--user"), STORE, "", None, None, "Username or UID"),
    (("--privileged",), STORE_TRUE, False, None, None, None),
    (("container",), ONE, None, None, None, None),
    (("command",), REST, None, None, None, None),
)


def exec_(name: str, argv: list[str]) -> int:
    a = _args(name, argv, "[OPTIONS] CONTAINER COMMAND [ARG...]", "Execute a command in a running container",
              EXEC_FLAGS)
    if not a.command:
        raise InvalidArgument('"dockyard exec" requires at least 2 arguments.')
    from dockyard.ops import execs

    with engine() as eng:
        return execs.exec_in(eng, a.container, a.command, tty=a.tty, interactive=a.interactive,
                             detach=a.detach, env=a.env, workdir=a.workdir, user=a.user,
                             privileged=a.privileged)


def top(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "CONTAINER [ps OPTIONS]", "Display the running processes of a container")
    p.add_argument("container")
    a = p.parse_args(argv)
    from dockyard.ops import containers as ops

    with engine() as eng:
        c = ops.refresh(eng, ops.resolve(eng, a.container))
        if c["state"].get("status") not in ("running", "paused"):
            raise InvalidArgument(f"container {c['id'][:12]} is not running")
        pids = _container_pids(c["state"]["pid"])
    rows = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                st = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            uid = st.get("Uid", "0").split()[0]
            rows.append([_user_name(uid), str(pid), st.get("PPid", "").strip(), cmd or st.get("Name", "").strip()])
        except OSError:
            continue
    from dockyard.cli.format import table

    print(table(["UID", "PID", "PPID", "CMD"], rows))
    return 0


def _user_name(uid: str) -> str:
    import pwd

    try:
        return pwd.getpwuid(int(uid)).pw_name
    except (KeyError, ValueError):
        return uid


def _container_pids(init_pid: int) -> list[int]:
    """Host pids of every process in the init's pid namespace (exec'd ones are not its descendants)."""
    try:
        ns = os.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return []
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    out.append(int(entry))
            except OSError:
                continue
    return sorted(out)


def diff(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "CONTAINER", "Inspect changes to files or directories on a container's filesystem")
    p.add_argument("container")
    a = p.parse_args(argv)
    from dockyard.ops import containers as ops
    from dockyard.store import layers

    with engine() as eng:
        c = ops.resolve(eng, a.container)
        fs = os.path.join(ops.container_path(eng, c["id"]), "fs")
        upper = os.path.join(fs, "upper")
        lowers = [os.path.join(fs, "init"), *reversed([eng.layers.diff_dir(x) for x in c["config"]["chain"]])]
        for kind, path in layers.changes(upper, lowers):
            print(f"{kind} {path}")
    return 0


def export(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "[OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive")
    p.add_argument("container")
    p.add_argument("-o", "--output", default="", help="Write to a file, instead of STDOUT")
    a = p.parse_args(argv)
    if not a.output and sys.stdout.isatty():
        raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    from dockyard.ops import containers as ops

    with engine() as eng:
        ops.export(eng, ops.resolve(eng, a.container), a.output or None)
    return 0


def cp(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n"
               "       dockyard cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
               "Copy files/folders between a container and the local filesystem")
    p.add_argument("src")
    p.add_argument("dest")
    p.add_argument("-a", "--archive", action="store_true")
    p.add_argument("-L", "--follow-link", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    from dockyard.ops import containers as ops

    with engine() as eng:
        ops.copy(eng, a.src, a.dest)
    return 0


def _short(x: str) -> str:
    from dockyard.cli.format import short_id

    return short_id(x)
