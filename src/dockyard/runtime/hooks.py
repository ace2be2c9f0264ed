"""OCI hooks: run each hook with the container state JSON on stdin, honouring its timeout.

Why a separate module: hooks are rare, and ``subprocess`` costs several milliseconds to import, so it is
imported only when a config actually has hooks.  The caller decides what a failure means (the spec: a
failing prestart/createRuntime/createContainer/startContainer hook aborts the container; a failing
poststart/poststop hook is only a warning) -- this module just reports it as ``RuntimeFailure``.
"""

from __future__ import annotations

import os

from ..errors import RuntimeFailure


def run_hooks(hooks: list[dict[str, object]], phase: str, state_json: bytes) -> None:
    """Run ``hooks`` in order; the first failure raises with runc's wording."""
    if not hooks:
        return
    import subprocess

    for i, hook in enumerate(hooks):
        path = str(hook.get("path") or "")
        args = [str(a) for a in hook.get("args") or [path]]  # type: ignore[attr-defined]
        env_list = hook.get("env")
        env: dict[str, str] | None = None
        if isinstance(env_list, list):
            env = {}
            for item in env_list:
                k, _, v = str(item).partition("=")
                env[k] = v
        timeout = hook.get("timeout")
        try:
            proc = subprocess.run(
                args,
                executable=path,
                input=state_json,
                env=env,
                capture_output=True,
                timeout=float(str(timeout)) if timeout else None,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeFailure(f"error running {phase} hook #{i}: timeout after {timeout}s")
        except OSError as e:
            raise RuntimeFailure(f"error running {phase} hook #{i}: fork/exec {path}: {e.strerror or e}")
        if proc.returncode != 0:
            status = (
                f"exit status {proc.returncode}" if proc.returncode > 0 else f"signal: {-proc.returncode}"
            )
            raise RuntimeFailure(
                f"error running {phase} hook #{i}: {status}, stdout: {proc.stdout.decode(errors='replace')}, "
                f"stderr: {proc.stderr.decode(errors='replace')}"
            )


def hooks_of(config: dict[str, object], phase: str) -> list[dict[str, object]]:
    hooks = config.get("hooks")
    if not isinstance(hooks, dict):
        return []
    found = hooks.get(phase)
    return list(found) if isinstance(found, list) else []


def warn(message: str) -> None:
    """Poststart/poststop failures are warnings; write them where runc's would go (stderr)."""
    try:
        os.write(2, f"dockyard-runtime: warning: {message}\n".encode())
    except OSError:
        pass
