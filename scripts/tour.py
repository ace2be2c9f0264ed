"""The tour of intro-to-docker.md, run for real with Dockyard (called by scripts/tour).

Dockyard's registry serves on 127.0.0.1 and stands in for Docker Hub (DOCKYARD_REGISTRY_ENDPOINTS
maps docker.io to it), so the seed's own names work: `pull daphne/duck`, `push your/duck:v2`.
Interactive steps (`run -it`, `start -ai`) run under a real pseudo-terminal and are typed into.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DY = str(REPO / ".venv" / "bin" / "dockyard")
CACHE = Path(os.environ.get("DOCKYARD_IMAGE_CACHE", "/var/cache/dockyard-test-images"))
ROOT = Path(os.environ.get("DOCKYARD_TOUR_ROOT", "/var/lib/dockyard-tour"))
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def say(text: str) -> None:
    print(f"\n{DIM}# {text}{RESET}", flush=True)


def show(cmd: str) -> None:
    print(f"{BOLD}$ {cmd}{RESET}", flush=True)


def dy(*args: str, check: bool = True, quiet_cmd: bool = False, input: str | None = None) -> str:
    """Run a dockyard command as the user would type it, print its real output, return it."""
    if not quiet_cmd:
        show("dockyard " + " ".join(_quote(a) for a in args))
    p = subprocess.run([DY, *args], capture_output=True, text=True, input=input, env=ENV)
    out = p.stdout + p.stderr
    if out:
        print(out, end="" if out.endswith("\n") else "\n", flush=True)
    if check and p.returncode != 0:
        raise SystemExit(f"tour: step failed (exit {p.returncode}): dockyard {' '.join(args)}")
    return p.stdout


def _quote(a: str) -> str:
    return a if re.fullmatch(r"[\w@%+=:,./-]+", a) else "'" + a.replace("'", "'\\''") + "'"


def interactive(args: list[str], script: list[tuple[str, str]], *, settle: float = 0.3) -> int:
    """Run ``dockyard ARGS`` under a pty; for each (expect, send): wait for ``expect``, type ``send``."""
    show("dockyard " + " ".join(args))
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(DY, ["dockyard", *args], ENV)
    buf = b""

    def pump(until: bytes | None, timeout: float) -> None:
        nonlocal buf
        end = time.time() + timeout
        while time.time() < end:
            if until is not None and until in buf:
                return
            if select.select([fd], [], [], 0.05)[0]:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                sys.stdout.write(ANSI.sub(b"", data).decode(errors="replace").replace("\r\n", "\n"))
                sys.stdout.flush()

    for expect, send in script:
        pump(expect.encode() if expect else None, 20 if expect else settle)
        buf = b""
        time.sleep(0.05)
        os.write(fd, send.encode())
    pump(None, 3)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    print(flush=True)
    return os.waitstatus_to_exitcode(status)


def free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return int(s.getsockname()[1])
        except OSError:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20) -> None:
    import urllib.request

    end = time.time() + timeout
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"tour: the registry did not answer at {url}")


def reset() -> None:
    """Start from a clean tour root: no containers, no tour images, an empty registry."""
    if (ROOT / "dockyard.db").exists():
        ids = subprocess.run([DY, "ps", "-aq"], capture_output=True, text=True, env=ENV).stdout.split()
        if ids:
            subprocess.run([DY, "rm", "-f", *ids], capture_output=True, env=ENV)
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)


ENV = dict(os.environ)


def main() -> int:
    t0 = time.time()
    port = free_port(int(os.environ.get("DOCKYARD_TOUR_PORT", "5000")))
    ENV.update(DOCKYARD_ROOT=str(ROOT / "engine"), DOCKYARD_REGISTRY_ENDPOINTS=f"docker.io=http://127.0.0.1:{port}",
               TERM=os.environ.get("TERM", "xterm"))
    reset()
    say(f"Dockyard's own registry on 127.0.0.1:{port} stands in for Docker Hub in this tour")
    show(f"dockyard registry serve --addr 127.0.0.1:{port} --root {ROOT / 'registry'} &")
    reg = subprocess.Popen([DY, "registry", "serve", "--addr", f"127.0.0.1:{port}", "--root", str(ROOT / "registry")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/")
        return tour()
    finally:
        reg.send_signal(signal.SIGTERM)
        try:
            reg.wait(10)
        except subprocess.TimeoutExpired:
            reg.kill()
        ids = subprocess.run([DY, "ps", "-q"], capture_output=True, text=True, env=ENV).stdout.split()
        if ids:
            subprocess.run([DY, "rm", "-f", *ids], capture_output=True, env=ENV)
        print(f"\n{DIM}# the tour took {time.time() - t0:.1f} s{RESET}")


def tour() -> int:
    say("Daphne publishes her duck: a Debian image, built and pushed to the registry")
    dy("import", "-c", 'CMD ["bash"]', str(CACHE / "debian-bookworm.tar"), "debian:bookworm", quiet_cmd=True)
    dy("build", "-q", "-t", "daphne/duck", str(REPO / "tour" / "duck"))
    dy("push", "daphne/duck")
    dy("rmi", "daphne/duck", quiet_cmd=True)

    say("Docker containers are easy to install: fetch Daphne's container")
    dy("pull", "daphne/duck")
    dy("images")
    say("docker run daphne/duck (here detached, so the tour can go on)")
    dy("run", "-d", "--name", "happy_hamster", "daphne/duck")
    dy("ps")

    say("Containers come from other containers: a bash session inside the duck")
    code = interactive(["run", "-it", "--name", "merry_manatee", "daphne/duck", "bash"], [
        ("# ", "touch new_file && ls -l new_file\r"),
        ("# ", "sleep 100\r"),
        ("sleep 100", "\x03"),   # Ctrl-C: bash's last status becomes 130
        ("# ", "exit\r"),
    ])
    print(f"(exit status {code})")
    say("Run the image again: a new container, and new_file is not there")
    interactive(["run", "-it", "--name", "shady_giraffe", "daphne/duck", "bash"], [
        ("# ", "ls new_file\r"),
        ("# ", "touch new_file1 && ls -l new_file1\r"),
        ("# ", "\x10\x11"),      # Ctrl-P Ctrl-Q: detach, the container keeps running
    ])
    dy("container", "ls", "-a")
    say("The stopped container kept its files: resume it where we left off")
    interactive(["start", "-ai", "merry_manatee"], [
        ("# ", "ls -l new_file\r"),
        ("# ", "exit\r"),
    ])
    dy("ps")

    say("Commit the running shady_giraffe and share it")
    dy("commit", "-m", "fork Daphne's duck", "shady_giraffe", "your/duck:v2")
    dy("push", "your/duck:v2")
    dy("images")
    dy("rmi", "your/duck:v2", quiet_cmd=True)
    dy("pull", "your/duck:v2")
    dy("run", "--rm", "your/duck:v2", "ls", "-l", "new_file1")

    say("Containers come from recipes: the seed's Dockerfile, as written")
    work = ROOT / "recipe"
    work.mkdir(exist_ok=True)
    seed = ("FROM daphne/duck   # Defines the base container\n"
            "RUN touch new_file1   # new_file1 will be part of our snapshot\n"
            "CMD ls                # This will be run whenever the container is started\n")
    (work / "Dockerfile").write_text(seed)
    show("cat Dockerfile")
    print(seed, end="")
    show(f"cd {work}")
    os.chdir(work)
    dy("build", "-t", "your/duck:v3", ".", check=False)
    say("In Docker a '#' after an instruction is not a comment: FROM got extra words. Fix that line")
    fixed = seed.replace("FROM daphne/duck   # Defines the base container\n",
                         "# Defines the base container\nFROM daphne/duck\n")
    (work / "Dockerfile").write_text(fixed)
    show("cat Dockerfile")
    print(fixed, end="")
    dy("build", "-t", "your/duck:v3", ".")
    dy("images")
    interactive(["run", "-it", "your/duck:v3"], [])

    say("Change a line at the bottom: only that step runs again")
    changed = fixed.replace("CMD ls ", "CMD ls config")
    changed = changed.replace("snapshot\n", "snapshot\nRUN mkdir config && mv new_file1 config/   # a new step\n")
    (work / "Dockerfile").write_text(changed)
    show("cat Dockerfile")
    print(changed, end="")
    dy("build", "-t", "your/duck:v4", ".")
    dy("history", "your/duck:v4")
    return 0


if __name__ == "__main__":
    sys.exit(main())
