"""Settings: defaults < /etc/dockyard/config.toml < the user's file < the environment; clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard import config
from dockyard.config import ConfigError, Settings, apply_to_environ, config_files, load, user_file

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "docs" / "config.sample.toml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_files_or_environment() -> None:
    s = load(environ={}, files=[])
    assert s == Settings()
    assert s.root == "/var/lib/dockyard" and s.run_root == "/run/dockyard"
    assert s.runtime == "builtin" and s.storage_driver == "overlay"
    assert s.default_registry == "docker.io" and s.registry_mirrors == [] and s.insecure_registries == []
    assert s.default_network == "bridge" and s.log_level == "info" and s.max_concurrent_downloads == 3
    assert set(s.origin.values()) == {"default"} and s.files == []


def test_the_user_file_overrides_the_system_file_and_the_environment_overrides_both(tmp_path: Path) -> None:
    system = write(tmp_path / "etc" / "config.toml", """
        data-root = "/srv/system"
        default-runtime = "runc"
        registry-mirrors = ["https://mirror.system.example"]
        log-level = "debug"
    """.replace("\n        ", "\n"))
    user = write(tmp_path / "home" / "config.toml", """
        data-root = "/srv/user"
        registry-mirrors = ["https://a.example", "https://b.example"]
    """.replace("\n        ", "\n"))
    s = load(environ={"DOCKYARD_ROOT": "/srv/env"}, files=[str(system), str(user)])
    assert s.root == "/srv/env" and s.origin["root"] == "env"
    assert s.runtime == "runc" and s.origin["runtime"] == str(system)
    assert s.registry_mirrors == ["https://a.example", "https://b.example"]  # a later file replaces a list
    assert s.origin["registry_mirrors"] == str(user)
    assert s.log_level == "debug"
    assert s.files == [str(system), str(user)]


def test_which_files_are_read(tmp_path: Path) -> None:
    assert config_files({"HOME": "/home/u"}) == ["/etc/dockyard/config.toml", "/home/u/.config/dockyard/config.toml"]
    assert user_file({"XDG_CONFIG_HOME": "/x", "HOME": "/home/u"}) == "/x/dockyard/config.toml"
    assert config_files({"DOCKYARD_CONFIG": "/elsewhere.toml"}) == ["/elsewhere.toml"]
    assert config_files({"DOCKYARD_CONFIG": ""}) == []  # no file at all: what tests want
    f = write(tmp_path / "c.toml", 'default-network = "host"\n')
    assert load(environ={"DOCKYARD_CONFIG": str(f)}).default_network == "host"
    with pytest.raises(ConfigError, match="not found"):
        load(environ={"DOCKYARD_CONFIG": str(tmp_path / "missing.toml")})
    # The usual files may be missing: that is the normal case.
    assert load(environ={"XDG_CONFIG_HOME": str(tmp_path / "nothing")}, files=None).files in ([], [config.SYSTEM_FILE])


def test_xdg_config_home_is_where_the_user_file_lives(tmp_path: Path) -> None:
    write(tmp_path / "xdg" / "dockyard" / "config.toml", "max-concurrent-downloads = 8\n")
    s = load(environ={"XDG_CONFIG_HOME": str(tmp_path / "xdg")},
             files=[str(tmp_path / "no-system.toml"), user_file({"XDG_CONFIG_HOME": str(tmp_path / "xdg")})])
    assert s.max_concurrent_downloads == 8


def test_every_setting_from_a_file(tmp_path: Path) -> None:
    f = write(tmp_path / "c.toml", "\n".join([
        'data-root = "/data/dockyard"', 'exec-root = "/run/dy"', 'default-runtime = "crun"',
        'storage-driver = "overlay2"', 'default-registry = "registry.example.com"',
        'registry-mirrors = ["https://mirror.gcr.io"]', 'insecure-registries = ["10.0.0.0/8", "lab:5000"]',
        '[registry-endpoints]', '"docker.io" = "http://127.0.0.1:5000"', ""]))
    s = load(environ={}, files=[str(f)])
    assert (s.root, s.run_root, s.runtime, s.storage_driver) == ("/data/dockyard", "/run/dy", "crun", "overlay")
    assert s.default_registry == "registry.example.com"
    assert s.registry_mirrors == ["https://mirror.gcr.io"]
    assert s.insecure_registries == ["10.0.0.0/8", "lab:5000"]
    assert s.registry_endpoints == {"docker.io": "http://127.0.0.1:5000"}
    g = write(tmp_path / "d.toml", 'storage-driver = "vfs"\nlog-level = "WARN"\ndefault-network = "none"\n')
    s = load(environ={}, files=[str(g)])
    assert (s.storage_driver, s.log_level, s.default_network) == ("copy", "warn", "none")


def test_every_setting_from_the_environment() -> None:
    env = {"DOCKYARD_ROOT": "rel/root", "DOCKYARD_RUN_ROOT": "/run/x", "DOCKYARD_RUNTIME": "runc",
           "DOCKYARD_SNAPSHOTTER": "copy", "DOCKYARD_DEFAULT_REGISTRY": "r.example",
           "DOCKYARD_REGISTRY_MIRRORS": "https://m1, https://m2", "DOCKYARD_INSECURE_REGISTRIES": "a:5000,,b",
           "DOCKYARD_REGISTRY_ENDPOINTS": "docker.io=http://127.0.0.1:5000", "DOCKYARD_DEFAULT_NETWORK": "host",
           "DOCKYARD_LOG_LEVEL": "error", "DOCKYARD_MAX_CONCURRENT_DOWNLOADS": "12",
           "DOCKYARD_MAX_CONCURRENT_UPLOADS": "2"}
    s = load(environ=env, files=[])
    assert s.root == os.path.abspath("rel/root")
    assert (s.run_root, s.runtime, s.storage_driver, s.default_registry) == ("/run/x", "runc", "copy", "r.example")
    assert s.registry_mirrors == ["https://m1", "https://m2"] and s.insecure_registries == ["a:5000", "b"]
    assert s.registry_endpoints == {"docker.io": "http://127.0.0.1:5000"}
    assert (s.default_network, s.log_level, s.max_concurrent_downloads, s.max_concurrent_uploads) == \
        ("host", "error", 12, 2)
    assert set(s.origin.values()) == {"env"}
    # An empty variable is no setting (as `DOCKYARD_ROOT= dockyard ...` means in engine.default_root).
    assert load(environ={"DOCKYARD_ROOT": ""}, files=[]).root == "/var/lib/dockyard"


@pytest.mark.parametrize("text, line, words", [
    ('data-root = "/a"\nregistry-mirrors = ["x",\nlog-level = "info"\n', 3, "invalid TOML"),
    ('data-root = "/a"\n\nregistry-mirors = ["x"]\n', 3, "unknown setting 'registry-mirors' (did you mean "
                                                        "'registry-mirrors'?)"),
    ("registry_mirrors = []\n", 1, "did you mean 'registry-mirrors'?"),
    ('log-level = "info"\nmax-concurrent-downloads = "3"\n', 2, "max-concurrent-downloads: expected a whole "
                                                                "number from 1 to 64, not a string ('3')"),
    ("max-concurrent-downloads = 0\n", 1, "from 1 to 64"),
    ('data-root = "relative/dir"\n', 1, "expected an absolute path"),
    ("insecure-registries = [1, 2]\n", 1, "expected a list of strings"),
    ('storage-driver = "zfs"\n', 1, "expected one of overlay, overlay2, copy, vfs"),
    ('\n\n[registry]\nmirrors = ["x"]\n', 3, "unknown setting 'registry'"),
    ('registry-endpoints = "docker.io=x"\n', 1, "expected a table of strings"),
    ("data-root = \n", 1, "invalid TOML"),
])
def test_a_bad_file_is_one_error_naming_the_file_and_the_line(tmp_path: Path, text: str, line: int,
                                                               words: str) -> None:
    f = write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError) as e:
        load(environ={}, files=[str(f)])
    msg = str(e.value)
    assert msg.startswith(f"{f}:{line}:"), msg
    assert words in msg, msg
    assert "\n" not in msg


def test_bad_bytes_and_directories(tmp_path: Path) -> None:
    f = tmp_path / "config.toml"
    f.write_bytes(b'data-root = "/a"\nlog-level = "\xff"\n')
    with pytest.raises(ConfigError, match=rf"^{f}:2: not UTF-8"):
        load(environ={}, files=[str(f)])
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        load(environ={}, files=[str(tmp_path / "dir.toml")])


def test_a_bad_variable_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="DOCKYARD_MAX_CONCURRENT_DOWNLOADS='lots'"):
        load(environ={"DOCKYARD_MAX_CONCURRENT_DOWNLOADS": "lots"}, files=[])
    with pytest.raises(ConfigError, match="DOCKYARD_SNAPSHOTTER='zfs'"):
        load(environ={"DOCKYARD_SNAPSHOTTER": "zfs"}, files=[])


def test_apply_to_environ_exports_what_files_set_and_never_overrides_the_environment(tmp_path: Path) -> None:
    f = write(tmp_path / "c.toml", 'data-root = "/from/file"\ndefault-runtime = "runc"\n'
                                   'registry-mirrors = ["https://m1", "https://m2"]\nmax-concurrent-downloads = 7\n'
                                   'registry-endpoints = { "docker.io" = "http://127.0.0.1:5000" }\n')
    env = {"DOCKYARD_RUNTIME": "crun"}
    s = load(environ=env, files=[str(f)])
    exported = apply_to_environ(s, env)
    assert sorted(exported) == ["DOCKYARD_MAX_CONCURRENT_DOWNLOADS", "DOCKYARD_REGISTRY_ENDPOINTS",
                                "DOCKYARD_REGISTRY_MIRRORS", "DOCKYARD_ROOT"]
    assert env == {"DOCKYARD_RUNTIME": "crun", "DOCKYARD_ROOT": "/from/file",
                   "DOCKYARD_REGISTRY_MIRRORS": "https://m1,https://m2", "DOCKYARD_MAX_CONCURRENT_DOWNLOADS": "7",
                   "DOCKYARD_REGISTRY_ENDPOINTS": "docker.io=http://127.0.0.1:5000"}
    # Defaults are not exported: a module's own default stays the only default.
    assert apply_to_environ(load(environ={}, files=[]), {}) == []
    # What was exported reads back as the same settings.
    assert load(environ=env, files=[]).values() == s.values()


def test_the_modules_that_read_the_environment_see_the_file(tmp_path: Path) -> None:
    """The point of apply_to_environ: existing readers (RegistryConfig, default_root) honour the file."""
    from dockyard.registry.config import RegistryConfig

    f = write(tmp_path / "c.toml", 'data-root = "/from/file"\nregistry-mirrors = ["mirror.example"]\n'
                                   'insecure-registries = ["10.1.2.0/24"]\nmax-concurrent-downloads = 9\n'
                                   'registry-endpoints = { "docker.io" = "http://127.0.0.1:5000" }\n')
    env: dict[str, str] = {}
    apply_to_environ(load(environ=env, files=[str(f)]), env)
    rc = RegistryConfig.from_env(env)
    assert rc.mirrors == ["mirror.example"] and rc.max_concurrent_downloads == 9
    assert rc.is_insecure("10.1.2.3:5000") and not rc.is_insecure("10.1.3.3:5000")
    assert rc.endpoint_overrides == {"docker.io": "http://127.0.0.1:5000"}
    assert env["DOCKYARD_ROOT"] == "/from/file"


def test_the_sample_file_is_valid_and_documents_every_setting() -> None:
    text = SAMPLE.read_text()
    assert load(environ={}, files=[str(SAMPLE)]) == Settings()  # all commented out: it changes nothing
    for key, var, _ in config.FIELDS.values():
        assert f"\n# {key} = " in text, f"{key} has no example in {SAMPLE.name}"
        assert var in text, f"{var} is not mentioned in {SAMPLE.name}"


def test_the_sample_examples_uncommented_are_valid_settings(tmp_path: Path) -> None:
    keys = {k for k, _, _ in config.FIELDS.values()}
    examples = [line[2:] for line in SAMPLE.read_text().splitlines()
                if line.startswith("# ") and line[2:].split(" = ", 1)[0] in keys]
    f = write(tmp_path / "all.toml", "\n".join(examples) + "\n")
    s = load(environ={}, files=[str(f)])
    assert all(origin == str(f) for origin in s.origin.values()), s.origin
    assert s.registry_endpoints == {"docker.io": "http://127.0.0.1:5000"}


def test_loading_is_lazy_and_cheap(tmp_path: Path) -> None:
    """No file: tomllib is never imported; importing the module pulls in neither typing nor dataclasses."""
    code = ("import sys; import dockyard.config as c; c.apply_to_environ(c.load()); "
            "print(sorted(m for m in ('tomllib', 'typing', 'dataclasses', 'difflib') if m in sys.modules))")
    env = {**os.environ, "DOCKYARD_CONFIG": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "[]"
    f = write(tmp_path / "c.toml", 'log-level = "info"\n')
    env["DOCKYARD_CONFIG"] = str(f)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert "tomllib" in out  # only now


def test_version_flag_does_not_load_the_configuration() -> None:
    """`dockyard --version` stays the ~15 ms path: no configuration module, no file read."""
    code = ("import sys; from dockyard.cli.main import main; main(['--version']); "
            "assert 'dockyard.config' not in sys.modules, 'config imported'; "
            "assert 'tomllib' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Dockyard version ")
