"""The ``Runtime`` interface implemented by invoking an external OCI runtime binary (runc, crun, ...).

Why: users choose their runtime (``--runtime runc``), and the built-in runtime is tested against runc
through the same interface.  Errors come back through ``--log FILE --log-format json`` (the container
may hold the runtime's stdout/stderr open long after ``create`` returns, so they cannot be read to EOF)
and are mapped onto Dockyard's error hierarchy by their wording, as Docker does with runc's messages.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

from ..errors import (
    CommandNotExecutable,
    CommandNotFound,
    Conflict,
    ContainerNotFound,
    InvalidArgument,
    RuntimeFailure,
)
from .state import OCI_VERSION, OCIState


def _error_for(msg: str) -> Exception:
    low = msg.lower()
    if "does not exist" in low or "not found" in low and "container" in low and "exec" not in low:
        return ContainerNotFound(msg)
    if "already exists" in low:
        return Conflict(msg)
    if "executable file not found" in low or ("exec:" in low and "no such file or directory" in low):
        return CommandNotFound(msg)
    if "exec:" in low and "permission denied" in low:
        return CommandNotExecutable(msg)
    if "cannot " in low and ("container" in low or "running" in low or "stopped" in low or "paused" in low):
        return Conflict(msg)
    if "not running" in low or "not paused" in low or "not stopped" in low:
        return Conflict(msg)
    return RuntimeFailure(msg)


class ExternalRuntime:
    """``runc``-compatible binary behind the ``Runtime`` protocol (see ``dockyard.runtime``)."""

    def __init__(self, binary: str = "runc", root: str | os.PathLike[str] | None = None,
                 *, extra_args: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.binary = binary
        self.root = os.fspath(root) if root is not None else None
        self.extra_args = extra_args

    def _argv(self, log: str | None, *args: str) -> list[str]:
        argv = [self.binary]
        if self.root:
            argv += ["--root", self.root]
        if log:
            argv += ["--log", log, "--log-format", "json"]
        return argv + list(self.extra_args) + list(args)

    def _call(self, *args: str, stdio: tuple[int, int, int] | None = None, capture: bool = True) -> str:
        """Run the binary; raise the mapped error on failure; return stdout when captured."""
        with tempfile.NamedTemporaryFile(prefix="dockyard-runtime-log-", suffix=".json") as log:
            kwargs: dict[str, object] = {}
            if stdio is not None:
                kwargs = {"stdin": stdio[0], "stdout": stdio[1], "stderr": stdio[2]}
            elif capture:
                kwargs = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
            try:
                proc = subprocess.run(self._argv(log.name, *args), **kwargs)  # type: ignore[call-overload]
            except FileNotFoundError:
                raise RuntimeFailure(f"OCI runtime {self.binary!r} is not installed")
            if proc.returncode != 0:
                raise _error_for(self._last_error(log.name, proc) or f"{self.binary} {args[0]} failed")
            out = proc.stdout if capture and stdio is None else b""
            return out.decode() if isinstance(out, bytes) else ""

    @staticmethod
    def _last_error(log_path: str, proc: subprocess.CompletedProcess[bytes]) -> str:
        msg = ""
        try:
            with open(log_path, errors="replace") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if rec.get("level") in ("error", "fatal"):
                        msg = str(rec.get("msg", ""))
        except OSError:
            pass
        if not msg and isinstance(proc.stderr, bytes):
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            msg = lines[-1] if lines else ""
        return msg

    def create(
        self,
        id: str,
        bundle: str | os.PathLike[str],
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: str | None = None,
        pid_file: str | None = None,
        no_pivot: bool = False,
    ) -> int:
        with tempfile.TemporaryDirectory(prefix="dockyard-runtime-") as tmp:
            pf = pid_file or os.path.join(tmp, "pid")
            args = ["create", "--bundle", os.fspath(bundle), "--pid-file", pf]
            if console_socket:
                args += ["--console-socket", console_socket]
            if no_pivot:
                args.append("--no-pivot")
            self._call(*args, id, stdio=stdio, capture=False)
            with open(pf) as f:
                return int(f.read().strip())

    def start(self, id: str) -> None:
        self._call("start", id)

    def state(self, id: str) -> OCIState:
        return self._to_state(json.loads(self._call("state", id)))

    @staticmethod
    def _to_state(d: dict[str, object]) -> OCIState:
        return OCIState(
            str(d.get("ociVersion") or OCI_VERSION),
            str(d["id"]),
            str(d.get("status") or ""),
            int(str(d.get("pid") or 0)),
            str(d.get("bundle") or ""),
            d.get("annotations") or {},  # type: ignore[arg-type]
            str(d.get("rootfs") or ""),
            str(d.get("created") or ""),
            str(d.get("owner") or ""),
        )

    def kill(self, id: str, sig: int | str = "SIGTERM", *, all: bool = False) -> None:
        args = ["kill"] + (["--all"] if all else []) + [id, str(sig)]
        self._call(*args)

    def delete(self, id: str, *, force: bool = False) -> None:
        self._call(*(["delete"] + (["--force"] if force else []) + [id]))

    def exec(self, id: str, process: dict[str, object], *, stdio: tuple[int, int, int] | None = None,
             console_socket: str | None = None, pid_file: str | None = None, detach: bool = True) -> int:  # fmt: skip
        """As ``BuiltinRuntime.exec``: the pid when detached, else the process's exit status."""
        if not process.get("args"):
            raise InvalidArgument("exec: process.args must not be empty")
        with tempfile.TemporaryDirectory(prefix="dockyard-runtime-") as tmp:
            proc_path = os.path.join(tmp, "process.json")
            with open(proc_path, "w") as f:
                json.dump(process, f)
            pf = pid_file or os.path.join(tmp, "pid")
            args = ["exec", "--process", proc_path, "--pid-file", pf]
            if console_socket:
                args += ["--console-socket", console_socket]
            if detach:
                self._call(*args, "--detach", id, stdio=stdio, capture=False)
                with open(pf) as f:
                    return int(f.read().strip())
            log = os.path.join(tmp, "log.json")
            kwargs: dict[str, object] = {}
            if stdio is not None:
                kwargs = {"stdin": stdio[0], "stdout": stdio[1], "stderr": stdio[2]}
            proc = subprocess.run(self._argv(log, *args, id), **kwargs)  # type: ignore[call-overload]
            err = self._last_error(log, proc)
            if err:
                raise _error_for(err)
            return int(proc.returncode)

    def pause(self, id: str) -> None:
        self._call("pause", id)

    def resume(self, id: str) -> None:
        self._call("resume", id)

    def list(self) -> list[OCIState]:
        data = json.loads(self._call("list", "--format", "json") or "null") or []
        return [self._to_state(d) for d in data]
