"""A fully cached ``dockyard build`` only reads: no container machinery loaded, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLI

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds run containers: they need root")

DOCKERFILE = """FROM busybox
ENV A=1
RUN echo one > /one
WORKDIR /app
RUN echo $A > two
CMD ["cat", "/app/two"]
"""

# What only a step that runs (or a COPY) needs: none of it may load for a build that is all cache hits.
MISS_ONLY = ("dockyard.build.executor", "dockyard.store.layers", "dockyard.runtime.builtin", "dockyard.ops.pull",
             "dataclasses", "hashlib", "tarfile", "shutil", "copy")


def build_in_process(root: Path, ctx: Path, *args: str) -> tuple[str, list[str]]:
    """(stdout, the MISS_ONLY modules loaded) for ``dockyard build ARGS CTX`` in a fresh interpreter."""
    code = ("import json, sys\n"
            "from dockyard.cli.main import main\n"
            f"argv = ['--root', {str(root)!r}, 'build', *{list(args)!r}, {str(ctx)!r}]\n"
            "try:\n"
            "    main(argv)  # with argv, main returns (the console script's main() ends the process)\n"
            "finally:\n"
            f"    print(json.dumps(sorted(m for m in {MISS_ONLY!r} if m in sys.modules)))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    *out, loaded = p.stdout.splitlines()
    return "\n".join(out), json.loads(loaded)


def db_state(root: Path) -> tuple[list[tuple[object, ...]], ...]:
    from dockyard.engine import Engine

    with Engine(root) as eng:
        return tuple([tuple(row) for row in eng.db.conn.execute(f"SELECT * FROM {table} ORDER BY 1")]
                     for table in ("images", "image_layers", "tags", "build_cache", "layers"))


def test_a_cached_rebuild_loads_nothing_for_running_steps_and_writes_nothing(
        cli: CLI, busybox_image: str, root: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    first = cli("build", "-q", "-t", "cached:1", str(ctx)).stdout.strip()
    before = db_state(root)
    blobs = sorted(os.listdir(root / "blobs" / "sha256"))

    out, loaded = build_in_process(root, ctx, "-t", "cached:1")
    assert loaded == []
    assert out.count("CACHED") == 3, out  # RUN, WORKDIR, RUN
    assert f"writing image {first} done" in out
    assert db_state(root) == before
    assert sorted(os.listdir(root / "blobs" / "sha256")) == blobs

    # A new tag for the same image is the one thing written.
    out, loaded = build_in_process(root, ctx, "-q", "-t", "cached:2")
    assert out.strip() == first and loaded == []
    assert cli("images", "-q", "--no-trunc", "cached:2").stdout.strip() == first


def test_a_changed_step_after_cached_ones_builds_what_a_cold_build_builds(
        cli: CLI, busybox_image: str, root: Path, tmp_path: Path) -> None:
    """The cached steps hand the changed one their layers, and the result has the config and history
    that a build from scratch gives."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    cli("build", "-q", "-t", "warm:1", str(ctx))
    (ctx / "Dockerfile").write_text(DOCKERFILE.replace("echo $A > two", "echo $A$A > two"))
    warm = cli("build", "-t", "changed:1", str(ctx)).stdout
    assert warm.count("CACHED") == 2, warm  # RUN, WORKDIR

    cold = cli("build", "--no-cache", "-q", "-t", "cold:1", str(ctx)).stdout.strip()
    from dockyard.engine import Engine

    with Engine(root) as eng:
        a = eng.image_config(eng.resolve_image("changed:1")).data
        b = eng.image_config(cold).data
        w = eng.image_config(eng.resolve_image("warm:1")).data
    assert a["rootfs"]["diff_ids"][:-1] == w["rootfs"]["diff_ids"][:-1]
    assert a["rootfs"]["diff_ids"][-1] != w["rootfs"]["diff_ids"][-1]
    assert a["config"] == b["config"]
    # (layer digests may differ: a tar keeps the files' mtimes, in whole seconds)
    assert len(a["rootfs"]["diff_ids"]) == len(b["rootfs"]["diff_ids"])
    assert [(h.get("created_by"), h.get("empty_layer")) for h in a["history"]] == \
        [(h.get("created_by"), h.get("empty_layer")) for h in b["history"]]
