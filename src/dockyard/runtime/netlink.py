"""A small rtnetlink client (stdlib ``socket``/``struct`` only) for the per-container hot path.

Why it exists: every ``dockyard run`` on a bridge network plumbs one veth pair, and doing that with
pyroute2 meant importing pyroute2 on every container start. Measured on the test VM, the import
alone (it pulls in asyncio and every link kind) was ~130 ms of a ~290 ms ``run --rm busybox
true``, against ~150 ms for ``--network none``. The handful of messages a start needs are simple
and fixed, so they are built here by hand:

* a veth pair whose peer is created directly in the container's namespace (``IFLA_NET_NS_FD``),
  named, with its MTU and MAC;
* the host end enslaved to the bridge and set up (``IFLA_MASTER`` + ``IFF_UP``);
* inside the namespace (a socket made there, see ``network.socket_in_netns``): ``lo`` and the
  interface up, its IPv4 address, the default route;
* a link's index by name, deleting a link, and the nftables ruleset generation (one
  ``NFT_MSG_GETGEN`` on a netfilter socket: a cheap "did the firewall change" check).

Everything else (network create/rm/inspect/connect/disconnect, sweep, and the fallback when this
path fails for any reason that is not a real configuration error) stays with pyroute2, the
maintained library: this module is not meant to grow into a netlink library.

Every request asks for an ACK; a ``NLMSG_ERROR`` with a non-zero errno raises ``OSError`` with
that errno. The message builders are pure functions (bytes in, bytes out) so they can be tested
without a kernel.

It runs in every bridge ``run``'s monitor, so it imports C modules only: ``_socket`` and ``_struct``
(``socket`` builds a dozen IntEnums, ~3 ms), and does its IPv4 arithmetic on ints (``dockyard.ipv4`` and
``int.from_bytes``) rather than with ``ipaddress`` (~1.3 ms, and ``re``): addresses may be given as
``ipaddress`` objects or as their text (``172.17.0.5/16``, ``172.17.0.1``), which is parsed exactly as
strictly; anything unusual (a netmask instead of a prefix length) is handed to ``ipaddress``.
"""

from __future__ import annotations

import _socket
import errno
import os
from _struct import Struct, pack, unpack, unpack_from

from dockyard import ipv4

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from struct import error as struct_error  # the stubs define it there only
else:
    from _struct import error as struct_error

# netlink
NETLINK_ROUTE = 0
NETLINK_NETFILTER = 12
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF
# rtnetlink
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_GATEWAY, RTA_OIF = 5, 4
RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 4, 0, 1
IFF_UP = 0x1
# nfnetlink / nftables
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETGEN = 16
NFTA_GEN_ID = 1

_NLMSGHDR = Struct("=IHHII")  # len, type, flags, seq, pid
_IFINFOMSG = Struct("=BxHiII")  # family, (pad), type, index, flags, change
_IFADDRMSG = Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTMSG = Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTATTR = Struct("=HH")  # len, type
_NFGENMSG = Struct("=BBH")  # family, version, res_id (big endian, 0 here)


# ---- IPv4 addresses as ints (no ipaddress) --------------------------------------------------
def ipv4_packed(address: object) -> bytes:
    """``a.b.c.d`` (or an ``ipaddress.IPv4Address``) as 4 bytes; ValueError as ``ipaddress`` raises it
    (read by ``dockyard.ipv4``, with ipaddress's rules; on a refusal ``ipaddress`` is asked, for its message)."""
    text = str(address)
    n = ipv4.parse(text)
    if n is not None:
        return n.to_bytes(4, "big")
    import ipaddress  # for its error message

    return ipaddress.IPv4Address(text).packed


def ipv4_text(value: int) -> str:
    """``a.b.c.d`` of a 32-bit int."""
    return ipv4.text(value)


def ipv4_interface(address: object) -> tuple[int, int]:
    """(address as an int, prefix length) of ``a.b.c.d/n`` (or an ``ipaddress.IPv4Interface``);
    ``a.b.c.d`` alone is a /32, as for ``ipaddress``. ValueError as ``ipaddress`` raises it."""
    text = str(address)
    ip, sep, plen = text.partition("/")
    if not sep:
        return int.from_bytes(ipv4_packed(ip), "big"), 32
    if plen.isascii() and plen.isdigit() and int(plen) <= 32:
        return int.from_bytes(ipv4_packed(ip), "big"), int(plen)
    import ipaddress  # a netmask or hostmask form, or an error: ipaddress's own rules

    itf = ipaddress.IPv4Interface(text)
    return int(itf.ip), itf.network.prefixlen


