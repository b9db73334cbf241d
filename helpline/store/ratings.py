"""Satisfaction ratings' query: the average score per queue over a recent window."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from helpline.store import schema

__all__ = ["RatingQueries"]


class RatingQueries:
    conn: AsyncConnection

    async def rating_averages(self, since: datetime) -> dict[str, tuple[float, int]]:
        """queue id → (average score, number of ratings) of conversations rated since ``since``."""
        c = schema.conversations
        rows = await self.conn.execute(
            select(c.c.queue_id, func.avg(c.c.rating), func.count(c.c.rating))
            .where(c.c.rating.is_not(None), c.c.rated_at >= since)
            .group_by(c.c.queue_id)
        )
        return {row[0]: (float(row[1]), int(row[2])) for row in rows}
