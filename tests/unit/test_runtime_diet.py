"""The runtime's run-path modules without the stdlib wrappers: same bytes, same behaviour.

``monitor``, ``attach``, ``network`` and ``netlink`` run in every ``dockyard run`` (the CLI, the
monitor, the container's init), so they use ``_socket``/``select.epoll``/``_signal``/``dockyard.jsonc``
and int arithmetic for IPv4 instead of ``socket``/``selectors``/``signal``/``json``/``ipaddress``. These
tests hold the replacements to what the originals did.
"""

from __future__ import annotations

import _socket
import ipaddress
import json
import os
import socket
import struct
import subprocess
import sys
import time

import pytest

from dockyard.runtime import attach, linux, monitor, netlink, network

HEAVY = ("collections", "functools", "enum", "re", "json", "contextlib", "pathlib", "ipaddress", "signal",
         "socket", "selectors", "threading", "hashlib", "struct", "typing", "urllib.parse")


def test_run_path_modules_import_nothing_heavy() -> None:
    code = ("import sys; import dockyard.runtime.monitor, dockyard.runtime.attach, dockyard.runtime.network, "
            "dockyard.runtime.netlink, dockyard.runtime.ptyrelay; "
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    assert out.stdout.split() == []


# ---- frames and the json-file log ------------------------------------------------------------------
@pytest.mark.parametrize("kind,payload", [(0, b""), (1, b"hello"), (3, b"\xff" * 70000), (5, b"x")])
def test_frame_is_the_stdcopy_header(kind: int, payload: bytes) -> None:
    data = monitor.frame(kind, payload)
    assert data == struct.pack(">BxxxI", kind, len(payload)) + payload
    assert monitor.parse_header(data) == struct.unpack_from(">BxxxI", data)
    assert struct.calcsize(">BxxxI") == monitor.HEADER_SIZE


def test_json_log_lines_are_what_json_writes(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "c-json.log")
    log = monitor.JsonLog(path)
    long = b"y" * 16385
    log.write("stdout", b"one\ntw")
    log.write("stderr", "caf\u00e9 \"q\" \\ \t\x01\n".encode() + b"\xff\xfe bad\n")
    log.write("stdout", b"o\n" + long)
    log.write("stderr", b"tail")
    log.close()
    with open(path, "rb") as f:
        lines = f.read().splitlines()
    objs = [json.loads(x) for x in lines]
    for raw, obj in zip(lines, objs, strict=True):
        assert raw.decode() == json.dumps(obj)  # byte for byte what json.dumps gives (ASCII, separators)
    assert [(o["stream"], o["log"]) for o in objs] == [
        ("stdout", "one\n"),
        ("stderr", "caf\u00e9 \"q\" \\ \t\x01\n"),
        ("stderr", "\ufffd\ufffd bad\n"),
        ("stdout", "two\n"),
        ("stdout", long.decode()),
        ("stderr", "tail"),
    ]
    assert all(o["time"].endswith("Z") and len(o["time"]) == 30 for o in objs)


# ---- fds over unix sockets ----------------------------------------------------------------------------
def test_send_and_recv_fds_match_socket_module() -> None:
    a, b = socket.socketpair()
    r, w = os.pipe()
    try:
        linux.send_fds(_socket.socket(fileno=os.dup(a.fileno())), [b"/dev/pts/3"], [r, w])
        msg, fds, _flags, _addr = socket.recv_fds(b, 100, 2)
        assert msg == b"/dev/pts/3" and len(fds) == 2
        os.write(fds[1], b"z")
        assert os.read(r, 1) == b"z"
        for fd in fds:
            os.close(fd)
        socket.send_fds(a, [b"m"], [w])
        msg, fds, _flags, _addr = linux.recv_fds(b, 100, 1)
        assert msg == b"m" and len(fds) == 1
        os.close(fds[0])
        linux.send_fds(a, [b"one"], [r])
        fd = monitor._recv_fd(_socket.socket(fileno=os.dup(b.fileno())))
        assert os.path.samestat(os.fstat(fd), os.fstat(r))
        os.close(fd)
    finally:
        for s in (a, b):
            s.close()
        os.close(r)
        os.close(w)


# ---- the monitor's poller -----------------------------------------------------------------------------
def test_poller_reports_tags_and_times_out() -> None:
    p = monitor._Poller()
    r, w = os.pipe()
    r2, w2 = os.pipe()
    try:
        p.register(r, ("out", r))
        p.register(r2, ("exit", None))
        t0 = time.monotonic()
        assert p.select(0.05) == []
        assert time.monotonic() - t0 >= 0.05
        os.write(w, b"x")
        assert p.select(None) == [(r, ("out", r))]
        p.unregister(r)
        p.unregister(r)  # twice: no error, as selectors with suppress(KeyError)
        assert p.select(0) == []
        os.close(w2)  # EOF (EPOLLHUP) counts as readable
        assert p.select(1) == [(r2, ("exit", None))]
    finally:
        for fd in (r, w, r2):
            os.close(fd)


def test_accept_gives_a_blocking_socket(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "s")
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    listener.settimeout(0.05)
    with pytest.raises(TimeoutError):
        monitor._accept(listener)
    client = attach.connect(path, timeout=1)
    conn = monitor._accept(listener)
    try:
        assert conn.getblocking() and conn.gettimeout() is None
        client.sendall(b"ping")
        assert conn.recv(4) == b"ping"
    finally:
        for s in (conn, client, listener):
            s.close()


# ---- the attach relay ---------------------------------------------------------------------------------
def test_relay_prints_streams_and_returns_the_exit_status(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(monitor.frame(monitor.STDOUT, b"out\n") + monitor.frame(monitor.STDERR, b"err\n")
                       + monitor.frame(monitor.EXIT, (-3).to_bytes(4, "big", signed=True)))
        assert attach.relay(ours, tty=False, stdin=False) == -3
        captured = capfdbinary.readouterr()
        assert (captured.out, captured.err) == (b"out\n", b"err\n")
        theirs.sendall(monitor.frame(monitor.EXIT, (137).to_bytes(4, "big", signed=True))[:5])
        theirs.close()
        assert attach.relay(ours, tty=False, stdin=False) == 255  # the monitor went away mid-frame
    finally:
        ours.close()


def test_connect_gives_up_after_the_timeout(tmp_path: object) -> None:
    with pytest.raises(FileNotFoundError):
        attach.connect(os.path.join(str(tmp_path), "nothing"), timeout=0.02)


# ---- IPv4 without ipaddress ---------------------------------------------------------------------------
VALID = ["0.0.0.0", "1.2.3.4", "172.17.0.1", "255.255.255.255", "10.0.0.255"]
INVALID = ["", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "256.1.1.1", "1.2.3.4.", " 1.2.3.4", "1.2.3.4 ",
           "a.b.c.d", "1..2.3", "1.2.3.-4", "\u0661.2.3.4", "1.2.3.4\x00", "0x1.2.3.4", "::1"]


@pytest.mark.parametrize("text", VALID)
def test_ipv4_packed_matches_ipaddress(text: str) -> None:
    assert netlink.ipv4_packed(text) == ipaddress.IPv4Address(text).packed
    assert netlink.ipv4_packed(ipaddress.IPv4Address(text)) == ipaddress.IPv4Address(text).packed
    assert netlink.ipv4_text(int(ipaddress.IPv4Address(text))) == text
    assert network.mac_for_ip(text) == "02:42:" + ":".join(f"{x:02x}" for x in ipaddress.IPv4Address(text).packed)


@pytest.mark.parametrize("text", INVALID)
def test_ipv4_packed_refuses_what_ipaddress_refuses(text: str) -> None:
    with pytest.raises(ValueError) as want:
        ipaddress.IPv4Address(text)
    with pytest.raises(ValueError) as got:
        netlink.ipv4_packed(text)
    assert str(got.value) == str(want.value)


@pytest.mark.parametrize("text", ["172.17.0.5/16", "10.0.0.1/32", "10.0.0.1", "192.168.1.7/0", "10.1.2.3/31",
                                  "10.1.2.3/255.255.255.0", "10.1.2.3/0.0.0.255", "10.1.2.3/016"])
def test_ipv4_interface_matches_ipaddress(text: str) -> None:
    want = ipaddress.IPv4Interface(text)
    ip, plen = netlink.ipv4_interface(text)
    assert (ip, plen) == (int(want.ip), want.network.prefixlen) == netlink.ipv4_interface(want)
    assert netlink.ipv4_broadcast(ip, plen) == int(want.network.broadcast_address)
    assert netlink.addr_request(1, 2, text) == netlink.addr_request(1, 2, want)
    assert network._interface_parts(text) == (str(want.ip), want.network.prefixlen,
                                              str(want.network.broadcast_address))


@pytest.mark.parametrize("text", ["1.2.3.4/33", "1.2.3.4/", "1.2.3.4/a", "1.2.3/8", "1.2.3.4/8/1",
                                  "1.2.3.4/255.0.255.0", "1.2.3.4/-1"])
def test_ipv4_interface_refuses_what_ipaddress_refuses(text: str) -> None:
    with pytest.raises(ValueError) as want:
        ipaddress.IPv4Interface(text)
    with pytest.raises(ValueError) as got:
        netlink.ipv4_interface(text)
    assert str(got.value) == str(want.value)


def test_prefix_from_netmask() -> None:
    for plen in range(33):
        mask = int(ipaddress.IPv4Network(f"0.0.0.0/{plen}").netmask)
        assert netlink.prefix_from_netmask(mask) == plen
    with pytest.raises(ValueError):
        netlink.prefix_from_netmask(int(ipaddress.IPv4Address("255.0.255.0")))


def test_default_route_request_takes_text_or_address() -> None:
    assert (netlink.default_route_request(3, "10.1.2.1")
            == netlink.default_route_request(3, ipaddress.IPv4Address("10.1.2.1")))


def test_interface_keeps_what_it_was_given() -> None:
    a = network.Interface("dyv1", "dockyard0", "eth0", "02:42:ac:11:00:02", "172.17.0.2/16", "172.17.0.1")
    b = network.Interface("dyv1", "dockyard0", "eth0", "02:42:ac:11:00:02",
                          ipaddress.IPv4Interface("172.17.0.2/16"), ipaddress.IPv4Address("172.17.0.1"))
    assert a.address == "172.17.0.2/16" and b.address.ip == ipaddress.IPv4Address("172.17.0.2")
    assert network._interface_parts(a.address) == network._interface_parts(b.address)


# ---- the kernel side (root) ---------------------------------------------------------------------------
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="setns and interface ioctls need root")


@needs_root
def test_loopback_address_through_ioctls() -> None:
    cidr = network.bridge_cidr("lo")
    assert cidr is not None and netlink.ipv4_interface(cidr)[1] <= 32
    assert network.bridge_address("lo") == ipaddress.IPv4Interface(cidr)
    assert network.bridge_cidr("no-such-link0") is None
    assert network.link_is_up("lo") and not network.link_is_up("no-such-link0")


@needs_root
def test_socket_in_netns_and_its_errors() -> None:
    s = network.socket_in_netns(os.getpid())
    try:
        assert isinstance(s, _socket.socket) and s.family == _socket.AF_INET and s.type == _socket.SOCK_DGRAM
    finally:
        s.close()
    nl = network.socket_in_netns(os.getpid(), _socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC,
                                 netlink.NETLINK_ROUTE)
    with netlink.Netlink(nl) as conn:
        assert conn.link_index("lo") == socket.if_nametoindex("lo")
    with pytest.raises(FileNotFoundError):
        network.socket_in_netns(2**22 + 12345)
    network.loopback_up(os.getpid())  # lo is up here already: one ioctl, nothing changes
