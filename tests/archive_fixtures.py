"""Images for the save/load tests, built from the host's static busybox with Python's tarfile."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from dockyard.engine import Engine, NewLayer
from dockyard.image.oci import OCI_LAYER_GZIP, chain_ids

BUSYBOX = Path("/bin/busybox")
APPLETS_FALLBACK = ["sh", "ls", "cat", "echo", "true", "false", "mkdir", "rm", "cp", "mv", "env", "id"]


def busybox_rootfs(dest: Path) -> Path:
    """A directory with /bin/busybox and ``busybox --install -s`` style symlinks to it."""
    (dest / "bin").mkdir(parents=True)
    for d in ("etc", "tmp", "usr/bin", "sbin", "usr/sbin", "root"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    os.chmod(dest / "bin" / "busybox", 0o755)
    try:
        out = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True).stdout
        applets = [line.strip() for line in out.splitlines() if line.strip()]
    except (OSError, subprocess.CalledProcessError):
        applets = [f"bin/{a}" for a in APPLETS_FALLBACK]
    for path in applets:
        link = dest / path
        if link.name == "busybox" or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        depth = len(Path(path).parts) - 1
        link.symlink_to("busybox" if Path(path).parent == Path("bin") else "../" * depth + "bin/busybox")
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (dest / "etc" / "group").write_text("root:x:0:\n")
    return dest


def tar_dir(src: Path, out: Path) -> Path:
    """Tar a directory (sorted, numeric owners, fixed mtimes) into ``out``."""

    def clean(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        ti.mtime = 1_700_000_000
        return ti

    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        for p in sorted(src.rglob("*"), key=lambda x: str(x.relative_to(src))):
            tf.add(p, arcname=str(p.relative_to(src)), recursive=False, filter=clean)
    return out


def busybox_tar(tmp: Path) -> Path:
    root = busybox_rootfs(tmp / "busybox-rootfs")
    return tar_dir(root, tmp / "busybox-rootfs.tar")


def small_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = 1_700_000_000
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def add_layered_image(eng: Engine, base_id: str, files: dict[str, bytes], tag: str,
                      *, gzip_blob: bool = False) -> str:
    """An image = ``base_id``'s layers + one layer with ``files``; returns its ID.

    With ``gzip_blob`` the new layer is stored only as a gzip blob, as a pulled layer is.
    """
    base = eng.image_config(base_id)
    rows = eng.db.image_layers(base_id)
    layers = [NewLayer(r["blob_digest"], r["blob_media_type"], r["blob_size"], d, r["chain_id"])
              for r, d in zip(rows, base.diff_ids, strict=True)]
    raw = small_tar(files)
    with eng.layers.using():
        new = eng.add_layer_from_tar(io.BytesIO(raw), layers[-1].chain_id if layers else None)
        if gzip_blob:
            packed = gzip.compress(raw, mtime=0)
            blob = eng.content.put_bytes(packed)
            uncompressed = new.blob_digest
            new = NewLayer(blob.digest, OCI_LAYER_GZIP, blob.size, new.diff_id, new.chain_id)
        config: dict[str, Any] = dict(base.data)
        config["rootfs"] = {"type": "layers", "diff_ids": [*base.diff_ids, new.diff_id]}
        config["history"] = [*base.history, {"created": "2024-01-01T00:00:00Z", "created_by": f"add {tag}"}]
        config["created"] = "2024-01-01T00:00:00Z"
        image_id = eng.create_image(config, [*layers, new], tags=[tag], parent=base_id)
    assert chain_ids(config["rootfs"]["diff_ids"])[-1] == new.chain_id
    if gzip_blob:
        eng.content.delete(uncompressed)  # only the compressed blob is kept, as after a pull
    return image_id
