"""``dockyard network create|ls|inspect|rm|connect|disconnect|prune``, as Docker prints them."""

from __future__ import annotations

import sys

from dockyard.cli.common import Parser, engine, parse_filters, print_json, report
from dockyard.cli.format import short_id, table
from dockyard.errors import DockyardError, InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any


def _kv(values: list[str], what: str) -> dict[str, str]:
    out = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not k:
            raise InvalidArgument(f"invalid {what}: {v!r}")
        out[k] = val if sep else ""
    return out


def create(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] NETWORK", "Create a network")
    p.add_argument("network")
    p.add_argument("-d", "--driver", default="bridge", help='Driver to manage the Network (default "bridge")')
    p.add_argument("--subnet", action="append", default=[], help="Subnet in CIDR format that represents a network "
                   "segment")
    p.add_argument("--gateway", action="append", default=[], help="IPv4 Gateway for the master subnet")
    p.add_argument("--ip-range", action="append", default=[], help="Allocate container ip from a sub-range")
    p.add_argument("--internal", action="store_true", help="Restrict external access to the network")
    p.add_argument("--label", action="append", default=[], help="Set metadata on a network")
    p.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")
    p.add_argument("--attachable", action="store_true", help="Enable manual container attachment")
    p.add_argument("--ipv6", action="store_true", help="Enable or disable IPv6 networking")
    a = p.parse_args(argv)
    from dockyard.ops import networks

    if a.ipv6:
        raise InvalidArgument("IPv6 networks are not supported (networks are IPv4 only)")
    if a.ip_range:
        raise InvalidArgument("--ip-range is not supported")
    if len(a.subnet) > 1 or len(a.gateway) > 1:
        raise InvalidArgument("only one IPv4 subnet (and gateway) per network is supported")
    with engine() as eng:
        net_id = networks.create_network(
            eng, a.network, driver=a.driver, subnet=a.subnet[0] if a.subnet else None,
            gateway=a.gateway[0] if a.gateway else None, internal=a.internal,
            labels=_kv(a.label, "label"), options=_kv(a.opt, "option"))
    print(net_id)
    return 0


def _matches(net: dict[str, Any], filters: dict[str, list[str]], in_use: set[str]) -> bool:
    from dockyard.ops.networks import BUILTIN

    for k, vals in filters.items():
        if k == "name" and not any(v in net["name"] for v in vals):
            return False
        if k == "id" and not any(net["id"].startswith(v) for v in vals):
            return False
        if k == "driver" and net["driver"] not in vals:
            return False
        if k == "scope" and "local" not in vals:
            return False
        if k == "type":
            kind = "builtin" if net["name"] in BUILTIN else "custom"
            if kind not in vals:
                return False
        if k == "label":
            labels = net.get("labels") or {}
            for v in vals:
                lk, sep, lv = v.partition("=")
                if lk not in labels or (sep and labels[lk] != lv):
                    return False
        if k == "dangling":
            want = vals[-1].lower() in ("true", "1")
            if want != (net["name"] not in BUILTIN and net["id"] not in in_use):
                return False
    return True


def ls(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "List networks")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display network IDs")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
    p.add_argument("-f", "--filter", action="append", default=[], help="Provide filter values (e.g. 'driver=bridge')")
    p.add_argument("--format", help="Format output using a Go template")
    a = p.parse_args(argv)
    from dockyard.ops import networks

    filters = parse_filters(a.filter, ("name", "id", "driver", "label", "type", "scope", "dangling"))
    with engine() as eng:
        nets = networks.list_networks(eng)
        in_use = networks.networks_in_use(eng)
    nets = sorted((n for n in nets if _matches(n, filters, in_use)), key=lambda n: n["name"])
    rows = [{"ID": n["id"] if a.no_trunc else short_id(n["id"]), "Name": n["name"], "Driver": n["driver"],
             "Scope": "local", "IPv6": "false", "Internal": str(bool(n.get("internal"))).lower(),
             "Labels": ",".join(f"{k}={v}" for k, v in (n.get("labels") or {}).items()),
             "CreatedAt": _created(n)} for n in nets]
    if a.quiet:
        out = "\n".join(r["ID"] for r in rows)
    elif a.format:
        from dockyard.cli.template import format_rows

        out = format_rows(a.format, rows, {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                                           "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
                                           "CreatedAt": "CREATED AT"})
    else:
        out = table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
                    [[r["ID"], r["Name"], r["Driver"], r["Scope"]] for r in rows])
    if out:
        print(out)
    return 0


