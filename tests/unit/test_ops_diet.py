"""The run path's modules without re/json/ipaddress/pathlib/contextlib/signal: the hand-written checks
agree with the regular expressions and ipaddress they stand for, and nothing heavy is imported."""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dockyard import ipv4
from dockyard.errors import InvalidArgument, RuntimeFailure
from dockyard.ops import containers, networks
from dockyard.runtime import runopts, seccomp_default, spec

# --- runopts / spec: str checks == their regular expressions ----------------------------------------

ODD = ["", " ", "\n", "+", "-", "++1", "+-1", "1\n", " 1", "1 ", "\t1", "١٢", "+١", "²", "1²", "１２", "٣4",
       "0x1", "1_000", "1e3", "1.", ".5", "1.5", "inf", "nan", "-0", "007", "+007", "٠", "1\u200b"]


@pytest.mark.parametrize("s", [*ODD, "0", "12", "+3", "-45", "99999999999999999999"])
def test_go_int_matches_the_regex(s: str) -> None:
    assert runopts.is_go_int(s) == (re.fullmatch(r"[+-]?\d+", s) is not None)
    assert spec._atoi(s) == (int(s) if re.fullmatch(r"[+-]?\d+", s) else None)


@pytest.mark.parametrize("s", [*ODD, "1", "1.", ".5", "+.5", "-1.5e3", "1E+5", "1e-0", "1e", "e5", ".", "1.2.3",
                               "1e5e5", "1e5.0", "١.٥", "1.٥", "5e٣", ".e1", "0.0e0", "+", "1e+", "1.e3", "00.00"])
def test_go_float_matches_the_regex(s: str) -> None:
    want = re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", s) is not None
    assert runopts._is_go_float(s) == want


@pytest.mark.parametrize("value", ["512m", "1.5g", "2KiB", "1024", "1 m", "1e3k", "١m", ".5m", "5.m", "x", "m", ""])
def test_parse_size_is_unchanged(value: str) -> None:
    def reference(v: str) -> int | None:  # the size parser before the diet, with its regular expression
        sep = max(v.rfind(c) for c in "0123456789. ")
        if sep == -1:
            return None
        num, sfx = (v[: sep + 1], v[sep + 1:]) if v[sep] != " " else (v[:sep], v[sep + 1:])
        if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", num) or float(num) < 0:
            return None
        if not sfx:
            return int(float(num))
        low = sfx.lower()
        mul = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}.get(low[0])
        if len(low) > 3 or mul is None or (len(low) == 2 and low[1] != "b") or (len(low) == 3 and low[1:] != "ib"):
            return None
        return int(float(num) * mul)

    want = reference(value)
    if want is None:
        with pytest.raises(InvalidArgument):
            runopts.parse_size(value)
    else:
        assert runopts.parse_size(value) == want


@pytest.mark.parametrize("name", ["", "a", "ab", "a_", "_a", "-a", ".a", "a-b.c_d", "A1", "1a", "a b", "a/b", "é1",
                                  "aé", "a\n", "ab\n", "a:b", "ａb", "aa" * 40])
def test_local_name_matches_the_regex(name: str) -> None:
    assert runopts.is_local_name(name) == (re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name) is not None)


@pytest.mark.parametrize("rule", ["c 1:3 rwm", "a *:* rwm", "b 8:* r", "c 1:3 rwmr", "c 1:3 ", "c 1:3", "c  1:3 rwm",
                                  "c 1:3  rwm", "x 1:3 rwm", "c 1: rwm", "c :3 rwm", "c 1:3:4 rwm", "c ١:3 rwm",
                                  "c 1:3 rrr", "c 1:3 mw", "c 1:3\trwm", "c **:3 rwm", "c 1:3 rw\n", "C 1:3 rwm",
                                  "c 001:0 w", "", "c 1:3 rwm ", " c 1:3 rwm"])
def test_cgroup_rule_matches_the_regex(rule: str) -> None:
    m = re.fullmatch(r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})", rule)
    assert runopts.cgroup_rule_groups(rule) == (m.groups() if m else None)
    if m:
        assert runopts.parse_device_cgroup_rule(rule) == rule
        assert spec.device_cgroup_rules([rule])[0]["type"] == m.group(1)
    else:
        with pytest.raises(InvalidArgument):
            runopts.parse_device_cgroup_rule(rule)


