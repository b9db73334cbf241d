"""URLs: the public database forms mapped to async drivers, and any URL redacted for logs and errors."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from helpline.config import ConfigurationError


def async_url(url: str) -> URL:
    """Pick the async driver for a URL; the driver module is imported only when the engine is built."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(f"cannot parse database URL {redact(url)!r}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+asyncpg")
    raise ConfigurationError(f"unsupported database URL {redact(url)!r}: use sqlite:/// or postgresql://")


def redact(url: str) -> str:
    """The URL with its password hidden, for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"
