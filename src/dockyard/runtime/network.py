"""The kernel side of container networking: links, addresses and routes, NAT and published ports.

Links (bridges, veth pairs), addresses and routes go through netlink with pyroute2, never the ``ip``
command. pyroute2 costs ~0.13-0.2 s to import, so it is imported inside the functions that need it and
never for ``--network none`` (bringing ``lo`` up is one ioctl on a socket made inside the namespace).
The per-container hot path (``add_interface``, ``delete_link``, ``bridge_cidr``, ``bridge_ready``)
does not import it either: it uses the small stdlib client in ``dockyard.runtime.netlink`` and ioctls,
falling back to pyroute2 when that fails for a reason that is not a configuration error.
``DOCKYARD_NETLINK=pyroute2`` forces the pyroute2 path (to compare the two).

NAT and port publishing live in one nftables table, ``ip dockyard``, driven through ``nft -f -``
(one atomic transaction per change; no maintained Python binding exists)::

    set bridges   every Dockyard bridge                    map tcp_any  port -> ip . port
    set masq      every subnet that is NATed to the world  map tcp_ip   addr . port -> ip . port
    chain prerouting/output (nat):  fib daddr type local jump ports     (udp_* alike)
    chain ports:   dnat by the maps (a specific host address first, then any address)
    chain postrouting (nat):  subnet leaving by a non-Dockyard link -> masquerade;
                              loopback-sourced traffic into a bridge -> masquerade (127.0.0.1:PORT);
                              DNATed traffic from a container subnet back into a bridge -> masquerade (hairpin)
    chain forward (filter):   one isolation rule per network (no traffic between networks)

A published port is a map element, added and removed by its key: no rule handles to track, and a
rule set that stays the same size however many containers run. Docker does the same with
iptables chains and ``docker-proxy``; the maps make ``127.0.0.1:PORT`` work in the kernel
(``route_localnet`` on the bridge plus the loopback masquerade), so no proxy process is needed.

Nothing here knows about the database: ``dockyard.ops.networks`` decides, this module does. The
caller serialises changes (``ops.networks`` holds a machine-wide lock).

The module runs in every bridge ``run``'s monitor, so what the per-container path uses imports C
modules only: ``_socket``/``_struct`` rather than ``socket``/``struct`` (``socket`` builds IntEnums,
~3 ms), ``_thread`` rather than ``threading``, ``dockyard.jsonc`` rather than ``json`` (``re``), and
IPv4 addresses as ints (``netlink.ipv4_*``) rather than ``ipaddress`` (~1.3 ms). Addresses are taken
as ``ipaddress`` objects or as their text (``172.17.0.1/16``) alike; ``ipaddress`` is still used,
lazily, where this module hands them back (``bridge_address``, ``used_networks``) or for nft ranges.
"""

from __future__ import annotations

import _socket
import errno
import fcntl
import os
from _struct import pack, unpack

from dockyard.errors import RuntimeFailure
from dockyard.records import MutableRecord, Record
from dockyard.runtime import netlink

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import ipaddress
    import socket
    from collections.abc import Iterator
    from typing import Any

TABLE = "dockyard"
BASE_VERSION = "dockyard base v2"  # the comment on the table's last rule: bump when the layout changes
CLONE_NEWNET = 0x40000000


class NetworkError(RuntimeFailure):
    """Setting up a network failed (exit 125 from ``run``)."""


# ---- small helpers --------------------------------------------------------------------------
def random_mac() -> str:
    """A random, locally administered unicast MAC (what the kernel would pick, but fixed by us)."""
    b = bytearray(os.urandom(6))
    b[0] = (b[0] & 0xFE) | 0x02
    return ":".join(f"{x:02x}" for x in b)


def mac_for_ip(ip: str) -> str:
    """Docker's classic container MAC, ``02:42`` and the four address bytes: stable per address."""
    return "02:42:" + ":".join(f"{x:02x}" for x in netlink.ipv4_packed(ip))


def sysctl(path: str, value: str) -> None:
    """Write ``/proc/sys/<path>`` (``net/ipv4/ip_forward``) if it differs; errors are the caller's."""
    p = f"/proc/sys/{path}"
    with open(p) as f:
        if f.read().strip() == value:
            return
    with open(p, "w") as f:
        f.write(value)


