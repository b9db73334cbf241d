"""Queries about canned responses: shared ones (no owner) and each rep's personal ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from helpline.records import isoformat
from helpline.store import schema


@dataclass(frozen=True, slots=True)
class CannedResponse:
    id: str
    shortcut: str
    title: str
    text: str
    queue_id: str | None
    owner_id: str | None  # None: shared
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "shortcut": self.shortcut,
            "title": self.title,
            "text": self.text,
            "queue_id": self.queue_id,
            "owner_id": self.owner_id,
            "created_at": isoformat(self.created_at),
            "updated_at": isoformat(self.updated_at),
        }


class CannedQueries:
    conn: AsyncConnection

    async def canned_responses(self, owner_id: str) -> list[CannedResponse]:
        """The shared responses and ``owner_id``'s personal ones, by shortcut."""
        c = schema.canned_responses
        rows = await self.conn.execute(
            select(c).where(or_(c.c.owner_id.is_(None), c.c.owner_id == owner_id)).order_by(c.c.shortcut, c.c.id)
        )
        return [CannedResponse(**row._mapping) for row in rows]

    async def canned_response(self, canned_id: str) -> CannedResponse | None:
        c = schema.canned_responses
        row = (await self.conn.execute(select(c).where(c.c.id == canned_id))).first()
        return None if row is None else CannedResponse(**row._mapping)

    async def canned_shortcut_taken(self, shortcut: str, owner_id: str | None, except_id: str | None = None) -> bool:
        c = schema.canned_responses
        owner = c.c.owner_id.is_(None) if owner_id is None else c.c.owner_id == owner_id
        query = select(c.c.id).where(c.c.shortcut == shortcut, owner)
        if except_id is not None:
            query = query.where(c.c.id != except_id)
        return (await self.conn.execute(query)).first() is not None

    async def insert_canned_response(self, **values: Any) -> CannedResponse:
        await self.conn.execute(insert(schema.canned_responses).values(**values))
        return CannedResponse(**values)

    async def update_canned_response(self, canned_id: str, **values: Any) -> None:
        c = schema.canned_responses
        await self.conn.execute(update(c).where(c.c.id == canned_id).values(**values))

    async def delete_canned_response(self, canned_id: str) -> None:
        c = schema.canned_responses
        await self.conn.execute(delete(c).where(c.c.id == canned_id))
