"""A small streaming tar writer and reader, exact to what CPython's ``tarfile`` does for layers.

``import tarfile`` costs ~11 ms (it pulls in shutil, fnmatch, re, bz2, lzma, copy, struct), paid by
every commit and every ``RUN`` step of a build, which write a layer tar and read it back. This module
does the two things the layer code needs, with nothing but builtins:

* ``TarWriter``: ``tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8",
  errors="surrogateescape")`` + ``addfile`` + ``close``, byte for byte (PAX extended headers only where
  ``tarfile`` adds them, in its record order, ``hdrcharset=BINARY`` for undecodable values, the
  ``././@PaxHeader`` name, NUL padding, two zero blocks and padding to a 10240-byte record).
* ``TarReader``: ``tarfile.open(fileobj=src, mode="r|", encoding="utf-8", errors="surrogateescape")``
  read member by member: ustar, GNU and v7 headers, signed and unsigned checksums, base-256 numbers,
  PAX ``x``/``X`` headers and global ``g`` headers (applied as ``tarfile`` applies them), GNU long
  names and links, GNU sparse files (old GNU, PAX 0.0, 0.1 and 1.0), and ``tarfile``'s end-of-archive
  rules (a zero block, or an unreadable header after the first, ends the archive quietly). Members
  have ``tarfile.TarInfo``'s attributes and type tests; ``extractfile`` reads a member's data from
  the stream. ``max_special`` refuses PAX / long-name headers larger than that before reading them.

Where ``tarfile`` itself crashes on a damaged archive (an IndexError, ValueError or UnicodeDecodeError
escaping from it), the reader raises ``ReadError`` instead; a chain of thousands of long-name headers,
on which ``tarfile`` dies of RecursionError, is read like a short one. One input is read differently:
a PAX / long-name header with a size of -512 or less (base-256), where ``tarfile`` reads a negative
count and so slices its own read-ahead buffer; it is refused here. tests/unit/test_tarstream.py
checks all of this against ``tarfile`` on generated, GNU tar, hand-made and damaged archives.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import BinaryIO, Protocol

    class Readable(Protocol):
        def read(self, n: int = -1, /) -> bytes: ...

NUL = b"\0"
BLOCKSIZE = 512
RECORDSIZE = BLOCKSIZE * 20
GNU_MAGIC = b"ustar  \0"
POSIX_MAGIC = b"ustar\x0000"
LENGTH_NAME = 100
LENGTH_LINK = 100

REGTYPE = b"0"
AREGTYPE = b"\0"
LNKTYPE = b"1"
SYMTYPE = b"2"
CHRTYPE = b"3"
BLKTYPE = b"4"
DIRTYPE = b"5"
FIFOTYPE = b"6"
CONTTYPE = b"7"
GNUTYPE_LONGNAME = b"L"
GNUTYPE_LONGLINK = b"K"
GNUTYPE_SPARSE = b"S"
XHDTYPE = b"x"
XGLTYPE = b"g"
SOLARIS_XHDTYPE = b"X"

SUPPORTED_TYPES = (REGTYPE, AREGTYPE, LNKTYPE, SYMTYPE, DIRTYPE, FIFOTYPE, CONTTYPE, CHRTYPE, BLKTYPE,
                   GNUTYPE_LONGNAME, GNUTYPE_LONGLINK, GNUTYPE_SPARSE)
REGULAR_TYPES = (REGTYPE, AREGTYPE, CONTTYPE, GNUTYPE_SPARSE)
GNU_TYPES = (GNUTYPE_LONGNAME, GNUTYPE_LONGLINK, GNUTYPE_SPARSE)
SPECIAL_TYPES = (XHDTYPE, XGLTYPE, SOLARIS_XHDTYPE, GNUTYPE_LONGNAME, GNUTYPE_LONGLINK)
PAX_FIELDS = ("path", "linkpath", "size", "mtime", "uid", "gid", "uname", "gname")

_ZERO_BLOCK = NUL * BLOCKSIZE
_HIGH_BYTES = bytes(range(128, 256))
_DIGITS = b"0123456789"
_COPY_CHUNK = 1 << 20
_READ_AHEAD = 1 << 16
_ENC, _ERRS = "utf-8", "surrogateescape"


class TarError(Exception):
    """Base of the errors raised here (tarfile.TarError's counterpart)."""


class ReadError(TarError):
    pass


class StreamError(TarError):
    pass


class HeaderError(TarError):
    pass


class EmptyHeaderError(HeaderError):
    pass


class TruncatedHeaderError(HeaderError):
    pass


class EOFHeaderError(HeaderError):
    pass


class InvalidHeaderError(HeaderError):
    pass


class SubsequentHeaderError(HeaderError):
    pass


class HeaderTooLarge(TarError):
    """A PAX or GNU long-name header over ``max_special`` bytes (never read into memory)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"a {size}-byte extended header is too large")
        self.size = size


# ---- numbers and strings (tarfile's stn / nts / nti / itn) --------------------------------------

def _stn(s: str, length: int, encoding: str, errors: str) -> bytes:
    b = s.encode(encoding, errors)
    return b[:length] + (length - len(b)) * NUL


def _nts(s: bytes) -> str:
    p = s.find(NUL)
    if p != -1:
        s = s[:p]
    return s.decode(_ENC, _ERRS)


def _nti(s: bytes) -> int:
    if s[0] in (0o200, 0o377):
        n = int.from_bytes(s[1:], "big")
        if s[0] == 0o377:
            n = -(256 ** (len(s) - 1) - n)
        return n
    p = s.find(NUL)
    if p != -1:
        s = s[:p]
    try:
        return int(s.decode("ascii").strip() or "0", 8)
    except ValueError:
        raise InvalidHeaderError("invalid header") from None


def _itn(n: int, digits: int) -> bytes:
    """tarfile.itn for the USTAR and PAX formats (no base-256)."""
    n = int(n)
    if 0 <= n < 8 ** (digits - 1):
        return b"%0*o\0" % (digits - 1, n)
    raise ValueError("overflow in number field")


def _block(count: int) -> int:
    blocks, remainder = divmod(count, BLOCKSIZE)
    if remainder:
        blocks += 1
    return blocks * BLOCKSIZE


# ---- members --------------------------------------------------------------------------------------

class TarInfo:
    """A tar member: the attributes (and defaults) of ``tarfile.TarInfo`` that layers use."""

    __slots__ = ("name", "mode", "uid", "gid", "size", "mtime", "chksum", "type", "linkname", "uname",
                 "gname", "devmajor", "devminor", "offset", "offset_data", "pax_headers", "sparse",
                 "_sparse_structs")

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.mode = 0o644
        self.uid = 0
        self.gid = 0
        self.size = 0
        self.mtime: int | float = 0
        self.chksum = 0
        self.type = REGTYPE
        self.linkname = ""
        self.uname = ""
        self.gname = ""
        self.devmajor = 0
        self.devminor = 0
        self.offset = 0
        self.offset_data = 0
        self.sparse: list[tuple[int, int]] | None = None
        self.pax_headers: dict[str, str] = {}
        self._sparse_structs: tuple[list[tuple[int, int]], bool, int] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at {id(self):#x}>"

    def isreg(self) -> bool:
        return self.type in REGULAR_TYPES

    def isfile(self) -> bool:
        return self.isreg()

    def isdir(self) -> bool:
        return self.type == DIRTYPE

    def issym(self) -> bool:
        return self.type == SYMTYPE

    def islnk(self) -> bool:
        return self.type == LNKTYPE

    def ischr(self) -> bool:
        return self.type == CHRTYPE

    def isblk(self) -> bool:
        return self.type == BLKTYPE

    def isfifo(self) -> bool:
        return self.type == FIFOTYPE

    def issparse(self) -> bool:
        return self.sparse is not None

    def isdev(self) -> bool:
        return self.type in (CHRTYPE, BLKTYPE, FIFOTYPE)

    # -- writing: TarInfo.tobuf(PAX_FORMAT, "utf-8", "surrogateescape") --

    def tobuf(self) -> bytes:
        """The member's PAX-format header blocks, as ``tarfile`` makes them."""
        name = self.name
        if self.type == DIRTYPE and not name.endswith("/"):
            name += "/"
        strings = {"name": name, "linkname": self.linkname, "uname": self.uname, "gname": self.gname}
        numbers: dict[str, int | float] = {"uid": self.uid, "gid": self.gid, "size": self.size,
                                           "mtime": self.mtime}
        pax = dict(self.pax_headers)
        for key, hname, length in (("name", "path", LENGTH_NAME), ("linkname", "linkpath", LENGTH_LINK),
                                   ("uname", "uname", 32), ("gname", "gname", 32)):
            if hname in pax:
                continue
            value = strings[key]
            if not value.isascii() or len(value) > length:
                pax[hname] = value
        for key, digits in (("uid", 8), ("gid", 8), ("size", 12), ("mtime", 12)):
            val = numbers[key]
            is_float = isinstance(val, float)
            val_int = round(val) if is_float else val
            needs_pax = False
            if not 0 <= val_int < 8 ** (digits - 1):
                numbers[key] = 0
                needs_pax = True
            elif is_float:
                numbers[key] = val_int
                needs_pax = True
            if needs_pax and key not in pax:
                pax[key] = str(val)
        head = _pax_generic_header(pax, XHDTYPE) if pax else b""
        return head + _header(strings["name"], self.mode & 0o7777, int(numbers["uid"]), int(numbers["gid"]),
                              int(numbers["size"]), int(numbers["mtime"]), self.type, strings["linkname"],
                              strings["uname"], strings["gname"], self.devmajor, self.devminor)


def _header(name: str, mode: int, uid: int, gid: int, size: int, mtime: int, type_: bytes, linkname: str,
            uname: str, gname: str, devmajor: int, devminor: int) -> bytes:
    """tarfile's _create_header in USTAR/PAX form, with ASCII 'replace' strings and an empty prefix."""
    if type_ in (CHRTYPE, BLKTYPE):
        dev = _itn(devmajor, 8) + _itn(devminor, 8)
    else:
        dev = NUL * 16
    buf = b"".join((
        _stn(name, 100, "ascii", "replace"), _itn(mode, 8), _itn(uid, 8), _itn(gid, 8), _itn(size, 12),
        _itn(mtime, 12), b"        ", type_, _stn(linkname, 100, "ascii", "replace"), POSIX_MAGIC,
        _stn(uname, 32, "ascii", "replace"), _stn(gname, 32, "ascii", "replace"), dev,
    ))
    buf = buf[:BLOCKSIZE] + (BLOCKSIZE - len(buf)) * NUL  # struct.pack("512s", ...)
    chksum = sum(buf)  # the checksum field holds eight spaces: tarfile's 256 + the rest
    return buf[:148] + b"%06o\0" % chksum + buf[155:]


def _pax_generic_header(pax_headers: dict[str, str], type_: bytes) -> bytes:
    """tarfile's _create_pax_generic_header (encoding utf-8)."""
    binary = False
    for value in pax_headers.values():
        try:
            value.encode("utf-8", "strict")
        except UnicodeEncodeError:
            binary = True
            break
    records = [b"21 hdrcharset=BINARY\n"] if binary else []
    for keyword, value in pax_headers.items():
        kw = keyword.encode("utf-8")
        val = value.encode("utf-8", "surrogateescape") if binary else value.encode("utf-8")
        length = len(kw) + len(val) + 3  # ' ' + '=' + '\n'
        n = p = 0
        while True:
            n = length + len(str(p))
            if n == p:
                break
            p = n
        records.append(b"%d %s=%s\n" % (p, kw, val))
    payload = b"".join(records)
    return (_header("././@PaxHeader", 0, 0, 0, len(payload), 0, type_, "", "", "", 0, 0)
            + payload + (-len(payload) % BLOCKSIZE) * NUL)


class TarWriter:
    """``tarfile.open(fileobj=out, mode="w|", format=PAX_FORMAT, encoding="utf-8")``: the same bytes."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._buf = bytearray()
        self.offset = 0
        self.closed = False

    def _write(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) >= _READ_AHEAD:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._out.write(bytes(self._buf))
            self._buf.clear()

    def addfile(self, tarinfo: TarInfo, fileobj: BinaryIO | None = None) -> None:
        """Add a member; with ``fileobj``, exactly ``tarinfo.size`` bytes of it follow (OSError if short)."""
        if self.closed:
            raise OSError("TarWriter is closed")
        buf = tarinfo.tobuf()
        self._write(buf)
        self.offset += len(buf)
        if fileobj is None:
            return
        size = remaining = tarinfo.size
        while remaining > 0:
            chunk = fileobj.read(min(remaining, _COPY_CHUNK))
            if not chunk:
                raise OSError("unexpected end of data")
            if len(chunk) > remaining:
                chunk = chunk[:remaining]
            remaining -= len(chunk)
            if len(chunk) >= _READ_AHEAD:
                self._flush()
                self._out.write(chunk)
            else:
                self._write(chunk)
        if size > 0:
            pad = -size % BLOCKSIZE
            if pad:
                self._write(NUL * pad)
            self.offset += size + pad

    def close(self) -> None:
        """Two zero blocks, then zeros up to a whole 10240-byte record (tar's -b20)."""
        if self.closed:
            return
        self.closed = True
        self._write(NUL * (BLOCKSIZE * 2))
        self.offset += BLOCKSIZE * 2
        remainder = self.offset % RECORDSIZE
        if remainder:
            self._write(NUL * (RECORDSIZE - remainder))
        self._flush()


# ---- reading --------------------------------------------------------------------------------------

class _In:
    """tarfile's _Stream for reading: read(n) returns n bytes unless the stream ends; forward seeks."""

    __slots__ = ("raw", "buf", "i", "pos")

    def __init__(self, raw: Readable) -> None:
        self.raw = raw
        self.buf = b""
        self.i = 0
        self.pos = 0

    def read(self, size: int) -> bytes:
        buf, i = self.buf, self.i
        if i + size <= len(buf):
            self.i = i + size
            self.pos += size
            return buf[i:i + size]
        parts = [buf[i:]] if i < len(buf) else []
        have = len(buf) - i
        self.buf, self.i = b"", 0
        while have < size:
            need = size - have
            chunk = self.raw.read(need if need >= _READ_AHEAD else _READ_AHEAD)
            if not chunk:
                break
            if len(chunk) > need:
                self.buf = chunk
                self.i = need
                chunk = chunk[:need]
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        self.pos += len(data)
        return data

    def seek(self, pos: int) -> None:
        skip = pos - self.pos
        if skip < 0:
            raise StreamError("seeking backwards is not allowed")
        while skip > 0:
            left = len(self.buf) - self.i
            if left:
                n = min(left, skip)
                self.i += n
                self.pos += n
                skip -= n
                continue
            got = len(self.read(min(skip, _COPY_CHUNK)))
            if not got:
                return
            skip -= got


class _Member:
    """The data of one member as a read-only file (tarfile's _FileInFile, sparse maps included)."""

    def __init__(self, stream: _In, offset: int, size: int, blockinfo: list[tuple[int, int]] | None) -> None:
        self._s = stream
        self.size = size
        self.position = 0
        if blockinfo is None:
            blockinfo = [(0, size)]
        self._index = 0
        self._map: list[tuple[bool, int, int, int]] = []
        lastpos = 0
        realpos = offset
        for off, n in blockinfo:
            if off > lastpos:
                self._map.append((False, lastpos, off, 0))
            self._map.append((True, off, off + n, realpos))
            realpos += n
            lastpos = off + n
        if lastpos < size:
            self._map.append((False, lastpos, size, 0))

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self.position
        else:
            size = min(size, self.size - self.position)
        out = []
        while size > 0:
            while True:
                data, start, stop, offset = self._map[self._index]
                if start <= self.position < stop:
                    break
                self._index += 1
                if self._index == len(self._map):
                    self._index = 0
            length = min(size, stop - self.position)
            if data:
                self._s.seek(offset + (self.position - start))
                b = self._s.read(length)
                if len(b) != length:
                    raise ReadError("unexpected end of data")
                out.append(b)
            else:
                out.append(NUL * length)
            size -= length
            self.position += length
        return b"".join(out)


def _frombuf(buf: bytes) -> TarInfo:
    """tarfile's TarInfo.frombuf (encoding utf-8, errors surrogateescape)."""
    if len(buf) == 0:
        raise EmptyHeaderError("empty header")
    if len(buf) != BLOCKSIZE:
        raise TruncatedHeaderError("truncated header")
    if buf == _ZERO_BLOCK:
        raise EOFHeaderError("end of file header")
    chksum = _nti(buf[148:156])
    unsigned = sum(buf) - sum(buf[148:156]) + 256
    if chksum != unsigned:
        high = len(buf) - len(buf.translate(None, _HIGH_BYTES))
        high -= 8 - len(buf[148:156].translate(None, _HIGH_BYTES))
        if chksum != unsigned - 256 * high:
            raise InvalidHeaderError("bad checksum")
    ti = TarInfo()
    ti.name = _nts(buf[0:100])
    ti.mode = _nti(buf[100:108])
    ti.uid = _nti(buf[108:116])
    ti.gid = _nti(buf[116:124])
    ti.size = _nti(buf[124:136])
    ti.mtime = _nti(buf[136:148])
    ti.chksum = chksum
    ti.type = buf[156:157]
    ti.linkname = _nts(buf[157:257])
    ti.uname = _nts(buf[265:297])
    ti.gname = _nts(buf[297:329])
    ti.devmajor = _nti(buf[329:337])
    ti.devminor = _nti(buf[337:345])
    prefix = _nts(buf[345:500])
    if ti.type == AREGTYPE and ti.name.endswith("/"):
        ti.type = DIRTYPE  # v7: a directory is a regular file whose name ends in '/'
    if ti.type == GNUTYPE_SPARSE:
        pos = 386
        structs = []
        for _ in range(4):
            structs.append((_nti(buf[pos:pos + 12]), _nti(buf[pos + 12:pos + 24])))
            pos += 24
        ti._sparse_structs = (structs, bool(buf[482]), _nti(buf[483:495]))
    if ti.type == DIRTYPE:
        ti.name = ti.name.rstrip("/")
    if prefix and ti.type not in GNU_TYPES:
        ti.name = prefix + "/" + ti.name
    return ti


def _apply_pax_info(ti: TarInfo, pax_headers: dict[str, str]) -> None:
    """tarfile's TarInfo._apply_pax_info."""
    for keyword, value in pax_headers.items():
        if keyword == "GNU.sparse.name":
            ti.name = value
        elif keyword in ("GNU.sparse.size", "GNU.sparse.realsize"):
            try:
                ti.size = int(value)
            except ValueError:
                raise ReadError(f"invalid {keyword} {value!r}") from None
        elif keyword in PAX_FIELDS:
            if keyword == "path":
                ti.name = value.rstrip("/")
            elif keyword == "linkpath":
                ti.linkname = value
            elif keyword == "uname":
                ti.uname = value
            elif keyword == "gname":
                ti.gname = value
            elif keyword == "mtime":
                try:
                    ti.mtime = float(value)
                except ValueError:
                    ti.mtime = 0
            else:
                try:
                    number = int(value)
                except ValueError:
                    number = 0
                setattr(ti, keyword, number)
    ti.pax_headers = pax_headers.copy()


def _find_hdrcharset(buf: bytes) -> bytes | None:
    r"""``re.search(rb"\d+ hdrcharset=([^\n]+)\n", buf)``'s group, without ``re``."""
    start = 0
    while True:
        i = buf.find(b" hdrcharset=", start)
        if i == -1:
            return None
        start = i + 1
        if i == 0 or buf[i - 1] not in _DIGITS:
            continue
        j = i + 12
        k = buf.find(b"\n", j)
        if k == -1:
            return None
        if k > j:
            return buf[j:k]


def _parse_pax(buf: bytes, pax_headers: dict[str, str]) -> None:
    r"""tarfile's record loop: ``re.match(rb"(\d+) ([^=]+)=", buf, pos)`` then ``length`` bytes on."""
    pos = 0
    n = len(buf)
    while True:
        j = pos
        while j < n and buf[j] in _DIGITS:
            j += 1
        if j == pos or j >= n or buf[j] != 0x20:
            break
        eq = buf.find(b"=", j + 1)
        if eq <= j + 1:
            break
        length = int(buf[pos:j])
        if length == 0:
            raise InvalidHeaderError("invalid header")
        keyword = buf[j + 1:eq].decode(_ENC, _ERRS)
        pax_headers[keyword] = buf[eq + 1:pos + length - 1].decode(_ENC, _ERRS)
        pos += length


class TarReader:
    """Reads a tar stream member by member, once, without seeking (tarfile's ``r|`` mode)."""

    def __init__(self, fileobj: Readable, *, max_special: int | None = None) -> None:
        self._s = _In(fileobj)
        self.offset = 0  # where the next header starts
        self.pax_headers: dict[str, str] = {}  # global ('g') headers so far
        self.max_special = max_special
        self._done = False

    def __iter__(self) -> TarReader:
        return self

    def __next__(self) -> TarInfo:
        ti = self.next()
        if ti is None:
            raise StopIteration
        return ti

    def close(self) -> None:
        self._done = True

    def next(self) -> TarInfo | None:
        """The next member, or None at the end of the archive (tarfile.TarFile.next's rules)."""
        if self._done:
            return None
        s = self._s
        if self.offset != s.pos:
            if self.offset == 0:
                self._done = True
                return None
            s.seek(self.offset - 1)
            if not s.read(1):
                raise ReadError("unexpected end of data")
        ti: TarInfo | None = None
        try:
            ti = self._member()
        except EOFHeaderError:
            pass
        except (InvalidHeaderError, TruncatedHeaderError) as e:
            if self.offset == 0:
                raise ReadError(str(e)) from None
        except EmptyHeaderError:
            if self.offset == 0:
                raise ReadError("empty file") from None
        except SubsequentHeaderError as e:
            raise ReadError(str(e)) from None
        except (IndexError, ValueError) as e:  # tarfile would crash (a 5000-digit number...): refuse
            raise ReadError(f"invalid header: {e}") from None
        if ti is None:
            self._done = True
        return ti

    def extractfile(self, member: TarInfo) -> _Member | None:
        """A file object reading ``member``'s data from the stream (None for types without data)."""
        if member.isreg() or member.type not in SUPPORTED_TYPES:
            return _Member(self._s, member.offset_data, member.size, member.sparse)
        if member.islnk() or member.issym():
            raise StreamError("cannot extract (sym)link as file object")
        return None

    # -- TarInfo.fromtarfile / _proc_member, iterative --

    def _header(self) -> TarInfo:
        buf = self._s.read(BLOCKSIZE)
        ti = _frombuf(buf)
        ti.offset = self._s.pos - BLOCKSIZE
        return ti

    def _payload(self, ti: TarInfo) -> bytes:
        count = _block(ti.size)
        if count < 0:
            raise ReadError(f"negative size in a {ti.type!r} header")
        return self._s.read(count)

    def _member(self) -> TarInfo:
        # tarfile recurses into the next header for a PAX or long-name header and patches the result
        # on the way back; the same here with a list, so a long chain cannot exhaust the stack.
        wrappers: list[tuple[TarInfo, bytes, dict[str, str] | None]] = []
        ti = self._header()
        while True:
            try:
                if ti.type in SPECIAL_TYPES and self.max_special is not None and ti.size > self.max_special:
                    raise HeaderTooLarge(ti.size)
                if ti.type in (GNUTYPE_LONGNAME, GNUTYPE_LONGLINK):
                    wrappers.append((ti, self._payload(ti), None))
                elif ti.type in (XHDTYPE, XGLTYPE, SOLARIS_XHDTYPE):
                    buf = self._payload(ti)
                    pax = self.pax_headers if ti.type == XGLTYPE else self.pax_headers.copy()
                    charset = _find_hdrcharset(buf)
                    if charset is not None:
                        try:
                            pax["hdrcharset"] = charset.decode("utf-8")
                        except UnicodeDecodeError:
                            raise ReadError("invalid hdrcharset in a PAX header") from None
                    _parse_pax(buf, pax)
                    wrappers.append((ti, buf, pax))
                elif ti.type == GNUTYPE_SPARSE:
                    ti = self._proc_sparse(ti)
                    break
                else:
                    ti = self._proc_builtin(ti)
                    break
                ti = self._header()
            except HeaderError as e:
                if wrappers:
                    raise SubsequentHeaderError(str(e)) from None
                raise
        for outer, buf, records in reversed(wrappers):
            if records is None:  # GNU long name / link
                ti.offset = outer.offset
                if outer.type == GNUTYPE_LONGNAME:
                    ti.name = _nts(buf)
                else:
                    ti.linkname = _nts(buf)
                if ti.isdir():
                    ti.name = ti.name.removesuffix("/")
                continue
            if "GNU.sparse.map" in records:  # GNU sparse 0.1
                try:
                    numbers = [int(x) for x in records["GNU.sparse.map"].split(",")]
                except ValueError:
                    raise ReadError("invalid GNU.sparse.map") from None
                ti.sparse = list(zip(numbers[::2], numbers[1::2], strict=False))
            elif "GNU.sparse.size" in records:  # GNU sparse 0.0
                import re  # lazily: ~6 ms, for a format GNU tar has not written since 2005

                offsets = [int(m.group(1)) for m in re.finditer(rb"\d+ GNU.sparse.offset=(\d+)\n", buf)]
                sizes = [int(m.group(1)) for m in re.finditer(rb"\d+ GNU.sparse.numbytes=(\d+)\n", buf)]
                ti.sparse = list(zip(offsets, sizes, strict=False))
            elif records.get("GNU.sparse.major") == "1" and records.get("GNU.sparse.minor") == "0":
                self._proc_gnusparse_10(ti)
            if outer.type in (XHDTYPE, SOLARIS_XHDTYPE):
                _apply_pax_info(ti, records)
                ti.offset = outer.offset
                if "size" in records:
                    offset = ti.offset_data
                    if ti.isreg() or ti.type not in SUPPORTED_TYPES:
                        offset += _block(ti.size)
                    self.offset = offset
        return ti

    def _proc_builtin(self, ti: TarInfo) -> TarInfo:
        ti.offset_data = offset = self._s.pos
        if ti.isreg() or ti.type not in SUPPORTED_TYPES:
            offset += _block(ti.size)  # skip the data blocks
        self.offset = offset
        _apply_pax_info(ti, self.pax_headers)
        if ti.isdir():
            ti.name = ti.name.rstrip("/")
        return ti

    def _proc_sparse(self, ti: TarInfo) -> TarInfo:
        assert ti._sparse_structs is not None
        structs, isextended, origsize = ti._sparse_structs
        ti._sparse_structs = None
        while isextended:
            buf = self._s.read(BLOCKSIZE)
            if len(buf) != BLOCKSIZE:
                raise ReadError("unexpected end of data")
            pos = 0
            for _ in range(21):
                offset = _nti(buf[pos:pos + 12])
                numbytes = _nti(buf[pos + 12:pos + 24])
                if offset and numbytes:
                    structs.append((offset, numbytes))
                pos += 24
            isextended = bool(buf[504])
        ti.sparse = structs
        ti.offset_data = self._s.pos
        self.offset = ti.offset_data + _block(ti.size)
        ti.size = origsize
        return ti

    def _proc_gnusparse_10(self, ti: TarInfo) -> None:
        sparse: list[int] = []
        try:
            fields_raw, buf = self._s.read(BLOCKSIZE).split(b"\n", 1)
            fields = int(fields_raw)
            while len(sparse) < fields * 2:
                if b"\n" not in buf:
                    buf += self._s.read(BLOCKSIZE)
                number, buf = buf.split(b"\n", 1)
                sparse.append(int(number))
        except ValueError:
            raise ReadError("invalid GNU sparse map") from None
        ti.offset_data = self._s.pos
        ti.sparse = list(zip(sparse[::2], sparse[1::2], strict=False))
