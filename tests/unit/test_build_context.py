"""The build context: .dockerignore rules (moby's patternmatcher), Go globs, confined lookups, hashes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.build.context import (
    BuildContext,
    IgnoreMatcher,
    SourceTree,
    clean_path,
    content_hash,
    go_match,
    has_glob,
    load_ignore_patterns,
    read_dockerignore,
)
from dockyard.errors import BuildError

# ---- paths and Go's filepath.Match ----------------------------------------------------------


@pytest.mark.parametrize(("path", "want"), [
    ("", "."), (".", "."), ("a/b/", "a/b"), ("a//b", "a/b"), ("./a/./b", "a/b"), ("a/../b", "b"),
    ("../a", "../a"), ("/../a", "/a"), ("/", "/"), ("/a/b/..", "/a"),
])
def test_clean_path_is_go_path_clean(path: str, want: str) -> None:
    assert clean_path(path) == want


# A subset of Go's filepath.Match test table (src/path/filepath/match_test.go).
@pytest.mark.parametrize(("pattern", "name", "want"), [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", False),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("*x", "xxx", True),
    ("a?", "a/", False),
    ("[^/]", "/", False),
])
def test_go_match(pattern: str, name: str, want: bool) -> None:
    assert go_match(pattern, name) is want


@pytest.mark.parametrize("pattern", ["[", "[^", "[^bc", "a[", "ab[-c]", "ab[c-]", "ab[z-a]", "a\\"])
def test_go_match_bad_pattern(pattern: str) -> None:
    with pytest.raises(BuildError, match="syntax error in pattern"):
        go_match(pattern, "abc")


def test_has_glob() -> None:
    assert has_glob("*.txt") and has_glob("a?") and has_glob("[ab]") and has_glob("a\\b")
    assert not has_glob("src/main.go")


# ---- .dockerignore -------------------------------------------------------------------------


def test_read_dockerignore_normalises_like_moby() -> None:
    text = "\ufeff# a comment\n\n  *.log  \n/build/\n!/build/keep\n./a/../b\n  # not a comment\n\r\n!  spaced\n"
    assert read_dockerignore(text) == ["*.log", "build", "!build/keep", "b", "# not a comment", "!spaced"]


@pytest.mark.parametrize(("patterns", "path", "excluded"), [
    (["*.txt"], "a.txt", True),
    (["*.txt"], "dir/a.txt", False),  # * stays in one directory
    (["**/*.txt"], "dir/a.txt", True),
    (["**/*.txt"], "a.txt", True),  # ** matches zero directories too
    (["dir"], "dir/sub/file", True),  # a matching parent excludes everything below
    (["dir"], "dir", True),
    (["docs/**"], "docs/a/b", True),
    (["docs/**"], "docsx", False),
    (["*", "!keep.txt"], "keep.txt", False),
    (["*", "!keep.txt"], "other.txt", True),
    (["!keep.txt", "*"], "keep.txt", True),  # the last match decides
    (["dir", "!dir/keep"], "dir/keep", False),
    (["dir", "!dir/keep"], "dir/other", True),
    (["a?c"], "abc", True),
    (["a?c"], "a/c", False),
    (["[a-c]x"], "bx", True),
    (["**"], "anything/at/all", True),
    (["a/**/b"], "a/b", True),
    (["a/**/b"], "a/x/y/b", True),
    (["*.go", "!vendor/**/*.go"], "x.go", True),
    ([".git"], ".git/HEAD", True),
    (["node_modules"], "node_modules/x/index.js", True),
    (["a.b"], "aXb", False),  # regexp metacharacters are literal
    (["(x)"], "(x)", True),
])
def test_ignore_matcher(patterns: list[str], path: str, excluded: bool) -> None:
    assert IgnoreMatcher(patterns).excluded(path) is excluded


def test_ignore_matcher_rejects_lone_bang() -> None:
    with pytest.raises(BuildError, match="illegal exclusion pattern"):
        IgnoreMatcher(["!"])


def test_dockerfile_specific_ignore_file_wins(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("a\n")
    assert load_ignore_patterns(str(tmp_path), str(tmp_path / "Dockerfile")) == ["a"]
    (tmp_path / "Dockerfile.dockerignore").write_text("b\n")
    assert load_ignore_patterns(str(tmp_path), str(tmp_path / "Dockerfile")) == ["b"]
    assert load_ignore_patterns(str(tmp_path / "missing"), None) == []


# ---- source trees --------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "src" / "deep").mkdir(parents=True)
    (tmp_path / "src" / "a.txt").write_text("a")
    (tmp_path / "src" / "b.txt").write_text("b")
    (tmp_path / "src" / "c.md").write_text("c")
    (tmp_path / "src" / "deep" / "d.txt").write_text("d")
    (tmp_path / "top.txt").write_text("top")
    os.symlink("/src/a.txt", tmp_path / "abs-link")  # absolute: resolved inside the tree
    os.symlink("../../../../etc", tmp_path / "escape")
    os.symlink("src", tmp_path / "dirlink")
    return tmp_path


def test_find_plain_and_globs(tree: Path) -> None:
    t = SourceTree(tree)
    assert t.find("top.txt") == [("top.txt", "top.txt")]
    assert t.find("/src/./a.txt") == [("src/a.txt", "src/a.txt")]
    assert t.find("src/*.txt") == [("src/a.txt", "src/a.txt"), ("src/b.txt", "src/b.txt")]
    assert t.find("*/deep/?.txt") == [("src/deep/d.txt", "src/deep/d.txt")]
    assert t.find("nope") == []
    assert t.find("src/*.none") == []
    assert t.find(".") == [("", "")]


def test_find_keeps_symlinks_inside_the_tree(tree: Path) -> None:
    t = SourceTree(tree)
    assert t.find("abs-link") == [("abs-link", "src/a.txt")]
    # (a copy is named after the last component, so only that part of the name matters)
    assert [os.path.basename(n) for n, _ in t.find("dirlink/deep/d.txt")] == ["d.txt"]
    assert [r for _, r in t.find("dirlink/deep/d.txt")] == ["src/deep/d.txt"]
    # `..` cannot climb out: the link resolves to the tree's own /etc, which does not exist
    assert t.find("escape") == []
    assert t.find("../../top.txt") == [("top.txt", "top.txt")]


def test_find_and_walk_honour_dockerignore(tree: Path) -> None:
    t = SourceTree(tree, IgnoreMatcher(["src/*.txt", "!src/b.txt", "src/deep"]))
    assert t.find("src/a.txt") == []
    assert t.find("src/b.txt") == [("src/b.txt", "src/b.txt")]
    assert t.find("src/*") == [("src/b.txt", "src/b.txt"), ("src/c.md", "src/c.md")]
    assert [p for p, _ in t.walk("src")] == ["", "b.txt", "c.md"]


def test_walk_keeps_excluded_dir_with_reincluded_file(tree: Path) -> None:
    t = SourceTree(tree, IgnoreMatcher(["src", "!src/deep/d.txt"]))
    assert [p for p, _ in t.walk("")] == ["", "abs-link", "dirlink", "escape", "src", "src/deep",
                                          "src/deep/d.txt", "top.txt"]


def test_content_hash_ignores_mtime_but_not_content_mode_or_names(tree: Path) -> None:
    t = SourceTree(tree)
    base = content_hash(t, ["src"])
    os.utime(tree / "src" / "a.txt", (12345, 12345))
    assert content_hash(t, ["src"]) == base
    (tree / "src" / "a.txt").write_text("A")
    changed = content_hash(t, ["src"])
    assert changed != base
    os.chmod(tree / "src" / "b.txt", 0o600)
    assert content_hash(t, ["src"]) != changed
    assert content_hash(t, ["src/a.txt"]) != content_hash(t, ["src/b.txt"])


def test_content_hash_owner_only_when_kept(tree: Path) -> None:
    t = SourceTree(tree)
    a = content_hash(t, ["top.txt"])
    os.chown(tree / "top.txt", 1234, 1234)
    assert content_hash(t, ["top.txt"]) == a
    assert content_hash(t, ["top.txt"], keep_owner=True) != a


def test_context_from_tar_and_empty(tmp_path: Path) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"FROM busybox\n"
        ti = tarfile.TarInfo("Dockerfile")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    ctx = BuildContext.from_tar(buf, tmp_path / "work")
    try:
        assert (Path(ctx.root) / "Dockerfile").read_bytes() == b"FROM busybox\n"
    finally:
        ctx.close()
    assert not Path(ctx.root).exists()
    empty = BuildContext.empty(tmp_path / "work")
    assert os.listdir(empty.root) == []
    empty.close()


def test_context_tar_cannot_write_outside(tmp_path: Path) -> None:
    """A context archive is unpacked as safely as a layer, whatever the Python (3.11.2 has no tar filters)."""
    import io
    import tarfile

    for name, kind, target in (("../escape", tarfile.REGTYPE, ""), ("/abs", tarfile.REGTYPE, ""),
                               ("link", tarfile.SYMTYPE, "/etc"), ("link/passwd", tarfile.REGTYPE, "")):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            if name == "link/passwd":
                ln = tarfile.TarInfo("link")
                ln.type, ln.linkname = tarfile.SYMTYPE, str(tmp_path / "outside")
                tf.addfile(ln)
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = kind, target
            tf.addfile(ti, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
        buf.seek(0)
        (tmp_path / "outside").mkdir(exist_ok=True)
        try:
            ctx = BuildContext.from_tar(buf, tmp_path / "work")
        except BuildError as e:
            assert "unable to read the build context archive" in str(e)
        else:
            ctx.close()
        assert not (tmp_path / "escape").exists() and not (tmp_path / "outside" / "passwd").exists()
        assert not (tmp_path / "work" / "escape").exists()
        assert os.listdir(tmp_path / "work") == []  # refused or not, the unpacked context is cleaned up


def test_context_from_directory_errors(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="not found"):
        BuildContext.from_directory(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BuildError, match="must be a directory"):
        BuildContext.from_directory(tmp_path / "file")
