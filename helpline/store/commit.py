"""Group commit: every write transaction that is waiting when the writer is free shares one commit.

A durable commit costs a ``BEGIN``, a ``COMMIT`` with its fsync and, on PostgreSQL, the cross-process
append lock; per message that was most of the database time (bench/RESULTS.md). Callers still write
``async with store.write() as s:`` and run their own checks and statements, but their turns are taken
one after another inside one transaction owned by a single writer task:

* each turn after the first in a batch runs inside a ``SAVEPOINT``, so a turn that fails undoes only
  its own statements (the first turn needs none: when it fails the batch is still empty and the whole
  transaction is rolled back and begun again);
* after the last turn the batch commits **once**, releases the append lock, then publishes every
  turn's events in id order, and only then does any caller leave its ``async with``: a 2xx still
  means "committed";
* the writer is the only task that writes, which is what the append lock used to guarantee, so ids
  still become visible in order. On PostgreSQL the advisory lock is held per batch for other processes.

A batch closes when nobody else is waiting, after ``max_turns`` turns or after ``max_seconds``, so a
steady stream of writers cannot hold back the first one's answer indefinitely.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction

from helpline.errors import HelplineError, Unavailable
from helpline.records import StoredEvent
from helpline.store.failures import DATABASE_ERRORS, translate, unavailable
from helpline.store.session import StoreSession

logger = logging.getLogger("helpline.store")

Publisher = Callable[[Sequence[StoredEvent]], Awaitable[None]]
Connect = Callable[[], Awaitable[AsyncConnection]]
Begin = Callable[[AsyncConnection, bool], Awaitable[AsyncTransaction]]
EndBatch = Callable[[AsyncConnection], Awaitable[bool]]
Session = Callable[[AsyncConnection], StoreSession]


class _NotBegun(Exception):
    """A batch's transaction (or its lock) could not begin; no turn had been handed a session yet."""


class _Turn:
    """One caller's place in a batch: the writer hands it a session, the caller says how its body ended."""

    __slots__ = ("committed", "finished", "session")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.session: asyncio.Future[StoreSession] = loop.create_future()
        self.finished: asyncio.Future[bool] = loop.create_future()  # True: the body completed
        self.committed: asyncio.Future[None] = loop.create_future()

    def finish(self, succeeded: bool) -> None:
        if not self.finished.done():
            self.finished.set_result(succeeded)

    def fail(self, error: HelplineError) -> None:
        """The batch this turn belongs to is lost: tell the caller, wherever it is in its turn."""
        if not self.session.done():
            self.session.set_exception(error)
        elif not self.committed.done() and not (self.finished.done() and not self.finished.result()):
            self.committed.set_exception(error)


