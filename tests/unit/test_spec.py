"""``build_spec``: docker run options -> OCI config.json, checked against what Docker produces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from dockyard.errors import InvalidArgument
from dockyard.runtime import seccomp_default
from dockyard.runtime.runopts import (
    DeviceMapping,
    RunOptions,
    Ulimit,
    parse_mount,
    parse_port,
    parse_volume,
)
from dockyard.runtime.spec import (
    DEFAULT_CAPABILITIES,
    DEFAULT_MASKED_PATHS,
    DEFAULT_PATH_ENV,
    DEFAULT_READONLY_PATHS,
    HostDevice,
    all_capabilities,
    build_spec,
    capability_mask,
    command_args,
    container_env,
    device_cgroup_rules,
    device_from_path,
    effective_config,
    list_host_devices,
    merge_tmpfs_options,
    replace_or_append_env,
    resolve_device,
    resolve_user,
    tweak_capabilities,
    validate_spec,
    working_dir,
)

CID = "0123456789ab" + "c" * 52
PASSWD = """root:x:0:0:root:/root:/bin/ash
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
nobody:x:65534:65534:nobody:/:/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
"""
GROUP = """root:x:0:root
bin:x:1:root,bin,daemon
daemon:x:2:root,bin,daemon
wheel:x:10:root
audio:x:29:app
video:x:44:app,nobody
nogroup:x:65533:
nobody:x:65534:
app:x:1000:
docker:x:999:app
"""
IMAGE: dict[str, Any] = {
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"],
    "Cmd": ["/bin/sh"],
}


def spec_for(
    opts: RunOptions | None = None, image: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "container_id": CID,
        "rootfs": "/var/lib/dockyard/containers/x/rootfs",
        "cgroups_path": "/dockyard/" + CID,
        "passwd_text": PASSWD,
        "group_text": GROUP,
        "arch": "amd64",
        "kernel": (6, 8),
    }
    defaults.update(kwargs)
    return build_spec(IMAGE if image is None else image, opts or RunOptions(image="alpine"), **defaults)


def mount_at(spec: dict[str, Any], dest: str) -> dict[str, Any]:
    found = [m for m in spec["mounts"] if m["destination"] == dest]
    assert len(found) == 1, (dest, spec["mounts"])
    return found[0]


def allowed(spec: dict[str, Any]) -> set[str]:
    return seccomp_default.allowed_syscalls(spec["linux"]["seccomp"])


def _err(fn, *args, **kwargs) -> str:
    with pytest.raises(InvalidArgument) as exc:
        fn(*args, **kwargs)
    return str(exc.value)


# --- process.args ---------------------------------------------------------------------------------

EP_IMAGE = {"Entrypoint": ["/entrypoint.sh"], "Cmd": ["serve", "--port", "80"]}


@pytest.mark.parametrize(
    ("image", "entrypoint", "cmd", "expected"),
    [
        # image CMD only
        ({"Cmd": ["/bin/sh"]}, None, [], ["/bin/sh"]),
        ({"Cmd": ["/bin/sh"]}, None, ["echo", "hi"], ["echo", "hi"]),
        # image ENTRYPOINT + CMD: a command replaces CMD only
        (EP_IMAGE, None, [], ["/entrypoint.sh", "serve", "--port", "80"]),
        (EP_IMAGE, None, ["bash"], ["/entrypoint.sh", "bash"]),
        # --entrypoint replaces ENTRYPOINT and drops the image's CMD
        (EP_IMAGE, ["/bin/sh"], [], ["/bin/sh"]),
        (EP_IMAGE, ["/bin/sh"], ["-c", "date"], ["/bin/sh", "-c", "date"]),
        # --entrypoint "" clears both; a command then runs alone
        (EP_IMAGE, [""], ["ls", "/"], ["ls", "/"]),
        # ENTRYPOINT only
        ({"Entrypoint": ["/bin/echo"]}, None, [], ["/bin/echo"]),
        ({"Entrypoint": ["/bin/echo"]}, None, ["a", "b"], ["/bin/echo", "a", "b"]),
        # null fields as Docker writes them
        ({"Entrypoint": None, "Cmd": ["top"]}, None, [], ["top"]),
        (None, None, ["true"], ["true"]),
    ],
)
def test_command_args(image, entrypoint, cmd, expected) -> None:
    opts = RunOptions(image="x", entrypoint=entrypoint, cmd=cmd)
    assert command_args(image, opts) == expected
    assert spec_for(opts, image=image or {})["process"]["args"] == expected


@pytest.mark.parametrize(
    ("image", "entrypoint", "cmd"),
    [({}, None, []), ({"Cmd": None}, None, []), (EP_IMAGE, [""], []), ({"Cmd": ["sh"]}, [""], [])],
)
def test_no_command(image, entrypoint, cmd) -> None:
    opts = RunOptions(image="x", entrypoint=entrypoint, cmd=cmd)
    assert _err(command_args, image, opts) == "no command specified"


def test_init_wraps_the_command() -> None:
    spec = spec_for(RunOptions(image="x", init=True), init_path="/usr/libexec/docker-init")
    assert spec["process"]["args"] == ["/sbin/docker-init", "--", "/bin/sh"]
    assert mount_at(spec, "/sbin/docker-init") == {
        "destination": "/sbin/docker-init",
        "type": "bind",
        "source": "/usr/libexec/docker-init",
        "options": ["bind", "ro"],
    }
    # not with a shared pid namespace
    spec = spec_for(RunOptions(image="x", init=True, pid="host"), init_path="/i")
    assert spec["process"]["args"] == ["/bin/sh"]
    assert _err(spec_for, RunOptions(image="x", init=True)) == (
        'exec: "docker-init": executable file not found in $PATH'
    )


# --- process.env ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_env", "user_env", "tty", "expected"),
    [
        ([], [], False, [f"PATH={DEFAULT_PATH_ENV}", "HOSTNAME=h"]),
        ([], [], True, [f"PATH={DEFAULT_PATH_ENV}", "HOSTNAME=h", "TERM=xterm"]),
        # the image's PATH replaces the default in place; other image variables follow
        (["PATH=/opt/bin", "A=1"], [], False, ["PATH=/opt/bin", "HOSTNAME=h", "A=1"]),
        # user variables come before the image's remaining ones and win over them
        (
            ["A=1", "B=2"],
            ["B=3", "C=4"],
            False,
            [f"PATH={DEFAULT_PATH_ENV}", "HOSTNAME=h", "B=3", "C=4", "A=1"],
        ),
        # users may override HOSTNAME and TERM too
        ([], ["TERM=dumb", "HOSTNAME=x"], True, [f"PATH={DEFAULT_PATH_ENV}", "HOSTNAME=x", "TERM=dumb"]),
        # a bare K (unset on the host) removes the image's K
        (["A=1", "B=2"], ["A"], False, [f"PATH={DEFAULT_PATH_ENV}", "HOSTNAME=h", "B=2"]),
        (["A=1"], ["PATH"], False, ["HOSTNAME=h", "A=1"]),
        # empty values are kept
        (["A=1"], ["A="], False, [f"PATH={DEFAULT_PATH_ENV}", "HOSTNAME=h", "A="]),
    ],
)
def test_container_env(image_env, user_env, tty, expected) -> None:
    opts = RunOptions(image="x", env=user_env, tty=tty)
    assert container_env({"Env": image_env}, opts, "h") == expected


def test_env_in_spec_uses_the_short_id_as_hostname() -> None:
    spec = spec_for()
    assert spec["hostname"] == CID[:12]
    assert spec["process"]["env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"HOSTNAME={CID[:12]}",
        "LANG=C.UTF-8",
    ]
    spec = spec_for(RunOptions(image="x", hostname="web", tty=True))
    assert spec["hostname"] == "web"
    assert spec["process"]["env"][1:] == ["HOSTNAME=web", "TERM=xterm", "LANG=C.UTF-8"]
    assert spec["process"]["terminal"] is True
    # host network: the host's name
    spec = spec_for(RunOptions(image="x", network="host"), host_hostname="myhost")
    assert spec["hostname"] == "myhost"
    # host UTS: no hostname in the spec, HOSTNAME still set
    spec = spec_for(RunOptions(image="x", uts="host"))
    assert "hostname" not in spec
    assert f"HOSTNAME={CID[:12]}" in spec["process"]["env"]


def test_replace_or_append_env() -> None:
    assert replace_or_append_env(["A=1", "B=2"], ["B=3", "C=4", "A"]) == ["B=3", "C=4"]
    assert replace_or_append_env([], ["X"]) == []


# --- cwd, user ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_wd", "opt_wd", "expected"),
    [
        ("", "", "/"),
        ("/app", "", "/app"),
        ("/app", "/srv/", "/srv"),
        ("/a/../b", "", "/b"),
        (None, "/x", "/x"),
    ],
)
def test_working_dir(image_wd, opt_wd, expected) -> None:
    opts = RunOptions(image="x", workdir=opt_wd)
    assert working_dir({"WorkingDir": image_wd}, opts) == expected
    assert spec_for(opts, image={"Cmd": ["x"], "WorkingDir": image_wd})["process"]["cwd"] == expected


def test_working_dir_must_be_absolute() -> None:
    assert _err(working_dir, {}, RunOptions(workdir="rel")) == (
        "the working directory 'rel' is invalid, it needs to be an absolute path"
    )


@pytest.mark.parametrize(
    ("spec", "group_add", "expected"),
    [
        ("", [], (0, 0, [0, 1, 2, 10])),
        ("root", [], (0, 0, [0, 1, 2, 10])),
        ("0", [], (0, 0, [0, 1, 2, 10])),
        ("app", [], (1000, 1000, [1000, 29, 44, 999])),
        ("1000", [], (1000, 1000, [1000, 29, 44, 999])),
        ("nobody", [], (65534, 65534, [65534, 44])),
        # user:group sets the primary group and skips supplementary groups
        ("app:video", [], (1000, 44, [44])),
        ("app:44", [], (1000, 44, [44])),
        ("1000:1234", [], (1000, 1234, [1234])),
        # numbers without passwd entries are fine
        ("4242", [], (4242, 0, [0])),
        ("4242:4343", [], (4242, 4343, [4343])),
        # --group-add by name or number
        ("app", ["wheel", "5000"], (1000, 1000, [1000, 29, 44, 999, 10, 5000])),
        ("", ["audio"], (0, 0, [0, 1, 2, 10, 29])),
    ],
)
def test_resolve_user(spec, group_add, expected) -> None:
    assert resolve_user(spec, PASSWD, GROUP, group_add) == expected


def test_resolve_user_errors() -> None:
    assert (
        _err(resolve_user, "foo", PASSWD, GROUP)
        == "unable to find user foo: no matching entries in passwd file"
    )
    assert (
        _err(resolve_user, "foo", None, None) == "unable to find user foo: no matching entries in passwd file"
    )
    assert _err(resolve_user, "app:nogrp", PASSWD, GROUP) == (
        "unable to find group nogrp: no matching entries in group file"
    )
    assert _err(resolve_user, "app", PASSWD, GROUP, ["nogrp"]) == (
        "Unable to find group nogrp: no matching entries in group file"
    )
    assert _err(resolve_user, "-1", PASSWD, GROUP) == "uids and gids must be in range 0-2147483647"


def test_resolve_user_without_files() -> None:
    assert resolve_user("", None, None) == (0, 0, [0])
    assert resolve_user("1000:1000", None, None, ["7"]) == (1000, 1000, [1000, 7])


def test_user_in_spec() -> None:
    spec = spec_for(RunOptions(image="x", user="app", group_add=["wheel"]))
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 29, 44, 999, 10]}
    spec = spec_for(RunOptions(image="x"), image={"Cmd": ["x"], "User": "nobody"})
    assert spec["process"]["user"]["uid"] == 65534
    assert _err(spec_for, RunOptions(image="x", user="ghost")) == (
        "unable to find user ghost: no matching entries in passwd file"
    )


# --- capabilities ---------------------------------------------------------------------------------


def test_default_capabilities() -> None:
    spec = spec_for()
    caps = spec["process"]["capabilities"]
    assert caps == {
        "bounding": list(DEFAULT_CAPABILITIES),
        "effective": list(DEFAULT_CAPABILITIES),
        "permitted": list(DEFAULT_CAPABILITIES),
    }
    assert capability_mask(caps["effective"]) == 0xA80425FB
    assert f"{capability_mask(caps['effective']):016x}" == "00000000a80425fb"


def test_cap_add_drop() -> None:
    caps = tweak_capabilities(["NET_ADMIN", "sys_time"], ["CAP_CHOWN", "mknod"])
    assert "CAP_NET_ADMIN" in caps and "CAP_SYS_TIME" in caps
    assert "CAP_CHOWN" not in caps and "CAP_MKNOD" not in caps
    assert capability_mask(caps) == 0xA80425FB - (1 << 0) - (1 << 27) + (1 << 12) + (1 << 25)
    # add ALL minus a drop
    caps = tweak_capabilities(["ALL"], ["NET_RAW"], last_cap=40)
    assert caps == [c for c in all_capabilities(40) if c != "CAP_NET_RAW"]
    # drop ALL then add back
    assert tweak_capabilities(["CHOWN", "KILL"], ["ALL"]) == ["CAP_CHOWN", "CAP_KILL"]
    assert tweak_capabilities([], ["all"]) == []
    # adding and dropping the same capability keeps it (the add wins)
    assert "CAP_NET_ADMIN" in tweak_capabilities(["NET_ADMIN"], ["NET_ADMIN"])
    # no duplicates
    assert tweak_capabilities(["CHOWN"], []).count("CAP_CHOWN") == 1
    assert _err(tweak_capabilities, ["BOGUS"], []) == 'unknown capability: "CAP_BOGUS"'
    # capabilities the kernel does not have are unknown
    assert _err(tweak_capabilities, ["BPF"], [], last_cap=37) == 'unknown capability: "CAP_BPF"'


def test_privileged_capabilities() -> None:
    caps = tweak_capabilities(privileged=True, last_cap=40)
    assert len(caps) == 41 and caps[0] == "CAP_CHOWN" and caps[-1] == "CAP_CHECKPOINT_RESTORE"
    assert capability_mask(caps) == (1 << 41) - 1
    assert len(tweak_capabilities(privileged=True, last_cap=37)) == 38


# --- mounts ---------------------------------------------------------------------------------------

DEFAULT_DESTS = ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]


def test_default_mounts() -> None:
    spec = spec_for()
    assert [m["destination"] for m in spec["mounts"]] == DEFAULT_DESTS
    assert mount_at(spec, "/proc") == {
        "destination": "/proc",
        "type": "proc",
        "source": "proc",
        "options": ["nosuid", "noexec", "nodev"],
    }
    assert mount_at(spec, "/dev") == {
        "destination": "/dev",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
    }
    assert mount_at(spec, "/dev/pts")["options"] == [
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
        "gid=5",
    ]
    assert mount_at(spec, "/sys") == {
        "destination": "/sys",
        "type": "sysfs",
        "source": "sysfs",
        "options": ["nosuid", "noexec", "nodev", "ro"],
    }
    assert mount_at(spec, "/sys/fs/cgroup")["type"] == "cgroup"
    assert "ro" in mount_at(spec, "/sys/fs/cgroup")["options"]
    assert mount_at(spec, "/dev/mqueue")["type"] == "mqueue"
    assert mount_at(spec, "/dev/shm") == {
        "destination": "/dev/shm",
        "type": "tmpfs",
        "source": "shm",
        "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
    }


def test_shm_size_and_ipc() -> None:
    spec = spec_for(RunOptions(image="x", shm_size=128 * 1024**2))
    assert mount_at(spec, "/dev/shm")["options"][-1] == "size=134217728"
    spec = spec_for(RunOptions(image="x", ipc="none"))
    assert "/dev/shm" not in [m["destination"] for m in spec["mounts"]]
    spec = spec_for(RunOptions(image="x", ipc="shareable"), shm_path="/var/lib/c/shm")
    assert mount_at(spec, "/dev/shm") == {
        "destination": "/dev/shm",
        "type": "bind",
        "source": "/var/lib/c/shm",
        "options": ["rbind", "rprivate"],
    }


def test_network_files() -> None:
    spec = spec_for(hostname_path="/c/hostname", hosts_path="/c/hosts", resolv_conf_path="/c/resolv.conf")
    assert [m["destination"] for m in spec["mounts"]][len(DEFAULT_DESTS) :] == [
        "/etc/resolv.conf",
        "/etc/hostname",
        "/etc/hosts",
    ]
    assert mount_at(spec, "/etc/hosts") == {
        "destination": "/etc/hosts",
        "type": "bind",
        "source": "/c/hosts",
        "options": ["rbind", "rprivate"],
    }
    spec = spec_for(RunOptions(image="x", read_only=True), hosts_path="/c/hosts")
    assert mount_at(spec, "/etc/hosts")["options"] == ["rbind", "ro", "rprivate"]
    # a user mount on the same path replaces the generated one
    opts = RunOptions(image="x", mounts=[parse_volume("/my/hosts:/etc/hosts:ro")])
    spec = spec_for(opts, hosts_path="/c/hosts")
    assert mount_at(spec, "/etc/hosts")["source"] == "/my/hosts"


def test_user_mounts() -> None:
    opts = RunOptions(
        image="x",
        mounts=[
            parse_volume("/host/data:/data"),
            parse_volume("/host/conf:/etc/app:ro"),
            parse_volume("cache:/var/cache/app"),
            parse_volume("/host/shared:/mnt/shared:rshared"),
            parse_mount("type=bind,src=/h/a,dst=/a/b/c,bind-recursive=disabled"),
            parse_mount("type=tmpfs,dst=/scratch,tmpfs-size=64m"),
        ],
        tmpfs={"/run": "rw,size=65536k", "/tmp": "exec"},
    )
    spec = spec_for(opts, volume_paths={"/var/cache/app": "/var/lib/dockyard/volumes/cache/_data"})
    assert mount_at(spec, "/data") == {
        "destination": "/data",
        "type": "bind",
        "source": "/host/data",
        "options": ["rbind", "rprivate"],
    }
    assert mount_at(spec, "/etc/app")["options"] == ["rbind", "ro", "rprivate"]
    assert mount_at(spec, "/var/cache/app") == {
        "destination": "/var/cache/app",
        "type": "bind",
        "source": "/var/lib/dockyard/volumes/cache/_data",
        "options": ["rbind"],
    }
    assert mount_at(spec, "/mnt/shared")["options"] == ["rbind", "rshared"]
    assert mount_at(spec, "/a/b/c")["options"] == ["bind", "rprivate"]
    assert mount_at(spec, "/run") == {
        "destination": "/run",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["noexec", "nosuid", "nodev", "rprivate", "rw", "size=65536k"],
    }
    assert mount_at(spec, "/tmp")["options"] == ["nosuid", "nodev", "rprivate", "exec"]
    assert mount_at(spec, "/scratch")["options"] == ["noexec", "nosuid", "nodev", "rprivate", "size=64m"]
    assert spec["linux"]["rootfsPropagation"] == "shared"
    # user mounts come after the defaults, shallow paths first
    dests = [m["destination"] for m in spec["mounts"]][len(DEFAULT_DESTS) :]
    depths = [len(d.split("/")) for d in dests]
    assert depths == sorted(depths)


def test_duplicate_mount_point() -> None:
    opts = RunOptions(
        image="x", mounts=[parse_volume("/a:/data"), parse_mount("type=bind,src=/b,dst=/data/")]
    )
    assert _err(spec_for, opts) == "Duplicate mount point: /data"


def test_image_volumes_become_anonymous_volumes() -> None:
    image = {"Cmd": ["db"], "Volumes": {"/var/lib/db": {}, "/logs": {}}}
    opts = RunOptions(image="x", mounts=[parse_volume("/host/logs:/logs")])
    spec = spec_for(opts, image=image, volume_paths={"/var/lib/db": "/vols/abc/_data"})
    assert mount_at(spec, "/var/lib/db")["source"] == "/vols/abc/_data"
    assert mount_at(spec, "/logs")["source"] == "/host/logs"
    with pytest.raises(ValueError):
        spec_for(opts, image=image)


def test_user_dev_mount_drops_default_dev_mounts() -> None:
    spec = spec_for(RunOptions(image="x", mounts=[parse_volume("/dev:/dev")]))
    dests = [m["destination"] for m in spec["mounts"]]
    assert dests == ["/proc", "/sys", "/sys/fs/cgroup", "/dev"]


def test_merge_tmpfs_options() -> None:
    assert merge_tmpfs_options(["noexec", "nosuid", "nodev", "rprivate", "exec", "size=1m", "size=2m"]) == [
        "nosuid",
        "nodev",
        "rprivate",
        "exec",
        "size=2m",
    ]
    assert merge_tmpfs_options(["rprivate", "shared", "ro", "rw", "defaults"]) == ["shared", "rw"]
    assert _err(merge_tmpfs_options, ["bogus"]) == 'invalid tmpfs option ["bogus"]'


def test_read_only_rootfs() -> None:
    spec = spec_for(RunOptions(image="x", read_only=True, mounts=[parse_volume("/h:/data")]))
    assert spec["root"] == {"path": "/var/lib/dockyard/containers/x/rootfs", "readonly": True}
    assert "ro" not in mount_at(spec, "/proc")["options"]
    assert "ro" not in mount_at(spec, "/dev/shm")["options"]
    assert "ro" in mount_at(spec, "/sys")["options"]
    assert mount_at(spec, "/data")["options"] == ["rbind", "rprivate"]
    assert "readonly" not in spec_for()["root"]


def test_masked_and_readonly_paths() -> None:
    linux = spec_for()["linux"]
    assert linux["maskedPaths"] == list(DEFAULT_MASKED_PATHS)
    assert linux["readonlyPaths"] == list(DEFAULT_READONLY_PATHS)
    assert "/proc/kcore" in linux["maskedPaths"] and "/sys/devices/virtual/powercap" in linux["maskedPaths"]
    assert "/proc/sys" in linux["readonlyPaths"]
    linux = spec_for(RunOptions(image="x", security_opt=["systempaths=unconfined"]))["linux"]
    assert "maskedPaths" not in linux and "readonlyPaths" not in linux


# --- privileged -----------------------------------------------------------------------------------


def test_privileged() -> None:
    host = [
        HostDevice("/dev/null", "c", 1, 3),
        HostDevice("/dev/sda", "b", 8, 0, 0o660, 0, 6),
        HostDevice("/dev/fuse", "c", 10, 229),
    ]
    spec = spec_for(RunOptions(image="x", privileged=True), host_devices=host, last_cap=40)
    linux = spec["linux"]
    assert "seccomp" not in linux
    assert "maskedPaths" not in linux and "readonlyPaths" not in linux
    assert len(spec["process"]["capabilities"]["effective"]) == 41
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert linux["devices"][1] == {
        "path": "/dev/sda",
        "type": "b",
        "major": 8,
        "minor": 0,
        "fileMode": 0o660,
        "uid": 0,
        "gid": 6,
    }
    assert "ro" not in mount_at(spec, "/sys")["options"]
    assert "ro" not in mount_at(spec, "/sys/fs/cgroup")["options"]


def test_writable_cgroups() -> None:
    spec = spec_for(RunOptions(image="x", security_opt=["writable-cgroups=true"]))
    assert "ro" not in mount_at(spec, "/sys/fs/cgroup")["options"]
    assert "ro" in mount_at(spec, "/sys")["options"]


# --- namespaces -----------------------------------------------------------------------------------


def ns_of(spec: dict[str, Any]) -> list[dict[str, str]]:
    return spec["linux"]["namespaces"]


def test_default_namespaces() -> None:
    assert ns_of(spec_for()) == [
        {"type": "mount"},
        {"type": "network"},
        {"type": "uts"},
        {"type": "pid"},
        {"type": "ipc"},
        {"type": "cgroup"},
    ]


@pytest.mark.parametrize(
    ("opts", "paths", "expected"),
    [
        ({"network": "none"}, {}, ["mount", "network", "uts", "pid", "ipc", "cgroup"]),
        ({"network": "host"}, {}, ["mount", "uts", "pid", "ipc", "cgroup"]),
        ({"pid": "host"}, {}, ["mount", "network", "uts", "ipc", "cgroup"]),
        ({"ipc": "host"}, {}, ["mount", "network", "uts", "pid", "cgroup"]),
        ({"uts": "host"}, {}, ["mount", "network", "pid", "ipc", "cgroup"]),
        ({"cgroupns": "host"}, {}, ["mount", "network", "uts", "pid", "ipc"]),
        ({"ipc": "shareable"}, {}, ["mount", "network", "uts", "pid", "ipc", "cgroup"]),
    ],
)
def test_namespace_modes(opts, paths, expected) -> None:
    spec = spec_for(RunOptions(image="x", **opts), namespace_paths=paths)
    assert [n["type"] for n in ns_of(spec)] == expected
    assert all("path" not in n for n in ns_of(spec))


def test_joined_namespaces() -> None:
    opts = RunOptions(image="x", network="container:web", pid="container:web", ipc="container:web")
    paths = {"network": "/proc/42/ns/net", "pid": "/proc/42/ns/pid", "ipc": "/proc/42/ns/ipc"}
    spec = spec_for(opts, namespace_paths=paths)
    assert ns_of(spec) == [
        {"type": "mount"},
        {"type": "network", "path": "/proc/42/ns/net"},
        {"type": "uts"},
        {"type": "pid", "path": "/proc/42/ns/pid"},
        {"type": "ipc", "path": "/proc/42/ns/ipc"},
        {"type": "cgroup"},
    ]
    assert "sysctl" not in spec["linux"]
    with pytest.raises(ValueError):
        spec_for(opts)
    spec = spec_for(namespace_paths={"network": "/run/netns/x"})
    assert ns_of(spec)[1] == {"type": "network", "path": "/run/netns/x"}


def test_namespace_errors() -> None:
    assert _err(spec_for, RunOptions(image="x", ipc="bogus")) == "invalid IPC mode: bogus"
    assert _err(spec_for, RunOptions(image="x", uts="host", hostname="h")) == (
        "conflicting options: hostname and the UTS mode"
    )
    assert _err(spec_for, RunOptions(image="x", network="container:a", hostname="h")) == (
        "conflicting options: hostname and the network mode"
    )
    assert _err(spec_for, RunOptions(image="x", network="container:a", publish=parse_port("80"))) == (
        "conflicting options: port publishing and the container type network mode"
    )
    assert _err(spec_for, RunOptions(image="x", network="host", sysctls={"net.ipv4.ip_forward": "1"})) == (
        'sysctl "net.ipv4.ip_forward" is not allowed in the hosts network namespace'
    )


def test_sysctls() -> None:
    spec = spec_for(RunOptions(image="x", sysctls={"net.core.somaxconn": "1024"}, domainname="example.com"))
    assert spec["linux"]["sysctl"] == {
        "kernel.domainname": "example.com",
        "net.ipv4.ping_group_range": "0 2147483647",
        "net.ipv4.ip_unprivileged_port_start": "0",
        "net.core.somaxconn": "1024",
    }
    assert "sysctl" not in spec_for(RunOptions(image="x", network="host"))["linux"]
    assert "sysctl" not in spec_for(default_net_sysctls=False)["linux"]
    # the user's value wins over the defaults
    spec = spec_for(RunOptions(image="x", sysctls={"net.ipv4.ip_unprivileged_port_start": "1024"}))
    assert spec["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"] == "1024"


# --- resources ------------------------------------------------------------------------------------

DEFAULT_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
]


def test_default_resources() -> None:
    linux = spec_for()["linux"]
    assert linux["resources"] == {"devices": DEFAULT_DEVICE_RULES}
    assert linux["cgroupsPath"] == "/dockyard/" + CID
    assert spec_for()["process"]["oomScoreAdj"] == 0
    assert "rlimits" not in spec_for()["process"]


def test_resources_mapping() -> None:
    opts = RunOptions(
        image="x",
        memory=512 * 1024**2,
        memory_reservation=256 * 1024**2,
        cpus=1_500_000_000,
        cpu_shares=512,
        cpuset_cpus="0-1",
        cpuset_mems="0",
        pids_limit=100,
        blkio_weight=300,
        memory_swappiness=10,
        oom_kill_disable=True,
        oom_score_adj=500,
    )
    spec = spec_for(opts)
    res = spec["linux"]["resources"]
    assert res["memory"] == {
        "limit": 536870912,
        "reservation": 268435456,
        "swap": 1073741824,  # twice --memory, Docker's default
        "swappiness": 10,
        "disableOOMKiller": True,
    }
    assert res["cpu"] == {"shares": 512, "quota": 150000, "period": 100000, "cpus": "0-1", "mems": "0"}
    assert res["pids"] == {"limit": 100}
    assert res["blockIO"] == {"weight": 300}
    assert spec["process"]["oomScoreAdj"] == 500


def test_memory_swap_variants() -> None:
    res = spec_for(RunOptions(image="x", memory=64 * 1024**2, memory_swap=128 * 1024**2))["linux"][
        "resources"
    ]
    assert res["memory"] == {"limit": 67108864, "swap": 134217728}
    res = spec_for(RunOptions(image="x", memory=64 * 1024**2, memory_swap=-1))["linux"]["resources"]
    assert res["memory"] == {"limit": 67108864}


def test_cpu_quota_period() -> None:
    res = spec_for(RunOptions(image="x", cpu_quota=50000, cpu_period=200000))["linux"]["resources"]
    assert res["cpu"] == {"quota": 50000, "period": 200000}
    res = spec_for(RunOptions(image="x", cpus=500_000_000))["linux"]["resources"]
    assert res["cpu"] == {"quota": 50000, "period": 100000}
    assert spec_for(RunOptions(image="x", cpu_shares=1))["linux"]["resources"]["cpu"] == {"shares": 2}


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"memory": 1024}, "Minimum memory limit allowed is 6MB"),
        (
            {"memory": 10 * 1024**2, "memory_swap": 8 * 1024**2},
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
        (
            {"memory_swap": 8 * 1024**2},
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ),
        (
            {"memory": 10 * 1024**2, "memory_reservation": 20 * 1024**2},
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ),
        (
            {"cpus": 10**9, "cpu_period": 100000},
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ),
        (
            {"cpus": 10**9, "cpu_quota": 100000},
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ),
        ({"cpus": 9 * 10**9}, "Range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available"),
        (
            {"cpu_period": 10},
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        ({"cpu_quota": 10}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        ({"oom_score_adj": 1001}, "Invalid value 1001, range for oom score adj is [-1000, 1000]"),
        ({"shm_size": -1}, "SHM size can not be less than 0"),
        ({"memory_swappiness": 101}, "invalid value: 101. Valid memory swappiness range is 0-100"),
    ],
)
def test_resource_errors(opts, message) -> None:
    assert _err(spec_for, RunOptions(image="x", **opts), host_cpus=4) == message


def test_ulimits() -> None:
    opts = RunOptions(
        image="x", ulimits=[Ulimit("nproc", 512, 1024), Ulimit("nofile", 1024, 2048), Ulimit("core", -1, -1)]
    )
    assert spec_for(opts)["process"]["rlimits"] == [
        {"type": "RLIMIT_CORE", "hard": 2**64 - 1, "soft": 2**64 - 1},
        {"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024},
        {"type": "RLIMIT_NPROC", "hard": 1024, "soft": 512},
    ]


def test_devices() -> None:
    devs = [HostDevice("/dev/xvda", "b", 8, 0, 0o660, 0, 6, "r"), HostDevice("/dev/fuse", "c", 10, 229)]
    opts = RunOptions(
        image="x",
        devices=[DeviceMapping("/dev/sda", "/dev/xvda", "r"), DeviceMapping("/dev/fuse", "/dev/fuse")],
        device_cgroup_rules=["c 42:* rmw", "a *:* r"],
    )
    linux = spec_for(opts, devices=devs)["linux"]
    assert linux["devices"] == [d.to_oci() for d in devs]
    assert linux["resources"]["devices"] == DEFAULT_DEVICE_RULES + [
        {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"},
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
        {"allow": True, "type": "c", "major": 42, "minor": -1, "access": "rmw"},
        {"allow": True, "type": "a", "major": -1, "minor": -1, "access": "r"},
    ]
    with pytest.raises(ValueError):
        spec_for(opts)
    assert _err(device_cgroup_rules, ["z 1:1 r"]) == "invalid device cgroup rule format: 'z 1:1 r'"


# --- security options -----------------------------------------------------------------------------


def test_no_new_privileges() -> None:
    assert "noNewPrivileges" not in spec_for()["process"]
    for opt in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"):
        assert spec_for(RunOptions(image="x", security_opt=[opt]))["process"]["noNewPrivileges"] is True
    assert (
        "noNewPrivileges"
        not in spec_for(RunOptions(image="x", security_opt=["no-new-privileges=false"]))["process"]
    )


def test_apparmor() -> None:
    assert "apparmorProfile" not in spec_for()["process"]
    assert spec_for(apparmor_enabled=True)["process"]["apparmorProfile"] == "docker-default"
    spec = spec_for(RunOptions(image="x", privileged=True), apparmor_enabled=True)
    assert spec["process"]["apparmorProfile"] == "unconfined"
    spec = spec_for(RunOptions(image="x", security_opt=["apparmor=mine"]), apparmor_enabled=True)
    assert spec["process"]["apparmorProfile"] == "mine"


# --- seccomp --------------------------------------------------------------------------------------

DANGEROUS = [
    "mount",
    "umount2",
    "reboot",
    "kexec_load",
    "kexec_file_load",
    "unshare",
    "setns",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "ptrace",
    "swapon",
    "pivot_root",
    "keyctl",
    "add_key",
    "open_by_handle_at",
    "io_uring_setup",
    "perf_event_open",
    "acct",
    "settimeofday",
    "syslog",
    "sethostname",
    "userfaultfd",
    "clone3",
    "chroot",
]


def test_seccomp_default_profile() -> None:
    spec = spec_for()
    sc = spec["linux"]["seccomp"]
    assert sc["defaultAction"] == "SCMP_ACT_ERRNO"
    assert sc["defaultErrnoRet"] == 1
    assert sc["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = allowed(spec)
    for ok in (
        "read",
        "write",
        "openat",
        "execve",
        "exit_group",
        "futex",
        "rseq",
        "arch_prctl",
        "modify_ldt",
        "chown",
        "setuid",
        "kill",
        "process_vm_readv",
    ):
        assert ok in names, ok
    # ptrace is allowed by the kernel >= 4.8 rule
    assert "ptrace" in names
    for bad in DANGEROUS:
        if bad in ("ptrace", "chroot"):
            continue
        assert bad not in names, bad
    # chroot: CAP_SYS_CHROOT is a default capability
    assert "chroot" in names
    # clone only without namespace flags; clone3 answers ENOSYS so libc falls back to clone
    clone = [r for r in sc["syscalls"] if r["names"] == ["clone"]]
    assert clone == [
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    ]
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in sc["syscalls"]
    # socket: AF_ALG (38) and AF_VSOCK (40) are not in the allowed families
    socket_rules = [r for r in sc["syscalls"] if r["names"] == ["socket"]]
    assert {
        "names": ["socket"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 12, "op": "SCMP_CMP_LT"}],
    } in socket_rules
    families = {r["args"][0]["value"] for r in socket_rules if r["args"][0]["op"] == "SCMP_CMP_EQ"}
    assert 38 not in families and 40 not in families and 16 in families and 17 in families
    # no includes/excludes/comment leak into the OCI form
    assert all(set(r) <= {"names", "action", "args", "errnoRet"} for r in sc["syscalls"])


def test_seccomp_cap_sys_admin_unlocks_mount() -> None:
    spec = spec_for(RunOptions(image="x", cap_add=["SYS_ADMIN"]))
    names = allowed(spec)
    for ok in (
        "mount",
        "umount2",
        "unshare",
        "setns",
        "clone",
        "clone3",
        "bpf",
        "perf_event_open",
        "sethostname",
    ):
        assert ok in names, ok
    assert "reboot" not in names and "kexec_load" not in names
    assert not [r for r in spec["linux"]["seccomp"]["syscalls"] if r["names"] == ["clone3"]]


@pytest.mark.parametrize(
    ("cap", "syscalls"),
    [
        ("SYS_BOOT", ["reboot"]),
        ("SYS_MODULE", ["init_module", "finit_module", "delete_module"]),
        ("SYS_PTRACE", ["kcmp", "pidfd_getfd", "process_madvise"]),
        ("SYS_TIME", ["settimeofday", "clock_settime"]),
        ("SYS_PACCT", ["acct"]),
        ("SYS_RAWIO", ["iopl", "ioperm"]),
        ("DAC_READ_SEARCH", ["open_by_handle_at"]),
        ("SYSLOG", ["syslog"]),
        ("BPF", ["bpf"]),
        ("PERFMON", ["perf_event_open"]),
        ("SYS_NICE", ["mbind", "set_mempolicy"]),
    ],
)
def test_seccomp_capability_rules(cap: str, syscalls: list[str]) -> None:
    before = allowed(spec_for())
    after = allowed(spec_for(RunOptions(image="x", cap_add=[cap])))
    for name in syscalls:
        assert name not in before and name in after, name


def test_seccomp_drop_chroot() -> None:
    assert "chroot" not in allowed(spec_for(RunOptions(image="x", cap_drop=["SYS_CHROOT"])))


def test_seccomp_arch_and_kernel_conditions() -> None:
    arm = allowed(spec_for(arch="arm64"))
    assert "arch_prctl" not in arm and "set_tls" in arm and "cacheflush" in arm
    sc = spec_for(arch="arm64")["linux"]["seccomp"]
    assert sc["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    s390 = spec_for(arch="s390x")["linux"]["seccomp"]
    clone = [r for r in s390["syscalls"] if r["names"] == ["clone"]]
    assert clone[0]["args"][0]["index"] == 1
    # the kernel >= 4.8 condition
    assert "ptrace" not in allowed(spec_for(kernel=(4, 4)))
    # an unknown arch: no architectures list, arch-specific rules left out
    sc = spec_for(arch="sparc64")["linux"]["seccomp"]
    assert "architectures" not in sc


def test_seccomp_unconfined_and_custom() -> None:
    assert "seccomp" not in spec_for(RunOptions(image="x", security_opt=["seccomp=unconfined"]))["linux"]
    assert "seccomp" in spec_for(RunOptions(image="x", security_opt=["seccomp=builtin"]))["linux"]
    custom = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"name": "chmod", "action": "SCMP_ACT_ERRNO"},
            {
                "names": ["mkdir"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 13,
                "includes": {"caps": ["CAP_CHOWN"]},
            },
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_CHOWN"]}},
        ],
    }
    text = json.dumps(custom)
    opts = RunOptions(image="x", security_opt=["seccomp=/etc/my.json"])
    sc = spec_for(opts, seccomp_profile=text)["linux"]["seccomp"]
    assert sc == {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        ],
    }
    # the daemon-style form: the profile's JSON inline
    sc2 = spec_for(RunOptions(image="x", security_opt=["seccomp=" + text]))["linux"]["seccomp"]
    assert sc2 == sc
    assert _err(spec_for, opts) == "opening seccomp profile (/etc/my.json) failed: the profile was not read"
    assert _err(spec_for, opts, seccomp_profile="{bad").startswith("Decoding seccomp profile failed: ")
    both = json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x"], "archMap": [{}]})
    assert _err(spec_for, opts, seccomp_profile=both) == (
        "both 'architectures' and 'archMap' are specified in the seccomp profile, use either "
        "'architectures' or 'archMap'"
    )
    # an empty profile disables seccomp
    assert "seccomp" not in spec_for(opts, seccomp_profile="{}")["linux"]


def test_seccomp_data_is_docker_default() -> None:
    profile = seccomp_default.default_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    allow_all = set(profile["syscalls"][0]["names"])
    assert len(allow_all) == 361
    for name in (
        "io_uring_setup",
        "io_uring_enter",
        "keyctl",
        "add_key",
        "kexec_load",
        "mount",
        "reboot",
        "unshare",
        "socket",
        "clone",
        "clone3",
        "ptrace",
        "personality",
        "userfaultfd",
        "pivot_root",
    ):
        assert name not in allow_all, name
    for name in (
        "name_to_handle_at",
        "statx",
        "openat2",
        "close_range",
        "landlock_create_ruleset",
        "map_shadow_stack",
        "futex_waitv",
        "mseal",
        "listmount",
        "pkey_alloc",
    ):
        assert name in allow_all, name
    # a fresh copy each time
    profile["syscalls"].clear()
    assert seccomp_default.default_profile()["syscalls"]


def test_seccomp_profile_is_loaded_lazily() -> None:
    code = (
        "import dockyard.runtime.spec, dockyard.runtime.seccomp_default as d;"
        "print(d._default_profile_text.cache_info().currsize)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


# --- structure ------------------------------------------------------------------------------------


def test_spec_is_well_formed_json() -> None:
    opts = RunOptions(
        image="x",
        tty=True,
        mounts=[parse_volume("/a:/b")],
        tmpfs={"/run": ""},
        ulimits=[Ulimit("nofile", 10, 20)],
        cap_add=["NET_ADMIN"],
        security_opt=["no-new-privileges"],
        annotations={"org.example": "1"},
        console_size=(24, 80),
    )
    spec = spec_for(opts, hostname_path="/h", hosts_path="/hs", resolv_conf_path="/r")
    assert validate_spec(spec) == []
    assert json.loads(json.dumps(spec)) == spec
    assert spec["ociVersion"] == "1.1.0"
    assert spec["annotations"] == {"org.example": "1"}
    assert spec["process"]["consoleSize"] == {"height": 24, "width": 80}
    for key in ("ociVersion", "process", "root", "hostname", "mounts", "linux"):
        assert key in spec
    for key in ("terminal", "user", "args", "env", "cwd", "capabilities", "oomScoreAdj"):
        assert key in spec["process"]


def test_validate_spec_reports_problems() -> None:
    problems = validate_spec(
        {"process": {"args": [], "cwd": "rel"}, "root": {}, "mounts": [{"destination": "x"}]}
    )
    assert "ociVersion is required" in problems
    assert "root.path is required" in problems
    assert "process.args must be a non-empty list of strings" in problems
    assert "process.cwd must be an absolute path" in problems
    assert "mounts[0].destination must be an absolute path" in problems
    assert "linux is required" in problems
    bad_ns = spec_for()
    bad_ns["linux"]["namespaces"].append({"type": "pid"})
    assert validate_spec(bad_ns) == ["linux.namespaces has a duplicate type"]


def test_pure() -> None:
    opts = RunOptions(image="x", env=["A=1"], mounts=[parse_volume("/a:/b")])
    before = repr(opts)
    image = json.loads(json.dumps(IMAGE))
    assert spec_for(opts, image=image) == spec_for(opts, image=image)
    assert repr(opts) == before and image == IMAGE


def test_effective_config() -> None:
    image = {
        "Env": ["A=1"],
        "Cmd": ["serve"],
        "Entrypoint": ["/ep"],
        "Labels": {"a": "1"},
        "User": "app",
        "WorkingDir": "/app",
        "ExposedPorts": {"80/tcp": {}},
        "StopSignal": "SIGQUIT",
    }
    opts = RunOptions(image="img", env=["B=2"], labels={"b": "2"}, publish=parse_port("8080:443"))
    cfg = effective_config(image, opts, container_id=CID)
    assert cfg["Hostname"] == CID[:12]
    assert cfg["Env"] == ["B=2", "A=1"]
    assert cfg["Cmd"] == ["serve"] and cfg["Entrypoint"] == ["/ep"]
    assert cfg["Labels"] == {"a": "1", "b": "2"}
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "443/tcp": {}}
    assert cfg["User"] == "app" and cfg["WorkingDir"] == "/app" and cfg["StopSignal"] == "SIGQUIT"
    cfg = effective_config(image, RunOptions(image="img", entrypoint=[""], cmd=["ls"]), container_id=CID)
    assert cfg["Entrypoint"] is None and cfg["Cmd"] == ["ls"]


# --- impure helpers -------------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_device_from_path() -> None:
    dev = device_from_path("/dev/null", "/dev/mynull", "rw")
    assert dev is not None
    assert (dev.path, dev.type, dev.major, dev.minor, dev.permissions) == ("/dev/mynull", "c", 1, 3, "rw")
    assert resolve_device(DeviceMapping("/dev/null", "/dev/null", "rwm"))[0].major == 1


def test_resolve_device_errors(tmp_path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    assert device_from_path(str(f)) is None
    assert _err(resolve_device, DeviceMapping(str(f), "/dev/x")) == (
        f'error gathering device information while adding custom device "{f}": not a device node'
    )
    assert _err(resolve_device, DeviceMapping(str(tmp_path / "nope"), "/dev/x")) == (
        f'error gathering device information while adding custom device "{tmp_path / "nope"}": '
        "No such file or directory"
    )
    assert list_host_devices(str(tmp_path)) == []


def test_fifo_is_a_device(tmp_path) -> None:
    fifo = tmp_path / "sub" / "fifo"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    devs = resolve_device(DeviceMapping(str(tmp_path), "/dev/mine"))
    assert [(d.path, d.type) for d in devs] == [("/dev/mine/sub/fifo", "p")]
    assert [d.path for d in list_host_devices(str(tmp_path))] == [str(fifo)]


def test_default_seccomp_is_cached_per_inputs(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_RUN_ROOT", str(tmp_path))
    kw: dict[str, Any] = {"bounding_caps": ["CAP_CHOWN", "CAP_SYS_ADMIN"], "arch": "amd64", "kernel": (6, 1)}
    fresh = seccomp_default.setup_seccomp(seccomp_default.default_profile(), **kw)
    first = seccomp_default.default_oci_seccomp(**kw)
    assert first == fresh
    cached = list((tmp_path / "seccomp-oci").iterdir())
    assert len(cached) == 1
    assert seccomp_default.default_oci_seccomp(**kw) == fresh  # read back from the cache
    # other inputs, other entries: never the wrong profile
    other = seccomp_default.default_oci_seccomp(**{**kw, "bounding_caps": ["CAP_CHOWN"]})
    assert other == seccomp_default.setup_seccomp(seccomp_default.default_profile(),
                                                  **{**kw, "bounding_caps": ["CAP_CHOWN"]})
    assert other != fresh
    assert len(list((tmp_path / "seccomp-oci").iterdir())) == 2
    # a damaged entry is recomputed
    cached[0].write_text("{not json")
    assert seccomp_default.default_oci_seccomp(**kw) == fresh
