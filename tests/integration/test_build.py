"""`dockyard build` end to end: real Dockerfiles, real containers for RUN, the layer cache in SQLite."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from pathlib import Path

import pytest

from tests.conftest import CLI, Result, assert_one_line_error

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds run containers: they need root")


# ---- helpers ---------------------------------------------------------------------------------


def write(ctx: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return ctx


def build(cli: CLI, ctx: Path, *args: str, check: bool = True, input: str | bytes | None = None) -> Result:
    return cli("build", *args, str(ctx), check=check, input=input)


def steps(out: str) -> dict[str, str]:
    """``{"[2/3] RUN x": "CACHED" | "DONE" | "ERROR"}`` from BuildKit-style progress."""
    names: dict[str, str] = {}
    status: dict[str, str] = {}
    for line in out.splitlines():
        m = re.match(r"#(\d+) (.*)$", line)
        if not m:
            continue
        n, rest = m.groups()
        if n not in names:
            names[n] = rest
        elif rest == "CACHED" or rest.startswith("DONE") or rest.startswith("ERROR"):
            status[n] = rest.split()[0].rstrip(":")
    return {names[n]: status.get(n, "") for n in names}


def inspect(cli: CLI, ref: str) -> dict:
    return json.loads(cli("inspect", ref).stdout)[0]


def layers(root: Path, ref: str) -> list[Path]:
    from dockyard.engine import Engine

    with Engine(root) as eng:
        return [x.path for x in eng.image_chain(eng.resolve_image(ref))]


def history(root: Path, ref: str) -> list[dict]:
    from dockyard.engine import Engine

    with Engine(root) as eng:
        return eng.image_config(eng.resolve_image(ref)).history


def image_file(root: Path, ref: str, path: str) -> Path | None:
    """The file at ``path`` in the image's topmost layer that has it."""
    for layer in reversed(layers(root, ref)):
        p = layer / path.lstrip("/")
        if os.path.lexists(p):
            return p
    return None


def read(root: Path, ref: str, path: str) -> str:
    found = image_file(root, ref, path)
    assert found is not None, f"{path} is not in {ref}"
    return found.read_text()


def mounts_under(root: Path) -> list[str]:
    return [line.split()[4] for line in open("/proc/self/mountinfo") if line.split()[4].startswith(str(root))]


# ---- the seed's recipe -----------------------------------------------------------------------


