"""version, info, system prune, shell completion and the generated reference, through the real CLI.

Each field is checked against the machine, computed here independently of Dockyard's code.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dockyard import __version__
from tests.conftest import CLI, DOCKYARD_BIN, REPO


def field(text: str, name: str) -> str:
    """The value of the first `` Name: value`` line of Docker-style output."""
    for line in text.splitlines():
        key, sep, value = line.strip().partition(": ")
        if sep and key == name:
            return value.strip()
    raise AssertionError(f"no {name!r} line in:\n{text}")


def cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


# ---- version --------------------------------------------------------------------------------
def test_version_shows_client_and_server_as_docker_does(cli: CLI) -> None:
    out = cli("version").stdout
    client, _, server = out.partition("\nServer: ")
    assert client.startswith("Client: Dockyard\n")
    assert server.startswith("Dockyard\n Engine:\n")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    for part in (client, server):
        assert field(part, "Version") == __version__
        assert field(part, "Python version") == platform.python_version()
        assert field(part, "OS/Arch") == f"linux/{arch}"
        assert field(part, "Git commit")
        assert field(part, "Built")
    assert field(client, "API version") == "1.43"
    assert field(server, "API version") == "1.43 (minimum version 1.12)"
    assert field(client, "Context") == "default"
    assert " dockyard-runtime (builtin):" in server  # the default runtime


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_version_shows_runc_as_runc_version_says_when_it_is_the_runtime(cli: CLI) -> None:
    first = subprocess.run(["runc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    want = first.split(" version ", 1)[1].strip()
    out = cli("version", env={"DOCKYARD_RUNTIME": "runc"}).stdout
    engine_block, _, runtimes = out.partition(" runc:\n")
    assert runtimes, out
    assert field(runtimes, "Version") == want
    data = json.loads(cli("version", "--format", "{{json .Server}}", env={"DOCKYARD_RUNTIME": "runc"}).stdout)
    assert data["Components"][1]["Name"] == "runc" and data["DefaultRuntime"] == "runc"


def test_version_format(cli: CLI) -> None:
    assert cli("version", "--format", "{{.Server.Version}}").stdout == __version__ + "\n"
    assert cli("version", "--format", "{{.Client.APIVersion}} {{.Client.PythonVersion}}").stdout.split() == \
        ["1.43", platform.python_version()]
    data = json.loads(cli("version", "--format", "json").stdout)
    assert set(data) == {"Client", "Server"}
    assert data["Server"]["Components"][0]["Name"] == "Engine"
    assert cli("version", "--format", "{{.Nope}}", check=False).returncode != 0


# ---- info -----------------------------------------------------------------------------------
def test_info_counts_what_images_and_ps_list(cli: CLI, busybox_image: str, root: Path) -> None:
    cli("tag", "busybox", "other:1")
    cli("create", "--name", "c1", "busybox", "true")
    out = cli("info").stdout
    images_q = cli("images", "-q").stdout.split()
    assert int(field(out, "Images")) == len(set(images_q)) == 1
    assert field(out, "Containers") == "1"
    assert (field(out, "Running"), field(out, "Paused"), field(out, "Stopped")) == ("0", "0", "1")
    assert field(out, "Dockyard Root Dir") == str(root)
    assert cli("info", "--format", "{{.Images}} {{.Containers}} {{.ContainersStopped}}").stdout.split() == \
        ["1", "1", "1"]


def test_info_describes_the_machine(cli: CLI, root: Path) -> None:
    out = cli("info").stdout
    assert out.startswith("Client:\n Version:    " + __version__ + "\n")
    assert "\nServer:\n Containers: 0\n" in out
    assert field(out, "Cgroup Version") == cgroup_version()
    assert field(out, "Cgroup Driver") == "cgroupfs"
    assert field(out, "Logging Driver") == "json-file"
    assert field(out, "Kernel Version") == os.uname().release
    assert field(out, "Architecture") == os.uname().machine
    assert field(out, "Name") == os.uname().nodename
    assert field(out, "OSType") == "linux"
    assert int(field(out, "CPUs")) == len(os.sched_getaffinity(0))
    os_release = Path("/etc/os-release").read_text().splitlines()
    pretty = next(line.split("=", 1)[1].strip().strip('"') for line in os_release if line.startswith("PRETTY_NAME="))
    assert field(out, "Operating System") == pretty
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    total = field(out, "Total Memory")
    assert total.endswith("GiB") and abs(float(total[:-3]) - mem_kib / 1024 / 1024) < 0.01
    assert field(out, "Server Version") == __version__
    assert field(out, "Storage Driver") == "overlay2"
    assert field(out, "Default Runtime") == "builtin"
    assert "builtin" in field(out, "Runtimes").split()
    for rt in ("runc", "crun"):
        assert (rt in field(out, "Runtimes").split()) == (shutil.which(rt) is not None)
    assert field(out, "Registry") == "https://index.docker.io/v1/"
    assert " Insecure Registries:\n  127.0.0.0/8\n" in out
    if shutil.which("findmnt"):
        fstype = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", str(root)], capture_output=True,
                                text=True).stdout.split()[-1]
        assert field(out, "Backing Filesystem") == {"ext4": "extfs", "ext3": "extfs", "ext2": "extfs"}.get(fstype,
                                                                                                          fstype)
    assert cli("info", "--format", "{{.CgroupVersion}}").stdout.strip() == cgroup_version()
    data = json.loads(cli("info", "--format", "{{json .}}").stdout)
    assert data["DockerRootDir"] == str(root) and data["NCPU"] == len(os.sched_getaffinity(0))


def test_info_shows_the_settings_in_effect(cli: CLI) -> None:
    env = {"DOCKYARD_SNAPSHOTTER": "copy", "DOCKYARD_RUNTIME": "runc", "DOCKYARD_INSECURE_REGISTRIES": "lab:5000",
           "DOCKYARD_REGISTRY_MIRRORS": "https://mirror.example,mirror2.example"}
    out = cli("info", env=env).stdout
    assert field(out, "Storage Driver") == "copy"
    assert field(out, "Default Runtime") == "runc"
    assert " Insecure Registries:\n  127.0.0.0/8\n  ::1/128\n  lab:5000\n" in out
    assert " Registry Mirrors:\n  https://mirror.example\n  https://mirror2.example\n" in out


def test_info_reads_the_configuration_file(cli: CLI, tmp_path: Path) -> None:
    if "apply_to_environ" not in (REPO / "src" / "dockyard" / "cli" / "main.py").read_text():
        pytest.skip("cli/main.py does not load the configuration file yet")
    f = tmp_path / "config.toml"
    f.write_text('registry-mirrors = ["https://from-file.example"]\nstorage-driver = "copy"\n')
    out = cli("info", env={"DOCKYARD_CONFIG": str(f)}).stdout
    assert " Registry Mirrors:\n  https://from-file.example\n" in out
    assert field(out, "Storage Driver") == "copy"
    # The environment beats the file.
    assert field(cli("info", env={"DOCKYARD_CONFIG": str(f), "DOCKYARD_SNAPSHOTTER": "overlay"}).stdout,
                 "Storage Driver") == "overlay2"
    f.write_text('registry-mirrors = ["x"]\nmax-concurrent-downloads = "lots"\n')
    r = cli("info", env={"DOCKYARD_CONFIG": str(f)}, check=False)
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.strip().startswith(f"Error: {f}:2: max-concurrent-downloads:"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# ---- system prune ---------------------------------------------------------------------------
def _dangling_image(cli: CLI, busybox_tar: Path) -> str:
    """An untagged image (another import of busybox, with a different config)."""
    return cli("import", "-c", 'CMD ["echo", "dangling"]', str(busybox_tar)).stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")
def test_system_prune_removes_stopped_containers_and_dangling_images(cli: CLI, busybox_image: str,
                                                                     busybox_tar: Path) -> None:
    dangling = _dangling_image(cli, busybox_tar)
    cli("run", "--name", "stopped", "busybox", "sh", "-c", "echo data > /f")
    stopped = cli("inspect", "--format", "{{.Id}}", "stopped").stdout.strip()
    cli("run", "-d", "--name", "running", "busybox", "sleep", "60")
    try:
        out = cli("system", "prune", "-f").stdout
        assert "Deleted Containers:\n" + stopped + "\n" in out
        assert f"Deleted Images:\ndeleted: {dangling}\n" in out
        assert out.splitlines()[-1].startswith("Total reclaimed space: ")
        assert out.splitlines()[-1] != "Total reclaimed space: 0B"
        assert cli("ps", "-a", "--format", "{{.Names}}").stdout.split() == ["running"]
        assert cli("images", "-aq", "--no-trunc").stdout.split() == [busybox_image]
        # Nothing left to prune: only the total.
        assert cli("system", "prune", "-f").stdout == "Total reclaimed space: 0B\n"
        # -a: images without a container go too; the running container's image stays.
        cli("tag", "busybox", "unused:1")
        other = cli("import", "-c", 'CMD ["true"]', str(busybox_tar), "other:1").stdout.strip()
        out = cli("system", "prune", "-a", "-f").stdout
        assert "untagged: other:1" in out and f"deleted: {other}" in out
        assert "busybox" not in out
        assert cli("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split() == \
            sorted(["busybox:latest", "unused:1"])
    finally:
        cli("rm", "-f", "running", check=False)


def test_system_prune_without_containers(cli: CLI, busybox_image: str, busybox_tar: Path) -> None:
    dangling = _dangling_image(cli, busybox_tar)
    cli("create", "--name", "created", "busybox", "true")  # never started: stopped, as Docker counts it
    out = cli("system", "prune", "--force", "--volumes").stdout
    assert "Deleted Containers:\n" in out and f"deleted: {dangling}" in out
    assert cli("ps", "-aq").stdout == ""
    assert cli("images", "-q", "--no-trunc").stdout.split() == [busybox_image]
    out = cli("system", "prune", "-af").stdout
    assert f"deleted: {busybox_image}" in out and "untagged: busybox:latest" in out
    assert cli("images", "-aq").stdout == ""


def test_system_prune_removes_old_build_cache_and_all_of_it_with_all(cli: CLI, busybox_image: str,
                                                                     root: Path) -> None:
    db = sqlite3.connect(root / "dockyard.db")
    with db:
        db.execute("INSERT INTO build_cache (key, image_id, created) VALUES (?,?,?)",
                   ("old-step", busybox_image, time.time() - 3 * 86400))
        db.execute("INSERT INTO build_cache (key, image_id, created) VALUES (?,?,?)",
                   ("new-step", busybox_image, time.time()))
    out = cli("system", "prune", "-f").stdout
    assert "Deleted build cache objects:\nold-step\n" in out
    assert [r[0] for r in db.execute("SELECT key FROM build_cache")] == ["new-step"]
    out = cli("system", "prune", "-f", "-a").stdout
    assert "Deleted build cache objects:\nnew-step\n" in out
    assert db.execute("SELECT count(*) FROM build_cache").fetchone()[0] == 0
    db.close()


def test_system_prune_volumes_removes_unused_anonymous_volumes(cli: CLI, root: Path) -> None:
    volumes = pytest.importorskip("dockyard.ops.volumes")
    from dockyard.engine import Engine

    with Engine(root) as eng:
        anon = volumes.create(eng)
        named = volumes.create(eng, "keepme")
        (volumes.mountpoint(eng, anon) / "data.bin").write_bytes(b"x" * 100_000)
    out = cli("system", "prune", "-f").stdout
    assert "Deleted Volumes:" not in out  # only with --volumes
    out = cli("system", "prune", "-f", "--volumes").stdout
    assert f"Deleted Volumes:\n{anon}\n" in out and named not in out
    assert out.splitlines()[-1] == "Total reclaimed space: 100kB"
    with Engine(root) as eng:
        assert [v["Name"] for v in volumes.ls(eng)] == ["keepme"]


def test_system_prune_asks_first_on_a_terminal_and_no_means_no(cli: CLI, busybox_image: str,
                                                                busybox_tar: Path) -> None:
    import pty

    dangling = _dangling_image(cli, busybox_tar)
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(DOCKYARD_BIN, [str(DOCKYARD_BIN), "--root", str(cli.root), "system", "prune"])
    buf = b""
    while b"[y/N]" not in buf:
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the child exited without asking
            break
        buf += chunk
    os.write(fd, b"n\n")
    os.waitpid(pid, 0)
    os.close(fd)
    text = buf.decode()
    assert "WARNING! This will remove:\n" in text.replace("\r\n", "\n")
    assert "  - all dangling images" in text and "  - unused build cache" in text
    assert dangling.removeprefix("sha256:")[:12] in cli("images", "-aq").stdout


# ---- completion and the reference ------------------------------------------------------------
def completion_script(shell: str) -> str:
    """From the command when main.py routes it, else from the module (the same function)."""
    from dockyard.cli import main

    if "completion" in main.COMMANDS:
        cmd = [str(Path(sys.executable).with_name("dockyard")), "completion", shell]
    else:
        cmd = [sys.executable, "-m", "dockyard.cli.completion", shell]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def test_every_command_hands_over_its_parser() -> None:
    from dockyard.cli import completion, main

    cmds = completion.commands()
    assert [c.error for c in cmds if c.error] == []
    names = {n for c in cmds for n in c.names}
    assert set(main.COMMANDS) <= names
    for group, (_, subs) in main.GROUPS.items():
        assert {f"{group} {s}" for s in subs} <= names
    run = next(c for c in cmds if c.name == "run")
    assert "container run" in run.names
    flags = {s for o in run.options for s in o.strings}
    assert {"--rm", "-it"} - flags == {"-it"} and {"-i", "-t", "--gpus", "--shm-size"} <= flags
    assert [p.kind for p in run.positionals] == ["image", "command"]


def test_bash_completion_is_valid_bash_and_completes_from_the_engine(cli: CLI, busybox_image: str,
                                                                      tmp_path: Path) -> None:
    script = completion_script("bash")
    assert "images" in script and "run" in script and "--rm" in script
    path = tmp_path / "dockyard.bash"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    cli("tag", "busybox", "your/duck:v2")
    cli("create", "--name", "merry_manatee", "busybox", "true")
    dy = str(Path(sys.executable).with_name("dockyard"))

    def complete(*words: str) -> list[str]:
        driver = (f"source {path}\n"
                  'COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n'
                  'COMP_WORDBREAKS=$\' \\t\\n"\\\'><=;|&(:\'\n'
                  '_dockyard; printf "%s\\n" "${COMPREPLY[@]}"')
        r = subprocess.run(["bash", "-c", driver, "bash", dy, "--root", str(cli.root), *words],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return sorted(x for x in r.stdout.splitlines() if x)

    assert complete("ru") == ["run"]
    assert "container" in complete("") and "images" in complete("")
    assert complete("container", "l") == ["list", "logs", "ls"]
    assert complete("run", "--r") == ["--read-only", "--rm", "--runtime"]
    assert complete("run", "--network", "") == ["bridge", "host", "none"]
    assert complete("run", "-it", "") == ["busybox:latest", "your/duck:v2"]
    assert complete("run", "your/duck", ":", "") == ["v2"]  # bash splits name:tag at the colon
    assert complete("run", "busybox", "-") == []  # the container's command line: not our flags
    assert complete("rm", "") == ["merry_manatee"]
    assert complete("start", "m") == ["merry_manatee"]
    assert complete("stop", "") == []  # only running containers can be stopped
    assert complete("image", "rm", "") == ["busybox:latest", "your/duck:v2"]
    assert complete("inspect", "") == ["busybox:latest", "merry_manatee", "your/duck:v2"]
    assert complete("save", "--format", "") == ["docker", "oci"]


def test_completion_completes_its_own_shells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With main.py routing `completion` (the line the lead adds), its argument completes too."""
    from dockyard.cli import completion, main

    monkeypatch.setitem(main.COMMANDS, "completion", ("dockyard.cli.completion:completion",
                                                      "Generate the autocompletion script for the specified shell"))
    path = tmp_path / "dockyard.bash"
    path.write_text(completion.bash_script())
    driver = (f"source {path}\n"
              'COMP_WORDS=(dockyard "$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _dockyard\n'
              'printf "%s\\n" "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "-c", driver, "bash", "completion", ""], capture_output=True, text=True).stdout
    assert out.split() == ["bash", "zsh"]
    assert "'1:shell:(bash zsh)'" in completion.zsh_script()


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completion_is_valid_zsh(tmp_path: Path) -> None:
    script = completion_script("zsh")
    assert script.startswith("#compdef dockyard\n")
    assert "__dockyard_cmd_run" in script and "'(--rm)--rm[Automatically remove the container when it exits]'" in script
    path = tmp_path / "_dockyard"
    path.write_text(script)
    r = subprocess.run(["zsh", "-n", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # It loads in a shell with the completion system, and registers itself.
    r = subprocess.run(["zsh", "-f", "-c", f"autoload -U compinit; compinit -u -D; source {path}; "
                                           "print -r -- $_comps[dockyard]"], capture_output=True, text=True)
    assert r.stdout.strip() == "_dockyard", r.stderr


def test_reference_docs_are_what_the_cli_says() -> None:
    r = subprocess.run([str(REPO / "scripts" / "gen-docs"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = (REPO / "docs" / "reference.md").read_text()
    assert "### dockyard run\n" in text and "| `--rm` |" in text
    assert "dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]" in text