def ipv4_broadcast(ip: int, prefixlen: int) -> int:
    """The subnet's broadcast address (``IPv4Interface(...).network.broadcast_address``)."""
    return ip | ((1 << (32 - prefixlen)) - 1)


def prefix_from_netmask(mask: int) -> int:
    """The prefix length of a contiguous netmask; ValueError for any other (as ``ipaddress``)."""
    host = ~mask & 0xFFFFFFFF
    if host & (host + 1):
        raise ValueError(f"{ipv4_text(mask)} is not a valid netmask")
    return 32 - host.bit_length()


# ---- encoding (pure) ------------------------------------------------------------------------
def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    n = _RTATTR.size + len(payload)
    return _RTATTR.pack(n, kind) + payload + b"\0" * (_align(n) - n)


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, pack("=I", value))


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def nest(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def mac_bytes(mac: str) -> bytes:
    b = bytes.fromhex(mac.replace(":", ""))
    if len(b) != 6:
        raise ValueError(f"invalid MAC address {mac!r}")
    return b


def ifinfomsg(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFOMSG.pack(_socket.AF_UNSPEC, 0, index, flags, change)


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    """A netlink message: header and body (the body is already 4-byte aligned)."""
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def veth_request(seq: int, host_name: str, peer_name: str, *, mtu: int, peer_mac: str | None,
                 netns_fd: int) -> bytes:
    """RTM_NEWLINK: a veth ``host_name`` whose peer ``peer_name`` is born in the namespace ``netns_fd``."""
    peer = [attr_str(IFLA_IFNAME, peer_name), attr_u32(IFLA_MTU, mtu), attr_u32(IFLA_NET_NS_FD, netns_fd)]
    if peer_mac:
        peer.append(attr(IFLA_ADDRESS, mac_bytes(peer_mac)))
    info = nest(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "veth"),
                nest(IFLA_INFO_DATA, attr(VETH_INFO_PEER, ifinfomsg() + b"".join(peer))))
    body = ifinfomsg() + attr_str(IFLA_IFNAME, host_name) + attr_u32(IFLA_MTU, mtu) + info
    return message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body)


def set_link_request(seq: int, index: int, *, up: bool = True, master: int | None = None) -> bytes:
    """RTM_NEWLINK on an existing link: set it up (or down), optionally enslave it to ``master``."""
    body = ifinfomsg(index, IFF_UP if up else 0, IFF_UP)
    if master is not None:
        body += attr_u32(IFLA_MASTER, master)
    return message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, body)


def get_link_request(seq: int, name: str) -> bytes:
    return message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, ifinfomsg() + attr_str(IFLA_IFNAME, name))


def del_link_request(seq: int, *, index: int = 0, name: str | None = None) -> bytes:
    body = ifinfomsg(index) + (attr_str(IFLA_IFNAME, name) if name else b"")
    return message(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq, body)


def addr_request(seq: int, index: int, address: object) -> bytes:
    """RTM_NEWADDR: ``address`` (with its prefix and the subnet's broadcast) on link ``index``.

    ``address``: an ``ipaddress.IPv4Interface`` or its text, ``172.17.0.5/16``."""
    value, prefixlen = ipv4_interface(address)
    ip = value.to_bytes(4, "big")
    body = (_IFADDRMSG.pack(_socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
            + attr(IFA_LOCAL, ip) + attr(IFA_ADDRESS, ip)
            + attr(IFA_BROADCAST, ipv4_broadcast(value, prefixlen).to_bytes(4, "big")))
    return message(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body)


def default_route_request(seq: int, gateway: object) -> bytes:
    """RTM_NEWROUTE: ``default via gateway`` in the main table (proto static, as pyroute2 adds it).

    ``gateway``: an ``ipaddress.IPv4Address`` or its text."""
    body = (_RTMSG.pack(_socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
            + attr(RTA_GATEWAY, ipv4_packed(gateway)))
    return message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body)


def nft_getgen_request(seq: int) -> bytes:
    return message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NLM_F_REQUEST | NLM_F_ACK, seq,
                   _NFGENMSG.pack(_socket.AF_UNSPEC, 0, 0))


