"""Helpline: real-time contact-center web chat over Server-Sent Events.

The public surface is small on purpose: build an app with :func:`create_app` from a :class:`Settings`;
talk to a server with :mod:`helpline.client`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from helpline.app import create_app
    from helpline.config import Settings

__all__ = ["Settings", "__version__", "create_app"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported lazily so that `import helpline.client` does not pull in the server (FastAPI, SQLAlchemy).
    if name == "create_app":
        from helpline.app import create_app

        return create_app
    if name == "Settings":
        from helpline.config import Settings

        return Settings
    raise AttributeError(name)
