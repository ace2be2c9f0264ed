"""``dockyard build`` / ``dockyard image build``: build an image from a Dockerfile."""

from __future__ import annotations

import os
import sys

from dockyard.errors import BuildError, InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from dockyard.build.context import BuildContext
    from dockyard.cli.common import Parser
    from dockyard.engine import Engine

#: The flags, as ``(flags, dest, kind, default)``: kind "append" and "value" take a value, "true" none.
_FLAGS: tuple[tuple[tuple[str, ...], str, str, object], ...] = (
    (("-t", "--tag"), "tag", "append", None),
    (("-f", "--file"), "file", "value", None),
    (("--build-arg",), "build_arg", "append", None),
    (("--target",), "target", "value", None),
    (("--no-cache",), "no_cache", "true", False),
    (("--pull",), "pull", "true", False),
    (("--label",), "label", "append", None),
    (("--platform",), "platform", "value", None),
    (("-q", "--quiet"), "quiet", "true", False),
    (("--iidfile",), "iidfile", "value", None),
    (("--network",), "network", "value", "default"),
    (("--progress",), "progress", "value", "auto"),
    (("--secret",), "secret", "append", None),
    (("--rm",), "rm", "true", True),
    (("--force-rm",), "force_rm", "true", False),
    (("--cache-from",), "cache_from", "append", None),
)
_PROGRESS_CHOICES = ("auto", "plain", "tty", "quiet", "rawjson")


def _parser(name: str) -> Parser:
    from dockyard.cli.common import Parser

    p = Parser(name, "[OPTIONS] PATH | URL | -", "Build an image from a Dockerfile")
    p.add_argument("context", metavar="PATH | URL | -")
    p.add_argument("-t", "--tag", action="append", default=[], help='Name and optionally a tag ("name:tag")')
    p.add_argument("-f", "--file", help='Name of the Dockerfile (default: "PATH/Dockerfile")')
    p.add_argument("--build-arg", action="append", default=[], help="Set build-time variables")
    p.add_argument("--target", help="Set the target build stage to build")
    p.add_argument("--no-cache", action="store_true", help="Do not use cache when building the image")
    p.add_argument("--pull", action="store_true", help="Always attempt to pull a newer version of the image")
    p.add_argument("--label", action="append", default=[], help="Set metadata for an image")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the build output and print image ID on success")
    p.add_argument("--iidfile", help="Write the image ID to the file")
    p.add_argument("--network", default="default",
                   help='Set the networking mode for the RUN instructions during build (default "default": host)')
    p.add_argument("--progress", default="auto", choices=_PROGRESS_CHOICES,
                   help="Set type of progress output (auto, plain, tty, quiet)")
    p.add_argument("--secret", action="append", default=[],
                   help='Secret to expose to the build (format: "id=mysecret[,src=/local/secret]")')
    p.add_argument("--rm", action="store_true", default=True, help="Remove intermediate containers (always)")
    p.add_argument("--force-rm", action="store_true", help="Always remove intermediate containers")
    p.add_argument("--cache-from", action="append", default=[], help="Accepted for compatibility; ignored")
    return p


class _Args:
    """What ``_parser(name).parse_args(argv)`` returns, as attributes."""

    context: str
    tag: list[str]
    file: str | None
    build_arg: list[str]
    target: str | None
    no_cache: bool
    pull: bool
    label: list[str]
    platform: str | None
    quiet: bool
    iidfile: str | None
    network: str
    progress: str
    secret: list[str]
    rm: bool
    force_rm: bool
    cache_from: list[str]


def quick_parse(argv: list[str]) -> _Args | None:
    """``argv`` read as the argparse parser (:func:`_parser`) reads it, for the plain forms only:
    ``--flag value``, ``--flag=value``, ``-t value``, lone short switches and one PATH. None for
    anything else (``--help``, an unknown or combined flag, ``--``, a value starting with ``-``
    other than ``-`` itself, a bad ``--progress``, no PATH or two), which the parser then deals
    with, errors and all.

    The argparse module, its gettext and building the parser cost ~3.5 ms of every build, a third
    of a fully cached one.
    """
    by_flag = {f: (dest, kind) for flags, dest, kind, _ in _FLAGS for f in flags}
    a = _Args()
    for _, dest, kind, default in _FLAGS:
        setattr(a, dest, [] if kind == "append" else default)
    context: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            if context is not None:
                return None
            context = arg
            continue
        flag, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        spec = by_flag.get(flag)
        if spec is None:
            return None
        dest, kind = spec
        if kind == "true":
            if eq:
                return None
            setattr(a, dest, True)
            continue
        if not eq:
            if i >= len(argv) or (argv[i].startswith("-") and argv[i] != "-"):
                return None
            value = argv[i]
            i += 1
        if kind == "append":
            getattr(a, dest).append(value)
        else:
            setattr(a, dest, value)
    if context is None or a.progress not in _PROGRESS_CHOICES:
        return None
    a.context = context
    return a


