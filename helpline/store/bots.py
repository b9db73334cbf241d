"""What the wallboard counts of a queue's bot: conversations it contained, and those it handed to people."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from helpline.store import schema


class BotQueries:
    conn: AsyncConnection

    async def bot_outcomes(self, since: datetime) -> dict[str, tuple[int, int]]:
        """Per queue, of the bot-handled conversations opened since ``since``: (contained, escalated).

        Contained: closed without ever going to a person. Escalated: handed to people (whatever came next).
        """
        c = schema.conversations
        contained = func.sum(((c.c.status == "closed") & c.c.escalated_at.is_(None)).cast(Integer))
        escalated = func.count(c.c.escalated_at)
        rows = await self.conn.execute(
            select(c.c.queue_id, contained, escalated)
            # ``> ''`` (every id is longer) rather than IS NOT NULL: SQLite then ranges over ix_conversations_bot.
            .where(c.c.bot_id > "", c.c.created_at >= since)
            .group_by(c.c.queue_id)
        )
        return {row[0]: (int(row[1] or 0), int(row[2] or 0)) for row in rows}
