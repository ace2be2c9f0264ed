"""Containers: create, start (under a monitor), stop, kill, rm, wait, logs, list, inspect, commit.

A container is a row in the database (its options and state), a directory ``containers/<id>/``
holding the OCI bundle (``config.json``), its filesystem snapshot (``fs/upper`` survives stops), its
json-file log and the monitor's attach socket. The monitor is forked from the command that starts
the container and outlives it; its pid and start time are recorded so that a dead monitor is
noticed instead of believed.
"""

from __future__ import annotations

import _signal
import os
import time

from dockyard import jsonc
from dockyard.atomic import write_atomic
from dockyard.errors import Conflict, ContainerNotFound, InvalidArgument, RuntimeFailure
from dockyard.locks import FileLock

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from dockyard.engine import Engine
    from dockyard.runtime.runopts import RunOptions

# `run`, `start`, `ps` and `rm` go through here: no contextlib, json, signal or pathlib (with re, enum,
# collections and urllib.parse behind them, ~10 ms a command). Paths are strs (``eng.root_dir``).


def container_path(eng: Engine, cid: str) -> str:
    """``containers/<id>`` under the engine's root."""
    return os.path.join(eng.root_dir, "containers", cid)


def container_dir(eng: Engine, cid: str) -> Path:
    """``container_path`` as a Path, for callers off the run path."""
    from pathlib import Path

    return Path(container_path(eng, cid))


def run_root() -> str:
    return os.environ.get("DOCKYARD_RUN_ROOT", "/run/dockyard")


def attach_socket(cid: str) -> str:
    """Unix socket paths are limited to 108 bytes, so sockets live under the short run root."""
    d = os.path.join(run_root(), "sock")
    os.makedirs(d, mode=0o700, exist_ok=True)
    return os.path.join(d, f"{cid}.attach")


def runtime_for(name: str | None = None) -> Any:
    """The runtime a container was made with (its config's "runtime"), or the configured default."""
    name = name or os.environ.get("DOCKYARD_RUNTIME", "builtin")
    if name in ("builtin", "dockyard"):
        from dockyard.runtime.builtin import BuiltinRuntime

        return BuiltinRuntime(root=os.path.join(run_root(), "runtime"))
    from dockyard.runtime.external import ExternalRuntime

    return ExternalRuntime(name, root=os.path.join(run_root(), name))


def _read_text(path: str, errors: str | None = None) -> str:
    with open(path, errors=errors) as f:
        return f.read()


def _write_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _remove_tree(path: str) -> None:
    """Delete a container's directory, however deep, never following symlinks; missing is fine."""
    from dockyard.store.layers import remove_tree  # cheap since layers has no tarfile

    remove_tree(path)


# ---- resolving ------------------------------------------------------------------------------


def resolve(eng: Engine, name_or_id: str) -> dict[str, Any]:
    """A container row (as a dict, config and state decoded) by name, full ID or unique prefix."""
    name = name_or_id.lstrip("/")
    row = eng.db.container_by_name(name) or eng.db.container(name)
    if row is None and name and all(c in "0123456789abcdef" for c in name):
        rows = eng.db.containers_by_prefix(name)
        if len(rows) > 1:
            raise Conflict(f"multiple containers match the ID prefix {name!r}: use more characters")
        row = rows[0] if rows else None
    if row is None:
        raise ContainerNotFound(f"No such container: {name_or_id}")
    return _decode(row)