@pytest.mark.parametrize("value", ["RTMIN", "RTMIN+3", "rtmax-2", "SIGRTMIN+30", "RTMIN+31", "RTMIN3", "RTMIN+",
                                   "RTMIN+-1", "RTMAX-30", "RTMAX-31", "RTMAX+0", "RTMIN-0", "RTMIN+١", "RTMINX",
                                   "RTM", "RTMIN +1"])
def test_realtime_signals_match_the_regex(value: str) -> None:
    name = value.upper().removeprefix("SIG")
    m = re.fullmatch(r"RTM(IN|AX)([+-]\d+)?", name)
    n = (34 if m.group(1) == "IN" else 64) + int(m.group(2) or 0) if m else None
    if n is not None and 34 <= n <= 64:
        assert runopts.parse_signal(value) == n
    else:
        with pytest.raises(InvalidArgument):
            runopts.parse_signal(value)


# --- seccomp_default ----------------------------------------------------------------------------------

@pytest.mark.parametrize("s", ["6.8.0-45-generic", "6.8", "6.", "6", "a6.8", "6.8a", "06.08", "١.٢", "6.٣", "6.8.1", "",
                               ".8", "6..8", "10.15-rc1", "6.8\n", " 6.8", "+6.8", "6.8٣"])
def test_major_minor_matches_the_regex(s: str) -> None:
    for whole, fn in ((True, re.fullmatch), (False, re.match)):
        m = fn(r"(\d+)\.(\d+)", s)
        assert seccomp_default._major_minor(s, whole=whole) == ((int(m.group(1)), int(m.group(2))) if m else None)


def test_kernel_versions() -> None:
    assert seccomp_default.kernel_version("6.8.0-45-generic") == (6, 8)
    with pytest.raises(ValueError, match="failed to parse kernel version"):
        seccomp_default.kernel_version("x")
    assert seccomp_default._parse_min_kernel("5.10") == (5, 10)
    for bad in ("0.0", "5", "5.10.1", "v5.10"):
        with pytest.raises(InvalidArgument, match="invalid kernel version"):
            seccomp_default._parse_min_kernel(bad)


def test_unknown_capability_names_are_spelt_as_re_sub_would() -> None:
    names = ["CAP_FOO-BAR", "CAP_é", "CAP_A.B", "CAP_x y", "CAP_ok_1"]
    key = seccomp_default._cache_key(names, arch="amd64", kernel=(6, 8))
    for n in names:
        assert re.sub(r"[^A-Za-z0-9_]", "_", n.removeprefix("CAP_")) in key.split("-")


def test_profile_text_is_cached_like_lru_cache() -> None:
    f = seccomp_default._Once(lambda: "text")
    assert f.cache_info().currsize == 0
    assert f() == "text" and f() == "text"
    info = f.cache_info()
    assert (info.hits, info.misses, info.maxsize, info.currsize) == (1, 1, 1, 1)
    f.cache_clear()
    assert f.cache_info().currsize == 0


def test_copy_json_is_a_deep_copy() -> None:
    data: dict[str, Any] = {"a": [1, 2.5, "x", None, True, {"b": [3]}], "t": (1, [2])}
    out = seccomp_default._copy_json(data)
    assert out == copy.deepcopy(data)
    out["a"][5]["b"].append(4)
    out["t"][1].append(3)
    assert data == {"a": [1, 2.5, "x", None, True, {"b": [3]}], "t": (1, [2])}


def test_default_seccomp_cache_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_RUN_ROOT", str(tmp_path))
    caps = list(spec.DEFAULT_CAPABILITIES)
    first = seccomp_default.default_oci_seccomp(bounding_caps=caps, arch="amd64", kernel=(6, 8))
    (cached,) = os.listdir(tmp_path / "seccomp-oci")
    assert json.loads((tmp_path / "seccomp-oci" / cached).read_text()) == first
    assert seccomp_default.default_oci_seccomp(bounding_caps=caps, arch="amd64", kernel=(6, 8)) == first
    assert first == seccomp_default.setup_seccomp(seccomp_default.default_profile(), bounding_caps=caps,
                                                  arch="amd64", kernel=(6, 8))


# --- networks: ints == ipaddress --------------------------------------------------------------------

ADDRESSES = ["1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "", "1..3.4",
             " 1.2.3.4", "1.2.3.4 ", "١.2.3.4", "0x1.2.3.4", "1.2.3.04", "1.2.3.0", "+1.2.3.4", "1.2.3.-4", "127.1",
             "1.2.3.4%eth0", "::1", "1.2.3.1000", "1.2.3.4\n", "172.17.0.1"]


