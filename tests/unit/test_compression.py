"""Compression detection, streaming decompression from pipes, damage handling, compression for push."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest
import zstandard

from dockyard.errors import CorruptData, InvalidArgument
from dockyard.store.compression import (
    CompressingWriter,
    compress_stream,
    detect,
    gzip_writer,
    open_decompressed,
)
from dockyard.store.layers import unpack


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for i in range(20):
            data = (f"file {i}\n".encode() * 5000) + os.urandom(3000)
            ti = tarfile.TarInfo(f"dir/file{i}")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


TAR = _tar()

COMPRESS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lambda b: lzma.compress(b, format=lzma.FORMAT_XZ),
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "none": lambda b: b,
}


@contextmanager
def pipe_of(data: bytes) -> Iterator[BinaryIO]:
    """A non-seekable reader fed by a thread through an OS pipe, in small pieces."""
    r, w = os.pipe()

    def feed() -> None:
        with os.fdopen(w, "wb") as f:
            for i in range(0, len(data), 7000):
                try:
                    f.write(data[i:i + 7000])
                    f.flush()
                except BrokenPipeError:
                    return

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    with os.fdopen(r, "rb", buffering=0) as f:
        assert not f.seekable()
        yield f  # type: ignore[misc]
    t.join(10)


@pytest.mark.parametrize("kind", list(COMPRESS))
def test_detect_and_stream_from_a_pipe(kind: str, tmp_path: Path) -> None:
    blob = COMPRESS[kind](TAR)
    assert detect(blob[:512]) == kind
    with pipe_of(blob) as p:
        r = open_decompressed(p)
        assert r.kind == kind  # type: ignore[attr-defined]
        out = b""
        while chunk := r.read(10000):
            out += chunk
    assert out == TAR
    with pipe_of(blob) as p:
        stats = unpack(open_decompressed(p), tmp_path / kind)
    assert stats.entries == 20
    assert stats.diff_id == "sha256:" + hashlib.sha256(TAR).hexdigest()
    assert (tmp_path / kind / "dir/file3").read_bytes().startswith(b"file 3\n")


def test_detect_other_heads() -> None:
    assert detect(b"") == "none"  # an empty layer
    assert detect(b"\0" * 1024) == "none"  # an empty tar: just the end-of-archive blocks
    v7 = tarfile.TarInfo("old-style").tobuf(tarfile.USTAR_FORMAT)
    v7 = v7[:257] + b"\0" * 8 + v7[265:]  # no "ustar" magic: recognised by its checksum
    chk = sum(v7[:148]) + 8 * 32 + sum(v7[156:512])
    v7 = v7[:148] + f"{chk:06o}\0 ".encode() + v7[156:]
    assert detect(v7) == "none"
    assert detect(b"\x50\x2a\x4d\x18" + b"\0" * 20) == "zstd"  # a skippable frame first
    assert detect(b"BZh9" + os.urandom(20)) == "bzip2"
    assert detect(b"BZhx") == "unknown"
    assert detect(b"hello world, not a tar" * 30) == "unknown"


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zstd"])
@pytest.mark.parametrize("cut", [0.5, 0.9, -4])
def test_truncated_input_is_corrupt_data(kind: str, cut: float) -> None:
    blob = COMPRESS[kind](TAR)
    end = int(len(blob) * cut) if cut > 0 else len(blob) + int(cut)
    with pipe_of(blob[:end]) as p:
        r = open_decompressed(p)
        with pytest.raises(CorruptData):
            while r.read(65536):
                pass


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zstd"])
def test_damaged_input_is_corrupt_data(kind: str, tmp_path: Path) -> None:
    blob = bytearray(COMPRESS[kind](TAR))
    for i in range(40, len(blob) - 40, 97):
        blob[i] ^= 0x5A
    with pytest.raises(CorruptData):
        unpack(open_decompressed(io.BytesIO(bytes(blob))), tmp_path / "d")


def test_truncated_gzip_layer_while_unpacking(tmp_path: Path) -> None:
    blob = gzip.compress(TAR)
    with pipe_of(blob[: len(blob) // 3]) as p, pytest.raises(CorruptData):
        unpack(open_decompressed(p), tmp_path / "d")


def test_random_bytes_are_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="unknown compression"):
        open_decompressed(io.BytesIO(b"\x01" + os.urandom(4096)))  # \x01: no format starts so


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zstd"])
def test_concatenated_streams_and_padding(kind: str) -> None:
    blob = COMPRESS[kind](TAR[:10000]) + COMPRESS[kind](TAR[10000:])
    if kind in ("gzip", "xz"):
        blob += b"\0" * 8  # padding after the last member/stream is allowed
    assert open_decompressed(io.BytesIO(blob)).read() == TAR


def test_trailing_garbage_is_corrupt_data() -> None:
    r = open_decompressed(io.BytesIO(gzip.compress(b"abc") + b"garbage!"))
    with pytest.raises(CorruptData, match="after the end"):
        r.read()


def test_bombs_are_decompressed_in_bounded_pieces() -> None:
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (256 << 20))
    r = open_decompressed(io.BytesIO(bomb))
    raw = r.raw  # type: ignore[attr-defined]
    total = 0
    biggest = 0
    while chunk := raw.read(1 << 20):
        total += len(chunk)
        biggest = max(biggest, len(raw._out))
    assert total == 256 << 20
    assert biggest <= 160 << 20
    gz = gzip.compress(b"\0" * (64 << 20))
    raw = open_decompressed(io.BytesIO(gz)).raw  # type: ignore[attr-defined]
    while raw.read(1 << 20):
        assert len(raw._out) <= 1 << 20


# ---- compression ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zstd", "none"])
def test_compress_stream_round_trip(kind: str) -> None:
    out = io.BytesIO()
    n = compress_stream(kind, io.BytesIO(TAR), out)
    assert n == len(out.getvalue())
    assert detect(out.getvalue()[:512]) == kind
    assert open_decompressed(io.BytesIO(out.getvalue())).read() == TAR


def test_gzip_writer_is_deterministic_and_levelled() -> None:
    sizes = {}
    for level in (1, 6, 9):
        blobs = []
        for _ in range(2):
            out = io.BytesIO()
            with gzip_writer(out, level) as w:
                for i in range(0, len(TAR), 4096):
                    w.write(TAR[i:i + 4096])
            assert w.size_in == len(TAR) and w.size_out == len(out.getvalue())
            blobs.append(out.getvalue())
        assert blobs[0] == blobs[1]
        assert gzip.decompress(blobs[0]) == TAR
        sizes[level] = len(blobs[0])
    assert sizes[1] >= sizes[9]
    with pytest.raises(InvalidArgument):
        gzip_writer(io.BytesIO(), 0)
    with pytest.raises(InvalidArgument):
        CompressingWriter("lz4", io.BytesIO())


def test_writes_tar_through_compressing_writer(tmp_path: Path) -> None:
    from dockyard.store.layers import write_diff_tar

    (tmp_path / "src").mkdir()
    (tmp_path / "src/f").write_bytes(b"hello")
    out = io.BytesIO()
    with CompressingWriter("zstd", out, level=3) as w:
        write_diff_tar(tmp_path / "src", w)  # type: ignore[arg-type]
    stats = unpack(open_decompressed(io.BytesIO(out.getvalue())), tmp_path / "dst")
    assert stats.entries == 1 and (tmp_path / "dst/f").read_bytes() == b"hello"


def test_heavy_modules_are_imported_lazily() -> None:
    code = ("import sys, dockyard.store.compression as c, dockyard.store.layers; "
            "print('zstandard' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"
    code = "import sys, dockyard.store.compression; print('lzma' in sys.modules, 'bz2' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False False"
