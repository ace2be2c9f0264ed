"""Image commands: images, import, tag, rmi, history, save, load, inspect, image prune, system df."""

from __future__ import annotations

import sys
import time

from dockyard.cli import common, quickargs
from dockyard.cli.common import engine, parse_filters, print_json, report
from dockyard.cli.format import ago, human_size, parse_rfc3339, short_id, table
from dockyard.cli.quickargs import APPEND, OPT, SOME, STORE, STORE_TRUE
from dockyard.errors import DockyardError, InvalidArgument, NotFound

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.quickargs import Flags

# ``images`` and ``rmi`` read their flags with ``quickargs`` (no argparse, ``re`` or ``gettext``: ~3 ms of
# every call); the others build their argparse parser (``common.Parser``, imported when first asked for).


#: ``images``'s flags, read by argparse and by ``quickargs.parse`` alike (see quickargs.Flag).
IMAGES_FLAGS: Flags = (
    (("repository",), OPT, None, None, None, None),
    (("-a", "--all"), STORE_TRUE, False, None, None, "Show all images (default hides intermediate images)"),
    (("-q", "--quiet"), STORE_TRUE, False, None, None, "Only show image IDs"),
    (("--digests",), STORE_TRUE, False, None, None, "Show digests"),
    (("--no-trunc",), STORE_TRUE, False, None, None, "Don't truncate output"),
    (("-f", "--filter"), APPEND, (), None, None, "Filter output based on conditions provided"),
    (("--format",), STORE, None, None, None, "Format output using a Go template"),
)


def images(name: str, argv: list[str]) -> int:
    a = quickargs.read(name, argv, "[OPTIONS] [REPOSITORY[:TAG]]", "List images", IMAGES_FLAGS)
    from dockyard.image import reference

    filters = parse_filters(a.filter, ("dangling", "reference", "before", "since", "label"))
    with engine() as eng:
        recs = eng.list_images()
        ref_filter = filters.get("reference", [])
        if a.repository:
            ref_filter = [*ref_filter, a.repository]
        rows: list[dict[str, Any]] = []
        parents = {eng.db.image_parent(r.id) for r in recs} | eng.db.cache_image_ids()
        by_id = {r.id: r for r in recs}
        before = [eng.resolve_image(x) for x in filters.get("before", [])]
        since = [eng.resolve_image(x) for x in filters.get("since", [])]
        now = time.time()
        for rec in recs:
            dangling = not rec.tags
            if "dangling" in filters:
                want = filters["dangling"][-1].lower() in ("true", "1")
                if want != dangling:
                    continue
            if dangling and not a.all and rec.id in parents and "dangling" not in filters:
                continue  # intermediate build/commit parents are hidden, as in Docker
            if before and not (rec.created or "") < (by_id[before[0]].created or ""):
                continue
            if since and not (rec.created or "") > (by_id[since[0]].created or ""):
                continue
            if "label" in filters:
                labels = eng.image_config(rec.id).config.get("Labels") or {}
                if not all(_label_match(labels, f) for f in filters["label"]):
                    continue
            tags: list[Any] = [reference.parse(t) for t in rec.tags] or [None]
            digests = [reference.parse(d) for d in rec.repo_digests]
            created_ts = parse_rfc3339(rec.created) or rec.added_at
            for ref in tags:
                repo = ref.familiar_repository if ref else "<none>"
                tag = (ref.tag or "<none>") if ref else "<none>"
                if ref_filter and not any(_ref_match(ref, pat) for pat in ref_filter):
                    continue
                digest = "<none>"
                for d in digests:
                    if ref is None or d.repository == ref.repository:
                        digest = d.digest or "<none>"
                        break
                rows.append({
                    "Repository": repo, "Tag": tag, "Digest": digest,
                    "ID": rec.id if a.no_trunc else short_id(rec.id),
                    "CreatedSince": ago(created_ts, now), "CreatedAt": rec.created or "",
                    "Size": human_size(rec.size), "VirtualSize": human_size(rec.size),
                    "SharedSize": "N/A", "UniqueSize": "N/A", "Containers": "N/A",
                })
        if a.quiet:
            seen: list[str] = []
            for r in rows:
                if r["ID"] not in seen:
                    seen.append(r["ID"])
            out = "\n".join(seen)
        elif a.format:
            from dockyard.cli.template import format_rows

            out = format_rows(a.format, rows, {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID",
                                               "Digest": "DIGEST", "CreatedSince": "CREATED",
                                               "CreatedAt": "CREATED AT", "Size": "SIZE"})
        else:
            headers = ["REPOSITORY", "TAG", *(["DIGEST"] if a.digests else []), "IMAGE ID", "CREATED", "SIZE"]
            out = table(headers, [[r["Repository"], r["Tag"], *([r["Digest"]] if a.digests else []),
                                   r["ID"], r["CreatedSince"], r["Size"]] for r in rows])
        if out:
            print(out)
    return 0


