"""API keys: stored by a keyed hash of the key (never the key), read by hash when a key is presented."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from helpline.records import ApiKey
from helpline.store import schema


class ApiKeyQueries:
    conn: AsyncConnection

    async def insert_api_key(self, **values: Any) -> ApiKey:
        await self.conn.execute(insert(schema.api_keys).values(**values))
        found = await self.api_key(id=values["id"])
        assert found is not None
        return found

    async def api_key(
        self, *, id: str | None = None, name: str | None = None, key_hash: str | None = None
    ) -> ApiKey | None:
        k = schema.api_keys
        if id is not None:
            condition = k.c.id == id
        elif name is not None:
            condition = k.c.name == name
        else:
            condition = k.c.key_hash == key_hash
        row = (await self.conn.execute(select(k).where(condition))).first()
        return None if row is None else _api_key(row)

    async def api_keys(self) -> list[ApiKey]:
        k = schema.api_keys
        return [_api_key(row) for row in await self.conn.execute(select(k).order_by(k.c.name))]

    async def revoke_api_key(self, key_id: str, when: datetime) -> None:
        k = schema.api_keys
        await self.conn.execute(update(k).where(k.c.id == key_id, k.c.revoked_at.is_(None)).values(revoked_at=when))

    async def touch_api_keys(self, used: dict[str, datetime]) -> None:
        """Record when keys were last used (batched: one write now and then, not one per request)."""
        k = schema.api_keys
        for key_id, when in used.items():
            await self.conn.execute(
                update(k)
                .where(k.c.id == key_id)
                .where((k.c.last_used_at.is_(None)) | (k.c.last_used_at < when))
                .values(last_used_at=when)
            )


def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        key_hash=row.key_hash,
        prefix=row.prefix,
        permissions=tuple(row.permissions),
        user_id=row.user_id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )
