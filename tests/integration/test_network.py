"""Container networking on a real kernel: bridges, veths, NAT, published ports, user networks.

Until ``run`` calls ``networks.attach`` itself, these tests start a container with ``--network none``
and plumb its namespace through the API (``attach``/``detach`` on its init pid), which is exactly
what the monitor does between the runtime's create and start. Another "host" is a network
namespace of the test's own, joined to this one by a veth pair on 10.99.77.0/24: all traffic stays
on this machine. The tests at the end go through ``dockyard run -p`` and skip until that is wired.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine import Engine
from dockyard.errors import Conflict, RuntimeFailure
from dockyard.ops import containers, networks
from dockyard.runtime import network as kn
from tests.conftest import CLI, DOCKYARD_BIN

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="networking needs root")

OTHER_NS = f"dyt-other-{os.getpid()}"
HOST_LINK_IP = "10.99.77.1"
OTHER_IP = "10.99.77.2"


@pytest.fixture
def eng(cli: CLI) -> Iterator[Engine]:
    e = Engine(cli.root)
    yield e
    e.close()


@pytest.fixture(autouse=True)
def _cleanup(cli: CLI, busybox_image: str) -> Iterator[None]:
    yield
    with Engine(cli.root) as e:
        for c in containers.list_containers(e):
            with contextlib.suppress(Exception):
                networks.detach(e, c, forget=True)
    ids = cli("ps", "-aq", check=False).stdout.split()
    if ids:
        cli("rm", "-f", *ids, check=False)
    with Engine(cli.root) as e:
        for n in networks.list_networks(e):
            if n["name"] not in networks.BUILTIN:
                with contextlib.suppress(Exception):
                    networks.remove_network(e, n["id"])
        networks.sweep(e)


@pytest.fixture(scope="module")
def other_host() -> Iterator[str]:
    """A second "host": a network namespace on 10.99.77.2, routed to this one through 10.99.77.1."""
    from pyroute2 import IPRoute, netns

    netns.create(OTHER_NS)
    host_end, peer = f"dyt{os.getpid() % 100000}h", f"dyt{os.getpid() % 100000}p"
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=host_end, kind="veth", peer={"ifname": peer, "net_ns_fd": OTHER_NS})
            idx = ipr.link_lookup(ifname=host_end)[0]
            ipr.addr("add", index=idx, address=HOST_LINK_IP, prefixlen=24)
            ipr.link("set", index=idx, state="up")
        with IPRoute(netns=OTHER_NS) as ns:
            i = ns.link_lookup(ifname=peer)[0]
            ns.addr("add", index=i, address=OTHER_IP, prefixlen=24)
            ns.link("set", index=i, state="up")
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
            ns.route("add", dst="0.0.0.0/0", gateway=HOST_LINK_IP)
        yield f"/run/netns/{OTHER_NS}"
    finally:
        kn.delete_link(host_end)
        netns.remove(OTHER_NS)


# ---- helpers --------------------------------------------------------------------------------
def start(cli: CLI, name: str, *cmd: str) -> dict[str, Any]:
    """A running busybox container with no network yet (lo only)."""
    cli("run", "-d", "--name", name, "--network", "none", "busybox", *cmd)
    with Engine(cli.root) as e:
        return containers.resolve(e, name)


def attach(eng: Engine, c: dict[str, Any], network: str = "bridge", publish: list[tuple[Any, ...]] = (),  # type: ignore[assignment]
           **opts: Any) -> dict[str, Any]:
    """What the monitor does at start, for ``c`` as if run with ``--network network -p ...``."""
    row = json.loads(json.dumps(c))
    row["config"]["opts"].update(network=network, publish=[
        {"container_port": cport, "protocol": proto, "host_ip": hip, "host_port": str(hport)}
        for proto, hip, hport, cport in publish], **opts)
    return networks.attach(eng, row, c["state"]["pid"])


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def wget(url: str, *, pid: int | None = None, netns: str | None = None, container: bool = False,
         timeout: float = 8) -> str | None:
    """GET with busybox wget from the host, a container's network namespace, or another netns.

    ``container``: also enter the container's mount namespace (its busybox, its /etc/hosts).
    """
    cmd = ["busybox", "wget", "-qO-", url]
    if pid is not None:
        cmd = ["nsenter", "-t", str(pid), "-n", *(["-m", "/bin/busybox", "wget", "-qO-", url] if container else cmd)]
    elif netns is not None:
        cmd = ["nsenter", f"--net={netns}", *cmd]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return p.stdout.decode() if p.returncode == 0 else None


def nat_elements() -> list[kn.PortMap]:
    return kn.Nft().port_maps()


def leases_of(eng: Engine, cid: str) -> list[str]:
    out = []
    for name in os.listdir(os.path.join(networks._net_state_dir(), "leases")):
        lease = networks._read_lease(name)
        if lease and lease.get("cid") == cid and lease.get("root") == str(eng.root):
            out.append(name)
    return out


def db_rows(eng: Engine, cid: str) -> tuple[int, int]:
    eps = eng.db.conn.execute("SELECT COUNT(*) FROM endpoints WHERE container_id=? AND ip IS NOT NULL",
                              (cid,)).fetchone()[0]
    ports = eng.db.conn.execute("SELECT COUNT(*) FROM port_bindings WHERE container_id=?", (cid,)).fetchone()[0]
    return int(eps), int(ports)


def net_cli(cli: CLI, *args: str, check: bool = True) -> Any:
    """``dockyard network ...``/``port`` through the dispatcher (patched in until main.py has it)."""
    from dockyard.cli import main

    if "network" in main.GROUPS and main.COMMANDS.get("port", ("",))[0] == "dockyard.cli.port:port":
        return cli(*args, check=check)
    code = ("import sys; import dockyard.cli.main as m; "
            "m.GROUPS['network'] = ('Manage networks', {k: 'dockyard.cli.networks:' + v for k, v in "
            "{'create': 'create', 'ls': 'ls', 'list': 'ls', 'inspect': 'inspect', 'rm': 'rm', 'remove': 'rm', "
            "'connect': 'connect', 'disconnect': 'disconnect', 'prune': 'prune'}.items()}); "
            "m.COMMANDS['port'] = ('dockyard.cli.port:port', ''); sys.exit(m.main(sys.argv[1:]))")
    p = subprocess.run([sys.executable, "-c", code, "--root", str(cli.root), *args], capture_output=True, timeout=60)
    from tests.conftest import Result

    r = Result(p.returncode, p.stdout.decode(), p.stderr.decode())
    if check and r.returncode != 0:
        raise AssertionError(f"{args} exited {r.returncode}: {r.stderr}")
    return r


# ---- none, bridge ---------------------------------------------------------------------------
def test_none_has_loopback_only(cli: CLI, eng: Engine) -> None:
    c = start(cli, "lonely", "sleep", "300")
    s = attach(eng, c, "none")
    assert s["IPAddress"] == "" and list(s["Networks"]) == ["none"]
    assert kn.netns_links(c["state"]["pid"]) == ["lo"]
    ping = subprocess.run(["nsenter", "-t", str(c["state"]["pid"]), "-n", "busybox", "ping", "-c1", "-W2",
                           "127.0.0.1"], capture_output=True)
    assert ping.returncode == 0, ping.stderr


def test_bridge_gives_an_address_a_route_and_etc_files(cli: CLI, eng: Engine, other_host: str) -> None:
    c = start(cli, "b1", "sleep", "300")
    pid = c["state"]["pid"]
    s = attach(eng, c, extra_hosts=["gw:host-gateway"])
    bridge = kn.bridge_address(networks.DEFAULT_BRIDGE)
    assert bridge is not None
    assert s["Gateway"] == str(bridge.ip) and s["IPPrefixLen"] == bridge.network.prefixlen
    assert s["IPAddress"] in {str(x) for x in bridge.network.hosts()}
    assert s["MacAddress"] == kn.mac_for_ip(s["IPAddress"])
    assert s["Networks"]["bridge"]["IPAddress"] == s["IPAddress"]
    assert sorted(kn.netns_links(pid)) == ["eth0", "lo"]
    route = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-4", "route"], capture_output=True, text=True)
    assert f"default via {s['Gateway']} dev eth0" in route.stdout
    hosts = Path(f"/proc/{pid}/root/etc/hosts").read_text()  # what the container sees (bind mount)
    assert f"{s['IPAddress']}\t{c['config']['hostname']}" in hosts
    assert f"{s['Gateway']}\tgw" in hosts
    resolv = Path(f"/proc/{pid}/root/etc/resolv.conf").read_text()
    assert "nameserver" in resolv and "127.0.0." not in resolv
    # Outbound traffic is NATed to the world: the other host answers the container.
    srv = subprocess.Popen(["nsenter", f"--net={other_host}", "busybox", "httpd", "-f", "-p", f"{OTHER_IP}:9001",
                            "-h", "/etc"])
    try:
        time.sleep(0.3)
        assert wget(f"http://{OTHER_IP}:9001/hostname", pid=pid) is not None
    finally:
        srv.kill()
        srv.wait()


def test_published_port_is_reachable_from_everywhere(cli: CLI, eng: Engine, other_host: str) -> None:
    port = free_port()
    web = start(cli, "web", "httpd", "-f", "-p", "80", "-h", "/etc")
    s = attach(eng, web, publish=[("tcp", "", port, 80)])
    assert s["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    name = web["config"]["hostname"] + "\n"
    assert wget(f"http://127.0.0.1:{port}/hostname") == name             # host, loopback
    assert wget(f"http://{HOST_LINK_IP}:{port}/hostname") == name        # host, one of its addresses
    assert wget(f"http://{s['IPAddress']}/hostname") == name             # host, straight to the container
    assert wget(f"http://{HOST_LINK_IP}:{port}/hostname", netns=other_host) == name  # another host
    client = start(cli, "client", "sleep", "300")
    cs = attach(eng, client)
    cpid = client["state"]["pid"]
    assert wget(f"http://{HOST_LINK_IP}:{port}/hostname", pid=cpid) == name  # another container
    assert wget(f"http://{cs['Gateway']}:{port}/hostname", pid=cpid) == name
    assert wget(f"http://{s['IPAddress']}/hostname", pid=cpid) == name
    assert wget(f"http://{HOST_LINK_IP}:{port}/hostname", pid=web["state"]["pid"]) == name  # itself (hairpin)
    r = net_cli(cli, "port", "web")
    assert r.stdout == f"80/tcp -> 0.0.0.0:{port}\n"
    assert net_cli(cli, "port", "web", "80/tcp").stdout == f"0.0.0.0:{port}\n"
    r = net_cli(cli, "port", "web", "81", check=False)
    assert r.returncode == 1 and r.stderr == "Error: No public port '81/tcp' published for web\n"


def test_loopback_only_binding_and_random_udp_port(cli: CLI, eng: Engine, other_host: str) -> None:
    port = free_port()
    web = start(cli, "web", "httpd", "-f", "-p", "80", "-h", "/etc")
    attach(eng, web, publish=[("tcp", "127.0.0.1", port, 80)])
    assert wget(f"http://127.0.0.1:{port}/hostname") is not None
    assert wget(f"http://{HOST_LINK_IP}:{port}/hostname", netns=other_host, timeout=4) is None
    # busybox has no UDP server: the host's Python answers inside the container's namespace.
    udp = start(cli, "udp", "sleep", "300")
    s = attach(eng, udp, publish=[("udp", "", "", 5353)])
    host_port = int(s["Ports"]["5353/udp"][0]["HostPort"])
    assert host_port >= 1024
    echo = subprocess.Popen(["nsenter", "-t", str(udp["state"]["pid"]), "-n", sys.executable, "-c",
                             "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                             "s.bind(('0.0.0.0', 5353)); d, a = s.recvfrom(100); s.sendto(d.upper(), a)"])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(0.5)
            got = None
            for _ in range(20):
                u.sendto(b"hello over udp", ("127.0.0.1", host_port))
                try:
                    got = u.recv(100)
                    break
                except TimeoutError:
                    continue
        assert got == b"HELLO OVER UDP"
    finally:
        echo.kill()
        echo.wait()


def test_a_taken_port_is_a_clear_error_and_leaves_nothing(cli: CLI, eng: Engine) -> None:
    port = free_port()
    first = start(cli, "first", "httpd", "-f", "-p", "80", "-h", "/etc")
    attach(eng, first, publish=[("tcp", "", port, 80)])
    second = start(cli, "second", "httpd", "-f", "-p", "80", "-h", "/etc")
    before = (sorted(nat_elements(), key=str), sorted(kn.links(networks.VETH_PREFIX)))
    with pytest.raises(RuntimeFailure, match=f"Bind for 0.0.0.0:{port} failed: port is already allocated") as e:
        attach(eng, second, publish=[("tcp", "", port, 80)])
    assert e.value.exit_code == 125
    assert (sorted(nat_elements(), key=str), sorted(kn.links(networks.VETH_PREFIX))) == before
    assert kn.netns_links(second["state"]["pid"]) == ["lo"]
    assert db_rows(eng, second["id"]) == (0, 0) and leases_of(eng, second["id"]) == []
    # The same on one address while the other container holds every address.
    with pytest.raises(RuntimeFailure, match="port is already allocated"):
        attach(eng, second, publish=[("tcp", "127.0.0.1", port, 80)])
    # A port some host process holds.
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        taken = s.getsockname()[1]
        with pytest.raises(RuntimeFailure, match=f"0.0.0.0:{taken}: bind: address already in use"):
            attach(eng, second, publish=[("tcp", "", taken, 80)])
    assert db_rows(eng, second["id"]) == (0, 0) and leases_of(eng, second["id"]) == []
    # Once the first lets go, the port is free for the second.
    networks.detach(eng, first)
    attach(eng, second, publish=[("tcp", "", port, 80)])
    assert wget(f"http://127.0.0.1:{port}/hostname") == second["config"]["hostname"] + "\n"


# ---- user networks --------------------------------------------------------------------------
def test_user_network_names_isolation_and_peer_updates(cli: CLI, eng: Engine) -> None:
    net_id = networks.create_network(eng, "appnet", subnet="10.98.0.0/24")
    net = networks.resolve_network(eng, "appnet")
    assert kn.bridge_address(net["bridge"]) is not None and net["gateway"] == "10.98.0.1"
    with pytest.raises(Conflict, match="already exists"):
        networks.create_network(eng, "appnet")
    with pytest.raises(Conflict, match="overlaps"):
        networks.create_network(eng, "clash", subnet="10.98.0.0/16")
    a = start(cli, "alpha", "httpd", "-f", "-p", "80", "-h", "/etc")
    b = start(cli, "beta", "httpd", "-f", "-p", "80", "-h", "/etc")
    sa = attach(eng, a, "appnet", network_aliases=["api"])
    sb = attach(eng, b, "appnet")
    assert sa["IPAddress"] == "" and sa["Networks"]["appnet"]["IPAddress"] == "10.98.0.2"
    assert sb["Networks"]["appnet"]["IPAddress"] == "10.98.0.3"
    apid, bpid = a["state"]["pid"], b["state"]["pid"]
    assert wget("http://beta/hostname", pid=apid, container=True) == b["config"]["hostname"] + "\n"
    assert wget("http://api/hostname", pid=bpid, container=True) == a["config"]["hostname"] + "\n"
    assert wget("http://alpha/hostname", pid=bpid, container=True) == a["config"]["hostname"] + "\n"
    # Isolated from the default bridge.
    other = start(cli, "outsider", "httpd", "-f", "-p", "80", "-h", "/etc")
    so = attach(eng, other)
    assert wget(f"http://{so['IPAddress']}/hostname", pid=apid, timeout=4) is None
    # Peers learn of a newcomer, and forget it when it goes.
    g = start(cli, "gamma", "sleep", "300")
    attach(eng, g, "appnet")
    assert "\tgamma " in Path(f"/proc/{apid}/root/etc/hosts").read_text()
    networks.detach(eng, g)
    assert "gamma" not in Path(f"/proc/{apid}/root/etc/hosts").read_text()
    info = networks.inspect_network(eng, net)
    assert info["Id"] == net_id and info["IPAM"]["Config"] == [{"Subnet": "10.98.0.0/24", "Gateway": "10.98.0.1"}]
    assert {v["Name"] for v in info["Containers"].values()} == {"alpha", "beta"}
    with pytest.raises(Conflict, match="has active endpoints"):
        networks.remove_network(eng, "appnet")
    networks.detach(eng, a)
    networks.detach(eng, b)
    networks.remove_network(eng, "appnet")
    assert not kn.link_exists(net["bridge"])


def test_connect_and_disconnect_a_running_container(cli: CLI, eng: Engine) -> None:
    networks.create_network(eng, "side")
    c = start(cli, "multi", "sleep", "300")
    attach(eng, c)
    pid = c["state"]["pid"]

    def row() -> dict[str, Any]:  # the container as if run on the default bridge
        r = containers.resolve(eng, "multi")
        r["config"]["opts"]["network"] = "bridge"
        return r

    networks.connect(eng, "side", row(), aliases=["m"])
    assert sorted(kn.netns_links(pid)) == ["eth0", "eth1", "lo"]
    s = networks.network_settings(eng, row())
    assert set(s["Networks"]) == {"bridge", "side"} and s["Networks"]["side"]["Aliases"] == ["m"]
    assert s["Networks"]["side"]["IPAddress"].startswith(networks.resolve_network(eng, "side")["subnet"][:6])
    with pytest.raises(Conflict, match="already exists in network side"):
        networks.connect(eng, "side", row())
    with pytest.raises(Conflict, match="already exists in network bridge"):
        networks.connect(eng, "bridge", row())
    networks.disconnect(eng, "side", row())
    assert sorted(kn.netns_links(pid)) == ["eth0", "lo"]
    with pytest.raises(Conflict, match="is not connected"):
        networks.disconnect(eng, "side", row())
    networks.disconnect(eng, "side", row(), force=True)
    networks.remove_network(eng, "side")


# ---- cleanup --------------------------------------------------------------------------------
def test_detach_and_sweep_leave_nothing_behind(cli: CLI, eng: Engine) -> None:
    port = free_port()
    c = start(cli, "doomed", "httpd", "-f", "-p", "80", "-h", "/etc")
    s = attach(eng, c, publish=[("tcp", "", port, 80)])
    veth = eng.db.conn.execute("SELECT host_ifname FROM endpoints WHERE container_id=?", (c["id"],)).fetchone()[0]
    assert kn.link_exists(veth) and leases_of(eng, c["id"]) == [s["IPAddress"]]
    assert any(m.host_port == port for m in nat_elements())
    # A crash: its monitor dies, then the container, and nobody detaches it.
    networks._release_sockets(c["id"])
    monitor = containers.resolve(eng, "doomed")["state"].get("monitor_pid")
    if monitor:
        os.kill(monitor, 9)
    os.kill(c["state"]["pid"], 9)
    for _ in range(50):
        if networks._proc_start(c["state"]["pid"]) is None:
            break
        time.sleep(0.1)
    counts = networks.sweep(eng)
    assert counts["nat"] + counts["ports"] >= 1
    assert not any(m.host_port == port for m in nat_elements())
    assert not kn.link_exists(veth)
    assert leases_of(eng, c["id"]) == [] and db_rows(eng, c["id"]) == (0, 0)
    networks.detach(eng, c, forget=True)  # idempotent
    # The regular way: detach after attach leaves nothing either.
    d = start(cli, "tidy", "httpd", "-f", "-p", "80", "-h", "/etc")
    attach(eng, d, publish=[("tcp", "", port, 80)])
    networks.detach(eng, d, forget=True)
    assert not any(m.host_port == port for m in nat_elements())
    assert leases_of(eng, d["id"]) == [] and db_rows(eng, d["id"]) == (0, 0)
    assert kn.netns_links(d["state"]["pid"]) == ["lo"]
    with socket.socket() as sk:
        sk.bind(("0.0.0.0", port))  # the host port is free again


# ---- the CLI --------------------------------------------------------------------------------
def test_network_commands(cli: CLI) -> None:
    r = net_cli(cli, "network", "ls")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [line.split()[1:] for line in lines[1:]] == [["bridge", "bridge", "local"], ["host", "host", "local"],
                                                        ["none", "null", "local"]]
    net_id = net_cli(cli, "network", "create", "--subnet", "10.97.0.0/24", "--label", "team=a",
                     "cli-net").stdout.strip()
    assert len(net_id) == 64
    assert "cli-net" in net_cli(cli, "network", "ls", "--filter", "label=team=a", "--format", "{{.Name}}").stdout
    assert net_cli(cli, "network", "ls", "-q", "--no-trunc", "-f", "name=cli").stdout.strip() == net_id
    info = json.loads(net_cli(cli, "network", "inspect", "cli-net").stdout)
    assert info[0]["Name"] == "cli-net" and info[0]["Labels"] == {"team": "a"}
    assert info[0]["IPAM"]["Config"] == [{"Subnet": "10.97.0.0/24", "Gateway": "10.97.0.1"}]
    assert net_cli(cli, "network", "inspect", "-f", "{{.Driver}}", "bridge").stdout == "bridge\n"
    r = net_cli(cli, "network", "create", "cli-net", check=False)
    assert r.returncode == 1 and r.stderr == "Error: network with name cli-net already exists\n"
    r = net_cli(cli, "network", "rm", "host", check=False)
    assert r.returncode == 1 and "pre-defined network and cannot be removed" in r.stderr
    r = net_cli(cli, "network", "inspect", "nothere", check=False)
    assert r.returncode == 1 and "network nothere not found" in r.stderr
    assert net_cli(cli, "network", "rm", "cli-net").stdout == "cli-net\n"
    net_cli(cli, "network", "create", "p1")
    assert net_cli(cli, "network", "prune", "-f").stdout == "Deleted Networks:\np1\n"


# ---- through `dockyard run` (once the monitor calls attach) ---------------------------------
def _wired(cli: CLI) -> bool:
    r = cli("create", "-p", "1:1", "busybox", "true", check=False)
    if r.returncode == 0:
        cli("rm", "-f", r.stdout.strip(), check=False)
    return r.returncode == 0


def test_run_publish_end_to_end(cli: CLI, other_host: str) -> None:
    if not _wired(cli):
        pytest.skip("run does not publish ports yet (networks.attach is not wired into the monitor)")
    port = free_port()
    cid = cli("run", "-d", "--name", "e2e", "-p", f"{port}:80", "busybox", "httpd", "-f", "-p", "80",
              "-h", "/etc").stdout.strip()
    name = cid[:12] + "\n"
    for url, ns in ((f"http://127.0.0.1:{port}/hostname", None), (f"http://{HOST_LINK_IP}:{port}/hostname", None),
                    (f"http://{HOST_LINK_IP}:{port}/hostname", other_host)):
        got = None
        for _ in range(20):
            got = wget(url, netns=ns)
            if got:
                break
            time.sleep(0.1)
        assert got == name, url
    r = cli("run", "-d", "-p", f"{port}:80", "busybox", "true", check=False)
    assert r.returncode == 125 and "port is already allocated" in r.stderr
    cli("rm", "-f", "e2e")
    assert not any(m.host_port == port for m in nat_elements())
    with Engine(cli.root) as e:
        assert leases_of(e, cid) == []


def test_run_rm_bridge_and_none(cli: CLI) -> None:
    if not _wired(cli):
        pytest.skip("run does not set up bridge networking yet")
    r = subprocess.run([str(DOCKYARD_BIN), "--root", str(cli.root), "run", "--rm", "busybox", "ip", "-4", "addr"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "eth0" in r.stdout and "inet 127.0.0.1" in r.stdout
    r = subprocess.run([str(DOCKYARD_BIN), "--root", str(cli.root), "run", "--rm", "--network", "none", "busybox",
                        "ip", "-4", "addr"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "eth0" not in r.stdout and "inet 127.0.0.1" in r.stdout


# ---- the stdlib netlink fast path against pyroute2 ------------------------------------------
def _netns_view(pid: int) -> dict[str, str]:
    """``ip`` (the host's iproute2) inside ``pid``'s namespace: addresses, routes, links."""
    import re

    def ip(*args: str) -> str:
        p = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", *args], capture_output=True, text=True, timeout=10)
        assert p.returncode == 0, p.stderr
        return p.stdout

    return {"addr": ip("-o", "-4", "addr"), "route": ip("route"),
            # peer index (eth0@if123) and the host-side ifindex differ from run to run
            "link": re.sub(r"@if\d+", "", ip("-o", "link"))}


def test_fast_path_and_pyroute2_plumb_the_same(cli: CLI, eng: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    views = {}
    for mode in ("fast", "pyroute2", "fallback"):
        monkeypatch.setenv("DOCKYARD_NETLINK", "pyroute2" if mode == "pyroute2" else "")
        if mode == "fallback":  # the fast path fails in a way that is not a configuration error
            def broken(pid: int, itf: kn.Interface) -> None:
                raise OSError(22, "Invalid argument")

            monkeypatch.setattr(kn, "_add_interface_fast", broken)
        c = start(cli, f"same-{mode}", "sleep", "300")
        s = attach(eng, c)
        veth = eng.db.conn.execute("SELECT host_ifname FROM endpoints WHERE container_id=?", (c["id"],)).fetchone()[0]
        assert kn.link_exists(veth) and kn.link_is_up(veth)
        with open(f"/sys/class/net/{veth}/master/uevent") as f:
            assert f"INTERFACE={networks.DEFAULT_BRIDGE}" in f.read()
        views[mode] = _netns_view(c["state"]["pid"])
        assert f"inet {s['IPAddress']}/16" in views[mode]["addr"]
        assert s["MacAddress"] in views[mode]["link"] and "mtu 1500" in views[mode]["link"]
        assert f"default via {s['Gateway']} dev eth0" in views[mode]["route"]
        networks.detach(eng, c, forget=True)
        assert not kn.link_exists(veth)
        assert kn.netns_links(c["state"]["pid"]) == ["lo"]
        cli("rm", "-f", c["id"])
    assert views["fast"] == views["pyroute2"] == views["fallback"]


def test_run_rm_leaves_no_veth_and_skips_setup_when_done(cli: CLI, eng: Engine) -> None:
    if not _wired(cli):
        pytest.skip("run does not set up bridge networking yet")
    mine = set(kn.links(networks.VETH_PREFIX, "veth"))
    r = subprocess.run([str(DOCKYARD_BIN), "--root", str(cli.root), "run", "--rm", "busybox", "ip", "-o", "link"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "eth0" in r.stdout, r.stderr
    # The CLI returns once the exit is recorded; the monitor then detaches and the kernel tears the
    # namespace's veth down asynchronously: it must be gone within moments, never left behind.
    deadline = time.monotonic() + 10
    while not set(kn.links(networks.VETH_PREFIX, "veth")) <= mine and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(kn.links(networks.VETH_PREFIX, "veth")) <= mine
    net = networks.resolve_network(eng, "bridge")
    gw = ipaddress.IPv4Interface(f"{net['gateway']}/{ipaddress.IPv4Network(net['subnet']).prefixlen}")
    with networks._locked():
        assert networks._network_ready(net, gw)
        # Anyone's change to the ruleset makes the marker stale; the next setup checks and re-marks.
        for cmd in ("add table ip dyt_probe", "delete table ip dyt_probe"):
            subprocess.run(["nft", *cmd.split()], check=True)
        assert not networks._network_ready(net, gw)
        networks._network_up(net)
        assert networks._network_ready(net, gw)
