"""``exec``: a new process in a running container, joining all its namespaces and its cgroup.

No monitor is involved: the CLI is the new process's parent (a child subreaper), so its exit status
is simply waited for, and ``-t`` relays a pty the CLI receives from the runtime.
"""

from __future__ import annotations

import os

from dockyard.errors import Conflict, InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from dockyard.engine import Engine


def exec_in(eng: Engine, name: str, cmd: list[str], *, tty: bool = False, interactive: bool = False,
            detach: bool = False, env: list[str] = (), workdir: str = "", user: str = "",  # type: ignore[assignment]
            privileged: bool = False) -> int:
    from dockyard.ops import containers as ops

    c = ops.refresh(eng, ops.resolve(eng, name))
    if c["state"].get("status") == "paused":
        raise Conflict(f"Container {c['id'][:12]} is paused, unpause the container before exec")
    if c["state"].get("status") != "running":
        raise Conflict(f"Container {c['id'][:12]} is not running")
    from dockyard import jsonc  # not json, copy, socket, ctypes or pathlib: ~10 ms of every exec

    cdir = ops.container_path(eng, c["id"])
    with open(os.path.join(cdir, "config.json"), "rb") as f:
        process: dict[str, Any] = jsonc.loads(f.read())["process"]  # freshly parsed: ours to change
    process["args"] = list(cmd)
    process["terminal"] = tty
    if workdir:
        if not workdir.startswith("/"):
            raise InvalidArgument(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
        process["cwd"] = workdir
    if env:
        from dockyard.runtime.runopts import parse_env

        merged = {e.partition("=")[0]: e for e in process.get("env", [])}
        for e in parse_env(env, os.environ):
            merged[e.partition("=")[0]] = e
        process["env"] = list(merged.values())
    if user:
        from dockyard.runtime.spec import resolve_user

        rootfs = os.path.join(cdir, "fs", "merged")

        def read(rel: str) -> str | None:
            try:
                with open(os.path.join(rootfs, rel), errors="replace") as f:
                    return f.read()
            except OSError:
                return None
        uid, gid, extra = resolve_user(user, read("etc/passwd"), read("etc/group"))
        process["user"] = {"uid": uid, "gid": gid, "additionalGids": extra}
    if privileged:
        from dockyard.runtime.runopts import CAPABILITY_NAMES

        caps = ["CAP_" + n for n in CAPABILITY_NAMES]
        process["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    rt = ops.runtime_for(c["config"].get("runtime"))
    from dockyard.libc import libc

    libc().prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: the process is reparented to us
    if detach:
        null = os.open(os.devnull, os.O_RDWR)
        rt.exec(c["id"], process, stdio=(null, null, null), detach=True)
        return 0
    if not tty:
        stdin = 0 if interactive else os.open(os.devnull, os.O_RDONLY)
        return int(rt.exec(c["id"], process, stdio=(stdin, 1, 2), detach=False))
    import _socket

    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    pid = rt.exec(c["id"], process, stdio=(0, 1, 2), detach=True, console_fd=theirs.fileno())
    theirs.close()
    from dockyard.runtime.monitor import _recv_fd

    master = _recv_fd(ours)
    ours.close()
    return _relay_pty(master, pid, interactive)


def _relay_pty(master: int, pid: int, interactive: bool) -> int:
    from dockyard.runtime.ptyrelay import relay

    relay(master, stdin=interactive, pid=pid)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code