@pytest.mark.parametrize("s", ADDRESSES)
def test_ipv4_int_matches_ipaddress(s: str) -> None:
    """dockyard.ipv4 serves ops.networks (leases) and runtime.netlink (veths, routes) alike."""
    try:
        want: int | None = int(ipaddress.IPv4Address(s))
    except ValueError:
        want = None
    assert ipv4.parse(s) == want
    if want is not None:
        assert ipv4.text(want) == str(ipaddress.IPv4Address(s))
        assert networks._ipv4_text(s) == s


SUBNETS = ["172.17.0.0/16", "10.0.0.0/8", "10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/024", "10.0.0.0/255.0.0.0", "10.0.0.0",
           "0.0.0.0/0", "1.2.3.4/32", "10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/8/8", "192.168.16.0/20", "010.0.0.0/8",
           "10.0.0.0/١٦", "10.0.0.0/ 8"]


@pytest.mark.parametrize("s", SUBNETS)
def test_subnets_match_ipaddress(s: str) -> None:
    try:
        net = ipaddress.IPv4Network(s)
    except ValueError:
        with pytest.raises(ValueError):
            networks._prefixlen(s)
        with pytest.raises(ValueError):
            networks._subnet_text(s)
        return
    assert networks._prefixlen(s) == net.prefixlen
    assert networks._subnet_text(s) == str(net)
    fast = networks._ipv4_net(s)
    assert fast is None or fast == (int(net.network_address), net.prefixlen)


