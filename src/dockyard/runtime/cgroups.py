"""Control groups: one interface (``Cgroup``) with a v1 and a v2 implementation.

Why both: hosts still ship the hybrid layout (v1 controllers under ``/sys/fs/cgroup/<controller>`` with
cgroup2 at ``/sys/fs/cgroup/unified``) next to pure v2.  ``detect()`` picks v2 only when
``/sys/fs/cgroup`` itself is a cgroup2 mount (``cgroup.controllers`` at the top), as runc does.

What each implementation does, from ``linux.resources``:

===================  =====================================  ==========================================
resource             v1 file                                v2 file
===================  =====================================  ==========================================
memory.limit         memory.limit_in_bytes                  memory.max
memory.swap          memory.memsw.limit_in_bytes (mem+swp)  memory.swap.max (swap - limit, as runc)
memory.reservation   memory.soft_limit_in_bytes             memory.low
memory.swappiness    memory.swappiness                      (not in v2)
disableOOMKiller     memory.oom_control                     (not in v2)
cpu.shares           cpu.shares                             cpu.weight (runc's conversion)
cpu.quota/period     cpu.cfs_quota_us / cpu.cfs_period_us   cpu.max
cpu.cpus/mems        cpuset.cpus / cpuset.mems              cpuset.cpus / cpuset.mems
pids.limit           pids.max                               pids.max
blockIO.weight       blkio.weight                           io.weight (runc's conversion)
hugepageLimits       hugetlb.<size>.limit_in_bytes          hugetlb.<size>.max
devices              devices.allow / devices.deny           NOT ENFORCED (needs an eBPF program)
unified              error (spec: MUST fail on v1)          written verbatim
===================  =====================================  ==========================================

v2 device rules need a ``BPF_PROG_TYPE_CGROUP_DEVICE`` program attached to the cgroup; that is not
implemented (the VM this was written on is v1).  On v2, ``apply`` accepts device rules and does not
enforce them; ``Cgroup.devices_enforced`` is False so the caller can warn.

Freezing (pause/resume) uses ``freezer.state`` (v1) or ``cgroup.freeze`` (v2) and waits until the
kernel reports the group frozen.  ``oom_kills()`` reads ``oom_kill`` from ``memory.oom_control`` (v1)
or ``memory.events`` (v2).
"""

from __future__ import annotations

import errno
import os
import time

from ..errors import RuntimeFailure
from ..rootpath import decode_mount_point

CGROUP_ROOT = "/sys/fs/cgroup"

#: Devices every container may use even under a deny-all rule (runc 1.1's AllowedDevices).
DEFAULT_DEVICE_RULES: tuple[dict[str, object], ...] = (
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
)


def device_program(rules: list[dict[str, object]]) -> tuple[bool, list[str]]:
    """Reduce OCI device rules to (default allow?, exception lines), as runc's devices emulator does.

    Writing the rules one by one would work too, but the kernel keeps exceptions in insertion order;
    reducing first gives the same, sorted ``devices.list`` as runc and fewer writes.
    """
    default_allow = True
    exceptions: dict[tuple[str, int, int], set[str]] = {}
    for rule in rules:
        kind = str(rule.get("type") or "a")
        allow = bool(rule.get("allow"))
        access = set(str(rule.get("access") or "rwm"))
        major = rule.get("major")
        minor = rule.get("minor")
        if kind == "a":
            default_allow = allow
            exceptions.clear()
            continue
        key = (kind, -1 if major is None else int(str(major)), -1 if minor is None else int(str(minor)))
        if allow != default_allow:
            exceptions.setdefault(key, set()).update(access)
        elif key in exceptions:
            exceptions[key] -= access
            if not exceptions[key]:
                del exceptions[key]
    lines = []
    for (kind, major, minor), acc in sorted(exceptions.items()):
        maj = "*" if major < 0 else str(major)
        mnr = "*" if minor < 0 else str(minor)
        lines.append(f"{kind} {maj}:{mnr} {''.join(c for c in 'rwm' if c in acc)}")
    return default_allow, lines


