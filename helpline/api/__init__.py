"""The REST surface (FastAPI): thin routes that validate, call a domain service and shape the answer."""

from typing import Any

from helpline.api.schemas import Problem


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem+json answers a route can give (schemathesis checks them)."""
    # 400: a body that is not JSON at all (FastAPI cannot parse it); 422: JSON that breaks the model.
    everywhere = {400, 413, 422, 429, 503}
    return {
        status: {"model": Problem, "content": {"application/problem+json": {}}}
        for status in sorted(everywhere | set(statuses))
    }