def test_seed_recipe_builds_an_image_with_the_new_file_and_cmd(cli: CLI, busybox_image: str, root: Path,
                                                              tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN touch new_file1\nCMD ls\n"})
    r = build(cli, ctx, "-t", "your/duck:v3")
    assert steps(r.stdout)["[2/2] RUN touch new_file1"] == "DONE"
    assert "naming to docker.io/your/duck:v3 done" in r.stdout
    info = inspect(cli, "your/duck:v3")
    assert info["Config"]["Cmd"] == ["/bin/sh", "-c", "ls"]
    assert info["RepoTags"] == ["your/duck:v3"]
    assert len(info["RootFS"]["Layers"]) == 2
    top = layers(root, "your/duck:v3")[-1]
    assert os.listdir(top) == ["new_file1"]  # nothing but the step's own change
    hist = history(root, "your/duck:v3")
    assert [h.get("created_by") for h in hist[-2:]] == ["RUN /bin/sh -c touch new_file1 # buildkit",
                                                        'CMD ["/bin/sh" "-c" "ls"]']
    assert hist[-1]["empty_layer"] is True and "empty_layer" not in hist[-2]
    assert hist[-1]["comment"] == "buildkit.dockerfile.v0"
    assert mounts_under(root) == []
    assert not [p for p in (root / "build").iterdir() if p.name.startswith("tmp-")]


def test_hash_after_an_instruction(cli: CLI, busybox_image: str, root: Path, tmp_path: Path) -> None:
    # RUN/CMD shell form: the `#` reaches the shell, which treats it as a comment (as in Docker)
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN touch x   # comment\nCMD ls   # comment\n"})
    build(cli, ctx, "-t", "hash:1")
    assert os.listdir(layers(root, "hash:1")[-1]) == ["x"]
    # FROM with extra words is an error that says why
    write(ctx, {"Dockerfile": "FROM busybox   # comment\nRUN true\n"})
    r = build(cli, ctx, check=False)
    assert_one_line_error(r)
    assert "Dockerfile:1:" in r.stderr and "'#' after an instruction is not a comment" in r.stderr


# ---- the cache -------------------------------------------------------------------------------

FIVE = """FROM busybox
RUN echo 1 > /one
RUN echo 2 > /two
RUN echo 3 > /three
RUN echo 4 > /four
RUN echo {last} > /five
CMD ["cat", "/five"]
"""


def test_rebuild_is_cached_and_a_changed_last_step_reruns_only_that_step(cli: CLI, busybox_image: str,
                                                                         root: Path, tmp_path: Path) -> None:
    from dockyard.engine import Engine

    ctx = write(tmp_path / "ctx", {"Dockerfile": FIVE.format(last=5)})
    first = build(cli, ctx, "-t", "five:1")
    assert [s for n, s in steps(first.stdout).items() if " RUN " in n] == ["DONE"] * 5
    id1 = inspect(cli, "five:1")["Id"]
    diff1 = inspect(cli, "five:1")["RootFS"]["Layers"]

    again = build(cli, ctx, "-t", "five:1")
    run_steps = {n: s for n, s in steps(again.stdout).items() if " RUN " in n}
    assert list(run_steps.values()) == ["CACHED"] * 5, again.stdout
    assert inspect(cli, "five:1")["Id"] == id1  # the very same image

    write(ctx, {"Dockerfile": FIVE.format(last="five")})
    third = build(cli, ctx, "-t", "five:2")
    st = steps(third.stdout)
    assert [st[f"[{i + 1}/6] RUN echo {i} > /{w}"] for i, w in ((1, "one"), (2, "two"), (3, "three"),
                                                              (4, "four"))] == ["CACHED"] * 4
    assert st["[6/6] RUN echo five > /five"] == "DONE"
    diff2 = inspect(cli, "five:2")["RootFS"]["Layers"]
    assert diff2[:-1] == diff1[:-1] and diff2[-1] != diff1[-1]
    assert (layers(root, "five:2")[-1] / "five").read_text() == "five\n"
    with Engine(root) as eng:  # the intermediate images are reused, not rebuilt
        p1 = eng.db.image_parent(eng.db.image_parent(id1))
        id2 = eng.resolve_image("five:2")
        p2 = eng.db.image_parent(eng.db.image_parent(id2))
    assert p1 == p2

    nocache = build(cli, ctx, "--no-cache", "-t", "five:3")
    assert "CACHED" not in nocache.stdout


def test_copy_is_cached_on_content_not_mtime(cli: CLI, busybox_image: str, root: Path, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY data.txt /data.txt\nRUN cat /data.txt\n",
                                   "data.txt": "aaa\n"})
    data = ctx / "data.txt"
    os.utime(data, (1_000_000, 1_000_000))
    build(cli, ctx, "-t", "cp:1")
    assert len(layers(root, "cp:1")) == 2  # `RUN cat` changed no file: it has no layer
    assert (layers(root, "cp:1")[-1] / "data.txt").read_text() == "aaa\n"

    os.utime(data, (2_000_000, 2_000_000))  # mtime only: cached
    st = steps(build(cli, ctx, "-t", "cp:2").stdout)
    assert st["[2/3] COPY data.txt /data.txt"] == "CACHED"
    assert st["[3/3] RUN cat /data.txt"] == "CACHED"

    data.write_text("bbb\n")  # new content, same mtime: rebuilt
    os.utime(data, (2_000_000, 2_000_000))
    r = build(cli, ctx, "-t", "cp:3")
    st = steps(r.stdout)
    assert st["[2/3] COPY data.txt /data.txt"] == "DONE"
    assert st["[3/3] RUN cat /data.txt"] == "DONE"
    assert "bbb" in r.stdout
    copied = layers(root, "cp:3")[-1] / "data.txt"
    assert copied.read_text() == "bbb\n"
    assert copied.stat().st_mtime == 2_000_000  # mtimes are kept, as Docker does
    assert (copied.stat().st_uid, copied.stat().st_gid) == (0, 0)


