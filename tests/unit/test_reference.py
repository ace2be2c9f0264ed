import pytest

from dockyard.errors import InvalidReference
from dockyard.image import reference
from dockyard.image.reference import parse


@pytest.mark.parametrize("given, full, familiar", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/daphne/duck", "docker.io/daphne/duck:latest", "daphne/duck:latest"),
    ("daphne/duck", "docker.io/daphne/duck:latest", "daphne/duck:latest"),
    ("localhost:5000/a/b", "localhost:5000/a/b:latest", "localhost:5000/a/b:latest"),
    ("localhost/a", "localhost/a:latest", "localhost/a:latest"),
    ("host.example.com:5000/a/b:v1", "host.example.com:5000/a/b:v1", "host.example.com:5000/a/b:v1"),
    ("your/duck:v2", "docker.io/your/duck:v2", "your/duck:v2"),
])
def test_normalisation_matches_docker(given: str, full: str, familiar: str) -> None:
    ref = parse(given)
    assert str(ref) == full
    assert ref.familiar == familiar


def test_digest_reference_has_no_default_tag() -> None:
    d = "sha256:" + "a" * 64
    ref = parse(f"busybox@{d}")
    assert ref.tag is None and ref.digest == d
    assert str(ref) == f"docker.io/library/busybox@{d}"


@pytest.mark.parametrize("bad, words", [
    ("UPPER/case", "must be lowercase"),
    ("Busybox", "must be lowercase"),
    ("a::b", "invalid reference format"),
    ("x@sha256:123", "invalid reference format"),
    ("", "invalid reference format"),
    ("-busybox", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    ("a" * 64, "64-byte hexadecimal"),
    ("busybox:" + "t" * 200, "invalid reference format"),
])
def test_bad_references_are_refused_with_dockers_words(bad: str, words: str) -> None:
    with pytest.raises(InvalidReference) as e:
        parse(bad)
    assert words in str(e.value)


@pytest.mark.parametrize("ref", [
    "busybox", "busybox:latest", "daphne/duck:v2", "a/b/c:1.0-x_y", "localhost/foo", "localhost:5000/a",
    "busybox:.x", "busybox:-x", "busybox:", "a//b", "Busybox", "x" * 256, "abc:" + "t" * 128,
    "abc:" + "t" * 129, "ubuntu:22.04", "a:b:c", "library/busybox", "index.docker.io/x", "a" * 64,
    "busybox:é", "a__b", "a-b/c.d",
])
def test_the_fast_path_for_plain_names_agrees_with_dockers_grammar(ref: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def outcome() -> str:
        try:
            return str(parse(ref))
        except InvalidReference as e:
            return f"error: {e}"

    fast = outcome()
    monkeypatch.setattr(reference, "_parse_simple", lambda _ref: None)  # the grammar alone
    assert fast == outcome()
