"""Durable storage: one SQLAlchemy Core implementation for SQLite (default) and PostgreSQL."""

from helpline.store.database import Store, open_store
from helpline.store.session import StoreSession

__all__ = ["Store", "StoreSession", "open_store"]