def _ipr(pid: int | None = None) -> Any:
    from pyroute2 import IPRoute

    if pid is None:
        return IPRoute()
    return IPRoute(netns=f"/proc/{pid}/ns/net", flags=0)


def _netlink_code(e: BaseException) -> int | None:
    return getattr(e, "code", None)


def preload() -> Any:
    """Import pyroute2 in a background thread (overlaps its ~0.2 s import with container creation)."""

    def work() -> None:
        try:
            import pyroute2  # noqa: F401
        except Exception:
            pass

    import threading

    t = threading.Thread(target=work, name="pyroute2-preload", daemon=True)
    t.start()
    return t


# ---- network namespaces without pyroute2 ----------------------------------------------------
def _setns(fd: int) -> None:
    from dockyard.runtime import linux as L  # libc through the ctypes sliver (``ctypes`` costs ~2 ms)

    c = L._ct()
    if L._libc().setns(c.c_int(fd), c.c_int(CLONE_NEWNET)) != 0:
        err = c.get_errno()
        raise OSError(err, os.strerror(err))


def socket_in_netns(pid: int, family: int = _socket.AF_INET, kind: int = _socket.SOCK_DGRAM,
                    proto: int = 0) -> _socket.socket:
    """A socket that lives in the network namespace of ``pid`` (made by a thread that visits it).

    ``setns(CLONE_NEWNET)`` moves only the calling thread, so a short-lived thread enters the
    namespace, makes the socket (which stays bound to that namespace) and ends; the rest of the
    process never changes namespace. The thread is a bare ``_thread`` one, joined through a lock:
    ``threading`` would cost its import (and ``_weakrefset``) on every bridge ``run``.
    """
    import _thread

    out: dict[str, Any] = {}
    done = _thread.allocate_lock()
    done.acquire()

    def work() -> None:
        try:
            target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(target)
                out["sock"] = _socket.socket(family, kind, proto)
            finally:
                os.close(target)
        except BaseException as e:  # handed to the caller
            out["error"] = e
        finally:
            done.release()
        # The thread ends inside the namespace: nothing else ever runs on it.

    _thread.start_new_thread(work, ())
    done.acquire()
    if "error" in out:
        raise out["error"]
    sock: _socket.socket = out["sock"]
    return sock


SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up(pid: int) -> None:
    """``ip link set lo up`` inside ``pid``'s network namespace, with one ioctl (no pyroute2)."""
    s = socket_in_netns(pid)
    try:
        req = pack("16sH", b"lo", 0)
        flags = unpack("16sH", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req + b"\0" * 22)[:18])[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, pack("16sH", b"lo", flags | IFF_UP) + b"\0" * 22)
    finally:
        s.close()


# ---- the fast path: netlink by hand and ioctls ----------------------------------------------
SIOCGIFADDR, SIOCGIFNETMASK = 0x8915, 0x891B
# Errors that say the request itself cannot work (pyroute2 would fail the same way): no fallback.
_CONFIG_ERRNOS = frozenset({errno.EEXIST, errno.ENODEV, errno.ESRCH, errno.ENOENT, errno.EPERM, errno.EACCES,
                            errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.ENETUNREACH, errno.ERANGE})


def use_fast_path() -> bool:
    """False when ``DOCKYARD_NETLINK=pyroute2`` asks for the library path everywhere."""
    return os.environ.get("DOCKYARD_NETLINK", "").strip().lower() != "pyroute2"