def _decode(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["config"] = jsonc.loads(d["config"])
    d["state"] = jsonc.loads(d["state"])
    return d


def proc_start(pid: int) -> str | None:
    """The start time of a live process (a zombie is not live: nobody may reap a dead monitor)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def monitor_alive(state: dict[str, Any]) -> bool:
    pid = state.get("monitor_pid")
    return isinstance(pid, int) and pid > 0 and proc_start(pid) == state.get("monitor_start")


def refresh(eng: Engine, c: dict[str, Any]) -> dict[str, Any]:
    """Make a row's state truthful: a running container whose monitor is gone did not survive."""
    st = c["state"]
    if st.get("status") in ("running", "paused", "restarting") and not monitor_alive(st):
        # The monitor died (killed, or the machine rebooted): the container cannot be relied on.
        try:
            runtime_for(c["config"].get("runtime")).delete(c["id"], force=True)
        except Exception:
            pass
        _unmount(eng, c)
        st = eng.db.update_container_state(
            c["id"], status="exited", exit_code=255,
            finished_at=st.get("finished_at") or time.time(), pid=0, error="monitor exited unexpectedly")
        c["state"] = st
    return c


def list_containers(eng: Engine) -> list[dict[str, Any]]:
    return [refresh(eng, _decode(r)) for r in eng.db.containers()]


# ---- create ---------------------------------------------------------------------------------
def create(eng: Engine, image: str, opts: RunOptions, *, name: str | None = None, out: Any = None) -> str:
    from dockyard import names
    from dockyard.store import snapshots

    image_id = _ensure_image(eng, image, out)
    cfg = eng.image_config(image_id)
    taken = eng.db.container_names()
    if name:
        name = name.lstrip("/")
        if not names.valid(name):
            raise InvalidArgument(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
        if name in taken:
            other = eng.db.container_by_name(name)
            raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                           f'"{other["id"] if other else "?"}". You have to remove (or rename) that container '
                           "to be able to reuse that name.")
    from dockyard.digest import random_hex

    cid = random_hex(32)
    name = name or names.generate(taken)
    chain = eng.image_chain(image_id)
    cdir = container_path(eng, cid)
    os.makedirs(cdir)
    vp = None
    try:
        uses_volumes = bool(opts.volumes_from or cfg.config.get("Volumes")
                            or any(m.type == "volume" for m in opts.mounts))
        snapshots.prepare(os.path.join(cdir, "fs"), [x.diff_dir for x in chain])
        if uses_volumes:
            from pathlib import Path

            from dockyard.ops import volumes as vols

            if opts.volumes_from:
                opts.mounts = vols.resolve_volumes_from(eng, opts.volumes_from, opts.mounts)
            with vols.image_rootfs([x.path for x in chain], Path(cdir)) as lookup:
                vp = vols.prepare_for_container(eng, lookup, opts, cfg.config)
        opts_json = _opts_to_json(opts)
        spec_inputs = _write_bundle(eng, cid, cdir, cfg.config, opts, opts_json, image_id, vp)
        config = {
            "chain": [x.chain_id for x in chain],
            "opts": opts_json,
            "image_config": cfg.config,
            "runtime": getattr(opts, "runtime", None) or os.environ.get("DOCKYARD_RUNTIME", "builtin"),
            "tty": bool(getattr(opts, "tty", False)),
            "open_stdin": bool(getattr(opts, "stdin_open", False)),
            "auto_remove": bool(getattr(opts, "auto_remove", False)),
            "args": spec_inputs["args"],
            "hostname": spec_inputs["hostname"],
            **({"volumes": vp.names} if vp is not None else {}),
            "mounts": _mount_points(opts, vp),
        }
        state: dict[str, Any] = {"status": "created", "exit_code": 0, "pid": 0}
        if spec_inputs["network"] is not None:
            state["network"] = spec_inputs["network"]
        eng.db.add_container(cid, name, image_id, image, time.time(), config, state)
    except BaseException:
        import shutil

        try:
            snapshots.unmount(snapshots.Snapshot(os.path.join(cdir, "fs"), [], "overlay"))
        except Exception:
            pass
        try:
            from dockyard.ops import volumes as vols

            if vp is not None:
                vols.discard_created(eng, vp)
            vols.teardown_shm(vols.shm_dir(eng, cid))
        except Exception:
            pass
        shutil.rmtree(cdir, ignore_errors=True)
        raise
    return cid


def _mount_points(opts: RunOptions, vp: Any) -> list[dict[str, Any]]:
    """Docker's inspect ``Mounts`` (computed only when the container has any)."""
    if not opts.mounts and vp is None:
        return []
    from dockyard.ops import volumes as vols

    return vols.mount_points(opts.mounts, vp if vp is not None else vols.VolumePaths())


def _ensure_image(eng: Engine, image: str, out: Any) -> str:
    from dockyard.errors import ImageNotFound

    try:
        return eng.resolve_image(image)
    except ImageNotFound:
        try:
            from dockyard.ops.pull import ensure_image
        except ImportError:
            raise ImageNotFound(f"Unable to find image '{image}' locally")
        return ensure_image(eng, image, out)


def _opts_to_json(opts: Any) -> dict[str, Any]:
    try:
        d = opts.to_dict()
        try:
            text = jsonc.dumps(d)  # the C encoder; json (``default=str``) only for a value it refuses
        except TypeError:
            text = jsonc.dumps(d, default=str)
        return jsonc.loads(text)
    except TypeError:
        return {}


def _write_default_etc_files(cdir: str, opts: RunOptions, hostname: str) -> None:
    _write_text(os.path.join(cdir, "hosts"),
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
                + ("" if getattr(opts, "network", "none") == "host" else f"127.0.1.1\t{hostname}\n"))
    try:
        text = _read_text("/etc/resolv.conf")
        if "127.0.0." in text and getattr(opts, "network", "") != "host":
            text = "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    except OSError:
        text = ""
    _write_text(os.path.join(cdir, "resolv.conf"), text)


def _write_bundle(eng: Engine, cid: str, cdir: str, image_config: dict[str, Any], opts: RunOptions,
                  opts_json: dict[str, Any], image_id: str, vp: Any = None) -> dict[str, Any]:
    from dockyard.runtime import spec as specmod
    from dockyard.store import snapshots

    snap = snapshots.Snapshot(os.path.join(cdir, "fs"), [], snapshots.default_driver())
    host_hostname = os.uname().nodename
    hostname = specmod.container_hostname(opts, cid, host_hostname)  # the host's own with --network host
    _write_text(os.path.join(cdir, "hostname"), hostname + "\n")
    settings = None
    if getattr(opts, "network", "") in ("none", "host"):
        # Write now what a network attach would write for these modes, and their NetworkSettings: nothing
        # changes at start, so the monitor has no network step to take (the runtime brings up ``lo``).
        from dockyard.ops import networks

        row = {"id": cid, "config": {"opts": opts_json, "hostname": hostname}}
        networks.write_etc_files(eng, row)
        settings = networks.network_settings(eng, row)
    else:
        _write_default_etc_files(cdir, opts, hostname)
    passwd, group = _read_container_file(eng, image_id, "etc/passwd"), _read_container_file(eng, image_id, "etc/group")
    extra: dict[str, Any] = {}
    if opts.ipc or opts.shm_size:
        from dockyard.ops import volumes as vols

        ipc = vols.prepare_ipc(eng, opts, cid)
        extra.update(shm_path=ipc.shm_path, namespace_paths=ipc.namespace_paths)
    if opts.network.startswith("container:"):
        other = resolve(eng, opts.network.partition(":")[2])
        if other["state"].get("status") != "running":
            raise Conflict(f"cannot join network of a non running container: {other['id'][:12]}")
        extra.setdefault("namespace_paths", {})
        extra["namespace_paths"] = {**(extra["namespace_paths"] or {}),
                                    "network": f"/proc/{other['state']['pid']}/ns/net"}
    if not opts.cgroupns:
        # Docker's default-cgroupns-mode: "host" on a cgroup v1 host, "private" on v2. (On v1 it also
        # lets the runtime make the cgroup while the namespaces are made, instead of before.) The test
        # is runtime.cgroups.detect()'s, without importing that module into the command.
        opts.cgroupns = "private" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "host"
    spec = specmod.build_spec(
        image_config, opts, container_id=cid, rootfs=str(snap.rootfs),
        hostname_path=os.path.join(cdir, "hostname"), hosts_path=os.path.join(cdir, "hosts"),
        resolv_conf_path=os.path.join(cdir, "resolv.conf"), passwd_text=passwd, group_text=group,
        cgroups_path=f"/dockyard/{cid}", volume_paths=vp, host_hostname=host_hostname,
        devices=[d for m in opts.devices for d in specmod.resolve_device(m)],
        host_devices=specmod.list_host_devices() if opts.privileged else (),
        **extra,
    )
    if opts.gpus or getattr(opts, "x11", False):
        from dockyard.runtime import devices as devmod

        edits = devmod.SpecEdits()
        if opts.gpus:
            edits.extend(devmod.gpu_edits(opts.gpus, image_env=spec["process"]["env"]))
        if getattr(opts, "x11", False):
            from pathlib import Path

            from dockyard.runtime import display

            u = spec["process"]["user"]
            edits.extend(display.x11_edits(os.environ, cookie_dir=Path(cdir), uid=u["uid"], gid=u["gid"]))
        devmod.apply_edits(spec, edits)
    _limit_caps_to_host(spec)
    write_atomic(os.path.join(cdir, "config.json"), jsonc.dumps(spec))
    return {"args": spec["process"]["args"], "hostname": hostname, "network": settings}


def _limit_caps_to_host(spec: dict[str, Any]) -> None:
    """A container can hold no capability the engine lacks (this VM has no CAP_SYS_RESOURCE, say)."""
    from dockyard.runtime.runopts import CAPABILITY_NAMES

    try:
        with open("/proc/self/status") as f:
            bnd = int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)
    except (OSError, StopIteration, ValueError):
        return
    have = {"CAP_" + n for i, n in enumerate(CAPABILITY_NAMES) if bnd >> i & 1}
    caps = spec.get("process", {}).get("capabilities") or {}
    for k, v in caps.items():
        caps[k] = [c for c in v if c in have]