def _label_match(labels: dict[str, str], f: str) -> bool:
    k, eq, v = f.partition("=")
    return k in labels and (not eq or labels[k] == v)


def _ref_match(ref: Any, pattern: str) -> bool:
    if ref is None:
        return False
    repo_pat, _, tag_pat = pattern.partition(":") if "/" not in pattern.rpartition(":")[2] else (pattern, "", "")
    import fnmatch

    names = {ref.familiar_repository, ref.repository}
    if not any(fnmatch.fnmatchcase(n, repo_pat) for n in names):
        return False
    return not tag_pat or fnmatch.fnmatchcase(ref.tag or "", tag_pat)


def import_(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
               "Import the contents from a tarball to create a filesystem image")
    p.add_argument("source")
    p.add_argument("reference", nargs="?")
    p.add_argument("-c", "--change", action="append", default=[],
                   help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", help="Set commit message for imported image")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    a = p.parse_args(argv)
    with engine() as eng:
        image_id = eng.import_image(a.source, a.reference, a.change, a.message, a.platform)
    print(image_id)
    return 0


def tag(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
               "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    p.add_argument("source")
    p.add_argument("target")
    a = p.parse_args(argv)
    with engine() as eng:
        eng.tag(a.source, a.target)
    return 0


#: ``rmi``'s.
RMI_FLAGS: Flags = (
    (("images",), SOME, None, None, None, None),
    (("-f", "--force"), STORE_TRUE, False, None, None, "Force removal of the image"),
    (("--no-prune",), STORE_TRUE, False, None, None, "Do not delete untagged parents"),
)


def rmi(name: str, argv: list[str]) -> int:
    a = quickargs.read(name, argv, "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", RMI_FLAGS)
    status = 0
    with engine() as eng:
        for img in a.images:
            try:
                for verb, what in eng.remove_image(img, force=a.force):
                    print(f"{verb}: {what}")
            except DockyardError as e:
                report(e)
                status = 1
    return status


def history(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "[OPTIONS] IMAGE", "Show the history of an image")
    p.add_argument("image")
    p.add_argument("-H", "--human", default="true", help="Print sizes and dates in human readable format")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("--format", help="Format output using a Go template")
    a = p.parse_args(argv)
    human = str(a.human).lower() not in ("false", "0")
    with engine() as eng:
        entries = eng.history(eng.resolve_image(a.image))
    now = time.time()
    rows = []
    for h in entries:
        created_by = h.get("created_by", "")
        if not a.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        ts = parse_rfc3339(h.get("created"))
        rows.append({
            "ID": h["id"] if (a.no_trunc or h["id"] == "<missing>") else short_id(h["id"]),
            "CreatedSince": ago(ts, now) if human else (h.get("created") or ""),
            "CreatedAt": h.get("created") or "",
            "CreatedBy": created_by,
            "Size": human_size(h["size"]) if human else str(h["size"]),
            "Comment": h.get("comment", ""),
        })
    if a.quiet:
        print("\n".join(r["ID"] for r in rows))
    elif a.format:
        from dockyard.cli.template import format_rows

        print(format_rows(a.format, rows, {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedBy": "CREATED BY",
                                           "Size": "SIZE", "Comment": "COMMENT"}))
    else:
        print(table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
                    [[r["ID"], r["CreatedSince"], r["CreatedBy"], r["Size"], r["Comment"]] for r in rows]))
    return 0


def inspect(name: str, argv: list[str]) -> int:
    """``dockyard inspect`` looks for containers first, then images, as Docker does."""
    return _inspect(name, argv, kinds=("container", "image"))


def image_inspect(name: str, argv: list[str]) -> int:
    return _inspect(name, argv, kinds=("image",))


def _inspect(name: str, argv: list[str], kinds: tuple[str, ...]) -> int:
    p = common.Parser(name, "[OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on Dockyard objects")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--format", help="Format output using a Go template")
    p.add_argument("--type", choices=["container", "image"], help="Return JSON for specified type")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes if the type is container")
    a = p.parse_args(argv)
    if a.type:
        kinds = (a.type,)
    results: list[Any] = []
    status = 0
    with engine() as eng:
        for n in a.names:
            found = None
            for kind in kinds:
                try:
                    if kind == "image":
                        found = eng.inspect_image(eng.resolve_image(n))
                    else:
                        inspect_container = getattr(eng, "inspect_container", None)
                        if inspect_container is None:
                            continue
                        found = inspect_container(n)
                    break
                except NotFound:
                    continue
                except InvalidArgument:
                    continue
            if found is None:
                what = "object" if len(kinds) > 1 else kinds[0]
                sys.stderr.write(f"Error: No such {what}: {n}\n")
                status = 1
                continue
            results.append(found)
    if a.format:
        from dockyard.cli.template import render

        for r in results:
            print(render(a.format, r))
    else:
        print_json(results)
    return status


def image_prune(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "[OPTIONS]", "Remove unused images")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[])
    a = p.parse_args(argv)
    if not a.force and sys.stdin.isatty():
        what = "all images without at least one container associated to them" if a.all else "all dangling images"
        sys.stdout.write(f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    with engine() as eng:
        lines, reclaimed = eng.prune_images(a.all)
    if lines:
        print("Deleted Images:")
        for verb, what in lines:
            print(f"{verb}: {what}")
        print()
    print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0


def system_df(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "[OPTIONS]", "Show Dockyard disk usage")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--format")
    p.parse_args(argv)
    with engine() as eng:
        df = eng.system_df()
    n, active, size, reclaim = df["images"]
    cn, crunning, csize, creclaim = df["containers"]
    pct = f" ({int(reclaim * 100 / size)}%)" if size else ""
    print(table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], [
        ["Images", str(n), str(active), human_size(size), human_size(reclaim) + pct],
        ["Containers", str(cn), str(crunning), human_size(csize), human_size(creclaim)],
        ["Local Volumes", "0", "0", "0B", "0B"],
        ["Build Cache", "0", "0", "0B", "0B"],
    ]))
    return 0


def save(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "[OPTIONS] IMAGE [IMAGE...]",
               "Save one or more images to a tar archive (streamed to STDOUT by default)")
    p.add_argument("images", nargs="+")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("--format", choices=["docker", "oci"], default="docker",
                   help="docker-archive (default) or an OCI image layout tar")
    a = p.parse_args(argv)
    if not a.output and sys.stdout.isatty():
        raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    from dockyard.ops import archive

    with engine() as eng:
        archive.save(eng, a.images, a.output, fmt=a.format)
    return 0


def load(name: str, argv: list[str]) -> int:
    p = common.Parser(name, "[OPTIONS]", "Load an image from a tar archive or STDIN")
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    a = p.parse_args(argv)
    from dockyard.ops import archive

    if not a.input and sys.stdin.isatty():
        raise InvalidArgument("requested load from stdin, but stdin is empty")
    with engine() as eng:
        for line in archive.load(eng, a.input or "-"):
            if not a.quiet:
                print(line)
    return 0


def _dump(obj: Any) -> str:
    import json

    return json.dumps(obj)