def _config_error(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in _CONFIG_ERRNOS


def _ifreq_ipv4(s: _socket.socket, request: int, name: str) -> int:
    res = fcntl.ioctl(s.fileno(), request, pack("16s16s", name.encode(), b""))
    return int.from_bytes(res[20:24], "big")  # ifr_addr: sockaddr_in (family, port, address)


def _bridge_address_ioctl(name: str) -> tuple[int, int] | None:
    """The link's primary IPv4 address, (address, prefix length), with two ioctls; None if it has
    none (or no such link); ValueError for a netmask that is no prefix."""
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        ip = _ifreq_ipv4(s, SIOCGIFADDR, name)
        mask = _ifreq_ipv4(s, SIOCGIFNETMASK, name)
    except OSError as e:
        if e.errno in (errno.EADDRNOTAVAIL, errno.ENODEV):
            return None
        raise
    finally:
        s.close()
    return ip, netlink.prefix_from_netmask(mask)


def link_is_up(name: str) -> bool:
    """IFF_UP on a host link (one ioctl); False if there is no such link."""
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        res = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, pack("16sH", name.encode(), 0) + b"\0" * 22)
    except OSError:
        return False
    finally:
        s.close()
    return bool(unpack("16sH", res[:18])[1] & IFF_UP)


def bridge_ready(name: str, gateway: ipaddress.IPv4Interface | str) -> bool:
    """What ``ensure_bridge`` would do is already done (no pyroute2, no subprocess): the bridge is
    there and up, ``gateway`` (an ``IPv4Interface`` or its text, ``172.17.0.1/16``) is its address
    and forwarding is on."""
    if not link_exists(name) or not link_is_up(name):
        return False
    try:
        if _bridge_address_ioctl(name) != netlink.ipv4_interface(gateway):
            return False
        for path in ("net/ipv4/ip_forward", f"net/ipv4/conf/{name}/route_localnet"):
            with open(f"/proc/sys/{path}") as f:
                if f.read().strip() != "1":
                    return False
    except (OSError, ValueError):
        return False
    return True


def nft_generation() -> int | None:
    """The nftables ruleset generation (one netlink request), None if it cannot be read."""
    return netlink.nft_generation()


def _add_interface_fast(pid: int, itf: Interface) -> None:
    """``add_interface`` with ``dockyard.runtime.netlink``; raises OSError/ValueError, leaves nothing."""
    with netlink.Netlink() as nl:
        br = nl.link_index(itf.bridge)
        if br is None:
            raise NetworkError(f"bridge {itf.bridge} does not exist")
        ns_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            nl.create_veth(itf.host_name, itf.ifname, mtu=itf.mtu, peer_mac=itf.mac, netns_fd=ns_fd)
        finally:
            os.close(ns_fd)
        try:
            idx = nl.link_index(itf.host_name)
            if idx is None:
                raise OSError(errno.ENODEV, f"{itf.host_name} vanished")
            nl.set_link(idx, up=True, master=br)
            _hairpin(itf.host_name)
            with netlink.Netlink(socket_in_netns(pid, _socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC,
                                                 netlink.NETLINK_ROUTE)) as ns:
                lo = ns.link_index("lo")
                if lo is not None:
                    ns.set_link(lo, up=True)
                eth = ns.link_index(itf.ifname)
                if eth is None:
                    raise OSError(errno.ENODEV, f"{itf.ifname} is not in the container")
                ns.add_address(eth, itf.address)
                ns.set_link(eth, up=True)
                if itf.gateway is not None:
                    ns.add_default_route(itf.gateway)
        except BaseException:
            try:
                nl.delete_link(name=itf.host_name)
            except Exception:
                try:
                    _delete_link_pyroute2(itf.host_name)
                except Exception:
                    pass
            raise


def _hairpin(host_name: str) -> None:
    # With br_netfilter, traffic a container sends to its own published port is DNATed and
    # bridged straight back out of the port it came in by: that needs hairpin mode.
    try:
        with open(f"/sys/class/net/{host_name}/brport/hairpin_mode", "w") as f:
            f.write("1")
    except OSError:
        pass


