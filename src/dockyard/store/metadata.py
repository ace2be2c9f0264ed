"""The metadata database: what an image, tag, layer, container or cache entry *is*.

SQLite in WAL mode; every change is one ``BEGIN IMMEDIATE`` transaction so that two commands at
once serialise instead of interleaving. The schema is written down here with a version number;
``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``.
"""

from __future__ import annotations

import os
import sys
import time

from dockyard import jsonc  # json's results without importing json (and re with it): start-up time
from dockyard.records import MutableRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import sqlite3
    from typing import Any


def _import_sqlite() -> tuple[Any, Any]:
    """``_sqlite3``'s ``Row`` and ``connect``, without importing ``functools`` (and ``collections``).

    ``_sqlite3`` is the C module itself: ``sqlite3`` adds default adapters for ``datetime`` values
    (which this module never binds), and importing ``datetime`` for them costs ~1.5 ms of every command.
    The classes (``Row``, ``Connection``, the errors) are the same objects either way.

    On import ``_sqlite3`` (3.11) takes ``functools.lru_cache`` for its per-connection statement cache,
    and nothing else from ``functools``: importing ``functools`` (with ``collections``) for that costs
    ~2.5 ms of every command. Unless something imported ``functools`` already, it is given a stand-in
    whose ``lru_cache`` makes the same C cache (``_functools._lru_cache_wrapper``, which
    ``functools.lru_cache`` wraps) without the Python-level extras (``cache_info``'s namedtuple,
    ``update_wrapper``) that SQLite never uses. The stand-in leaves ``sys.modules`` at once.
    """
    try:
        from _functools import _lru_cache_wrapper
    except ImportError:
        _lru_cache_wrapper = None
    if _lru_cache_wrapper is None or "functools" in sys.modules or "_sqlite3" in sys.modules:
        from _sqlite3 import Row, connect

        return Row, connect

    def lru_cache(maxsize: int = 128, typed: bool = False) -> Any:
        if isinstance(maxsize, int) and maxsize < 0:
            maxsize = 0
        return lambda user_function: _lru_cache_wrapper(user_function, maxsize, typed, tuple)

    stand_in = type(sys)("functools")
    stand_in.lru_cache = lru_cache  # type: ignore[attr-defined]
    sys.modules["functools"] = stand_in
    try:
        from _sqlite3 import Row, connect
    except (ImportError, AttributeError):  # a later CPython wanting more of functools: the real one
        sys.modules.pop("_sqlite3", None)
        if sys.modules.get("functools") is stand_in:
            del sys.modules["functools"]
        from _sqlite3 import Row, connect
    finally:
        if sys.modules.get("functools") is stand_in:
            del sys.modules["functools"]
    return Row, connect


Row, connect = _import_sqlite()

# Pages the WAL may hold before a commit checkpoints it (SQLite's default is 1000). The WAL outlives the
# connections (see _keep_wal), and whoever opens the database first rebuilds its index by reading it:
# 128 pages (512 KiB) keep that read well under a millisecond.
WAL_AUTOCHECKPOINT = 128
_SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE = 1006  # sqlite3.h
_sqlite_api: list[Any] = []  # [(sqlite3_db_config, sqlite3_db_filename, c_void_p)] once looked up


