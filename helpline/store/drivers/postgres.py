"""PostgreSQL through asyncpg: the one module that touches SQLAlchemy's asyncpg adapter's privates.

SQLAlchemy's adapter begins a transaction lazily, at the first statement it runs itself; a batch's
driver statements (sent to asyncpg directly, see :mod:`helpline.store.connection`) need it begun now.
``start_transaction`` calls the adapter's private ``_start_transaction``, what that first statement
would call. ``check()`` refuses to start, naming the version, if an upgrade removes it, and
``pyproject.toml`` bounds SQLAlchemy to the versions checked. Everything else here is asyncpg's public API.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

from helpline.config import ConfigurationError

CONSTRAINT_VIOLATIONS: tuple[type[BaseException], ...] = (asyncpg.IntegrityConstraintViolationError,)
# InternalClientError is what asyncpg raises when its protocol state is broken under it (a terminated
# backend in the middle of a statement): a connection failure like the others, not a bug of ours.
ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
CONNECTION_LOST: tuple[type[BaseException], ...] = (*ERRORS, OSError)
SUPPORTED = "sqlalchemy>=2.0.30,<2.2"
PRIVATE_ATTRIBUTES = ("_start_transaction",)

# An arbitrary, fixed key for pg_advisory_lock: "helpline" in ASCII, folded into a signed 64-bit int.
APPEND_LOCK_KEY = 0x68656C706C696E65 - (1 << 63)

Parameters = Sequence[Any] | Callable[[list[list[Any]]], Sequence[Any]]


def check() -> None:
    """Refuse to start on a SQLAlchemy whose asyncpg adapter lacks the private method used here."""
    missing = [name for name in PRIVATE_ATTRIBUTES if not hasattr(AsyncAdapt_asyncpg_connection, name)]
    if missing:
        raise ConfigurationError(
            f"SQLAlchemy {sqlalchemy.__version__}'s asyncpg adapter has no {', '.join(missing)}, which Helpline's "
            f"PostgreSQL adapter uses (helpline/store/drivers/postgres.py); install {SUPPORTED}"
        )


async def start_transaction(dbapi_connection: Any) -> None:
    """Make the adapter's lazily begun transaction begin on the server now."""
    await dbapi_connection._start_transaction()


async def run_steps(driver: Any, steps: Sequence[tuple[str, Parameters]]) -> list[list[Any]]:
    """Run statements in order, one call each, and return each one's rows; a step's parameters may be a
    function of the rows before it."""
    results: list[list[Any]] = []
    for sql, parameters in steps:
        values = parameters(results) if callable(parameters) else parameters
        results.append(list(await driver.fetch(sql, *values)))
    return results


async def run_script(driver: Any, statements: Sequence[str]) -> None:
    """Statements without parameters in **one** round trip (asyncpg's simple protocol)."""
    await driver.execute("; ".join(statements))


async def take_append_lock(driver: Any) -> None:
    await driver.execute(f"SELECT pg_advisory_lock({APPEND_LOCK_KEY})")


async def release_append_lock(driver: Any) -> None:
    await driver.execute(f"SELECT pg_advisory_unlock({APPEND_LOCK_KEY})")