# ---- links ----------------------------------------------------------------------------------
def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host already routes or sits on (the default route excepted)."""
    import ipaddress  # network create and subnet choice only: not on a container's start

    out: list[ipaddress.IPv4Network] = []
    with _ipr() as ipr:
        for r in ipr.get_routes(family=_socket.AF_INET, table=0):
            if r["dst_len"] == 0:
                continue
            dst = r.get("dst") or r.get_attr("RTA_DST")
            if dst:
                try:
                    out.append(ipaddress.IPv4Network(f"{dst}/{r['dst_len']}", strict=False))
                except ValueError:
                    pass
        for a in ipr.get_addr(family=_socket.AF_INET):
            addr = a.get("address") or a.get_attr("IFA_ADDRESS")
            if addr and not addr.startswith("127."):
                out.append(ipaddress.IPv4Network(f"{addr}/{a['prefixlen']}", strict=False))
    return out


def bridge_cidr(name: str) -> str | None:
    """The first IPv4 address on a link as text (``172.17.0.1/16``), or None: ``bridge_address``
    without ``ipaddress`` (two ioctls; pyroute2 only if they fail or ``DOCKYARD_NETLINK=pyroute2``)."""
    if not link_exists(name):
        return None
    if use_fast_path():
        try:
            have = _bridge_address_ioctl(name)
            return None if have is None else f"{netlink.ipv4_text(have[0])}/{have[1]}"
        except (OSError, ValueError):
            pass
    with _ipr() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return None
        for a in ipr.get_addr(index=idx[0], family=_socket.AF_INET):
            addr = a.get("address") or a.get_attr("IFA_ADDRESS")
            if addr:
                ip, plen = netlink.ipv4_interface(f"{addr}/{a['prefixlen']}")
                return f"{netlink.ipv4_text(ip)}/{plen}"
    return None


def bridge_address(name: str) -> ipaddress.IPv4Interface | None:
    """The first IPv4 address on a link (``172.17.0.1/16``), or None (see ``bridge_cidr``)."""
    cidr = bridge_cidr(name)
    if cidr is None:
        return None
    import ipaddress

    return ipaddress.IPv4Interface(cidr)


def _interface_parts(address: object) -> tuple[str, int, str]:
    """(address, prefix length, broadcast) as text, of an ``IPv4Interface`` or ``a.b.c.d/n``."""
    ip, plen = netlink.ipv4_interface(address)
    return netlink.ipv4_text(ip), plen, netlink.ipv4_text(netlink.ipv4_broadcast(ip, plen))


def ensure_bridge(name: str, gateway: ipaddress.IPv4Interface | str, mtu: int = 1500) -> None:
    """Create (or complete) a bridge with ``gateway`` (an ``IPv4Interface`` or its text) on it, up,
    routing ``127.0.0.1`` traffic in."""
    gw_ip, gw_plen, gw_broadcast = _interface_parts(gateway)
    with _ipr() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            try:
                # A fixed MAC: a bridge otherwise takes its lowest port's, and every container's
                # ARP entry for the gateway would go stale whenever that container left.
                ipr.link("add", ifname=name, kind="bridge", address=random_mac(), mtu=mtu)
            except Exception as e:
                if _netlink_code(e) != errno.EEXIST:
                    raise NetworkError(f"failed to create bridge {name}: {e}") from e
            idx = ipr.link_lookup(ifname=name)
        if not idx:
            raise NetworkError(f"failed to create bridge {name}")
        have = {(a.get("address") or a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in ipr.get_addr(index=idx[0], family=_socket.AF_INET)}
        if (gw_ip, gw_plen) not in have:
            try:
                ipr.addr("add", index=idx[0], address=gw_ip, prefixlen=gw_plen, broadcast=gw_broadcast)
            except Exception as e:
                if _netlink_code(e) != errno.EEXIST:
                    raise NetworkError(f"failed to add {gateway} to {name}: {e}") from e
        ipr.link("set", index=idx[0], state="up")
    try:
        sysctl("net/ipv4/ip_forward", "1")
        sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
    except OSError as e:
        raise NetworkError(f"failed to enable forwarding for {name}: {e}") from e


def delete_link(name: str) -> bool:
    """Remove a link (a veth takes its peer with it); False if it was not there."""
    if not name or not link_exists(name):
        return False
    if use_fast_path():
        try:
            with netlink.Netlink() as nl:
                nl.delete_link(name=name)
            return True
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return False
            if _config_error(e):
                raise
        except ValueError:
            pass
    return _delete_link_pyroute2(name)


def _delete_link_pyroute2(name: str) -> bool:
    with _ipr() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return False
        try:
            ipr.link("del", index=idx[0])
        except Exception as e:
            if _netlink_code(e) in (errno.ENODEV, errno.ENOENT):
                return False
            raise
    return True


def links(prefix: str, kind: str | None = None) -> list[str]:
    """Names of host links starting with ``prefix`` (optionally of one kind: veth, bridge)."""
    out: list[str] = []
    try:
        names = os.listdir("/sys/class/net")
    except OSError:
        return out
    for n in names:
        if not n.startswith(prefix):
            continue
        if kind == "bridge" and not os.path.isdir(f"/sys/class/net/{n}/bridge"):
            continue
        if kind == "veth":
            try:
                with open(f"/sys/class/net/{n}/uevent") as f:
                    if "DEVTYPE=" in f.read():  # veths have none; bridges say DEVTYPE=bridge
                        continue
            except OSError:
                continue
        out.append(n)
    return out


class Interface(MutableRecord):
    """One container interface to plumb: ``host_name`` on ``bridge`` <-> ``ifname`` in the netns.

    ``address`` is an ``ipaddress.IPv4Interface`` or its text (``172.17.0.2/16``), ``gateway`` an
    ``ipaddress.IPv4Address``, its text or None: both are kept as the caller gave them (typed Any so
    that callers of either kind read back their own type).
    """

    host_name: str
    bridge: str
    ifname: str
    mac: str
    address: Any  # ipaddress.IPv4Interface | str
    gateway: Any  # ipaddress.IPv4Address | str | None: a default route through it (the first network only)
    mtu: int
    _fields = ("host_name", "bridge", "ifname", "mac", "address", "gateway", "mtu")

    def __init__(self, host_name: str, bridge: str, ifname: str, mac: str,
                 address: ipaddress.IPv4Interface | str, gateway: ipaddress.IPv4Address | str | None,
                 mtu: int = 1500) -> None:
        self.__dict__.update(host_name=host_name, bridge=bridge, ifname=ifname, mac=mac, address=address,
                             gateway=gateway, mtu=mtu)


def add_interface(pid: int, itf: Interface) -> None:
    """A veth pair: one end on the bridge, the other ``ifname`` in ``pid``'s namespace, addressed.

    Also brings the namespace's ``lo`` up. On failure nothing is left (the host end is removed,
    which removes its peer). The stdlib netlink client does it unless ``DOCKYARD_NETLINK=pyroute2``;
    pyroute2 takes over when that fails for any reason but a configuration error.
    """
    if use_fast_path():
        try:
            _add_interface_fast(pid, itf)
            return
        except NetworkError:
            raise
        except Exception as e:
            if _config_error(e):
                what = (f"failed to create the veth pair {itf.host_name}" if not link_exists(itf.host_name)
                        else f"failed to configure {itf.ifname} in the container")
                raise NetworkError(f"{what}: {e}") from e
            # Anything else (an old kernel, a reply this client does not understand): the library.
    _add_interface_pyroute2(pid, itf)


def _add_interface_pyroute2(pid: int, itf: Interface) -> None:
    with _ipr() as ipr:
        br = ipr.link_lookup(ifname=itf.bridge)
        if not br:
            raise NetworkError(f"bridge {itf.bridge} does not exist")
        try:
            ipr.link("add", ifname=itf.host_name, kind="veth", mtu=itf.mtu,
                     peer={"ifname": itf.ifname, "net_ns_pid": pid, "mtu": itf.mtu})
        except Exception as e:
            raise NetworkError(f"failed to create the veth pair {itf.host_name}: {e}") from e
        try:
            idx = ipr.link_lookup(ifname=itf.host_name)[0]
            ipr.link("set", index=idx, master=br[0], state="up")
            _hairpin(itf.host_name)
            with _ipr(pid) as ns:
                lo = ns.link_lookup(ifname="lo")
                if lo:
                    ns.link("set", index=lo[0], state="up")
                eth = ns.link_lookup(ifname=itf.ifname)[0]
                ns.link("set", index=eth, address=itf.mac)
                ip, plen, broadcast = _interface_parts(itf.address)
                ns.addr("add", index=eth, address=ip, prefixlen=plen, broadcast=broadcast)
                ns.link("set", index=eth, state="up")
                if itf.gateway is not None:
                    ns.route("add", dst="0.0.0.0/0", gateway=str(itf.gateway))
        except BaseException as e:
            try:
                ipr.link("del", ifname=itf.host_name)
            except Exception:
                pass
            if isinstance(e, NetworkError):
                raise
            raise NetworkError(f"failed to configure {itf.ifname} in the container: {e}") from e


def netns_links(pid: int) -> list[str]:
    """Interface names inside ``pid``'s network namespace."""
    with _ipr(pid) as ns:
        return [link.get_attr("IFLA_IFNAME") for link in ns.get_links()]