# ---- stages, args, ignore files ----------------------------------------------------------------


def test_multistage_copy_from_and_target_skip_unneeded_stages(cli: CLI, busybox_image: str, root: Path,
                                                              tmp_path: Path) -> None:
    df = """FROM busybox AS build
RUN echo built > /artifact

FROM busybox AS broken
RUN echo this stage must not run && exit 3

FROM busybox
COPY --from=build /artifact /from-name
COPY --from=0 /artifact /from-index
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    r = build(cli, ctx, "-t", "multi:1")
    assert "must not run" not in r.stdout
    assert not any(n.startswith("[broken") for n in steps(r.stdout))
    top = layers(root, "multi:1")
    assert (top[-2] / "from-name").read_text() == "built\n"
    assert (top[-1] / "from-index").read_text() == "built\n"

    r = build(cli, ctx, "--target", "build", "-t", "multi:build")
    assert not any(n.startswith("[stage-2") or n.startswith("[broken") for n in steps(r.stdout))
    assert (layers(root, "multi:build")[-1] / "artifact").exists()

    r = build(cli, ctx, "--target", "broken", "-t", "multi:broken", check=False)
    assert r.returncode == 1 and "Dockerfile:5:" in r.stderr and "exit code: 3" in r.stderr
    r = build(cli, ctx, "--target", "nope", check=False)
    assert_one_line_error(r)
    assert 'target stage "nope" could not be found' in r.stderr


def test_arg_and_env_expansion_and_scoping(cli: CLI, busybox_image: str, root: Path, tmp_path: Path) -> None:
    df = """ARG BASE=busybox
ARG GLOBAL_ONLY=global
FROM $BASE
ARG NAME=world
ARG BASE
ENV GREETING="hello $NAME" DIR=/srv/$NAME
WORKDIR $DIR
RUN echo "$GREETING from $BASE [$GLOBAL_ONLY]" > out.txt
LABEL greeting="$GREETING"
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    r = build(cli, ctx, "-t", "args:1", "--build-arg", "NAME=dockyard", "--build-arg", "NOT_DECLARED=1")
    assert "[Warning] One or more build-args [NOT_DECLARED] were not consumed" in r.stdout
    cfg = inspect(cli, "args:1")["Config"]
    assert cfg["Env"] == ["GREETING=hello dockyard", "DIR=/srv/dockyard"]  # ARGs are not in the image's Env
    assert cfg["WorkingDir"] == "/srv/dockyard"
    assert cfg["Labels"] == {"greeting": "hello dockyard"}
    out = image_file(root, "args:1", "/srv/dockyard/out.txt")
    assert out is not None and out.read_text() == "hello dockyard from busybox []\n"
    run = [h["created_by"] for h in history(root, "args:1") if h.get("created_by", "").startswith("RUN")]
    assert run == ['RUN |2 NAME=dockyard BASE=busybox /bin/sh -c echo "$GREETING from $BASE [$GLOBAL_ONLY]"'
                   " > out.txt # buildkit"]
    args = [h["created_by"] for h in history(root, "args:1") if h.get("created_by", "").startswith("ARG")]
    assert args == ["ARG NAME=dockyard", "ARG BASE=busybox"]

    # proxy args need no ARG and stay out of the history; platform args need one
    write(ctx, {"Dockerfile": "FROM busybox\nARG TARGETARCH\n"
                              "RUN echo \"proxy=$HTTP_PROXY arch=$TARGETARCH os=[$TARGETOS]\"\n"})
    r = build(cli, ctx, "-t", "args:proxy", "--build-arg", "HTTP_PROXY=http://proxy.example:3128")
    from dockyard.image.oci import host_platform

    assert f"proxy=http://proxy.example:3128 arch={host_platform().architecture} os=[]" in r.stdout
    assert "Warning" not in r.stdout
    assert not any("proxy.example" in h.get("created_by", "") for h in history(root, "args:proxy"))
    write(ctx, {"Dockerfile": df})

    # a different build-arg value reruns the steps that see it
    r = build(cli, ctx, "-t", "args:2", "--build-arg", "NAME=other")
    assert "CACHED" not in "".join(s for n, s in steps(r.stdout).items() if "RUN" in n)


