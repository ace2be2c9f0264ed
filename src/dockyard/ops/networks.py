"""Networks: the built-in ``bridge``, ``host`` and ``none``, user bridges, IPAM and published ports.

What is where:

* the database (``networks``, ``endpoints``, ``port_bindings``) says which networks exist, which
  container is on which (with its address while it runs) and which host ports it holds;
* the kernel holds the bridges, veth pairs and the ``ip dockyard`` nftables table
  (``dockyard.runtime.network`` does that part);
* leases under ``/run/dockyard/net/leases/<ip>`` say which *running* container holds an address on a
  bridge, machine-wide: engines with different roots share the kernel, its ``dockyard0`` bridge and
  its nftables table, so only a machine-wide record can tell a stale NAT element or veth (its
  container died) from another engine's live one. A lease names the container's init pid and start
  time; a lease whose process is gone is stale.

Every change runs under one machine-wide lock (``/run/dockyard/net/lock``); addresses and ports are
chosen in one database transaction under it.

Lifecycle (wired by the container monitor): ``attach`` after the runtime created the container and
before its process starts; ``detach`` when it exited (``forget=True`` on ``rm``); ``sweep`` in
``system prune`` for what crashed containers left.
"""

from __future__ import annotations

import errno
import os
import time

from dockyard import ipv4, jsonc
from dockyard.atomic import write_atomic
from dockyard.digest import random_hex
from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound, RuntimeFailure
from dockyard.locks import FileLock

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import ipaddress
    import socket
    import sqlite3
    from collections.abc import Iterator
    from typing import Any

    from dockyard.engine import Engine

# `run` passes through here (NetworkSettings, /etc files, the default bridge's address), so this module
# imports none of contextlib, ipaddress, json or pathlib (with re, enum, urllib.parse behind them: ~10 ms).
# IPv4 addresses of the hot path are ints (below) and go to ``runtime.network`` as text; ipaddress is
# imported where the input is out of the ordinary (IPv6, a user's subnet or address, a new subnet).


DEFAULT_BRIDGE = "dockyard0"
BUILTIN = ("bridge", "host", "none")
BUILTIN_DRIVER = {"bridge": "bridge", "host": "host", "none": "null"}
USER_BRIDGE_PREFIX = "dy-"
VETH_PREFIX = "dyv"
BRIDGE_NAME_OPT = "com.docker.network.bridge.name"

LOCALHOST_HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                   "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
DEFAULT_DNS = ("8.8.8.8", "8.8.4.4")


class NetworkNotFound(NotFound):
    pass


def _ipv4_cidr(s: object) -> tuple[int, int] | None:
    """``(address, prefix length)`` of ``ipaddress.IPv4Interface(s)`` for the usual ``A.B.C.D/N``;
    None for anything else, valid or not (ask ipaddress)."""
    if not isinstance(s, str):
        return None
    addr, slash, plen = s.partition("/")
    n = ipv4.parse(addr)
    if n is None or not slash or not (plen.isascii() and plen.isdigit()) or int(plen) > 32:
        return None
    return n, int(plen)


def _ipv4_net(s: object) -> tuple[int, int] | None:
    """``(network address, prefix length)`` of ``ipaddress.IPv4Network(s)`` (strict) for the usual
    ``A.B.C.D/N``; None for anything else, valid or not (ask ipaddress)."""
    v = _ipv4_cidr(s)
    if v is None or v[0] & ((1 << (32 - v[1])) - 1):  # host bits set: strict refuses
        return None
    return v


def _ipv4_text(s: object) -> str | None:
    """``s`` if ``ipaddress.IPv4Address(s)`` takes it as a plain dotted quad, else None."""
    return s if isinstance(s, str) and ipv4.parse(s) is not None else None


def _prefixlen(subnet: str) -> int:
    """``ipaddress.IPv4Network(subnet).prefixlen``."""
    v = _ipv4_net(subnet)
    if v is None:
        import ipaddress

        return ipaddress.IPv4Network(subnet).prefixlen
    return v[1]


def _subnet_text(subnet: str) -> str:
    """``str(ipaddress.IPv4Network(subnet))``."""
    v = _ipv4_net(subnet)
    if v is None:
        import ipaddress

        return str(ipaddress.IPv4Network(subnet))
    return f"{ipv4.text(v[0])}/{v[1]}"


def _pools() -> Iterator[ipaddress.IPv4Network]:
    """Docker's default address pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s."""
    import ipaddress

    for i in range(17, 32):
        yield ipaddress.IPv4Network(f"172.{i}.0.0/16")
    yield from ipaddress.IPv4Network("192.168.0.0/16").subnets(new_prefix=20)


# ---- machine-wide state: lock and leases ----------------------------------------------------
def _net_state_dir() -> str:
    """Machine-wide, whatever ``DOCKYARD_RUN_ROOT`` says: the kernel state it describes is too."""
    d = os.environ.get("DOCKYARD_NET_STATE") or "/run/dockyard/net"
    os.makedirs(os.path.join(d, "leases"), mode=0o700, exist_ok=True)
    return d


_lock_depth = 0


class _Locked:
    """The machine-wide network lock (re-entrant within a process: a second flock would deadlock)."""

    def __init__(self) -> None:
        self._lock: FileLock | None = None

    def __enter__(self) -> None:
        global _lock_depth
        if _lock_depth:
            _lock_depth += 1
            return
        lock = FileLock(os.path.join(_net_state_dir(), "lock"))
        lock.__enter__()
        self._lock = lock
        _lock_depth = 1

    def __exit__(self, *exc: object) -> None:
        global _lock_depth
        lock, self._lock = self._lock, None
        if lock is None:
            _lock_depth -= 1
            return
        _lock_depth = 0
        lock.__exit__()


def _locked() -> _Locked:
    return _Locked()


def _proc_start(pid: int) -> str | None:
    from dockyard.ops.containers import proc_start

    return proc_start(pid)


def _lease_path(ip: str) -> str:
    return os.path.join(_net_state_dir(), "leases", ip)


def _read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def _read_lease(ip: str) -> dict[str, Any] | None:
    try:
        data = jsonc.loads(_read_text(_lease_path(ip)))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _lease_alive(lease: dict[str, Any] | None) -> bool:
    if not lease:
        return False
    pid = lease.get("pid")
    return isinstance(pid, int) and pid > 0 and _proc_start(pid) == lease.get("start")


def _take_lease(ip: str, owner: dict[str, Any]) -> bool:
    """Claim ``ip`` machine-wide for ``owner`` (a stale or own lease is taken over)."""
    path = _lease_path(ip)
    data = jsonc.dumps(owner).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        cur = _read_lease(ip)
        mine = cur is not None and cur.get("root") == owner["root"] and cur.get("cid") == owner["cid"]
        if _lease_alive(cur) and not mine:
            return False
        write_atomic(path, data, mode=0o600)
        return True
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return True


def _drop_lease(ip: str, root: str | None = None, cid: str | None = None) -> None:
    """Remove a lease (only if it is that container's, when ``root``/``cid`` are given)."""
    if root is not None:
        cur = _read_lease(ip)
        if cur is not None and (cur.get("root") != root or cur.get("cid") != cid):
            return
    try:
        os.unlink(_lease_path(ip))
    except FileNotFoundError:
        pass


def _drop_leases_of(root: str, cid: str) -> int:
    """Remove every lease a container holds (also those of an attach that failed half-way)."""
    n = 0
    try:
        for name in os.listdir(os.path.join(_net_state_dir(), "leases")):
            if name.startswith("."):
                continue
            cur = _read_lease(name)
            if cur is not None and cur.get("root") == root and cur.get("cid") == cid:
                _drop_lease(name)
                n += 1
    except OSError:
        pass
    return n


def _live_lease_ips() -> dict[str, dict[str, Any]]:
    out = {}
    try:
        for name in os.listdir(os.path.join(_net_state_dir(), "leases")):
            if name.startswith("."):
                continue
            lease = _read_lease(name)
            if _lease_alive(lease):
                assert lease is not None
                out[name] = lease
    except OSError:
        pass
    return out