def _sqlite_functions() -> Any:
    """``sqlite3_db_config`` and ``sqlite3_db_filename`` of the SQLite that ``_sqlite3`` itself uses.

    Looked up through the extension module's own handle, loaded already (``RTLD_NOLOAD``): a copy of
    SQLite linked into it, or the shared library it needs -- never a second copy loaded here.
    """
    if not _sqlite_api:
        import _ctypes as _ctypes_module
        import _sqlite3

        from dockyard.libc import ct

        _ctypes: Any = _ctypes_module  # private API, untyped here (as in dockyard.libc)
        t: Any = ct()
        handle = _ctypes.dlopen(_sqlite3.__file__, 2 | 4)  # RTLD_NOW | RTLD_NOLOAD

        class _Lib:
            _handle = handle

        class c_void_p(_ctypes._SimpleCData):
            _type_ = "P"

        class c_char_p(_ctypes._SimpleCData):
            _type_ = "z"

        class _Func(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL
            _restype_ = t.c_int

        db_config = _Func(("sqlite3_db_config", _Lib))
        db_config.argtypes = (c_void_p, t.c_int, t.c_int, c_void_p)
        db_filename = _Func(("sqlite3_db_filename", _Lib))
        db_filename.argtypes = (c_void_p, c_char_p)
        db_filename.restype = c_char_p
        _sqlite_api.append((db_config, db_filename, c_void_p))
    return _sqlite_api[0]


def _keep_wal(conn: sqlite3.Connection, path: str) -> bool:
    """Ask SQLite not to checkpoint and delete the WAL when ``conn`` closes (SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE).

    Why: each ``dockyard run`` is two processes (the command and the container's monitor) that open,
    commit to and close the database; the last to close checkpointed the WAL and deleted it, and the
    next commit made a new one -- four fsyncs and two file creations on every run's critical path.
    Now the WAL stays and is checkpointed by a commit once it holds ``WAL_AUTOCHECKPOINT`` pages. What is
    committed is as safe as before: a kept WAL is exactly what a killed process leaves, and SQLite reads
    it back on the next open.

    Python 3.11 exposes no way to set this, so it is set through ctypes on the connection's ``sqlite3 *``:
    the first field after the object header in CPython 3.11-3.13's ``pysqlite_Connection``. The pointer is
    used only once ``sqlite3_db_filename`` has named this very database with it; anything unexpected and
    the connection is left as SQLite made it (False).
    """
    if sys.implementation.name != "cpython" or not (3, 11) <= sys.version_info[:2] <= (3, 13):
        return False
    try:
        db_config, db_filename, c_void_p = _sqlite_functions()
        db = c_void_p.from_address(id(conn) + object.__basicsize__).value
        if not db or db_filename(db, b"main") != os.fsencode(os.path.realpath(path)):
            return False
        return db_config(db, _SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, None) == 0
    except (ImportError, AttributeError, OSError, TypeError, ValueError):
        return False


class ImageRecord(MutableRecord):
    """What the metadata database knows about one local image."""

    id: str
    config_digest: str
    manifest_digest: str | None
    manifest_media_type: str | None
    created: str | None
    size: int
    added_at: float
    tags: list[str]
    repo_digests: list[str]
    chain: list[str]
    _fields = ("id", "config_digest", "manifest_digest", "manifest_media_type", "created", "size", "added_at",
               "tags", "repo_digests", "chain")

    def __init__(self, id: str, config_digest: str, manifest_digest: str | None, manifest_media_type: str | None,
                 created: str | None, size: int, added_at: float, tags: list[str] | None = None,
                 repo_digests: list[str] | None = None, chain: list[str] | None = None) -> None:
        self.id = id
        self.config_digest = config_digest
        self.manifest_digest = manifest_digest
        self.manifest_media_type = manifest_media_type
        self.created = created
        self.size = size
        self.added_at = added_at
        self.tags = [] if tags is None else tags
        self.repo_digests = [] if repo_digests is None else repo_digests
        self.chain = [] if chain is None else chain


MIGRATIONS: list[str] = [
    # 0 -> 1: images, tags, layers, containers, build cache
    """
    CREATE TABLE images (
        id TEXT PRIMARY KEY,                -- sha256 of the config bytes (Docker's image ID)
        config_digest TEXT NOT NULL,
        manifest_digest TEXT,               -- the manifest the image was pulled/made with
        manifest_media_type TEXT,
        created TEXT,                       -- config.created (RFC 3339)
        size INTEGER NOT NULL,              -- unpacked size of all layers, as `docker images` shows
        added_at REAL NOT NULL,
        parent TEXT                         -- the image it was built/committed from (local only)
    );
    CREATE TABLE image_layers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        chain_id TEXT NOT NULL,
        blob_digest TEXT NOT NULL,          -- the layer blob as stored (compressed or not)
        blob_media_type TEXT NOT NULL,
        blob_size INTEGER NOT NULL,
        PRIMARY KEY (image_id, idx)
    );
    CREATE TABLE tags (
        name TEXT PRIMARY KEY,              -- normalised `domain/path:tag`
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
    );
    CREATE TABLE repo_digests (
        name TEXT NOT NULL,                 -- normalised `domain/path@sha256:...`
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        PRIMARY KEY (name)
    );
    CREATE TABLE layers (
        chain_id TEXT PRIMARY KEY,
        diff_id TEXT NOT NULL,
        parent TEXT,                        -- parent chain id
        size INTEGER NOT NULL,              -- unpacked size of this layer's own files
        dir TEXT NOT NULL,                  -- directory name under layers/
        created REAL NOT NULL
    );
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        image_id TEXT NOT NULL,
        image_ref TEXT NOT NULL,            -- what the user typed, as `docker ps` shows it
        created REAL NOT NULL,
        config TEXT NOT NULL,               -- JSON: run options, spec inputs, labels
        state TEXT NOT NULL                 -- JSON: status, pid, exit code, started/finished times
    );
    CREATE TABLE build_cache (
        key TEXT PRIMARY KEY,
        image_id TEXT NOT NULL,
        created REAL NOT NULL
    );
    """,
    # 1 -> 2: local volumes (their data lives in volumes/<name>/_data)
    """
    CREATE TABLE volumes (
        name TEXT PRIMARY KEY,
        driver TEXT NOT NULL,
        created REAL NOT NULL,
        labels TEXT NOT NULL,               -- JSON object
        options TEXT NOT NULL,              -- JSON object (--opt)
        anonymous INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 2 -> 3: networks, container endpoints on them (IPAM) and published ports
    """
    CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        driver TEXT NOT NULL,               -- bridge, host or null
        bridge TEXT,                        -- the Linux bridge (bridge driver)
        subnet TEXT,                        -- IPv4 CIDR (NULL until the default bridge is set up)
        gateway TEXT,
        internal INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',  -- JSON object
        options TEXT NOT NULL DEFAULT '{}'  -- JSON object (--opt)
    );
    CREATE TABLE endpoints (
        network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
        container_id TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        mode TEXT NOT NULL,                 -- auto (from run), connect (network connect), removed
        ip TEXT,                            -- the address while attached, NULL while stopped
        mac TEXT,
        host_ifname TEXT,                   -- the veth end on the bridge
        ifname TEXT,                        -- eth0, eth1 inside the container
        aliases TEXT NOT NULL DEFAULT '[]', -- JSON list (network aliases)
        static_ip TEXT,                     -- the address asked for with --ip
        PRIMARY KEY (network_id, container_id),
        UNIQUE (network_id, ip)
    );
    CREATE TABLE port_bindings (
        proto TEXT NOT NULL,
        host_ip TEXT NOT NULL,              -- 0.0.0.0 for every address
        host_port INTEGER NOT NULL,
        container_id TEXT NOT NULL,
        container_ip TEXT NOT NULL,
        container_port INTEGER NOT NULL,
        PRIMARY KEY (proto, host_ip, host_port)
    );
    CREATE INDEX port_bindings_container ON port_bindings(container_id);
    """,
]


_PAD = ", NULL" * 7
_IMAGE_QUERY = (
    "SELECT 0, 0, NULL, id, config_digest, manifest_digest, manifest_media_type, created, size, added_at"
    " FROM images WHERE id=:id"
    f" UNION ALL SELECT 1, 0, name{_PAD} FROM tags WHERE image_id=:id"
    f" UNION ALL SELECT 2, 0, name{_PAD} FROM repo_digests WHERE image_id=:id"
    f" UNION ALL SELECT 3, idx, chain_id{_PAD} FROM image_layers WHERE image_id=:id"
    " ORDER BY 1, 2, 3"
)


class _Transaction:
    """``with db.transaction() as conn``: BEGIN IMMEDIATE, then COMMIT, or ROLLBACK on any exception.

    A class rather than a ``contextlib.contextmanager``: contextlib (with collections and functools)
    costs every command ~1 ms to import, and ``run`` writes its container's rows through this.
    """

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


class MetadataDB:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path  # as given (a str from Engine)
        self._conn: sqlite3.Connection | None = self._connect()
        self._closed = False
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version < len(MIGRATIONS):
            self._migrate()

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = connect(os.fspath(self.path), timeout=30.0, isolation_level=None,
                                           check_same_thread=False)
        conn.row_factory = Row
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        if _keep_wal(conn, os.fspath(self.path)):
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, opened again on first use after ``release()``."""
        conn = self._conn
        if conn is None:
            if self._closed:
                from _sqlite3 import ProgrammingError

                raise ProgrammingError("Cannot operate on a closed database.")
            conn = self._conn = self._connect()
        return conn

    def release(self) -> None:
        """Close the connection until the next use (before a fork: see ``ops.containers.start``).

        Reopening only when needed keeps it off the path of a command that has nothing more to ask.
        """
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _migrate(self) -> None:
        # Switching to WAL takes an exclusive lock and SQLite answers "database is locked" at once,
        # without its busy handler, while another process opening a new store holds a lock: retry
        # (within the same 30 s as the busy timeout), then look again, since the other may have switched it.
        from _sqlite3 import OperationalError

        deadline = time.monotonic() + 30.0
        while True:
            try:
                mode = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode != "wal":
                    self.conn.execute("PRAGMA journal_mode = WAL")
                break
            except OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        with self.transaction():
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            for i in range(version, len(MIGRATIONS)):
                for stmt in MIGRATIONS[i].split(";"):
                    if stmt.strip():
                        self.conn.execute(stmt)
            self.conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    def transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    def close(self) -> None:
        self._closed = True
        self.release()

    # ---- images ---------------------------------------------------------------------------
    def add_image(self, rec: ImageRecord, layers: list[tuple[str, str, str, int]],
                  *, tags: list[str] = (), repo_digests: list[str] = (),  # type: ignore[assignment]
                  parent: str | None = None) -> None:
        """Insert (or refresh) an image with its layers and move ``tags`` to it, in one transaction.

        ``layers`` are ``(chain_id, blob_digest, blob_media_type, blob_size)`` bottom to top.
        """
        with self.transaction() as c:
            c.execute(
                "INSERT INTO images (id, config_digest, manifest_digest, manifest_media_type, created, size,"
                " added_at, parent) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET"
                " manifest_digest=COALESCE(excluded.manifest_digest, manifest_digest),"
                " manifest_media_type=COALESCE(excluded.manifest_media_type, manifest_media_type)",
                (rec.id, rec.config_digest, rec.manifest_digest, rec.manifest_media_type, rec.created,
                 rec.size, rec.added_at, parent),
            )
            c.execute("DELETE FROM image_layers WHERE image_id=?", (rec.id,))
            c.executemany(
                "INSERT INTO image_layers (image_id, idx, chain_id, blob_digest, blob_media_type, blob_size)"
                " VALUES (?,?,?,?,?,?)",
                [(rec.id, i, *layer) for i, layer in enumerate(layers)],
            )
            for t in tags:
                c.execute("INSERT INTO tags (name, image_id) VALUES (?,?) ON CONFLICT(name) DO UPDATE"
                          " SET image_id=excluded.image_id", (t, rec.id))
            for d in repo_digests:
                c.execute("INSERT INTO repo_digests (name, image_id) VALUES (?,?) ON CONFLICT(name) DO UPDATE"
                          " SET image_id=excluded.image_id", (d, rec.id))

    def _record(self, row: sqlite3.Row) -> ImageRecord:
        return ImageRecord(row["id"], row["config_digest"], row["manifest_digest"],
                           row["manifest_media_type"], row["created"], row["size"], row["added_at"])

    def images(self) -> list[ImageRecord]:
        recs = {r["id"]: self._record(r) for r in self.conn.execute("SELECT * FROM images")}
        for r in self.conn.execute("SELECT name, image_id FROM tags ORDER BY name"):
            if r["image_id"] in recs:
                recs[r["image_id"]].tags.append(r["name"])
        for r in self.conn.execute("SELECT name, image_id FROM repo_digests ORDER BY name"):
            if r["image_id"] in recs:
                recs[r["image_id"]].repo_digests.append(r["name"])
        return list(recs.values())

    def image(self, image_id: str) -> ImageRecord | None:
        # One round trip: the image's row (k=0), then its tags (1), repo digests (2) and chain (3),
        # each in the order the record lists them.
        rec = None
        for k, _, value, *row in self.conn.execute(_IMAGE_QUERY, {"id": image_id}):
            if k == 0:
                rec = ImageRecord(*row)
            elif rec is None:
                return None
            elif k == 1:
                rec.tags.append(value)
            elif k == 2:
                rec.repo_digests.append(value)
            else:
                rec.chain.append(value)
        return rec

    def image_parent(self, image_id: str) -> str | None:
        row = self.conn.execute("SELECT parent FROM images WHERE id=?", (image_id,)).fetchone()
        return row[0] if row else None

    def image_layers(self, image_id: str) -> list[sqlite3.Row]:
        return list(self.conn.execute(
            "SELECT * FROM image_layers WHERE image_id=? ORDER BY idx", (image_id,)))

    def images_by_prefix(self, prefix: str) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM images WHERE id LIKE ?", ("sha256:" + prefix.removeprefix("sha256:") + "%",))]

    def tag_target(self, name: str) -> str | None:
        row = self.conn.execute("SELECT image_id FROM tags WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def digest_target(self, name: str) -> str | None:
        row = self.conn.execute("SELECT image_id FROM repo_digests WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def set_tag(self, name: str, image_id: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO tags (name, image_id) VALUES (?,?) ON CONFLICT(name) DO UPDATE"
                      " SET image_id=excluded.image_id", (name, image_id))

    def add_repo_digest(self, name: str, image_id: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO repo_digests (name, image_id) VALUES (?,?) ON CONFLICT(name) DO UPDATE"
                      " SET image_id=excluded.image_id", (name, image_id))

    def remove_tag(self, name: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM tags WHERE name=?", (name,))

    def remove_image(self, image_id: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM tags WHERE image_id=?", (image_id,))
            c.execute("DELETE FROM repo_digests WHERE image_id=?", (image_id,))
            c.execute("DELETE FROM image_layers WHERE image_id=?", (image_id,))
            c.execute("DELETE FROM build_cache WHERE image_id=?", (image_id,))
            c.execute("UPDATE images SET parent=NULL WHERE parent=?", (image_id,))
            c.execute("DELETE FROM images WHERE id=?", (image_id,))

    def children(self, image_id: str) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT id FROM images WHERE parent=?", (image_id,))]

    # ---- layers ---------------------------------------------------------------------------
    def layer(self, chain_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM layers WHERE chain_id=?", (chain_id,)).fetchone()
        return row

    def add_layer(self, chain_id: str, diff_id: str, parent: str | None, size: int, dirname: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR IGNORE INTO layers (chain_id, diff_id, parent, size, dir, created)"
                      " VALUES (?,?,?,?,?,?)", (chain_id, diff_id, parent, size, dirname, time.time()))

    def layers(self) -> list[sqlite3.Row]:
        return list(self.conn.execute("SELECT * FROM layers"))

    def remove_layer(self, chain_id: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM layers WHERE chain_id=?", (chain_id,))

    def referenced_chain_ids(self) -> set[str]:
        """Every chain id an image or container still needs, parents included."""
        direct = {r[0] for r in self.conn.execute("SELECT chain_id FROM image_layers")}
        for r in self.conn.execute("SELECT config FROM containers"):
            direct.update(jsonc.loads(r[0]).get("chain", []))
        return direct

    def referenced_blobs(self) -> set[str]:
        out: set[str] = set()
        for r in self.conn.execute("SELECT config_digest, manifest_digest FROM images"):
            out.add(r[0])
            if r[1]:
                out.add(r[1])
        out.update(r[0] for r in self.conn.execute("SELECT blob_digest FROM image_layers"))
        return out

    # ---- containers -----------------------------------------------------------------------
    def add_container(self, cid: str, name: str, image_id: str, image_ref: str, created: float,
                      config: dict[str, Any], state: dict[str, Any]) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO containers (id, name, image_id, image_ref, created, config, state)"
                      " VALUES (?,?,?,?,?,?,?)",
                      (cid, name, image_id, image_ref, created, jsonc.dumps(config), jsonc.dumps(state)))

    def containers(self) -> list[sqlite3.Row]:
        return list(self.conn.execute("SELECT * FROM containers ORDER BY created DESC"))

    def container_names(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT name FROM containers")}

    def container(self, cid: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute("SELECT * FROM containers WHERE id=?", (cid,)).fetchone()
        return row

    def container_by_name(self, name: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM containers WHERE name=?", (name,)).fetchone()
        return row

    def containers_by_prefix(self, prefix: str) -> list[sqlite3.Row]:
        return list(self.conn.execute("SELECT * FROM containers WHERE id LIKE ?", (prefix + "%",)))

    def update_container_state(self, cid: str, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into a container's state JSON atomically; returns the new state."""
        with self.transaction() as c:
            row = c.execute("SELECT state FROM containers WHERE id=?", (cid,)).fetchone()
            if row is None:
                return {}
            state = jsonc.loads(row[0])
            state.update(changes)
            c.execute("UPDATE containers SET state=? WHERE id=?", (jsonc.dumps(state), cid))
            return state

    def update_container(self, cid: str, **cols: Any) -> None:
        sets = ", ".join(f"{k}=?" for k in cols)
        vals = [jsonc.dumps(v) if isinstance(v, dict) else v for v in cols.values()]
        with self.transaction() as c:
            c.execute(f"UPDATE containers SET {sets} WHERE id=?", (*vals, cid))

    def remove_container(self, cid: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM containers WHERE id=?", (cid,))

    def images_in_use(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT image_id FROM containers")}

    # ---- build cache ----------------------------------------------------------------------
    def cache_get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT image_id FROM build_cache WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def cache_image(self, key: str) -> tuple[str, str, list[tuple[str, str, str, int]]] | None:
        """What a build cache key names, in one query: ``(image ID, config digest, layers)`` with the
        layers as :meth:`add_image` takes them, bottom first; None if the key or its image is unknown."""
        rows = self.conn.execute(
            "SELECT c.image_id, i.config_digest, l.chain_id, l.blob_digest, l.blob_media_type, l.blob_size"
            " FROM build_cache AS c JOIN images AS i ON i.id = c.image_id"
            " LEFT JOIN image_layers AS l ON l.image_id = i.id WHERE c.key=? ORDER BY l.idx", (key,)).fetchall()
        if not rows:
            return None
        layers = [(r[2], r[3], r[4], r[5]) for r in rows if r[2] is not None]
        return rows[0][0], rows[0][1], layers

    def prune_build_cache(self, older_than: float | None) -> list[str]:
        """Delete build cache rows: all of them (``older_than`` None), else those created before
        ``older_than`` (a time) or naming an image that is gone; returns the keys deleted."""
        with self.transaction() as c:
            if older_than is None:
                rows = c.execute("SELECT key FROM build_cache").fetchall()
            else:
                rows = c.execute("SELECT key FROM build_cache WHERE created < ? OR image_id NOT IN "
                                 "(SELECT id FROM images)", (older_than,)).fetchall()
            keys = [r[0] for r in rows]
            c.executemany("DELETE FROM build_cache WHERE key=?", [(k,) for k in keys])
        return keys

    def cache_image_ids(self) -> set[str]:
        """Images that only exist as build-cache steps (Docker keeps these out of `images`)."""
        return {r[0] for r in self.conn.execute("SELECT DISTINCT image_id FROM build_cache")}

    def cache_put(self, key: str, image_id: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO build_cache (key, image_id, created) VALUES (?,?,?)",
                      (key, image_id, time.time()))