def _created(net: dict[str, Any]) -> str:
    import time

    t = time.localtime(net["created"])
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", t)


def inspect(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] NETWORK [NETWORK...]", "Display detailed information on one or more networks")
    p.add_argument("networks", nargs="+")
    p.add_argument("-f", "--format", help="Format output using a Go template")
    p.add_argument("-v", "--verbose", action="store_true", help="Verbose output for diagnostics")
    a = p.parse_args(argv)
    from dockyard.ops import networks

    out: list[dict[str, Any]] = []
    failed = False
    with engine() as eng:
        for n in a.networks:
            try:
                out.append(networks.inspect_network(eng, networks.resolve_network(eng, n)))
            except DockyardError as e:
                report(e)
                failed = True
    if a.format:
        from dockyard.cli.template import render

        for obj in out:
            print(render(a.format, obj))
    else:
        print_json(out)
    return 1 if failed else 0


def rm(name: str, argv: list[str]) -> int:
    p = Parser(name, "NETWORK [NETWORK...]", "Remove one or more networks")
    p.add_argument("networks", nargs="+")
    p.add_argument("-f", "--force", action="store_true", help="Do not error if the network does not exist")
    a = p.parse_args(argv)
    from dockyard.ops import networks

    failed = False
    with engine() as eng:
        for n in a.networks:
            try:
                networks.remove_network(eng, n)
                print(n)
            except networks.NetworkNotFound as e:
                if not a.force:
                    report(e)
                    failed = True
            except DockyardError as e:
                report(e)
                failed = True
    return 1 if failed else 0


def connect(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] NETWORK CONTAINER", "Connect a container to a network")
    p.add_argument("network")
    p.add_argument("container")
    p.add_argument("--alias", action="append", default=[], help="Add network-scoped alias for the container")
    p.add_argument("--ip", help="IPv4 address (e.g., \"172.30.100.104\")")
    p.add_argument("--ip6", help="IPv6 address")
    p.add_argument("--link", action="append", default=[], help="Add link to another container")
    p.add_argument("--driver-opt", action="append", default=[], help="driver options for the network")
    a = p.parse_args(argv)
    from dockyard.ops import containers, networks

    if a.ip6:
        raise InvalidArgument("IPv6 addresses are not supported (networks are IPv4 only)")
    if a.link:
        raise InvalidArgument("--link is not supported: containers on a user network reach each other by name")
    with engine() as eng:
        networks.connect(eng, a.network, containers.resolve(eng, a.container), aliases=a.alias, ip=a.ip)
    return 0


def disconnect(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] NETWORK CONTAINER", "Disconnect a container from a network")
    p.add_argument("network")
    p.add_argument("container")
    p.add_argument("-f", "--force", action="store_true", help="Force the container to disconnect from a network")
    a = p.parse_args(argv)
    from dockyard.ops import containers, networks

    with engine() as eng:
        networks.disconnect(eng, a.network, containers.resolve(eng, a.container), force=a.force)
    return 0


def prune(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "Remove all unused networks")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'until=<timestamp>')")
    a = p.parse_args(argv)
    from dockyard.ops import networks

    if a.filter:
        raise InvalidArgument("network prune --filter is not supported")
    if not a.force:
        sys.stdout.write("WARNING! This will remove all custom networks not used by at least one container.\n"
                         "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    with engine() as eng:
        removed = networks.prune_networks(eng)
    if removed:
        print("Deleted Networks:")
        print("\n".join(removed))
    return 0
