"""The README's main job, end to end: the tour of intro-to-docker.md, interactive steps included.

scripts/tour.py drives `run -it` and `start -ai` through a real pseudo-terminal; this test runs it
(also under a pty, as a user at a terminal would) and checks what the user would look at.
"""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, base_image_tar

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the tour runs real containers")


def test_the_tour_walks_the_seed_for_real(tmp_path: Path) -> None:
    base_image_tar("busybox")
    base_image_tar("debian")
    env = {**os.environ, "DOCKYARD_TOUR_ROOT": str(tmp_path / "tour"), "DOCKYARD_TOUR_PORT": "0", "TERM": "xterm"}
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, [sys.executable, str(REPO / "scripts" / "tour.py")], env)
    out = b""
    end = time.time() + 600
    while time.time() < end:
        if select.select([fd], [], [], 0.5)[0]:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
    _, status = os.waitpid(pid, 0)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace")).replace("\r\n", "\n")
    assert os.waitstatus_to_exitcode(status) == 0, text[-3000:]

    def after(cmd: str) -> str:
        """The output printed after a command line, up to the next command."""
        i = text.index(f"$ {cmd}\n") + len(cmd) + 3
        j = text.find("\n$ ", i)
        return text[i:j if j != -1 else None]

    assert "Status: Downloaded newer image for daphne/duck:latest" in after("dockyard pull daphne/duck")
    images = after("dockyard images").splitlines()
    assert images[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(r.startswith("daphne/duck ") and r.split()[1] == "latest" for r in images[1:])
    assert "happy_hamster" in after("dockyard ps")
    session = after("dockyard run -it --name merry_manatee daphne/duck bash")
    assert re.search(r"root@[0-9a-f]{12}:/# ", session) and "new_file" in session and "^C" in session
    assert "(exit status 130)" in session
    fresh = after("dockyard run -it --name shady_giraffe daphne/duck bash")
    assert "cannot access 'new_file'" in fresh and "new_file1" in fresh
    ls_a = after("dockyard container ls -a")
    assert re.search(r"merry_manatee", ls_a) and "Exited (130)" in ls_a
    assert re.search(r"Up .*shady_giraffe", ls_a) and re.search(r"Up .*happy_hamster", ls_a)
    assert "new_file" in after("dockyard start -ai merry_manatee")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n?", after("dockyard commit -m 'fork Daphne'\\''s duck' shady_giraffe "
                                                        "your/duck:v2"))
    push = after("dockyard push your/duck:v2")
    assert "Mounted from daphne/duck" in push and re.search(r"v2: digest: sha256:[0-9a-f]{64}", push)
    assert "Downloaded newer image for your/duck:v2" in after("dockyard pull your/duck:v2")
    assert "new_file1" in after("dockyard run --rm your/duck:v2 ls -l new_file1")
    assert "a '#' after an instruction is not a comment" in text
    builds = [m.start() for m in re.finditer(r"\$ dockyard build -t your/duck:v4 \.", text)]
    assert builds, "the cached rebuild did not run"
    rebuild = text[builds[0]:]
    assert re.search(r"RUN touch new_file1 .*\n#\d+ CACHED", rebuild)
    assert re.search(r"RUN mkdir config .*\n#\d+ DONE", rebuild)
    assert "the tour took" in text
