"""Attachments (docs/protocol.md "Customers' extras"): upload into a conversation, download by id, and
an image's thumbnail.

The upload's body is multipart and may be as large as the server's attachment limit, so it has its own
body cap (``app.py`` gives ``BodySizeLimit`` a larger one for this path); the deployment's own, possibly
lower, limit is checked against the file itself.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Path, Request, UploadFile
from fastapi.responses import Response

from helpline.api import problems
from helpline.api.deps import Caller, services
from helpline.api.schemas import AttachmentOut
from helpline.domain.attachments import Download
from helpline.errors import PayloadTooLarge

router = APIRouter(prefix="/api/v1", tags=["attachments"])

UPLOAD_PATH = re.compile(r"/api/v1/conversations/[^/]{1,64}/attachments")
# Multipart framing around the file: boundaries and part headers. Generous; the file is checked exactly.
MULTIPART_OVERHEAD = 64 * 1024
PDF = "application/pdf"  # shown by the browser's viewer, which a sandboxed response would block

ConversationId = Annotated[str, Path(max_length=64)]
AttachmentId = Annotated[str, Path(max_length=40)]


@router.post(
    "/conversations/{conversation_id}/attachments",
    status_code=201,
    response_model=AttachmentOut,
    responses=problems(401, 403, 404, 409, 413, 415),
)
async def upload(
    conversation_id: ConversationId, request: Request, caller: Caller, file: Annotated[UploadFile, File()]
) -> dict[str, Any]:
    """Upload one file (multipart field `file`); send it with `POST …/messages {attachment_ids}`.

    413 over the deployment's limit, or for an image of more pixels than the server decodes; 415 for a
    type it does not accept, judged by the content; 422 when the declared type or the file name says
    something other than the content, or for an image that cannot be read.
    """
    service = services(request).attachments
    limit = service.settings.attachment_max_bytes
    content = await file.read(limit + 1)
    if len(content) > limit:
        raise PayloadTooLarge(f"files are limited to {limit} bytes", max_bytes=limit)
    return await service.upload(caller, conversation_id, file.filename or "", file.content_type, content)


@router.get(
    "/attachments/{attachment_id}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **problems(401, 403, 404)},
)
async def download(attachment_id: AttachmentId, request: Request, caller: Caller) -> Response:
    """The file, for whoever may read its conversation. Images and PDF inline, anything else as a download."""
    return _served(await services(request).attachments.download(caller, attachment_id), "")


@router.get(
    "/attachments/{attachment_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}, **problems(401, 403, 404)},
)
async def thumbnail(attachment_id: AttachmentId, request: Request, caller: Caller) -> Response:
    """An image's thumbnail (at most 320 pixels on its long side, PNG or JPEG, no metadata), for exactly
    those who may download the image; 404 for a file that is not an image."""
    return _served(await services(request).attachments.thumbnail(caller, attachment_id), "thumbnail-")


def _served(found: Download, prefix: str) -> Response:
    record = found.record
    disposition = "inline" if found.inline else "attachment"
    name = prefix + record.name
    fallback = name.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    headers = {
        "Content-Disposition": f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}",
        "X-Content-Type-Options": "nosniff",
        # Opened as a page of our origin, it can run nothing and load nothing.
        "Content-Security-Policy": "default-src 'none'" + ("" if found.content_type == PDF else "; sandbox"),
        "Cache-Control": "private, max-age=86400",
        "Cross-Origin-Resource-Policy": "same-site",
    }
    return Response(found.content, media_type=found.content_type, headers=headers)
