"""The Dockerfile builder: stages, ARG scoping, the layer cache, one image per step.

How a build runs:

1. :func:`plan` reads the parsed Dockerfile into stages: the global ``ARG`` s before the first FROM
   (usable only in FROM lines, or inside a stage once redeclared), each ``FROM image [AS name]``
   with its base expanded, and what each stage needs (``FROM stage``, ``COPY --from``,
   ``RUN --mount=from=``). Only the stages the target needs are built.
2. Each stage starts from its base (pulled if missing; ONBUILD triggers of the base run first),
   then every instruction is a *step*: its cache key is the sha256 of the parent image ID, the
   instruction after ARG/ENV expansion, the variables in scope and, for COPY/ADD, the content hash
   of the files it copies (path, mode, owner where kept, content -- never mtimes). A key found in
   the engine's ``build_cache`` table names the image that step made before: it becomes the new
   parent (``#N CACHED``). Otherwise the step runs (see :mod:`dockyard.build.executor`) and its
   result is stored as a new image (Docker's classic builder keeps one image per step, which is
   what makes the cache survive between runs) and recorded under the key. So a change reruns
   that step and every step after it, and nothing before.
3. The target stage's last image (plus ``--label`` labels) is the result, tagged only once the
   whole build succeeded.

History, config and output follow BuildKit: ``created_by`` like ``RUN /bin/sh -c make # buildkit``,
``comment: buildkit.dockerfile.v0``, ``empty_layer`` for steps that change no files, steps printed
as ``#5 [2/5] RUN make`` with the step's output as ``#5 0.123 ...`` and ``#5 CACHED`` /
``#5 DONE 0.4s``. Progress goes to stdout (Docker's classic builder did the same; BuildKit writes it
to stderr), so that an error is one line on stderr.
"""

from __future__ import annotations

import io
import os
import sys
import time

# Start-up time: a fully cached build is mostly imports, so none of contextlib, json, collections or
# pathlib here (with re, enum and functools behind them, ~8 ms): small classes stand in for
# contextlib's helpers, dockyard.jsonc for json, a list for deque, str paths for pathlib.
from dockyard import jsonc
from dockyard.build.dockerfile import (
    Dockerfile,
    Heredoc,
    Instruction,
    arg_definitions,
    key_value_pairs,
    parse,
    parse_flags,
    parse_from,
)
from dockyard.build.shell import ShellLexer, env_from_list, expand, go_quote, go_quote_list
from dockyard.digest import sha256_small
from dockyard.errors import BuildError, DockyardError
from dockyard.records import MutableRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TextIO

    from dockyard.build.context import BuildContext, SourceTree
    from dockyard.build.executor import Rootfs, RunMount, Scratch
    from dockyard.engine import Engine, NewLayer
    from dockyard.image.oci import Platform
    from dockyard.store.layerstore import LayerInfo

__all__ = [
    "BuildOptions",
    "BuildPlan",
    "BuildResult",
    "Builder",
    "Stage",
    "build",
    "cache_key",
    "parse_build_args",
    "plan",
    "platform_args",
    "resolve_arg",
]

CACHE_VERSION = "dockyard-build-1"
HISTORY_COMMENT = "buildkit.dockerfile.v0"
DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Build args Docker accepts without an ARG; passed to RUN, never recorded in history or the cache.
PROXY_ARGS = frozenset({
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
})
#: Automatic platform args: in the global scope (FROM lines); a stage sees them once it says ``ARG X``.
PLATFORM_ARGS = ("TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
                 "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT")

_VERTEX_INSTRUCTIONS = frozenset({"run", "copy", "add", "workdir"})


# --------------------------------------------------------------------------------------------
# Options and results
# --------------------------------------------------------------------------------------------


class BuildOptions(MutableRecord):
    dockerfile: str
    dockerfile_name: str
    tags: list[str]
    build_args: dict[str, str]
    target: str | None
    no_cache: bool
    pull: bool
    labels: dict[str, str]
    platform: str | None
    network: str
    secrets: dict[str, tuple[str, str]]  # id -> ("file", path) | ("env", value)
    quiet: bool
    _fields = ("dockerfile", "dockerfile_name", "tags", "build_args", "target", "no_cache", "pull", "labels",
               "platform", "network", "secrets", "quiet")

    def __init__(self, dockerfile: str, dockerfile_name: str = "Dockerfile", tags: list[str] | None = None,
                 build_args: dict[str, str] | None = None, target: str | None = None, no_cache: bool = False,
                 pull: bool = False, labels: dict[str, str] | None = None, platform: str | None = None,
                 network: str = "host", secrets: dict[str, tuple[str, str]] | None = None,
                 quiet: bool = False) -> None:
        self.dockerfile = dockerfile
        self.dockerfile_name = dockerfile_name
        self.tags = [] if tags is None else tags
        self.build_args = {} if build_args is None else build_args
        self.target = target
        self.no_cache = no_cache
        self.pull = pull
        self.labels = {} if labels is None else labels
        self.platform = platform
        self.network = network
        self.secrets = {} if secrets is None else secrets
        self.quiet = quiet


class BuildResult(MutableRecord):
    image_id: str
    tags: list[str]
    warnings: list[str]
    _fields = ("image_id", "tags", "warnings")

    def __init__(self, image_id: str, tags: list[str], warnings: list[str] | None = None) -> None:
        self.image_id = image_id
        self.tags = tags
        self.warnings = [] if warnings is None else warnings


