"""What a database failure means to the caller, in one place for SQLAlchemy's and the drivers' errors.

A broken constraint is a conflict (409: re-read and retry); anything else the database or its driver
raises means "unavailable" (503 with Retry-After), logged here with its traceback, never shown to a client.
"""

from __future__ import annotations

import logging

from helpline.errors import Conflict, Unavailable

logger = logging.getLogger("helpline.store")


def write_conflict() -> Conflict:
    # The domain checks before it writes, so this is a backstop (e.g. a unique key raced by a writer
    # outside Helpline); it means "conflict", not "the database is down".
    return Conflict("the write conflicts with existing data; re-read and retry")


def unavailable(exc: BaseException) -> Unavailable:
    logger.warning("database error: %s", type(exc).__name__, exc_info=exc)
    return Unavailable("the database is unavailable; retry shortly", retry_after=2)