def build(name: str, argv: list[str]) -> int:
    common = sys.modules.get("dockyard.cli.common")
    a = None if common is not None and common.INTROSPECT else quick_parse(argv)
    if a is None:
        a = _parser(name).parse_args(argv)  # type: ignore[assignment]
        assert a is not None

    from dockyard.build.builder import BuildOptions, parse_build_args
    from dockyard.build.builder import build as run_build
    from dockyard.image import reference

    for t in a.tag:
        reference.parse(t)  # a bad tag is an error before anything is built
    network = a.network
    if network == "default":
        network = "host"
    if network not in ("host", "none"):
        raise InvalidArgument(f"network mode {a.network!r} not supported by the builder (default, host or none)")
    if a.platform:
        from dockyard.image.oci import Platform

        Platform.parse(a.platform)
    labels: dict[str, str] = {}
    for item in a.label:
        k, _, v = item.partition("=")
        if not k:
            raise InvalidArgument(f"invalid label {item!r}: the key is empty")
        labels[k] = v
    secrets = _parse_secrets(a.secret)
    quiet = a.quiet or a.progress == "quiet"
    if a.context == "-" and a.file == "-":
        raise InvalidArgument("invalid argument: can't use stdin for both build context and dockerfile")

    from dockyard.engine import Engine

    with Engine() as eng:
        context, dockerfile_text, dockerfile_name, dockerfile_path = _load(eng, a.context, a.file)
        try:
            from dockyard.build.context import load_ignore_patterns

            context.set_ignore(load_ignore_patterns(context.root, dockerfile_path))
            opts = BuildOptions(
                dockerfile=dockerfile_text, dockerfile_name=dockerfile_name, tags=list(a.tag),
                build_args=parse_build_args(a.build_arg), target=a.target, no_cache=a.no_cache, pull=a.pull,
                labels=labels, platform=a.platform, network=network, secrets=secrets, quiet=quiet,
            )
            result = run_build(eng, context, opts, out=sys.stdout)
        finally:
            context.close()
    if a.iidfile:
        with open(a.iidfile, "w") as f:
            f.write(result.image_id)
    if quiet:
        print(result.image_id)
    return 0


def _parse_secrets(values: list[str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    if not values:
        return out
    import csv

    for value in values:
        fields: dict[str, str] = {}
        for part in next(csv.reader([value])):
            k, eq, v = part.partition("=")
            if not eq:
                raise InvalidArgument(f"invalid secret {value!r}: expected key=value fields")
            fields[k.strip().lower()] = v
        sid = fields.get("id", "")
        src = fields.get("src") or fields.get("source") or ""
        env = fields.get("env", "")
        kind = fields.get("type", "")
        if not sid:
            sid = os.path.basename(src) if src else env
        if not sid:
            raise InvalidArgument(f"invalid secret {value!r}: an id is required")
        if kind == "env" or (env and not src):
            name = env or sid
            if name not in os.environ:
                raise InvalidArgument(f"secret {sid}: environment variable {name} is not set")
            out[sid] = ("env", os.environ[name])
        elif src:
            if not os.path.isfile(src):
                raise InvalidArgument(f"secret {sid}: open {src}: no such file or directory")
            out[sid] = ("file", os.path.abspath(src))
        elif sid in os.environ:
            out[sid] = ("env", os.environ[sid])
        else:
            raise InvalidArgument(f"invalid secret {value!r}: give src=FILE or env=VARIABLE")
    return out


def _read_text(path: str, shown: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise BuildError(f"failed to read dockerfile: open {shown}: no such file or directory")
    except IsADirectoryError:
        raise BuildError(f"failed to read dockerfile: read {shown}: is a directory")
    except OSError as e:
        raise BuildError(f"failed to read dockerfile: {shown}: {e.strerror}")
    return data.decode("utf-8", "surrogateescape")


def _load(eng: Engine, source: str, file: str | None) -> tuple[BuildContext, str, str, str | None]:
    """(context, Dockerfile text, its name for messages, its path if it is a file) for the arguments."""
    from dockyard.build.context import BuildContext

    if source == "-" or source.startswith(("http://", "https://")):
        from dockyard.build.executor import work_root

        if source == "-":
            data = sys.stdin.buffer.read()
        else:
            if source.endswith(".git") or source.startswith("git@"):
                raise InvalidArgument("git build contexts are not supported")
            data = _download(source)
        from dockyard.store.compression import detect

        if data and detect(data[:512]) != "unknown":
            import io

            context = BuildContext.from_tar(io.BytesIO(data), work_root(eng))
            rel = file or "Dockerfile"
            if file == "-":
                return context, sys.stdin.read(), "Dockerfile", None
            path = os.path.join(context.root, rel.lstrip("/"))
            if file is None and not os.path.exists(path) and os.path.exists(os.path.join(context.root, "dockerfile")):
                path = os.path.join(context.root, "dockerfile")
            try:
                text = _read_text(path, rel)
            except BaseException:
                context.close()
                raise
            return context, text, os.path.basename(rel), path
        # not an archive: the data is the Dockerfile itself, and the context is empty
        return BuildContext.empty(work_root(eng)), data.decode("utf-8", "surrogateescape"), "Dockerfile", None

    context = BuildContext.from_directory(source)
    try:
        if file == "-":
            return context, sys.stdin.buffer.read().decode("utf-8", "surrogateescape"), "Dockerfile", None
        if file:
            path = os.path.abspath(file)
            shown = file
        else:
            path = os.path.join(os.path.abspath(source), "Dockerfile")
            if not os.path.exists(path) and os.path.exists(os.path.join(os.path.abspath(source), "dockerfile")):
                path = os.path.join(os.path.abspath(source), "dockerfile")
            shown = path
        return context, _read_text(path, shown), os.path.basename(path), path
    except BaseException:
        context.close()
        raise


def _download(url: str) -> bytes:
    import httpx

    try:
        r = httpx.get(url, follow_redirects=True, timeout=60)
    except httpx.HTTPError as e:
        raise BuildError(f"unable to download the build context {url}: {e}")
    if r.status_code != 200:
        raise BuildError(f"unable to download the build context {url}: HTTP {r.status_code}")
    return r.content
