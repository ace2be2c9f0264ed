"""`inspect -f` prints the template's text as it is, as Docker's inspect does (checked against docker 20.10):
`\\n` and `\\t` typed in a template stay two characters; the list commands (`ps`, `images`...) expand them."""

from __future__ import annotations

from tests.conftest import CLI

TEMPLATE = r"A\nB\tC{{.Name}}"


def test_inspect_keeps_backslash_escapes_for_every_kind(cli: CLI, busybox_image: str) -> None:
    cli("create", "--name", "c1", "--network", "none", "busybox", "true")
    cli("volume", "create", "v1")
    assert cli("container", "inspect", "-f", TEMPLATE, "c1").stdout == "A\\nB\\tC/c1\n"
    assert cli("inspect", "-f", TEMPLATE, "c1").stdout == "A\\nB\\tC/c1\n"
    assert cli("volume", "inspect", "-f", TEMPLATE, "v1").stdout == "A\\nB\\tCv1\n"
    assert cli("network", "inspect", "-f", TEMPLATE, "none").stdout == "A\\nB\\tCnone\n"
    assert cli("image", "inspect", "-f", r"x\n{{.Os}}", "busybox").stdout == "x\\nlinux\n"


def test_list_formats_expand_them(cli: CLI, busybox_image: str) -> None:
    cli("create", "--name", "c1", "--network", "none", "busybox", "true")
    assert cli("ps", "-a", "--format", r"A\nB\tC{{.Names}}").stdout == "A\nB\tCc1\n"