def test_dockerignore(cli: CLI, busybox_image: str, root: Path, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nCOPY . /ctx/\n",
        ".dockerignore": "# comment\n*.key\n/logs\n!logs/keep.log\n**/*.tmp\n",
        "keep.txt": "k", "secret.key": "s", "logs/a.log": "a", "logs/keep.log": "kl", "deep/x/y.tmp": "t",
        "deep/x/z.txt": "z",
    })
    build(cli, ctx, "-t", "ign:1")
    top = layers(root, "ign:1")[-1] / "ctx"
    found = sorted(str(p.relative_to(top)) for p in top.rglob("*") if not p.is_dir())
    assert found == [".dockerignore", "Dockerfile", "deep/x/z.txt", "keep.txt", "logs/keep.log"]
    write(ctx, {"Dockerfile": "FROM busybox\nCOPY secret.key /\n"})
    r = build(cli, ctx, check=False)
    assert_one_line_error(r)
    assert ("Dockerfile:2: COPY failed: file not found in build context or excluded by .dockerignore: "
            "stat secret.key: file does not exist") in r.stderr


# ---- RUN features ------------------------------------------------------------------------------


def test_cache_mount_keeps_files_between_builds(cli: CLI, busybox_image: str, root: Path,
                                               tmp_path: Path) -> None:
    df = "FROM busybox\nRUN --mount=type=cache,target=/var/cache/app echo x >> /var/cache/app/log && " \
         "echo count=$(wc -l < /var/cache/app/log)\n"
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    assert "count=1" in build(cli, ctx, "-t", "cm:1").stdout
    assert "count=2" in build(cli, ctx, "--no-cache", "-t", "cm:2").stdout
    # the cache is not part of the image: the step changed no file of its own
    assert len(inspect(cli, "cm:2")["RootFS"]["Layers"]) == 1
    assert history(root, "cm:2")[-1]["empty_layer"] is True
    assert (root / "build-cache-mounts" / "%2Fvar%2Fcache%2Fapp" / "log").read_text() == "x\nx\n"


def test_heredocs(cli: CLI, busybox_image: str, root: Path, tmp_path: Path) -> None:
    df = """FROM busybox
RUN <<EOF
echo one > /h1
echo two >> /h1
EOF
RUN <<EOF
#!/bin/sh
echo "script $0" > /h2
EOF
RUN cat <<EOF > /h3
home=$HOME
EOF
COPY <<EOF /etc/h4
copied
EOF
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    build(cli, ctx, "-t", "hd:1")
    found = {name: read(root, "hd:1", name) for name in ("/h1", "/h2", "/h3", "/etc/h4")}
    assert found == {"/h1": "one\ntwo\n", "/h2": "script /dev/pipes/EOF\n", "/h3": "home=/root\n",
                    "/etc/h4": "copied\n"}


def test_add_extracts_local_archives(cli: CLI, busybox_image: str, root: Path, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nADD files.tar.gz /x/\nADD plain.txt /y.txt\n"
                                                 "COPY files.tar.gz /z/\n", "plain.txt": "plain"})
    with tarfile.open(ctx / "files.tar.gz", "w:gz") as tf:
        data = b"inside"
        ti = tarfile.TarInfo("dir/a.txt")
        ti.size, ti.uid, ti.gid, ti.mode = len(data), 1000, 1000, 0o640
        tf.addfile(ti, io.BytesIO(data))
    build(cli, ctx, "-t", "add:1")
    ls = layers(root, "add:1")
    extracted = ls[-3] / "x" / "dir" / "a.txt"
    assert extracted.read_text() == "inside"
    st = extracted.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1000, 0o640)  # kept from the archive
    assert (ls[-2] / "y.txt").read_text() == "plain"
    assert (ls[-1] / "z" / "files.tar.gz").is_file()  # COPY never extracts


def test_workdir_user_chown_chmod(cli: CLI, busybox_image: str, root: Path, tmp_path: Path) -> None:
    df = """FROM busybox