# ---- nftables -------------------------------------------------------------------------------
class PortMap(Record):
    """``host_ip:host_port/proto -> container_ip:container_port``; host_ip ``0.0.0.0`` = any."""

    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int
    _fields = ("proto", "host_ip", "host_port", "container_ip", "container_port")

    def __init__(self, proto: str, host_ip: str, host_port: int, container_ip: str, container_port: int) -> None:
        self.__dict__.update(proto=proto, host_ip=host_ip, host_port=host_port, container_ip=container_ip,
                             container_port=container_port)

    @property
    def map_name(self) -> str:
        return f"{self.proto}_{'any' if self.host_ip == '0.0.0.0' else 'ip'}"

    @property
    def key(self) -> str:
        return str(self.host_port) if self.host_ip == "0.0.0.0" else f"{self.host_ip} . {self.host_port}"

    @property
    def element(self) -> str:
        return f"{self.key} : {self.container_ip} . {self.container_port}"


def _comment(s: str) -> str:
    return '"' + "".join(c for c in s if c.isalnum() or c in "-_.:/ ") + '"'


_commits = 0  # nft transactions this process committed (see ``nft_commits``)


def nft_commits() -> int:
    """How many ``nft -f`` transactions this process committed: with ``nft_generation`` before and
    after a change, the caller can tell whether anyone else changed the ruleset meanwhile."""
    return _commits