# ---- host ports held by this process --------------------------------------------------------
_HELD: dict[str, list[socket.socket]] = {}


def _release_sockets(cid: str) -> None:
    for s in _HELD.pop(cid, []):
        try:
            s.close()
        except OSError:
            pass


# ---- rows -----------------------------------------------------------------------------------
def _row(r: sqlite3.Row | None) -> dict[str, Any] | None:
    if r is None:
        return None
    d = dict(r)
    for k in ("labels", "options", "aliases"):
        if k in d and isinstance(d[k], str):
            d[k] = jsonc.loads(d[k])
    return d


def ensure_builtin(eng: Engine) -> None:
    """The rows of the pre-defined networks (``bridge``'s subnet is chosen when first set up)."""
    conn = eng.db.conn
    have = {r[0] for r in conn.execute("SELECT name FROM networks WHERE name IN ('bridge','host','none')")}
    if len(have) == 3:
        return
    with eng.db.transaction() as c:
        for name in BUILTIN:
            c.execute("INSERT OR IGNORE INTO networks (id, name, driver, bridge, created, options) VALUES "
                      "(?,?,?,?,?,?)",
                      (random_hex(32), name, BUILTIN_DRIVER[name],
                       DEFAULT_BRIDGE if name == "bridge" else None, time.time(),
                       jsonc.dumps({BRIDGE_NAME_OPT: DEFAULT_BRIDGE} if name == "bridge" else {})))


def list_networks(eng: Engine) -> list[dict[str, Any]]:
    ensure_builtin(eng)
    rows = [_row(r) for r in eng.db.conn.execute("SELECT * FROM networks ORDER BY name")]
    return [r for r in rows if r is not None]


def resolve_network(eng: Engine, name_or_id: str) -> dict[str, Any]:
    """A network by name, full ID or unique ID prefix (Docker's order)."""
    ensure_builtin(eng)
    conn = eng.db.conn
    r = _row(conn.execute("SELECT * FROM networks WHERE id=?", (name_or_id,)).fetchone())
    if r is None:
        r = _row(conn.execute("SELECT * FROM networks WHERE name=?", (name_or_id,)).fetchone())
    if r is None and name_or_id and all(c in "0123456789abcdef" for c in name_or_id):
        rows = list(conn.execute("SELECT * FROM networks WHERE id LIKE ?", (name_or_id + "%",)))
        if len(rows) > 1:
            raise Conflict(f"network {name_or_id} is ambiguous ({len(rows)} matches found based on ID prefix)")
        r = _row(rows[0]) if rows else None
    if r is None:
        raise NetworkNotFound(f"network {name_or_id} not found")
    return r


def _endpoints(eng: Engine, *, cid: str | None = None, network_id: str | None = None,
               attached: bool = False) -> list[dict[str, Any]]:
    q = ("SELECT e.*, n.name AS network_name, n.driver, n.bridge, n.subnet, n.gateway FROM endpoints e "
         "JOIN networks n ON n.id = e.network_id WHERE 1=1")
    args: list[Any] = []
    if cid is not None:
        q += " AND e.container_id=?"
        args.append(cid)
    if network_id is not None:
        q += " AND e.network_id=?"
        args.append(network_id)
    if attached:
        q += " AND e.ip IS NOT NULL"
    q += " ORDER BY e.ifname, n.name"
    return [r for r in (_row(x) for x in eng.db.conn.execute(q, args)) if r is not None]


def _bindings(eng: Engine, cid: str) -> list[dict[str, Any]]:
    return [dict(r) for r in eng.db.conn.execute(
        "SELECT * FROM port_bindings WHERE container_id=? ORDER BY container_port, proto, host_ip", (cid,))]


def _container(eng: Engine, cid: str) -> dict[str, Any] | None:
    r = eng.db.container(cid)
    if r is None:
        return None
    d = dict(r)
    d["config"] = jsonc.loads(d["config"])
    d["state"] = jsonc.loads(d["state"])
    return d


def _opts(row: dict[str, Any]) -> dict[str, Any]:
    opts = row.get("config", {}).get("opts") or {}
    return opts if isinstance(opts, dict) else {}


def networks_in_use(eng: Engine) -> set[str]:
    """IDs of the networks some container has an address on (``network ls --filter dangling``)."""
    return {r[0] for r in eng.db.conn.execute("SELECT DISTINCT network_id FROM endpoints WHERE ip IS NOT NULL")}


def network_mode(row: dict[str, Any]) -> str:
    return str(_opts(row).get("network") or "bridge")


# ---- choosing subnets -----------------------------------------------------------------------
def _taken_subnets(eng: Engine, exclude_id: str | None = None) -> list[ipaddress.IPv4Network]:
    import ipaddress

    from dockyard.runtime import network as kn

    taken = kn.used_networks()
    for r in eng.db.conn.execute("SELECT id, subnet FROM networks WHERE subnet IS NOT NULL"):
        if r[0] != exclude_id:
            try:
                taken.append(ipaddress.IPv4Network(r[1]))
            except ValueError:
                pass
    return taken


