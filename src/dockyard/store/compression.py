"""Layer compression: detect it from magic bytes, decompress while streaming, compress for push.

Nothing here needs ``seek``: a layer arrives from a registry, a pipe or stdin. ``open_decompressed``
peeks at the first bytes through a small buffer, then returns a reader that decompresses as it is
read, with bounded memory (a highly compressible "bomb" never expands more than about a chunk at a
time). Truncated or damaged input raises ``CorruptData`` from ``read``; it never leaks a ``zlib.error``,
``EOFError`` or ``lzma.LZMAError``.

``bz2``, ``lzma`` and ``zstandard`` are imported only when a stream needs them.
"""

from __future__ import annotations

import io
import zlib
from typing import Any, BinaryIO, Protocol, cast

from dockyard.errors import CorruptData, InvalidArgument

KINDS = ("gzip", "bzip2", "xz", "zstd", "none")
PEEK_SIZE = 512  # one tar header: enough to recognise an uncompressed tar

_IN_CHUNK = 64 * 1024  # compressed bytes fed at a time
_ZSTD_IN_CHUNK = 4 * 1024  # zstd has no output bound per call: worst case ~32768:1, so ~128 MiB
_OUT_CHUNK = 1024 * 1024  # most decompressed bytes produced per step

_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

_LEVELS = {"gzip": (1, 9, 6), "zstd": (1, 22, 3), "bzip2": (1, 9, 9), "xz": (0, 9, 6)}


# ---- detection ------------------------------------------------------------------------------

def _is_zstd(head: bytes) -> bool:
    if head.startswith(_ZSTD_MAGIC):
        return True
    # A skippable frame (magic 0x184D2A50..0x184D2A5F, little endian) may come first.
    return len(head) >= 4 and (head[0] & 0xF0) == 0x50 and head[1:4] == b"\x2a\x4d\x18"


def _plausible_tar_header(block: bytes) -> bool:
    """True if ``block`` (>= 512 bytes) is a tar header whose checksum is right (v7, GNU or ustar)."""
    if len(block) < 512 or block[0] == 0:
        return False
    field = block[148:156].replace(b"\0", b" ").strip()
    if not field or any(c not in b"01234567" for c in field):
        return False
    expected = int(field, 8)
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:512])
    signed = sum(b - 256 if b > 127 else b for b in block[:148]) + 8 * 32 + sum(
        b - 256 if b > 127 else b for b in block[156:512]
    )
    return expected in (unsigned, signed)


def detect(head: bytes) -> str:
    """Name the compression of a stream from its first bytes (ideally ``PEEK_SIZE`` of them).

    Returns ``"gzip"``, ``"bzip2"``, ``"xz"``, ``"zstd"``, ``"none"`` (an uncompressed tar, or an empty
    stream / all-zero end-of-archive block, which is an empty tar) or ``"unknown"``.
    """
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_BZIP2_MAGIC) and (len(head) < 4 or head[3:4] in b"123456789"):
        return "bzip2"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    if _is_zstd(head):
        return "zstd"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "none"
    if _plausible_tar_header(head):
        return "none"
    if not head or (len(head) >= 512 and not any(head[:512])):
        return "none"
    return "unknown"


# ---- peeking --------------------------------------------------------------------------------

class PeekReader(io.RawIOBase):
    """Wraps a non-seekable stream; ``peek(n)`` returns its first bytes without consuming them."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._buf = b""

    def peek(self, n: int = PEEK_SIZE) -> bytes:
        while len(self._buf) < n:
            chunk = self._raw.read(n - len(self._buf))
            if not chunk:
                break
            self._buf += chunk
        return self._buf[:n]

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self._buf:
            n = min(len(view), len(self._buf))
            view[:n] = self._buf[:n]
            self._buf = self._buf[n:]
            return n
        data = self._raw.read(len(view))
        if not data:
            return 0
        view[: len(data)] = data
        return len(data)


# ---- decompression --------------------------------------------------------------------------

class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def needs_input(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int) -> bytes: ...


class _GzipMember:
    """zlib's decompressobj with the bz2/lzma interface (``needs_input``, bounded output)."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def needs_input(self) -> bool:
        return not self._d.unconsumed_tail

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    def decompress(self, data: bytes, max_length: int) -> bytes:
        return self._d.decompress(self._d.unconsumed_tail + data, max_length)


