"""What a database failure means to the caller: the one place where SQLAlchemy's and the drivers'
errors become Helpline's.

A broken constraint is a conflict (409: re-read and retry); anything else the database or its driver
raises means "unavailable" (503 with Retry-After), logged here with its traceback, never shown to a
client. The drivers' own error classes come from their adapters (``store/drivers/``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from helpline.errors import Conflict, HelplineError, Unavailable
from helpline.store.drivers import postgres, sqlite

logger = logging.getLogger("helpline.store")

CONSTRAINT_VIOLATIONS: tuple[type[BaseException], ...] = (
    IntegrityError,
    *sqlite.CONSTRAINT_VIOLATIONS,
    *postgres.CONSTRAINT_VIOLATIONS,
)
DATABASE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError, *sqlite.ERRORS, *postgres.ERRORS)


def write_conflict() -> Conflict:
    # The domain checks before it writes, so this is a backstop (e.g. a unique key raced by a writer
    # outside Helpline); it means "conflict", not "the database is down".
    return Conflict("the write conflicts with existing data; re-read and retry")


def unavailable(exc: BaseException) -> Unavailable:
    logger.warning("database error: %s", type(exc).__name__, exc_info=exc)
    return Unavailable("the database is unavailable; retry shortly", retry_after=2)


def translate(exc: BaseException) -> HelplineError | None:
    """The Helpline error a database error means, or None for an exception that is not one."""
    if isinstance(exc, HelplineError):
        return exc
    if isinstance(exc, CONSTRAINT_VIOLATIONS):
        return write_conflict()
    if isinstance(exc, DATABASE_ERRORS):
        return unavailable(exc)
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Database errors raised inside become :class:`Conflict` or :class:`Unavailable`; others pass."""
    try:
        yield
    except HelplineError:
        raise
    except CONSTRAINT_VIOLATIONS:
        raise write_conflict() from None
    except DATABASE_ERRORS as exc:
        raise unavailable(exc) from exc