def choose_subnet(taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The first of Docker's default pools that overlaps nothing in ``taken``."""
    for pool in _pools():
        if not any(pool.overlaps(t) for t in taken):
            return pool
    raise RuntimeFailure("could not find an available, non-overlapping IPv4 address pool among the defaults "
                         "to assign to the network")


def _ensure_default_bridge(eng: Engine) -> dict[str, Any]:
    """Set the kernel's ``dockyard0`` up (adopting it if another engine made it); the caller locks."""
    from dockyard.runtime import network as kn

    ensure_builtin(eng)
    net = resolve_network(eng, "bridge")
    have = kn.bridge_cidr(DEFAULT_BRIDGE)  # text: kn.bridge_address would import ipaddress
    cur = _ipv4_cidr(have)
    if cur is not None:  # the usual case: the bridge is there (ints, as IPv4Interface's .network and .ip)
        addr, prefix = cur
        subnet = f"{ipv4.text(addr & (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF)}/{prefix}"
        gateway = ipv4.text(addr)
    else:
        subnet, gateway = _default_bridge_subnet(eng, net, have)
    if net.get("subnet") != subnet or net.get("gateway") != gateway:
        with eng.db.transaction() as c:
            c.execute("UPDATE networks SET subnet=?, gateway=? WHERE id=?", (subnet, gateway, net["id"]))
        net.update(subnet=subnet, gateway=gateway)
    _network_up(net)
    return net


def _default_bridge_subnet(eng: Engine, net: dict[str, Any], have: str | None) -> tuple[str, str]:
    """The default bridge's subnet and gateway where the bridge has no address yet (or an odd one)."""
    import ipaddress

    subnet: ipaddress.IPv4Network
    if have is not None:
        iface = ipaddress.IPv4Interface(have)
        subnet, gateway = iface.network, iface.ip
    else:
        taken = _taken_subnets(eng, exclude_id=net["id"])
        known = ipaddress.IPv4Network(net["subnet"]) if net.get("subnet") else None
        if known is None or any(known.overlaps(t) for t in taken):
            subnet = choose_subnet(taken)
            gateway = next(subnet.hosts())
        else:
            subnet = known
            gateway = ipaddress.IPv4Address(net["gateway"]) if net.get("gateway") else next(subnet.hosts())
    return str(subnet), str(gateway)


# ---- what is already set up: markers -----------------------------------------------------------
# Setting a network up (bridge, address, the nftables table and the network's NAT/isolation rules)
# costs pyroute2's import and several ``nft`` runs; done on every container start, that was most of
# the difference between a bridge and a ``--network none`` start. So after a successful setup a
# marker, ``<net dir>/nft/<bridge>``, records what was installed: the boot, the table layout
# (BASE_VERSION), bridge, subnet, gateway, internal, and the nftables ruleset generation right after.
# The next start trusts it when the boot and the generation are unchanged (nobody touched the
# ruleset since: one netlink request) and the bridge is up with its gateway address (ioctls), and
# takes the full path otherwise. Our own nft changes (published ports, other networks) carry the
# markers forward to the new generation when nothing else changed the ruleset in between.
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _marker_dir() -> str:
    d = os.path.join(_net_state_dir(), "nft")
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        if not os.path.isdir(d):
            raise
    return d


def _marker_fields(net: dict[str, Any]) -> dict[str, Any]:
    from dockyard.runtime import network as kn

    return {"boot_id": _boot_id(), "base": kn.BASE_VERSION, "bridge": net["bridge"],
            "subnet": _subnet_text(net["subnet"]), "gateway": str(net["gateway"]),
            "internal": bool(net.get("internal"))}


def _read_marker(path: str) -> dict[str, Any] | None:
    try:
        data = jsonc.loads(_read_text(path))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_marker(path: str, data: dict[str, Any]) -> None:
    write_atomic(path, jsonc.dumps(data))


def _network_ready(net: dict[str, Any], gateway: ipaddress.IPv4Interface | str) -> bool:
    """Cheaply: is everything ``_network_up`` would do already done? (no pyroute2, no subprocess)"""
    from dockyard.runtime import network as kn

    have = _read_marker(os.path.join(_marker_dir(), net["bridge"]))
    if have is None:
        return False
    want = _marker_fields(net)
    if not want["boot_id"] or any(have.get(k) != v for k, v in want.items()):
        return False
    gen = kn.nft_generation()
    return gen is not None and have.get("gen") == gen and kn.bridge_ready(net["bridge"], gateway)


def _drop_markers(bridge: str | None = None) -> None:
    try:
        d = _marker_dir()
        for name in [bridge] if bridge else os.listdir(d):
            try:
                os.unlink(os.path.join(d, name))
            except OSError:
                pass
    except OSError:
        pass


class _NftChange:
    """Around our own nft changes (the caller locks): markers of the generation before move to the
    generation after, if our transactions are all that happened in between (nothing is carried
    forward when the block raises)."""

    def __enter__(self) -> None:
        from dockyard.runtime import network as kn

        self._before, self._commits = kn.nft_generation(), kn.nft_commits()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            return
        from dockyard.runtime import network as kn

        before = self._before
        done = kn.nft_commits() - self._commits
        if before is None or not done:
            return
        after = kn.nft_generation()
        if after is None or after != (before + done) & 0xFFFFFFFF:
            return  # someone else changed the ruleset too: the markers stay stale
        try:
            d = _marker_dir()
            for name in os.listdir(d):
                if name.startswith("."):
                    continue
                m = _read_marker(os.path.join(d, name))
                if m is not None and m.get("gen") == before:
                    _write_marker(os.path.join(d, name), {**m, "gen": after})
        except OSError:
            pass


def _nft_change() -> _NftChange:
    return _NftChange()


def _network_up(net: dict[str, Any]) -> None:
    """Bridge, address and NAT for a bridge network (idempotent; the caller locks)."""
    from dockyard.runtime import network as kn

    gateway = _gateway_interface(net)
    if _network_ready(net, gateway):
        return
    marker = os.path.join(_marker_dir(), net["bridge"])
    try:
        os.unlink(marker)
    except OSError:
        pass
    kn.ensure_bridge(net["bridge"], gateway)
    fw = kn.Nft()
    with _nft_change():
        if fw.ensure_base():  # a new table: whatever the markers say was installed is gone
            _drop_markers()
        fw.add_network(net["bridge"], _subnet_text(net["subnet"]), internal=bool(net.get("internal")))
    gen = kn.nft_generation()
    if gen is not None and _boot_id():
        try:
            _write_marker(marker, {**_marker_fields(net), "gen": gen})
        except OSError:
            pass


def _gateway_interface(net: dict[str, Any]) -> Any:
    """``ipaddress.IPv4Interface(f"{gateway}/{subnet's prefix length}")`` as ``runtime.network``
    takes it: as text (``172.17.0.1/16``) where both are plain, else the object (ipaddress's checks)."""
    subnet = _ipv4_net(net["subnet"])
    if subnet is not None and _ipv4_text(net["gateway"]) is not None:
        return f"{net['gateway']}/{subnet[1]}"
    import ipaddress

    return ipaddress.IPv4Interface(f"{net['gateway']}/{ipaddress.IPv4Network(net['subnet']).prefixlen}")


def _network_down(net: dict[str, Any]) -> None:
    from dockyard.runtime import network as kn

    _drop_markers(net["bridge"])
    if net.get("subnet"):
        with _nft_change():
            kn.Nft().remove_network(net["bridge"], net["subnet"])
    kn.delete_link(net["bridge"])


# ---- networks: create, remove, prune --------------------------------------------------------
def create_network(eng: Engine, name: str, *, driver: str = "bridge", subnet: str | None = None,
                   gateway: str | None = None, internal: bool = False, labels: dict[str, str] | None = None,
                   options: dict[str, str] | None = None) -> str:
    """``docker network create``: a bridge of its own with a subnet of its own; returns the ID."""
    import ipaddress

    from dockyard import names

    ensure_builtin(eng)
    if driver in ("host", "null"):
        raise Conflict(f'only one instance of "{driver}" network is allowed')
    if driver != "bridge":
        raise NotFound(f"plugin \"{driver}\" not found")
    if not name or not names.valid(name):
        raise InvalidArgument(f'invalid network name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
    options = dict(options or {})
    net_id = random_hex(32)
    bridge = options.get(BRIDGE_NAME_OPT) or f"{USER_BRIDGE_PREFIX}{net_id[:12]}"
    if len(bridge) > 15 or "/" in bridge or not bridge.strip():
        raise InvalidArgument(f"invalid bridge name {bridge!r}")
    want: ipaddress.IPv4Network | None = None
    if subnet:
        try:
            want = ipaddress.IPv4Network(subnet, strict=False)
        except ValueError:
            if ":" in subnet:
                raise InvalidArgument("IPv6 subnets are not supported (networks are IPv4 only)")
            raise InvalidArgument(f"invalid subnet {subnet}: invalid CIDR address: {subnet}")
        if str(want) != subnet.strip():
            raise InvalidArgument(f"invalid subnet {subnet}: it should be {want}")
        if want.prefixlen > 30:
            raise InvalidArgument(f"invalid subnet {subnet}: too small for containers")
    elif gateway:
        raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
    with _locked():
        if eng.db.conn.execute("SELECT 1 FROM networks WHERE name=?", (name,)).fetchone():
            raise Conflict(f"network with name {name} already exists")
        if options.get(BRIDGE_NAME_OPT) and (
                eng.db.conn.execute("SELECT 1 FROM networks WHERE bridge=?", (bridge,)).fetchone()):
            raise Conflict(f"bridge name {bridge} is already in use by another network")
        taken = _taken_subnets(eng)
        if want is not None:
            if any(want.overlaps(t) for t in taken):
                raise Conflict("invalid pool request: Pool overlaps with other one on this address space")
            net = want
        else:
            net = choose_subnet(taken)
        gw = next(net.hosts())
        if gateway:
            try:
                gw = ipaddress.IPv4Address(gateway)
            except ValueError:
                raise InvalidArgument(f"invalid gateway address {gateway}")
            if gw not in net or gw in (net.network_address, net.broadcast_address):
                raise InvalidArgument(f"no matching subnet for gateway {gateway}")
        row = {"id": net_id, "name": name, "driver": "bridge", "bridge": bridge, "subnet": str(net),
               "gateway": str(gw), "internal": int(internal)}
        with eng.db.transaction() as c:
            c.execute("INSERT INTO networks (id, name, driver, bridge, subnet, gateway, internal, created, labels,"
                      " options) VALUES (?,?,?,?,?,?,?,?,?,?)",
                      (net_id, name, "bridge", bridge, str(net), str(gw), int(internal), time.time(),
                       jsonc.dumps(labels or {}), jsonc.dumps(options)))
        try:
            _network_up(row)
        except BaseException:
            try:
                _network_down(row)
            except Exception:
                pass
            with eng.db.transaction() as c:
                c.execute("DELETE FROM networks WHERE id=?", (net_id,))
            raise
    return net_id


def remove_network(eng: Engine, name_or_id: str) -> dict[str, Any]:
    """``docker network rm``: refused for pre-defined networks and while containers are on it."""
    net = resolve_network(eng, name_or_id)
    if net["name"] in BUILTIN:
        raise Conflict(f"{net['name']} is a pre-defined network and cannot be removed")
    with _locked():
        _sweep_network(eng, net["id"])
        if _endpoints(eng, network_id=net["id"], attached=True):
            raise Conflict(f"error while removing network: network {net['name']} id {net['id']} has active "
                           "endpoints")
        _network_down(net)
        with eng.db.transaction() as c:
            c.execute("DELETE FROM endpoints WHERE network_id=?", (net["id"],))
            c.execute("DELETE FROM networks WHERE id=?", (net["id"],))
    return net


def prune_networks(eng: Engine) -> list[str]:
    """``docker network prune``: user networks no running container is on; returns their names."""
    out = []
    for net in list_networks(eng):
        if net["name"] in BUILTIN:
            continue
        try:
            remove_network(eng, net["id"])
        except Conflict:
            continue
        out.append(net["name"])
    return out


def _sweep_network(eng: Engine, network_id: str) -> None:
    """Detach endpoints on a network whose containers are not running any more (caller locks)."""
    for ep in _endpoints(eng, network_id=network_id, attached=True):
        if not _container_running(eng, ep["container_id"]):
            _detach_locked(eng, ep["container_id"], forget=_container(eng, ep["container_id"]) is None)


def _container_running(eng: Engine, cid: str) -> bool:
    from dockyard.ops.containers import monitor_alive

    c = _container(eng, cid)
    if c is None:
        return False
    st = c["state"]
    if st.get("status") in ("running", "paused", "restarting") and monitor_alive(st):
        return True
    # A container being started: its endpoints carry a live lease (its init pid) before the
    # monitor records it as running.
    return any(_lease_alive(_read_lease(ep["ip"])) and (_read_lease(ep["ip"]) or {}).get("cid") == cid
               for ep in _endpoints(eng, cid=cid, attached=True))


# ---- ports ----------------------------------------------------------------------------------
def _port_key(proto: str, port: int) -> str:
    return f"{port}/{proto}"


def _exposed(row: dict[str, Any]) -> list[tuple[int, str]]:
    """Every port the container exposes: the image's, ``--expose``'s and ``-p``'s."""
    out: list[tuple[int, str]] = []
    img = row.get("config", {}).get("image_config") or {}
    for key in (img.get("ExposedPorts") or {}):
        port, _, proto = str(key).partition("/")
        if port.isdigit():
            out.append((int(port), (proto or "tcp").lower()))
    opts = _opts(row)
    for item in opts.get("expose") or []:
        out.append((int(item[0]), str(item[1]).lower()))
    for b in opts.get("publish") or []:
        out.append((int(b["container_port"]), str(b.get("protocol") or "tcp").lower()))
    seen: list[tuple[int, str]] = []
    for x in out:
        if x not in seen:
            seen.append(x)
    return seen


def requested_ports(row: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    """``(proto, host_ip, host_port_spec, container_port)`` to publish: ``-p``, then ``-P``'s extras."""
    opts = _opts(row)
    out = []
    for b in opts.get("publish") or []:
        out.append((str(b.get("protocol") or "tcp").lower(), str(b.get("host_ip") or ""),
                    str(b.get("host_port") or ""), int(b["container_port"])))
    if opts.get("publish_all"):
        published = {(p, c) for p, _, _, c in out}
        for port, proto in _exposed(row):
            if (proto, port) not in published:
                out.append((proto, "", "", port))
    return out


def _host_port_candidates(spec: str) -> list[int]:
    if not spec:
        return [0]
    if "-" in spec:
        lo, _, hi = spec.partition("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(spec)]


def _endpoint_name(row: dict[str, Any]) -> str:
    return str(row.get("name") or row["id"][:12])


def _reserve_ports(eng: Engine, row: dict[str, Any], want: list[tuple[str, str, str, int]]
                   ) -> list[tuple[str, str, int, int]]:
    """Bind each requested host port (held in this process until detach); (proto, ip, port, cport)."""
    from dockyard.runtime import network as kn

    cid = row["id"]
    out = []
    for proto, host_ip, spec, cport in want:
        if proto not in ("tcp", "udp"):
            raise InvalidArgument(f"publishing {proto} ports is not supported (tcp and udp are)")
        ip = host_ip or "0.0.0.0"
        if ":" in ip:
            raise InvalidArgument(f"publishing on an IPv6 address ({host_ip}) is not supported: networks are IPv4 "
                                  "only")
        candidates = _host_port_candidates(spec)
        try:
            sock, port = kn.reserve_port(proto, ip, candidates)
        except OSError as e:
            shown = spec or "0"
            if e.errno == errno.EADDRINUSE:
                owner = _port_owner(eng, proto, ip, candidates[-1])
                if owner is not None:
                    raise RuntimeFailure(
                        f"driver failed programming external connectivity on endpoint {_endpoint_name(row)} "
                        f"({cid[:12]}): Bind for {ip}:{shown} failed: port is already allocated")
                raise RuntimeFailure(
                    f"driver failed programming external connectivity on endpoint {_endpoint_name(row)} "
                    f"({cid[:12]}): failed to bind port {ip}:{shown}/{proto}: listen {proto}4 {ip}:{shown}: bind: "
                    "address already in use")
            raise RuntimeFailure(f"failed to bind port {ip}:{shown}/{proto}: listen {proto}4 {ip}:{shown}: bind: "
                                 f"{(e.strerror or str(e)).lower()}")
        _HELD.setdefault(cid, []).append(sock)
        out.append((proto, ip, port, cport))
    return out


def _port_owner(eng: Engine, proto: str, ip: str, port: int) -> str | None:
    """The container (of this engine) holding a host port, if any."""
    for r in eng.db.conn.execute("SELECT container_id, host_ip FROM port_bindings WHERE proto=? AND host_port=?",
                                 (proto, port)):
        if r[1] == ip or "0.0.0.0" in (r[1], ip):
            return str(r[0])
    return None


# ---- attach / detach ------------------------------------------------------------------------
def attach(eng: Engine, row: dict[str, Any], init_pid: int) -> dict[str, Any]:
    """Plumb a created container's network namespace before its process starts; NetworkSettings.

    ``row`` is the decoded container row (``ops.containers.resolve``); ``init_pid`` the pid the
    runtime's ``create`` returned. Writes the container's ``hosts`` and ``resolv.conf``. On failure
    nothing is left behind (addresses, veths, NAT, host ports) and the error says why (exit 125).
    """
    mode = network_mode(row)
    if mode == "host" or mode.startswith("container:"):
        write_etc_files(eng, row)
        return network_settings(eng, row)
    if mode == "none":  # the runtime brings up ``lo`` in a new network namespace (runc, crun and ours)
        write_etc_files(eng, row)
        return network_settings(eng, row)
    try:
        with _locked():
            _attach_locked(eng, row, init_pid)
        write_etc_files(eng, row)
        return network_settings(eng, row, pid=init_pid)
    except BaseException as e:
        try:
            detach(eng, row)
        except Exception:
            pass
        if isinstance(e, DockyardError) and not isinstance(e, RuntimeFailure):
            raise RuntimeFailure(str(e)) from e
        if not isinstance(e, DockyardError) and isinstance(e, Exception):
            raise RuntimeFailure(f"failed to set up the container's network: {e}") from e
        raise


def _attach_locked(eng: Engine, row: dict[str, Any], pid: int) -> None:
    from dockyard.runtime import network as kn

    cid = row["id"]
    mode = network_mode(row)
    opts = _opts(row)
    start = _proc_start(pid)
    if start is None:
        raise RuntimeFailure(f"the container's process {pid} is gone")
    primary = _ensure_default_bridge(eng) if mode == "bridge" else resolve_network(eng, mode)
    if primary["driver"] != "bridge":
        raise InvalidArgument(f"container cannot be disconnected from host network or connected to {mode} "
                              "network" if primary["driver"] == "host" else f"network {mode} cannot be joined")
    if opts.get("ip") and primary["name"] == "bridge":
        raise InvalidArgument("user specified IP address is supported on user defined networks only")
    # Earlier leftovers of this container (a crash between start and exit) go first.
    _detach_locked(eng, cid, forget=False)
    existing = {ep["network_id"]: ep for ep in _endpoints(eng, cid=cid)}
    nets: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    if existing.get(primary["id"], {}).get("mode") != "removed":
        nets.append((primary, existing.get(primary["id"])))
    for other in existing.values():
        if other["mode"] == "connect" and other["network_id"] != primary["id"]:
            nets.append((resolve_network(eng, other["network_id"]), other))
    for net, _ in nets:
        if net["name"] != "bridge":
            _network_up(net)
    ports = _reserve_ports(eng, row, requested_ports(row)) if nets and nets[0][0] is primary else []
    owner = {"root": eng.root_dir, "cid": cid, "pid": pid, "start": start}
    plumb: list[kn.Interface] = []
    ips: list[str] = []
    maps: list[kn.PortMap] = []
    with eng.db.transaction() as c:
        for i, (net, ep) in enumerate(nets):
            want_ip = (ep or {}).get("static_ip") or (opts.get("ip") if net is primary else None) or None
            ip = _allocate(c, net, cid, want_ip, {**owner, "network": net["id"]})
            prefixlen = _prefixlen(net["subnet"])
            mac = (opts.get("mac_address") if i == 0 else None) or kn.mac_for_ip(ip)
            host_name = VETH_PREFIX + random_hex(5)
            aliases = list((ep or {}).get("aliases") or (opts.get("network_aliases") or [] if net is primary else []))
            c.execute(
                "INSERT INTO endpoints (network_id, container_id, endpoint_id, mode, ip, mac, host_ifname, ifname,"
                " aliases, static_ip) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(network_id, container_id) DO UPDATE"
                " SET ip=excluded.ip, mac=excluded.mac, host_ifname=excluded.host_ifname, ifname=excluded.ifname,"
                " endpoint_id=excluded.endpoint_id",
                (net["id"], cid, random_hex(32), (ep or {}).get("mode") or "auto", ip, mac, host_name,
                 f"eth{i}", jsonc.dumps(aliases), want_ip))
            # runtime.network takes addresses as text (``ip`` is _allocate's: a plain dotted quad)
            plumb.append(kn.Interface(host_name, net["bridge"], f"eth{i}", mac, f"{ip}/{prefixlen}",
                                      _gateway_address(net["gateway"]) if i == 0 and not net.get("internal")
                                      else None))
            ips.append(ip)
            try:
                _write_lease_veth(ip, host_name)
            except Exception:
                pass
        if ports:
            cip = ips[0]
            for proto, hip, hport, cport in ports:
                for r in c.execute("SELECT container_id, host_ip FROM port_bindings WHERE proto=? AND host_port=?",
                                   (proto, hport)).fetchall():
                    if r[1] == hip or "0.0.0.0" in (r[1], hip):
                        if r[0] != cid and _container_running(eng, r[0]):
                            raise RuntimeFailure(
                                f"driver failed programming external connectivity on endpoint "
                                f"{_endpoint_name(row)} ({cid[:12]}): Bind for {hip}:{hport} failed: port is "
                                "already allocated")
                        c.execute("DELETE FROM port_bindings WHERE proto=? AND host_ip=? AND host_port=?",
                                  (proto, r[1], hport))
                c.execute("INSERT INTO port_bindings (proto, host_ip, host_port, container_id, container_ip,"
                          " container_port) VALUES (?,?,?,?,?,?)", (proto, hip, hport, cid, cip, cport))
                maps.append(kn.PortMap(proto, hip, hport, cip, cport))
    for itf in plumb:
        kn.add_interface(pid, itf)
    if not plumb:  # disconnected from everything: loopback only
        kn.loopback_up(pid)
    if maps:
        fw = kn.Nft()
        live = _live_lease_ips()
        stale = []
        for m in fw.port_maps():
            for new in maps:
                if (m.proto, m.host_ip, m.host_port) == (new.proto, new.host_ip, new.host_port):
                    lease = live.get(m.container_ip)
                    if lease is not None and (lease.get("root"), lease.get("cid")) != (eng.root_dir, cid):
                        raise RuntimeFailure(
                            f"driver failed programming external connectivity on endpoint {_endpoint_name(row)} "
                            f"({cid[:12]}): Bind for {new.host_ip}:{new.host_port} failed: port is already "
                            "allocated")
                    stale.append(m)
        with _nft_change():
            fw.add_ports(maps, replace=stale)
    _refresh_peers(eng, cid)


def _gateway_address(gateway: object) -> Any:
    """``ipaddress.IPv4Address(gateway)`` as ``runtime.network`` takes it: the text where it is plain."""
    text = _ipv4_text(gateway)
    if text is not None:
        return text
    import ipaddress

    return ipaddress.IPv4Address(gateway)


def _write_lease_veth(ip: str, veth: str) -> None:
    lease = _read_lease(ip)
    if lease is not None:
        lease["veth"] = veth
        write_atomic(_lease_path(ip), jsonc.dumps(lease), mode=0o600)


def _allocate(c: sqlite3.Connection, net: dict[str, Any], cid: str, want: str | None,
              owner: dict[str, Any]) -> str:
    """An address on ``net`` for ``cid``: ``want`` if given, else the lowest free one (caller locks).

    IPv4 arithmetic on ints; ipaddress only for a requested address or a subnet out of the ordinary."""
    subnet = _ipv4_net(net["subnet"])
    gateway = ipv4.parse(net["gateway"]) if isinstance(net["gateway"], str) else None
    if want or subnet is None or gateway is None:
        return _allocate_ipaddress(c, net, cid, want, owner)
    used = {r[0] for r in c.execute("SELECT ip FROM endpoints WHERE network_id=? AND ip IS NOT NULL AND "
                                    "container_id != ?", (net["id"], cid))}
    base, prefix = subnet
    if prefix >= 31:  # ipaddress: every address of a /31 or /32 is a host
        hosts = range(base, base + (1 << (32 - prefix)))
    else:
        hosts = range(base + 1, base + (1 << (32 - prefix)) - 1)
    for n in hosts:
        if n == gateway:
            continue
        s = ipv4.text(n)
        if s in used:
            continue
        if _take_lease(s, owner):
            return s
    raise RuntimeFailure(f"no available IPv4 addresses on this network's address pools: {net['name']} "
                         f"({net['id']})")


def _allocate_ipaddress(c: sqlite3.Connection, net: dict[str, Any], cid: str, want: str | None,
                        owner: dict[str, Any]) -> str:
    """``_allocate`` with ipaddress: a requested address, or a subnet/gateway the int path does not take."""
    import ipaddress

    subnet = ipaddress.IPv4Network(net["subnet"])
    gateway = ipaddress.IPv4Address(net["gateway"])
    used = {r[0] for r in c.execute("SELECT ip FROM endpoints WHERE network_id=? AND ip IS NOT NULL AND "
                                    "container_id != ?", (net["id"], cid))}
    if want:
        try:
            addr = ipaddress.IPv4Address(want)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address: {want}")
        if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address):
            raise InvalidArgument(f"no configured subnet contains IP address {want}")
        if addr == gateway or str(addr) in used or not _take_lease(str(addr), owner):
            raise Conflict(f"Address already in use: {want}")
        return str(addr)
    for addr in subnet.hosts():
        s = str(addr)
        if addr == gateway or s in used:
            continue
        if _take_lease(s, owner):
            return s
    raise RuntimeFailure(f"no available IPv4 addresses on this network's address pools: {net['name']} "
                         f"({net['id']})")


def detach(eng: Engine, row: dict[str, Any] | str, *, forget: bool = False) -> None:
    """Undo ``attach``: veths, NAT elements, host ports, addresses. Idempotent.

    ``forget=True`` (on ``rm``) also drops what ``network connect`` recorded for the container.
    """
    cid = row if isinstance(row, str) else row["id"]
    try:
        if not _endpoints(eng, cid=cid) and not _bindings(eng, cid):
            _drop_leases_of(eng.root_dir, cid)
            return
        with _locked():
            _detach_locked(eng, cid, forget=forget)
    finally:
        _release_sockets(cid)


def _detach_locked(eng: Engine, cid: str, *, forget: bool) -> None:
    eps = _endpoints(eng, cid=cid, attached=True)
    binds = _bindings(eng, cid)
    if binds:
        from dockyard.runtime import network as kn

        with _nft_change():
            kn.Nft().remove_ports([kn.PortMap(b["proto"], b["host_ip"], b["host_port"], b["container_ip"],
                                              b["container_port"]) for b in binds])
    root = eng.root_dir
    for ep in eps:
        if ep.get("host_ifname"):
            from dockyard.runtime import network as kn

            try:
                kn.delete_link(ep["host_ifname"])
            except Exception:
                pass
        _drop_lease(ep["ip"], root, cid)
    _drop_leases_of(root, cid)
    if not eps and not binds and not forget:
        return
    with eng.db.transaction() as c:
        c.execute("DELETE FROM port_bindings WHERE container_id=?", (cid,))
        if forget:
            c.execute("DELETE FROM endpoints WHERE container_id=?", (cid,))
        else:
            c.execute("DELETE FROM endpoints WHERE container_id=? AND mode='auto'", (cid,))
            c.execute("UPDATE endpoints SET ip=NULL, host_ifname=NULL, ifname=NULL WHERE container_id=?", (cid,))
    if eps:
        _refresh_peers(eng, cid, networks={ep["network_id"] for ep in eps})


# ---- connect / disconnect -------------------------------------------------------------------
def connect(eng: Engine, network: str, row: dict[str, Any], *, aliases: list[str] = (),  # type: ignore[assignment]
            ip: str | None = None) -> None:
    """``docker network connect``: now for a running container, at its next start for a stopped one."""
    import ipaddress

    from dockyard.runtime import network as kn

    net = resolve_network(eng, network)
    cid = row["id"]
    mode = network_mode(row)
    if net["driver"] != "bridge":
        raise Conflict(f"container cannot be disconnected from host network or connected to {net['name']} network"
                       if net["driver"] == "host" or mode == "host" else
                       f"container cannot be connected to the {net['name']} network")
    if mode == "host" or mode == "none" or mode.startswith("container:"):
        raise Conflict("container sharing network namespace with another container or host cannot be connected "
                       "to any other network" if mode != "none" else
                       "container cannot be connected to multiple networks with one of the networks in private "
                       "(none) mode")
    if ip and net["name"] == "bridge":
        raise InvalidArgument("user specified IP address is supported on user defined networks only")
    with _locked():
        ep = next((e for e in _endpoints(eng, cid=cid) if e["network_id"] == net["id"]), None)
        primary = (mode == "bridge" and net["name"] == "bridge") or mode in (net["name"], net["id"])
        if ep is not None and ep["mode"] != "removed" or (primary and ep is None and _container_running(eng, cid)):
            raise Conflict(f"endpoint with name {row['name']} already exists in network {net['name']}")
        with eng.db.transaction() as c:
            c.execute("INSERT INTO endpoints (network_id, container_id, endpoint_id, mode, aliases, static_ip) VALUES "
                      "(?,?,?,?,?,?) ON CONFLICT(network_id, container_id) DO UPDATE SET mode=excluded.mode,"
                      " aliases=excluded.aliases, static_ip=excluded.static_ip",
                      (net["id"], cid, random_hex(32), "auto" if primary else "connect",
                       jsonc.dumps(list(aliases)), ip))
        if not _container_running(eng, cid):
            return
        c_row = _container(eng, cid) or row
        pid = int(c_row["state"].get("pid") or 0)
        start = _proc_start(pid) if pid else None
        if start is None:
            return
        if net["name"] == "bridge":
            net = _ensure_default_bridge(eng)
        else:
            _network_up(net)
        attached = _endpoints(eng, cid=cid, attached=True)
        used_if = {e["ifname"] for e in attached}
        ifname = next(f"eth{i}" for i in range(64) if f"eth{i}" not in used_if)
        try:
            with eng.db.transaction() as c:
                addr = _allocate(c, net, cid, ip, {"root": eng.root_dir, "cid": cid, "pid": pid, "start": start,
                                                    "network": net["id"]})
                host_name = VETH_PREFIX + random_hex(5)
                mac = kn.mac_for_ip(addr)
                c.execute("UPDATE endpoints SET ip=?, mac=?, host_ifname=?, ifname=? WHERE network_id=? AND "
                          "container_id=?", (addr, mac, host_name, ifname, net["id"], cid))
            subnet = ipaddress.IPv4Network(net["subnet"])
            kn.add_interface(pid, kn.Interface(
                host_name, net["bridge"], ifname, mac, ipaddress.IPv4Interface(f"{addr}/{subnet.prefixlen}"),
                ipaddress.IPv4Address(net["gateway"]) if not attached and not net.get("internal") else None))
            _write_lease_veth(addr, host_name)
        except BaseException:
            _disconnect_locked(eng, net, cid)
            raise
        _refresh_peers(eng, cid)
    write_etc_files(eng, c_row)
    _store_settings(eng, cid)


def disconnect(eng: Engine, network: str, row: dict[str, Any], *, force: bool = False) -> None:
    """``docker network disconnect``."""
    net = resolve_network(eng, network)
    cid = row["id"]
    if net["driver"] != "bridge":
        raise Conflict(f"container cannot be disconnected from host network or connected to {net['name']} network"
                       if net["driver"] == "host" else f"container {cid[:12]} is not connected to network "
                       f"{net['name']}")
    mode = network_mode(row)
    primary = (mode == "bridge" and net["name"] == "bridge") or mode in (net["name"], net["id"])
    with _locked():
        ep = next((e for e in _endpoints(eng, cid=cid) if e["network_id"] == net["id"]), None)
        on_it = ep is not None and ep["mode"] != "removed" or (primary and ep is None)
        if not on_it:
            if force:
                return
            raise Conflict(f"container {cid[:12]} is not connected to network {net['name']}")
        _disconnect_locked(eng, net, cid)
        with eng.db.transaction() as c:
            if primary:  # remembered, so that the next start does not put it back
                c.execute("INSERT INTO endpoints (network_id, container_id, endpoint_id, mode) VALUES (?,?,?,?) "
                          "ON CONFLICT(network_id, container_id) DO UPDATE SET mode='removed', ip=NULL",
                          (net["id"], cid, random_hex(32), "removed"))
            else:
                c.execute("DELETE FROM endpoints WHERE network_id=? AND container_id=?", (net["id"], cid))
    c_row = _container(eng, cid)
    if c_row is not None and _container_running(eng, cid):
        write_etc_files(eng, c_row)
        _store_settings(eng, cid)


def _store_settings(eng: Engine, cid: str) -> None:
    """Keep the NetworkSettings the container's state holds (``state["network"]``) current."""
    row = _container(eng, cid)
    if row is not None and "network" in row["state"]:
        eng.db.update_container_state(cid, network=network_settings(eng, row))


def _disconnect_locked(eng: Engine, net: dict[str, Any], cid: str) -> None:
    from dockyard.runtime import network as kn

    ep = next((e for e in _endpoints(eng, cid=cid, attached=True) if e["network_id"] == net["id"]), None)
    if ep is None:
        return
    binds = [b for b in _bindings(eng, cid) if b["container_ip"] == ep["ip"]]
    if binds:
        with _nft_change():
            kn.Nft().remove_ports([kn.PortMap(b["proto"], b["host_ip"], b["host_port"], b["container_ip"],
                                              b["container_port"]) for b in binds])
    if ep.get("host_ifname"):
        kn.delete_link(ep["host_ifname"])
    _drop_lease(ep["ip"], eng.root_dir, cid)
    with eng.db.transaction() as c:
        c.execute("DELETE FROM port_bindings WHERE container_id=? AND container_ip=?", (cid, ep["ip"]))
        c.execute("UPDATE endpoints SET ip=NULL, host_ifname=NULL, ifname=NULL WHERE network_id=? AND "
                  "container_id=?", (net["id"], cid))
    _refresh_peers(eng, cid, networks={net["id"]})


# ---- sweep ----------------------------------------------------------------------------------
def sweep(eng: Engine) -> dict[str, int]:
    """Remove what crashed containers left: endpoints, host-port rows, stale leases, NAT, veths.

    This engine's rows of containers that are not running are detached (and forgotten when the
    container is gone); then, machine-wide, leases whose process is dead, NAT elements pointing
    at no live lease, and ``dyv*`` veths no live lease names. Returns counts of what went.
    """
    from dockyard.runtime import network as kn

    counts = {"endpoints": 0, "ports": 0, "leases": 0, "nat": 0, "veths": 0}
    with _locked():
        cids = {r[0] for r in eng.db.conn.execute("SELECT container_id FROM endpoints")}
        cids |= {r[0] for r in eng.db.conn.execute("SELECT container_id FROM port_bindings")}
        for cid in sorted(cids):
            gone = _container(eng, cid) is None
            if gone or not _container_running(eng, cid):
                n_ep = len(_endpoints(eng, cid=cid, attached=True)) + (len(_endpoints(eng, cid=cid)) if gone else 0)
                n_b = len(_bindings(eng, cid))
                if n_ep or n_b:
                    _detach_locked(eng, cid, forget=gone)
                    counts["endpoints"] += n_ep
                    counts["ports"] += n_b
        leases_dir = os.path.join(_net_state_dir(), "leases")
        try:
            for name in os.listdir(leases_dir):
                if name.startswith("."):
                    p = os.path.join(leases_dir, name)
                    try:
                        if time.time() - os.stat(p).st_mtime > 60:
                            os.unlink(p)
                    except OSError:
                        pass
                    continue
                if not _lease_alive(_read_lease(name)):
                    _drop_lease(name)
                    counts["leases"] += 1
        except OSError:
            pass
        live = _live_lease_ips()
        fw = kn.Nft()
        if fw.has_base():
            stale = [m for m in fw.port_maps() if m.container_ip not in live]
            if stale:
                with _nft_change():
                    fw.remove_ports(stale)
                counts["nat"] += len(stale)
        live_veths = {str(lease.get("veth")) for lease in live.values() if lease.get("veth")}
        for name in kn.links(VETH_PREFIX, "veth"):
            if name not in live_veths and kn.delete_link(name):
                counts["veths"] += 1
    return counts


# ---- settings (inspect) and ports -----------------------------------------------------------
def ports_of(eng: Engine, cid: str) -> list[dict[str, Any]]:
    """Published ports of a container: ``[{"proto", "host_ip", "host_port", "container_port"}]``."""
    return [{"proto": b["proto"], "host_ip": b["host_ip"], "host_port": b["host_port"],
             "container_port": b["container_port"]} for b in _bindings(eng, cid)]


def network_settings(eng: Engine, row: dict[str, Any], *, pid: int | None = None) -> dict[str, Any]:
    """Docker's ``NetworkSettings`` for a container, from the database (attached endpoints)."""
    cid = row["id"]
    mode = network_mode(row)
    ports: dict[str, Any] = {}
    eps = _endpoints(eng, cid=cid, attached=True)
    if mode not in ("host", "none") and not mode.startswith("container:"):
        for port, proto in _exposed(row):
            ports.setdefault(_port_key(proto, port), None)
        for b in _bindings(eng, cid):
            k = _port_key(b["proto"], b["container_port"])
            if ports.get(k) is None:
                ports[k] = []
            ports[k].append({"HostIp": b["host_ip"], "HostPort": str(b["host_port"])})
    networks: dict[str, Any] = {}
    for ep in eps:
        prefix = _prefixlen(ep["subnet"])
        networks[ep["network_name"]] = _endpoint_settings(
            ep["network_id"], ep["endpoint_id"], ep["gateway"], ep["ip"], prefix, ep["mac"],
            aliases=ep["aliases"] if ep["network_name"] != "bridge" else None,
            dns_names=[row.get("name") or cid[:12], cid[:12], *ep["aliases"]] if ep["network_name"] != "bridge"
            else None)
    if not eps and mode in ("host", "none"):
        try:
            net = resolve_network(eng, mode)
            networks[mode] = _endpoint_settings(net["id"], "", "", "", 0, "")
        except NotFound:
            pass
    if not eps and mode not in ("host", "none") and not mode.startswith("container:"):
        try:
            net = resolve_network(eng, mode)
            networks[net["name"]] = _endpoint_settings(net["id"], "", "", "", 0, "")
        except NotFound:
            pass
    first = next((ep for ep in eps if ep["network_name"] == "bridge"), None)
    sandbox = ""
    if eps:
        from dockyard.digest import sha256_small  # not hashlib: OpenSSL's load costs more than this hash

        sandbox = sha256_small((cid + "".join(ep["endpoint_id"] for ep in eps)).encode())
    return {
        "Bridge": "", "SandboxID": sandbox, "SandboxKey": f"/proc/{pid}/ns/net" if pid else "",
        "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports, "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
        "EndpointID": first["endpoint_id"] if first else "",
        "Gateway": first["gateway"] if first else "",
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "IPAddress": first["ip"] if first else "",
        "IPPrefixLen": _prefixlen(first["subnet"]) if first else 0,
        "IPv6Gateway": "", "MacAddress": first["mac"] if first else "",
        "Networks": networks,
    }


def _endpoint_settings(network_id: str, endpoint_id: str, gateway: str, ip: str, prefix: int, mac: str, *,
                       aliases: list[str] | None = None, dns_names: list[str] | None = None) -> dict[str, Any]:
    return {"IPAMConfig": None, "Links": None, "Aliases": aliases or None, "MacAddress": mac or "",
            "DriverOpts": None, "NetworkID": network_id, "EndpointID": endpoint_id, "Gateway": gateway or "",
            "IPAddress": ip or "", "IPPrefixLen": prefix, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "DNSNames": dns_names or None}


def inspect_network(eng: Engine, net: dict[str, Any]) -> dict[str, Any]:
    """Docker's ``network inspect`` object."""
    from dockyard.timestamps import rfc3339

    if net["name"] == "bridge" and not net.get("subnet"):
        with _locked():
            net = _ensure_default_bridge(eng)
    net = resolve_network(eng, net["id"])
    containers: dict[str, Any] = {}
    for ep in _endpoints(eng, network_id=net["id"], attached=True):
        c = _container(eng, ep["container_id"])
        prefix = _prefixlen(net["subnet"])
        containers[ep["container_id"]] = {
            "Name": c["name"] if c else ep["container_id"][:12], "EndpointID": ep["endpoint_id"],
            "MacAddress": ep["mac"] or "", "IPv4Address": f"{ep['ip']}/{prefix}", "IPv6Address": ""}
    options = dict(net.get("options") or {})
    if net["driver"] == "bridge":
        options.setdefault(BRIDGE_NAME_OPT, net["bridge"])
        if net["name"] == "bridge":
            for k, v in (("com.docker.network.bridge.default_bridge", "true"),
                         ("com.docker.network.bridge.enable_icc", "true"),
                         ("com.docker.network.bridge.enable_ip_masquerade", "true"),
                         ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
                         ("com.docker.network.driver.mtu", "1500")):
                options.setdefault(k, v)
    config = [{"Subnet": net["subnet"], "Gateway": net["gateway"]}] if net.get("subnet") else []
    return {
        "Name": net["name"], "Id": net["id"], "Created": rfc3339(net["created"]), "Scope": "local",
        "Driver": net["driver"], "EnableIPv4": True, "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None if net["name"] in BUILTIN else {}, "Config": config},
        "Internal": bool(net.get("internal")), "Attachable": False, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": containers,
        "Options": options, "Labels": dict(net.get("labels") or {}),
    }


# ---- /etc/hosts and /etc/resolv.conf --------------------------------------------------------
def _extra_host_lines(extra: list[str], gateway: str | None) -> list[str]:
    out = []
    for item in extra:
        sep = min((i for i in (item.find(":"), item.find("=")) if i > 0), default=-1)
        if sep < 0:
            continue
        host, ip = item[:sep], item[sep + 1:]
        if ip == "host-gateway":
            if not gateway:
                continue
            ip = gateway
        if ip.startswith("[") and ip.endswith("]"):
            ip = ip[1:-1]
        out.append(f"{ip}\t{host}")
    return out


def hosts_text(*, hostname: str, own_ips: list[str], peers: list[tuple[str, list[str]]], extra_hosts: list[str],
               gateway: str | None = None, host_hosts: str | None = None) -> str:
    """A container's ``/etc/hosts``: Docker's header (or the host's file), ``--add-host``
    entries, the container's own address with its hostname, then peers by name (user networks)."""
    lines = [host_hosts.rstrip("\n")] if host_hosts is not None else [LOCALHOST_HOSTS.rstrip("\n")]
    lines += _extra_host_lines(extra_hosts, gateway)
    if host_hosts is None:
        for ip in own_ips[:1]:
            lines.append(f"{ip}\t{hostname}")
    seen: set[tuple[str, str]] = set()
    for ip, names in peers:
        key = (ip, " ".join(names))
        if key in seen or not names:
            continue
        seen.add(key)
        lines.append(f"{ip}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def _read_host_resolv() -> str:
    try:
        text = _read_text("/etc/resolv.conf")
    except OSError:
        return ""
    ns = [line.split()[1] for line in text.splitlines() if line.startswith("nameserver") and len(line.split()) > 1]
    if ns and all(x == "127.0.0.53" for x in ns):  # systemd-resolved's stub: use its upstreams
        try:
            return _read_text("/run/systemd/resolve/resolv.conf")
        except OSError:
            pass
    return text


def resolv_text(host_text: str, *, dns: list[str] = (), dns_search: list[str] = (),  # type: ignore[assignment]
                dns_options: list[str] = (), keep_local: bool = False) -> str:  # type: ignore[assignment]
    """A container's ``/etc/resolv.conf`` from the host's, as Docker makes it.

    ``--dns``/``--dns-search``/``--dns-option`` replace the host's lines of that kind. Unless
    ``keep_local`` (host network), loopback nameservers (a local stub resolver, unreachable from
    the container) and IPv6 ones (networks are IPv4 only) are dropped; none left -> 8.8.8.8, 8.8.4.4.
    """
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    other: list[str] = []
    for line in host_text.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            options += words[1:]
        else:
            other.append(line.strip())
    if dns:
        servers = list(dns)
    elif not keep_local:
        kept = []
        for s in servers:
            addr = s.split("%")[0]
            n = ipv4.parse(addr)
            if n is not None:  # the usual case, without ipaddress
                if n >> 24 != 127:  # 127.0.0.0/8: loopback
                    kept.append(s)
                continue
            import ipaddress

            try:
                a = ipaddress.ip_address(addr)
            except ValueError:
                continue
            if a.is_loopback or a.version == 6:
                continue
            kept.append(s)
        servers = kept or list(DEFAULT_DNS)
    if dns_search:
        search = [] if list(dns_search) == ["."] else list(dns_search)
    if dns_options:
        options = list(dns_options)
    out = [f"nameserver {s}" for s in servers]
    if search:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    out += other
    return "\n".join(out) + "\n"


def _write_in_place(path: str, text: str) -> None:
    """Rewrite a bind-mounted file through its inode (a rename would leave the mount on the old one)."""
    try:
        if _read_text(path) == text:
            return
    except OSError:
        pass
    with open(path, "w") as f:
        f.write(text)


def write_etc_files(eng: Engine, row: dict[str, Any]) -> None:
    """(Re)write ``containers/<id>/hosts`` and ``resolv.conf`` for the container's networks."""
    from dockyard.ops.containers import container_path

    cid = row["id"]
    cdir = container_path(eng, cid)
    if not os.path.isdir(cdir):
        return
    opts = _opts(row)
    mode = network_mode(row)
    hostname = str(row.get("config", {}).get("hostname") or cid[:12])
    extra = [str(x) for x in opts.get("extra_hosts") or []]
    if mode.startswith("container:"):
        from dockyard.ops.containers import resolve

        try:
            other = resolve(eng, mode.partition(":")[2])
            odir = container_path(eng, other["id"])
            for name in ("hosts", "resolv.conf"):
                try:
                    _write_in_place(os.path.join(cdir, name), _read_text(os.path.join(odir, name)))
                except OSError:
                    pass
        except Exception:
            pass
        return
    resolv = resolv_text(_read_host_resolv(), dns=list(opts.get("dns") or []),
                         dns_search=list(opts.get("dns_search") or []),
                         dns_options=list(opts.get("dns_options") or []), keep_local=mode == "host")
    if mode == "host":
        try:
            host_hosts = _read_text("/etc/hosts")
        except OSError:
            host_hosts = LOCALHOST_HOSTS
        hosts = hosts_text(hostname=hostname, own_ips=[], peers=[], extra_hosts=extra, host_hosts=host_hosts)
    else:
        eps = _endpoints(eng, cid=cid, attached=True)
        gateway = eps[0]["gateway"] if eps else None
        if gateway is None and extra:
            try:
                bridge = resolve_network(eng, "bridge")
                gateway = bridge.get("gateway")
            except Exception:
                pass
        peers: list[tuple[str, list[str]]] = []
        for ep in eps:
            if ep["network_name"] == "bridge":
                continue  # the default bridge has no name resolution, as in Docker
            for other in _endpoints(eng, network_id=ep["network_id"], attached=True):
                c = _container(eng, other["container_id"])
                name = c["name"] if c else other["container_id"][:12]
                names = [name, *[a for a in other["aliases"] if a != name], other["container_id"][:12]]
                peers.append((other["ip"], names))
        hosts = hosts_text(hostname=hostname, own_ips=[ep["ip"] for ep in eps], peers=peers,
                           extra_hosts=extra, gateway=gateway)
    _write_in_place(os.path.join(cdir, "hosts"), hosts)
    _write_in_place(os.path.join(cdir, "resolv.conf"), resolv)


def _refresh_peers(eng: Engine, cid: str, networks: set[str] | None = None) -> None:
    """Rewrite ``/etc/hosts`` of the running containers that share a user network with ``cid``."""
    nets = networks if networks is not None else {ep["network_id"] for ep in _endpoints(eng, cid=cid, attached=True)}
    done: set[str] = {cid}
    for nid in nets:
        for ep in _endpoints(eng, network_id=nid, attached=True):
            other = ep["container_id"]
            if other in done or ep["network_name"] == "bridge":
                continue
            done.add(other)
            row = _container(eng, other)
            if row is not None:
                try:
                    write_etc_files(eng, row)
                except OSError:
                    pass


def check_mode(eng: Engine, mode: str) -> None:
    """For ``create``: a ``--network NAME`` must exist (``bridge``/``host``/``none`` always do)."""
    if mode in BUILTIN or mode.startswith("container:"):
        return
    resolve_network(eng, mode)