# ---- decoding (pure) ------------------------------------------------------------------------
def parse_messages(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """Split a datagram into ``(type, flags, seq, payload)``; ValueError if it is malformed."""
    out = []
    off = 0
    while off + _NLMSGHDR.size <= len(data):
        n, kind, flags, seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if n < _NLMSGHDR.size or off + n > len(data):
            raise ValueError("truncated netlink message")
        out.append((kind, flags, seq, data[off + _NLMSGHDR.size:off + n]))
        off += _align(n)
    return out


def parse_attrs(data: bytes) -> list[tuple[int, bytes]]:
    """``(type, payload)`` of each rtattr in ``data`` (the nested/byte-order flags masked off)."""
    out = []
    off = 0
    while off + _RTATTR.size <= len(data):
        n, kind = _RTATTR.unpack_from(data, off)
        if n < _RTATTR.size or off + n > len(data):
            raise ValueError("truncated netlink attribute")
        out.append((kind & NLA_TYPE_MASK, data[off + _RTATTR.size:off + n]))
        off += _align(n)
    return out


def error_code(payload: bytes) -> int:
    """The errno of an NLMSG_ERROR payload (0: an ACK)."""
    (code,) = unpack_from("=i", payload)
    return -code


# ---- the socket -----------------------------------------------------------------------------
class Netlink:
    """A netlink socket that sends one request at a time and waits for its ACK.

    ``sock`` may be given (a NETLINK_ROUTE socket made inside another network namespace: a
    ``_socket.socket`` or a ``socket.socket``); otherwise one is opened here for ``protocol``. A
    context manager; closes the socket.
    """

    def __init__(self, sock: _socket.socket | None = None, protocol: int = NETLINK_ROUTE) -> None:
        self.sock = sock or _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, protocol)
        self.sock.settimeout(10)
        self._seq = 0

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def seq(self) -> int:
        self._seq += 1
        return self._seq

    def request(self, msg: bytes) -> list[tuple[int, bytes]]:
        """Send one request; the ``(type, payload)`` replies before its ACK. OSError on an error."""
        (seq,) = unpack_from("=I", msg, 8)
        self.sock.sendto(msg, (0, 0))
        replies: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(65536)
            for kind, _flags, mseq, payload in parse_messages(data):
                if mseq != seq:
                    continue
                if kind == NLMSG_ERROR:
                    code = error_code(payload)
                    if code:
                        raise OSError(code, os.strerror(code))
                    return replies
                if kind == NLMSG_DONE:
                    return replies
                replies.append((kind, payload))

    # -- operations ---------------------------------------------------------------------------
    def link_index(self, name: str) -> int | None:
        """The index of link ``name``, or None if there is none."""
        try:
            replies = self.request(get_link_request(self.seq(), name))
        except OSError as e:
            if e.errno == errno.ENODEV:
                return None
            raise
        for kind, payload in replies:
            if kind == RTM_NEWLINK:
                return int(_IFINFOMSG.unpack_from(payload)[2])
        return None

    def create_veth(self, host_name: str, peer_name: str, *, mtu: int, peer_mac: str | None, netns_fd: int) -> None:
        self.request(veth_request(self.seq(), host_name, peer_name, mtu=mtu, peer_mac=peer_mac, netns_fd=netns_fd))

    def set_link(self, index: int, *, up: bool = True, master: int | None = None) -> None:
        self.request(set_link_request(self.seq(), index, up=up, master=master))

    def add_address(self, index: int, address: object) -> None:
        self.request(addr_request(self.seq(), index, address))

    def add_default_route(self, gateway: object) -> None:
        self.request(default_route_request(self.seq(), gateway))

    def delete_link(self, *, index: int = 0, name: str | None = None) -> None:
        self.request(del_link_request(self.seq(), index=index, name=name))


def nft_generation() -> int | None:
    """The nftables ruleset generation (bumped by every committed change), or None if unknown."""
    try:
        with Netlink(protocol=NETLINK_NETFILTER) as nl:
            for _kind, payload in nl.request(nft_getgen_request(nl.seq())):
                for kind, value in parse_attrs(payload[_NFGENMSG.size:]):
                    if kind == NFTA_GEN_ID and len(value) == 4:
                        return int(unpack("!I", value)[0])
    except (OSError, ValueError, struct_error):
        return None
    return None


def attrs_of(payload: bytes, header: Struct) -> dict[int, bytes]:
    """The top-level attributes of a message body after its fixed header (the last of each type)."""
    return dict(parse_attrs(payload[header.size:]))

