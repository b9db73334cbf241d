"""Attachments: their rows, and where their bytes live (a small storage interface chosen by backend).

The bytes are kept in the database on PostgreSQL, so that every node serves every file, and in a folder
beside the SQLite file by default (an SQLite database is one node's anyway; big blobs would bloat its
single file and its write-ahead log). ``helpline.config.Settings.attachment_storage`` overrides the choice.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from helpline.config import ConfigurationError
from helpline.records import AttachmentRecord
from helpline.store import schema
from helpline.urls import async_url

__all__ = ["AttachmentQueries", "Blobs", "DatabaseBlobs", "DiskBlobs", "choose_blobs", "thumbnail_key"]


_META = [c for c in schema.attachments.c if c.name not in ("content", "thumbnail")]


def thumbnail_key(attachment_id: str) -> str:
    """Where a ``Blobs`` keeps an attachment's thumbnail: beside the file, under its own name."""
    return f"{attachment_id}_thumb"


class AttachmentQueries:
    conn: AsyncConnection

    async def insert_attachment(
        self, record: AttachmentRecord, content: bytes | None, thumbnail: bytes | None = None
    ) -> None:
        values = {c.name: getattr(record, c.name) for c in _META}
        await self.conn.execute(insert(schema.attachments).values(**values, content=content, thumbnail=thumbnail))

    async def attachment(self, attachment_id: str) -> AttachmentRecord | None:
        a = schema.attachments
        row = (await self.conn.execute(select(*_META).where(a.c.id == attachment_id))).first()
        return None if row is None else AttachmentRecord(**row._mapping)

    async def attachments(self, attachment_ids: list[str]) -> list[AttachmentRecord]:
        a = schema.attachments
        rows = await self.conn.execute(select(*_META).where(a.c.id.in_(attachment_ids)))
        return [AttachmentRecord(**row._mapping) for row in rows]

    async def attachment_content(self, attachment_id: str) -> bytes | None:
        a = schema.attachments
        row = (await self.conn.execute(select(a.c.content).where(a.c.id == attachment_id))).first()
        return None if row is None else row.content

    async def attachment_thumbnail(self, attachment_id: str) -> bytes | None:
        a = schema.attachments
        row = (await self.conn.execute(select(a.c.thumbnail).where(a.c.id == attachment_id))).first()
        return None if row is None else row.thumbnail

    async def mark_attached(self, attachment_ids: list[str], event_id: int) -> None:
        a = schema.attachments
        await self.conn.execute(update(a).where(a.c.id.in_(attachment_ids)).values(message_event_id=event_id))


class Blobs(Protocol):
    """Where an attachment's bytes live, by key: its id for the file, ``thumbnail_key(id)`` for its
    thumbnail. ``save`` runs before the row is inserted."""

    kind: str

    async def save(self, attachment_id: str, content: bytes) -> bytes | None:
        """Keep ``content``; returns what the row's ``content`` column holds (None: kept elsewhere)."""
        ...

    async def load(self, attachment_id: str, column: bytes | None) -> bytes: ...

    async def discard(self, attachment_id: str) -> None: ...


class DatabaseBlobs:
    kind = "database"

    async def save(self, attachment_id: str, content: bytes) -> bytes | None:
        return content

    async def load(self, attachment_id: str, column: bytes | None) -> bytes:
        return column or b""

    async def discard(self, attachment_id: str) -> None:
        return None


class DiskBlobs:
    """One file per attachment, named by its id, written whole (temporary file, fsync, rename)."""

    kind = "disk"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, attachment_id: str) -> Path:
        # Keys are ours ("att_<hex>", "att_<hex>_thumb"); never a path.
        if not attachment_id.replace("_", "").isalnum():
            raise ValueError("malformed attachment id")
        return self.folder / attachment_id

    async def save(self, attachment_id: str, content: bytes) -> bytes | None:
        await asyncio.to_thread(self._write, self._path(attachment_id), content)
        return None

    def _write(self, path: Path, content: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with open(partial, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())  # a 201 means stored, as for messages
        partial.replace(path)

    async def load(self, attachment_id: str, column: bytes | None) -> bytes:
        return await asyncio.to_thread(self._path(attachment_id).read_bytes)

    async def discard(self, attachment_id: str) -> None:
        await asyncio.to_thread(self._path(attachment_id).unlink, True)


def choose_blobs(database_url: str, storage: str, folder: str) -> Blobs:
    """The storage for a store at ``database_url``: the database on PostgreSQL, a folder beside SQLite's file."""
    parsed = async_url(database_url)
    database = parsed.database or ""
    in_memory = parsed.get_backend_name() == "sqlite" and (not database or database == ":memory:")
    kind = storage or ("disk" if parsed.get_backend_name() == "sqlite" and not in_memory else "database")
    if kind == "database":
        return DatabaseBlobs()
    if kind != "disk":
        raise ConfigurationError("HELPLINE_ATTACHMENT_STORAGE must be 'database' or 'disk'")
    if folder:
        return DiskBlobs(Path(folder))
    if parsed.get_backend_name() != "sqlite" or in_memory:
        raise ConfigurationError("attachments on disk need HELPLINE_ATTACHMENT_DIR (there is no database file)")
    return DiskBlobs(Path(f"{database}-attachments"))
