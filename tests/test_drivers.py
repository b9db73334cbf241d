"""The driver adapters (helpline/store/drivers/): the private attributes they use are checked when a
store opens, and a release without them stops the server with an error naming the dependency."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest
import sqlalchemy
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

from helpline.config import ConfigurationError
from helpline.store import open_store
from helpline.store.drivers import postgres, sqlite


def test_the_installed_drivers_have_what_the_adapters_use() -> None:
    sqlite.check()
    postgres.check()
    for name in sqlite.PRIVATE_ATTRIBUTES:
        assert hasattr(aiosqlite.Connection, name)
    for name in postgres.PRIVATE_ATTRIBUTES:
        assert hasattr(AsyncAdapt_asyncpg_connection, name)


async def test_an_aiosqlite_without_its_private_attributes_stops_the_store_opening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(aiosqlite.Connection, "_execute")  # as a future aiosqlite release might
    with pytest.raises(ConfigurationError) as raised:
        await open_store(f"sqlite:///{tmp_path / 'helpline.db'}")
    message = str(raised.value)
    assert f"aiosqlite {aiosqlite.__version__}" in message
    assert "Connection._execute" in message and sqlite.SUPPORTED in message
    assert not (tmp_path / "helpline.db").exists()  # refused before anything was opened


async def test_a_sqlalchemy_without_the_asyncpg_adapters_private_method_stops_the_store_opening(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(AsyncAdapt_asyncpg_connection, "_start_transaction")
    with pytest.raises(ConfigurationError) as raised:  # refused before connecting: no server needed
        await open_store("postgresql://127.0.0.1:1/none")
    message = str(raised.value)
    assert f"SQLAlchemy {sqlalchemy.__version__}" in message
    assert "_start_transaction" in message and postgres.SUPPORTED in message