RUN echo 'app:x:1234:1234::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1234:' >> /etc/group
COPY --chown=app:app --chmod=0640 f.txt /data/f.txt
USER app
WORKDIR /work
RUN id -u > /tmp/uid && pwd > /tmp/pwd
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "f.txt": "f"})
    build(cli, ctx, "-t", "own:1")
    f = image_file(root, "own:1", "/data/f.txt")
    assert f is not None
    assert (f.stat().st_uid, f.stat().st_gid, f.stat().st_mode & 0o777) == (1234, 1234, 0o640)
    work = image_file(root, "own:1", "/work")
    assert work is not None and work.stat().st_uid == 1234  # WORKDIR creates the dir as the USER
    assert read(root, "own:1", "/tmp/uid") == "1234\n"
    assert read(root, "own:1", "/tmp/pwd") == "/work\n"
    cfg = inspect(cli, "own:1")["Config"]
    assert (cfg["User"], cfg["WorkingDir"]) == ("app", "/work")


def test_entrypoint_cmd_interplay_and_config(cli: CLI, busybox_image: str, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nENTRYPOINT [\"echo\"]\n"})
    build(cli, ctx, "-t", "ep:1")
    cfg = inspect(cli, "ep:1")["Config"]
    assert (cfg["Entrypoint"], cfg["Cmd"]) == (["echo"], None)  # the base's CMD is dropped
    write(ctx, {"Dockerfile": "FROM busybox\nCMD [\"a\"]\nENTRYPOINT echo hi\nEXPOSE 80 53/udp\n"
                              "VOLUME /data\nSTOPSIGNAL SIGINT\nSHELL [\"/bin/sh\", \"-ec\"]\n"
                              "HEALTHCHECK --interval=5m CMD true\nMAINTAINER someone\n"})
    build(cli, ctx, "-t", "ep:2", "--label", "built.by=dockyard")
    info = inspect(cli, "ep:2")
    cfg = info["Config"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "echo hi"]
    assert cfg["Cmd"] == ["a"]  # a CMD of this stage survives ENTRYPOINT
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["Shell"] == ["/bin/sh", "-ec"]
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 300_000_000_000}
    assert cfg["Labels"] == {"built.by": "dockyard"}
    assert info["Author"] == "someone"


def test_onbuild_triggers_run_in_the_child_build(cli: CLI, busybox_image: str, root: Path,
                                                 tmp_path: Path) -> None:
    ctx = write(tmp_path / "base", {"Dockerfile": "FROM busybox\nONBUILD RUN echo triggered > /onbuild\n"})
    build(cli, ctx, "-t", "onbase:1")
    assert inspect(cli, "onbase:1")["Config"]["OnBuild"] == ["RUN echo triggered > /onbuild"]
    assert image_file(root, "onbase:1", "/onbuild") is None
    child = write(tmp_path / "child", {"Dockerfile": "FROM onbase:1\nRUN cat /onbuild\n"})
    r = build(cli, child, "-t", "onchild:1")
    assert "triggered" in r.stdout
    assert read(root, "onchild:1", "/onbuild") == "triggered\n"
    assert inspect(cli, "onchild:1")["Config"]["OnBuild"] is None