def _write(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise RuntimeFailure(f'failed to write "{value}" to "{path}": {e.strerror or e}')


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _keyed(path: str) -> dict[str, int]:
    """Parse a flat ``key value`` file such as memory.events or memory.oom_control."""
    out: dict[str, int] = {}
    try:
        for line in _read(path).splitlines():
            k, _, v = line.partition(" ")
            try:
                out[k] = int(v)
            except ValueError:
                pass
    except OSError:
        pass
    return out


def _wait_rmdir(path: str, deadline: float) -> None:
    """rmdir a cgroup, children first, retrying while exiting tasks still pin it (EBUSY)."""
    try:
        os.rmdir(path)  # the usual case, a leaf: no need to list its few dozen control files
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _wait_rmdir(entry.path, deadline)
    delay = 0.001
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            # EBUSY right after the last task exited is a transient (exit is still being accounted);
            # EBUSY with live tasks (a cgroup shared with another container) will not go away.
            if e.errno != errno.EBUSY or time.monotonic() > deadline or _procs_under(path):
                raise RuntimeFailure(f"unable to remove cgroup {path}: {e.strerror}")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _procs_under(path: str) -> list[int]:
    pids: list[int] = []
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            pids.extend(int(x) for x in f.read().split())
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                pids.extend(_procs_under(entry.path))
    except FileNotFoundError:
        pass
    return pids


class Cgroup:
    """What the runtime needs from a container's cgroup, whatever the hierarchy."""

    version = 0
    devices_enforced = True

    def create(self) -> None:
        raise NotImplementedError

    def apply(self, resources: dict[str, object]) -> None:
        raise NotImplementedError

    def procs_files(self) -> list[str]:
        """``cgroup.procs`` files a process must write itself ("0") into to join the cgroup."""
        raise NotImplementedError

    def join(self, pid: int = 0) -> None:
        """Move ``pid`` (0: the caller itself) into the cgroup.  Use 0 where possible: the kernel moves
        the caller without taking cgroup_threadgroup_rwsem for writing, whose RCU grace period costs
        10-20 ms; naming any pid, even one's own or a single thread's, takes it."""
        for path in self.procs_files():
            _write(path, str(pid))

    def pids(self) -> list[int]:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def frozen(self) -> bool:
        raise NotImplementedError

    def oom_kills(self) -> int:
        raise NotImplementedError

    def destroy(self, timeout: float = 2.0) -> None:
        raise NotImplementedError

    def to_json(self) -> dict[str, object]:
        raise NotImplementedError

    def bind_sources(self) -> list[tuple[str, str]]:
        """(name under the container's /sys/fs/cgroup, host path) for a ``cgroup`` mount without cgroupns."""
        raise NotImplementedError


def _mountinfo_cgroups() -> list[tuple[str, str, list[str], str]]:
    """(mountpoint, fstype, controllers, mount root) for each cgroup/cgroup2 mount."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fstype, _src, sopts = (post.split() + ["", "", ""])[:3]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            fields = pre.split()
            root, mnt = fields[3], decode_mount_point(fields[4])
            ctrls = [o for o in sopts.split(",") if o not in ("rw", "ro") and "=" not in o or o.startswith("name=")]
            out.append((mnt, fstype, ctrls, root))
    return out


def _own_cgroups() -> dict[str, str]:
    """controller (or "name=x", or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                out[c] = path
    return out


class CgroupV1(Cgroup):
    """One directory per mounted v1 hierarchy (cpu, memory, pids, freezer, name=systemd, ...)."""

    version = 1

    def __init__(self, paths: dict[str, str], controllers: dict[str, list[str]]) -> None:
        #: hierarchy mountpoint -> the container's directory in it
        self.paths = paths
        #: hierarchy mountpoint -> the controllers it carries
        self.controllers = controllers

    @classmethod
    def for_path(cls, cgroups_path: str, root: str = CGROUP_ROOT) -> CgroupV1:
        own = _own_cgroups()
        paths: dict[str, str] = {}
        ctrls: dict[str, list[str]] = {}
        for mnt, fstype, controllers, mroot in _mountinfo_cgroups():
            if fstype != "cgroup" or not (mnt == root or mnt.startswith(root + "/")):
                continue
            if cgroups_path.startswith("/"):
                rel = cgroups_path
            else:
                base = next((own[c] for c in controllers if c in own), "/")
                if mroot != "/" and base.startswith(mroot):
                    base = base[len(mroot) :] or "/"
                rel = os.path.join(base, cgroups_path)
            paths[mnt] = os.path.normpath(mnt + "/" + rel.lstrip("/"))
            ctrls[mnt] = controllers
        if not paths:
            raise RuntimeFailure(f"no cgroup v1 hierarchies mounted under {root}")
        return cls(paths, ctrls)

    def _path(self, controller: str) -> str | None:
        for mnt, ctrls in self.controllers.items():
            if controller in ctrls:
                return self.paths[mnt]
        return None

    def create(self) -> None:
        for mnt, path in self.paths.items():
            try:
                os.mkdir(path)  # the usual case: a new leaf under an existing parent
                fresh = True
            except FileExistsError:
                fresh = False
            except FileNotFoundError:
                os.makedirs(path, exist_ok=True)
                fresh = False
            if "cpuset" in self.controllers[mnt]:
                self._init_cpuset(mnt, path, fresh)

    @staticmethod
    def _init_cpuset(mnt: str, path: str, fresh: bool = False) -> None:
        """A new v1 cpuset has empty cpus/mems and refuses tasks: copy them down from the parent.
        ``fresh``: ``path`` was just made, so its values are empty -- only its parent's need reading."""
        if fresh:
            parent = os.path.dirname(path)
            try:
                values = [_read(os.path.join(parent, name)).strip() for name in ("cpuset.cpus", "cpuset.mems")]
            except OSError:
                values = []
            if len(values) == 2 and all(values):
                _write(os.path.join(path, "cpuset.cpus"), values[0])
                _write(os.path.join(path, "cpuset.mems"), values[1])
                return
        chain = []
        p = path
        while p != mnt and p.startswith(mnt):
            chain.append(p)
            p = os.path.dirname(p)
        for d in reversed(chain):
            parent = os.path.dirname(d)
            for name in ("cpuset.cpus", "cpuset.mems"):
                try:
                    if not _read(os.path.join(d, name)).strip():
                        _write(os.path.join(d, name), _read(os.path.join(parent, name)).strip())
                except OSError:
                    pass

    def apply(self, resources: dict[str, object]) -> None:
        if resources.get("unified"):
            raise RuntimeFailure("linux.resources.unified requires cgroup v2, but the host uses cgroup v1")
        mem = resources.get("memory")
        if isinstance(mem, dict) and (p := self._path("memory")):
            self._apply_memory(p, mem)
        cpu = resources.get("cpu")
        if isinstance(cpu, dict):
            if p := self._path("cpu"):
                if cpu.get("shares"):
                    _write(f"{p}/cpu.shares", str(cpu["shares"]))
                if cpu.get("period"):
                    _write(f"{p}/cpu.cfs_period_us", str(cpu["period"]))
                if cpu.get("quota") not in (None, 0):
                    _write(f"{p}/cpu.cfs_quota_us", str(cpu["quota"]))
                if cpu.get("realtimePeriod"):
                    _write(f"{p}/cpu.rt_period_us", str(cpu["realtimePeriod"]))
                if cpu.get("realtimeRuntime"):
                    _write(f"{p}/cpu.rt_runtime_us", str(cpu["realtimeRuntime"]))
            if p := self._path("cpuset"):
                if cpu.get("cpus"):
                    _write(f"{p}/cpuset.cpus", str(cpu["cpus"]))
                if cpu.get("mems"):
                    _write(f"{p}/cpuset.mems", str(cpu["mems"]))
        pids = resources.get("pids")
        if isinstance(pids, dict) and "limit" in pids and (p := self._path("pids")):
            limit = int(pids["limit"])
            _write(f"{p}/pids.max", "max" if limit <= 0 else str(limit))
        blkio = resources.get("blockIO")
        if isinstance(blkio, dict) and blkio.get("weight") and (p := self._path("blkio")):
            name = "blkio.weight" if os.path.exists(f"{p}/blkio.weight") else "blkio.bfq.weight"
            _write(f"{p}/{name}", str(blkio["weight"]))
        hugepages = resources.get("hugepageLimits")
        if isinstance(hugepages, list) and (p := self._path("hugetlb")):
            for h in hugepages:
                _write(f"{p}/hugetlb.{h['pageSize']}.limit_in_bytes", str(h["limit"]))
        devices = resources.get("devices")
        if isinstance(devices, list) and devices and (p := self._path("devices")):
            default_allow, lines = device_program([*devices, *DEFAULT_DEVICE_RULES])
            if default_allow:
                _write(f"{p}/devices.allow", "a")
                for line in lines:
                    _write(f"{p}/devices.deny", line)
            else:
                _write(f"{p}/devices.deny", "a")
                for line in lines:
                    _write(f"{p}/devices.allow", line)

    @staticmethod
    def _apply_memory(p: str, mem: dict[str, object]) -> None:
        limit = mem.get("limit")
        swap = mem.get("swap")
        memsw = f"{p}/memory.memsw.limit_in_bytes"
        has_memsw = os.path.exists(memsw)
        if limit is not None and int(str(limit)) != 0:
            lim = int(str(limit))
            if swap is not None and has_memsw and int(str(swap)) != 0:
                sw = int(str(swap))
                # memsw >= limit at every moment: raise memsw first when growing, limit first when shrinking.
                current = int(_read(f"{p}/memory.limit_in_bytes"))
                if sw == -1 or lim < 0 or current < lim:
                    _write(memsw, str(sw))
                    _write(f"{p}/memory.limit_in_bytes", str(lim))
                else:
                    _write(f"{p}/memory.limit_in_bytes", str(lim))
                    _write(memsw, str(sw))
            else:
                _write(f"{p}/memory.limit_in_bytes", str(lim))
        elif swap is not None and has_memsw and int(str(swap)) != 0:
            _write(memsw, str(swap))
        if mem.get("reservation"):
            _write(f"{p}/memory.soft_limit_in_bytes", str(mem["reservation"]))
        if mem.get("swappiness") is not None and int(str(mem["swappiness"])) >= 0:
            _write(f"{p}/memory.swappiness", str(mem["swappiness"]))
        if mem.get("disableOOMKiller"):
            _write(f"{p}/memory.oom_control", "1")

    def procs_files(self) -> list[str]:
        # "tasks", not "cgroup.procs": the callers are freshly forked, single-threaded processes, and a
        # thread-level move skips the kernel's cgroup_threadgroup_rwsem write lock, whose RCU grace
        # period costs 10-20 ms per container (measured).
        return [os.path.join(p, "tasks") for p in self.paths.values()]

    def _any(self) -> str:
        for c in ("pids", "freezer", "memory", "cpu", "devices"):
            if p := self._path(c):
                return p
        return next(iter(self.paths.values()))

    def pids(self) -> list[int]:
        return _procs_under(self._any())

    def freeze(self) -> None:
        self._set_freezer("FROZEN")

    def thaw(self) -> None:
        self._set_freezer("THAWED")

    def _set_freezer(self, state: str) -> None:
        p = self._path("freezer")
        if p is None:
            raise RuntimeFailure("the freezer cgroup controller is not mounted")
        deadline = time.monotonic() + 10
        while True:
            _write(f"{p}/freezer.state", state)
            if _read(f"{p}/freezer.state").strip() == state:
                return
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"timed out waiting for {p} to become {state}")
            time.sleep(0.001)

    def frozen(self) -> bool:
        p = self._path("freezer")
        if p is None:
            return False
        try:
            return _read(f"{p}/freezer.state").strip() == "FROZEN"
        except OSError:
            return False

    def oom_kills(self) -> int:
        p = self._path("memory")
        if p is None:
            return 0
        counts = _keyed(f"{p}/memory.oom_control")
        if "oom_kill" in counts:
            return counts["oom_kill"]
        # Kernels before 4.13 have no oom_kill counter: a non-zero failcnt is the best available hint.
        try:
            return 1 if int(_read(f"{p}/memory.failcnt")) > 0 else 0
        except (OSError, ValueError):
            return 0

    def destroy(self, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        for path in self.paths.values():
            _wait_rmdir(path, deadline)

    def to_json(self) -> dict[str, object]:
        return {"version": 1, "paths": self.paths, "controllers": self.controllers}

    def bind_sources(self) -> list[tuple[str, str]]:
        return [(os.path.basename(mnt), path) for mnt, path in self.paths.items()]


class CgroupV2(Cgroup):
    """A single directory in the unified hierarchy; ``root`` is injectable so tests can use a temp dir."""

    version = 2
    devices_enforced = False

    def __init__(self, path: str, root: str = CGROUP_ROOT) -> None:
        self.root = root
        self.path = path

    @classmethod
    def for_path(cls, cgroups_path: str, root: str = CGROUP_ROOT) -> CgroupV2:
        if cgroups_path.startswith("/"):
            rel = cgroups_path
        else:
            try:
                base = _own_cgroups().get("", "/")
            except OSError:
                base = "/"
            rel = os.path.join(base, cgroups_path)
        return cls(os.path.normpath(root + "/" + rel.lstrip("/")), root)

    def create(self) -> None:
        # Enable every available controller from the root down to the parent, so the leaf gets the files.
        rel = os.path.relpath(self.path, self.root)
        parts = [] if rel == "." else rel.split("/")
        cur = self.root
        for part in parts:
            try:
                available = _read(os.path.join(cur, "cgroup.controllers")).split()
            except FileNotFoundError:
                available = []
            try:
                enabled = set(_read(os.path.join(cur, "cgroup.subtree_control")).split())
            except FileNotFoundError:
                enabled = set()
            wanted = [c for c in available if c not in enabled]
            if wanted:
                _write(os.path.join(cur, "cgroup.subtree_control"), " ".join("+" + c for c in wanted))
            cur = os.path.join(cur, part)
            try:
                os.mkdir(cur, 0o755)
            except FileExistsError:
                pass

    def _w(self, name: str, value: object) -> None:
        _write(os.path.join(self.path, name), str(value))

    def apply(self, resources: dict[str, object]) -> None:
        mem = resources.get("memory")
        if isinstance(mem, dict):
            limit = int(str(mem.get("limit") or 0))
            swap = int(str(mem.get("swap") or 0))
            if limit:
                self._w("memory.max", "max" if limit < 0 else limit)
            if swap:
                if swap == -1:
                    self._w("memory.swap.max", "max")
                elif limit <= 0:
                    raise RuntimeFailure("unable to set swap limit without memory limit")
                elif swap < limit:
                    raise RuntimeFailure(f"memory+swap limit ({swap}) should be bigger than memory limit ({limit})")
                else:
                    self._w("memory.swap.max", swap - limit)
            if mem.get("reservation"):
                self._w("memory.low", mem["reservation"])
        cpu = resources.get("cpu")
        if isinstance(cpu, dict):
            shares = int(str(cpu.get("shares") or 0))
            if shares:
                self._w("cpu.weight", 1 + ((shares - 2) * 9999) // 262142)
            quota = cpu.get("quota")
            period = int(str(cpu.get("period") or 0))
            if quota not in (None, 0) or period:
                q = "max" if quota is None or int(str(quota)) <= 0 else str(quota)
                self._w("cpu.max", f"{q} {period or 100000}")
            if cpu.get("cpus"):
                self._w("cpuset.cpus", cpu["cpus"])
            if cpu.get("mems"):
                self._w("cpuset.mems", cpu["mems"])
        pids = resources.get("pids")
        if isinstance(pids, dict) and "limit" in pids:
            limit = int(str(pids["limit"]))
            self._w("pids.max", "max" if limit <= 0 else limit)
        blkio = resources.get("blockIO")
        if isinstance(blkio, dict) and blkio.get("weight"):
            self._w("io.weight", 1 + (int(str(blkio["weight"])) - 10) * 9999 // 990)
        hugepages = resources.get("hugepageLimits")
        if isinstance(hugepages, list):
            for h in hugepages:
                self._w(f"hugetlb.{h['pageSize']}.max", h["limit"])
        unified = resources.get("unified")
        if isinstance(unified, dict):
            for key, value in unified.items():
                if "/" in key or key.startswith("."):
                    raise RuntimeFailure(f"invalid linux.resources.unified key {key!r}")
                self._w(key, value)

    def procs_files(self) -> list[str]:
        return [os.path.join(self.path, "cgroup.procs")]

    def pids(self) -> list[int]:
        return _procs_under(self.path)

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def _set_frozen(self, on: bool) -> None:
        self._w("cgroup.freeze", "1" if on else "0")
        deadline = time.monotonic() + 10
        while self.frozen() != on:
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"timed out waiting for {self.path} to {'freeze' if on else 'thaw'}")
            time.sleep(0.001)

    def frozen(self) -> bool:
        events = _keyed(os.path.join(self.path, "cgroup.events"))
        if "frozen" in events:
            return events["frozen"] == 1
        try:
            return _read(os.path.join(self.path, "cgroup.freeze")).strip() == "1"
        except OSError:
            return False

    def oom_kills(self) -> int:
        return _keyed(os.path.join(self.path, "memory.events")).get("oom_kill", 0)

    def destroy(self, timeout: float = 2.0) -> None:
        _wait_rmdir(self.path, time.monotonic() + timeout)

    def to_json(self) -> dict[str, object]:
        return {"version": 2, "path": self.path, "root": self.root}

    def bind_sources(self) -> list[tuple[str, str]]:
        return [("", self.path)]


def detect(root: str = CGROUP_ROOT) -> int:
    """1 or 2: which implementation the host's ``root`` calls for."""
    return 2 if os.path.exists(os.path.join(root, "cgroup.controllers")) else 1


def for_container(cgroups_path: str, root: str = CGROUP_ROOT) -> Cgroup:
    if detect(root) == 2:
        return CgroupV2.for_path(cgroups_path, root)
    return CgroupV1.for_path(cgroups_path, root)


def from_json(data: dict[str, object]) -> Cgroup:
    if data.get("version") == 2:
        return CgroupV2(str(data["path"]), str(data.get("root") or CGROUP_ROOT))
    paths = data.get("paths")
    controllers = data.get("controllers")
    assert isinstance(paths, dict) and isinstance(controllers, dict)
    return CgroupV1({str(k): str(v) for k, v in paths.items()}, {str(k): list(v) for k, v in controllers.items()})
