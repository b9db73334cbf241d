"""``helpline db backup PATH``: a consistent copy of a running server's SQLite database.

SQLite's online backup API copies the database page by page inside one read transaction. In WAL mode
(how Helpline opens SQLite) a reader never blocks the server's writer, and what it sees is one snapshot:
every transaction committed before the copy began, and nothing after. Copying the file with ``cp``
instead can tear a page mid-write and leaves out what still sits in the ``-wal`` file.

The copy is written beside the target under a temporary name, checked (``PRAGMA integrity_check``) and
then renamed into place, so ``PATH`` is either the old file or a complete backup, never half of one.
PostgreSQL has its own tools for this (``pg_dump``; see docs/deployment.md).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from helpline.config import ConfigurationError
from helpline.store.attachments import thumbnail_key
from helpline.urls import async_url, redact


@dataclass(frozen=True, slots=True)
class Backup:
    path: Path
    size: int
    last_event_id: int
    attachments: int = 0  # files copied to ``<path>-attachments`` (issue 12: they live beside the database)


def sqlite_file(database_url: str) -> Path:
    """The file of an SQLite URL; a configuration error for any other database."""
    backend = async_url(database_url).get_backend_name()
    if backend != "sqlite":
        raise ConfigurationError(
            f"helpline db backup copies SQLite databases; {redact(database_url)} is {backend}: "
            "use pg_dump (docs/deployment.md, 'Backups')"
        )
    database = make_url(database_url).database
    if not database or database == ":memory:":
        raise ConfigurationError("an in-memory SQLite database has nothing to back up")
    path = Path(database)
    if not path.is_file():
        raise ConfigurationError(f"no SQLite database at {path}")
    return path


def backup_sqlite(
    database_url: str, target: Path, *, overwrite: bool = False, attachment_dir: Path | None = None
) -> Backup:
    """Copy the database at ``database_url`` to ``target`` while the server keeps writing.

    Attachments kept on disk (``<database>-attachments``, or ``attachment_dir``) are copied beside the
    backup, to ``<target>-attachments``, where a server on the restored file looks for them: the files the
    snapshot's rows name. A file is written before its row commits and never changes, so every row
    in the snapshot has its whole file.
    """
    source_path = sqlite_file(database_url)
    target = target.resolve()
    if target == source_path.resolve():
        raise ConfigurationError("the backup must not replace the database itself")
    if target.exists() and not overwrite:
        raise ConfigurationError(f"{target} exists (pass --force to replace it)")
    if not target.parent.is_dir():
        raise ConfigurationError(f"no folder {target.parent}")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30)
    try:
        copy = sqlite3.connect(partial)
        try:
            # pages=-1: the whole database in one step, so one snapshot (stepwise copies restart
            # whenever another connection writes, and could chase a busy server for ever).
            source.backup(copy, pages=-1)
            checked = copy.execute("PRAGMA integrity_check").fetchone()
            if checked is None or checked[0] != "ok":
                raise ConfigurationError(f"the copy failed its integrity check: {checked}")
            head = copy.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
            has_files = copy.execute("SELECT 1 FROM sqlite_master WHERE name = 'attachments'").fetchone()
            files = (
                [r[0] for r in copy.execute("SELECT id FROM attachments WHERE storage = 'disk'")] if has_files else []
            )
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            copy.close()
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    copied = _copy_attachments(
        files, attachment_dir or Path(f"{source_path}-attachments"), Path(f"{target}-attachments")
    )
    return Backup(target, target.stat().st_size, int(head), copied)


def _copy_attachments(ids: list[str], source: Path, target: Path) -> int:
    copied = 0
    for attachment_id in ids:
        if not (source / attachment_id).is_file():
            continue  # erased since the snapshot
        target.mkdir(exist_ok=True)
        shutil.copyfile(source / attachment_id, target / attachment_id)
        thumbnail = thumbnail_key(attachment_id)
        if (source / thumbnail).is_file():  # an image's, written before its row like the file
            shutil.copyfile(source / thumbnail, target / thumbnail)
        copied += 1
    return copied