class _ZstdFrame:
    """A zstd decompressobj fed small slices, because it cannot bound its output per call."""

    def __init__(self) -> None:
        import zstandard

        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._pending = b""

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)

    @property
    def needs_input(self) -> bool:
        return not self._pending

    @property
    def unused_data(self) -> bytes:
        return bytes(self._d.unused_data) + self._pending

    def decompress(self, data: bytes, max_length: int) -> bytes:
        buf = self._pending + data
        piece, self._pending = buf[:_ZSTD_IN_CHUNK], buf[_ZSTD_IN_CHUNK:]
        if not piece:
            return b""
        return bytes(self._d.decompress(piece))


def _new_decompressor(kind: str) -> _Decompressor:
    if kind == "gzip":
        return _GzipMember()
    if kind == "bzip2":
        import bz2

        return cast(_Decompressor, bz2.BZ2Decompressor())
    if kind == "xz":
        import lzma

        return cast(_Decompressor, lzma.LZMADecompressor(format=lzma.FORMAT_XZ))
    if kind == "zstd":
        return _ZstdFrame()
    raise InvalidArgument(f"unknown compression {kind!r}")


_MAGIC_OF = {"gzip": _GZIP_MAGIC, "bzip2": _BZIP2_MAGIC, "xz": _XZ_MAGIC, "zstd": _ZSTD_MAGIC}


def _errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [zlib.error, EOFError, ValueError, OSError]
    import sys

    if "lzma" in sys.modules:
        errs.append(sys.modules["lzma"].LZMAError)
    if "zstandard" in sys.modules:
        errs.append(sys.modules["zstandard"].ZstdError)
    return tuple(errs)