def parse_build_args(values: list[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``--build-arg K=V`` values; a bare ``K`` takes the value from the environment (or is dropped)."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for v in values:
        key, eq, val = v.partition("=")
        if not key:
            raise BuildError(f"invalid build-arg {v!r}: the name is empty")
        if eq:
            out[key] = val
        elif key in env:
            out[key] = env[key]
    return out


def platform_args(target: Platform, build: Platform) -> dict[str, str]:
    """TARGETPLATFORM, TARGETOS... and BUILDPLATFORM... as BuildKit defines them."""
    return {
        "TARGETPLATFORM": str(target), "TARGETOS": target.os, "TARGETARCH": target.architecture,
        "TARGETVARIANT": target.variant or "",
        "BUILDPLATFORM": str(build), "BUILDOS": build.os, "BUILDARCH": build.architecture,
        "BUILDVARIANT": build.variant or "",
    }


# --------------------------------------------------------------------------------------------
# Plan: stages, global ARGs, dependencies
# --------------------------------------------------------------------------------------------


class Stage(MutableRecord):
    index: int
    name: str | None
    base: str
    platform: str | None
    from_instr: Instruction
    instructions: list[Instruction]
    base_stage: int | None
    deps: list[int]
    images: list[str]  # external images named by --from / from=
    _fields = ("index", "name", "base", "platform", "from_instr", "instructions", "base_stage", "deps", "images")

    def __init__(self, index: int, name: str | None, base: str, platform: str | None, from_instr: Instruction,
                 instructions: list[Instruction] | None = None, base_stage: int | None = None,
                 deps: list[int] | None = None, images: list[str] | None = None) -> None:
        self.index = index
        self.name = name
        self.base = base
        self.platform = platform
        self.from_instr = from_instr
        self.instructions = [] if instructions is None else instructions
        self.base_stage = base_stage
        self.deps = [] if deps is None else deps
        self.images = [] if images is None else images

    @property
    def label(self) -> str:
        return self.name or f"stage-{self.index}"


class BuildPlan(MutableRecord):
    stages: list[Stage]
    meta_args: dict[str, str]  # global ARG values (and the platform args), as FROM lines see them
    meta_declared: list[str]  # names of the global ARGs, in order
    target: int
    order: list[int]  # the stages to build, dependencies first
    _fields = ("stages", "meta_args", "meta_declared", "target", "order")

    def __init__(self, stages: list[Stage], meta_args: dict[str, str], meta_declared: list[str], target: int,
                 order: list[int]) -> None:
        self.stages = stages
        self.meta_args = meta_args
        self.meta_declared = meta_declared
        self.target = target
        self.order = order

    def stage_named(self, name: str) -> Stage | None:
        low = name.lower()
        for s in self.stages:
            if s.name == low:
                return s
        return None

    def resolve_ref(self, ref: str, current: int) -> int | None:
        """A ``--from`` value: the stage it names (by name or index), or None for an image."""
        if ref.isdigit():
            n = int(ref)
            if n >= current:
                raise BuildError(f"invalid from flag value {ref}: refers to current or future build stage")
            return n
        for s in self.stages[:current]:
            if s.name == ref.lower():
                return s.index
        return None


def _mount_from(values: list[str]) -> list[str]:
    out = []
    for v in values:
        for part in v.split(","):
            key, _, val = part.strip().partition("=")
            if key.lower() == "from" and val:
                out.append(val)
    return out


def plan(dockerfile: Dockerfile, *, build_args: Mapping[str, str] | None = None, target: str | None = None,
         platform: Platform | None = None) -> BuildPlan:
    """Split ``dockerfile`` into stages and work out which are needed for ``target``."""
    build_args = dict(build_args or {})
    host = _host_platform()
    meta: dict[str, str] = platform_args(platform or host, host)
    declared: list[str] = []
    stages: list[Stage] = []
    escape = dockerfile.escape

    def x(word: str, env: Mapping[str, str], instr: Instruction) -> str:
        try:
            return expand(word, env, escape=escape)
        except BuildError as e:
            raise instr.error(str(e)) from None

    for instr in dockerfile.instructions:
        if instr.cmd == "from":
            spec = parse_from(instr)
            base = x(spec.image, meta, instr)
            if not base:
                raise instr.error(f"base name ({spec.image}) should not be blank")
            plat = x(spec.platform, meta, instr) if spec.platform else None
            if spec.stage_name and any(s.name == spec.stage_name for s in stages):
                raise instr.error(f"duplicate stage name {go_quote(spec.stage_name)}")
            st = Stage(len(stages), spec.stage_name, base, plat, instr)
            for prev in stages:
                if prev.name == base.lower():
                    st.base_stage = prev.index
                    st.deps.append(prev.index)
            stages.append(st)
            continue
        if not stages:
            if instr.cmd != "arg":
                raise instr.error("no build stage in current context")
            for name, default in arg_definitions(instr):
                declared.append(name)
                if name in build_args:
                    meta[name] = build_args[name]
                elif default is not None:
                    meta[name] = x(default, meta, instr)
                elif name not in PLATFORM_ARGS:
                    meta.pop(name, None)
            continue
        stages[-1].instructions.append(instr)

    if not stages:
        raise BuildError(f"{dockerfile.filename}: no build stage: a Dockerfile needs a FROM instruction")

    # Dependencies: COPY --from and RUN --mount from=, expanded with what is known statically.
    for st in stages:
        env = dict(meta)
        for instr in st.instructions:
            node = instr
            if instr.cmd == "arg":
                for name, default in arg_definitions(instr):
                    if name in build_args:
                        env[name] = build_args[name]
                    elif default is not None:
                        try:
                            env[name] = expand(default, env, escape=escape)
                        except BuildError:
                            pass
                continue
            refs: list[str] = []
            for flag in node.flags:
                if flag.startswith("--from=") and node.cmd in ("copy", "add"):
                    refs.append(flag[len("--from="):])
                elif flag.startswith("--mount=") and node.cmd == "run":
                    refs.extend(_mount_from([flag[len("--mount="):]]))
            for ref in refs:
                try:
                    ref = expand(ref, env, escape=escape)
                except BuildError:
                    continue
                try:
                    idx = BuildPlan(stages, meta, declared, 0, []).resolve_ref(ref, st.index)
                except BuildError as e:
                    raise instr.error(str(e)) from None
                if idx is None:
                    if ref not in st.images:
                        st.images.append(ref)
                elif idx not in st.deps:
                    st.deps.append(idx)

    if target:
        found = [s for s in stages if s.name == target.lower()]
        if not found:
            raise BuildError(f'target stage "{target}" could not be found')
        target_idx = found[0].index
    else:
        target_idx = len(stages) - 1

    needed: set[int] = set()
    stack = [target_idx]
    while stack:
        i = stack.pop()
        if i in needed:
            continue
        needed.add(i)
        stack.extend(stages[i].deps)
    return BuildPlan(stages, meta, declared, target_idx, sorted(needed))


# --------------------------------------------------------------------------------------------
# Progress output (BuildKit's plain progress)
# --------------------------------------------------------------------------------------------


class Progress:
    def __init__(self, out: TextIO, *, quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet
        self.counter = 0

    def write(self, text: str) -> None:
        if self.quiet:
            return
        self.out.write(text)
        self.out.flush()

    def vertex(self, name: str) -> Vertex:
        self.counter += 1
        return Vertex(self, self.counter, name)


class Vertex:
    def __init__(self, progress: Progress, number: int, name: str) -> None:
        self.p = progress
        self.n = number
        self.name = name
        self.t0 = time.monotonic()
        self._partial = b""
        self.tail: list[str] = []  # the last 200 lines of output, for the failure summary
        self.p.write(f"#{self.n} {name}\n")

    def status(self, text: str) -> None:
        """A status line (``#4 writing image sha256:... done``), without the elapsed time."""
        self.p.write(f"#{self.n} {text}\n")

    def log(self, text: str) -> None:
        tail = self.tail
        tail.append(text)
        if len(tail) > 200:  # what deque(maxlen=200) did, without importing collections
            del tail[0]
        self.p.write(f"#{self.n} {time.monotonic() - self.t0:.3f} {text}\n")

    def output(self, data: bytes) -> None:
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            self.log(line.rstrip(b"\r").decode("utf-8", "replace"))

    def flush(self) -> None:
        if self._partial:
            self.log(self._partial.decode("utf-8", "replace"))
            self._partial = b""

    def cached(self) -> None:
        self.p.write(f"#{self.n} CACHED\n\n")

    def done(self) -> None:
        self.flush()
        self.p.write(f"#{self.n} DONE {time.monotonic() - self.t0:.1f}s\n\n")

    def error(self, message: str) -> None:
        self.flush()
        self.p.write(f"#{self.n} ERROR: {message}\n")


# --------------------------------------------------------------------------------------------
# Per-stage state
# --------------------------------------------------------------------------------------------


class _StageState:
    def __init__(self, stage: Stage, image_id: str | None, data: dict[str, Any], layers: list[NewLayer],
                 vars: dict[str, str], *, platform: str = "") -> None:
        self.stage = stage
        self.image_id = image_id
        self.data = data
        self.layers = layers
        self.vars = vars  # what $VAR sees, and RUN's environment: image Env + ARGs + ENV, in order
        self.args: list[tuple[str, str | None]] = []  # this stage's ARGs
        self.cmd_set = False
        self.step = 1
        self.total = 1
        self.platform = platform

    @property
    def config(self) -> dict[str, Any]:
        cfg = self.data.get("config")
        if not isinstance(cfg, dict):
            cfg = {}
            self.data["config"] = cfg
        return cfg


def cache_key(parent: str, *parts: Any) -> str:
    """The build cache key of a step: sha256 over the parent image and what the step depends on."""
    material = [CACHE_VERSION, parent, *parts]
    try:
        blob = jsonc.dumps(material, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):  # something JSON has no form for: json with str() for it, as ever
        import json

        blob = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + sha256_small(blob.encode("utf-8", "surrogateescape"))


def _deepcopy(value: Any) -> Any:
    """``copy.deepcopy`` for JSON-shaped values (an image config), without importing ``copy``."""
    t = type(value)
    if t is dict:
        return {k: _deepcopy(v) for k, v in value.items()}
    if t is list:
        return [_deepcopy(v) for v in value]
    if t is str or t is int or t is bool or t is float or value is None:
        return value
    import copy

    return copy.deepcopy(value)


def resolve_arg(name: str, default: str | None, build_args: Mapping[str, str],
                meta_args: Mapping[str, str]) -> str | None:
    """The value an ``ARG name[=default]`` inside a stage gets (``default`` already expanded).

    A ``--build-arg`` wins, then the instruction's default, then the value of a global ARG (one
    declared before the first FROM, or an automatic platform arg) of the same name; else unset.
    """
    if name in build_args:
        return build_args[name]
    if default is not None:
        return default
    return meta_args.get(name)


def _run_command_string(argv: list[str], args: list[tuple[str, str | None]], env: Mapping[str, str]) -> str:
    """BuildKit's ``runCommandString``: ``|2 A=1 B=2 /bin/sh -c make``."""
    entries: list[str] = []
    index: dict[str, int] = {}
    for key, value in args:
        v = env.get(key, value or "")
        if key in index:
            entries[index[key]] = f"{key}={v}"
        else:
            index[key] = len(entries)
            entries.append(f"{key}={v}")
    if entries:
        entries.insert(0, f"|{len(entries)}")
    return " ".join([*entries, *argv])


def _go_duration(ns: int) -> str:
    """Go's ``time.Duration.String`` (``1m30s``, ``500ms``, ``0s``)."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                text = f"{ns / size:.9f}".rstrip("0").rstrip(".")
                return ("-" if neg else "") + text + unit
    h, rem = divmod(ns, 3_600_000_000_000)
    m, rem = divmod(rem, 60_000_000_000)
    s = f"{rem / 1e9:.9f}".rstrip("0").rstrip(".")
    out = (f"{h}h" if h else "") + (f"{m}m" if h or m else "") + f"{s}s"
    return ("-" if neg else "") + out


def _healthcheck_history(hc: Mapping[str, Any]) -> str:
    retries = int(hc.get("Retries") or 0)
    durations = " ".join(go_quote(_go_duration(int(hc.get(k) or 0)))
                         for k in ("Interval", "Timeout", "StartPeriod", "StartInterval"))
    return f"HEALTHCHECK &{{{go_quote_list(hc.get('Test') or [])} {durations} '\\x{retries:02x}'}}"


def _canonical(instr: Instruction) -> list[Any]:
    return [instr.cmd, instr.flags, instr.args, instr.json_form,
            [[h.name, h.content, h.expand, h.chomp] for h in instr.heredocs]]


def _may_have_stale_work_dirs(eng: Engine) -> bool:
    """Whether ``<root>/build`` holds work directories (``tmp-*``) that :func:`executor.cleanup_stale`
    would look at; when it holds none, the executor module need not be loaded at all."""
    try:
        names = os.listdir(os.path.join(eng.root_dir, "build"))
    except OSError:
        return False
    return any(n.startswith("tmp-") for n in names)


def _host_platform() -> Platform:
    """:func:`dockyard.image.oci.host_platform`, with ``os.uname()`` in place of ``platform.machine()``
    (the same value on Linux; the ``platform`` module costs milliseconds to import)."""
    from dockyard.image.oci import Platform, normalize_arch

    arch = normalize_arch(os.uname().machine)
    variant = "v8" if arch == "arm64" else ("v7" if arch == "arm" else None)
    return Platform("linux", arch, variant)


def _clean_abs(path: str) -> str:
    from dockyard.build.context import clean_path

    return clean_path("/" + path)


# --------------------------------------------------------------------------------------------
# The builder
# --------------------------------------------------------------------------------------------


class Builder:
    def __init__(self, eng: Engine, context: BuildContext, opts: BuildOptions,
                 out: TextIO | None = None) -> None:
        from dockyard.image.oci import Platform

        self.eng = eng
        self.context = context
        self.opts = opts
        self.progress = Progress(out if out is not None else sys.stdout, quiet=opts.quiet)
        self.host = _host_platform()
        self.target_platform = Platform.parse(opts.platform) if opts.platform else self.host
        self.dockerfile: Dockerfile | None = None
        self.plan: BuildPlan | None = None
        self.results: dict[int, _StageState] = {}
        self._building: set[int] = set()
        self.consumed_args: set[str] = set()
        self.warnings: list[str] = []
        self._layer_infos: dict[str, LayerInfo] = {}
        self._chains: dict[str, list[LayerInfo]] = {}

    # ---- entry point ---------------------------------------------------------------------
    def build(self) -> BuildResult:
        from dockyard.build.dockerfile import lint
        from dockyard.image import reference

        opts = self.opts
        tags: list[str] = []
        for t in opts.tags:
            ref = reference.parse(t)
            if ref.digest:
                raise BuildError(f"invalid tag {t!r}: a tag cannot contain a digest")
            tags.append(str(ref))
        v = self.progress.vertex(f"[internal] load build definition from {opts.dockerfile_name}")
        v.status(f"transferring dockerfile: {len(opts.dockerfile.encode())}B done")
        try:
            self.dockerfile = df = parse(opts.dockerfile, filename=opts.dockerfile_name)
        except BuildError as e:
            v.error(str(e))
            raise
        v.done()
        self.warnings = lint(df)
        self.plan = plan(df, build_args=opts.build_args, target=opts.target, platform=self.target_platform)
        self.consumed_args.update(self.plan.meta_declared)
        with self.eng.layers.using():
            self.eng.cleanup()
            if _may_have_stale_work_dirs(self.eng):
                from dockyard.build import executor

                executor.cleanup_stale(self.eng)
            for idx in self.plan.order:
                self._stage_result(idx)
            final = self.results[self.plan.target]
            image_id = self._finish(final)
            unused = sorted(k for k in opts.build_args
                            if k not in self.consumed_args and k not in PROXY_ARGS)
            if unused:
                self.warnings.append(
                    f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
            v = self.progress.vertex("exporting to image")
            v.status("exporting layers done")
            v.status(f"writing image {image_id} done")
            for t in tags:
                if self.eng.db.tag_target(t) != image_id:  # a rebuild that changed nothing writes nothing
                    self.eng.db.set_tag(t, image_id)
                v.status(f"naming to {t} done")
            v.done()
        for w in self.warnings:
            self.progress.write(f"WARNING: {w}\n")
        return BuildResult(image_id, tags, list(self.warnings))

    def _finish(self, st: _StageState) -> str:
        """The final image: the target stage's, with ``--label`` labels, as an image of its own."""
        if st.image_id is None or self.opts.labels:
            data = _deepcopy(st.data)
            cfg = data.setdefault("config", {})
            if self.opts.labels:
                cfg["Labels"] = {**(cfg.get("Labels") or {}), **self.opts.labels}
            key = self._key(st, "labels", sorted(self.opts.labels.items()))
            if self._adopt(st, key):
                assert st.image_id is not None
                return st.image_id
            from dockyard.engine import now_rfc3339

            data["created"] = now_rfc3339()
            data["rootfs"] = {"type": "layers", "diff_ids": [x.diff_id for x in st.layers]}
            image_id = self.eng.create_image(data, st.layers, parent=st.image_id)
            self.eng.db.cache_put(key, image_id)
            return image_id
        return st.image_id

    # ---- stages --------------------------------------------------------------------------
    def _stage_result(self, idx: int) -> _StageState:
        if idx in self.results:
            return self.results[idx]
        assert self.plan is not None
        stage = self.plan.stages[idx]
        if idx in self._building:
            raise stage.from_instr.error(f"circular dependency detected on stage: {stage.label}")
        self._building.add(idx)
        try:
            st = self._run_stage(stage)
        finally:
            self._building.discard(idx)
        self.results[idx] = st
        return st

    def _multi(self) -> bool:
        return self.plan is not None and len(self.plan.stages) > 1

    def _step_name(self, st: _StageState, text: str) -> str:
        prefix = f"{st.stage.label} " if self._multi() else ""
        return f"[{prefix}{st.step}/{st.total}] {text}"

    def _display(self, instr: Instruction, st: _StageState) -> str:
        """An instruction as BuildKit names its step: keyword upper-cased, variables expanded."""
        text = instr.original
        keyword, _, rest = text.partition(" ")
        try:
            rest = expand(rest, st.vars, escape=self._escape())
        except BuildError:
            pass
        return f"{keyword.upper()} {rest}".rstrip()

    def _escape(self) -> str:
        return self.dockerfile.escape if self.dockerfile is not None else "\\"

    def _run_stage(self, stage: Stage) -> _StageState:
        st = self._base_state(stage)
        triggers: list[Instruction] = []
        for text in st.config.get("OnBuild") or []:
            try:
                parsed = parse(text, filename=stage.from_instr.filename)
            except BuildError as e:
                raise stage.from_instr.error(f"invalid ONBUILD trigger {text!r}: {e}") from None
            for t in parsed.instructions:
                t.start_line = t.end_line = stage.from_instr.start_line
                triggers.append(t)
        if st.config.get("OnBuild"):
            st.config["OnBuild"] = None
        instructions = [*triggers, *stage.instructions]
        st.total += sum(1 for i in triggers if i.cmd in _VERTEX_INSTRUCTIONS)
        for instr in instructions:
            self._dispatch(st, instr)
        return st

    def _base_state(self, stage: Stage) -> _StageState:
        st = _StageState(stage, None, {}, [], {}, platform=str(self.target_platform))
        st.total = 1 + sum(1 for i in stage.instructions if i.cmd in _VERTEX_INSTRUCTIONS)
        t0 = time.monotonic()
        if stage.base_stage is not None:
            name = self._step_name(st, f"FROM {self.plan.stages[stage.base_stage].label}")  # type: ignore[union-attr]
            parent = self._stage_result(stage.base_stage)
            v = self.progress.vertex(name)
            st.image_id = parent.image_id
            st.data = _deepcopy(parent.data)
            st.layers = list(parent.layers)
        elif stage.base.lower() == "scratch":
            v = self.progress.vertex(self._step_name(st, "FROM scratch"))
            plat = self.target_platform
            st.data = {"architecture": plat.architecture, "os": plat.os,
                       "config": {"Env": [f"PATH={DEFAULT_PATH}"]},
                       "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            if plat.variant:
                st.data["variant"] = plat.variant
        else:
            from dockyard.image import reference

            try:
                shown = str(reference.parse(stage.base))
            except DockyardError:
                shown = stage.base
            v = self.progress.vertex(self._step_name(st, f"FROM {shown}"))
            try:
                image_id = self._image(stage.base, stage.platform)
            except DockyardError as e:
                v.error(str(e))
                raise stage.from_instr.error(str(e)) from None
            st.image_id = image_id
            rec = self.eng.image_record(image_id)
            st.data = self._image_data(rec.config_digest)
            st.layers = self._layers_of(image_id)
        del t0
        v.done()
        st.vars = env_from_list(st.config.get("Env") or [])
        return st

    def _image_data(self, config_digest: str) -> dict[str, Any]:
        """The parts of an image's config (a fresh copy, the stage's own) that a step builds on."""
        from dockyard.image.oci import ImageConfig

        data = ImageConfig.parse(self.eng.content.read(config_digest)).data
        keep = ("created", "author", "architecture", "os", "os.version", "os.features", "variant", "config",
                "rootfs", "history")
        out = {k: data[k] for k in keep if k in data}
        out.setdefault("config", {})
        out.setdefault("history", [])
        return out

    def _layer_info(self, chain_id: str) -> LayerInfo | None:
        """``eng.layers.get(chain_id)``, asked once per build for a layer that is there: the build
        holds the layer store's shared lock, so no layer it has seen can be removed under it (one
        that is missing may yet be made by a step, so that answer is not kept)."""
        info = self._layer_infos.get(chain_id)
        if info is None:
            info = self.eng.layers.get(chain_id)
            if info is not None:
                self._layer_infos[chain_id] = info
        return info

    def _layers_of(self, image_id: str) -> list[NewLayer]:
        """The layers of ``image_id``; BuildError unless every one is known."""
        from dockyard.engine import NewLayer

        out = []
        for row in self.eng.db.image_layers(image_id):
            chain_id = row["chain_id"]
            info = self._layer_info(chain_id)
            if info is not None:
                diff_id = info.diff_id
            else:
                layer = self.eng.db.layer(chain_id)
                if layer is None:
                    raise BuildError(f"image {image_id[:19]}: layer {chain_id} is missing from the store")
                diff_id = layer["diff_id"]
            out.append(NewLayer(row["blob_digest"], row["blob_media_type"], row["blob_size"], diff_id, chain_id))
        return out

    def _chain(self, image_id: str) -> list[LayerInfo]:
        """:meth:`Engine.image_chain` (the unpacked layers, bottom first), from what this build knows."""
        if image_id not in self._chains:
            rec = self.eng.image_record(image_id)
            chain = []
            for chain_id in rec.chain:
                info = self._layer_info(chain_id)
                if info is None:
                    from dockyard.errors import ImageNotFound

                    raise ImageNotFound(f"image {image_id[:19]}: layer {chain_id} is missing from the store")
                chain.append(info)
            self._chains[image_id] = chain
        return list(self._chains[image_id])

    def _image(self, name: str, platform: str | None = None) -> str:
        """A base image by name: local, else pulled (always pulled with ``--pull``)."""
        from dockyard.errors import ImageNotFound

        sink = io.StringIO()
        if self.opts.pull and name.lower() != "scratch":
            from dockyard.ops.pull import pull

            try:
                return pull(self.eng, name, platform=platform, quiet=True, out=sink)
            except DockyardError as e:
                # Docker fails here; an offline machine still has its local copy, so use it and say so.
                try:
                    image_id = self.eng.resolve_image(name)
                except ImageNotFound:
                    raise e from None
                self.warnings.append(f"--pull: could not pull {name} ({e}); using the local image")
                return image_id
        try:
            return self.eng.resolve_image(name)
        except ImageNotFound:
            pass
        from dockyard.ops.pull import ensure_image

        return ensure_image(self.eng, name, out=sink, platform=platform)

    # ---- cache ---------------------------------------------------------------------------
    def _key(self, st: _StageState, *parts: Any) -> str:
        return cache_key(st.image_id or f"scratch:{st.platform}", *parts)

    def _scope_vars(self, st: _StageState) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in st.vars.items() if k not in PROXY_ARGS)

    def _adopt(self, st: _StageState, key: str) -> bool:
        """On a cache hit, make the cached image the stage's current image."""
        if self.opts.no_cache:
            return False
        hit = self.eng.db.cache_image(key)  # the key, its image and the image's layers: one query
        if hit is None or not hit[0]:
            return False
        image_id, config_digest, rows = hit
        from dockyard.engine import NewLayer

        layers = []
        for chain_id, blob_digest, blob_media_type, blob_size in rows:
            info = self._layer_info(chain_id)
            if info is None:  # not unpacked (what Engine.image_chain checks): no hit
                return False
            layers.append(NewLayer(blob_digest, blob_media_type, blob_size, info.diff_id, chain_id))
        try:
            data = self._image_data(config_digest)
        except DockyardError:
            return False
        st.image_id, st.data, st.layers = image_id, data, layers
        return True

    def _commit(self, st: _StageState, created_by: str, key: str, layer: NewLayer | None,
                config: dict[str, Any] | None = None, author: str | None = None) -> None:
        from dockyard.engine import now_rfc3339

        data = _deepcopy(st.data)
        if config is not None:
            data["config"] = config
        if author is not None:
            data["author"] = author
        now = now_rfc3339()
        data["created"] = now
        entry: dict[str, Any] = {"created": now, "created_by": created_by, "comment": HISTORY_COMMENT}
        if layer is None:
            entry["empty_layer"] = True
        data["history"] = [*(data.get("history") or []), entry]
        layers = [*st.layers, *([layer] if layer is not None else [])]
        data["rootfs"] = {"type": "layers", "diff_ids": [x.diff_id for x in layers]}
        image_id = self.eng.create_image(data, layers, parent=st.image_id)
        self.eng.db.cache_put(key, image_id)
        st.image_id, st.data, st.layers = image_id, data, layers

    # ---- dispatch ------------------------------------------------------------------------
    def _x(self, st: _StageState, word: str, instr: Instruction) -> str:
        try:
            return expand(word, st.vars, escape=self._escape())
        except BuildError as e:
            raise instr.error(str(e)) from None

    def _dispatch(self, st: _StageState, instr: Instruction) -> None:
        handler = {
            "run": self._run, "copy": self._copy, "add": self._copy, "workdir": self._workdir,
            "arg": self._arg, "env": self._env,
        }.get(instr.cmd, self._config_step)
        vertex = None
        if instr.cmd in _VERTEX_INSTRUCTIONS:
            st.step += 1
            vertex = self.progress.vertex(self._step_name(st, self._display(instr, st)))
        try:
            handler(st, instr, vertex)
        except BuildError as e:
            msg = str(e)
            loc = instr.location() + ":"
            if not msg.startswith(loc):
                msg = f"{loc} {msg}"
            if vertex is not None:
                vertex.error(msg.removeprefix(loc).strip())
            self._report_failure(instr, st, vertex)
            raise BuildError(msg) from None
        except DockyardError as e:
            msg = f"{instr.location()}: {e}"
            if vertex is not None:
                vertex.error(str(e))
            self._report_failure(instr, st, vertex)
            raise BuildError(msg) from None

    def _report_failure(self, instr: Instruction, st: _StageState, vertex: Vertex | None) -> None:
        """Docker's failure summary: the step's last output lines and the Dockerfile around it."""
        lines: list[str] = []
        if vertex is not None:
            lines.append("------")
            lines.append(f" > {vertex.name}:")
            lines.extend(list(vertex.tail)[-10:])
            lines.append("------")
        df = self.dockerfile
        if df is not None and df.source_lines and instr.start_line >= 1:
            lines.append(f"{instr.filename}:{instr.start_line}")
            lines.append("-" * 20)
            first = max(1, instr.start_line - 2)
            last = min(len(df.source_lines), max(instr.end_line, instr.start_line) + 2)
            for n in range(first, last + 1):
                mark = ">>>" if instr.start_line <= n <= instr.end_line else "   "
                lines.append(f" {n:>3} | {mark} {df.source_lines[n - 1]}".rstrip())
            lines.append("-" * 20)
        text = "\n".join(lines) + "\n"
        if self.progress.quiet:
            if vertex is not None and vertex.tail:
                sys.stderr.write("\n".join(list(vertex.tail)[-10:]) + "\n")
        else:
            self.progress.write(text)

    # ---- config-only instructions --------------------------------------------------------
    def _arg(self, st: _StageState, instr: Instruction, vertex: Vertex | None) -> None:
        assert self.plan is not None
        commit: list[str] = []
        for name, default in arg_definitions(instr):
            if default is not None and name not in self.opts.build_args:
                default = self._x(st, default, instr)
            value = resolve_arg(name, default, self.opts.build_args, self.plan.meta_args)
            self.consumed_args.add(name)
            st.args.append((name, value))
            if value is not None:
                st.vars[name] = value
                commit.append(f"{name}={value}")
            else:
                commit.append(name)
        created_by = "ARG " + " ".join(commit)
        key = self._key(st, "arg", created_by)
        if not self._adopt(st, key):
            self._commit(st, created_by, key, None)

    def _env(self, st: _StageState, instr: Instruction, vertex: Vertex | None) -> None:
        cfg = _deepcopy(st.config)
        env = env_from_list(cfg.get("Env") or [])
        scope = {**st.vars, **env}
        pairs = []
        for k, v in key_value_pairs(instr):
            key = self._x_env(k, scope, instr)
            value = self._x_env(v, scope, instr)
            if not key:
                raise instr.error("ENV names can not be blank")
            pairs.append((key, value))
            scope[key] = value
            entries = [e for e in (cfg.get("Env") or []) if e.partition("=")[0] != key]
            entries.append(f"{key}={value}")
            cfg["Env"] = entries
        for key, value in pairs:
            st.vars[key] = value
        created_by = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
        key = self._key(st, "env", created_by)
        if not self._adopt(st, key):
            self._commit(st, created_by, key, None, config=cfg)

    def _x_env(self, word: str, env: Mapping[str, str], instr: Instruction) -> str:
        try:
            return expand(word, env, escape=self._escape())
        except BuildError as e:
            raise instr.error(str(e)) from None

    def _config_step(self, st: _StageState, instr: Instruction, vertex: Vertex | None) -> None:
        cmd = instr.cmd
        if cmd == "maintainer":
            if not instr.args:
                raise instr.error("MAINTAINER requires exactly one argument")
        else:
            if cmd == "onbuild" and instr.trigger is None:
                raise instr.error("ONBUILD requires at least one argument")
            if cmd in ("cmd", "entrypoint", "volume", "expose") and not instr.args:
                raise instr.error(f"{cmd.upper()} requires at least one argument")
        # The new config is worked out only on a miss: it follows from what the key covers (the
        # parent image's config, the instruction, the variables in scope), so a hit already has it.
        entrypoint_drops_cmd = cmd == "entrypoint" and st.cmd_set
        if cmd == "cmd":
            st.cmd_set = True
        key = self._key(st, "config", _canonical(instr), self._scope_vars(st), st.cmd_set)
        if self._adopt(st, key):
            return
        cfg, created_by, author = self._config_change(st, instr, entrypoint_drops_cmd)
        self._commit(st, created_by, key, None, config=cfg, author=author)

    def _config_change(self, st: _StageState, instr: Instruction,
                       entrypoint_drops_cmd: bool) -> tuple[dict[str, Any], str, str | None]:
        """(new config, history ``created_by``, author) for a config instruction."""
        from dockyard.build.changes import apply_instruction

        cmd = instr.cmd
        cfg = _deepcopy(st.config)
        author: str | None = None
        if cmd == "maintainer":
            author = self._x(st, instr.args[0], instr)
            return cfg, f"MAINTAINER {author}", author
        apply_instruction(cfg, instr, expand_env=st.vars, where=f"{instr.location()}: ")
        if entrypoint_drops_cmd:
            # as BuildKit: ENTRYPOINT drops an inherited CMD, not one set in this stage
            cfg["Cmd"] = _deepcopy(st.config.get("Cmd"))
        if cmd == "cmd":
            created_by = "CMD " + go_quote_list(cfg.get("Cmd") or [])
        elif cmd == "entrypoint":
            created_by = "ENTRYPOINT " + go_quote_list(cfg.get("Entrypoint") or [])
        elif cmd == "label":
            pairs = [(self._x(st, k, instr), self._x(st, v, instr)) for k, v in key_value_pairs(instr)]
            created_by = "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
        elif cmd == "expose":
            ports = sorted(self._expose_words(st, instr))
            created_by = "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in ports) + "]"
        elif cmd == "volume":
            vols = [self._x(st, v, instr) for v in instr.args]
            created_by = "VOLUME [" + " ".join(vols) + "]"
        elif cmd == "user":
            created_by = f"USER {cfg.get('User', '')}"
        elif cmd == "stopsignal":
            created_by = f"STOPSIGNAL {cfg.get('StopSignal', '')}"
        elif cmd == "shell":
            created_by = "SHELL [" + " ".join(cfg.get("Shell") or []) + "]"
        elif cmd == "healthcheck":
            created_by = _healthcheck_history(cfg.get("Healthcheck") or {})
        elif cmd == "onbuild":
            created_by = f"ONBUILD {instr.args[0]}"
        else:  # pragma: no cover - every instruction is handled above
            raise instr.error(f"unsupported instruction {cmd.upper()}")
        return cfg, created_by, author

    def _expose_words(self, st: _StageState, instr: Instruction) -> set[str]:
        out = set()
        for word in instr.args:
            for p in self._x(st, word, instr).split():
                proto = "tcp"
                if "/" in p:
                    p, proto = p.split("/", 1)
                out.add(f"{p}/{proto.lower()}")
        return out

    # ---- WORKDIR -------------------------------------------------------------------------
    def _workdir(self, st: _StageState, instr: Instruction, vertex: Vertex | None) -> None:
        from dockyard.build.changes import apply_instruction

        assert vertex is not None
        if not instr.args or not instr.args[0].strip():
            raise instr.error("WORKDIR requires exactly one argument")
        cfg = _deepcopy(st.config)
        apply_instruction(cfg, instr, expand_env=st.vars, where=f"{instr.location()}: ")
        wd = _clean_abs(cfg.get("WorkingDir") or "/")
        cfg["WorkingDir"] = wd
        created_by = f"WORKDIR {wd}"
        user = str(cfg.get("User") or "")
        key = self._key(st, "workdir", wd, user)
        if self._adopt(st, key):
            vertex.cached()
            return
        layer = None
        if wd != "/":
            from dockyard.build import executor  # only now: a cached step never loads it

            with self._rootfs(st) as (rootfs, _scratch):
                uid, gid = executor.user_ids(user, rootfs.path)
                executor.make_dir_in_root(rootfs.path, wd, uid=uid, gid=gid)
                layer = rootfs.commit(self.eng)
        self._commit(st, created_by, key, layer, config=cfg)
        vertex.done()

    # ---- filesystems ---------------------------------------------------------------------
    def _rootfs(self, st: _StageState) -> _RootfsScope:
        """``with self._rootfs(st) as (rootfs, scratch)``: a step's writable root and its work dir."""
        chain = self._chain(st.image_id) if st.image_id else []
        return _RootfsScope(self.eng, chain, "step")

    def _image_view(self, image_id: str | None) -> _ImageView:
        """``with self._image_view(id) as root``: a mounted root of ``image_id`` to read from (COPY
        --from, RUN --mount from=)."""
        chain = self._chain(image_id) if image_id else []
        return _ImageView(self.eng, chain, "view")

    def _source_image(self, st: _StageState, ref: str, instr: Instruction) -> tuple[str | None, bool]:
        """(image ID, is a stage) for a ``--from`` value."""
        assert self.plan is not None
        try:
            idx = self.plan.resolve_ref(ref, st.stage.index)
        except BuildError as e:
            raise instr.error(str(e)) from None
        if idx is not None:
            return self._stage_result(idx).image_id, True
        if ref.lower() == "scratch":
            return None, False
        try:
            return self._image(ref), False
        except DockyardError as e:
            raise instr.error(f"{ref!r} is neither a build stage nor an image that can be found: {e}") from None

    # ---- RUN -----------------------------------------------------------------------------
    def _run(self, st: _StageState, instr: Instruction, vertex: Vertex | None) -> None:
        assert vertex is not None
        flags = parse_flags(instr, {"mount", "network", "security"}, repeatable={"mount"})
        network = flags.get("network", "default")
        if network not in ("default", "none", "host"):
            raise instr.error(f"unsupported network mode {network!r} (none, host or default)")
        if network == "default":
            network = self.opts.network
        security = flags.get("security", "sandbox")
        if security not in ("sandbox", "insecure"):
            raise instr.error(f"unsupported security mode {security!r}")
        mounts: list[RunMount] = []
        if flags.all("mount"):
            from dockyard.build.executor import parse_run_mount

            mounts = [parse_run_mount(m, expand=lambda s: self._x(st, s, instr)) for m in flags.all("mount")]
        wd = str(st.config.get("WorkingDir") or "/")
        for m in mounts:
            if m.target and not m.target.startswith("/"):
                m.target = _clean_abs(wd + "/" + m.target)
        if not instr.args and not instr.heredocs:
            raise instr.error("RUN requires at least one argument")
        args = list(instr.args)
        script: Heredoc | None = None
        if instr.heredocs and not instr.json_form:
            from dockyard.build.dockerfile import _heredoc_from_word

            cmdline = args[0] if args else ""
            try:
                single = _heredoc_from_word(cmdline) is not None
            except Exception:
                single = False
            first = instr.heredocs[0]
            if single and first.text.startswith("#!"):
                script = first
                args = ["/dev/pipes/" + first.name]
            elif single:
                args = [first.text]
            else:
                full = cmdline
                for h in instr.heredocs:
                    full += "\n" + h.content + h.name
                args = [full]
        if instr.json_form:
            argv = args
        else:
            argv = [*(st.config.get("Shell") or DEFAULT_SHELL), *args]
        for a in st.args:
            self.consumed_args.add(a[0])
        created_by = "RUN " + _run_command_string(argv, st.args, st.vars) + " # buildkit"
        env = [f"{k}={v}" for k, v in st.vars.items()]
        for k in sorted(PROXY_ARGS):
            if k in self.opts.build_args and k not in st.vars:
                env.append(f"{k}={self.opts.build_args[k]}")
        if not any(e.startswith("PATH=") for e in env):
            env.insert(0, f"PATH={DEFAULT_PATH}")
        mount_ids = [self._mount_identity(st, m, instr) for m in mounts]
        key = self._key(st, "run", created_by, argv, self._scope_vars(st), network, security,
                        [m.canonical() for m in mounts], mount_ids,
                        [script.name, script.text] if script else None,
                        str(st.config.get("User") or ""), wd)
        if self._adopt(st, key):
            vertex.cached()
            return
        from dockyard.build import executor  # only now: a fully cached build never loads it

        with self._rootfs(st) as (rootfs, scratch), _ExitStack() as stack:
            oci_mounts: list[dict[str, Any]] = []
            for i, m in enumerate(mounts):
                oci = self._prepare_mount(st, m, instr, scratch, stack, i, env)
                if oci is not None:
                    oci_mounts.append(oci)
            if script is not None:
                pipes = scratch.sub("pipes")
                path = os.path.join(pipes, script.name)
                with open(path, "w") as f:
                    f.write(script.text)
                os.chmod(path, 0o755)
                oci_mounts.append(executor.bind_mount(pipes, "/dev/pipes", readonly=True))
            req = executor.RunRequest(argv=argv, env=env, user=str(st.config.get("User") or ""), workdir=wd,
                                      network=network, mounts=oci_mounts, privileged=security == "insecure")
            try:
                code = executor.run_container(self.eng, rootfs, scratch.path, req, vertex.output)
            finally:
                vertex.flush()
            if code != 0:
                shown = " ".join(argv)
                raise BuildError(
                    f"process {go_quote(shown)} did not complete successfully: exit code: {code}")
            stack.close()
            layer = rootfs.commit(self.eng)
        self._commit(st, created_by, key, layer)
        vertex.done()

    def _mount_identity(self, st: _StageState, m: RunMount, instr: Instruction) -> Any:
        """What a mount contributes to the cache key: the source's identity, never a cache's content."""
        from dockyard.build.context import content_hash

        if m.type == "bind":
            if m.from_:
                image_id, _ = self._source_image(st, m.from_, instr)
                return ["image", image_id, m.source]
            found = self.context.find(m.source or ".")
            if not found:
                raise instr.error(
                    f"failed to mount {m.target}: {m.source or '.'}: not found in build context")
            return ["context", content_hash(self.context, [r for _, r in found])]
        if m.type == "cache" and m.from_:
            image_id, _ = self._source_image(st, m.from_, instr)
            return ["cache-from", image_id, m.source]
        return None

    def _prepare_mount(self, st: _StageState, m: RunMount, instr: Instruction, scratch: Scratch,
                       stack: _ExitStack, i: int, env: list[str]) -> dict[str, Any] | None:
        from dockyard.build import executor

        if m.type == "tmpfs":
            return executor.tmpfs_mount(m.target, m.size)
        if m.type == "ssh":
            raise instr.error("RUN --mount=type=ssh is not supported by Dockyard's builder")
        if m.type == "secret":
            secret = self.opts.secrets.get(m.id)
            if secret is None:
                if m.required:
                    raise instr.error(f"secret {m.id} not found")
                return None
            kind, value = secret
            if kind == "env":
                secret_file = os.path.join(scratch.sub("secrets"), f"{i}")
                with open(secret_file, "w") as f:
                    f.write(value)
                os.chmod(secret_file, m.mode if m.mode is not None else 0o400)
                source = secret_file
            else:
                source = value
            if m.env:
                try:
                    with open(source, encoding="utf-8", errors="replace") as f:
                        env.append(f"{m.env}={f.read()}")
                except OSError as e:
                    raise instr.error(f"secret {m.id}: {e.strerror}")
            if not m.target:
                return None
            return executor.bind_mount(source, m.target, readonly=True)
        if m.type == "cache":
            seed = None
            if m.from_:
                image_id, _ = self._source_image(st, m.from_, instr)

                def seed(dest: str, image_id: str | None = image_id, m: RunMount = m) -> None:
                    import shutil

                    with self._image_view(image_id) as root:
                        src = executor.resolve_in_root(root, m.source or "/")
                        if os.path.isdir(src):
                            shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
            path = stack.enter_context(executor.cache_dir(self.eng, m, seed))
            return executor.bind_mount(path, m.target, readonly=bool(m.readonly))
        # bind
        if m.from_:
            image_id, _ = self._source_image(st, m.from_, instr)
            root = stack.enter_context(self._image_view(image_id))
            source = executor.resolve_in_root(root, m.source or "/")
            if not os.path.exists(source):
                raise instr.error(f"failed to mount {m.target}: {m.source}: not found")
        else:
            found = self.context.find(m.source or ".")
            if not found:
                raise instr.error(
                    f"failed to mount {m.target}: {m.source or '.'}: not found in build context")
            rel = found[0][1]
            source = self.context.host_path(rel)
            if self.context.matcher:
                source = self._filtered_copy(self.context, rel, os.path.join(scratch.sub(f"bind-{i}"), "src"))
        if not m.readonly and os.path.isdir(source):
            source = executor.writable_view(source, scratch.sub(f"rw-{i}"))
        return executor.bind_mount(source, m.target, readonly=bool(m.readonly))

    @staticmethod
    def _filtered_copy(tree: SourceTree, rel: str, dest: str | os.PathLike[str]) -> str:
        """A copy of ``rel`` with the ``.dockerignore``d files left out (a context bind mount)."""
        import shutil

        out = os.fspath(dest)
        st = tree.lstat(rel)
        if st is None or not os.path.isdir(tree.host_path(rel)):
            os.makedirs(os.path.dirname(out), exist_ok=True)
            shutil.copy2(tree.host_path(rel), out)
            return out
        os.makedirs(out, exist_ok=True)
        for sub, cst in tree.walk(rel):
            if not sub:
                continue
            src = tree.host_path(f"{rel}/{sub}" if rel else sub)
            dst = os.path.join(out, sub)
            import stat as _stat

            if _stat.S_ISDIR(cst.st_mode):
                os.makedirs(dst, exist_ok=True)
            elif _stat.S_ISLNK(cst.st_mode):
                os.symlink(os.readlink(src), dst)
            elif _stat.S_ISREG(cst.st_mode):
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
        return out

    # ---- COPY / ADD ----------------------------------------------------------------------
    def _copy(self, st: _StageState, instr: Instruction, vertex: Vertex | None) -> None:
        from dockyard.build.context import IgnoreMatcher, SourceTree, content_hash, has_glob

        assert vertex is not None
        is_add = instr.cmd == "add"
        name = instr.cmd.upper()
        if is_add:
            flags = parse_flags(instr, {"chown", "chmod", "checksum", "exclude"},
                                booleans={"link", "keep-git-dir", "unpack"}, repeatable={"exclude"})
        else:
            flags = parse_flags(instr, {"from", "chown", "chmod", "exclude"}, booleans={"link"},
                                repeatable={"exclude"})
        words = list(instr.args)
        if len(words) < 2:
            raise instr.error(f"{name} requires at least two arguments, but only one was provided. "
                              "Destination could not be determined.")
        heredocs = list(instr.heredocs)
        srcs_raw, dest_raw = words[:-1], words[-1]
        dest = self._x(st, dest_raw, instr)
        wd = str(st.config.get("WorkingDir") or "/")
        dest_is_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.") or dest.endswith("/..")
        dest_abs = _clean_abs(dest if dest.startswith("/") else wd + "/" + dest)
        if len(srcs_raw) > 1 and not dest_is_dir:
            raise instr.error(f"When using {name} with more than one source file, the destination must be a "
                              "directory and end with a /")
        chown = self._x(st, flags["chown"], instr) if "chown" in flags else None
        chmod = None
        if "chmod" in flags:
            from dockyard.build.executor import parse_chmod

            chmod = parse_chmod(self._x(st, flags["chmod"], instr))
        excludes = [self._x(st, e, instr) for e in flags.all("exclude")]
        exclude = IgnoreMatcher(excludes) if excludes else None
        checksum = self._x(st, flags["checksum"], instr) if "checksum" in flags else None
        unpack = flags.get_bool("unpack", True)
        from_ref = self._x(st, flags["from"], instr) if "from" in flags else None
        if is_add and flags.get_bool("keep-git-dir"):
            raise instr.error("ADD --keep-git-dir: git sources are not supported")

        with _ExitStack() as stack:
            downloads: list[Scratch] = []

            def download_dir() -> str:
                if not downloads:
                    from dockyard.build import executor

                    downloads.append(stack.enter_context(executor.Scratch(self.eng, "src")))
                return downloads[0].sub(f"url-{len(items)}")
            keep_owner = False
            tree: SourceTree = self.context
            if from_ref:
                image_id, _is_stage = self._source_image(st, from_ref, instr)
                tree = SourceTree(stack.enter_context(self._image_view(image_id)))
                keep_owner = True
            # (kind, shown name, tree, named, resolved)
            items: list[tuple[str, str, SourceTree, str, str]] = []
            hash_parts: list[Any] = []
            heredoc_iter = iter(heredocs)
            for raw in srcs_raw:
                if raw.startswith("<<") and heredocs and not instr.json_form:
                    doc = next(heredoc_iter, None)
                    if doc is not None:
                        data = doc.text
                        if doc.expand:
                            try:
                                lexer = ShellLexer(escape=self._escape(), skip_process_quotes=True)
                                data = lexer.process(data, st.vars).result
                            except BuildError as e:
                                raise instr.error(str(e)) from None
                        items.append(("heredoc", doc.name, tree, doc.name, data))
                        hash_parts.append(["heredoc", doc.name, data])
                        continue
                src = self._x(st, raw, instr)
                if is_add and src.startswith(("http://", "https://")):
                    if src.endswith(".git"):
                        raise instr.error("ADD of a git repository is not supported")
                    from dockyard.build.executor import fetch_url

                    dl = fetch_url(src, download_dir(), checksum)
                    dl_tree = SourceTree(os.path.dirname(dl.path))
                    items.append(("url", dl.filename, dl_tree, dl.filename, os.path.basename(dl.path)))
                    hash_parts.append(["url", src, dl.filename, dl.digest])
                    continue
                if is_add and (src.startswith("git@") or src.endswith(".git")):
                    raise instr.error("ADD of a git repository is not supported")
                if checksum and is_add:
                    raise instr.error("checksum can't be specified for non-HTTP(S) sources")
                found = tree.find(src)
                if not found:
                    if has_glob(src):
                        raise instr.error(f"{name} failed: no source files were specified")
                    if from_ref:
                        raise instr.error(f"{name} failed: stat {src}: file does not exist in {from_ref}")
                    raise instr.error(f"{name} failed: file not found in build context or excluded by "
                                      f".dockerignore: stat {src}: file does not exist")
                if len(found) > 1 and not dest_is_dir:
                    dest_is_dir = True  # several matches: the destination is a directory
                for named, resolved in found:
                    kind = "path"
                    host = tree.host_path(resolved)
                    if is_add and unpack and not from_ref and os.path.isfile(host):
                        from dockyard.build.executor import is_archive

                        if is_archive(host):
                            kind = "archive"
                    items.append((kind, named, tree, named, resolved))
                hash_parts.append(["src", src, [n for n, _ in found],
                                   content_hash(tree, [r for _, r in found], keep_owner=keep_owner)])
            shown = [raw if raw.startswith("<<") and heredocs and not instr.json_form
                     else self._x(st, raw, instr) for raw in srcs_raw]
            created_by = f"{name} {' '.join(shown)} {dest} # buildkit"
            key = self._key(st, instr.cmd, srcs_raw, dest_abs, dest_is_dir, chown, chmod, excludes, checksum,
                            unpack, from_ref, hash_parts, self._scope_vars(st) if chown else None)
            if self._adopt(st, key):
                vertex.cached()
                return
            from dockyard.build import executor  # only now: a cached COPY of context files never loads it

            with self._rootfs(st) as (rootfs, step_scratch):
                owner = executor.parse_chown(chown, rootfs.path) if chown else None
                copier = executor.Copier(rootfs.path, owner=owner, chmod=chmod, keep_owner=keep_owner,
                                         exclude=exclude)
                multi = len(items) > 1
                for n, (kind, _shown, src_tree, named, resolved) in enumerate(items):
                    into_dir = dest_is_dir or multi or self._is_dir_in_root(rootfs.path, dest_abs)
                    if kind == "heredoc":
                        target = dest_abs.rstrip("/") + "/" + named if into_dir else dest_abs
                        copier.write_file(target, resolved.encode("utf-8", "surrogateescape"))
                    elif kind == "archive":
                        out = step_scratch.sub(f"unpack-{n}")
                        executor.extract_archive(src_tree.host_path(resolved), out)
                        archive_copier = executor.Copier(rootfs.path, owner=owner, chmod=chmod,
                                                         keep_owner=True, exclude=exclude)
                        archive_copier.copy(SourceTree(out), named, "", dest_abs, True)
                    else:
                        copier.copy(src_tree, named, resolved, dest_abs, into_dir)
                layer = rootfs.commit(self.eng)
        self._commit(st, created_by, key, layer)
        vertex.done()

    @staticmethod
    def _is_dir_in_root(root: str, path: str) -> bool:
        from dockyard.build import executor

        return os.path.isdir(executor.resolve_in_root(root, path))


class _RootfsScope:
    """A work directory (:class:`executor.Scratch`) with a :class:`executor.Rootfs` mounted in it;
    ``with`` gives ``(rootfs, scratch)`` and removes both. A class rather than
    ``@contextlib.contextmanager``: contextlib costs every build ~1 ms to import."""

    def __init__(self, eng: Engine, chain: list[LayerInfo], kind: str) -> None:
        self.eng = eng
        self.chain = chain
        self.kind = kind
        self.scratch: Scratch | None = None

    def __enter__(self) -> tuple[Rootfs, Scratch]:
        from dockyard.build import executor

        scratch = self.scratch = executor.Scratch(self.eng, self.kind)
        try:
            return executor.Rootfs(os.path.join(scratch.path, "fs"), self.chain), scratch
        except BaseException:
            self.scratch = None
            scratch.close()
            raise

    def __exit__(self, *exc: object) -> None:
        scratch, self.scratch = self.scratch, None
        if scratch is not None:
            scratch.close()


class _ImageView(_RootfsScope):
    """``with`` gives the mounted root's path only (an image to read from)."""

    def __enter__(self) -> str:  # type: ignore[override]
        return super().__enter__()[0].path


class _ExitStack:
    """What the steps use of ``contextlib.ExitStack`` (:meth:`enter_context`, :meth:`close`), without
    importing contextlib: the exits run last-in first-out, each seeing the exception the ones before
    it left (an exit that returns true suppresses it), and every one runs even if one fails."""

    def __init__(self) -> None:
        self._exits: list[Any] = []

    def enter_context(self, cm: Any) -> Any:
        value = cm.__enter__()
        self._exits.append(cm.__exit__)
        return value

    def close(self) -> None:
        self.__exit__(None, None, None)

    def __enter__(self) -> _ExitStack:
        return self

    def __exit__(self, *exc: Any) -> bool:
        received = exc[0] is not None
        failed = False
        while self._exits:
            try:
                if self._exits.pop()(*exc):
                    exc = (None, None, None)
                    failed = False
            except BaseException as e:  # noqa: BLE001 - the rest still run, and see it
                exc = (type(e), e, e.__traceback__)
                failed = True
        if failed:
            raise exc[1]
        return received and exc[0] is None


def build(eng: Engine, context: BuildContext, opts: BuildOptions, out: TextIO | None = None) -> BuildResult:
    """Build ``opts.dockerfile`` with ``context``; returns the image ID and the tags it got."""
    return Builder(eng, context, opts, out).build()