def _read_container_file(eng: Engine, image_id: str, rel: str) -> str | None:
    for layer in reversed(eng.image_chain(image_id)):
        p = os.path.join(layer.diff_dir, rel)
        try:
            if os.path.isfile(p) and not os.path.islink(p):
                return _read_text(p, errors="replace")
        except OSError:
            continue
    return None


# ---- start ----------------------------------------------------------------------------------
def start(eng: Engine, cid: str, *, wait_attach: bool = False, prefork: Prefork | None = None) -> str:
    """Mount the container's filesystem and fork its monitor; returns the attach socket path.

    Takes the full ID: the row is read under the container's lock, so a caller's copy would be stale.
    ``prefork``: a monitor process forked earlier (``prefork_monitor``), handed this container instead
    of forking one now.

    Raises the runtime's error (e.g. CommandNotFound, 127) if the container cannot be created.
    """
    with container_lock(container_path(eng, cid)) as lock_fd:
        return _start_locked(eng, resolve(eng, cid), wait_attach=wait_attach, lock_fd=lock_fd, prefork=prefork)


def container_lock(cdir: str | os.PathLike[str]) -> FileLock:
    """Serialises a container's start with the previous run's cleanup (both mount and unmount)."""
    return FileLock(os.path.join(os.fspath(cdir), "lock"))


class Prefork:
    """A monitor forked before its container exists, waiting for a job (see ``prefork_monitor``)."""

    def __init__(self, pid: int, job_w: int, ready_r: int, cpus: set[int] | None) -> None:
        self.pid = pid
        self.job_w = job_w
        self.ready_r = ready_r
        self.cpus = cpus  # the affinity to give it back before it forks the container, if it was moved

    def hand(self, job: dict[str, Any]) -> None:
        """Send the job; raises OSError if the process is gone (the caller then forks a monitor itself)."""
        data = jsonc.dumps(job).encode()
        try:
            if self.cpus is not None:
                os.sched_setaffinity(self.pid, self.cpus)  # before the job: what it forks gets every CPU
                self.cpus = None
            while data:
                data = data[os.write(self.job_w, data):]
        finally:
            os.close(self.job_w)
            self.job_w = -1

    def close(self) -> None:
        """Unless handed a job: no job after all (the container could not be created), so the process
        ends on EOF, and is reaped."""
        if self.job_w >= 0:
            os.close(self.job_w)
            self.job_w = -1
            os.close(self.ready_r)
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass


