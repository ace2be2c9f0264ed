"""Container state on disk: ``<root>/<id>/state.json`` plus the status derivation.

Why a file per container and no daemon: every ``dockyard-runtime`` invocation is a short-lived process
(like runc), so everything ``state``/``kill``/``delete``/``exec`` need must be recoverable from disk.
``state.json`` is written atomically (temp file + rename) so a concurrent reader never sees half a file.

The status is *derived*, never stored, because the truth lives in the kernel:

* no ``state.json`` yet                              -> ``creating``
* init pid gone, zombie, or reused (start time differs) -> ``stopped``
* cgroup frozen                                        -> ``paused``
* ``exec.fifo`` still present (init blocked on it)     -> ``created``
* otherwise                                            -> ``running``
"""

from __future__ import annotations

import os
import time

from ..errors import Conflict, ContainerNotFound, InvalidArgument
from ..jsonc import dumps as json_dumps  # JSON without ``import json``: see dockyard.jsonc
from ..jsonc import loads as json_loads
from ..timestamps import rfc3339_ns

OCI_VERSION = "1.1.0"
STATE_FILE = "state.json"
FIFO_FILE = "exec.fifo"
CONFIG_FILE = "config.json"


class OCIState:
    """The runtime-spec ``state`` of a container (plus runc's ``rootfs``/``created``/``owner``).

    A plain class rather than a dataclass: importing ``dataclasses`` costs ~15 ms, which is a third of
    the runtime's whole budget for ``run``.
    """

    __slots__ = ("oci_version", "id", "status", "pid", "bundle", "annotations", "rootfs", "created", "owner")

    def __init__(
        self,
        oci_version: str,
        id: str,
        status: str,
        pid: int,
        bundle: str,
        annotations: dict[str, str] | None = None,
        rootfs: str = "",
        created: str = "",
        owner: str = "",
    ) -> None:
        self.oci_version = oci_version
        self.id = id
        self.status = status
        self.pid = pid
        self.bundle = bundle
        self.annotations = annotations or {}
        self.rootfs = rootfs
        self.created = created
        self.owner = owner

    def to_dict(self) -> dict[str, object]:
        """The JSON runc prints for ``state`` (and what hooks receive on stdin)."""
        out: dict[str, object] = {
            "ociVersion": self.oci_version,
            "id": self.id,
            "pid": self.pid,
            "status": self.status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        }
        if self.annotations:
            out["annotations"] = self.annotations
        return out

    def spec_dict(self) -> dict[str, object]:
        """Only the fields the runtime spec defines: what hooks receive on stdin (as runc sends)."""
        out: dict[str, object] = {
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": self.status,
            "pid": self.pid,
            "bundle": self.bundle,
        }
        if not self.pid:
            del out["pid"]  # as runc: no pid once the container is stopped
        if self.annotations:
            out["annotations"] = self.annotations
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OCIState):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return f"OCIState(id={self.id!r}, status={self.status!r}, pid={self.pid}, bundle={self.bundle!r})"


def rfc3339_now() -> str:
    return rfc3339_ns(time.time_ns())


def validate_id(container_id: str) -> None:
    """IDs become directory and cgroup names, so only runc's safe alphabet is allowed."""
    ok = container_id and container_id not in (".", "..") and len(container_id) <= 1024
    if ok:
        for ch in container_id:
            if not (ch.isascii() and (ch.isalnum() or ch in "_+-.")):
                ok = False
                break
    if not ok:
        raise InvalidArgument(f"invalid container id format: {container_id!r}")


class StateStore:
    """Directory layout under the runtime root; one instance per root, no caching."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)

    def dir(self, container_id: str) -> str:
        validate_id(container_id)
        return os.path.join(self.root, container_id)

    def reserve(self, container_id: str) -> str:
        """Create the container's directory; ``mkdir`` is the atomic claim on the id."""
        d = self.dir(container_id)
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(d, 0o711)
        except FileExistsError:
            raise Conflict(f"container with id {container_id} already exists")
        return d

    def write(self, container_id: str, data: dict[str, object]) -> None:
        self.commit_tmp(container_id, self.write_tmp(container_id, data))

    def write_tmp(self, container_id: str, data: dict[str, object]) -> str:
        """Write ``data`` beside state.json, invisible to readers until ``commit_tmp``; return its path."""
        tmp = os.path.join(self.dir(container_id), f".{STATE_FILE}.{os.getpid()}")
        with open(tmp, "w") as f:
            f.write(json_dumps(data))
        return tmp

    def commit_tmp(self, container_id: str, tmp: str) -> None:
        os.rename(tmp, os.path.join(self.dir(container_id), STATE_FILE))

    def read(self, container_id: str) -> dict[str, object] | None:
        """The raw saved state; None while ``create`` is still running; ContainerNotFound if unknown."""
        d = self.dir(container_id)
        try:
            with open(os.path.join(d, STATE_FILE), "rb") as f:
                return dict(json_loads(f.read()))
        except FileNotFoundError:
            if os.path.isdir(d):
                return None
            raise ContainerNotFound(f"container {container_id} does not exist")

    def ids(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.root) if not n.startswith("."))
        except FileNotFoundError:
            return []

    def remove(self, container_id: str) -> None:
        """Remove the state directory (flat: we only ever put plain files and a fifo in it)."""
        d = self.dir(container_id)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(d, name))
            except IsADirectoryError:
                pass
            except FileNotFoundError:
                pass
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass


def proc_start_time(pid: int) -> tuple[int, str] | None:
    """(start time in clock ticks, state letter) from /proc/<pid>/stat, or None if the pid is gone.

    The start time (field 22) tells a reused pid apart from the container's init.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    # fields[0] is field 3 (state); field 22 is fields[19].
    try:
        return int(fields[19]), fields[0].decode()
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, start_time: int | None) -> bool:
    """True if ``pid`` still is the process we started (not gone, not a zombie, not reused)."""
    if pid <= 0:
        return False
    info = proc_start_time(pid)
    if info is None:
        return False
    started, state = info
    if state in ("Z", "X", "x"):
        return False
    return start_time is None or started == start_time
