"""``dockyard build`` / ``dockyard image build``: build an image from a Dockerfile."""

from __future__ import annotations

import os
import sys

from dockyard.cli.quickargs import APPEND, ONE, STORE, STORE_TRUE, add_to_parser, read
from dockyard.errors import BuildError, InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from dockyard.build.context import BuildContext
    from dockyard.cli.common import Parser
    from dockyard.cli.quickargs import Flags
    from dockyard.engine import Engine

_PROGRESS_CHOICES = ("auto", "plain", "tty", "quiet", "rawjson")
_USAGE = "[OPTIONS] PATH | URL | -"
_DESCRIPTION = "Build an image from a Dockerfile"
_METAVARS = {"context": "PATH | URL | -"}

#: build's flags (see dockyard.cli.quickargs): read without argparse for ordinary command lines (the
#: module, its gettext and building the parser cost ~3.5 ms of every build, a third of a fully cached one).
BUILD_FLAGS: Flags = (
    (("context",), ONE, None, None, None, None),
    (("-t", "--tag"), APPEND, (), None, None, 'Name and optionally a tag ("name:tag")'),
    (("-f", "--file"), STORE, None, None, None, 'Name of the Dockerfile (default: "PATH/Dockerfile")'),
    (("--build-arg",), APPEND, (), None, None, "Set build-time variables"),
    (("--target",), STORE, None, None, None, "Set the target build stage to build"),
    (("--no-cache",), STORE_TRUE, False, None, None, "Do not use cache when building the image"),
    (("--pull",), STORE_TRUE, False, None, None, "Always attempt to pull a newer version of the image"),
    (("--label",), APPEND, (), None, None, "Set metadata for an image"),
    (("--platform",), STORE, None, None, None, "Set platform if server is multi-platform capable"),
    (("-q", "--quiet"), STORE_TRUE, False, None, None, "Suppress the build output and print image ID on success"),
    (("--iidfile",), STORE, None, None, None, "Write the image ID to the file"),
    (("--network",), STORE, "default", None, None,
     'Set the networking mode for the RUN instructions during build (default "default": host)'),
    (("--progress",), STORE, "auto", None, _PROGRESS_CHOICES, "Set type of progress output (auto, plain, tty, quiet)"),
    (("--secret",), APPEND, (), None, None,
     'Secret to expose to the build (format: "id=mysecret[,src=/local/secret]")'),
    (("--rm",), STORE_TRUE, True, None, None, "Remove intermediate containers (always)"),
    (("--force-rm",), STORE_TRUE, False, None, None, "Always remove intermediate containers"),
    (("--cache-from",), APPEND, (), None, None, "Accepted for compatibility; ignored"),
)


def _parser(name: str) -> Parser:
    """The argparse parser of ``build`` (help, errors, completion, docs), from :data:`BUILD_FLAGS`."""
    from dockyard.cli.common import Parser

    p = Parser(name, _USAGE, _DESCRIPTION)
    add_to_parser(p, BUILD_FLAGS, _METAVARS)
    return p


def build(name: str, argv: list[str]) -> int:
    a = read(name, argv, _USAGE, _DESCRIPTION, BUILD_FLAGS, _METAVARS)

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