class Nft:
    """The ``ip dockyard`` table, through the ``nft`` command."""

    def __init__(self, binary: str = "nft") -> None:
        self.binary = binary

    def run(self, script: str, *, what: str = "update the firewall") -> None:
        import subprocess

        try:
            p = subprocess.run([self.binary, "-f", "-"], input=script.encode(), capture_output=True, timeout=30)
        except FileNotFoundError:
            raise NetworkError("nft (nftables) is needed for bridge networking and published ports") from None
        if p.returncode != 0:
            err = " ".join(p.stderr.decode(errors="replace").split())
            raise NetworkError(f"failed to {what}: {err}")
        global _commits
        _commits += 1

    def query(self, *args: str) -> list[dict[str, Any]]:
        """``nft -j list ...`` as its objects; [] if the thing does not exist."""
        import subprocess

        from dockyard.jsonc import loads as json_loads  # json's behaviour without its ``re`` chain

        try:
            p = subprocess.run([self.binary, "-j", *args], capture_output=True, timeout=30)
        except FileNotFoundError:
            return []
        if p.returncode != 0 or not p.stdout.strip():
            return []
        try:
            data = json_loads(p.stdout)
        except ValueError:
            return []
        return [x for x in data.get("nftables", []) if "metainfo" not in x]

    # -- the table --------------------------------------------------------------------------
    def has_base(self) -> bool:
        """The table is there (of any version)."""
        return bool(self.query("list", "chain", "ip", TABLE, "postrouting"))

    def _base_version_ok(self) -> bool:
        return any(obj.get("rule", {}).get("comment") == BASE_VERSION
                   for obj in self.query("list", "chain", "ip", TABLE, "postrouting"))

    def ensure_base(self) -> bool:
        """Create the table, its sets, maps and rules once (the caller holds the lock); True if it did.

        A table of an older layout is replaced, its published ports and networks carried over
        (isolation rules come back with the next ``add_network`` of each network).
        """
        if self._base_version_ok():
            return False
        keep_ports: list[PortMap] = []
        keep_bridges: list[str] = []
        keep_masq: list[str] = []
        prefix = ""
        if self.has_base():
            keep_ports = self.port_maps()
            keep_bridges, keep_masq = self.networks()
            prefix = f"delete table ip {TABLE}\n"  # in the same transaction as the new one
        maps = "".join(
            f"  map {p}_any {{ type inet_service : ipv4_addr . inet_service; }}\n"
            f"  map {p}_ip {{ type ipv4_addr . inet_service : ipv4_addr . inet_service; }}\n"
            for p in ("tcp", "udp"))
        dnat = "".join(
            f"    meta l4proto {p} dnat ip to ip daddr . {p} dport map @{p}_ip\n"
            f"    meta l4proto {p} dnat ip to {p} dport map @{p}_any\n" for p in ("tcp", "udp"))
        script = prefix + (
            f"table ip {TABLE} {{\n"
            "  set bridges { type ifname; }\n"
            "  set masq { type ipv4_addr; flags interval; }\n"
            f"{maps}"
            f"  chain ports {{\n{dnat}  }}\n"
            "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n"
            "    fib daddr type local jump ports\n  }\n"
            "  chain output {\n    type nat hook output priority -100; policy accept;\n"
            "    fib daddr type local jump ports\n  }\n"
            "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n"
            "    oifname @bridges ip saddr 127.0.0.0/8 masquerade\n"
            "    oifname @bridges ip saddr @masq ct status dnat masquerade\n"
            f"    ip saddr @masq oifname != @bridges masquerade comment \"{BASE_VERSION}\"\n  }}\n"
            "  chain forward {\n    type filter hook forward priority filter; policy accept;\n  }\n"
            "}\n")
        for b in keep_bridges:
            script += f"add element ip {TABLE} bridges {{ {_comment(b)} }}\n"
        for subnet in keep_masq:
            script += f"add element ip {TABLE} masq {{ {subnet} }}\n"
        for m in keep_ports:
            script += f"add element ip {TABLE} {m.map_name} {{ {m.element} }}\n"
        self.run(script, what="create the dockyard nftables table")
        return True

    def delete_table(self) -> None:
        if self.query("list", "table", "ip", TABLE):
            self.run(f"delete table ip {TABLE}\n", what="delete the dockyard nftables table")

    # -- networks ---------------------------------------------------------------------------
    def _set_elements(self, name: str) -> list[Any]:
        for obj in self.query("list", "set", "ip", TABLE, name):
            if "set" in obj:
                return list(obj["set"].get("elem") or [])
        return []

    def _forward_rules(self) -> list[tuple[int, str]]:
        out = []
        for obj in self.query("-a", "list", "chain", "ip", TABLE, "forward"):
            rule = obj.get("rule")
            if rule:
                out.append((int(rule["handle"]), str(rule.get("comment", ""))))
        return out

    def add_network(self, bridge: str, subnet: str, *, internal: bool = False) -> None:
        """Masquerade the subnet (unless internal), and isolate the bridge from other networks."""
        lines = []
        if bridge not in self._set_elements("bridges"):
            lines.append(f"add element ip {TABLE} bridges {{ {_comment(bridge)} }}")
        if not internal and not any(_prefix_str(e) == subnet for e in self._set_elements("masq")):
            lines.append(f"add element ip {TABLE} masq {{ {subnet} }}")
        tag = f"isolate {bridge}"
        if not any(c == tag for _, c in self._forward_rules()):
            b = _comment(bridge)
            lines.append(f"add rule ip {TABLE} forward iifname {b} oifname != {b} oifname @bridges "
                         f"ct status & dnat == 0 drop comment {_comment(tag)}")
            if internal:  # no traffic in or out but between its own members
                lines.append(f"add rule ip {TABLE} forward iifname {b} oifname != {b} drop comment {_comment(tag)}")
                lines.append(f"add rule ip {TABLE} forward oifname {b} iifname != {b} drop comment {_comment(tag)}")
        if lines:
            self.run("\n".join(lines) + "\n", what=f"set up NAT for {bridge}")

    def remove_network(self, bridge: str, subnet: str) -> None:
        lines = []
        if bridge in self._set_elements("bridges"):
            lines.append(f"delete element ip {TABLE} bridges {{ {_comment(bridge)} }}")
        if any(_prefix_str(e) == subnet for e in self._set_elements("masq")):
            lines.append(f"delete element ip {TABLE} masq {{ {subnet} }}")
        for handle, c in self._forward_rules():
            if c == f"isolate {bridge}":
                lines.append(f"delete rule ip {TABLE} forward handle {handle}")
        if lines:
            self.run("\n".join(lines) + "\n", what=f"remove NAT for {bridge}")

    def networks(self) -> tuple[list[str], list[str]]:
        """(bridges, masqueraded subnets) the table knows."""
        return ([str(e) for e in self._set_elements("bridges")],
                [s for s in (_prefix_str(e) for e in self._set_elements("masq")) if s])

    # -- ports ------------------------------------------------------------------------------
    def port_maps(self) -> list[PortMap]:
        """Every published port in the table."""
        out: list[PortMap] = []
        if not self.has_base():
            return out
        for proto in ("tcp", "udp"):
            for kind in ("any", "ip"):
                for obj in self.query("list", "map", "ip", TABLE, f"{proto}_{kind}"):
                    for key, value in (obj.get("map", {}).get("elem") or []):
                        try:
                            cip, cport = value["concat"]
                            if kind == "any":
                                hip, hport = "0.0.0.0", int(key)
                            else:
                                hip, hport = key["concat"][0], int(key["concat"][1])
                            out.append(PortMap(proto, str(hip), hport, str(cip), int(cport)))
                        except (KeyError, TypeError, ValueError):
                            continue
        return out

    def add_ports(self, maps: list[PortMap], *, replace: list[PortMap] = ()) -> None:  # type: ignore[assignment]
        """Publish ports in one transaction; ``replace``: stale elements with the same keys to drop.

        ``create`` (not ``add``) so that a key someone else holds fails the whole transaction.
        """
        if not maps:
            return
        lines = [f"delete element ip {TABLE} {m.map_name} {{ {m.key} }}" for m in replace]
        lines += [f"create element ip {TABLE} {m.map_name} {{ {m.element} }}" for m in maps]
        self.run("\n".join(lines) + "\n", what="publish ports")

    def remove_ports(self, maps: list[PortMap]) -> None:
        """Unpublish the elements among ``maps`` that are there with the same target (idempotent)."""
        if not maps:
            return
        have = set(self.port_maps())
        lines = [f"delete element ip {TABLE} {m.map_name} {{ {m.key} }}" for m in maps if m in have]
        if lines:
            self.run("\n".join(lines) + "\n", what="unpublish ports")


