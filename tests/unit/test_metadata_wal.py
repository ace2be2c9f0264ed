"""The metadata database keeps its WAL when a connection closes (no checkpoint, no fsync on close)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.store import metadata
from dockyard.store.metadata import MetadataDB


def _add(db: MetadataDB, cid: str) -> None:
    db.add_container(cid, f"name-{cid}", "sha256:" + "0" * 64, "busybox", 1.0, {"opts": {}}, {"status": "created"})


def test_closing_the_last_connection_keeps_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "dockyard.db"
    db = MetadataDB(str(path))
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == metadata.WAL_AUTOCHECKPOINT
    _add(db, "a" * 64)
    db.close()
    # SQLite's default would checkpoint into the main file and delete the WAL here.
    wal = Path(str(path) + "-wal")
    assert wal.exists() and wal.stat().st_size > 0
    # What was committed is there for the next process, and for the sqlite3 module's own connection.
    again = MetadataDB(str(path))
    assert [r["id"] for r in again.containers()] == ["a" * 64]
    again.close()
    plain = sqlite3.connect(path)
    assert plain.execute("SELECT count(*) FROM containers").fetchone()[0] == 1
    plain.close()  # a connection without the setting checkpoints and removes the WAL, as SQLite does
    assert not wal.exists()
    assert MetadataDB(str(path)).containers()[0]["id"] == "a" * 64


def test_a_killed_writer_loses_nothing_committed(tmp_path: Path) -> None:
    """The kept WAL is what a killed process leaves: the next open reads it back."""
    path = tmp_path / "dockyard.db"
    code = (
        "import os, sys\n"
        "from dockyard.store.metadata import MetadataDB\n"
        "db = MetadataDB(sys.argv[1])\n"
        "for i in range(50):\n"
        "    db.add_container(f'{i:064x}', f'n{i}', 'sha256:' + '0' * 64, 'busybox', 1.0, {}, {})\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    db = MetadataDB(str(path))
    assert len(db.containers()) == 50
    assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


def test_the_wal_stays_small(tmp_path: Path) -> None:
    """Commits checkpoint it once it holds WAL_AUTOCHECKPOINT pages, so reading it back stays cheap."""
    path = tmp_path / "dockyard.db"
    db = MetadataDB(str(path))
    page = db.conn.execute("PRAGMA page_size").fetchone()[0]
    for i in range(400):
        _add(db, f"{i:064x}")
    db.close()
    limit = (metadata.WAL_AUTOCHECKPOINT + 64) * (page + 24) + 32  # a checkpoint lags a commit or so
    assert os.path.getsize(str(path) + "-wal") < limit


def test_only_the_database_named_is_touched(tmp_path: Path) -> None:
    """The sqlite3 * found in the connection object is used only once it names this very file."""
    conn = sqlite3.connect(tmp_path / "a.db")
    assert metadata._keep_wal(conn, str(tmp_path / "a.db"))
    assert not metadata._keep_wal(conn, str(tmp_path / "b.db"))
    conn.close()


def test_release_reopens_on_next_use_and_close_is_final(tmp_path: Path) -> None:
    """``release()`` (before a fork) closes the connection until something asks again; ``close()`` ends it."""
    db = MetadataDB(str(tmp_path / "dockyard.db"))
    _add(db, "a" * 64)
    first = db.conn
    db.release()
    assert db._conn is None
    assert [r["id"] for r in db.containers()] == ["a" * 64]
    assert db.conn is not first
    db.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        db.containers()
