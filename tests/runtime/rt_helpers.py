"""Helpers shared by the runtime tests (a module, not conftest, so tests can import them)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from dockyard.runtime.cli import default_spec

CGROUP_PARENT = "dockyard-test"


def base_config(args: list[str]) -> dict[str, Any]:
    """runc's default spec, non-interactive, running ``args``, in its own cgroup."""
    cfg = copy.deepcopy(default_spec())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    cfg["hostname"] = "bundle"
    cfg["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{uuid.uuid4().hex[:12]}"
    return cfg


def new_id() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def delete_all(runtime: Any) -> None:
    """Force-delete whatever a runtime (builtin or external, Python interface) still lists."""
    for st in runtime.list():
        try:
            runtime.delete(st.id, force=True)
        except Exception:
            pass
