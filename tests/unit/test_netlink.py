"""The hand-built rtnetlink messages of ``dockyard.runtime.netlink``: build the bytes, parse them back."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

import pytest

from dockyard.runtime import netlink as nl

HDR = struct.Struct("=IHHII")
IFI = struct.Struct("=BxHiII")
IFA = struct.Struct("=BBBBI")
RTM = struct.Struct("=BBBBBBBBI")


def one(msg: bytes) -> tuple[int, int, int, bytes]:
    msgs = nl.parse_messages(msg)
    assert len(msgs) == 1
    n = HDR.unpack_from(msg)[0]
    assert n == len(msg) and n % 4 == 0
    return msgs[0]


def test_attr_padding_and_round_trip() -> None:
    a = nl.attr_str(nl.IFLA_IFNAME, "eth0")  # 4 + 5 bytes, padded to 12
    assert len(a) == 12 and a[:4] == struct.pack("=HH", 9, nl.IFLA_IFNAME)
    assert nl.parse_attrs(a + nl.attr_u32(nl.IFLA_MTU, 1400)) == [
        (nl.IFLA_IFNAME, b"eth0\0"), (nl.IFLA_MTU, struct.pack("=I", 1400))]
    n = nl.nest(nl.IFLA_LINKINFO, nl.attr_str(nl.IFLA_INFO_KIND, "veth"))
    (kind, payload), = nl.parse_attrs(n)
    assert kind == nl.IFLA_LINKINFO and struct.unpack_from("=HH", n)[1] & nl.NLA_F_NESTED
    assert nl.parse_attrs(payload) == [(nl.IFLA_INFO_KIND, b"veth\0")]


def test_veth_request() -> None:
    kind, flags, seq, body = one(nl.veth_request(7, "dyv0123456789", "eth0", mtu=1450,
                                                 peer_mac="02:42:ac:11:00:02", netns_fd=9))
    assert (kind, seq) == (nl.RTM_NEWLINK, 7)
    assert flags == nl.NLM_F_REQUEST | nl.NLM_F_ACK | nl.NLM_F_CREATE | nl.NLM_F_EXCL
    assert IFI.unpack_from(body) == (socket.AF_UNSPEC, 0, 0, 0, 0)
    top = nl.attrs_of(body, IFI)
    assert top[nl.IFLA_IFNAME] == b"dyv0123456789\0" and top[nl.IFLA_MTU] == struct.pack("=I", 1450)
    info = dict(nl.parse_attrs(top[nl.IFLA_LINKINFO]))
    assert info[nl.IFLA_INFO_KIND] == b"veth\0"
    (peer_kind, peer), = nl.parse_attrs(info[nl.IFLA_INFO_DATA])
    assert peer_kind == nl.VETH_INFO_PEER
    assert IFI.unpack_from(peer) == (socket.AF_UNSPEC, 0, 0, 0, 0)
    pa = nl.attrs_of(peer, IFI)
    assert pa[nl.IFLA_IFNAME] == b"eth0\0"
    assert pa[nl.IFLA_MTU] == struct.pack("=I", 1450)
    assert pa[nl.IFLA_NET_NS_FD] == struct.pack("=I", 9)
    assert pa[nl.IFLA_ADDRESS] == bytes([0x02, 0x42, 0xAC, 0x11, 0x00, 0x02])


def test_set_link_get_and_delete() -> None:
    kind, flags, seq, body = one(nl.set_link_request(3, 42, up=True, master=5))
    assert (kind, flags, seq) == (nl.RTM_NEWLINK, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 3)
    assert IFI.unpack_from(body) == (socket.AF_UNSPEC, 0, 42, nl.IFF_UP, nl.IFF_UP)
    assert nl.attrs_of(body, IFI) == {nl.IFLA_MASTER: struct.pack("=I", 5)}
    _, _, _, body = one(nl.set_link_request(4, 1, up=False))
    assert IFI.unpack_from(body)[3:] == (0, nl.IFF_UP) and nl.attrs_of(body, IFI) == {}
    kind, _, _, body = one(nl.get_link_request(5, "dockyard0"))
    assert kind == nl.RTM_GETLINK and nl.attrs_of(body, IFI) == {nl.IFLA_IFNAME: b"dockyard0\0"}
    kind, _, _, body = one(nl.del_link_request(6, name="dyv1"))
    assert kind == nl.RTM_DELLINK and nl.attrs_of(body, IFI) == {nl.IFLA_IFNAME: b"dyv1\0"}
    _, _, _, body = one(nl.del_link_request(6, index=12))
    assert IFI.unpack_from(body)[2] == 12 and nl.attrs_of(body, IFI) == {}


def test_addr_request() -> None:
    kind, flags, _, body = one(nl.addr_request(9, 2, ipaddress.IPv4Interface("172.17.0.5/16")))
    assert kind == nl.RTM_NEWADDR and flags & nl.NLM_F_CREATE and flags & nl.NLM_F_EXCL
    assert IFA.unpack_from(body) == (socket.AF_INET, 16, 0, 0, 2)
    a = nl.attrs_of(body, IFA)
    assert a[nl.IFA_LOCAL] == a[nl.IFA_ADDRESS] == bytes([172, 17, 0, 5])
    assert a[nl.IFA_BROADCAST] == bytes([172, 17, 255, 255])


def test_default_route_request() -> None:
    kind, flags, _, body = one(nl.default_route_request(10, ipaddress.IPv4Address("10.1.2.1")))
    assert kind == nl.RTM_NEWROUTE and flags & nl.NLM_F_CREATE
    assert RTM.unpack_from(body) == (socket.AF_INET, 0, 0, 0, nl.RT_TABLE_MAIN, nl.RTPROT_STATIC,
                                     nl.RT_SCOPE_UNIVERSE, nl.RTN_UNICAST, 0)
    assert nl.attrs_of(body, RTM) == {nl.RTA_GATEWAY: bytes([10, 1, 2, 1])}


def test_nft_getgen_request() -> None:
    kind, flags, _, body = one(nl.nft_getgen_request(1))
    assert kind == (nl.NFNL_SUBSYS_NFTABLES << 8) | nl.NFT_MSG_GETGEN and flags == nl.NLM_F_REQUEST | nl.NLM_F_ACK
    assert body == struct.pack("=BBH", socket.AF_UNSPEC, 0, 0)


def test_replies_and_errors() -> None:
    ack = HDR.pack(36, nl.NLMSG_ERROR, 0, 7, 0) + struct.pack("=i", 0) + HDR.pack(16, nl.RTM_NEWLINK, 5, 7, 0)
    err = HDR.pack(36, nl.NLMSG_ERROR, 0, 8, 0) + struct.pack("=i", -errno.EEXIST) + HDR.pack(16, 16, 5, 8, 0)
    msgs = nl.parse_messages(ack + err)
    assert [(k, s) for k, _, s, _ in msgs] == [(nl.NLMSG_ERROR, 7), (nl.NLMSG_ERROR, 8)]
    assert nl.error_code(msgs[0][3]) == 0 and nl.error_code(msgs[1][3]) == errno.EEXIST
    with pytest.raises(ValueError):
        nl.parse_messages(ack[:20] + struct.pack("=I", 999))  # a header claiming more than there is
    with pytest.raises(ValueError):
        nl.parse_messages(HDR.pack(100, 2, 0, 1, 0))
    with pytest.raises(ValueError):
        nl.parse_attrs(struct.pack("=HH", 40, 1) + b"abcd")
    with pytest.raises(ValueError):
        nl.mac_bytes("02:42:ac")


class FakeSock:
    """Answers each request with the canned datagrams, checking what was sent."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers, self.sent = answers, []  # type: ignore[var-annotated]

    def settimeout(self, t: float) -> None:
        pass

    def sendto(self, data: bytes, addr: object) -> int:
        self.sent.append(data)
        return len(data)

    def recv(self, n: int) -> bytes:
        return self.answers.pop(0)

    def close(self) -> None:
        pass


def test_request_collects_replies_and_raises_the_errno() -> None:
    link = HDR.pack(16 + IFI.size, nl.RTM_NEWLINK, 0, 1, 0) + IFI.pack(0, 1, 42, 0, 0)
    other = HDR.pack(20, nl.NLMSG_ERROR, 0, 99, 0) + struct.pack("=i", -1)  # not ours: ignored
    ack = HDR.pack(20, nl.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", 0)
    enodev = HDR.pack(20, nl.NLMSG_ERROR, 0, 2, 0) + struct.pack("=i", -errno.ENODEV)
    eexist = HDR.pack(20, nl.NLMSG_ERROR, 0, 3, 0) + struct.pack("=i", -errno.EEXIST)
    sock = FakeSock([other + link, ack, enodev, eexist])
    with nl.Netlink(sock) as n:  # type: ignore[arg-type]
        assert n.link_index("eth0") == 42
        assert n.link_index("nope") is None
        with pytest.raises(OSError) as e:
            n.set_link(42, up=True)
        assert e.value.errno == errno.EEXIST
    assert [HDR.unpack_from(m)[3] for m in sock.sent] == [1, 2, 3]