# ---- failures ----------------------------------------------------------------------------------


def test_failing_run_names_the_line_shows_output_and_tags_nothing(cli: CLI, busybox_image: str, root: Path,
                                                                  tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo before\nRUN echo visible-output && exit 7\n"
                                                 "CMD ls\n"})
    r = build(cli, ctx, "-t", "failed:1", check=False)
    assert r.returncode == 1
    assert_one_line_error(r)
    assert r.stderr.strip() == ('Error: Dockerfile:3: process "/bin/sh -c echo visible-output && exit 7" did not '
                                "complete successfully: exit code: 7")
    assert "visible-output" in r.stdout
    assert " 3 | >>> RUN echo visible-output && exit 7" in r.stdout
    assert "failed" not in cli("images").stdout
    assert mounts_under(root) == []
    assert not [p for p in (root / "build").iterdir() if p.name.startswith("tmp-")]


@pytest.mark.parametrize(("dockerfile", "message"), [
    ("FROM busybox\nFROBNICATE x\n", "Dockerfile:2: unknown instruction: FROBNICATE"),
    ("FROM busybox\nCOPY nope /x\n", "Dockerfile:2: COPY failed: file not found in build context or excluded by "
                                     ".dockerignore: stat nope: file does not exist"),
    ("FROM busybox\nCOPY ../outside /x\n", "Dockerfile:2: COPY failed: file not found in build context"),
    ("FROM busybox\nCOPY --bogus=1 a /x\n", "Dockerfile:2: unknown flag: --bogus"),
    ("FROM busybox\nCOPY *.none /x/\n", "Dockerfile:2: COPY failed: no source files were specified"),
    ("FROM busybox\nCOPY a b /x\n", "the destination must be a directory and end with a /"),
    ("FROM busybox\nRUN --mount=type=bogus,target=/x true\n", "Dockerfile:2: unsupported mount type"),
    ("RUN true\n", "Dockerfile:1: no build stage in current context"),
])
def test_bad_dockerfiles_are_one_clear_error(cli: CLI, busybox_image: str, tmp_path: Path, dockerfile: str,
                                             message: str) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": dockerfile, "a": "a", "b": "b"})
    (tmp_path / "outside").write_text("no")
    r = build(cli, ctx, "-t", "bad:1", check=False)
    assert r.returncode == 1, r
    assert_one_line_error(r)
    assert message in r.stderr
    assert "bad" not in cli("images", "--format", "{{.Repository}}").stdout.split()  # no half-tagged image


def test_bad_cli_arguments(cli: CLI, tmp_path: Path) -> None:
    r = cli("build", str(tmp_path / "missing"), check=False)
    assert_one_line_error(r)
    assert "not found" in r.stderr
    r = cli("build", "--network", "bridge", str(tmp_path), check=False)
    assert_one_line_error(r)
    r = cli("build", "-t", "Bad:Tag:x", str(tmp_path), check=False)
    assert_one_line_error(r)
    r = cli("build", str(tmp_path), check=False)  # no Dockerfile
    assert_one_line_error(r)
    assert "Dockerfile" in r.stderr


# ---- inputs and outputs ------------------------------------------------------------------------


def test_dockerfile_from_stdin_with_a_context(cli: CLI, busybox_image: str, root: Path, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"hello.txt": "hi"})
    build(cli, ctx, "-f", "-", "-t", "stdin:1", input="FROM busybox\nCOPY hello.txt /\n")
    assert (layers(root, "stdin:1")[-1] / "hello.txt").read_text() == "hi"


