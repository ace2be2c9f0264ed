"""``dockyard port CONTAINER [PRIVATE_PORT[/PROTO]]``: ``80/tcp -> 0.0.0.0:8080``, as Docker prints it."""

from __future__ import annotations

from dockyard.cli.common import Parser, engine
from dockyard.errors import InvalidArgument, NotFound


def port(name: str, argv: list[str]) -> int:
    p = Parser(name, "CONTAINER [PRIVATE_PORT[/PROTO]]", "List port mappings or a specific mapping for the container")
    p.add_argument("container")
    p.add_argument("port", nargs="?")
    a = p.parse_args(argv)
    from dockyard.ops import containers, networks

    want: tuple[int, str] | None = None
    if a.port:
        num, _, proto = a.port.partition("/")
        proto = (proto or "tcp").lower()
        if not num.isdigit() or not 0 < int(num) < 65536 or proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"invalid port ({a.port}): invalid containerPort: {num}")
        want = (int(num), proto)
    with engine() as eng:
        c = containers.refresh(eng, containers.resolve(eng, a.container))
        running = c["state"].get("status") in ("running", "paused")
        binds = networks.ports_of(eng, c["id"]) if running else []
    binds.sort(key=lambda b: (b["container_port"], b["proto"], b["host_ip"], b["host_port"]))
    lines = []
    for b in binds:
        if want is not None and (b["container_port"], b["proto"]) != want:
            continue
        host = f"[{b['host_ip']}]" if ":" in b["host_ip"] else b["host_ip"]
        if want is not None:
            lines.append(f"{host}:{b['host_port']}")
        else:
            lines.append(f"{b['container_port']}/{b['proto']} -> {host}:{b['host_port']}")
    if want is not None and not lines:
        raise NotFound(f"No public port '{want[0]}/{want[1]}' published for {a.container}")
    if lines:
        print("\n".join(lines))
    return 0