def _prefix_str(e: Any) -> str | None:
    """A set element as ``a.b.c.d/n`` (nft -j writes prefixes as objects, single addresses as text)."""
    if isinstance(e, dict) and "prefix" in e:
        return f"{e['prefix']['addr']}/{e['prefix']['len']}"
    if isinstance(e, dict) and "range" in e:
        import ipaddress  # a set element nft shows as a range: rare

        lo, hi = e["range"]
        try:
            nets = list(ipaddress.summarize_address_range(ipaddress.IPv4Address(lo), ipaddress.IPv4Address(hi)))
            if len(nets) == 1:
                return str(nets[0])
        except ValueError:
            pass
        return None
    if isinstance(e, str):
        return e if "/" in e else f"{e}/32"
    return None


# ---- reserving host ports -------------------------------------------------------------------
def reserve_port(proto: str, host_ip: str, ports: Iterator[int] | list[int]) -> tuple[socket.socket, int]:
    """Bind the first free port of ``ports`` (0 = any) so no one else can take it; (socket, port).

    The socket is never listened on: NAT sends the traffic to the container before it could reach
    it. Bound without SO_REUSEADDR, it makes every later bind of that port fail as Docker's
    reservation does. Raises OSError (EADDRINUSE for the last port tried).
    """
    import socket  # a ``socket.socket`` is what the caller keeps; ``-p`` runs ``nft`` anyway

    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    last: OSError | None = None
    for port in ports:
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((host_ip, port))
        except OSError as e:
            s.close()
            if e.errno != errno.EADDRINUSE:
                raise
            last = e
            continue
        return s, s.getsockname()[1]
    raise last or OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
