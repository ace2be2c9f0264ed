"""The ``docker run`` flag-value parsers: good values, and bad ones with Docker's exact messages."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from dockyard.runtime.runopts import (
    DeviceMapping,
    DeviceRequest,
    Mount,
    PortBinding,
    RestartPolicy,
    RunOptions,
    Ulimit,
    cpus_to_cfs,
    parse_cap,
    parse_cpus,
    parse_device,
    parse_device_cgroup_rule,
    parse_env,
    parse_env_file,
    parse_env_text,
    parse_expose,
    parse_gpus,
    parse_label,
    parse_memory,
    parse_memory_swap,
    parse_mount,
    parse_network_mode,
    parse_port,
    parse_restart,
    parse_security_opt,
    parse_shm_size,
    parse_signal,
    parse_size,
    parse_sysctl,
    parse_tmpfs,
    parse_ulimit,
    parse_user,
    parse_volume,
    read_seccomp_profile,
    tmpfs_data,
    validate_cgroupns_mode,
    validate_ipc_mode,
    validate_pid_mode,
    validate_uts_mode,
)


def _err(fn, *args, **kwargs) -> str:
    with pytest.raises(InvalidArgument) as exc:
        fn(*args, **kwargs)
    return str(exc.value)


# --- sizes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("1024", 1024),
        ("512b", 512),
        ("512B", 512),
        ("1k", 1024),
        ("1K", 1024),
        ("1kb", 1024),
        ("1KiB", 1024),
        ("512m", 512 * 1024**2),
        ("512M", 512 * 1024**2),
        ("512mb", 512 * 1024**2),
        ("512MB", 512 * 1024**2),
        ("1g", 1024**3),
        ("1.5g", 1536 * 1024**2),
        ("2t", 2 * 1024**4),
        ("1p", 1024**5),
        ("32 MiB", 32 * 1024**2),
        ("0.5k", 512),
    ],
)
def test_parse_size(value: str, expected: int) -> None:
    assert parse_size(value) == expected
    assert parse_memory(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "invalid size: 'abc'"),
        ("", "invalid size: ''"),
        ("-1", "invalid size: '-1'"),
        ("1.2.3", "invalid size: '1.2.3'"),
        ("12x", "invalid suffix: 'x'"),
        ("1mm", "invalid suffix: 'mm'"),
        ("1bb", "invalid suffix: 'bb'"),
        ("1kib2", "invalid size: '1kib2'"),
        ("1gigs", "invalid suffix: 'gigs'"),
    ],
)
def test_parse_size_errors(value: str, message: str) -> None:
    assert _err(parse_memory, value) == message


def test_memory_swap_and_shm() -> None:
    assert parse_memory_swap("-1") == -1
    assert parse_memory_swap("1g") == 1024**3
    assert parse_shm_size("64m") == 67108864
    assert _err(parse_shm_size, "lots") == "invalid size: 'lots'"


# --- cpus -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "nano", "quota"),
    [
        ("1", 10**9, 100000),
        ("1.5", 1_500_000_000, 150000),
        ("0.5", 5 * 10**8, 50000),
        ("3/2", 1_500_000_000, 150000),
    ],
)
def test_parse_cpus(value: str, nano: int, quota: int) -> None:
    assert parse_cpus(value) == nano
    assert cpus_to_cfs(nano) == (quota, 100000)


def test_parse_cpus_errors() -> None:
    assert _err(parse_cpus, "abc") == "failed to parse abc as a rational number"
    assert _err(parse_cpus, "0.0000000001") == "value is too precise"


# --- user, env, labels, sysctls -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("root", ("root", None)),
        ("1000", ("1000", None)),
        ("1000:1000", ("1000", "1000")),
        ("app:", ("app", "")),
    ],
)
def test_parse_user(value: str, expected: tuple[str, str | None]) -> None:
    assert parse_user(value) == expected


def test_parse_env() -> None:
    environ = {"HOME": "/home/me", "EMPTY": ""}
    assert parse_env(["A=1", "B=", "HOME", "EMPTY", "UNSET", "C=x=y"], environ) == [
        "A=1",
        "B=",
        "HOME=/home/me",
        "EMPTY=",
        "UNSET",  # Docker keeps it; the daemon then unsets UNSET in the container
        "C=x=y",
    ]
    assert _err(parse_env, ["=x"], {}) == "invalid environment variable: =x"


def test_parse_env_text() -> None:
    text = '\ufeff# comment\n\n  FOO=bar baz \nQUOTED="q"\nHOME\nMISSING\nEMPTY=\n'
    assert parse_env_text(text, {"HOME": "/root"}) == ["FOO=bar baz ", 'QUOTED="q"', "HOME=/root", "EMPTY="]
    assert _err(parse_env_text, "BAD KEY=1") == "variable 'BAD KEY' contains whitespaces"
    assert _err(parse_env_text, "=1") == "no variable name on line '=1'"


def test_parse_env_file(tmp_path) -> None:
    f = tmp_path / "env"
    f.write_text("A=1\nB\n")
    assert parse_env_file(str(f), {"B": "2"}) == ["A=1", "B=2"]
    assert parse_env_file(str(f), {}) == ["A=1"]
    missing = tmp_path / "nope"
    assert _err(parse_env_file, str(missing)) == f"open {missing}: no such file or directory"
    bad = tmp_path / "bad"
    bad.write_text("A B=1\n")
    assert (
        _err(parse_env_file, str(bad), {}) == f"invalid env file ({bad}): variable 'A B' contains whitespaces"
    )
    binary = tmp_path / "bin"
    binary.write_bytes(b"A=1\nB=\xff\n")
    assert (
        _err(parse_env_file, str(binary), {}) == f"invalid env file ({binary}): invalid utf8 bytes at line 2"
    )


def test_parse_label() -> None:
    assert parse_label("a=b") == ("a", "b")
    assert parse_label("a") == ("a", "")
    assert parse_label("com.example.x=y=z") == ("com.example.x", "y=z")
    assert _err(parse_label, "=x") == "invalid label '=x': empty name"
    assert _err(parse_label, "a b=c") == "label 'a b' contains whitespaces"


def test_parse_sysctl() -> None:
    assert parse_sysctl("net.ipv4.ip_forward=1") == ("net.ipv4.ip_forward", "1")
    assert parse_sysctl("kernel.shmmax=1") == ("kernel.shmmax", "1")
    assert parse_sysctl("fs.mqueue.msg_max=20") == ("fs.mqueue.msg_max", "20")
    assert _err(parse_sysctl, "kernel.hostname=x") == "sysctl 'kernel.hostname=x' is not allowed"
    assert _err(parse_sysctl, "net.ipv4.ip_forward") == "sysctl 'net.ipv4.ip_forward' is not allowed"


# --- volumes and mounts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/data", Mount(type="volume", source="", target="/data")),
        ("/src:/dst", Mount(type="bind", source="/src", target="/dst", propagation="")),
        ("/src:/dst:ro", Mount(type="bind", source="/src", target="/dst", read_only=True, mode="ro")),
        ("/src:/dst:rw", Mount(type="bind", source="/src", target="/dst", mode="rw")),
        (
            "/src:/dst:ro,Z",
            Mount(type="bind", source="/src", target="/dst", read_only=True, relabel="Z", mode="ro,Z"),
        ),
        ("/src:/dst:z", Mount(type="bind", source="/src", target="/dst", relabel="z", mode="z")),
        (
            "/src:/dst:rshared",
            Mount(type="bind", source="/src", target="/dst", propagation="rshared", mode="rshared"),
        ),
        ("/src/:/dst/", Mount(type="bind", source="/src", target="/dst")),
        ("myvol:/data", Mount(type="volume", source="myvol", target="/data")),
        (
            "myvol:/data:ro,nocopy",
            Mount(
                type="volume", source="myvol", target="/data", read_only=True, nocopy=True, mode="ro,nocopy"
            ),
        ),
        ("./rel:/dst", Mount(type="bind", source="/work/dir/rel", target="/dst")),
        (".:/dst", Mount(type="bind", source="/work/dir", target="/dst")),
    ],
)
def test_parse_volume(spec: str, expected: Mount) -> None:
    assert parse_volume(spec, cwd="/work/dir") == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "invalid empty volume spec"),
        ("a:b:c:d", "invalid spec: a:b:c:d: too many colons"),
        ("/a::/b", "invalid spec: /a::/b: empty section between colons"),
        ("/src:rw", "invalid volume specification: '/src:rw'"),
        ("/src:/dst:bogus", "invalid mode: bogus"),
        ("/src:/dst:ro,rw", "invalid mode: ro,rw"),
        ("/src:/dst:shared,slave", "invalid mode: shared,slave"),
        (
            "x",
            "invalid volume specification: 'x': invalid mount config for type \"volume\": "
            "invalid mount path: 'x' mount path must be absolute",
        ),
        (
            "/src:/",
            "invalid volume specification: '/src:/': invalid mount config for type \"bind\": "
            "invalid specification: destination can't be '/'",
        ),
        (
            "/src:dst",
            "invalid volume specification: '/src:dst': invalid mount config for type \"bind\": "
            "invalid mount path: 'dst' mount path must be absolute",
        ),
        (
            "vol:/dst:shared",
            "invalid volume specification: 'vol:/dst:shared': invalid mount config for type \"volume\": "
            "field BindOptions must not be specified",
        ),
        (
            "/src:/dst:nocopy",
            "invalid volume specification: '/src:/dst:nocopy': invalid mount config for type \"bind\": "
            "field VolumeOptions must not be specified",
        ),
        (
            "~/x:/dst",
            'create ~/x: "~/x" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
            "use absolute path",
        ),
    ],
)
def test_parse_volume_errors(spec: str, message: str) -> None:
    assert _err(parse_volume, spec, cwd="/") == message


def test_parse_mount() -> None:
    m = parse_mount("type=bind,source=/src,target=/dst,readonly,bind-propagation=rslave")
    assert m == Mount(type="bind", source="/src", target="/dst", read_only=True, propagation="rslave")
    assert parse_mount("type=bind,src=/a,dst=/b,ro=false") == Mount(type="bind", source="/a", target="/b")
    assert parse_mount("type=bind,src=./a,destination=/b", cwd="/w").source == "/w/a"
    m = parse_mount("source=vol,target=/data,volume-nocopy,volume-label=a=b,volume-driver=local")
    assert (m.type, m.source, m.nocopy, dict(m.volume_labels), m.volume_driver) == (
        "volume",
        "vol",
        True,
        {"a": "b"},
        "local",
    )
    assert parse_mount("target=/anon") == Mount(type="volume", source="", target="/anon")
    t = parse_mount("type=tmpfs,target=/run,tmpfs-size=64m,tmpfs-mode=1770")
    assert (t.type, t.tmpfs_options) == ("tmpfs", "mode=1770,size=64m")
    assert parse_mount("type=tmpfs,dst=/t,tmpfs-size=1000").tmpfs_options == "size=1000"
    assert parse_mount("type=tmpfs,dst=/t,readonly").tmpfs_options == "ro"
    # the CSV syntax allows quoted fields
    assert parse_mount('type=bind,"source=/a,b",target=/c').source == "/a,b"
    m = parse_mount("type=bind,src=/a,dst=/b,bind-recursive=disabled")
    assert m.non_recursive


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("type=bind,source=/a", "target is required"),
        ("type=,target=/a", "type is required"),
        ("type=bind,source=/a,target=/b,foo", "invalid field 'foo' must be a key=value pair"),
        ("type=bind,source=/a,target=/b,foo=bar", "unexpected key 'foo' in 'foo=bar'"),
        ("type=bind,source=/a,target=/b,readonly=maybe", "invalid value for readonly: maybe"),
        (
            "type=bind,source=/a,target=/b,volume-nocopy",
            "cannot mix 'volume-*' options with mount type 'bind'",
        ),
        (
            "type=volume,target=/b,bind-propagation=shared",
            "cannot mix 'bind-*' options with mount type 'volume'",
        ),
        (
            "type=bind,source=/a,target=/b,tmpfs-size=1m",
            "cannot mix 'tmpfs-*' options with mount type 'bind'",
        ),
        ("type=tmpfs,target=/b,tmpfs-size=big", "invalid value for tmpfs-size: big"),
        ("type=tmpfs,target=/b,tmpfs-mode=999", "invalid value for tmpfs-mode: 999"),
        ("type=bind,target=/b", 'invalid mount config for type "bind": field Source must not be empty'),
        (
            "type=bind,source=rel,target=/b",
            "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute",
        ),
        (
            "type=bind,source=/a,target=/b,bind-propagation=weird",
            'invalid mount config for type "bind": invalid propagation mode: weird',
        ),
        ("type=npipe,source=/a,target=/b", 'invalid mount config for type "npipe": mount type unknown'),
        (
            "type=tmpfs,source=/a,target=/b",
            'invalid mount config for type "tmpfs": field Source must not be specified',
        ),
        (
            "type=volume,target=/b,readonly",
            'invalid mount config for type "volume": must not set ReadOnly mode when using anonymous volumes',
        ),
        (
            "type=bind,source=/a,target=/",
            "invalid mount config for type \"bind\": invalid specification: destination can't be '/'",
        ),
        (
            "type=bind,source=/a,target=/b,bind-recursive=writable",
            "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction",
        ),
        (
            "type=bind,source=/a,target=/b,bind-recursive=nope",
            'invalid value for bind-recursive: nope (must be "enabled", "disabled", "writable", '
            'or "readonly")',
        ),
    ],
)
def test_parse_mount_errors(value: str, message: str) -> None:
    assert _err(parse_mount, value) == message


def test_parse_tmpfs() -> None:
    assert parse_tmpfs("/run") == ("/run", "")
    assert parse_tmpfs("/run:rw,size=64m") == ("/run", "rw,size=64m")
    assert parse_tmpfs("/tmp:exec,mode=1777,uid=1000") == ("/tmp", "exec,mode=1777,uid=1000")
    assert _err(parse_tmpfs, "run") == "invalid mount path: 'run' mount path must be absolute"
    assert _err(parse_tmpfs, "/") == "invalid specification: destination can't be '/'"
    assert _err(parse_tmpfs, "/run:foo") == 'invalid tmpfs option ["foo"]'
    assert _err(parse_tmpfs, "/run:color=red") == 'invalid tmpfs option ["color" "red"]'


def test_tmpfs_data() -> None:
    assert tmpfs_data(64 * 1024**2, 0o1777) == "mode=1777,size=64m"
    assert tmpfs_data(3 * 1024**3, None, read_only=True) == "ro,size=3g"
    assert tmpfs_data(1536, None) == "size=1536"


# --- ports ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [PortBinding(80, "tcp", "", "")]),
        ("80/udp", [PortBinding(80, "udp", "", "")]),
        ("8080:80", [PortBinding(80, "tcp", "", "8080")]),
        ("127.0.0.1:8080:80/udp", [PortBinding(80, "udp", "127.0.0.1", "8080")]),
        ("127.0.0.1::80", [PortBinding(80, "tcp", "127.0.0.1", "")]),
        ("[::1]:8080:80", [PortBinding(80, "tcp", "::1", "8080")]),
        ("::1:8080:80", [PortBinding(80, "tcp", "::1", "8080")]),
        ("8080:80/SCTP", [PortBinding(80, "sctp", "", "8080")]),
        (
            "8000-8002:80-82",
            [
                PortBinding(80, "tcp", "", "8000"),
                PortBinding(81, "tcp", "", "8001"),
                PortBinding(82, "tcp", "", "8002"),
            ],
        ),
        ("8000-8010:80", [PortBinding(80, "tcp", "", "8000-8010")]),
        ("80-81", [PortBinding(80, "tcp", "", ""), PortBinding(81, "tcp", "", "")]),
        ("published=8080,target=80", [PortBinding(80, "tcp", "", "8080")]),
        ("target=53,published=5353,protocol=udp", [PortBinding(53, "udp", "", "5353")]),
    ],
)
def test_parse_port(spec: str, expected: list[PortBinding]) -> None:
    assert parse_port(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no port specified: <empty>"),
        ("8080:", "no port specified: 8080:<empty>"),
        ("abc", "invalid containerPort: abc"),
        ("70000", "invalid containerPort: 70000"),
        ("x:80", "invalid hostPort: x"),
        ("80/icmp", "invalid proto: icmp"),
        ("1.2.3:80:80", "invalid IP address: 1.2.3"),
        ("8000-8001:80-82", "invalid ranges specified for container and host Ports: 80-82 and 8000-8001"),
        ("90-80", "invalid containerPort: 90-80"),
        ("a=b,c", "invalid publish opts format (should be name=value but got 'c')"),
    ],
)
def test_parse_port_errors(spec: str, message: str) -> None:
    assert _err(parse_port, spec) == message


def test_parse_expose() -> None:
    assert parse_expose("80") == [(80, "tcp")]
    assert parse_expose("53/udp") == [(53, "udp")]
    assert parse_expose("8000-8002") == [(8000, "tcp"), (8001, "tcp"), (8002, "tcp")]
    assert _err(parse_expose, "x").startswith("invalid range format for --expose")


# --- ulimits, devices, restart, gpus, caps --------------------------------------------------------


def test_parse_ulimit() -> None:
    assert parse_ulimit("nofile=1024:2048") == Ulimit("nofile", 1024, 2048)
    assert parse_ulimit("nproc=512") == Ulimit("nproc", 512, 512)
    assert parse_ulimit("core=-1") == Ulimit("core", -1, -1)
    assert parse_ulimit("memlock=1024:-1") == Ulimit("memlock", 1024, -1)
    assert _err(parse_ulimit, "nofile") == "invalid ulimit argument: nofile"
    assert _err(parse_ulimit, "as=1") == "invalid ulimit type: as"
    assert _err(parse_ulimit, "nofile=1:2:3") == (
        "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`"
    )
    assert _err(parse_ulimit, "nofile=2048:1024") == (
        "ulimit soft limit must be less than or equal to hard limit: 2048 > 1024"
    )
    assert _err(parse_ulimit, "nofile=lots") == 'strconv.ParseInt: parsing "lots": invalid syntax'


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/dev/fuse", DeviceMapping("/dev/fuse", "/dev/fuse", "rwm")),
        ("/dev/sda:/dev/xvda", DeviceMapping("/dev/sda", "/dev/xvda", "rwm")),
        ("/dev/sda:/dev/xvda:r", DeviceMapping("/dev/sda", "/dev/xvda", "r")),
        ("/dev/sda:rw", DeviceMapping("/dev/sda", "/dev/sda", "rw")),
        ("/dev/../dev/fuse", DeviceMapping("/dev/fuse", "/dev/fuse", "rwm")),
    ],
)
def test_parse_device(spec: str, expected: DeviceMapping) -> None:
    assert parse_device(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("/a:/b:rw:x", "bad format for path: /a:/b:rw:x"),
        (":/b", "bad format for path: :/b"),
        ("/dev/sda:/dev/xvda:rwx", "bad mode specified: rwx"),
        ("/dev/sda:/dev/xvda:rr", "bad mode specified: rr"),
        ("/dev/sda:xvda", "xvda is not an absolute path"),
        ("sda", "sda is not an absolute path"),
    ],
)
def test_parse_device_errors(spec: str, message: str) -> None:
    assert _err(parse_device, spec) == message


def test_parse_device_cgroup_rule() -> None:
    assert parse_device_cgroup_rule("c 1:3 rwm") == "c 1:3 rwm"
    assert parse_device_cgroup_rule("a *:* rwm") == "a *:* rwm"
    assert parse_device_cgroup_rule("b 8:* r") == "b 8:* r"
    assert _err(parse_device_cgroup_rule, "x 1:3 rwm") == "invalid device cgroup format 'x 1:3 rwm'"
    assert _err(parse_device_cgroup_rule, "c 1:3") == "invalid device cgroup format 'c 1:3'"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", RestartPolicy("no", 0)),
        ("no", RestartPolicy("no", 0)),
        ("always", RestartPolicy("always", 0)),
        ("unless-stopped", RestartPolicy("unless-stopped", 0)),
        ("on-failure", RestartPolicy("on-failure", 0)),
        ("on-failure:5", RestartPolicy("on-failure", 5)),
    ],
)
def test_parse_restart(spec: str, expected: RestartPolicy) -> None:
    assert parse_restart(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (":3", "invalid restart policy format: no policy provided before colon"),
        ("on-failure:x", "invalid restart policy format: maximum retry count must be an integer"),
        (
            "sometimes",
            "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', "
            "or 'unless-stopped'",
        ),
        ("always:3", "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
        ("on-failure:-1", "invalid restart policy: maximum retry count cannot be negative"),
    ],
)
def test_parse_restart_errors(spec: str, message: str) -> None:
    assert _err(parse_restart, spec) == message


def test_parse_gpus() -> None:
    assert parse_gpus("all") == DeviceRequest(count=-1)
    assert parse_gpus("2") == DeviceRequest(count=2)
    assert parse_gpus('"device=0,1"') == DeviceRequest(count=0, device_ids=("0", "1"))
    assert parse_gpus("count=2,capabilities=utility") == DeviceRequest(
        count=2, capabilities=(("utility", "gpu"),)
    )
    assert parse_gpus("driver=nvidia") == DeviceRequest(driver="nvidia", count=1)
    assert parse_gpus('"options=a=b,c=d"').options == {"a": "b", "c": "d"}
    assert (
        _err(parse_gpus, "count=x") == 'count must be an integer: strconv.Atoi: parsing "x": invalid syntax'
    )
    assert _err(parse_gpus, "count=1,count=2") == "gpu request key 'count' can be specified only once"
    assert _err(parse_gpus, "foo=bar") == "unexpected key 'foo' in 'foo=bar'"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("NET_ADMIN", "CAP_NET_ADMIN"),
        ("CAP_NET_ADMIN", "CAP_NET_ADMIN"),
        ("net_admin", "CAP_NET_ADMIN"),
        (" sys_admin ", "CAP_SYS_ADMIN"),
        ("ALL", "ALL"),
        ("all", "ALL"),
        ("checkpoint_restore", "CAP_CHECKPOINT_RESTORE"),
    ],
)
def test_parse_cap(value: str, expected: str) -> None:
    assert parse_cap(value) == expected


def test_parse_cap_unknown() -> None:
    assert _err(parse_cap, "FLY") == 'unknown capability: "CAP_FLY"'


# --- security options, modes, signals -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("seccomp=unconfined", ("seccomp", "unconfined")),
        ("seccomp=builtin", ("seccomp", "builtin")),
        ("seccomp=/etc/profile.json", ("seccomp", "/etc/profile.json")),
        ("seccomp:unconfined", ("seccomp", "unconfined")),
        ("no-new-privileges", ("no-new-privileges", "true")),
        ("no-new-privileges:true", ("no-new-privileges", "true")),
        ("no-new-privileges=false", ("no-new-privileges", "false")),
        ("no-new-privileges=1", ("no-new-privileges", "true")),
        ("apparmor=docker-default", ("apparmor", "docker-default")),
        ("apparmor=unconfined", ("apparmor", "unconfined")),
        ("label=disable", ("label", "disable")),
        ("label=user:USER", ("label", "user:USER")),
        ("label:level:s0:c100,c200", ("label", "level:s0:c100,c200")),
        ("systempaths=unconfined", ("systempaths", "unconfined")),
        ("writable-cgroups=true", ("writable-cgroups", "true")),
    ],
)
def test_parse_security_opt(value: str, expected: tuple[str, str]) -> None:
    assert parse_security_opt(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("seccomp", 'invalid --security-opt: "seccomp"'),
        ("seccomp=", 'invalid --security-opt: "seccomp="'),
        ("foo=bar", 'invalid --security-opt 2: "foo=bar"'),
        ("no-new-privileges=maybe", 'invalid --security-opt 2: "no-new-privileges=maybe"'),
        ("systempaths=confined", 'invalid --security-opt 2: "systempaths=confined"'),
    ],
)
def test_parse_security_opt_errors(value: str, message: str) -> None:
    assert _err(parse_security_opt, value) == message


def test_read_seccomp_profile(tmp_path) -> None:
    f = tmp_path / "p.json"
    f.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW",\n  "syscalls": []\n}\n')
    assert read_seccomp_profile(str(f)) == '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}'
    assert _err(read_seccomp_profile, str(tmp_path / "x")) == (
        f"opening seccomp profile ({tmp_path / 'x'}) failed: open {tmp_path / 'x'}: no such file or directory"
    )
    f.write_text("{nope")
    assert _err(read_seccomp_profile, str(f)).startswith(
        f"compacting json for seccomp profile ({f}) failed: "
    )


def test_namespace_modes() -> None:
    for mode in ("", "none", "private", "shareable", "host", "container:abc"):
        assert validate_ipc_mode(mode) == mode
    assert _err(validate_ipc_mode, "weird") == "invalid IPC mode: weird"
    assert _err(validate_ipc_mode, "container:") == "invalid IPC mode: container:"
    assert validate_pid_mode("host") == "host"
    assert validate_pid_mode("container:x") == "container:x"
    assert _err(validate_pid_mode, "private") == "--pid: invalid PID mode"
    assert validate_uts_mode("host") == "host"
    assert _err(validate_uts_mode, "container:x") == "--uts: invalid UTS mode"
    assert validate_cgroupns_mode("private") == "private"
    assert _err(validate_cgroupns_mode, "shared") == "--cgroupns: invalid CGROUP mode"


def test_parse_network_mode() -> None:
    assert parse_network_mode("") == "bridge"
    assert parse_network_mode("default") == "bridge"
    assert parse_network_mode("none") == "none"
    assert parse_network_mode("host") == "host"
    assert parse_network_mode("container:web") == "container:web"
    assert parse_network_mode("mynet") == "mynet"
    assert _err(parse_network_mode, "container:") == "--network: invalid container format container:<name|id>"


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("SIGTERM", 15),
        ("TERM", 15),
        ("sigkill", 9),
        ("15", 15),
        ("SIGUSR1", 10),
        ("RTMIN+3", 37),
        ("SIGRTMAX", 64),
    ],
)
def test_parse_signal(value: str, number: int) -> None:
    assert parse_signal(value) == number


def test_parse_signal_errors() -> None:
    assert _err(parse_signal, "SIGFOO") == "invalid signal: SIGFOO"
    assert _err(parse_signal, "0") == "invalid signal: 0"
    assert _err(parse_signal, "65") == "invalid signal: 65"


def test_run_options_defaults() -> None:
    opts = RunOptions(image="alpine")
    assert opts.entrypoint is None and opts.cmd == [] and opts.network == "bridge"
    assert opts.restart == RestartPolicy("no", 0)
    opts.security_opt = ["no-new-privileges", "seccomp=unconfined"]
    assert opts.security_options() == [("no-new-privileges", "true"), ("seccomp", "unconfined")]


def test_run_options_behave_as_the_dataclass_did() -> None:
    a = RunOptions(cmd=["true"], mounts=[parse_volume("/src:/dst")], publish=parse_port("8080:80"))
    b = RunOptions(cmd=["true"], mounts=[parse_volume("/src:/dst")], publish=parse_port("8080:80"))
    assert a == b and a != RunOptions()
    assert RunOptions().cmd is not RunOptions().cmd  # list defaults are per instance
    with pytest.raises(TypeError):
        RunOptions(no_such_option=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        hash(a)
    d = a.to_dict()
    assert d["cmd"] == ["true"] and d["network"] == "bridge"
    assert d["mounts"][0]["source"] == "/src" and d["mounts"][0]["volume_labels"] == {}
    assert d["publish"] == [{"container_port": 80, "protocol": "tcp", "host_ip": "", "host_port": "8080"}]
    assert d["restart"] == {"name": "no", "maximum_retry_count": 0}
    assert "RunOptions(image=''" in repr(a)


def test_small_records_are_frozen_and_hashable() -> None:
    p = PortBinding(80)
    assert p == PortBinding(80, "tcp", "", "") and {p, PortBinding(80)} == {p}
    assert repr(p) == "PortBinding(container_port=80, protocol='tcp', host_ip='', host_port='')"
    with pytest.raises(AttributeError):
        p.protocol = "udp"  # type: ignore[misc]
    assert RestartPolicy() == RestartPolicy("no", 0) != RestartPolicy("always")
