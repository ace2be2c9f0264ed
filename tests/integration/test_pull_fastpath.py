"""The pull's stdlib transport against Debian's real registry: a ``dockyard pull`` process imports
neither httpx nor (over plain HTTP) ssl, and a pull from a bearer-token registry fetches its token
without httpx as well; what it stored is what skopeo pushed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registry_peer_fixtures import (  # noqa: E402
    Server,
    TokenServer,
    busybox_files,
    docker_config,
    env_with_src,
    make_oci_layout,
    real_registry,
    skopeo,
    start_real_registry,
)

__all__ = ["docker_config", "real_registry"]

pytestmark = pytest.mark.peers

_CODE = ("import sys\nfrom dockyard.cli.main import main\nrc = main(sys.argv[1:])\n"
         "print(rc, sorted(m for m in ('httpx', 'httpcore', 'h11', 'ssl', 'http.client') if m in sys.modules))\n")


def _env() -> dict[str, str]:
    env = env_with_src()
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
              "DOCKYARD_REGISTRY_MIRRORS"):
        env.pop(k, None)
    return env


def _seed(reg: Server, tmp: Path, repo: str, *creds: str) -> str:
    layout = tmp / f"layout-{repo.replace('/', '-')}"
    img = make_oci_layout(layout, "1", [busybox_files(), {"data/x": b"x" * 300_000}])
    extra = [f"--dest-creds={creds[0]}"] if creds else []
    skopeo("copy", "--dest-tls-verify=false", *extra, f"oci:{layout}:1", f"docker://{reg.host}/{repo}:1")
    return img.config_digest


def _pull(root: Path, name: str) -> list[str]:
    r = subprocess.run([sys.executable, "-c", _CODE, "--root", str(root), "pull", "-q", name],
                       capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_a_pull_process_imports_neither_httpx_nor_ssl(real_registry: Server, tmp_path: Path,
                                                      docker_config: Path) -> None:
    config = _seed(real_registry, tmp_path, "fastpull/lean")
    name = f"{real_registry.host}/fastpull/lean:1"
    assert _pull(tmp_path / "root", name) == [name, "0 []"]
    r = subprocess.run([sys.executable, "-m", "dockyard", "--root", str(tmp_path / "root"), "image", "inspect",
                        "--format", "{{.Id}}", name], capture_output=True, text=True, env=_env(), timeout=60)
    assert r.stdout.strip() == config, r.stderr


def test_a_bearer_token_pull_imports_no_httpx(tmp_path: Path, docker_config: Path) -> None:
    token = TokenServer(tmp_path, {"u": "p"}, anonymous_pull=True, key_name="token")
    reg = start_real_registry(tmp_path / "reg", token=token)
    try:
        _seed(reg, tmp_path, "fastpull/tok", "u:p")
        name = f"{reg.host}/fastpull/tok:1"
        out = _pull(tmp_path / "root", name)
        assert out[0] == name
        assert out[1].startswith("0 [") and "httpx" not in out[1] and "h11" not in out[1]
        assert (None, ["repository:fastpull/tok:pull"]) in token.requests
    finally:
        reg.stop()
        token.stop()