def prefork_monitor() -> Prefork | None:
    """Fork the monitor now, before the container is created, to import and prepare meanwhile.

    What ``run`` needs of the runtime (the monitor, the built-in runtime, cgroups, seccomp, ctypes, the
    engine: ~4 ms of imports) is then loaded by this process while the command creates the container,
    instead of after. That only helps on another CPU (see ``dockyard.cpus``; either of the two may go
    first), so with more than one CPU allowed, the child is moved off the parent's CPU -- by whichever
    of the two runs first -- until it is handed its job, when it gets every CPU back (before it forks
    the container). The parent must hold no database connection here (see ``_start_locked``).
    None if it cannot fork now: ``start`` then forks the monitor itself, and reports any failure.
    """
    from dockyard.cpus import elsewhere

    cpus = elsewhere()
    away = cpus[1] if cpus is not None else None
    job_r, job_w = os.pipe()
    ready_r, ready_w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        for fd in (job_r, job_w, ready_r, ready_w):
            os.close(fd)
        return None
    if pid == 0:
        code = 0
        try:
            if away is not None:
                os.sched_setaffinity(0, away)
            os.close(job_w)
            os.close(ready_r)
            _prefork_child(job_r, ready_w)
        except BaseException:
            code = 125
        os._exit(code)
    if away is not None:
        try:
            os.sched_setaffinity(pid, away)
        except OSError:
            pass
    os.close(job_r)
    os.close(ready_w)
    return Prefork(pid, job_w, ready_r, cpus[0] if cpus is not None else None)


def _prefork_child(job_r: int, ready_w: int) -> None:
    # The command's Ctrl-C (same process group) must not kill it with a traceback: it ends on EOF.
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)
    # What the monitor uses (a monitor forked later inherits these from the command): the runtime, and
    # the engine for its own database connection.
    import dockyard.engine  # noqa: F401
    import dockyard.runtime.monitor  # noqa: F401
    from dockyard.runtime import builtin, process, rootfs, seccomp  # noqa: F401
    from dockyard.store import snapshots  # noqa: F401

    builtin.L._libc()  # the ctypes sliver
    # And its database connection (~1 ms, more for whoever opens it first and reads the WAL back), which
    # a monitor otherwise opens once the container runs. The container's processes never use it.
    eng: Engine | None = None
    try:
        eng = dockyard.engine.Engine(dockyard.engine.default_root_dir())
    except Exception:
        pass
    chunks = []
    while chunk := os.read(job_r, 65536):
        chunks.append(chunk)
    os.close(job_r)
    if not chunks:
        return
    _monitor_main(jsonc.loads(b"".join(chunks)), ready_w, eng)


def _start_locked(eng: Engine, c: dict[str, Any], *, wait_attach: bool, lock_fd: int,
                  prefork: Prefork | None = None) -> str:
    from dockyard.store import snapshots

    c = refresh(eng, c)
    status = c["state"].get("status")
    if status in ("running", "paused"):
        if prefork is not None:
            prefork.close()
        return attach_socket(c["id"])
    cid = c["id"]
    cdir = container_path(eng, cid)
    chain = [eng.layers.diff_dir(x) for x in c["config"]["chain"]]
    snap = snapshots.Snapshot(os.path.join(cdir, "fs"), chain, snapshots.default_driver())
    snapshots.mount(snap)
    from dockyard.ops.networks import network_mode

    job = {
        "id": cid, "root": eng.root_dir, "dir": cdir, "chain": chain, "driver": snap.driver,
        "runtime": c["config"].get("runtime"),
        "auto_remove": bool(c["config"].get("auto_remove", False)), "attach_path": attach_socket(cid),
        "tty": bool(c["config"].get("tty", False)), "open_stdin": bool(c["config"].get("open_stdin", False)),
        "wait_attach": wait_attach,
        # none/host: settled at create (see _write_bundle); otherwise plumbed once the init exists
        "network": not (network_mode(c) in ("none", "host") and c["state"].get("network")),
    }
    if wait_attach:  # the caller attaches next (see below for why not after the fork)
        import dockyard.runtime.attach  # noqa: F401
    # Never fork with a connection open: the child would inherit SQLite's per-process table of the
    # locks it believes it holds (POSIX locks themselves are not inherited), and its own connection
    # would then skip taking them. The connection is opened again if the caller asks anything more.
    eng.db.release()
    pid = -1
    if prefork is not None:
        try:
            prefork.hand(job)
            pid, ready_r = prefork.pid, prefork.ready_r
        except OSError:  # it died meanwhile: fork one now
            os.close(prefork.ready_r)
            try:
                os.waitpid(prefork.pid, 0)
            except ChildProcessError:
                pass
    if pid < 0:
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the monitor
            os.close(ready_r)
            os.close(lock_fd)  # the lock belongs to the starting command, not to the monitor
            try:
                _monitor_main(job, ready_w)
            finally:
                os._exit(125)
        os.close(ready_w)
    # Block at once. Linux often starts a forked child on its parent's CPU, where it waits until the
    # parent blocks (measured here: a parent busy for 2 ms after fork delays its child's first instruction by
    # 2 ms, with the other CPU idle), so work done here would not overlap the monitor's but delay it.
    with os.fdopen(ready_r, "rb") as f:
        line = f.readline()
    try:
        msg = jsonc.loads(line) if line else {"error": "the container monitor exited before starting the container"}
    except ValueError:
        msg = {"error": line.decode(errors="replace").strip()}
    if "error" in msg:
        os.waitpid(pid, 0)
        try:
            runtime_for(c["config"].get("runtime")).delete(cid, force=True)
        except Exception:
            pass
        snapshots.unmount(snap)
        eng.db.update_container_state(cid, status="created" if status == "created" else "exited",
                                      exit_code=msg.get("exit_code", 125), error=msg["error"])
        _raise_runtime_error(msg)
    return str(job["attach_path"])