class GroupCommit:
    def __init__(
        self,
        connect: Connect,
        begin: Begin,
        end_batch: EndBatch,
        session: Session,
        *,
        max_turns: int = 200,
        max_seconds: float = 0.010,
    ) -> None:
        self._connect = connect
        self._begin = begin  # (connection, first of the batch?) -> a transaction that has really begun
        self._end_batch = end_batch  # after each batch (unlocks on PostgreSQL); False: drop the connection
        self._conn: AsyncConnection | None = None
        self._session = session
        self.max_turns = max_turns
        self.max_seconds = max_seconds
        self.publish: Publisher | None = None
        self._waiting: deque[_Turn] = deque()
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # observability for tests and benchmarks: how often a commit was shared
        self.turns = 0
        # The append lock, the one thing every node's writes queue on (PostgreSQL's advisory lock, the
        # file lock beside SQLite): seconds spent waiting for it (BEGIN included) and holding it (the
        # batch's statements, COMMIT and publish, until the unlock). Their ratio bounds a cluster.
        self.lock_wait_seconds = 0.0
        self.lock_hold_seconds = 0.0
        self._locked_at: float | None = None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[StoreSession]:
        turn = _Turn(asyncio.get_running_loop())
        self._waiting.append(turn)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches(), name="helpline-group-commit")
        try:
            session = await turn.session
        except BaseException:
            turn.finish(False)  # cancelled while queued, or after the writer handed us the session
            raise
        try:
            yield session
        except BaseException as exc:
            turn.finish(False)
            error = translate(exc)
            if error is None or error is exc:
                raise
            raise error from exc
        turn.finish(True)
        await turn.committed

    def figures(self) -> dict[str, float]:
        """What the write path did so far (``/metrics``; logged at close for the benchmarks)."""
        return {
            "batches": self.batches,
            "turns": self.turns,
            "lock_wait_seconds": self.lock_wait_seconds,
            "lock_hold_seconds": self.lock_hold_seconds,
        }

    async def close(self) -> None:
        if self.batches:
            figures = " ".join(f"{name}={value:.6f}" for name, value in self.figures().items())
            logger.info("group commit totals: %s", figures)
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _write_batches(self) -> None:
        """Serve batches while turns wait. Whatever a connection raises (asyncpg's InternalClientError
        after a terminated backend, a closed socket, a failing lock call), that connection is dropped
        and the writer goes on: the writer task itself never dies of a driver error."""
        try:
            while self._waiting:
                if self._conn is None:  # the writer keeps one connection: no pool checkout and reset per batch
                    try:
                        self._conn = await self._connect()
                    except Exception as exc:  # any driver error: the waiting turns get a 503
                        self._fail_waiting(unavailable(exc))
                        return
                    fresh = True
                else:
                    fresh = False
                conn, healthy, fit = self._conn, False, None
                try:
                    fit = await self._one_batch(conn)
                    healthy = True
                except asyncio.CancelledError:
                    self._fail_waiting(Unavailable("the server is shutting down; retry shortly", retry_after=2))
                    raise
                except _NotBegun as exc:
                    # A kept connection may have died since its last batch: one more try on a new one.
                    # A new connection that cannot begin either means the database refuses: 503 for all.
                    logger.warning("group commit: a batch could not begin (%s)", type(exc.__cause__).__name__)
                    if fresh:
                        self._fail_waiting(unavailable(exc.__cause__ or exc))
                except Exception:  # the batch's callers were answered; keep serving the ones waiting
                    logger.exception("group commit: a batch failed")
                finally:
                    if fit is None:  # the batch failed before it unlocked
                        fit = await self._unlock(conn)
                    if not fit or not healthy:
                        self._conn = None
                        await _discard(conn)
        finally:
            # Only a bug could bring us here with turns still queued; never leave them waiting forever.
            self._fail_waiting(Unavailable("the write could not be committed; retry shortly", retry_after=2))

    async def _unlock(self, conn: AsyncConnection) -> bool:
        """``end_batch`` (the append lock's release), where any exception means the connection is no
        longer fit to keep."""
        try:
            return await self._end_batch(conn)
        except Exception:
            logger.warning("group commit: ending a batch failed; the connection is dropped", exc_info=True)
            return False
        finally:
            if self._locked_at is not None:
                self.lock_hold_seconds += asyncio.get_running_loop().time() - self._locked_at
                self._locked_at = None

    async def _one_batch(self, conn: AsyncConnection) -> bool:
        """One batch, committed, unlocked and published; whether its connection is still fit to keep."""
        loop = asyncio.get_running_loop()
        done: list[tuple[_Turn, StoreSession]] = []
        turn: _Turn | None = None
        try:
            asked = loop.time()
            try:
                transaction = await self._begin(conn, True)
            except Exception as exc:
                raise _NotBegun from exc
            self._locked_at = loop.time()
            self.lock_wait_seconds += self._locked_at - asked
            open_savepoint = False
            deadline = loop.time() + self.max_seconds
            while self._waiting and len(done) < self.max_turns and (not done or loop.time() < deadline):
                turn = self._waiting.popleft()
                if turn.session.done():  # its caller was cancelled while it waited
                    continue
                # Every turn after the first gets a savepoint; a failed first turn leaves nothing to keep.
                # A turn's savepoint is released when the next one is taken (same trip) or by COMMIT.
                session = self._session(conn)
                savepointed = bool(done)
                if savepointed:
                    await session.savepoint(release_previous=open_savepoint)
                turn.session.set_result(session)
                if await turn.finished:
                    done.append((turn, session))
                    open_savepoint = savepointed
                elif savepointed:
                    await session.rollback_to_savepoint()
                    open_savepoint = False
                else:
                    await transaction.rollback()
                    transaction = await self._begin(conn, False)
                turn = None
            if done:
                await transaction.commit()
            else:
                await transaction.rollback()
        except BaseException as exc:
            # A database error the batch met (BEGIN, a savepoint, COMMIT) means "unavailable", even a
            # constraint checked at COMMIT: the turns' own statements had succeeded.
            error = (
                unavailable(exc)
                if isinstance(exc, DATABASE_ERRORS)
                else Unavailable("the write could not be committed; retry shortly", retry_after=2)
            )
            for failed in [t for t, _ in done] + ([turn] if turn is not None else []):
                failed.fail(error)
            await _rollback_quietly(conn)
            raise
        self.batches += 1
        self.turns += len(done)
        # Unlocked before the publish: every id of this batch is committed, so a batch that allocates
        # later ids (on any node) may commit and even publish first. A node that hears of a later id
        # reads the log below it and finds these (domain/delivery.py); the bus was never the order.
        # The publish's round trip (Redis) is then no longer part of what every node's writes queue on.
        fit = await self._unlock(conn)
        events = [event for _, session in done for event in session.appended]
        try:
            if events and self.publish is not None:
                await self.publish(events)
        except HelplineError:  # a shared bus is unreachable: stored all the same, the log followers deliver them
            logger.warning("group commit: %d committed events were not published", len(events))
        finally:
            for finished, _ in done:
                if not finished.committed.done():  # its caller may have been cancelled while it waited
                    finished.committed.set_result(None)
        return fit

    def _fail_waiting(self, error: HelplineError) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            turn.fail(error)


async def _discard(conn: AsyncConnection) -> None:
    """Throw a connection away for good: invalidated, so the pool never hands its driver connection
    (broken, or with whatever state the failure left on it) to anyone again."""
    try:
        if not conn.invalidated:
            await conn.invalidate()
        await conn.close()
    except Exception:  # any driver error: the connection is being thrown away anyway
        logger.warning("group commit: the writer's connection did not close cleanly", exc_info=True)


async def _rollback_quietly(conn: AsyncConnection) -> None:
    try:
        await conn.rollback()
    except Exception:  # any driver error: the connection cannot be trusted any more
        try:
            await conn.invalidate()
        except Exception:
            logger.warning("group commit: the writer's connection could not be invalidated", exc_info=True)
