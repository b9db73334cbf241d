"""Helpline: real-time contact-center web chat over Server-Sent Events.

The public surface is small on purpose: build an app with :func:`create_app` from a :class:`Settings`;
talk to a server with :mod:`helpline.client`.
"""

from helpline.app import create_app
from helpline.config import Settings

__all__ = ["Settings", "__version__", "create_app"]

__version__ = "0.1.0"