def _monitor_main(job: dict[str, Any], ready_w: int, eng: Engine | None = None) -> None:
    """The monitor's whole life, from the ``job`` that ``_start_locked`` made; ends the process.

    ``eng``: an Engine the monitor opened before it had the job, used if its root is the job's.
    """
    from dockyard.engine import Engine as _Engine
    from dockyard.runtime.monitor import MonitorConfig, run_monitor
    from dockyard.store import snapshots

    cid, root, cdir, auto_remove = job["id"], job["root"], job["dir"], job["auto_remove"]
    rt = runtime_for(job["runtime"])
    try:
        rt.delete(cid, force=True)  # a stopped runtime record from the last run
    except Exception:
        pass
    snap = snapshots.Snapshot(os.path.join(cdir, "fs"), job["chain"], job["driver"])
    mcfg = MonitorConfig(
        container_id=cid, bundle=cdir, log_path=os.path.join(cdir, f"{cid}-json.log"), attach_path=job["attach_path"],
        tty=job["tty"], open_stdin=job["open_stdin"], stdin_once=job["open_stdin"], wait_attach=job["wait_attach"],
    )

    # The monitor's one Engine, opened when first needed and kept until the container is cleaned up:
    # each open/close of the database could otherwise recreate and checkpoint its WAL (fsyncs).
    mon: list[Engine] = []
    if eng is not None:
        if eng.root_dir == root:
            mon.append(eng)
        else:
            eng.close()

    def mon_engine() -> Engine:
        if not mon:
            mon.append(_Engine(root))
        return mon[0]

    def on_created(init_pid: int) -> None:
        from dockyard.ops import networks

        e = mon_engine()
        settings = networks.attach(e, resolve(e, cid), init_pid)
        e.db.update_container_state(cid, network=settings)

    if job["network"]:
        mcfg.on_created = on_created

    def on_started(init_pid: int) -> None:
        mon_engine().db.update_container_state(
            cid, status="running", pid=init_pid, started_at=time.time(), exit_code=0, error="",
            oom_killed=False, finished_at=None, monitor_pid=os.getpid(), monitor_start=proc_start(os.getpid()))

    def on_exited(code: int, oom: bool) -> Callable[[], None] | None:
        e = mon_engine()
        if auto_remove:
            e.db.remove_container(cid)  # gone for `ps -a` before the CLI returns
        else:
            e.db.update_container_state(cid, status="exited", exit_code=code, pid=0,
                                        finished_at=time.time(), oom_killed=oom)

        def cleanup() -> None:
            try:
                rt.delete(cid, force=True)
            except Exception:
                pass
            try:
                from dockyard.ops import networks

                networks.detach(mon_engine(), cid, forget=auto_remove)
            except Exception:
                pass
            snapshots.unmount(snap)
            if auto_remove:
                try:
                    _remove_tree(cdir)
                except OSError:
                    pass

        def locked_cleanup() -> None:
            with container_lock(cdir):  # a `start` right after us must not race the unmount
                if not auto_remove and resolve(mon_engine(), cid)["state"].get("status") != "exited":
                    return  # restarted meanwhile: its mount is in use
                cleanup()

        def finish() -> None:
            try:
                (cleanup if auto_remove else locked_cleanup)()
            finally:
                mon_engine().close()
        return finish

    run_monitor(mcfg, rt, ready_w, on_started, on_exited)


def _raise_runtime_error(msg: dict[str, Any]) -> None:
    from dockyard.errors import CommandNotExecutable, CommandNotFound

    code = int(msg.get("exit_code", 125))
    text = msg["error"]
    if code == 127:
        raise CommandNotFound(text)
    if code == 126:
        raise CommandNotExecutable(text)
    raise RuntimeFailure(text)


# ---- stop / kill / wait / rm ----------------------------------------------------------------
def _signal_number(sig: str | int) -> int:
    if isinstance(sig, int) or str(sig).isdigit():
        return int(sig)
    s = str(sig).upper()
    if not s.startswith("SIG"):
        s = "SIG" + s
    try:
        return int(getattr(_signal, s))  # the C module's ints: ``signal`` would build its enums first
    except AttributeError:
        raise InvalidArgument(f"invalid signal: {sig}")


def kill(eng: Engine, c: dict[str, Any], sig: str | int = "KILL") -> None:
    c = refresh(eng, c)
    if c["state"].get("status") not in ("running", "paused"):
        raise Conflict(f"Cannot kill container: {c['name']}: container {c['id'][:12]} is not running")
    num = _signal_number(sig)
    rt = runtime_for(c["config"].get("runtime"))
    try:
        rt.kill(c["id"], num, all=num == _signal.SIGKILL)
    except Exception:
        pid = c["state"].get("pid")
        if pid:
            try:
                os.kill(pid, num)
            except ProcessLookupError:
                pass