def test_context_and_dockerfile_from_stdin(cli: CLI, busybox_image: str, root: Path, tmp_path: Path) -> None:
    r = cli("build", "-t", "nocontext:1", "-", input="FROM busybox\nRUN echo no-context > /n\n")
    assert "no-context" not in r.stderr
    assert (layers(root, "nocontext:1")[-1] / "n").read_text() == "no-context\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY f /f\n"), ("f", b"from-tar")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    cli("build", "-t", "tarctx:1", "-", input=buf.getvalue())
    assert (layers(root, "tarctx:1")[-1] / "f").read_text() == "from-tar"


def test_quiet_and_iidfile(cli: CLI, busybox_image: str, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo quiet-output\n"})
    iid = tmp_path / "iid"
    r = cli("image", "build", "-q", "--iidfile", str(iid), "-t", "q:1", str(ctx))
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", r.stdout)
    assert iid.read_text() == r.stdout.strip()
    assert inspect(cli, "q:1")["Id"] == iid.read_text()


# ---- mounts, secrets, other sources ------------------------------------------------------------


def test_run_mounts_bind_secret_tmpfs(cli: CLI, busybox_image: str, root: Path, tmp_path: Path) -> None:
    df = """FROM busybox AS stage1
RUN echo from-stage > /stagefile

FROM busybox
RUN --mount=type=bind,target=/ctx cat /ctx/src/s.txt && test ! -e /ctx/ignored.txt
RUN --mount=type=bind,from=stage1,source=/stagefile,target=/sf cat /sf
RUN --mount=type=bind,target=/ctx,rw touch /ctx/written && ls /ctx/written
RUN --mount=type=secret,id=tok cat /run/secrets/tok
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && grep -q ' /scratch tmpfs' /proc/mounts
RUN --mount=type=bind,target=/ctx touch /ctx/readonly 2>/dev/null || echo read-only-bind
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "src/s.txt": "srcfile\n", "ignored.txt": "x",
                                   ".dockerignore": "ignored.txt\n"})
    secret = write(tmp_path, {"secret.txt": "tok123\n"}) / "secret.txt"
    r = build(cli, ctx, "-t", "mounts:1", "--secret", f"id=tok,src={secret}")
    for text in ("srcfile", "from-stage", "tok123", "read-only-bind"):
        assert text in r.stdout
    assert not (ctx / "written").exists()  # rw binds write to a throwaway layer
    assert len(inspect(cli, "mounts:1")["RootFS"]["Layers"]) == 1  # mounts leave nothing in the image
    # a required secret that was not given
    write(ctx, {"Dockerfile": "FROM busybox\nRUN --mount=type=secret,id=nope,required cat /run/secrets/nope\n"})
    r = build(cli, ctx, check=False)
    assert_one_line_error(r)
    assert "Dockerfile:2: secret nope not found" in r.stderr


def test_copy_from_an_image_and_add_from_a_url(cli: CLI, busybox_image: str, root: Path, tmp_path: Path) -> None:
    import hashlib
    import http.server
    import threading

    served = write(tmp_path / "www", {"file.txt": "downloaded\n"})

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/file.txt"
    digest = "sha256:" + hashlib.sha256(b"downloaded\n").hexdigest()
    try:
        ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM busybox\nCOPY --from=busybox /bin/busybox /bb\n"
                                                     f"ADD --checksum={digest} {url} /dl/\n"})
        build(cli, ctx, "-t", "src:1")
        ls = layers(root, "src:1")
        assert (ls[-2] / "bb").stat().st_size == (ls[0] / "bin" / "busybox").stat().st_size
        dl = ls[-1] / "dl" / "file.txt"
        assert dl.read_text() == "downloaded\n"
        assert dl.stat().st_mode & 0o777 == 0o600  # as Docker: downloads are 0600
        write(ctx, {"Dockerfile": f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {url} /dl/\n"})
        r = build(cli, ctx, check=False)
        assert_one_line_error(r)
        assert "digest mismatch" in r.stderr
    finally:
        server.shutdown()