class _DecompressingRaw(io.RawIOBase):
    """Streams the decompressed bytes of every concatenated member/stream/frame of ``src``."""

    def __init__(self, src: BinaryIO, kind: str) -> None:
        super().__init__()
        self._src = src
        self._kind = kind
        self._d: _Decompressor | None = _new_decompressor(kind)
        self._carry = b""  # compressed bytes read but not yet given to a decompressor
        self._out = b""
        self._pos = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def _read_src(self) -> bytes:
        try:
            return self._src.read(_IN_CHUNK) or b""
        except CorruptData:
            raise
        except (OSError, ValueError, EOFError) as e:
            raise CorruptData(f"reading {self._kind} stream: {e}")

    def _next_member(self) -> bool:
        """Between members: start the next one, or return False at a clean end of stream."""
        magic = _MAGIC_OF[self._kind]
        need = max(len(magic), 4)
        data = self._carry
        self._carry = b""
        while True:
            data = data.lstrip(b"\0")  # gzip and xz allow zero padding after a member
            if len(data) >= need:
                break
            more = self._read_src()
            if not more:
                if not data:
                    return False
                break
            data += more
        ok = _is_zstd(data) if self._kind == "zstd" else data.startswith(magic)
        if not ok:
            raise CorruptData(f"{self._kind} stream: unexpected data after the end of the compressed data")
        self._d = _new_decompressor(self._kind)
        self._carry = data
        return True

    def _produce(self) -> bytes:
        """Return the next decompressed bytes, b"" only at a clean end."""
        errors = _errors()
        while True:
            if self._d is None and not self._next_member():
                return b""
            d = self._d
            assert d is not None
            src_eof = False
            if self._carry:
                data, self._carry = self._carry, b""
            elif d.needs_input:
                data = self._read_src()
                src_eof = not data
            else:
                data = b""
            try:
                out = d.decompress(data, _OUT_CHUNK)
            except CorruptData:
                raise
            except errors as e:
                raise CorruptData(f"corrupt {self._kind} data: {e}")
            if d.eof:
                self._carry = d.unused_data
                self._d = None
            elif src_eof and not out and d.needs_input:
                raise CorruptData(f"truncated {self._kind} data: the stream ended before the end marker")
            if out:
                return out

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self._pos >= len(self._out):
            if self._done:
                return 0
            self._out = self._produce()
            self._pos = 0
            if not self._out:
                self._done = True
                return 0
        n = min(len(view), len(self._out) - self._pos)
        view[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n


class DecompressedReader(io.BufferedReader):
    """What ``open_decompressed`` returns; ``kind`` names the compression that was found."""

    kind: str


def open_decompressed(stream: BinaryIO) -> BinaryIO:
    """Detect the compression of ``stream`` (no seek needed) and return a decompressing reader.

    An uncompressed tar is passed through. Unknown data raises ``InvalidArgument``; damaged or
    truncated data raises ``CorruptData`` when read.
    """
    peek = PeekReader(stream)
    head = peek.peek(PEEK_SIZE)
    kind = detect(head)
    if kind == "unknown":
        raise InvalidArgument(
            "unknown compression or not a tar archive (expected tar, gzip, bzip2, xz or zstd data)"
        )
    raw: io.RawIOBase = peek if kind == "none" else _DecompressingRaw(cast(BinaryIO, peek), kind)
    reader = DecompressedReader(raw, buffer_size=_OUT_CHUNK)
    reader.kind = kind
    return cast(BinaryIO, reader)


# ---- compression ----------------------------------------------------------------------------

def _level(kind: str, level: int | None) -> int:
    lo, hi, default = _LEVELS[kind]
    if level is None:
        return default
    if not lo <= level <= hi:
        raise InvalidArgument(f"{kind} compression level must be between {lo} and {hi}, not {level}")
    return level


class CompressingWriter:
    """A write-only stream that compresses into ``out`` (which it never closes).

    ``close()`` (or leaving the ``with`` block) writes the end of the compressed stream. Output is
    deterministic: gzip headers carry no name and mtime 0. ``size_in``/``size_out`` count bytes.
    """

    def __init__(self, kind: str, out: BinaryIO, *, level: int | None = None) -> None:
        if kind not in KINDS:
            raise InvalidArgument(f"unknown compression {kind!r} (expected one of {', '.join(KINDS)})")
        self.kind = kind
        self._out = out
        self.size_in = 0
        self.size_out = 0
        self.closed = False
        self._c: Any
        if kind == "gzip":
            self._c = zlib.compressobj(_level(kind, level), zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        elif kind == "bzip2":
            import bz2

            self._c = bz2.BZ2Compressor(_level(kind, level))
        elif kind == "xz":
            import lzma

            self._c = lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=_level(kind, level))
        elif kind == "zstd":
            import zstandard

            self._c = zstandard.ZstdCompressor(level=_level(kind, level)).compressobj()
        else:
            self._c = None

    def _emit(self, data: bytes) -> None:
        if data:
            self._out.write(data)
            self.size_out += len(data)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self.closed:
            raise ValueError("write to a closed CompressingWriter")
        n = len(data)
        self.size_in += n
        if self._c is None:
            self._emit(bytes(data))
        else:
            self._emit(self._c.compress(bytes(data)))
        return n

    def flush(self) -> None:
        if hasattr(self._out, "flush"):
            self._out.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._c is not None:
            self._emit(self._c.flush())
        self.flush()

    def __enter__(self) -> CompressingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def gzip_writer(out: BinaryIO, level: int = 6) -> CompressingWriter:
    """A deterministic gzip writer for ``.tar.gzip`` layers (level 1 fastest .. 9 smallest)."""
    return CompressingWriter("gzip", out, level=level)


def compress_stream(kind: str, src: BinaryIO, dst: BinaryIO, *, level: int | None = None,
                    chunk: int = 1 << 20) -> int:
    """Compress all of ``src`` into ``dst``; returns the number of compressed bytes written."""
    w = CompressingWriter(kind, dst, level=level)
    while True:
        data = src.read(chunk)
        if not data:
            break
        w.write(data)
    w.close()
    return w.size_out