def wait(eng: Engine, c: dict[str, Any], timeout: float | None = None) -> int:
    """Block until the container is not running; returns its exit code."""
    deadline = None if timeout is None else time.monotonic() + timeout
    st = c["state"]
    mpid = st.get("monitor_pid")
    if st.get("status") in ("running", "paused") and mpid and monitor_alive(st):
        try:
            fd = os.pidfd_open(mpid)
        except OSError:
            fd = -1
        if fd >= 0:
            import select

            try:
                # The monitor may linger a moment after recording the exit; the row is the truth.
                while True:
                    r = resolve(eng, c["id"]) if _exists(eng, c["id"]) else None
                    if r is None or r["state"].get("status") not in ("running", "paused"):
                        break
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    if left == 0.0:
                        raise TimeoutError
                    select.select([fd], [], [], min(left, 0.25) if left is not None else 0.25)
            finally:
                os.close(fd)
    if not _exists(eng, c["id"]):
        return int(c["state"].get("exit_code") or 0)
    c = refresh(eng, resolve(eng, c["id"]))
    return int(c["state"].get("exit_code") or 0)


def _exists(eng: Engine, cid: str) -> bool:
    return eng.db.container(cid) is not None


def stop(eng: Engine, c: dict[str, Any], timeout: int | None = None) -> None:
    c = refresh(eng, c)
    if c["state"].get("status") not in ("running", "paused"):
        return
    stop_signal = c["config"].get("image_config", {}).get("StopSignal") or c["config"].get("opts", {}).get(
        "stop_signal") or "SIGTERM"
    if timeout is None:
        timeout = c["config"].get("opts", {}).get("stop_timeout") or 10
    if c["state"].get("status") == "paused":
        unpause(eng, c)
    try:
        kill(eng, c, stop_signal)
    except Conflict:
        pass
    try:
        wait(eng, c, timeout=float(timeout))
    except TimeoutError:
        try:
            kill(eng, resolve(eng, c["id"]), "KILL")
        except Conflict:
            pass
        wait(eng, c, timeout=30)


def pause(eng: Engine, c: dict[str, Any]) -> None:
    c = refresh(eng, c)
    if c["state"].get("status") != "running":
        raise Conflict(f"Container {c['id'][:12]} is not running")
    runtime_for(c["config"].get("runtime")).pause(c["id"])
    eng.db.update_container_state(c["id"], status="paused")


def unpause(eng: Engine, c: dict[str, Any]) -> None:
    if c["state"].get("status") != "paused":
        raise Conflict(f"Container {c['id'][:12]} is not paused")
    runtime_for(c["config"].get("runtime")).resume(c["id"])
    eng.db.update_container_state(c["id"], status="running")


def _unmount(eng: Engine, c: dict[str, Any]) -> None:
    from dockyard.store import snapshots

    snapshots.unmount(snapshots.Snapshot(os.path.join(container_path(eng, c["id"]), "fs"), [], "overlay"))


def remove(eng: Engine, c: dict[str, Any], *, force: bool = False, remove_volumes: bool = False) -> None:
    c = refresh(eng, c)
    if c["state"].get("status") in ("running", "paused"):
        if not force:
            raise Conflict(f"cannot remove container \"/{c['name']}\": container is running: stop the "
                           "container before removing or force remove")
        kill(eng, c, "KILL")
        try:
            wait(eng, c, timeout=10)
        except TimeoutError:
            pass
    try:
        runtime_for(c["config"].get("runtime")).delete(c["id"], force=True)
    except Exception:
        pass
    from dockyard.ops import networks

    try:
        networks.detach(eng, c, forget=True)
    except Exception:
        pass
    _unmount(eng, c)
    cdir = container_path(eng, c["id"])
    # ops.volumes (re, json, pathlib...) only for a container that has something for it to do.
    release = bool(remove_volumes or c["config"].get("auto_remove"))
    names: dict[str, str] = {}
    if release:
        from dockyard.ops import volumes

        names = volumes.container_volumes(eng, c)
    eng.db.remove_container(c["id"])
    if release:
        volumes.release(eng, names, container_id=c["id"])
    if os.path.isdir(os.path.join(cdir, "mounts", "shm")):  # volumes.shm_dir: without it, nothing is mounted
        from dockyard.ops import volumes

        volumes.teardown_shm(volumes.shm_dir(eng, c["id"]))
    try:
        _remove_tree(cdir)
    except OSError:
        pass


