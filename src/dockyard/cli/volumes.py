"""``dockyard volume create|ls|inspect|rm|prune``."""

from __future__ import annotations

import sys

from dockyard.cli.common import Parser, engine, parse_filters, print_json, report
from dockyard.errors import DockyardError, InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any


def _key_values(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        k, eq, val = v.partition("=")
        if not k:
            raise InvalidArgument(f"invalid argument \"{v}\" for \"{what}\" flag: invalid key/value pair")
        out[k] = val
    return out


def create(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] [VOLUME]", "Create a volume")
    p.add_argument("volume", nargs="?")
    p.add_argument("-d", "--driver", default="local", help="Specify volume driver name")
    p.add_argument("--label", action="append", default=[], help="Set metadata for a volume")
    p.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")
    p.add_argument("--name", dest="name_flag", default=None, help="Specify volume name")
    a = p.parse_args(argv)
    if a.volume and a.name_flag and a.volume != a.name_flag:
        raise InvalidArgument('conflicting options: either specify --name or provide positional arg, not both')
    vol_name = a.volume or a.name_flag
    from dockyard.ops import volumes

    with engine() as eng:
        print(volumes.create(eng, vol_name, labels=_key_values(a.label, "--label"), driver=a.driver,
                             options=_key_values(a.opt, "--opt")))
    return 0


def ls(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "List volumes")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")
    p.add_argument("-f", "--filter", action="append", default=[], help="Provide filter values (e.g. \"dangling=true\")")
    p.add_argument("--format", help="Format output using a Go template")
    a = p.parse_args(argv)
    filters = parse_filters(a.filter)
    for k in filters:
        if k not in ("dangling", "driver", "label", "name"):
            raise InvalidArgument(f"invalid filter '{k}'")
    import fnmatch

    from dockyard.ops import volumes

    with engine() as eng:
        vols = volumes.ls(eng)
        used = volumes.in_use(eng) if "dangling" in filters else set()
    rows: list[dict[str, Any]] = []
    for v in vols:
        if "dangling" in filters:
            want = filters["dangling"][-1].lower() in ("true", "1")
            if want != (v["Name"] not in used):
                continue
        if "driver" in filters and v["Driver"] not in filters["driver"]:
            continue
        if "name" in filters and not any(f in v["Name"] or fnmatch.fnmatchcase(v["Name"], f)
                                         for f in filters["name"]):
            continue
        labels = v["Labels"] or {}
        if "label" in filters and not all(volumes.label_match(labels, f) for f in filters["label"]):
            continue
        rows.append({**v, "Labels": ",".join(f"{k}={val}" for k, val in sorted(labels.items())),
                     "Size": "N/A", "Links": "N/A"})
    if a.quiet:
        out = "\n".join(r["Name"] for r in rows)
    elif a.format:
        from dockyard.cli.template import format_rows

        out = format_rows(a.format, rows, {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT",
                                           "Labels": "LABELS", "Scope": "SCOPE", "CreatedAt": "CREATED"})
    else:
        from dockyard.cli.format import table

        out = table(["DRIVER", "VOLUME NAME"], [[r["Driver"], r["Name"]] for r in rows])
    if out:
        print(out)
    return 0


def inspect(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] VOLUME [VOLUME...]", "Display detailed information on one or more volumes")
    p.add_argument("volumes", nargs="+")
    p.add_argument("-f", "--format", help="Format output using a Go template")
    a = p.parse_args(argv)
    from dockyard.ops import volumes

    results = []
    status = 0
    with engine() as eng:
        for v in a.volumes:
            try:
                results.append(volumes.inspect(eng, v))
            except DockyardError as e:
                report(e)
                status = 1
    if a.format:
        from dockyard.cli.template import render

        for r in results:
            print(render(a.format, r))
    elif results or status == 0:
        print_json(results)
    return status


def rm(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes")
    p.add_argument("volumes", nargs="+")
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of one or more volumes")
    a = p.parse_args(argv)
    from dockyard.ops import volumes

    status = 0
    with engine() as eng:
        for v in a.volumes:
            try:
                volumes.rm(eng, v, force=a.force)
                print(v)
            except DockyardError as e:
                report(e)
                status = 1
    return status


def prune(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "Remove unused local volumes")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused volumes, not just anonymous ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. \"label=<label>\")")
    a = p.parse_args(argv)
    filters = parse_filters(a.filter)
    if not a.force and sys.stdin.isatty():
        what = "all local volumes" if a.all else "anonymous local volumes"
        sys.stdout.write(f"WARNING! This will remove {what} not used by at least one container.\n"
                         "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    from dockyard.cli.format import human_size
    from dockyard.ops import volumes

    with engine() as eng:
        removed, reclaimed = volumes.prune(eng, all_volumes=a.all, filters=filters)
    if removed:
        print("Deleted Volumes:")
        print("\n".join(removed))
        print()
    print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0
