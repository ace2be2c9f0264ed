"""IPAM, subnet choice, port requests and the /etc files: the database and pure parts of networking."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine import Engine
from dockyard.errors import Conflict, InvalidArgument, RuntimeFailure
from dockyard.ops import networks
from dockyard.runtime.network import PortMap, mac_for_ip


@pytest.fixture
def eng(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("DOCKYARD_NET_STATE", str(tmp_path / "netstate"))
    e = Engine(tmp_path / "root")
    yield e
    e.close()


def _net(eng: Engine, name: str, subnet: str, gateway: str) -> dict:
    nid = os.urandom(32).hex()
    with eng.db.transaction() as c:
        c.execute("INSERT INTO networks (id, name, driver, bridge, subnet, gateway, created) VALUES (?,?,?,?,?,?,?)",
                  (nid, name, "bridge", "dy-" + nid[:12], subnet, gateway, time.time()))
    return networks.resolve_network(eng, nid)


def _owner(eng: Engine, cid: str, pid: int | None = None) -> dict:
    pid = pid or os.getpid()
    return {"root": str(eng.root), "cid": cid, "pid": pid, "start": networks._proc_start(pid)}


def _alloc(eng: Engine, net: dict, cid: str, want: str | None = None, pid: int | None = None) -> str:
    with eng.db.transaction() as c:
        ip = networks._allocate(c, net, cid, want, _owner(eng, cid, pid))
        c.execute("INSERT INTO endpoints (network_id, container_id, endpoint_id, mode, ip) VALUES (?,?,?,?,?)",
                  (net["id"], cid, "e" + cid, "auto", ip))
    return ip


def test_builtin_networks_exist_once(eng: Engine) -> None:
    networks.ensure_builtin(eng)
    networks.ensure_builtin(eng)
    nets = networks.list_networks(eng)
    assert [(n["name"], n["driver"]) for n in nets] == [("bridge", "bridge"), ("host", "host"), ("none", "null")]
    assert networks.resolve_network(eng, nets[0]["id"][:10])["name"] == "bridge"
    with pytest.raises(networks.NetworkNotFound, match="network nope not found"):
        networks.resolve_network(eng, "nope")


def test_allocation_is_sequential_skips_gateway_and_reuses_freed(eng: Engine) -> None:
    net = _net(eng, "n1", "10.200.0.0/24", "10.200.0.1")
    assert [_alloc(eng, net, f"c{i}") for i in range(3)] == ["10.200.0.2", "10.200.0.3", "10.200.0.4"]
    with eng.db.transaction() as c:
        c.execute("DELETE FROM endpoints WHERE container_id='c1'")
    networks._drop_lease("10.200.0.3")
    assert _alloc(eng, net, "c9") == "10.200.0.3"


def test_gateway_in_the_middle_and_static_addresses(eng: Engine) -> None:
    net = _net(eng, "n2", "10.201.0.0/24", "10.201.0.2")
    assert _alloc(eng, net, "a") == "10.201.0.1"
    assert _alloc(eng, net, "b") == "10.201.0.3"
    assert _alloc(eng, net, "s", want="10.201.0.77") == "10.201.0.77"
    with pytest.raises(Conflict, match="Address already in use"):
        _alloc(eng, net, "t", want="10.201.0.77")
    with pytest.raises(Conflict, match="Address already in use"):
        _alloc(eng, net, "t", want="10.201.0.2")  # the gateway
    with pytest.raises(InvalidArgument, match="no configured subnet contains"):
        _alloc(eng, net, "t", want="10.9.9.9")
    with pytest.raises(InvalidArgument, match="no configured subnet contains"):
        _alloc(eng, net, "t", want="10.201.0.255")
    with pytest.raises(InvalidArgument, match="invalid IPv4"):
        _alloc(eng, net, "t", want="nonsense")


def test_exhaustion_is_a_clear_error(eng: Engine) -> None:
    net = _net(eng, "tiny", "10.202.0.0/29", "10.202.0.1")  # .2 - .6 for containers
    got = [_alloc(eng, net, f"c{i}") for i in range(5)]
    assert got[-1] == "10.202.0.6"
    with pytest.raises(RuntimeFailure, match="no available IPv4 addresses"):
        _alloc(eng, net, "one-too-many")


def test_leases_are_machine_wide_and_stale_ones_are_taken_over(eng: Engine, tmp_path: Path) -> None:
    net = _net(eng, "n3", "10.203.0.0/24", "10.203.0.1")
    # Another engine (another root, another database) holds .2 for a live process: skipped.
    other = Engine(tmp_path / "other-root")
    try:
        net_other = {**net}
        with other.db.transaction() as c:
            ip = networks._allocate(c, net_other, "theirs", None,
                                    {"root": str(other.root), "cid": "theirs", "pid": 1,
                                     "start": networks._proc_start(1)})
        assert ip == "10.203.0.2"
    finally:
        other.close()
    assert _alloc(eng, net, "mine") == "10.203.0.3"
    # A lease whose process is gone is stale (a crashed container of any engine): taken over.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert networks._take_lease("10.203.0.4", {"root": "/elsewhere", "cid": "gone", "pid": dead.pid,
                                               "start": "1"})
    assert not networks._lease_alive(networks._read_lease("10.203.0.4"))
    assert _alloc(eng, net, "next") == "10.203.0.4"
    assert networks._read_lease("10.203.0.4")["cid"] == "next"
    # Dropping the leases of a container only drops that container's.
    assert networks._drop_leases_of(str(eng.root), "mine") == 1
    assert networks._read_lease("10.203.0.2") is not None


def test_choose_subnet_avoids_routes_and_other_networks() -> None:
    n = ipaddress.IPv4Network
    assert networks.choose_subnet([]) == n("172.17.0.0/16")
    assert networks.choose_subnet([n("172.17.0.0/16")]) == n("172.18.0.0/16")
    assert networks.choose_subnet([n("172.16.0.0/12")]) == n("192.168.0.0/20")
    assert networks.choose_subnet([n("172.16.0.0/12"), n("192.168.1.0/24")]) == n("192.168.16.0/20")
    assert networks.choose_subnet([n("172.17.5.0/24"), n("172.18.0.1/32")]) == n("172.19.0.0/16")
    with pytest.raises(RuntimeFailure, match="non-overlapping"):
        networks.choose_subnet([n("172.16.0.0/12"), n("192.168.0.0/16")])


def test_requested_ports_publish_and_publish_all() -> None:
    row: dict[str, Any] = {"id": "x" * 64, "config": {
        "image_config": {"ExposedPorts": {"80/tcp": {}, "53/udp": {}}},
        "opts": {"publish": [{"container_port": 80, "protocol": "tcp", "host_ip": "127.0.0.1", "host_port": "8080"}],
                 "publish_all": True, "expose": [[9000, "tcp"]]}}}
    assert networks.requested_ports(row) == [("tcp", "127.0.0.1", "8080", 80), ("udp", "", "", 53),
                                             ("tcp", "", "", 9000)]
    row["config"]["opts"]["publish_all"] = False
    assert networks.requested_ports(row) == [("tcp", "127.0.0.1", "8080", 80)]
    assert networks._host_port_candidates("") == [0]
    assert networks._host_port_candidates("8000-8002") == [8000, 8001, 8002]


def test_port_map_elements() -> None:
    assert PortMap("tcp", "0.0.0.0", 8080, "172.17.0.2", 80).element == "8080 : 172.17.0.2 . 80"
    assert PortMap("udp", "127.0.0.1", 53, "172.17.0.3", 5353).map_name == "udp_ip"
    assert PortMap("udp", "127.0.0.1", 53, "172.17.0.3", 5353).key == "127.0.0.1 . 53"
    assert mac_for_ip("172.17.0.2") == "02:42:ac:11:00:02"


def test_hosts_text() -> None:
    text = networks.hosts_text(hostname="abc123", own_ips=["172.18.0.2"],
                               peers=[("172.18.0.2", ["web", "abc123"]), ("172.18.0.3", ["db", "alias1"])],
                               extra_hosts=["extra:10.1.2.3", "gw:host-gateway", "v6=::1"], gateway="172.18.0.1")
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert "10.1.2.3\textra" in lines and "172.18.0.1\tgw" in lines and "::1\tv6" in lines
    assert lines.index("172.18.0.2\tabc123") < lines.index("172.18.0.3\tdb alias1")
    host = networks.hosts_text(hostname="h", own_ips=[], peers=[], extra_hosts=["x:1.1.1.1"],
                               host_hosts="127.0.0.1 localhost\n192.0.2.2 vm\n")
    assert host == "127.0.0.1 localhost\n192.0.2.2 vm\n1.1.1.1\tx\n"


def test_resolv_text() -> None:
    host = "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver fd00::1\nsearch example.com\n" \
           "options edns0\n"
    assert networks.resolv_text(host) == "nameserver 10.0.0.2\nsearch example.com\noptions edns0\n"
    assert networks.resolv_text("nameserver 127.0.0.1\n") == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    assert networks.resolv_text("nameserver 127.0.0.1\n", keep_local=True) == "nameserver 127.0.0.1\n"
    out = networks.resolv_text(host, dns=["1.1.1.1"], dns_search=["corp"], dns_options=["ndots:2"])
    assert out == "nameserver 1.1.1.1\nsearch corp\noptions ndots:2\n"
    assert "search" not in networks.resolv_text(host, dns_search=["."])


def test_network_settings_from_the_database(eng: Engine) -> None:
    networks.ensure_builtin(eng)
    bridge = networks.resolve_network(eng, "bridge")
    with eng.db.transaction() as c:
        c.execute("UPDATE networks SET subnet='172.17.0.0/16', gateway='172.17.0.1' WHERE id=?", (bridge["id"],))
        c.execute("INSERT INTO endpoints (network_id, container_id, endpoint_id, mode, ip, mac) VALUES "
                  "(?,?,?,?,?,?)", (bridge["id"], "c" * 64, "e" * 64, "auto", "172.17.0.5", "02:42:ac:11:00:05"))
        c.execute("INSERT INTO port_bindings VALUES ('tcp','0.0.0.0',8080,?,'172.17.0.5',80)", ("c" * 64,))
    row = {"id": "c" * 64, "name": "web", "config": {"image_config": {"ExposedPorts": {"443/tcp": {}}},
                                                      "opts": {"network": "bridge"}}}
    s = networks.network_settings(eng, row)
    assert s["IPAddress"] == "172.17.0.5" and s["Gateway"] == "172.17.0.1" and s["IPPrefixLen"] == 16
    assert s["Ports"] == {"443/tcp": None, "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}
    assert s["Networks"]["bridge"]["MacAddress"] == "02:42:ac:11:00:05"
    assert networks.ports_of(eng, "c" * 64) == [{"proto": "tcp", "host_ip": "0.0.0.0", "host_port": 8080,
                                                 "container_port": 80}]
    none = networks.network_settings(eng, {"id": "d" * 64, "config": {"opts": {"network": "none"}}})
    assert none["IPAddress"] == "" and list(none["Networks"]) == ["none"] and none["Ports"] == {}
    json.dumps(s)