def rename(eng: Engine, c: dict[str, Any], new: str) -> None:
    from dockyard import names

    new = new.lstrip("/")
    if not names.valid(new):
        raise InvalidArgument(f"Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    if eng.db.container_by_name(new):
        raise Conflict(f'Conflict. The container name "/{new}" is already in use')
    eng.db.update_container(c["id"], name=new)


# ---- logs -----------------------------------------------------------------------------------
def log_path(eng: Engine, c: dict[str, Any]) -> Path:
    return container_dir(eng, c["id"]) / f"{c['id']}-json.log"


def _log_file(eng: Engine, c: dict[str, Any]) -> str:
    return os.path.join(container_path(eng, c["id"]), f"{c['id']}-json.log")


# ---- commit ---------------------------------------------------------------------------------
def commit(eng: Engine, c: dict[str, Any], repo_tag: str | None = None, *, message: str = "",
           author: str = "", changes: list[str] = (), pause_it: bool = True) -> str:  # type: ignore[assignment]
    """Snapshot the container's changes (its upper dir) into a new layer on top of its image."""
    import copy
    import tempfile

    from dockyard.build.changes import apply_changes
    from dockyard.image import reference
    from dockyard.store import layers as layers_mod

    tag = str(reference.parse(repo_tag)) if repo_tag else None
    c = refresh(eng, c)
    cdir = container_dir(eng, c["id"])
    upper = cdir / "fs" / "upper"
    lowers = [eng.layers.diff_dir(x) for x in c["config"]["chain"]]
    paused = False
    if pause_it and c["state"].get("status") == "running":
        try:
            pause(eng, c)
            paused = True
        except Exception:
            pass
    try:
        base = eng.image_config(c["image_id"])
        new_config = copy.deepcopy(base.data)
        run_config = copy.deepcopy(base.config)
        if changes:
            run_config = apply_changes(run_config, list(changes))
        new_config["config"] = run_config
        with eng.layers.using(), tempfile.TemporaryFile(dir=eng.content.ingest_dir) as tmp:
            if os.environ.get("DOCKYARD_SNAPSHOTTER") == "copy":
                from pathlib import Path

                merged = Path(tempfile.mkdtemp(dir=eng.content.ingest_dir))
                for low in lowers:
                    layers_mod.copy_layer_apply(low, merged)
                layers_mod.diff_dirs(merged, upper, tmp)
            else:
                stack = [cdir / "fs" / "init", *reversed(lowers)]
                layers_mod.write_diff_tar(upper, tmp, lower_dirs=[str(p) for p in stack])
            tmp.seek(0)
            parent_chain = c["config"]["chain"][-1] if c["config"]["chain"] else None
            layer = eng.add_layer_from_tar(tmp, parent_chain)
            from dockyard.engine import now_rfc3339

            created = now_rfc3339()
            new_config["created"] = created
            if author:
                new_config["author"] = author
            new_config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
            new_config["rootfs"]["diff_ids"] = [*base.diff_ids, layer.diff_id]
            new_config["container"] = c["id"]
            hist: dict[str, Any] = {"created": created, "created_by": " ".join(c["config"].get("args", []))}
            if message:
                hist["comment"] = message
            if author:
                hist["author"] = author
            new_config["history"] = [*base.history, hist]
            from dockyard.engine import NewLayer

            old_layers = [NewLayer(r["blob_digest"], r["blob_media_type"], r["blob_size"], d, r["chain_id"])
                          for r, d in zip(eng.db.image_layers(c["image_id"]), base.diff_ids, strict=True)]
            return eng.create_image(new_config, [*old_layers, layer], tags=[tag] if tag else [],
                                    parent=c["image_id"])
    finally:
        if paused:
            try:
                unpause(eng, resolve(eng, c["id"]))
            except Exception:
                pass


# ---- inspect --------------------------------------------------------------------------------
def inspect(eng: Engine, c: dict[str, Any]) -> dict[str, Any]:
    from dockyard.timestamps import rfc3339

    c = refresh(eng, c)
    st = c["state"]
    cfg = c["config"]
    opts = cfg.get("opts", {})
    status = st.get("status", "created")
    zero = "0001-01-01T00:00:00Z"
    cdir = container_path(eng, c["id"])
    img_cfg = cfg.get("image_config", {})
    args = cfg.get("args", [])
    return {
        "Id": c["id"],
        "Created": rfc3339(c["created"]),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "Status": status, "Running": status in ("running", "paused"), "Paused": status == "paused",
            "Restarting": False, "OOMKilled": bool(st.get("oom_killed")), "Dead": status == "dead",
            "Pid": st.get("pid", 0) if status in ("running", "paused") else 0,
            "ExitCode": st.get("exit_code", 0), "Error": st.get("error", ""),
            "StartedAt": rfc3339(st["started_at"]) if st.get("started_at") else zero,
            "FinishedAt": rfc3339(st["finished_at"]) if st.get("finished_at") else zero,
        },
        "Image": c["image_id"],
        "ResolvConfPath": os.path.join(cdir, "resolv.conf"),
        "HostnamePath": os.path.join(cdir, "hostname"),
        "HostsPath": os.path.join(cdir, "hosts"),
        "LogPath": _log_file(eng, c),
        "Name": "/" + c["name"],
        "RestartCount": 0,
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": {
            "NetworkMode": "default" if opts.get("network") in (None, "", "bridge") else opts["network"],
            "AutoRemove": bool(cfg.get("auto_remove")),
            "Privileged": bool(opts.get("privileged")),
            "ReadonlyRootfs": bool(opts.get("read_only")),
            "Memory": opts.get("memory") or 0,
            "NanoCpus": int(float(opts.get("cpus") or 0) * 1e9) if opts.get("cpus") else 0,
            "PidsLimit": opts.get("pids_limit"),
            "CapAdd": opts.get("cap_add") or None,
            "CapDrop": opts.get("cap_drop") or None,
            "Binds": [m for m in (opts.get("volumes") or [])] or None,
            "ShmSize": opts.get("shm_size") or 67108864,
            "Runtime": cfg.get("runtime", "builtin"),
        },
        "GraphDriver": {"Name": "overlay2", "Data": {
            "LowerDir": ":".join(eng.layers.diff_dir(x) for x in reversed(cfg.get("chain", []))),
            "UpperDir": os.path.join(cdir, "fs", "upper"), "WorkDir": os.path.join(cdir, "fs", "work"),
            "MergedDir": os.path.join(cdir, "fs", "merged")}},
        "Mounts": cfg.get("mounts") or [],
        "Config": {
            "Hostname": cfg.get("hostname", c["id"][:12]), "Domainname": "", "User": opts.get("user") or
            img_cfg.get("User", ""), "AttachStdin": bool(cfg.get("open_stdin")), "AttachStdout": True,
            "AttachStderr": True, "Tty": bool(cfg.get("tty")), "OpenStdin": bool(cfg.get("open_stdin")),
            "StdinOnce": bool(cfg.get("open_stdin")),
            "Env": _env_of(eng, c), "Cmd": opts.get("cmd") or img_cfg.get("Cmd"),
            "Image": c["image_ref"], "Volumes": img_cfg.get("Volumes"),
            "WorkingDir": opts.get("workdir") or img_cfg.get("WorkingDir", ""),
            "Entrypoint": opts.get("entrypoint") if opts.get("entrypoint") is not None else img_cfg.get("Entrypoint"),
            "OnBuild": None, "Labels": {**(img_cfg.get("Labels") or {}), **(opts.get("labels") or {})},
        },
        "NetworkSettings": st.get("network") or {"Bridge": "", "SandboxID": "", "Ports": {}, "IPAddress": "",
                                                 "Gateway": "", "MacAddress": "", "Networks": {}},
    }


