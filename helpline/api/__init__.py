"""The REST surface (FastAPI): thin routes that validate, call a domain service and shape the answer."""

from helpline.edge import problems

__all__ = ["problems"]