@pytest.mark.parametrize("s", ["172.17.0.1/16", "10.1.2.3/8", "0.0.0.0/0", "1.2.3.4/32", "1.2.3.4/24"])
def test_interfaces_match_ipaddress(s: str) -> None:
    addr, prefix = networks._ipv4_cidr(s)
    iface = ipaddress.IPv4Interface(s)
    assert (addr, prefix) == (int(iface.ip), iface.network.prefixlen)
    assert ipv4.text(addr & (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF) == str(iface.network.network_address)


def test_gateway_forms_for_runtime_network() -> None:
    assert networks._gateway_interface({"subnet": "172.17.0.0/16", "gateway": "172.17.0.1"}) == "172.17.0.1/16"
    odd = networks._gateway_interface({"subnet": "172.17.0.0/255.255.0.0", "gateway": "172.17.0.1"})
    assert odd == ipaddress.IPv4Interface("172.17.0.1/16")
    with pytest.raises(ValueError):
        networks._gateway_interface({"subnet": "172.17.0.0/16", "gateway": "172.17.0.01"})
    assert networks._gateway_address("10.0.0.1") == "10.0.0.1"
    with pytest.raises(ValueError):
        networks._gateway_address("10.0.0.256")


def _alloc_all(fn: Any, subnet: str, gateway: str, state: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("DOCKYARD_NET_STATE", str(state))
    c = sqlite3.connect(":memory:")
    c.execute("CREATE TABLE endpoints (network_id TEXT, container_id TEXT, ip TEXT)")
    hosts = list(ipaddress.IPv4Network(subnet).hosts())
    c.execute("INSERT INTO endpoints VALUES ('n', 'other', ?)", (str(hosts[len(hosts) // 2]),))
    net = {"id": "n", "name": "net", "subnet": subnet, "gateway": gateway}
    owner = {"root": "/r", "cid": "me", "pid": os.getpid(), "start": networks._proc_start(os.getpid())}
    out = []
    for i in range(300):
        try:
            out.append(fn(c, net, f"c{i}", None, {**owner, "cid": f"c{i}"}))
        except RuntimeFailure as e:
            out.append(f"error: {e}")
            break
    return out


@pytest.mark.parametrize(("subnet", "gateway"), [("10.9.0.0/26", "10.9.0.1"), ("10.9.0.0/26", "10.9.0.37"),
                                                 ("10.9.0.0/30", "10.9.0.1"), ("10.9.0.0/31", "10.9.0.0"),
                                                 ("10.9.0.4/32", "10.9.0.9"), ("10.9.0.0/29", "10.9.1.1")])
def test_allocation_with_ints_matches_ipaddress(subnet: str, gateway: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _alloc_all(networks._allocate, subnet, gateway, tmp_path / "fast", monkeypatch)
    slow = _alloc_all(networks._allocate_ipaddress, subnet, gateway, tmp_path / "slow", monkeypatch)
    assert fast == slow
    assert fast[-1].startswith("error: no available IPv4 addresses")


def test_resolv_text_filters_as_ipaddress_does() -> None:
    servers = ["127.0.0.53", "10.0.0.2", "::1", "fe80::1%eth0", "1.2.3.4%eth0", "bogus", "127.1", "0127.0.0.1",
               "2001:db8::1", "127.255.0.1", "8.8.8.8"]
    kept = []
    for s in servers:
        try:
            a = ipaddress.ip_address(s.split("%")[0])
        except ValueError:
            continue
        if not (a.is_loopback or a.version == 6):
            kept.append(s)
    text = "".join(f"nameserver {s}\n" for s in servers)
    assert networks.resolv_text(text) == "".join(f"nameserver {s}\n" for s in kept)
    assert networks.resolv_text("nameserver 127.0.0.1\nnameserver ::1\n") == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"


def test_network_lock_is_reentrant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_NET_STATE", str(tmp_path))
    with networks._locked():
        assert networks._lock_depth == 1
        with networks._locked():
            assert networks._lock_depth == 2
        assert networks._lock_depth == 1
    assert networks._lock_depth == 0
    with pytest.raises(KeyError), networks._locked():
        raise KeyError
    assert networks._lock_depth == 0
    assert networks._net_state_dir() == str(tmp_path) and (tmp_path / "leases").is_dir()




# --- containers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", ["KILL", "sigterm", "SIGRTMIN", "RTMAX", "hup", "SIG_DFL", "SIG_BLOCK", "15", 9])
def test_signal_numbers_match_the_signal_module(sig: str | int) -> None:
    if isinstance(sig, int) or sig.isdigit():
        want = int(sig)
    else:
        s = sig.upper()
        want = int(getattr(signal, s if s.startswith("SIG") else "SIG" + s))
    assert containers._signal_number(sig) == want


def test_unknown_signal() -> None:
    with pytest.raises(InvalidArgument, match="invalid signal: NOPE"):
        containers._signal_number("NOPE")


def test_container_lock_takes_str_and_path(tmp_path: Path) -> None:
    for d in (str(tmp_path), tmp_path):
        with containers.container_lock(d) as fd:
            assert isinstance(fd, int) and os.fstat(fd)
        with pytest.raises(OSError):
            os.fstat(fd)
    assert (tmp_path / "lock").exists()


def test_remove_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    top = tmp_path / "c"
    d = top
    for i in range(60):
        d = d / f"d{i}"
    d.mkdir(parents=True)
    (d / "f").write_text("x")
    (top / "link").symlink_to(outside)
    (top / "d0" / "fifo").touch()
    containers._remove_tree(str(top))
    assert not top.exists() and (outside / "keep").exists()
    containers._remove_tree(str(top))  # missing is fine
    (tmp_path / "file").write_text("x")
    containers._remove_tree(str(tmp_path / "file"))
    assert not (tmp_path / "file").exists()


def test_opts_json_is_json_round_trip_with_default_str() -> None:
    opts = runopts.RunOptions(image="busybox", cmd=["true"], env=["A=é"], expose=[(80, "tcp")],
                              console_size=(24, 80), labels={"k": "v"}, mounts=[runopts.parse_volume("/a:/b:ro")])
    assert containers._opts_to_json(opts) == json.loads(json.dumps(opts.to_dict(), default=str))
    opts.labels = {"odd": {1, 2}}  # not JSON: json's default=str
    assert containers._opts_to_json(opts) == json.loads(json.dumps(opts.to_dict(), default=str))


def test_attach_socket_is_a_str_under_the_run_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_RUN_ROOT", str(tmp_path / "run"))
    path = containers.attach_socket("abc")
    assert path == str(tmp_path / "run" / "sock" / "abc.attach")
    assert (tmp_path / "run" / "sock").stat().st_mode & 0o777 == 0o700


# --- nothing heavy at import ----------------------------------------------------------------------

HEAVY = ["collections", "functools", "enum", "re", "json", "contextlib", "pathlib", "ipaddress", "urllib.parse",
         "signal", "socket", "selectors", "typing", "dataclasses", "subprocess", "shutil", "tempfile", "copy"]


def test_run_path_modules_import_nothing_heavy() -> None:
    code = ("import sys; before = set(sys.modules);"
            "import dockyard.ops.containers, dockyard.ops.networks, dockyard.runtime.spec, dockyard.runtime.runopts,"
            " dockyard.runtime.seccomp_default;"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules and m not in before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