def _env_of(eng: Engine, c: dict[str, Any]) -> list[str]:
    try:
        with open(os.path.join(container_path(eng, c["id"]), "config.json")) as f:
            return list(jsonc.loads(f.read())["process"].get("env", []))
    except (OSError, ValueError, KeyError):
        return []


# ---- export / cp ----------------------------------------------------------------------------
class _Mounted:
    """``with mounted(eng, c) as rootfs``: a class, not ``contextlib.contextmanager`` (start-up time).

    Holds the container's lock for the duration: a container that has just exited is still mounted until
    its monitor's cleanup (which takes the same lock) unmounts it, and ``export`` or ``cp`` must not be
    walking the tree when that happens.
    """

    def __init__(self, eng: Engine, c: dict[str, Any]) -> None:
        self._eng, self._c = eng, c
        self._snap: Any = None
        self._lock: FileLock | None = None

    def __enter__(self) -> Any:
        from dockyard.store import snapshots

        eng, c = self._eng, self._c
        cdir = container_path(eng, c["id"])
        lock = container_lock(cdir)
        lock.__enter__()
        try:
            snap = snapshots.Snapshot(os.path.join(cdir, "fs"),
                                      [eng.layers.diff_dir(x) for x in c["config"]["chain"]],
                                      snapshots.default_driver())
            if not snapshots.is_mounted(snap.rootfs):
                snapshots.mount(snap)
                self._snap = snap  # ours to take down
        except BaseException:
            lock.__exit__()
            raise
        self._lock = lock
        return snap.rootfs

    def __exit__(self, *exc: object) -> None:
        from dockyard.store import snapshots

        snap, self._snap = self._snap, None
        lock, self._lock = self._lock, None
        eng = self._eng
        try:
            if snap is not None and refresh(eng, resolve(eng, self._c["id"]))["state"].get("status") not in (
                    "running", "paused"):
                snapshots.unmount(snap)
        finally:
            if lock is not None:
                lock.__exit__()


def mounted(eng: Engine, c: dict[str, Any]) -> _Mounted:
    """The container's merged filesystem, mounted for the duration (already mounted if running)."""
    return _Mounted(eng, c)


def export(eng: Engine, c: dict[str, Any], output: str | None) -> None:
    import sys

    from dockyard.store import layers as layers_mod

    with mounted(eng, c) as rootfs:
        if output is None:
            layers_mod.write_diff_tar(rootfs, sys.stdout.buffer)
            return
        tmp = f"{output}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                layers_mod.write_diff_tar(rootfs, f)
            os.rename(tmp, output)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise


def copy(eng: Engine, src: str, dest: str) -> None:
    """``docker cp`` in either direction, with Docker's rules for directories and trailing slashes."""
    import shutil
    from pathlib import Path

    from dockyard.store import snapshots

    def split(arg: str) -> tuple[str | None, str]:
        if ":" in arg and not arg.startswith(("/", ".")):
            name, _, path = arg.partition(":")
            return name, path
        return None, arg

    s_name, s_path = split(src)
    d_name, d_path = split(dest)
    if (s_name is None) == (d_name is None):
        raise InvalidArgument("copying between containers or between two local paths is not supported: "
                              "name exactly one side as CONTAINER:PATH")
    name = s_name or d_name
    assert name is not None
    c = resolve(eng, name)
    with mounted(eng, c) as rootfs:
        if s_name is not None:
            source = snapshots.resolve_in_root(rootfs, s_path)
            target = Path(d_path)
        else:
            source = Path(s_path)
            target = snapshots.resolve_in_root(rootfs, d_path)
        if not os.path.lexists(source):
            raise InvalidArgument(f"Could not find the file {s_path} in container {name}" if s_name
                                  else f"stat {s_path}: no such file or directory")
        if target.is_dir():
            target = target / source.name
        elif d_path.endswith("/"):
            raise InvalidArgument(f"destination directory {d_path} does not exist")
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target, follow_symlinks=False)
